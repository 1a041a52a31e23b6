//! The web UI's files: the Vite build in `ui/dist`, embedded in the binary (rust-embed) so a
//! release binary serves its UI with nothing beside it. Debug builds read the same directory
//! from disk, so a rebuilt UI shows without recompiling.
//!
//! Any path outside `/api/` that is not a file is the single-page app's own route and gets
//! `index.html`. When the UI was never built (a fresh clone), every page says how to build it,
//! and the build of the binary still succeeds: `cargo build` never needs node.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::ApiError;

#[derive(rust_embed::Embed)]
#[folder = "ui/dist"]
#[allow_missing = true]
struct Assets;

/// What `/` says when `ui/dist` was empty or missing at build time.
const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Peerfold</title></head><body style=\"font-family: sans-serif; margin: 3em\">\
<h1>Peerfold</h1><p>The web UI was not built into this binary. Build it with \
<code>npm install &amp;&amp; npm run build</code> in the source tree, then build and start \
Peerfold again.</p><p>The control API still answers under <code>/api/</code>.</p>\
</body></html>";

/// Headers every UI response carries: no framing by other sites (clickjacking), no content
/// sniffing, and scripts, styles and images from this server only.
const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
];

/// Answers every request no API route took.
pub(super) async fn serve(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return ApiError::NoRoute(format!("{method} {path}")).into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, "The web UI's files can only be read.").into_response();
    }
    let name = path.trim_start_matches('/');
    let name = if name.is_empty() { "index.html" } else { name };
    let mut response = match Assets::get(name) {
        Some(file) => file_response(name, file),
        // A missing file (a name with an extension) is a 404; anything else is the app's route.
        None if path.rsplit('/').next().is_some_and(|last| last.contains('.')) => {
            (StatusCode::NOT_FOUND, format!("There is no file {path} in the web UI.")).into_response()
        }
        None => match Assets::get("index.html") {
            Some(index) => file_response("index.html", index),
            None => ([(CONTENT_TYPE, "text/html; charset=utf-8")], NOT_BUILT).into_response(),
        },
    };
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    response
}

fn file_response(name: &str, file: rust_embed::EmbeddedFile) -> Response {
    let mime = file.metadata.mimetype();
    let mime = if mime.starts_with("text/") || mime == "application/javascript" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    };
    // Vite names built assets by their content hash: they never change under one name.
    let cache = if name.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    ([(CONTENT_TYPE, mime), (CACHE_CONTROL, cache.to_owned())], file.data).into_response()
}
