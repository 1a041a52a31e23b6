//! The control API: JSON over HTTP under `/api/`, for the web UI and scripts.
//!
//! It owns the HTTP edge only — routing, who may call (`auth.rs`), turning requests into engine
//! calls and answers into JSON, and the OpenAPI document (`/api/openapi.json`), which is built
//! from the handlers themselves (utoipa-axum) so routes and document cannot drift apart.
//! It reaches the engine only through the [`Engine`] handle and reuses its logic: every change
//! is an [`crate::config::Edit`] through [`Engine::edit_config`] (validation stays in
//! `config`), status is [`crate::status::status`], pending devices and folder offers are the
//! index's methods. No SQL and no configuration writes of its own.

mod auth;
mod error;
mod handlers;
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
    /// Signed-in browsers.
    sessions: session::Sessions,
    /// Whether session cookies are marked `Secure` (only when the GUI is served over HTTPS,
    /// which it is not yet).
    secure_cookies: bool,
}

type Shared = Arc<State>;

/// A bound, not yet serving, API listener.
pub struct Api {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Api {
    /// Binds `address` (`HOST:PORT`; port 0 picks one). Listening beyond loopback is refused
    /// unless `gui` has a password: the API would otherwise be open to the network with the
    /// key as its only guard.
    pub async fn bind(address: &str, gui: &Gui) -> Result<Self, ApiError> {
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
        Ok(Self { listener, addr })
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
            engine,
            me,
            api_key,
            started: Instant::now(),
            hosts: allowed_hosts(self.addr),
            shutdown: shutdown.clone(),
            sessions: session::Sessions::default(),
            secure_cookies: false,
        });
        let app = router(state);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await
            .map_err(|source| ApiError::Bind { address: self.addr.to_string(), source })
    }
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
        .routes(routes!(handlers::pending))
        .routes(routes!(handlers::accept_device))
        .routes(routes!(handlers::dismiss_device))
        .routes(routes!(handlers::accept_folder))
        .routes(routes!(handlers::dismiss_folder))
        .routes(routes!(handlers::events))
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
