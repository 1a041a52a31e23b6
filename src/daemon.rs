//! One running Peerfold home: the start-up and shutdown that `peerfold serve` and the desktop
//! app share.
//!
//! It owns the order things start in — the home lock, the identity, `config.toml` (written with
//! defaults on first start), the HTTP control API if asked for (bound first, so a taken port or
//! a missing password stops start-up with one sentence), the index, the network listeners, the
//! [`Engine`] and the control socket (`crate::control`), so the CLI's commands reach whichever
//! front-end runs the home — and the reverse order they stop in.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{Api, ApiError};
use crate::config::{Config, ConfigError};
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
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("cannot write {}", path.display())]
    GuiAddressFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Whether and where the control API listens over HTTP (the control socket is always served).
#[derive(Clone, Debug)]
pub enum GuiListen {
    /// Not at all: the desktop app's default, whose UI reaches the API in-process.
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
    api_url: Option<String>,
    discovery: bool,
    stop: watch::Sender<bool>,
    control: JoinHandle<Result<(), ControlError>>,
    api: Option<JoinHandle<Result<(), ApiError>>>,
}

impl Daemon {
    /// Opens the home at `home_dir` (taking its lock: [`HomeError::Locked`] says another
    /// process runs it) and starts everything.
    pub async fn start(home_dir: &Path, options: Options) -> Result<Self, DaemonError> {
        let home = Home::open(home_dir)?;
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
                Some(Api::bind(&address, &config.gui, home.dir()).await?)
            }
        };
        let api_url = api.as_ref().map(Api::url);
        // Where `peerfold gui url` finds the running API (the configured address may say port 0).
        if let Some(api) = &api {
            let file = home.dir().join(crate::home::GUI_ADDRESS_FILE);
            std::fs::write(&file, api.local_addr().to_string())
                .map_err(|source| DaemonError::GuiAddressFile { path: file, source })?;
        }
        let index = Index::open(&home.index_path()).await?;
        let net = Net::bind(TlsIdentity::new(&identity)?, &options.listen).await?;
        let listening = net.local_addresses();
        let mut engine =
            Engine::start_networked(&config, index, me, net).with_config_file(home.config_path());
        // Either switch turns it off: tests pass --no-discovery whatever the file says.
        let discovery = options.discovery && config.options.discovery;
        if discovery {
            engine.start_discovery(crate::discovery::Settings::new(me, &config.options), listening.clone());
        }
        let engine = Arc::new(engine);
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
        let api = api.map(|api| {
            let (engine, key, stopped) = (Arc::clone(&engine), config.gui.api_key.clone(), stopped.clone());
            tokio::spawn(async move { api.serve(engine, me, key, stopped).await })
        });
        let control = tokio::spawn({
            let (dir, engine) = (home.dir().to_owned(), Arc::clone(&engine));
            async move { control::serve(&dir, me, engine, stopped).await }
        });
        Ok(Self { home, me, engine, listening, api_url, discovery, stop, control, api })
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
        if let Ok(Err(e)) = self.control.await {
            tracing::warn!(error = %error_chain(&e), "control socket");
        }
        // A stuck client must not keep the home from stopping (nor hold the engine, which is
        // then not shut down cleanly).
        if let Some(api) = self.api {
            match tokio::time::timeout(Duration::from_secs(5), api).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %error_chain(&e), "control API"),
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
