//! One function per route. Each parses its IDs once (400 when malformed), checks that what the
//! URL names exists (404), and hands the change to the engine as an [`Edit`].

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use super::{ApiError, Shared};
use crate::config::{self, Edit, FolderConfig, FolderId, FolderType, Versioning};
use crate::control::{Edited, Pending};
use crate::identity::DeviceId;
use crate::status::DeviceView;

type Answer<T> = Result<T, ApiError>;

fn device_id(s: &str) -> Answer<DeviceId> {
    s.parse().map_err(|e| ApiError::BadRequest(format!("{s:?} is not a device ID: {e}")))
}

fn folder_id(s: &str) -> Answer<FolderId> {
    s.parse().map_err(|e: String| ApiError::BadRequest(format!("{s:?} is not a folder ID: {e}")))
}

fn device_ids(list: &[String]) -> Answer<Vec<DeviceId>> {
    list.iter().map(|d| device_id(d)).collect()
}

/// The JSON body, or a 400 that says what is wrong with it.
pub(super) fn body<T>(body: Result<Json<T>, JsonRejection>) -> Answer<T> {
    body.map(|Json(b)| b).map_err(|e| ApiError::BadRequest(format!("bad request body: {}", e.body_text())))
}

/// Makes one edit through the engine and says what it did.
async fn edit(state: &Shared, edit: Edit) -> Answer<Edited> {
    let change = state.engine.edit_config(edit).await?;
    Ok(Edited { changed: change.changed(), message: change.to_string() })
}

/// Several edits' answers as one.
fn merged(answers: Vec<Edited>) -> Edited {
    Edited {
        changed: answers.iter().any(|a| a.changed),
        message: answers.iter().map(|a| a.message.as_str()).collect::<Vec<_>>().join(" "),
    }
}

fn known_device(state: &Shared, id: &str) -> Answer<DeviceId> {
    let id = device_id(id)?;
    state
        .engine
        .config()
        .device(&id)
        .map(|d| d.id)
        .ok_or_else(|| ApiError::NotFound(format!("device {id} is not a configured device")))
}

fn known_folder(state: &Shared, id: &str) -> Answer<FolderId> {
    let id = folder_id(id)?;
    match state.engine.config().folder(&id) {
        Some(_) => Ok(id),
        None => Err(ApiError::NotFound(format!("there is no folder with ID \"{id}\""))),
    }
}

/// The answer to a change (the same shape as the control socket's).
#[derive(Serialize, ToSchema)]
#[schema(as = Edited)]
#[allow(dead_code)] // Only its schema is used: it documents `control::Edited`.
struct EditedDoc {
    changed: bool,
    message: String,
}

impl IntoResponse for Edited {
    fn into_response(self) -> axum::response::Response {
        Json(self).into_response()
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct SystemInfo {
    /// This device's ID.
    id: String,
    name: String,
    version: String,
    uptime_s: u64,
}

/// This device: its ID, name, version and uptime.
#[utoipa::path(get, path = "/api/system", responses((status = 200, body = SystemInfo)))]
pub(super) async fn system(State(state): State<Shared>) -> Json<SystemInfo> {
    Json(SystemInfo {
        id: state.me.to_string(),
        name: state.engine.config().name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_s: state.started.elapsed().as_secs(),
    })
}

/// This device's ID as a QR code, for scanning with a phone.
#[utoipa::path(get, path = "/api/system/qr.svg", responses((status = 200, content_type = "image/svg+xml", body = String)))]
pub(super) async fn qr_svg(State(state): State<Shared>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "image/svg+xml")], crate::identity::qr_svg(&state.me))
}

/// Every folder's state, local and global contents, needs and per-device completion, and every
/// device's connection.
#[utoipa::path(get, path = "/api/status", responses((status = 200, body = serde_json::Value)))]
pub(super) async fn status(State(state): State<Shared>) -> Answer<Json<crate::status::Status>> {
    let config = state.engine.config();
    let status = crate::status::status(state.me, &config, state.engine.index(), Some(&state.engine))
        .await
        .map_err(|e| ApiError::Engine(e.into()))?;
    Ok(Json(status))
}

/// The configured devices.
#[utoipa::path(get, path = "/api/devices", responses((status = 200, body = Vec<DeviceView>)))]
pub(super) async fn list_devices(State(state): State<Shared>) -> Json<Vec<DeviceView>> {
    Json(crate::status::device_views(&state.engine.config()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewDevice {
    id: String,
    name: Option<String>,
    /// `tcp://host[:port]`, `quic://host[:port]` or `dynamic` (the default).
    addresses: Option<Vec<String>>,
}

/// Adds a device by its ID.
#[utoipa::path(post, path = "/api/devices", request_body = NewDevice,
    responses((status = 201, body = EditedDoc), (status = 400, description = "bad ID or address, or already configured")))]
pub(super) async fn add_device(
    State(state): State<Shared>,
    new: Result<Json<NewDevice>, JsonRejection>,
) -> Answer<(StatusCode, Edited)> {
    let new = body(new)?;
    let id = device_id(&new.id)?;
    if state.engine.config().device(&id).is_some() {
        return Err(ApiError::BadRequest(format!("device {id} is already configured; change it with PATCH")));
    }
    let done = edit(&state, Edit::AddDevice { id, name: new.name, addresses: new.addresses }).await?;
    Ok((StatusCode::CREATED, done))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DevicePatch {
    name: Option<String>,
    addresses: Option<Vec<String>>,
    paused: Option<bool>,
}

/// Changes a device's name or addresses, or pauses or resumes it.
#[utoipa::path(patch, path = "/api/devices/{id}", request_body = DevicePatch,
    params(("id" = String, Path, description = "device ID")),
    responses((status = 200, body = EditedDoc), (status = 400), (status = 404)))]
pub(super) async fn edit_device(
    State(state): State<Shared>,
    Path(id): Path<String>,
    patch: Result<Json<DevicePatch>, JsonRejection>,
) -> Answer<Edited> {
    let patch = body(patch)?;
    let id = known_device(&state, &id)?;
    let mut answers = Vec::new();
    if patch.name.is_some() || patch.addresses.is_some() {
        answers.push(
            edit(&state, Edit::UpdateDevice { id, name: patch.name, addresses: patch.addresses }).await?,
        );
    }
    if let Some(paused) = patch.paused {
        answers.push(edit(&state, Edit::PauseDevice { id, paused }).await?);
    }
    if answers.is_empty() {
        return Err(ApiError::BadRequest("nothing to change: give name, addresses or paused".into()));
    }
    Ok(merged(answers))
}

/// Removes a device and stops sharing every folder with it.
#[utoipa::path(delete, path = "/api/devices/{id}", params(("id" = String, Path, description = "device ID")),
    responses((status = 200, body = EditedDoc), (status = 404)))]
pub(super) async fn remove_device(State(state): State<Shared>, Path(id): Path<String>) -> Answer<Edited> {
    let id = known_device(&state, &id)?;
    edit(&state, Edit::RemoveDevice { id }).await
}

#[derive(Serialize, ToSchema)]
pub(super) struct FolderView {
    id: String,
    label: String,
    path: String,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    folder_type: FolderType,
    devices: Vec<String>,
    #[schema(value_type = Object)]
    versioning: Versioning,
    paused: bool,
}

/// The configured folders.
#[utoipa::path(get, path = "/api/folders", responses((status = 200, body = Vec<FolderView>)))]
pub(super) async fn list_folders(State(state): State<Shared>) -> Json<Vec<FolderView>> {
    let config = state.engine.config();
    Json(
        config
            .folders
            .iter()
            .map(|f| FolderView {
                id: f.id.to_string(),
                label: f.label.clone(),
                path: f.path.to_string_lossy().into_owned(),
                folder_type: f.folder_type,
                devices: f.devices.iter().map(ToString::to_string).collect(),
                versioning: f.versioning,
                paused: f.paused,
            })
            .collect(),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewFolder {
    id: String,
    /// Absolute; it must exist unless `create` is true.
    #[schema(value_type = String)]
    path: PathBuf,
    #[serde(default)]
    label: String,
    /// `send-receive` (the default), `send-only` or `receive-only`.
    #[serde(default, rename = "type")]
    #[schema(value_type = Option<String>)]
    folder_type: FolderType,
    /// The configured devices to share it with.
    #[serde(default)]
    devices: Vec<String>,
    /// `{"type": "trashcan", "keep_days": 30}` (the default) or `{"type": "none"}`.
    #[schema(value_type = Option<Object>)]
    versioning: Option<Versioning>,
    /// Create the directory if it does not exist.
    #[serde(default)]
    create: bool,
}

/// `path` resolved as the CLI resolves it, after checking it exists (unless it may be created).
/// A relative path is left for the configuration to refuse, with its own sentence.
fn folder_root(path: PathBuf, create: bool) -> Answer<PathBuf> {
    if !path.is_absolute() {
        return Ok(path);
    }
    if !create && !path.is_dir() {
        let what = if path.exists() { "is not a directory" } else { "does not exist" };
        return Err(ApiError::BadRequest(format!(
            "folder path {} {what} (send \"create\": true to create it)",
            path.display()
        )));
    }
    config::resolve_folder_path(&path)
        .map_err(|e| ApiError::BadRequest(format!("cannot resolve folder path {}: {e}", path.display())))
}

/// Adds a folder and shares it with the given devices.
#[utoipa::path(post, path = "/api/folders", request_body = NewFolder,
    responses((status = 201, body = EditedDoc), (status = 400, description = "bad ID or path, a duplicate ID, an overlap or an unknown device")))]
pub(super) async fn add_folder(
    State(state): State<Shared>,
    new: Result<Json<NewFolder>, JsonRejection>,
) -> Answer<(StatusCode, Edited)> {
    let new = body(new)?;
    let id = folder_id(&new.id)?;
    let devices = device_ids(&new.devices)?;
    let path = folder_root(new.path, new.create)?;
    let folder = FolderConfig {
        label: new.label,
        folder_type: new.folder_type,
        devices,
        versioning: new.versioning.unwrap_or_default(),
        ..FolderConfig::new(id, path)
    };
    let done = edit(&state, Edit::AddFolder { folder: Box::new(folder) }).await?;
    Ok((StatusCode::CREATED, done))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FolderPatch {
    label: Option<String>,
    /// The full list of devices to share it with.
    devices: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    versioning: Option<Versioning>,
    paused: Option<bool>,
}

/// Changes a folder's label, devices or versioning, or pauses or resumes it.
#[utoipa::path(patch, path = "/api/folders/{id}", request_body = FolderPatch,
    params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = EditedDoc), (status = 400), (status = 404)))]
pub(super) async fn edit_folder(
    State(state): State<Shared>,
    Path(id): Path<String>,
    patch: Result<Json<FolderPatch>, JsonRejection>,
) -> Answer<Edited> {
    let patch = body(patch)?;
    let id = known_folder(&state, &id)?;
    let devices = patch.devices.as_deref().map(device_ids).transpose()?;
    let mut answers = Vec::new();
    if patch.label.is_some() || devices.is_some() || patch.versioning.is_some() {
        let update =
            Edit::UpdateFolder { id: id.clone(), label: patch.label, versioning: patch.versioning, devices };
        answers.push(edit(&state, update).await?);
    }
    if let Some(paused) = patch.paused {
        answers.push(edit(&state, Edit::PauseFolder { id, paused }).await?);
    }
    if answers.is_empty() {
        return Err(ApiError::BadRequest(
            "nothing to change: give label, devices, versioning or paused".into(),
        ));
    }
    Ok(merged(answers))
}

/// Removes a folder from the configuration; its files stay as they are.
#[utoipa::path(delete, path = "/api/folders/{id}", params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = EditedDoc), (status = 404)))]
pub(super) async fn remove_folder(State(state): State<Shared>, Path(id): Path<String>) -> Answer<Edited> {
    let id = known_folder(&state, &id)?;
    edit(&state, Edit::RemoveFolder { id }).await
}

/// Scans a folder now and answers when the scan is done, with its summary.
#[utoipa::path(post, path = "/api/folders/{id}/scan", params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = serde_json::Value), (status = 400, description = "paused"), (status = 404)))]
pub(super) async fn scan_folder(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Answer<Json<crate::scan::ScanSummary>> {
    let id = known_folder(&state, &id)?;
    Ok(Json(state.engine.scan(&id, Vec::new()).await?))
}

/// Devices that tried to connect without being configured, and folders configured devices
/// offered that are not shared with them here.
#[utoipa::path(get, path = "/api/pending", responses((status = 200, body = serde_json::Value)))]
pub(super) async fn pending(State(state): State<Shared>) -> Answer<Json<Pending>> {
    let index = state.engine.index();
    let engine_error = |e: crate::db::DbError| ApiError::Engine(e.into());
    let devices = index.pending_devices().await.map_err(engine_error)?;
    let folders = index.pending_folders().await.map_err(engine_error)?;
    Ok(Json(Pending { devices, folders }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AcceptDevice {
    /// Defaults to the name it announced.
    name: Option<String>,
    /// Defaults to `dynamic`.
    addresses: Option<Vec<String>>,
}

/// Adds a pending device.
#[utoipa::path(post, path = "/api/pending/devices/{id}/accept", request_body = AcceptDevice,
    params(("id" = String, Path, description = "device ID")),
    responses((status = 201, body = EditedDoc), (status = 400), (status = 404, description = "not pending")))]
pub(super) async fn accept_device(
    State(state): State<Shared>,
    Path(id): Path<String>,
    accept: Result<Json<AcceptDevice>, JsonRejection>,
) -> Answer<(StatusCode, Edited)> {
    let accept = body(accept)?;
    let id = device_id(&id)?;
    let pending = state.engine.index().pending_devices().await.map_err(|e| ApiError::Engine(e.into()))?;
    let Some(device) = pending.into_iter().find(|d| d.device == id) else {
        return Err(ApiError::NotFound(format!("device {id} is not pending")));
    };
    let name = accept.name.or_else(|| Some(device.name).filter(|n| !n.is_empty()));
    // Adding it settles the pending entry (engine::settle_pending).
    let done = edit(&state, Edit::AddDevice { id, name, addresses: accept.addresses }).await?;
    Ok((StatusCode::CREATED, done))
}

/// Forgets a pending device; it is listed again if it connects again.
#[utoipa::path(post, path = "/api/pending/devices/{id}/dismiss", params(("id" = String, Path, description = "device ID")),
    responses((status = 200, body = EditedDoc), (status = 404, description = "not pending")))]
pub(super) async fn dismiss_device(State(state): State<Shared>, Path(id): Path<String>) -> Answer<Edited> {
    let id = device_id(&id)?;
    let removed =
        state.engine.index().remove_pending_device(&id).await.map_err(|e| ApiError::Engine(e.into()))?;
    if !removed {
        return Err(ApiError::NotFound(format!("device {id} is not pending")));
    }
    Ok(Edited {
        changed: true,
        message: format!("Dismissed device {id}; it is asked about again if it connects again."),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AcceptFolder {
    /// The device whose offer this accepts.
    device: String,
    /// Where to keep the folder (absolute); not needed when it is already configured here.
    #[schema(value_type = Option<String>)]
    path: Option<PathBuf>,
    /// Create the directory if it does not exist.
    #[serde(default)]
    create: bool,
}

/// Accepts a folder offer: adds the folder at `path` shared with the offering device, or, if
/// the folder is configured here already, shares it with that device.
#[utoipa::path(post, path = "/api/pending/folders/{folder}/accept", request_body = AcceptFolder,
    params(("folder" = String, Path, description = "folder ID")),
    responses((status = 201, body = EditedDoc), (status = 400), (status = 404, description = "no such offer")))]
pub(super) async fn accept_folder(
    State(state): State<Shared>,
    Path(folder): Path<String>,
    accept: Result<Json<AcceptFolder>, JsonRejection>,
) -> Answer<(StatusCode, Edited)> {
    let accept = body(accept)?;
    let id = folder_id(&folder)?;
    let device = device_id(&accept.device)?;
    let offers = state.engine.index().pending_folders().await.map_err(|e| ApiError::Engine(e.into()))?;
    let Some(offer) = offers.into_iter().find(|o| o.folder == id.as_str() && o.device == device) else {
        return Err(ApiError::NotFound(format!("device {device} has no pending offer of folder \"{id}\"")));
    };
    // Adding or sharing settles the offer (engine::settle_pending).
    let change = if state.engine.config().folder(&id).is_some() {
        Edit::Share { folder: id, device }
    } else {
        let Some(path) = accept.path else {
            return Err(ApiError::BadRequest(format!(
                "folder \"{id}\" is new here: give the path to keep it at"
            )));
        };
        let folder = FolderConfig {
            label: offer.label,
            devices: vec![device],
            ..FolderConfig::new(id, folder_root(path, accept.create)?)
        };
        Edit::AddFolder { folder: Box::new(folder) }
    };
    Ok((StatusCode::CREATED, edit(&state, change).await?))
}

#[derive(Deserialize)]
pub(super) struct DismissFolder {
    device: Option<String>,
}

/// Forgets a folder offer, from one device (`?device=ID`) or from all.
#[utoipa::path(post, path = "/api/pending/folders/{folder}/dismiss",
    params(("folder" = String, Path, description = "folder ID"), ("device" = Option<String>, Query, description = "only this device's offer")),
    responses((status = 200, body = EditedDoc), (status = 404, description = "no such offer")))]
pub(super) async fn dismiss_folder(
    State(state): State<Shared>,
    Path(folder): Path<String>,
    Query(query): Query<DismissFolder>,
) -> Answer<Edited> {
    let id = folder_id(&folder)?;
    let device = query.device.as_deref().map(device_id).transpose()?;
    let index = state.engine.index();
    let db = |e: crate::db::DbError| ApiError::Engine(e.into());
    let offered =
        |o: &crate::db::PendingFolder| o.folder == id.as_str() && device.is_none_or(|d| o.device == d);
    if !index.pending_folders().await.map_err(db)?.iter().any(offered) {
        return Err(ApiError::NotFound(format!("no offer of folder \"{id}\" is pending")));
    }
    index.remove_pending_folder(id.as_str(), device.as_ref()).await.map_err(db)?;
    Ok(Edited { changed: true, message: format!("Dismissed the offer of folder \"{id}\".") })
}

/// Live events as server-sent events: each `data` is one engine event as JSON (its `type`
/// says which), also given as the SSE event name. A client too slow to keep up gets a
/// `lagged` event with how many it missed.
#[utoipa::path(get, path = "/api/events", responses((status = 200, content_type = "text/event-stream", body = String)))]
pub(super) async fn events(
    State(state): State<Shared>,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let receiver = state.engine.subscribe();
    let shutdown = state.shutdown.clone();
    let stream =
        futures_util::stream::unfold((receiver, shutdown), |(mut receiver, mut shutdown)| async move {
            let event = tokio::select! {
                // The stream ends with the daemon, so the server's graceful shutdown can finish.
                _ = shutdown.wait_for(|stop| *stop) => return None,
                event = receiver.recv() => event,
            };
            let sse = match event {
                Ok(event) => {
                    let json = serde_json::to_value(&event).unwrap_or_default();
                    let name = json["type"].as_str().unwrap_or("event").to_owned();
                    SseEvent::default().event(name).data(json.to_string())
                }
                Err(RecvError::Lagged(n)) => {
                    SseEvent::default().event("lagged").data(format!("{{\"missed\":{n}}}"))
                }
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(sse), (receiver, shutdown)))
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
