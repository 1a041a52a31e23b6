//! Bandwidth limits and "pause all": which limits and pauses are in force, and the token
//! buckets every connection's bytes pass.
//!
//! It owns the limiters (`net::limit` owns the mechanism): one global send/receive pair and
//! one pair per configured device, shared by every connection of that device, retuned in place
//! when the configuration or the time of day changes, so live connections follow without
//! reconnecting. A connection to a LAN address shares a switch that lets it past every bucket
//! while `limit_lan` is off. Which rule is in force is [`in_force`], a pure function of the
//! configuration and the [`Clock`]; [`run`] is the task that applies it, and publishes the
//! configuration the model works from: the user's, with every device paused while a pause is
//! in force. Pauses have reasons ([`PauseReason`]): the user's, a schedule rule's, and a
//! metered network or battery (what `power` observes, counted only while `pause_on_metered` /
//! `pause_on_battery` is on).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::Config;
use crate::identity::DeviceId;
use crate::net::limit::{Exempt, LimitedStream, Limiter, is_lan};
use crate::net::{BoxStream, Transport};
use crate::power::PowerNetwork;
use crate::schedule::{LocalTime, PauseAll};

/// Why every device is paused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum PauseReason {
    /// `peerfold pause`: until a Unix time, or until resumed (`None`).
    User { until: Option<u64> },
    /// A schedule rule with `pause = true`.
    Schedule { rule: usize, window: String },
    /// The system is on a metered network and `pause_on_metered` is on.
    Metered,
    /// The system runs on battery and `pause_on_battery` is on.
    Battery,
}

impl std::fmt::Display for PauseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User { until: None } => write!(f, "paused until resumed"),
            Self::User { until: Some(t) } => write!(f, "paused until {}", crate::clock::local_text(*t)),
            Self::Schedule { window, .. } => write!(f, "paused by the schedule rule {window}"),
            Self::Metered => write!(f, "paused on a metered network"),
            Self::Battery => write!(f, "paused on battery"),
        }
    }
}

/// The schedule rule in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleInForce {
    /// Its position in `[[options.schedule]]`, from 0.
    pub index: usize,
    /// `mon,tue 09:00-17:00`.
    pub window: String,
    pub pause: bool,
}

/// The limits and pauses in force now, as status shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InForce {
    /// KiB/s over all connections (0: unlimited): the schedule rule's, else `[options]`'.
    pub max_send_kibps: u64,
    pub max_recv_kibps: u64,
    /// Whether limits apply to LAN devices too.
    pub limit_lan: bool,
    pub rule: Option<RuleInForce>,
    /// Empty unless every device is paused; then why.
    pub paused: Vec<PauseReason>,
    /// `[options]`' own limits, which hold outside the schedule's windows.
    pub configured_send_kibps: u64,
    pub configured_recv_kibps: u64,
    /// `[[options.schedule]]`, in order.
    pub schedule: Vec<crate::schedule::ScheduleRule>,
    /// Whether every device pauses on a metered network (`pause_on_metered`).
    pub pause_on_metered: bool,
    /// Whether every device pauses on battery (`pause_on_battery`).
    pub pause_on_battery: bool,
    /// What the system says of its network and power (watched only while either option is
    /// on; unknown otherwise).
    pub power: PowerNetwork,
}

/// What is in force under `config` at local time `local`, Unix time `unix`, with the system's
/// network and power as `power` says.
pub fn in_force(config: &Config, local: LocalTime, unix: u64, power: PowerNetwork) -> InForce {
    let o = &config.options;
    let mut f = InForce {
        max_send_kibps: o.max_send_kibps,
        max_recv_kibps: o.max_recv_kibps,
        limit_lan: o.limit_lan,
        configured_send_kibps: o.max_send_kibps,
        configured_recv_kibps: o.max_recv_kibps,
        schedule: o.schedule.clone(),
        pause_on_metered: o.pause_on_metered,
        pause_on_battery: o.pause_on_battery,
        power,
        ..InForce::default()
    };
    if let Some(pause) = o.pause_all.filter(|p| p.holds(unix)) {
        let until = match pause {
            PauseAll::UntilResumed => None,
            PauseAll::Until(t) => Some(t),
        };
        f.paused.push(PauseReason::User { until });
    }
    if let Some(index) = crate::schedule::in_force(&o.schedule, local)
        && let Some(rule) = o.schedule.get(index)
    {
        let window = rule.window();
        if rule.pause {
            f.paused.push(PauseReason::Schedule { rule: index, window: window.clone() });
        } else {
            f.max_send_kibps = rule.max_send_kibps;
            f.max_recv_kibps = rule.max_recv_kibps;
        }
        f.rule = Some(RuleInForce { index, window, pause: rule.pause });
    }
    // Unknown is not metered and not on battery: a machine that cannot tell keeps syncing.
    if o.pause_on_metered && power.metered == Some(true) {
        f.paused.push(PauseReason::Metered);
    }
    if o.pause_on_battery && power.on_battery == Some(true) {
        f.paused.push(PauseReason::Battery);
    }
    f
}

/// A send and a receive bucket.
#[derive(Clone, Default)]
struct Pair {
    send: Limiter,
    recv: Limiter,
}

impl Pair {
    fn set(&self, send_kibps: u64, recv_kibps: u64) {
        self.send.set_rate(send_kibps.saturating_mul(1024));
        self.recv.set_rate(recv_kibps.saturating_mul(1024));
    }
}

/// The engine's limiters and what is in force. Shared behind an `Arc`.
#[derive(Default)]
pub struct Bandwidth {
    global: Pair,
    devices: Mutex<HashMap<DeviceId, Pair>>,
    /// On while LAN connections are left alone (`limit_lan` off).
    lan_exempt: Exempt,
    current: Mutex<InForce>,
}

impl Bandwidth {
    /// Limiters that limit nothing until [`Bandwidth::apply`] is called.
    pub fn new() -> Self {
        let b = Self::default();
        b.lan_exempt.store(true, Relaxed);
        b
    }

    /// Retunes every bucket to `config` and what is in force.
    pub fn apply(&self, config: &Config, f: &InForce) {
        self.global.set(f.max_send_kibps, f.max_recv_kibps);
        self.lan_exempt.store(!f.limit_lan, Relaxed);
        let mut devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
        devices.retain(|id, _| config.device(id).is_some());
        for d in &config.devices {
            devices.entry(d.id).or_default().set(d.max_send_kibps, d.max_recv_kibps);
        }
        drop(devices);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = f.clone();
    }

    /// Applies what is in force under `config` now by `clock` and `power`; returns the
    /// configuration the model works from.
    pub fn apply_now(&self, config: &Arc<Config>, clock: &dyn Clock, power: PowerNetwork) -> Arc<Config> {
        let f = in_force(config, clock.local(), clock.unix(), power);
        if f != self.current() {
            tracing::info!(in_force = ?f, "bandwidth limits or pause changed");
        }
        self.apply(config, &f);
        for_model(config, &f)
    }

    /// What is in force, as last applied.
    pub fn current(&self) -> InForce {
        self.current.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// `stream`, a connection with `device` at `remote`, passing the device's buckets and the
    /// global ones (a LAN connection, not relayed, only while `limit_lan` is on).
    pub fn stream(
        &self,
        device: DeviceId,
        remote: SocketAddr,
        transport: Transport,
        stream: BoxStream,
    ) -> BoxStream {
        // A device that is not configured (refused after its Hello) gets buckets of its own
        // that are not kept: strangers add nothing to the map.
        let pair = {
            let devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
            devices.get(&device).cloned().unwrap_or_default()
        };
        let lan = transport != Transport::Relay && is_lan(remote.ip());
        let exempt = lan.then(|| Arc::clone(&self.lan_exempt));
        Box::new(LimitedStream::new(
            stream,
            vec![pair.recv, self.global.recv.clone()],
            vec![pair.send, self.global.send.clone()],
            exempt,
        ))
    }
}

/// The configuration the model works from: `config`, with every device paused while `f`
/// pauses them all.
fn for_model(config: &Arc<Config>, f: &InForce) -> Arc<Config> {
    if f.paused.is_empty() {
        return Arc::clone(config);
    }
    let mut paused = (**config).clone();
    for d in &mut paused.devices {
        d.paused = true;
    }
    Arc::new(paused)
}

/// Applies what is in force whenever the configuration or the system's network and power
/// (`power`) change and at every minute of the clock (schedule windows start and end on the
/// minute; a timed pause ends at its second), and publishes the model's configuration, until
/// `shutdown`.
pub async fn run(
    bandwidth: Arc<Bandwidth>,
    clock: Arc<dyn Clock>,
    mut config: watch::Receiver<Arc<Config>>,
    mut power: watch::Receiver<PowerNetwork>,
    model_config: watch::Sender<Arc<Config>>,
    mut shutdown: watch::Receiver<bool>,
) {
    // A power source that stopped publishing leaves the last state in force.
    let mut power_open = true;
    loop {
        let current = config.borrow_and_update().clone();
        let (local, unix) = (clock.local(), clock.unix());
        let state = *power.borrow_and_update();
        let next = bandwidth.apply_now(&current, &*clock, state);
        model_config.send_if_modified(|old| {
            let differs = **old != *next;
            if differs {
                *old = next;
            }
            differs
        });
        let mut wait = Duration::from_secs(u64::from(60 - local.second % 60));
        if let Some(PauseAll::Until(t)) = current.options.pause_all
            && t > unix
        {
            wait = wait.min(Duration::from_secs(t - unix));
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            changed = config.changed() => if changed.is_err() { return },
            changed = power.changed(), if power_open => power_open = changed.is_ok(),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Day, ScheduleRule};

    /// A clock that starts at a chosen local time and follows tokio's (paused) clock.
    struct TestClock {
        start: tokio::time::Instant,
        local: LocalTime,
        unix: u64,
    }

    impl Clock for TestClock {
        fn local(&self) -> LocalTime {
            let elapsed = self.start.elapsed().as_secs();
            let total = u64::from(self.local.second) + elapsed;
            let day = Day::from_monday(((self.local.day as u64 + total / 86_400) % 7) as u8);
            LocalTime { day, second: (total % 86_400) as u32 }
        }
        fn unix(&self) -> u64 {
            self.unix + self.start.elapsed().as_secs()
        }
    }

    fn config_with(rules: Vec<ScheduleRule>) -> Config {
        let mut c = Config::default();
        c.options.max_send_kibps = 100;
        c.options.max_recv_kibps = 200;
        c.options.schedule = rules;
        c
    }

    fn rule(from: &str, to: &str, pause: bool, send: u64, recv: u64) -> ScheduleRule {
        ScheduleRule {
            days: vec![Day::Mon],
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
            pause,
            max_send_kibps: send,
            max_recv_kibps: recv,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn limits_switch_at_a_window_edge_and_a_pause_pauses_every_device() {
        let mut config =
            config_with(vec![rule("09:00", "17:00", false, 10, 20), rule("17:00", "18:00", true, 0, 0)]);
        let id = DeviceId::from_bytes([1; 32]);
        config.add_device(DeviceId::from_bytes([2; 32]), id, None, None).unwrap();
        let clock = TestClock {
            start: tokio::time::Instant::now(),
            local: LocalTime::at(Day::Mon, 8, 59, 30),
            unix: 1_000_000,
        };
        let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
        let (model_tx, model_rx) = watch::channel(Arc::new(Config::default()));
        let (_shutdown_tx, shutdown) = watch::channel(false);
        let bw = Arc::new(Bandwidth::new());
        let (_power_tx, power) = watch::channel(PowerNetwork::default());
        tokio::spawn(run(Arc::clone(&bw), Arc::new(clock), config_rx, power, model_tx, shutdown));
        let rates = |bw: &Bandwidth| (bw.global.send.rate(), bw.global.recv.rate());

        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(rates(&bw), (100 << 10, 200 << 10), "08:59:31, the options' limits");
        assert_eq!(bw.current().rule, None);
        tokio::time::sleep(Duration::from_secs(28)).await;
        assert_eq!(rates(&bw), (100 << 10, 200 << 10), "08:59:59");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(rates(&bw), (10 << 10, 20 << 10), "09:00:01, the rule's limits");
        assert_eq!(bw.current().rule.map(|r| r.window), Some("mon 09:00-17:00".to_owned()));
        assert!(!model_rx.borrow().devices[0].paused);

        // 17:00: the pause rule; the model sees every device paused, the user's config does not.
        tokio::time::sleep(Duration::from_secs(8 * 3600)).await;
        let f = bw.current();
        assert_eq!(f.paused, [PauseReason::Schedule { rule: 1, window: "mon 17:00-18:00".into() }]);
        assert!(model_rx.borrow().devices[0].paused);
        assert!(!config_tx.borrow().devices[0].paused);

        // 18:00: nothing in force; a device limit set meanwhile applies at once.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(bw.current().paused.is_empty() && bw.current().rule.is_none());
        assert!(!model_rx.borrow().devices[0].paused);
        config.devices[0].max_send_kibps = 5;
        config_tx.send_replace(Arc::new(config.clone()));
        tokio::time::sleep(Duration::from_millis(1)).await;
        let device = bw.devices.lock().unwrap().get(&id).cloned().unwrap();
        assert_eq!(device.send.rate(), 5 << 10);

        // A device that is not configured connecting keeps nothing.
        let (stream, _peer) = tokio::io::duplex(64);
        let stranger = DeviceId::from_bytes([9; 32]);
        let _ = bw.stream(stranger, "203.0.113.1:22000".parse().unwrap(), Transport::Tcp, Box::new(stream));
        assert_eq!(bw.devices.lock().unwrap().len(), 1, "a stranger adds no buckets");
    }

    #[test]
    fn a_metered_network_or_battery_pauses_only_when_asked_and_known() {
        let mut c = config_with(Vec::new());
        let t = LocalTime::at(Day::Mon, 12, 0, 0);
        let both = PowerNetwork { metered: Some(true), on_battery: Some(true) };
        assert!(in_force(&c, t, 0, both).paused.is_empty(), "both options off");
        c.options.pause_on_metered = true;
        assert_eq!(in_force(&c, t, 0, both).paused, [PauseReason::Metered]);
        c.options.pause_on_battery = true;
        assert_eq!(in_force(&c, t, 0, both).paused, [PauseReason::Metered, PauseReason::Battery]);
        assert_eq!(in_force(&c, t, 0, both).power, both, "status shows what the system says");
        assert!(in_force(&c, t, 0, PowerNetwork::default()).paused.is_empty(), "unknown pauses nothing");
        let neither = PowerNetwork { metered: Some(false), on_battery: Some(false) };
        assert!(in_force(&c, t, 0, neither).paused.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_pause_ends_on_its_second() {
        let mut config = config_with(Vec::new());
        let now = 1_000_000;
        config.options.pause_all = Some(PauseAll::Until(now + 90));
        let clock = TestClock {
            start: tokio::time::Instant::now(),
            local: LocalTime::at(Day::Tue, 12, 0, 0),
            unix: now,
        };
        let (_config_tx, config_rx) = watch::channel(Arc::new(config));
        let (model_tx, _model_rx) = watch::channel(Arc::new(Config::default()));
        let (_shutdown_tx, shutdown) = watch::channel(false);
        let bw = Arc::new(Bandwidth::new());
        let (_power_tx, power) = watch::channel(PowerNetwork::default());
        tokio::spawn(run(Arc::clone(&bw), Arc::new(clock), config_rx, power, model_tx, shutdown));
        tokio::time::sleep(Duration::from_secs(89)).await;
        assert_eq!(bw.current().paused, [PauseReason::User { until: Some(now + 90) }]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
        assert!(bw.current().paused.is_empty());
    }
}
