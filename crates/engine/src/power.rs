//! Metered networks and battery power: where the engine learns whether the system is on a
//! metered connection or on battery, so `pause_on_metered` / `pause_on_battery` can pause
//! every device (`bandwidth` decides; this module only observes).
//!
//! It owns the platform-neutral [`PowerNetworkSource`] (a long-lived watch publishing
//! [`PowerNetwork`] on a `watch` channel) and [`run`], the task that watches only while one of
//! the two options is on, so a NAS with both off never opens the system bus. Linux reads
//! NetworkManager's `Metered` and UPower's `OnBattery` over the system D-Bus (`DBus`, zbus on
//! tokio, following `PropertiesChanged` and the services coming and going; the bus address is
//! injectable for tests, see [`system_source`]). Windows and macOS have no source yet: they
//! report "unknown", which pauses nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::Config;

/// What the system says about its network and power; `None` where it says nothing (no such
/// service, or a platform without a source).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PowerNetwork {
    /// Whether the primary connection is metered (NetworkManager: yes or guess-yes).
    pub metered: Option<bool>,
    /// Whether the system runs on battery (UPower's `OnBattery`).
    pub on_battery: Option<bool>,
}

/// A future a source runs until dropped.
pub type Watching = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where the state comes from: one implementation per platform (and any a test makes).
pub trait PowerNetworkSource: Send + Sync + 'static {
    /// Publishes the state on `out` now and at every change, until the future is dropped. It
    /// never fails: what cannot be read is `None`, and a source retries by itself.
    fn watch(&self, out: watch::Sender<PowerNetwork>) -> Watching;
}

/// A source that knows nothing: every value stays `None`, nothing is paused for it.
pub struct Unknown;

impl PowerNetworkSource for Unknown {
    fn watch(&self, out: watch::Sender<PowerNetwork>) -> Watching {
        Box::pin(async move {
            out.send_replace(PowerNetwork::default());
            std::future::pending::<()>().await;
        })
    }
}

/// The environment variable that points the Linux source at another bus than the system one
/// (a D-Bus address, `unix:path=/run/...`): tests run their own bus with fake services.
pub const BUS_ADDRESS_ENV: &str = "PEERFOLD_SYSTEM_BUS_ADDRESS";

/// This platform's source: on Linux the system D-Bus (or the bus `PEERFOLD_SYSTEM_BUS_ADDRESS`
/// names); elsewhere [`Unknown`] until their sources are written.
pub fn system_source() -> Arc<dyn PowerNetworkSource> {
    #[cfg(target_os = "linux")]
    {
        let address = std::env::var(BUS_ADDRESS_ENV).ok().filter(|a| !a.is_empty());
        Arc::new(DBus { address })
    }
    #[cfg(not(target_os = "linux"))]
    {
        // Windows (NetworkInformation's cost, GetSystemPowerStatus) and macOS (NWPath's
        // isExpensive, IOPowerSources) come with the platform work.
        Arc::new(Unknown)
    }
}

/// Whether the configuration asks for either pause, and so for the source to be watched.
fn wanted(config: &Config) -> bool {
    config.options.pause_on_metered || config.options.pause_on_battery
}

/// Runs `source` while `pause_on_metered` or `pause_on_battery` is on (publishing on `out`), and
/// publishes "unknown" while both are off, until `shutdown`.
pub async fn run(
    source: Arc<dyn PowerNetworkSource>,
    mut config: watch::Receiver<Arc<Config>>,
    out: watch::Sender<PowerNetwork>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let on = wanted(&config.borrow_and_update());
        if !on {
            out.send_if_modified(|s| std::mem::take(s) != PowerNetwork::default());
            tokio::select! {
                _ = shutdown.changed() => return,
                changed = config.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let mut watching = source.watch(out.clone());
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                changed = config.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if !wanted(&config.borrow_and_update()) {
                        break;
                    }
                }
                // A source that ends has nothing more to say; wait for the options to change.
                () = &mut watching => watching = Box::pin(std::future::pending()),
            }
        }
    }
}

#[cfg(target_os = "linux")]
pub use linux::DBus;

#[cfg(target_os = "linux")]
mod linux {
    //! NetworkManager and UPower over D-Bus.

    use std::time::Duration;

    use futures_util::StreamExt as _;
    use tokio::sync::watch;
    use zbus::Variant;
    use zbus::fdo::{DBusProxy, PropertiesProxy};
    use zbus::names::InterfaceName;

    use super::{PowerNetwork, PowerNetworkSource, Watching};

    /// The source on Linux: the system bus, or the bus at `address`.
    pub struct DBus {
        /// A D-Bus address; `None` for the system bus.
        pub address: Option<String>,
    }

    impl DBus {
        /// The source on the bus at `address` (a test's bus with fake services).
        pub fn at(address: impl Into<String>) -> Self {
            Self { address: Some(address.into()) }
        }
    }

    /// One property of one service's object.
    struct Property {
        service: &'static str,
        path: &'static str,
        interface: &'static str,
        name: &'static str,
        /// The property's value as the state's field.
        read: fn(&Variant<'_>) -> Option<bool>,
        set: fn(&mut PowerNetwork, Option<bool>),
    }

    const METERED: Property = Property {
        service: "org.freedesktop.NetworkManager",
        path: "/org/freedesktop/NetworkManager",
        interface: "org.freedesktop.NetworkManager",
        name: "Metered",
        read: metered,
        set: |s, v| s.metered = v,
    };

    const ON_BATTERY: Property = Property {
        service: "org.freedesktop.UPower",
        path: "/org/freedesktop/UPower",
        interface: "org.freedesktop.UPower",
        name: "OnBattery",
        read: on_battery,
        set: |s, v| s.on_battery = v,
    };

    /// NM_METERED: 0 unknown, 1 yes, 2 no, 3 guess-yes, 4 guess-no.
    fn metered(v: &Variant<'_>) -> Option<bool> {
        match v {
            Variant::U32(1 | 3) => Some(true),
            Variant::U32(2 | 4) => Some(false),
            Variant::Variant(inner) => metered(inner),
            _ => None,
        }
    }

    fn on_battery(v: &Variant<'_>) -> Option<bool> {
        match v {
            Variant::Bool(b) => Some(*b),
            Variant::Variant(inner) => on_battery(inner),
            _ => None,
        }
    }

    /// How long a bus that could not be reached, or that went away, waits before the next try
    /// (doubling from the first).
    const RETRY_FIRST: Duration = Duration::from_secs(1);
    const RETRY_MAX: Duration = Duration::from_secs(60);

    impl PowerNetworkSource for DBus {
        fn watch(&self, out: watch::Sender<PowerNetwork>) -> Watching {
            let address = self.address.clone();
            Box::pin(async move {
                let mut retry = RETRY_FIRST;
                let mut told = false;
                loop {
                    match connect(address.as_deref()).await {
                        Ok(conn) => {
                            retry = RETRY_FIRST;
                            let (m, b) =
                                tokio::join!(follow(&conn, &METERED, &out), follow(&conn, &ON_BATTERY, &out));
                            if let Err(e) = m.and(b) {
                                tracing::debug!(error = %e, "lost the D-Bus connection");
                            }
                        }
                        // Said once: a machine with no system bus (a container, a NAS) is not
                        // an error, only a machine whose network and power are unknown.
                        Err(e) if !told => {
                            told = true;
                            tracing::info!(
                                error = %e,
                                "no D-Bus system bus: metered network and battery are unknown"
                            );
                        }
                        Err(e) => tracing::debug!(error = %e, "no D-Bus system bus"),
                    }
                    out.send_if_modified(|s| std::mem::take(s) != PowerNetwork::default());
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                }
            })
        }
    }

    async fn connect(address: Option<&str>) -> zbus::Result<zbus::Connection> {
        match address {
            Some(a) => zbus::connection::Builder::address(a).build().await,
            None => zbus::Connection::system().await,
        }
    }

    /// Keeps `p`'s field of `out` up to date until the connection ends: the value now, every
    /// `PropertiesChanged`, and a fresh read whenever the service's owner changes (`None` while
    /// the service is not there).
    async fn follow(
        conn: &zbus::Connection,
        p: &Property,
        out: &watch::Sender<PowerNetwork>,
    ) -> zbus::Result<()> {
        let props = PropertiesProxy::builder(conn).destination(p.service).path(p.path).build().await?;
        let bus = DBusProxy::new(conn).await?;
        // Subscribed before the first read, so no change falls between the two.
        let mut owners = bus.receive_name_owner_changed_with_args(&[(0, p.service)]).await?;
        let mut changes = props.receive_properties_changed().await?;
        let publish = |v: Option<bool>| {
            out.send_if_modified(|s| {
                let mut next = *s;
                (p.set)(&mut next, v);
                let differs = next != *s;
                *s = next;
                differs
            });
        };
        publish(read(&props, p).await);
        loop {
            tokio::select! {
                signal = changes.next() => {
                    let Some(signal) = signal else { return Ok(()) };
                    let Ok(args) = signal.args() else { continue };
                    if args.interface_name().as_str() != p.interface {
                        continue;
                    }
                    if let Some(v) = args.changed_properties().get(p.name) {
                        publish((p.read)(v));
                    } else if args.invalidated_properties().contains(&p.name) {
                        publish(read(&props, p).await);
                    }
                }
                owner = owners.next() => {
                    let Some(owner) = owner else { return Ok(()) };
                    let gone = owner.args().map(|a| a.new_owner().is_none()).unwrap_or(false);
                    publish(if gone { None } else { read(&props, p).await });
                }
            }
        }
    }

    /// The property now; `None` when the service is not there or says something else.
    async fn read(props: &PropertiesProxy<'_>, p: &Property) -> Option<bool> {
        let interface = InterfaceName::try_from(p.interface).ok()?;
        match props.get(interface, p.name).await {
            Ok(v) => (p.read)(&v),
            Err(e) => {
                tracing::debug!(service = p.service, error = %e, "cannot read {}", p.name);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    use super::*;

    /// A source that says "metered" and counts how many watches run.
    #[derive(Default)]
    struct Counting {
        running: Arc<AtomicUsize>,
        started: AtomicUsize,
    }

    struct Running(Arc<AtomicUsize>);

    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, SeqCst);
        }
    }

    impl PowerNetworkSource for Counting {
        fn watch(&self, out: watch::Sender<PowerNetwork>) -> Watching {
            self.started.fetch_add(1, SeqCst);
            self.running.fetch_add(1, SeqCst);
            let running = Running(Arc::clone(&self.running));
            Box::pin(async move {
                let _running = running;
                out.send_replace(PowerNetwork { metered: Some(true), on_battery: None });
                std::future::pending::<()>().await;
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_source_is_watched_only_while_an_option_asks_for_it() {
        let source = Arc::new(Counting::default());
        let mut config = Config::default();
        let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
        let (out, state) = watch::channel(PowerNetwork::default());
        let (_shutdown_tx, shutdown) = watch::channel(false);
        let dyn_source: Arc<dyn PowerNetworkSource> = source.clone();
        tokio::spawn(run(dyn_source, config_rx, out, shutdown));
        let settle = || tokio::time::sleep(Duration::from_millis(10));
        settle().await;
        assert_eq!(source.started.load(SeqCst), 0, "both options off: the bus is never opened");

        config.options.pause_on_battery = true;
        config_tx.send_replace(Arc::new(config.clone()));
        settle().await;
        assert_eq!((source.started.load(SeqCst), source.running.load(SeqCst)), (1, 1));
        assert_eq!(state.borrow().metered, Some(true));

        // Another option changing keeps the same watch.
        config.options.pause_on_metered = true;
        config_tx.send_replace(Arc::new(config.clone()));
        settle().await;
        assert_eq!(source.started.load(SeqCst), 1);

        config.options.pause_on_metered = false;
        config.options.pause_on_battery = false;
        config_tx.send_replace(Arc::new(config.clone()));
        settle().await;
        assert_eq!(source.running.load(SeqCst), 0, "the watch is dropped");
        assert_eq!(*state.borrow(), PowerNetwork::default(), "and the state unknown again");
    }
}
