//! Pausing on a metered network and on battery, against a real D-Bus: each test runs its own
//! `dbus-daemon` (never the machine's system bus), exports a fake NetworkManager and UPower on
//! it from this process (zbus, owning the services' well-known names), and points the engine
//! at that bus. Property changes reach the engine as `PropertiesChanged` signals.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use peerfold::bandwidth::PauseReason;
use peerfold::config::Edit;
use peerfold::engine::Engine;
use peerfold::power::{DBus, PowerNetwork};
use zbus::object_server::SignalEmitter;

use crate::sync::pair;
use crate::util::{TestDir, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

/// A `dbus-daemon` of the test's own, on a socket in a temporary directory; killed on drop.
struct Bus {
    _dir: TestDir,
    child: Child,
    address: String,
}

impl Bus {
    fn start() -> Self {
        let dir = TestDir::new();
        let socket = dir.path("bus");
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (Debian: dbus-daemon) runs");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout).read_line(&mut line).expect("dbus-daemon prints its address");
        let address = line.trim().to_owned();
        assert!(address.starts_with("unix:"), "dbus-daemon's address: {address:?}");
        Self { _dir: dir, child, address }
    }

    fn source(&self) -> Arc<dyn peerfold::power::PowerNetworkSource> {
        Arc::new(DBus::at(self.address.clone()))
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// NetworkManager's main object, with the one property the engine reads.
struct FakeNetworkManager {
    metered: u32,
}

#[zbus::interface(name = "org.freedesktop.NetworkManager")]
impl FakeNetworkManager {
    #[zbus(property)]
    fn metered(&self) -> u32 {
        self.metered
    }
}

/// UPower's main object, with the one property the engine reads.
struct FakeUPower {
    on_battery: bool,
}

#[zbus::interface(name = "org.freedesktop.UPower")]
impl FakeUPower {
    #[zbus(property)]
    fn on_battery(&self) -> bool {
        self.on_battery
    }
}

const NM_PATH: &str = "/org/freedesktop/NetworkManager";
const UPOWER_PATH: &str = "/org/freedesktop/UPower";

/// Serves a fake NetworkManager on `bus` with `Metered` = `metered` (NM_METERED).
async fn network_manager(bus: &Bus, metered: u32) -> zbus::Connection {
    zbus::connection::Builder::address(bus.address.as_str())
        .name("org.freedesktop.NetworkManager")
        .serve_at(NM_PATH, FakeNetworkManager { metered })
        .build()
        .await
        .unwrap()
}

/// Serves a fake UPower on `bus` with `OnBattery` = `on_battery`.
async fn upower(bus: &Bus, on_battery: bool) -> zbus::Connection {
    zbus::connection::Builder::address(bus.address.as_str())
        .name("org.freedesktop.UPower")
        .serve_at(UPOWER_PATH, FakeUPower { on_battery })
        .build()
        .await
        .unwrap()
}

/// Sets `Metered` and emits `PropertiesChanged`, as NetworkManager does.
async fn set_metered(conn: &zbus::Connection, metered: u32) {
    let iface = conn.object_server().interface::<_, FakeNetworkManager>(NM_PATH).await.unwrap();
    iface.get_mut().await.metered = metered;
    let emitter: &SignalEmitter<'_> = iface.signal_emitter();
    iface.get().await.metered_changed(emitter).await.unwrap();
}

/// Sets `OnBattery` and emits `PropertiesChanged`, as UPower does.
async fn set_on_battery(conn: &zbus::Connection, on_battery: bool) {
    let iface = conn.object_server().interface::<_, FakeUPower>(UPOWER_PATH).await.unwrap();
    iface.get_mut().await.on_battery = on_battery;
    let emitter: &SignalEmitter<'_> = iface.signal_emitter();
    iface.get().await.on_battery_changed(emitter).await.unwrap();
}

fn connected(e: &Engine) -> bool {
    !e.connections().is_empty()
}

async fn wait_paused(e: &Engine, reasons: &[PauseReason]) {
    wait_for(LIMIT, &format!("paused for {reasons:?}"), || async {
        (e.bandwidth().paused == reasons).then_some(())
    })
    .await;
}

async fn wait_power(e: &Engine, power: PowerNetwork) {
    wait_for(LIMIT, &format!("power and network {power:?}"), || async {
        (e.bandwidth().power == power).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metered_network_pauses_transfers_until_it_is_no_longer_metered() {
    crate::util::init_logging();
    let bus = Bus::start();
    // Not metered (NM_METERED_NO) at first.
    let nm = network_manager(&bus, 2).await;
    let (mut a, mut b) = pair("tcp").await;
    b.config.options.pause_on_metered = true;
    let ea = a.start().await;
    let eb = b.start_with_power(bus.source()).await;
    let f = "f".parse().unwrap();

    wait_for(LIMIT, "b sees an unmetered network", || async {
        (eb.bandwidth().power.metered == Some(false)).then_some(())
    })
    .await;
    std::fs::write(a.folder().join("first.txt"), b"before").unwrap();
    ea.scan(&f, vec![]).await.unwrap();
    let first = b.folder().join("first.txt");
    wait_for(LIMIT, "first.txt at b", || async { first.exists().then_some(()) }).await;
    assert!(eb.bandwidth().paused.is_empty());

    // Guess-yes counts as metered: b pauses every device and the connection closes.
    set_metered(&nm, 3).await;
    wait_paused(&eb, &[PauseReason::Metered]).await;
    wait_for(LIMIT, "disconnected", || async { (!connected(&ea) && !connected(&eb)).then_some(()) }).await;
    assert!(!eb.config().devices[0].paused, "the user's own device setting is untouched");
    let status = peerfold::status::status(b.id, &eb.config(), eb.index(), Some(&eb)).await.unwrap();
    assert!(status.to_string().contains("the network is metered"), "{status}");

    // A file added at a while b is metered does not arrive: b keeps no connection to carry it
    // (a redials, and b refuses it while paused).
    std::fs::write(a.folder().join("second.txt"), b"while metered").unwrap();
    ea.scan(&f, vec![]).await.unwrap();
    let second = b.folder().join("second.txt");
    assert!(!connected(&eb), "b stays apart after a's scan");
    assert_eq!(eb.bandwidth().paused, [PauseReason::Metered]);
    assert!(!second.exists());

    // Not metered again (the signal, not a poll, brings it): they reconnect and it arrives.
    set_metered(&nm, 4).await;
    wait_paused(&eb, &[]).await;
    wait_for(LIMIT, "second.txt at b", || async {
        (std::fs::read(&second).ok()? == b"while metered").then_some(())
    })
    .await;
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn battery_pauses_only_while_its_option_is_on_and_a_missing_service_pauses_nothing() {
    crate::util::init_logging();
    let bus = Bus::start();
    // Metered, but pause_on_metered is off: that alone pauses nothing.
    let _nm = network_manager(&bus, 1).await;
    let up = upower(&bus, true).await;
    let (mut a, mut b) = pair("tcp").await;
    b.config.options.pause_on_battery = true;
    let ea = a.start().await;
    let eb = b.start_with_power(bus.source()).await;

    wait_paused(&eb, &[PauseReason::Battery]).await;
    // The battery alone pauses; the network's answer may come a moment later (each service is
    // asked on its own), so it is waited for rather than read once.
    wait_power(&eb, PowerNetwork { metered: Some(true), on_battery: Some(true) }).await;
    wait_for(LIMIT, "b keeps a away", || async { (!connected(&ea) && !connected(&eb)).then_some(()) }).await;

    // On mains power: they connect.
    set_on_battery(&up, false).await;
    wait_paused(&eb, &[]).await;
    wait_for(LIMIT, "connected", || async { (connected(&ea) && connected(&eb)).then_some(()) }).await;

    // On battery again, then the option turned off: not paused, and the bus is let go of
    // (nothing is watched while both options are off).
    set_on_battery(&up, true).await;
    wait_paused(&eb, &[PauseReason::Battery]).await;
    let off = Edit::SetLimits {
        max_send_kibps: None,
        max_recv_kibps: None,
        limit_lan: None,
        schedule: None,
        pause_on_metered: None,
        pause_on_battery: Some(false),
    };
    eb.edit_config(off).await.unwrap();
    wait_paused(&eb, &[]).await;
    // The pause lifts as soon as the option is off; the watcher lets go of the bus after.
    wait_power(&eb, PowerNetwork::default()).await;
    wait_for(LIMIT, "connected again", || async { (connected(&ea) && connected(&eb)).then_some(()) }).await;

    // On again, then UPower leaves the bus: unknown is not on battery.
    let on = Edit::SetLimits {
        max_send_kibps: None,
        max_recv_kibps: None,
        limit_lan: None,
        schedule: None,
        pause_on_metered: None,
        pause_on_battery: Some(true),
    };
    eb.edit_config(on).await.unwrap();
    wait_paused(&eb, &[PauseReason::Battery]).await;
    drop(up);
    wait_paused(&eb, &[]).await;
    assert_eq!(eb.bandwidth().power.on_battery, None);
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_reads_the_bus_its_environment_names_and_the_cli_turns_the_pause_on() {
    use crate::util::{Daemon, ok};
    let bus = Bus::start();
    let nm = network_manager(&bus, 1).await;
    let t = TestDir::new();
    ok(&t.peerfold(&["id"]));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_peerfold"));
    cmd.arg("--home").arg(t.home());
    cmd.args(["serve", "--no-discovery", "--listen", "tcp://127.0.0.1:0", "--gui-address", "127.0.0.1:0"]);
    cmd.env(peerfold::power::BUS_ADDRESS_ENV, &bus.address);
    let daemon = Daemon::spawn(cmd);

    let said = ok(&t.peerfold(&["limits", "--pause-on-metered"]));
    assert!(said.contains("paused on metered networks"), "{said}");
    wait_for(LIMIT, "status says the network is metered", || async {
        ok(&t.peerfold(&["status"])).contains("the network is metered").then_some(())
    })
    .await;
    let limits = ok(&t.peerfold(&["limits"]));
    assert!(limits.contains("Every device pauses on a metered network (metered now)."), "{limits}");

    set_metered(&nm, 2).await;
    wait_for(LIMIT, "status shows the network unmetered", || async {
        let json: serde_json::Value = serde_json::from_str(&ok(&t.peerfold(&["status", "--json"]))).ok()?;
        let b = &json["bandwidth"];
        (b["power"]["metered"] == false && b["paused"].as_array()?.is_empty()).then_some(())
    })
    .await;
    let config = std::fs::read_to_string(t.home().join("config.toml")).unwrap();
    assert!(config.contains("pause_on_metered = true"), "{config}");
    drop(daemon);
}
