//! One running Peerfold home: the start-up and shutdown that `peerfold serve` and the desktop
//! app share.
//!
//! It owns the order things start in — the home lock, the identity, `config.toml` (written with
//! defaults on first start), the HTTP front-end if asked for (bound first, so a taken port or
//! a missing password stops start-up with one sentence), the index, the network listeners, the
//! [`Engine`] and the control socket (`crate::control`), so the CLI's commands reach whichever
//! front-end runs the home — and the reverse order they stop in.
//!
//! The HTTP front-end (the control API and web UI) is not this crate's: `peerfold serve` passes
//! its own as an [`HttpFrontEnd`] ([`Daemon::start_with`]), which also serves the control
//! socket; the desktop app, which has no HTTP front-end, calls [`Daemon::start`], and its
//! control socket answers the engine's typed route alone.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError, Gui};
use crate::control::{self, ControlError};
use crate::db::{DbError, Index};
use crate::engine::{Engine, error_chain};
use crate::home::{Home, HomeError};
use crate::identity::{DeviceId, Identity, IdentityError};
use crate::net::{Address, Net, NetError, TlsIdentity};

/// The tracing target engine events are logged under (at INFO), so a log filter can leave them
/// out where they arrive on a stream of their own (the web UI's log).
pub const EVENTS_TARGET: &str = "peerfold::events";

/// Why a home could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP front-end could not start: its own error, said as one sentence with its causes
    /// (a boxed error is not itself an `Error` to point to as the source).
    #[error("{}", error_chain(.0.as_ref()))]
    Api(BoxError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("cannot write {}", path.display())]
    GuiAddressFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Any front-end's error, as the daemon passes it on.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An HTTP front-end the daemon runs beside the engine: bound while the home starts (so a taken
/// port stops start-up before anything runs), served once the engine runs, and stopped with it.
/// `peerfold`'s control API implements it; the engine crate knows nothing of HTTP routes.
pub trait HttpFrontEnd: Send + Sized + 'static {
    /// Why it could not bind or serve.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Binds `address` (`HOST:PORT`) under the `[gui]` settings, with `home` for its files.
    fn bind(address: &str, gui: &Gui, home: &Path) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    /// The address it listens on (the bound port when 0 was asked for).
    fn local_addr(&self) -> std::net::SocketAddr;

    /// Its URL, for people.
    fn url(&self) -> String;

    /// Serves `engine` until `shutdown` turns true, then lets open requests finish.
    fn serve(
        self,
        engine: Arc<Engine>,
        me: DeviceId,
        api_key: String,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Serves the control socket (`listener`, bound and owner-only) until `shutdown` turns
    /// true. By default the engine's typed route alone ([`crate::control::serve_typed`]); a
    /// front-end may serve more there (`peerfold serve` serves its whole API, trusted).
    #[cfg(unix)]
    fn serve_control(
        listener: tokio::net::UnixListener,
        engine: Arc<Engine>,
        me: DeviceId,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = std::io::Result<()>> + Send {
        crate::control::serve_typed(listener, engine, me, shutdown)
    }
}

/// The front-end of a program that has none (the desktop app): asking it to listen over HTTP
/// is an error that says so.
pub enum NoHttp {}

/// Why [`NoHttp`] cannot listen.
#[derive(Debug, thiserror::Error)]
#[error("this program serves no HTTP API; run `peerfold serve` for one")]
pub struct NoHttpError;

impl HttpFrontEnd for NoHttp {
    type Error = NoHttpError;

    async fn bind(_address: &str, _gui: &Gui, _home: &Path) -> Result<Self, NoHttpError> {
        Err(NoHttpError)
    }

    fn local_addr(&self) -> std::net::SocketAddr {
        match *self {}
    }

    fn url(&self) -> String {
        match *self {}
    }

    async fn serve(
        self,
        _engine: Arc<Engine>,
        _me: DeviceId,
        _api_key: String,
        _shutdown: watch::Receiver<bool>,
    ) -> Result<(), NoHttpError> {
        match self {}
    }
}

/// Whether and where the control API listens over HTTP (the control socket is always served).
#[derive(Clone, Debug)]
pub enum GuiListen {
    /// Not at all: the desktop app, whose UI reaches the engine's service in-process.
    Off,
    /// At `[gui] address` from `config.toml`.
    Configured,
    /// At this `HOST:PORT` (port 0 picks one).
    At(String),
}

/// How to start.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where to listen for devices.
    pub listen: Vec<Address>,
    pub gui: GuiListen,
    /// Announce this device and look for others (LAN, DHT, port mapping); off keeps everything
    /// on the configured addresses (tests). `[options] discovery = false` turns it off too.
    pub discovery: bool,
}

/// A started home: its engine runs until [`Daemon::shutdown`].
pub struct Daemon {
    home: Home,
    me: DeviceId,
    engine: Arc<Engine>,
    listening: Vec<Address>,
    /// The reservations on `[options] relays`, kept for as long as the daemon runs.
    relays: Vec<crate::net::relay::RelayClient>,
    api_url: Option<String>,
    discovery: bool,
    stop: watch::Sender<bool>,
    control: JoinHandle<Result<(), ControlError>>,
    api: Option<JoinHandle<Result<(), BoxError>>>,
}

impl Daemon {
    /// Opens the home at `home_dir` (taking its lock: [`HomeError::Locked`] says another
    /// process runs it) and starts everything but an HTTP front-end: `options.gui` must be
    /// [`GuiListen::Off`].
    pub async fn start(home_dir: &Path, options: Options) -> Result<Self, DaemonError> {
        Self::start_with::<NoHttp>(home_dir, options).await
    }

    /// [`Daemon::start`], with `F` listening over HTTP where `options.gui` says.
    pub async fn start_with<F: HttpFrontEnd>(home_dir: &Path, options: Options) -> Result<Self, DaemonError> {
        let home = Home::open(home_dir)?;
        // Bound here, before anything runs: a command sent once `start` returns finds it.
        let bound = control::bind(home.dir())?;
        let identity = Identity::load_or_generate(home.dir())?;
        let mut config = load_config(&home)?;
        let me = identity.device_id();
        let api = match &options.gui {
            GuiListen::Off => None,
            gui => {
                // The key is made once and kept in config.toml, where scripts and the user read it.
                if config.gui.ensure_api_key() {
                    config.save(&home.config_path())?;
                }
                let address = match gui {
                    GuiListen::At(address) => address.clone(),
                    _ => config.gui.address.clone(),
                };
                Some(
                    F::bind(&address, &config.gui, home.dir())
                        .await
                        .map_err(|e| DaemonError::Api(Box::new(e)))?,
                )
            }
        };
        let api_url = api.as_ref().map(F::url);
        // Where `peerfold gui url` finds the running API (the configured address may say port 0).
        if let Some(api) = &api {
            let file = home.dir().join(crate::home::GUI_ADDRESS_FILE);
            std::fs::write(&file, api.local_addr().to_string())
                .map_err(|source| DaemonError::GuiAddressFile { path: file, source })?;
        }
        let index = Index::open(&home.index_path()).await?;
        let net = Net::bind(TlsIdentity::new(&identity)?, &options.listen).await?;
        let listening = net.local_addresses();
        let invites = net.take_invites();
        // Config validation has checked every relay URL; a bad one here is only skipped.
        let relays = config
            .options
            .relays
            .iter()
            .filter_map(|r| r.parse().ok())
            .map(|url| net.join_relay(url))
            .collect();
        let mut engine =
            Engine::start_networked(&config, index, me, net).with_config_file(home.config_path());
        // Either switch turns it off: tests pass --no-discovery whatever the file says.
        let discovery = options.discovery && config.options.discovery;
        if discovery {
            engine.start_discovery(crate::discovery::Settings::new(me, &config.options), listening.clone());
        }
        let engine = Arc::new(engine);
        engine.accept_peer_edits();
        let mut events = engine.subscribe();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(event) => tracing::info!(target: EVENTS_TARGET, ?event, "event"),
                    Err(RecvError::Lagged(n)) => tracing::debug!(n, "missed events"),
                    Err(RecvError::Closed) => break,
                }
            }
        });
        let (stop, stopped) = watch::channel(false);
        if let Some(invites) = invites {
            tokio::spawn(crate::invite::serve(Arc::clone(&engine), me, invites, stopped.clone()));
        }
        let api = api.map(|api| {
            let (engine, key, stopped) = (Arc::clone(&engine), config.gui.api_key.clone(), stopped.clone());
            tokio::spawn(async move {
                api.serve(engine, me, key, stopped).await.map_err(|e| Box::new(e) as BoxError)
            })
        });
        #[cfg(unix)]
        let control = {
            let engine = Arc::clone(&engine);
            tokio::spawn(control::serve(bound, move |listener| {
                F::serve_control(listener, engine, me, stopped)
            }))
        };
        #[cfg(windows)]
        let control = tokio::spawn(control::serve_pipe(bound, Arc::clone(&engine), me, stopped));
        #[cfg(not(any(unix, windows)))]
        let control = tokio::spawn(control::serve(bound, stopped));
        Ok(Self { home, me, engine, listening, relays, api_url, discovery, stop, control, api })
    }

    /// The engine, for front-ends running in this process.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn me(&self) -> DeviceId {
        self.me
    }

    pub fn home_dir(&self) -> &Path {
        self.home.dir()
    }

    /// Where it listens for devices (the bound ports when 0 was asked for).
    pub fn listening(&self) -> &[Address] {
        &self.listening
    }

    /// Whether discovery runs.
    pub fn discovery(&self) -> bool {
        self.discovery
    }

    /// The control API's URL, when it listens over HTTP.
    pub fn api_url(&self) -> Option<&str> {
        self.api_url.as_deref()
    }

    /// Stops the control socket and API (open requests finish, event streams end), then the
    /// engine. Every other holder of [`Daemon::engine`] must have let go of it by now, or the
    /// engine stops without finishing its index writes.
    pub async fn shutdown(self) {
        if self.api.is_some() {
            let _ = std::fs::remove_file(self.home.dir().join(crate::home::GUI_ADDRESS_FILE));
        }
        let _ = self.stop.send(true);
        for relay in self.relays {
            relay.stop().await;
        }
        if let Ok(Err(e)) = self.control.await {
            tracing::warn!(error = %error_chain(&e), "control socket");
        }
        // A stuck client must not keep the home from stopping (nor hold the engine, which is
        // then not shut down cleanly).
        if let Some(api) = self.api {
            match tokio::time::timeout(Duration::from_secs(5), api).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %error_chain(e.as_ref()), "control API"),
                Err(_) => tracing::warn!("the control API did not stop within 5 s"),
                _ => {}
            }
        }
        match Arc::try_unwrap(self.engine) {
            Ok(engine) => engine.shutdown().await,
            Err(_) => tracing::warn!("the engine is still in use; stopping without a clean shutdown"),
        }
        // The home lock goes last: another process may take the home only once all is written.
        drop(self.home);
    }
}

/// Loads the home's configuration, writing the defaults on first start so there is a file to
/// edit by hand.
pub fn load_config(home: &Home) -> Result<Config, ConfigError> {
    let path = home.config_path();
    let exists = path.exists();
    let config = Config::load(&path)?;
    if !exists {
        config.save(&path)?;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Request, Response};

    /// A CLI command run the moment `serve` says it listens must reach it: the control socket
    /// is bound before `start` returns, not by a task that may not have run yet.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_control_socket_answers_as_soon_as_start_returns() {
        for _ in 0..20 {
            let home = tempfile::tempdir().unwrap();
            let listen = vec!["tcp://127.0.0.1:0".parse().unwrap()];
            let options = Options { listen, gui: GuiListen::Off, discovery: false };
            let daemon = Daemon::start(home.path(), options).await.unwrap();
            let answer = control::call(home.path(), &Request::System).await;
            assert!(matches!(answer, Ok(Response::System(_))), "{answer:?}");
            daemon.shutdown().await;
        }
    }

    /// Once the daemon has stopped, a command is told it cannot reach one (and the CLI then
    /// answers offline), on the socket as on Windows' pipe.
    #[tokio::test(flavor = "multi_thread")]
    async fn after_shutdown_the_control_channel_cannot_be_reached() {
        let home = tempfile::tempdir().unwrap();
        let listen = vec!["tcp://127.0.0.1:0".parse().unwrap()];
        let options = Options { listen, gui: GuiListen::Off, discovery: false };
        let daemon = Daemon::start(home.path(), options).await.unwrap();
        assert!(control::call(home.path(), &Request::System).await.is_ok());
        daemon.shutdown().await;
        let answer = control::call(home.path(), &Request::System).await;
        assert!(matches!(answer, Err(ControlError::Connect { .. })), "{answer:?}");
    }

    /// Without an HTTP front-end the socket answers the typed route alone: anything else is the
    /// service's refusal with its status, not a hang or a dropped connection.
    #[cfg(unix)] // It speaks to the Unix socket itself; Windows' pipe serves only this route.
    #[tokio::test(flavor = "multi_thread")]
    async fn without_an_http_front_end_the_control_socket_answers_only_the_typed_route() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let home = tempfile::tempdir().unwrap();
        let listen = vec!["tcp://127.0.0.1:0".parse().unwrap()];
        let options = Options { listen, gui: GuiListen::Off, discovery: false };
        let daemon = Daemon::start(home.path(), options).await.unwrap();
        let socket = home.path().join(control::SOCKET_FILE);
        let ask = |raw: &'static [u8]| {
            let socket = socket.clone();
            async move {
                let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
                stream.write_all(raw).await.unwrap();
                let mut text = String::new();
                stream.read_to_string(&mut text).await.unwrap();
                text
            }
        };
        let text = ask(b"GET /api/system HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await;
        assert!(text.starts_with("HTTP/1.1 404"), "{text}");
        assert!(text.contains(r#""kind":"not-found""#), "{text}");
        let text = ask(
            b"POST /api/call HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnope!",
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert!(text.contains(r#""kind":"bad-request""#), "{text}");
        daemon.shutdown().await;
    }

    /// A QUIC listen address the system will not let us use (a system that refuses UDP sockets;
    /// an address in use stands in for it here) leaves the daemon running
    /// on TCP, and both the status and the system information say why QUIC is missing.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_daemon_whose_quic_address_fails_runs_on_tcp_and_says_why() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let quic: Address = format!("quic://{}", taken.local_addr().unwrap()).parse().unwrap();
        let home = tempfile::tempdir().unwrap();
        let listen = vec![quic.clone(), "tcp://127.0.0.1:0".parse().unwrap()];
        let options = Options { listen, gui: GuiListen::Off, discovery: false };
        let daemon = Daemon::start(home.path(), options).await.unwrap();
        assert_eq!(daemon.listening().len(), 1);
        assert_eq!(daemon.listening()[0].transport, crate::net::Transport::Tcp);
        let why = format!("cannot listen on {quic}: ");
        let Ok(Response::Status(status)) = control::call(home.path(), &Request::Status).await else {
            panic!("no status")
        };
        assert_eq!(status.quic_unavailable.len(), 1, "{:?}", status.quic_unavailable);
        assert!(status.quic_unavailable[0].starts_with(&why), "{:?}", status.quic_unavailable);
        assert!(status.to_string().contains(&format!("QUIC unavailable: {why}")), "{status}");
        let Ok(Response::System(system)) = control::call(home.path(), &Request::System).await else {
            panic!("no system information")
        };
        assert_eq!(system.quic_unavailable, status.quic_unavailable);
        assert_eq!(system.listening, vec![daemon.listening()[0].to_string()]);
        daemon.shutdown().await;
    }

    /// A program with no HTTP front-end says so when asked to listen over HTTP.
    #[tokio::test]
    async fn without_an_http_front_end_a_gui_address_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let options =
            Options { listen: Vec::new(), gui: GuiListen::At("127.0.0.1:0".to_owned()), discovery: false };
        let Err(e) = Daemon::start(home.path(), options).await else { panic!("started with a GUI address") };
        assert!(error_chain(&e).contains("serves no HTTP API"), "{e}");
    }
}
