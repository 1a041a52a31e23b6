//! The control API: JSON over HTTP under `/api/`, for the web UI and scripts.
//!
//! It owns the HTTP edge only — routing, who may call (`auth.rs`), turning requests into engine
//! calls and answers into JSON, and the OpenAPI document (`/api/openapi.json`), which is built
//! from the handlers themselves (utoipa-axum) so routes and document cannot drift apart.
//! It reaches the engine only through the [`Engine`] handle and reuses its logic: every change
//! is an [`crate::config::Edit`] through [`Engine::edit_config`] (validation stays in
//! `config`), status is [`crate::status::status`], pending devices and folder offers are the
//! index's methods, and a folder's details (`folder_details.rs`: ignores, conflicts, versions,
//! needed and failed items) are engine calls. No SQL, no file or configuration writes of its
//! own.

mod auth;
mod error;
mod folder_details;
mod handlers;
pub mod https;
mod session;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;
pub use session::{COOKIE as SESSION_COOKIE, hash_password};

use crate::config::Gui;
use crate::engine::Engine;
use crate::identity::DeviceId;

/// The header that carries the API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// What every handler shares.
pub(crate) struct State {
    engine: Arc<Engine>,
    me: DeviceId,
    api_key: String,
    started: Instant,
    /// The `Host` values (lower case, with port) requests may carry; `None` accepts any, which
    /// is only so when listening beyond loopback, where a password is required.
    hosts: Option<Vec<String>>,
    /// Turns true when the daemon stops: open event streams end, so the server can.
    shutdown: watch::Receiver<bool>,
    /// Served on the owner-only control socket: the socket's permissions are the
    /// authentication, and there is no browser to guard against.
    local: bool,
    /// Signed-in browsers.
    sessions: session::Sessions,
    /// Whether session cookies are marked `Secure`: when the GUI is served over HTTPS.
    secure_cookies: bool,
}

impl State {
    /// A trusted API's state, as on the control socket and in-process: no API key, any `Host`,
    /// no cookies to secure. [`Api::serve`] starts from it and sets what the network needs.
    fn local(engine: Arc<Engine>, me: DeviceId, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            engine,
            me,
            api_key: String::new(),
            started: Instant::now(),
            hosts: None,
            shutdown,
            local: true,
            sessions: session::Sessions::default(),
            secure_cookies: false,
        }
    }
}

type Shared = Arc<State>;

/// A bound, not yet serving, API listener.
pub struct Api {
    listener: TcpListener,
    addr: SocketAddr,
    /// Set when `[gui] tls` is on.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Api {
    /// Binds `address` (`HOST:PORT`; port 0 picks one). Listening beyond loopback is refused
    /// unless `gui` has a password: the API would otherwise be open to the network with the
    /// key as its only guard. With `[gui] tls`, the HTTPS certificate comes from (or is
    /// generated in) `home`.
    pub async fn bind(address: &str, gui: &Gui, home: &std::path::Path) -> Result<Self, ApiError> {
        let bind_error = |source| ApiError::Bind { address: address.to_owned(), source };
        let exposed = |ip: std::net::IpAddr| !ip.is_loopback() && gui.password_hash.is_none();
        // Checked before binding too, so an IP address is refused without ever listening on it.
        if address.parse::<SocketAddr>().is_ok_and(|a| exposed(a.ip())) {
            return Err(ApiError::NeedsPassword(address.to_owned()));
        }
        let listener = TcpListener::bind(address).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        if exposed(addr.ip()) {
            return Err(ApiError::NeedsPassword(address.to_owned()));
        }
        let tls = if gui.tls { Some(https::server_config(home)?) } else { None };
        Ok(Self { listener, addr, tls })
    }

    /// The URL of the web UI: `http://` or `https://` and the bound address.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/", self.addr)
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the API until `shutdown` turns true, then lets open requests finish.
    pub async fn serve(
        self,
        engine: Arc<Engine>,
        me: DeviceId,
        api_key: String,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ApiError> {
        let state = Arc::new(State {
            api_key,
            hosts: allowed_hosts(self.addr),
            local: false,
            secure_cookies: self.tls.is_some(),
            ..State::local(engine, me, shutdown.clone())
        });
        let app = router(state);
        let stopped = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        let served = match self.tls {
            None => axum::serve(self.listener, app).with_graceful_shutdown(stopped).await,
            Some(config) => {
                let listener = https::TlsListener::new(self.listener, config)
                    .map_err(|source| ApiError::Bind { address: self.addr.to_string(), source })?;
                axum::serve(listener, app).with_graceful_shutdown(stopped).await
            }
        };
        served.map_err(|source| ApiError::Bind { address: self.addr.to_string(), source })
    }
}

/// Serves the API on the control socket (see [`crate::control`]) until `shutdown` turns true.
#[cfg(unix)]
pub(crate) async fn serve_local(
    listener: tokio::net::UnixListener,
    engine: Arc<Engine>,
    me: DeviceId,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let state = Arc::new(State::local(engine, me, shutdown.clone()));
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}

/// The control API called in-process: the same routes and answers as on the control socket
/// (trusted, no API key), without a socket or port. The desktop app forwards its UI's calls
/// here, so the UI needs no TCP port and no per-screen code.
pub struct InProcess {
    router: Router,
    /// Dropping it ends open event streams (the app forwards events itself).
    _shutdown: watch::Sender<bool>,
}

/// An in-process call's answer: the HTTP status and the body — JSON as it is, anything else
/// (the QR code's SVG) as a JSON string.
#[derive(Debug, serde::Serialize)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
}

impl InProcess {
    pub fn new(engine: Arc<Engine>, me: DeviceId) -> Self {
        let (shutdown, stopped) = watch::channel(false);
        let state = Arc::new(State::local(engine, me, stopped));
        Self { router: router(state), _shutdown: shutdown }
    }

    /// Calls `method` `path` (with its query, e.g. `/api/log?since=3`) with a JSON `body`.
    /// A bad method or path, or a body that cannot be read, is an answer (400 or 404), as over
    /// HTTP; only an answer that never completes is an error.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, ApiError> {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let method = match axum::http::Method::from_bytes(method.as_bytes()) {
            Ok(m) => m,
            Err(_) => return Ok(error_reply(400, format!("{method:?} is not an HTTP method"))),
        };
        if !path.starts_with("/api/") {
            return Ok(error_reply(404, format!("there is no {path} in the API: paths start with /api/")));
        }
        // A stream that never ends would never answer; in-process callers subscribe to the
        // engine's events instead.
        if path.split('?').next() == Some("/api/events") {
            return Ok(error_reply(
                404,
                "events are not served in-process: subscribe to the engine's events instead".to_owned(),
            ));
        }
        let mut request = axum::http::Request::builder().method(method).uri(path);
        let body = match body {
            Some(b) => {
                request = request.header(axum::http::header::CONTENT_TYPE, "application/json");
                axum::body::Body::from(b.to_string())
            }
            None => axum::body::Body::empty(),
        };
        let request = match request.body(body) {
            Ok(r) => r,
            Err(e) => return Ok(error_reply(400, format!("the request to {path} is not valid: {e}"))),
        };
        let response = match self.router.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let json = response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let bytes =
            response.into_body().collect().await.map_err(|e| ApiError::InProcess(e.to_string()))?.to_bytes();
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else if json {
            serde_json::from_slice(&bytes).map_err(|e| ApiError::InProcess(e.to_string()))?
        } else {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        Ok(Reply { status, body })
    }
}

fn error_reply(status: u16, message: String) -> Reply {
    Reply { status, body: serde_json::json!({ "error": message }) }
}

/// On loopback, the names a browser on this machine uses for it: any other `Host` is a DNS
/// rebinding attempt (a site whose name now resolves to 127.0.0.1).
fn allowed_hosts(addr: SocketAddr) -> Option<Vec<String>> {
    let port = addr.port();
    addr.ip()
        .is_loopback()
        .then(|| vec![format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")])
}

/// The routes and the OpenAPI document they make, before state and authentication.
fn routes_and_document() -> (Router<Shared>, utoipa::openapi::OpenApi) {
    use utoipa_axum::routes;
    let (router, mut doc) = OpenApiRouter::new()
        .routes(routes!(auth::session_info, auth::sign_in, auth::sign_out))
        .routes(routes!(handlers::system))
        .routes(routes!(handlers::qr_svg))
        .routes(routes!(handlers::status))
        .routes(routes!(handlers::list_devices, handlers::add_device))
        .routes(routes!(handlers::edit_device, handlers::remove_device))
        .routes(routes!(handlers::list_folders, handlers::add_folder))
        .routes(routes!(handlers::edit_folder, handlers::remove_folder))
        .routes(routes!(handlers::scan_folder))
        .routes(routes!(handlers::confirm_deletes))
        .routes(routes!(handlers::revert))
        .routes(routes!(handlers::edit_config))
        .routes(routes!(folder_details::get_ignores, folder_details::put_ignores))
        .routes(routes!(folder_details::conflicts))
        .routes(routes!(folder_details::all_conflicts))
        .routes(routes!(folder_details::resolve_conflict))
        .routes(routes!(folder_details::versions))
        .routes(routes!(folder_details::restore_version))
        .routes(routes!(folder_details::needed))
        .routes(routes!(folder_details::errors))
        .routes(routes!(handlers::pending))
        .routes(routes!(handlers::discovery))
        .routes(routes!(handlers::accept_device))
        .routes(routes!(handlers::dismiss_device))
        .routes(routes!(handlers::accept_folder))
        .routes(routes!(handlers::dismiss_folder))
        .routes(routes!(handlers::events))
        .routes(routes!(handlers::log))
        .split_for_parts();
    doc.info = utoipa::openapi::Info::new("Peerfold control API", env!("CARGO_PKG_VERSION"));
    doc.info.description = Some(
        "Every call but /api/session needs the `X-API-Key` header (the `api_key` of `[gui]` in \
         config.toml) or the `peerfold_session` cookie that signing in with POST /api/session \
         sets. Errors are {\"error\": \"one sentence\"}. This document is at /api/openapi.json."
            .to_owned(),
    );
    (router, doc)
}

fn router(state: Shared) -> Router {
    let (routes, doc) = routes_and_document();
    let doc = Arc::new(doc);
    routes
        .route(
            "/api/openapi.json",
            axum::routing::get(move || async move { axum::Json(doc.as_ref().clone()) }),
        )
        // Everything outside /api/ is the web UI.
        .fallback(ui::serve)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), auth::guard))
        .with_state(state)
}
