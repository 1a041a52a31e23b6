//! One function per route. Each parses its path, query and body (400 when malformed) into one
//! [`Request`] and answers what the service answers: the checks (what the URL names exists,
//! 404) and the work are the service's.

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
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use super::{ApiError, Shared};
use crate::config::{Edit, FolderId, FolderType, Versioning};
use crate::identity::DeviceId;
use crate::service::{
    Discovery, Edited, FolderView, FromResponse, Pending, Request, Response, ServiceError, SystemInfo,
};
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

/// Asks the service and reads its answer as the type the request is answered with.
pub(super) async fn ask<T: FromResponse>(state: &Shared, request: Request) -> Answer<T> {
    Ok(crate::service::call(&state.service, request).await?)
}

/// The folder ID in a URL (400 when malformed; whether it exists is the service's to say).
pub(super) fn folder_in_path(id: &str) -> Answer<FolderId> {
    folder_id(id)
}

/// Asks for a change and answers what it did, as JSON.
pub(super) async fn edited(state: &Shared, request: Request) -> Answer<Json<Edited>> {
    ask(state, request).await.map(Json)
}

/// This device: its ID, name, version and uptime.
#[utoipa::path(get, path = "/api/system", responses((status = 200, body = SystemInfo)))]
pub(super) async fn system(State(state): State<Shared>) -> Answer<Json<SystemInfo>> {
    ask(&state, Request::System).await.map(Json)
}

/// This device's ID as a QR code, for scanning with a phone.
#[utoipa::path(get, path = "/api/system/qr.svg", responses((status = 200, content_type = "image/svg+xml", body = String)))]
pub(super) async fn qr_svg(State(state): State<Shared>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "image/svg+xml")], crate::identity::qr_svg(&state.service.me()))
}

/// Every folder's state, local and global contents, needs and per-device completion, and every
/// device's connection.
#[utoipa::path(get, path = "/api/status", responses((status = 200, body = crate::status::Status)))]
pub(super) async fn status(State(state): State<Shared>) -> Answer<Json<Box<crate::status::Status>>> {
    ask(&state, Request::Status).await.map(Json)
}

/// The configured devices.
#[utoipa::path(get, path = "/api/devices", responses((status = 200, body = Vec<DeviceView>)))]
pub(super) async fn list_devices(State(state): State<Shared>) -> Answer<Json<Vec<DeviceView>>> {
    ask(&state, Request::Devices).await.map(Json)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewDevice {
    id: String,
    name: Option<String>,
    /// `tcp://host[:port]`, `quic://host[:port]` or `dynamic` (the default).
    addresses: Option<Vec<String>>,
    /// KiB/s sent to it; 0 or absent: unlimited.
    max_send_kibps: Option<u64>,
    /// KiB/s received from it; 0 or absent: unlimited.
    max_recv_kibps: Option<u64>,
}

/// Adds a device by its ID.
#[utoipa::path(post, path = "/api/devices", request_body = NewDevice,
    responses((status = 201, body = Edited), (status = 400, description = "bad ID or address, or already configured")))]
pub(super) async fn add_device(
    State(state): State<Shared>,
    new: Result<Json<NewDevice>, JsonRejection>,
) -> Answer<(StatusCode, Json<Edited>)> {
    let new = body(new)?;
    let device = device_id(&new.id)?;
    let request = Request::AddDevice {
        device,
        name: new.name,
        addresses: new.addresses,
        max_send_kibps: new.max_send_kibps,
        max_recv_kibps: new.max_recv_kibps,
    };
    Ok((StatusCode::CREATED, edited(&state, request).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DevicePatch {
    name: Option<String>,
    addresses: Option<Vec<String>>,
    paused: Option<bool>,
    /// KiB/s sent to it; 0: unlimited.
    max_send_kibps: Option<u64>,
    /// KiB/s received from it; 0: unlimited.
    max_recv_kibps: Option<u64>,
}

/// Changes a device's name, addresses or limits, or pauses or resumes it.
#[utoipa::path(patch, path = "/api/devices/{id}", request_body = DevicePatch,
    params(("id" = String, Path, description = "device ID")),
    responses((status = 200, body = Edited), (status = 400), (status = 404)))]
pub(super) async fn edit_device(
    State(state): State<Shared>,
    Path(id): Path<String>,
    patch: Result<Json<DevicePatch>, JsonRejection>,
) -> Answer<Json<Edited>> {
    let patch = body(patch)?;
    let device = device_id(&id)?;
    let DevicePatch { name, addresses, paused, max_send_kibps, max_recv_kibps } = patch;
    let request = Request::UpdateDevice { device, name, addresses, paused, max_send_kibps, max_recv_kibps };
    edited(&state, request).await
}

/// Removes a device and stops sharing every folder with it.
#[utoipa::path(delete, path = "/api/devices/{id}", params(("id" = String, Path, description = "device ID")),
    responses((status = 200, body = Edited), (status = 404)))]
pub(super) async fn remove_device(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Answer<Json<Edited>> {
    edited(&state, Request::RemoveDevice { device: device_id(&id)? }).await
}

/// The configured folders.
#[utoipa::path(get, path = "/api/folders", responses((status = 200, body = Vec<FolderView>)))]
pub(super) async fn list_folders(State(state): State<Shared>) -> Answer<Json<Vec<FolderView>>> {
    ask(&state, Request::Folders).await.map(Json)
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
    folder_type: FolderType,
    /// The configured devices to share it with.
    #[serde(default)]
    devices: Vec<String>,
    /// `{"type": "trashcan", "keep_days": 30}` (the default) or `{"type": "none"}`.
    versioning: Option<Versioning>,
    /// Create the directory if it does not exist.
    #[serde(default)]
    create: bool,
}

/// Adds a folder and shares it with the given devices.
#[utoipa::path(post, path = "/api/folders", request_body = NewFolder,
    responses((status = 201, body = Edited), (status = 400, description = "bad ID or path, a duplicate ID, an overlap or an unknown device")))]
pub(super) async fn add_folder(
    State(state): State<Shared>,
    new: Result<Json<NewFolder>, JsonRejection>,
) -> Answer<(StatusCode, Json<Edited>)> {
    let new = body(new)?;
    let request = Request::AddFolder {
        folder: folder_id(&new.id)?,
        path: new.path,
        label: new.label,
        folder_type: new.folder_type,
        devices: device_ids(&new.devices)?,
        versioning: new.versioning,
        create: new.create,
    };
    Ok((StatusCode::CREATED, edited(&state, request).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FolderPatch {
    label: Option<String>,
    /// The full list of devices to share it with.
    devices: Option<Vec<String>>,
    versioning: Option<Versioning>,
    paused: Option<bool>,
    /// Seconds between full rescans; 0 turns periodic rescans off.
    rescan_interval_s: Option<u64>,
    /// Whether to watch the folder for changes as they happen.
    watch: Option<bool>,
}

/// Changes a folder's label, devices, versioning, rescan interval or watching, or pauses or
/// resumes it.
#[utoipa::path(patch, path = "/api/folders/{id}", request_body = FolderPatch,
    params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = Edited), (status = 400), (status = 404)))]
pub(super) async fn edit_folder(
    State(state): State<Shared>,
    Path(id): Path<String>,
    patch: Result<Json<FolderPatch>, JsonRejection>,
) -> Answer<Json<Edited>> {
    let patch = body(patch)?;
    let request = Request::UpdateFolder {
        folder: folder_id(&id)?,
        label: patch.label,
        devices: patch.devices.as_deref().map(device_ids).transpose()?,
        versioning: patch.versioning,
        paused: patch.paused,
        rescan_interval_s: patch.rescan_interval_s,
        watch: patch.watch,
    };
    edited(&state, request).await
}

/// Removes a folder from the configuration; its files stay as they are.
#[utoipa::path(delete, path = "/api/folders/{id}", params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = Edited), (status = 404)))]
pub(super) async fn remove_folder(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Answer<Json<Edited>> {
    edited(&state, Request::RemoveFolder { folder: folder_id(&id)? }).await
}

/// Scans a folder now and answers when the scan is done, with its summary.
#[utoipa::path(post, path = "/api/folders/{id}/scan", params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = crate::scan::ScanSummary), (status = 400, description = "paused"), (status = 404)))]
pub(super) async fn scan_folder(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Answer<Json<Box<crate::scan::ScanSummary>>> {
    ask(&state, Request::Scan { folder: folder_id(&id)? }).await.map(Json)
}

/// Lets a folder's held mass delete go ahead (a scan that would delete more than half of its
/// files waits for this).
#[utoipa::path(post, path = "/api/folders/{id}/confirm-deletes", params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = Edited), (status = 400, description = "no deletions held"), (status = 404)))]
pub(super) async fn confirm_deletes(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Answer<Json<Edited>> {
    edited(&state, Request::ConfirmDeletes { folder: folder_id(&id)? }).await
}

/// Undoes a receive-only folder's local changes: the other devices' version comes back, files
/// added here are removed (to the trash can if the folder keeps versions).
#[utoipa::path(post, path = "/api/folders/{id}/revert", params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = Edited), (status = 400, description = "not receive-only"), (status = 404)))]
pub(super) async fn revert(State(state): State<Shared>, Path(id): Path<String>) -> Answer<Json<Edited>> {
    edited(&state, Request::Revert { folder: folder_id(&id)? }).await
}

/// Applies one configuration change, as the CLI asks for it: the body is a tagged
/// `{"edit": "add-device" | "remove-device" | "add-folder" | "remove-folder" | "share" |
/// "unshare" | "pause-folder" | "pause-device" | "update-device" | "update-folder" |
/// "set-name" | "device-limits" | "set-limits" | "pause-all", ...}` (`set-name` names this device:
/// `{"edit": "set-name", "name": "laptop"}`; `set-limits` sets the global limits in KiB/s, 0 for
/// none, the schedule (`schedule`, the whole list) and the metered and battery pauses:
/// `{"edit": "set-limits", "max_recv_kibps": 10240, "limit_lan": false, "pause_on_metered": true}`;
/// `pause-all` pauses every device, `{"edit": "pause-all", "pause": {"until": UNIX_SECONDS}}` or
/// `"pause": "until-resumed"`, and resumes them with no `pause`).
/// The resource routes above make the same changes one at a time.
#[utoipa::path(post, path = "/api/config/edits", request_body = Edit,
    responses((status = 200, body = Edited), (status = 400, description = "refused; nothing changed")))]
pub(super) async fn edit_config(
    State(state): State<Shared>,
    change: Result<Json<Edit>, JsonRejection>,
) -> Answer<Json<Edited>> {
    edited(&state, Request::Edit { edit: body(change)? }).await
}

/// Devices that tried to connect without being configured, and folders configured devices
/// offered that are not shared with them here.
#[utoipa::path(get, path = "/api/pending", responses((status = 200, body = Pending)))]
pub(super) async fn pending(State(state): State<Shared>) -> Answer<Json<Pending>> {
    ask(&state, Request::Pending).await.map(Json)
}

/// Devices discovery heard of lately (LAN announcements, DHT lookups): `known` says whether
/// the device is configured; the others are candidates to add. `announced` is what this
/// device announces (empty with discovery off).
#[utoipa::path(get, path = "/api/discovery", responses((status = 200, body = Discovery)))]
pub(super) async fn discovery(State(state): State<Shared>) -> Answer<Json<Discovery>> {
    ask(&state, Request::Discovery).await.map(Json)
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
    responses((status = 201, body = Edited), (status = 400), (status = 404, description = "not pending")))]
pub(super) async fn accept_device(
    State(state): State<Shared>,
    Path(id): Path<String>,
    accept: Result<Json<AcceptDevice>, JsonRejection>,
) -> Answer<(StatusCode, Json<Edited>)> {
    let accept = body(accept)?;
    let request =
        Request::AcceptDevice { device: device_id(&id)?, name: accept.name, addresses: accept.addresses };
    Ok((StatusCode::CREATED, edited(&state, request).await?))
}

/// Forgets a pending device; it is listed again if it connects again.
#[utoipa::path(post, path = "/api/pending/devices/{id}/dismiss", params(("id" = String, Path, description = "device ID")),
    responses((status = 200, body = Edited), (status = 404, description = "not pending")))]
pub(super) async fn dismiss_device(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Answer<Json<Edited>> {
    edited(&state, Request::DismissDevice { device: device_id(&id)? }).await
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
    responses((status = 201, body = Edited), (status = 400), (status = 404, description = "no such offer")))]
pub(super) async fn accept_folder(
    State(state): State<Shared>,
    Path(folder): Path<String>,
    accept: Result<Json<AcceptFolder>, JsonRejection>,
) -> Answer<(StatusCode, Json<Edited>)> {
    let accept = body(accept)?;
    let request = Request::AcceptFolder {
        folder,
        device: device_id(&accept.device)?,
        path: accept.path,
        create: accept.create,
    };
    Ok((StatusCode::CREATED, edited(&state, request).await?))
}

#[derive(Deserialize)]
pub(super) struct DismissFolder {
    device: Option<String>,
}

/// Forgets a folder offer, from one device (`?device=ID`) or from all.
#[utoipa::path(post, path = "/api/pending/folders/{folder}/dismiss",
    params(("folder" = String, Path, description = "folder ID"), ("device" = Option<String>, Query, description = "only this device's offer")),
    responses((status = 200, body = Edited), (status = 404, description = "no such offer")))]
pub(super) async fn dismiss_folder(
    State(state): State<Shared>,
    Path(folder): Path<String>,
    Query(query): Query<DismissFolder>,
) -> Answer<Json<Edited>> {
    let folder = folder_id(&folder)?;
    let device = query.device.as_deref().map(device_id).transpose()?;
    edited(&state, Request::DismissFolder { folder, device }).await
}

#[derive(Deserialize)]
pub(super) struct LogQuery {
    #[serde(default)]
    since: u64,
}

/// The daemon's recent log lines (INFO and up, the newest 500), oldest first; with `?since=N`,
/// only those after line N.
#[utoipa::path(get, path = "/api/log",
    params(("since" = Option<u64>, Query, description = "the last line number already seen")),
    responses((status = 200, body = Vec<crate::recent_log::LogLine>)))]
pub(super) async fn log(
    State(state): State<Shared>,
    Query(query): Query<LogQuery>,
) -> Answer<Json<Vec<crate::recent_log::LogLine>>> {
    ask(&state, Request::Log { since: query.since }).await.map(Json)
}

/// Live events as server-sent events: each `data` is one engine event as JSON (the `Event`
/// schema; its `type` says which), also given as the SSE event name. A client too slow to keep up gets a
/// `lagged` event with how many it missed.
#[utoipa::path(get, path = "/api/events", responses((status = 200, content_type = "text/event-stream", body = String)))]
pub(super) async fn events(
    State(state): State<Shared>,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let receiver = state.service.engine().subscribe();
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

/// Answers one typed request, as the CLI sends it on the control socket: the body is a
/// `Request` (`{"command": "status"}`, `{"command": "needed", "folder": "photos"}`, …) and the
/// answer its `Response` (`{"type": "status", "body": {...}}`). A refusal is
/// `{"kind": "not-found", "error": "one sentence"}` with the kind's status code. Every REST route
/// above is one of these requests.
#[utoipa::path(post, path = "/api/call", request_body = Request,
    responses((status = 200, body = Response),
        (status = 400, body = ServiceError), (status = 404, body = ServiceError),
        (status = 409, body = ServiceError), (status = 500, body = ServiceError)))]
pub(super) async fn call(
    State(state): State<Shared>,
    request: Result<Json<Request>, JsonRejection>,
) -> Answer<Json<Response>> {
    use crate::service::Service as _;
    let request = body(request)?;
    Ok(Json(state.service.handle(request).await?))
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}
