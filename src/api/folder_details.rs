//! The routes of a folder's details: ignore patterns, conflict copies, old versions, needed and
//! failed items, and selective sync (browsing the global tree, selecting, deselecting). Each is one service [`Request`]; the service checks the folder exists (404) and
//! the engine owns the file operations and their checks (a bad pattern or path is a 400 naming
//! it).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use utoipa::ToSchema;

use super::handlers::{ask, body, edited, folder_in_path};
use super::{ApiError, Shared};
use crate::engine::FailedItem;
use crate::folder_files::{ConflictView, Keep, VersionedFile};
use crate::service::{BrowsePage, Edited, FolderConflict, IgnoreLines, NeededItem, Request};

type Answer<T> = Result<T, ApiError>;

/// The folder's ignore patterns (the lines of its `.stignore`).
#[utoipa::path(get, path = "/api/folders/{id}/ignores", params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = IgnoreLines), (status = 404)))]
pub(super) async fn get_ignores(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Answer<Json<IgnoreLines>> {
    ask(&state, Request::Ignores { folder: folder_in_path(&id)? }).await.map(Json)
}

/// Replaces the folder's ignore patterns and rescans it. Every line is checked first: an
/// invalid one is a 400 naming the line, and nothing is written.
#[utoipa::path(put, path = "/api/folders/{id}/ignores", request_body = IgnoreLines,
    params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = IgnoreLines), (status = 400, description = "an invalid pattern"), (status = 404)))]
pub(super) async fn put_ignores(
    State(state): State<Shared>,
    Path(id): Path<String>,
    lines: Result<Json<IgnoreLines>, JsonRejection>,
) -> Answer<Json<IgnoreLines>> {
    let folder = folder_in_path(&id)?;
    let lines = body(lines)?.lines;
    ask(&state, Request::SetIgnores { folder, lines }).await.map(Json)
}

/// The folder's conflict copies, each with the file it belongs to, both versions' size and
/// modification time, and the device whose version won.
#[utoipa::path(get, path = "/api/folders/{id}/conflicts", params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = Vec<ConflictView>), (status = 404)))]
pub(super) async fn conflicts(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Answer<Json<Vec<ConflictView>>> {
    let all: Vec<FolderConflict> =
        ask(&state, Request::Conflicts { folder: Some(folder_in_path(&id)?) }).await?;
    Ok(Json(all.into_iter().map(|c| c.conflict).collect()))
}

#[derive(Deserialize)]
pub(super) struct ConflictsQuery {
    folder: Option<String>,
}

/// The conflict copies of every folder (or of `?folder=ID`), each with its folder.
#[utoipa::path(get, path = "/api/conflicts",
    params(("folder" = Option<String>, Query, description = "only this folder's")),
    responses((status = 200, body = Vec<FolderConflict>), (status = 404)))]
pub(super) async fn all_conflicts(
    State(state): State<Shared>,
    Query(query): Query<ConflictsQuery>,
) -> Answer<Json<Vec<FolderConflict>>> {
    let folder = query.folder.as_deref().map(folder_in_path).transpose()?;
    ask(&state, Request::Conflicts { folder }).await.map(Json)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Resolve {
    /// The conflict copy's path in the folder.
    conflict: String,
    /// `current`: the copy goes away; `copy`: the copy's content replaces the file (the
    /// replaced content goes to the trash can when the folder keeps versions).
    keep: Keep,
}

/// Resolves a conflict: keeps the current file or the conflict copy, then rescans so peers
/// get the result.
#[utoipa::path(post, path = "/api/folders/{id}/conflicts/resolve", request_body = Resolve,
    params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = Edited),
        (status = 400, description = "not a conflict copy, or a path that leaves the folder"),
        (status = 404, description = "no such folder or file")))]
pub(super) async fn resolve_conflict(
    State(state): State<Shared>,
    Path(id): Path<String>,
    resolve: Result<Json<Resolve>, JsonRejection>,
) -> Answer<Json<Edited>> {
    let folder = folder_in_path(&id)?;
    let Resolve { conflict, keep } = body(resolve)?;
    edited(&state, Request::ResolveConflict { folder, conflict, keep }).await
}

/// The old versions the folder's trash can (`.stversions`) keeps, per file, newest first.
#[utoipa::path(get, path = "/api/folders/{id}/versions", params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = Vec<VersionedFile>), (status = 404)))]
pub(super) async fn versions(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Answer<Json<Vec<VersionedFile>>> {
    ask(&state, Request::Versions { folder: folder_in_path(&id)? }).await.map(Json)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Restore {
    /// The file's path in the folder.
    path: String,
    /// `YYYYMMDD-HHMMSS`, as the versions list gives it.
    version: String,
}

/// Puts an old version back in place (the current file, if any, is kept as a version first)
/// and rescans it, so peers get it.
#[utoipa::path(post, path = "/api/folders/{id}/versions/restore", request_body = Restore,
    params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = Edited),
        (status = 400, description = "a path that leaves the folder, or a malformed version"),
        (status = 404, description = "no such folder or version")))]
pub(super) async fn restore_version(
    State(state): State<Shared>,
    Path(id): Path<String>,
    restore: Result<Json<Restore>, JsonRejection>,
) -> Answer<Json<Edited>> {
    let folder = folder_in_path(&id)?;
    let Restore { path, version } = body(restore)?;
    edited(&state, Request::Restore { folder, path, version }).await
}

/// What the folder still needs (out of sync here), the first 500 in name order.
#[utoipa::path(get, path = "/api/folders/{id}/needed", params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = Vec<NeededItem>), (status = 404)))]
pub(super) async fn needed(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Answer<Json<Vec<NeededItem>>> {
    ask(&state, Request::Needed { folder: folder_in_path(&id)? }).await.map(Json)
}

/// What the folder's last pull could not apply, with the reason and when it first failed.
#[utoipa::path(get, path = "/api/folders/{id}/errors", params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = Vec<FailedItem>), (status = 404)))]
pub(super) async fn errors(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Answer<Json<Vec<FailedItem>>> {
    ask(&state, Request::FailedItems { folder: folder_in_path(&id)? }).await.map(Json)
}

#[derive(Deserialize)]
pub(super) struct BrowseQuery {
    prefix: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// The children of directory `prefix` (the root if left out) in the folder's global tree, from
/// every device's index and not only this disk: a page of at most `limit` (default 200, at
/// most 1000) in name order after the child named `after`; `next` names where the next page
/// starts.
#[utoipa::path(get, path = "/api/folders/{id}/browse",
    params(("id" = String, Path, description = "folder ID"),
        ("prefix" = Option<String>, Query, description = "the directory (its path in the folder)"),
        ("after" = Option<String>, Query, description = "the name the page starts after"),
        ("limit" = Option<u32>, Query, description = "children at most (default 200, at most 1000)")),
    responses((status = 200, body = BrowsePage), (status = 400), (status = 404)))]
pub(super) async fn browse(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<BrowseQuery>,
) -> Answer<Json<BrowsePage>> {
    let folder = folder_in_path(&id)?;
    let BrowseQuery { prefix, after, limit } = query;
    ask(&state, Request::Browse { folder, dir: prefix.unwrap_or_default(), after, limit }).await.map(Json)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Choose {
    /// Paths in the folder.
    paths: Vec<String>,
    /// Deselecting: move the local copy to the trash can (`.stversions`) instead of keeping it.
    #[serde(default)]
    delete_local: bool,
}

/// Selective sync: syncs `paths` here again (their lines leave the marked block of `.stignore`).
#[utoipa::path(post, path = "/api/folders/{id}/select", request_body = Choose,
    params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = Edited), (status = 400, description = "a path that is not in the folder"),
        (status = 404)))]
pub(super) async fn select(
    State(state): State<Shared>,
    Path(id): Path<String>,
    choose: Result<Json<Choose>, JsonRejection>,
) -> Answer<Json<Edited>> {
    let folder = folder_in_path(&id)?;
    let Choose { paths, .. } = body(choose)?;
    edited(&state, Request::Select { folder, paths }).await
}

/// Selective sync: stops syncing `paths` here (Syncthing-compatible lines in a marked block of
/// `.stignore`). A local copy is kept, and the answer says so, unless `delete_local`.
#[utoipa::path(post, path = "/api/folders/{id}/deselect", request_body = Choose,
    params(("id" = String, Path, description = "folder ID")),
    responses((status = 200, body = Edited), (status = 400, description = "a path that is not in the folder"),
        (status = 404)))]
pub(super) async fn deselect(
    State(state): State<Shared>,
    Path(id): Path<String>,
    choose: Result<Json<Choose>, JsonRejection>,
) -> Answer<Json<Edited>> {
    let folder = folder_in_path(&id)?;
    let Choose { paths, delete_local } = body(choose)?;
    edited(&state, Request::Deselect { folder, paths, delete_local }).await
}
