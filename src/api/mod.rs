//! The control API: JSON over HTTP under `/api/`, for the web UI and scripts.
//!
//! It owns the HTTP edge only — routing, who may call (`auth.rs`), turning paths, queries and
//! bodies into a typed [`crate::service::Request`] and the answer into JSON, and the OpenAPI
//! document (`/api/openapi.json`), which is built from the handlers themselves (utoipa-axum) so
//! routes and document cannot drift apart. Every route is one call of the running service
//! ([`crate::service::Running`]); `POST /api/call` takes the `Request` itself, which is how the
//! CLI talks to the daemon on the control socket, where `peerfold serve` serves this API too
//! (trusted: the socket's permissions are the authentication). No SQL, no `db` types, no file or
//! configuration writes of its own; the engine is used directly only for its event stream and
//! the GUI settings sign-in checks.

mod auth;
mod error;
mod folder_details;
mod handlers;
pub mod https;
#[cfg(test)]
mod openapi_tests;
mod session;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;
pub use session::{COOKIE as SESSION_COOKIE, hash_password};

use crate::config::Gui;
use crate::engine::Engine;
use crate::identity::DeviceId;
use crate::service::Running;

/// The header that carries the API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// What every handler shares.
pub(crate) struct State {
    service: Running,
    api_key: String,
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
    /// A trusted API's state, as on the control socket: no API key, any `Host`, no cookies to
    /// secure. [`Api::serve`] starts from it and sets what the network needs.
    fn local(engine: Arc<Engine>, me: DeviceId, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            service: Running::new(engine, me),
            api_key: String::new(),
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

/// Serves the API on the control socket (see [`crate::control`]) until `shutdown` turns true:
/// every route, trusted, so scripts on the machine can use the socket as they use the GUI
/// address, and the CLI's `POST /api/call` among them.
#[cfg(unix)]
pub async fn serve_local(
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

/// How `peerfold serve` runs the API beside the engine ([`crate::daemon::Daemon::start_with`]).
impl crate::daemon::HttpFrontEnd for Api {
    type Error = ApiError;

    async fn bind(address: &str, gui: &Gui, home: &std::path::Path) -> Result<Self, ApiError> {
        Api::bind(address, gui, home).await
    }

    fn local_addr(&self) -> SocketAddr {
        Api::local_addr(self)
    }

    fn url(&self) -> String {
        Api::url(self)
    }

    async fn serve(
        self,
        engine: Arc<Engine>,
        me: DeviceId,
        api_key: String,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), ApiError> {
        Api::serve(self, engine, me, api_key, shutdown).await
    }

    /// The whole API on the control socket, not only the engine's typed route.
    #[cfg(unix)]
    async fn serve_control(
        listener: tokio::net::UnixListener,
        engine: Arc<Engine>,
        me: DeviceId,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        serve_local(listener, engine, me, shutdown).await
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

/// The OpenAPI document `/api/openapi.json` serves, without a daemon: what the web UI's types
/// are generated from (`npm run gen:api`, which runs `cargo run --example openapi`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes_and_document().1
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
        .routes(routes!(folder_details::browse))
        .routes(routes!(folder_details::select))
        .routes(routes!(folder_details::deselect))
        .routes(routes!(handlers::pending))
        .routes(routes!(handlers::discovery))
        .routes(routes!(handlers::accept_device))
        .routes(routes!(handlers::dismiss_device))
        .routes(routes!(handlers::accept_folder))
        .routes(routes!(handlers::dismiss_folder))
        .routes(routes!(handlers::events))
        .routes(routes!(handlers::log))
        .routes(routes!(handlers::call))
        .split_for_parts();
    // OpenAPI 3.1 cannot attach a schema to the items of /api/events' text/event-stream, so
    // the events' schema is listed on its own, for clients (the UI's generated types).
    {
        use crate::engine::Event;
        use utoipa::{PartialSchema as _, ToSchema as _};
        let mut schemas = vec![(Event::name().into_owned(), Event::schema())];
        Event::schemas(&mut schemas);
        doc.components.get_or_insert_with(Default::default).schemas.extend(schemas);
    }
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
