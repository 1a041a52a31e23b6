//! What `peerfold status` shows: per folder its state, local and global contents, what is still
//! needed and how complete each sharing device is; per device whether and how it is connected.
//!
//! Built from the configuration and the index, plus the running engine's live state when there
//! is one (folder states, connections); without one, folders show as stopped. Also the list of
//! configured devices as front-ends show it ([`device_views`]).

use serde::{Deserialize, Serialize};

use crate::config::{Config, FolderType};
use crate::db::{DbError, DeviceIdx, FolderCounts, FolderIdx, Index, NeedCounts};
use crate::engine::{Engine, FolderState};
use crate::identity::DeviceId;
use crate::net::Transport;
use crate::scan::MassDelete;
pub use crate::units::binary_bytes as human_bytes;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Status {
    #[schema(value_type = String)]
    pub device: DeviceId,
    pub running: bool,
    pub folders: Vec<FolderStatus>,
    pub devices: Vec<DeviceStatus>,
    /// The global limits, schedule rule and pauses in force (none from a daemon older than them).
    #[serde(default)]
    pub bandwidth: crate::bandwidth::InForce,
    /// Why QUIC is unavailable on a listen address, one sentence each: the daemon runs on TCP
    /// alone there (see `SystemInfo`).
    #[serde(default)]
    pub quic_unavailable: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FolderStatus {
    pub id: String,
    pub label: String,
    pub path: String,
    #[serde(rename = "type")]
    pub folder_type: FolderType,
    /// `idle`, `scanning`, `syncing`, `error`, `waiting-for-confirmation`, `paused` or
    /// `stopped` (no daemon running).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// In a receive-only folder: how many local changes (kept here, not sent) a revert would
    /// undo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_only_changes: Option<u64>,
    /// In `waiting-for-confirmation`: the deletions held back as a mass delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_deletes: Option<MassDelete>,
    pub local: Counts,
    /// What the cluster has. Like `devices`, a progress figure that costs a pass over the
    /// folder's index: while the index changes it is recomputed at most once a second.
    pub global: Counts,
    pub need: NeedCounts,
    pub devices: Vec<Completion>,
    /// Bytes per second the folder is pulling (fetched or copied into files), over the last
    /// 10 seconds; 0 without a daemon.
    #[serde(default)]
    pub rate_bps: u64,
    /// Seconds until the needed bytes are pulled at that rate; `null` while nothing moves.
    #[serde(default)]
    pub eta_s: Option<u64>,
    /// Entries the last pull could not apply (see `GET /api/folders/{id}/errors`).
    #[serde(default)]
    pub failed_items: u64,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Counts {
    pub files: u64,
    pub directories: u64,
    pub bytes: u64,
}

impl From<FolderCounts> for Counts {
    fn from(c: FolderCounts) -> Self {
        Self { files: c.files + c.symlinks, directories: c.directories, bytes: c.bytes }
    }
}

/// How much of the folder a sharing device has, judged from the index it announced.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Completion {
    #[schema(value_type = String)]
    pub device: DeviceId,
    /// 0–100.
    pub percent: f64,
    pub need: NeedCounts,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceStatus {
    #[schema(value_type = String)]
    pub id: DeviceId,
    pub name: String,
    pub paused: bool,
    pub connected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// How the address we dialled was found (`configured`, `lan`, `dht`); absent when the
    /// device dialled us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<crate::discovery::Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Bytes read from this connection so far (it counts from zero on every connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    /// Bytes written to this connection so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// Bytes per second read from the connection over the last 10 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_in_bps: Option<u64>,
    /// Bytes per second written to the connection over the last 10 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_out_bps: Option<u64>,
}

/// The status of a home: `engine` is the running engine, if this process runs it.
pub async fn status(
    me: DeviceId,
    config: &Config,
    index: &Index,
    engine: Option<&Engine>,
) -> Result<Status, DbError> {
    let states = engine.map(Engine::folder_states).unwrap_or_default();
    let connections = engine.map(Engine::connections).unwrap_or_default();
    let mut folders = Vec::new();
    for f in &config.folders {
        // Read-only: a folder the index has not recorded yet counts nothing.
        let idx = index.folder(f.id.as_str()).await?.unwrap_or(FolderIdx::NONE);
        let mut held_deletes = None;
        let (state, error) = if f.paused {
            (String::from("paused"), None)
        } else if engine.is_none() {
            (String::from("stopped"), None)
        } else {
            match states.iter().find(|(id, _)| id == &f.id).map(|(_, s)| s) {
                Some(FolderState::Idle) | None => (String::from("idle"), None),
                Some(FolderState::Scanning) => (String::from("scanning"), None),
                Some(FolderState::Syncing) => (String::from("syncing"), None),
                Some(FolderState::Error { message }) => (String::from("error"), Some(message.clone())),
                Some(&FolderState::WaitingForConfirmation { deleted, total }) => {
                    held_deletes = Some(MassDelete { deleted, total });
                    (String::from("waiting-for-confirmation"), None)
                }
            }
        };
        let global = index.recent_global_counts(idx).await?;
        let need = index.need_counts(idx).await?;
        let rate_bps = engine.map_or(0, |e| e.rates().folder(&f.id));
        let failed_items = engine.and_then(|e| e.failed_items(&f.id).ok()).map_or(0, |v| v.len() as u64);
        let mut devices = Vec::new();
        for d in &f.devices {
            let didx = index.known_device(d).await?.unwrap_or(DeviceIdx::NONE);
            let need = index.recent_remote_need_counts(idx, didx).await?;
            let percent = if global.bytes == 0 {
                if need.items == 0 { 100.0 } else { 0.0 }
            } else {
                100.0 * (1.0 - need.bytes as f64 / global.bytes as f64)
            };
            devices.push(Completion { device: *d, percent: (percent * 10.0).round() / 10.0, need });
        }
        // Exact, always: tests and scripts read it at any moment (a remembered value read
        // while the folder rescanned made a test wait for a figure that was never coming).
        let local = index.local_counts(idx).await?;
        folders.push(FolderStatus {
            id: f.id.to_string(),
            label: f.label.clone(),
            path: f.path.display().to_string(),
            folder_type: f.folder_type,
            state,
            error,
            held_deletes,
            receive_only_changes: match f.folder_type {
                FolderType::ReceiveOnly => Some(index.receive_only_change_count(idx, me.short()).await?),
                _ => None,
            },
            local: local.into(),
            global: global.into(),
            need,
            devices,
            rate_bps,
            eta_s: crate::rates::eta(need.bytes, rate_bps),
            failed_items,
        });
    }
    let devices = config
        .devices
        .iter()
        .map(|d| {
            let c = connections.iter().find(|c| c.device == d.id);
            DeviceStatus {
                id: d.id,
                name: d.name.clone(),
                paused: d.paused,
                connected: c.is_some(),
                address: c.map(|c| c.address.to_string()),
                transport: c.map(|c| c.transport),
                found: c.and_then(|c| c.found),
                client: c.map(|c| c.client.clone()),
                bytes_in: c.map(|c| c.counters.read.load(std::sync::atomic::Ordering::Relaxed)),
                bytes_out: c.map(|c| c.counters.written.load(std::sync::atomic::Ordering::Relaxed)),
                rate_in_bps: c.and(engine).map(|e| e.rates().connection(&d.id).0),
                rate_out_bps: c.and(engine).map(|e| e.rates().connection(&d.id).1),
            }
        })
        .collect();
    let bandwidth = match engine {
        Some(e) => e.bandwidth(),
        None => {
            use crate::clock::Clock as _;
            let clock = crate::clock::SystemClock;
            let unknown = crate::power::PowerNetwork::default();
            crate::bandwidth::in_force(config, clock.local(), clock.unix(), unknown)
        }
    };
    let quic_unavailable = engine.map(Engine::quic_unavailable).unwrap_or_default();
    Ok(Status { device: me, running: engine.is_some(), folders, devices, bandwidth, quic_unavailable })
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "This device: {}{}", self.device, if self.running { "" } else { " (not running)" })?;
        for reason in &self.quic_unavailable {
            writeln!(f, "QUIC unavailable: {reason} (connections use TCP)")?;
        }
        let b = &self.bandwidth;
        for reason in &b.paused {
            match reason {
                crate::bandwidth::PauseReason::User { until: None } => {
                    writeln!(f, "Every device is paused until resumed (`peerfold resume`)")?
                }
                crate::bandwidth::PauseReason::User { until: Some(t) } => writeln!(
                    f,
                    "Every device is paused until {} (`peerfold resume` ends it now)",
                    crate::clock::local_text(*t)
                )?,
                crate::bandwidth::PauseReason::Schedule { window, .. } => {
                    writeln!(f, "Every device is paused by the schedule rule {window}")?
                }
                crate::bandwidth::PauseReason::Metered => writeln!(
                    f,
                    "Every device is paused: the network is metered (pause_on_metered; \
                     `peerfold limits --pause-on-metered=false` turns it off)"
                )?,
                crate::bandwidth::PauseReason::Battery => writeln!(
                    f,
                    "Every device is paused: the system runs on battery (pause_on_battery; \
                     `peerfold limits --pause-on-battery=false` turns it off)"
                )?,
            }
        }
        if b.max_send_kibps != 0 || b.max_recv_kibps != 0 || b.rule.as_ref().is_some_and(|r| !r.pause) {
            let rule = b.rule.as_ref().filter(|r| !r.pause).map(|r| format!(" (schedule rule {})", r.window));
            writeln!(
                f,
                "Limits: sending {}, receiving {}{}{}",
                crate::config::kibps(b.max_send_kibps),
                crate::config::kibps(b.max_recv_kibps),
                if b.limit_lan { ", also on the LAN" } else { ", not on the LAN" },
                rule.unwrap_or_default()
            )?;
        }
        for folder in &self.folders {
            write!(f, "Folder {} ({}) at {}: {}", folder.id, folder.folder_type, folder.path, folder.state)?;
            if let Some(e) = &folder.error {
                write!(f, ": {e}")?;
            }
            if let Some(h) = &folder.held_deletes {
                write!(
                    f,
                    ": a scan found {} of {} files deleted and held the deletions back; confirm them or \
                     restore the files",
                    h.deleted, h.total
                )?;
            }
            writeln!(f)?;
            writeln!(
                f,
                "  local {} files, {} bytes; global {} files, {} bytes; needed {} items, {} bytes",
                folder.local.files,
                folder.local.bytes,
                folder.global.files,
                folder.global.bytes,
                folder.need.items,
                folder.need.bytes
            )?;
            if folder.rate_bps > 0 || folder.state == "syncing" {
                let eta = folder.eta_s.map_or_else(|| String::from("unknown"), format_duration);
                writeln!(f, "  pulling at {}/s, done in {eta}", human_bytes(folder.rate_bps))?;
            }
            if folder.failed_items > 0 {
                writeln!(
                    f,
                    "  {} items failed to sync (`peerfold folder errors {}` says why)",
                    folder.failed_items, folder.id
                )?;
            }
            if let Some(n) = folder.receive_only_changes.filter(|&n| n > 0) {
                writeln!(f, "  {n} local changes (not sent; revert to undo them)")?;
            }
            for d in &folder.devices {
                writeln!(f, "  {} {:.1}% complete", d.device.short(), d.percent)?;
            }
        }
        for d in &self.devices {
            let how = match (&d.address, d.transport) {
                (Some(a), Some(t)) => {
                    let how = match d.found {
                        Some(crate::discovery::Source::Configured) => " (the configured address)",
                        Some(crate::discovery::Source::Lan) => " (found on the LAN)",
                        Some(crate::discovery::Source::Dht) => " (found on the DHT)",
                        None => "",
                    };
                    // A device we dialled is reached at an address; one that dialled us, from one.
                    let way = if d.found.is_some() { "to" } else { "from" };
                    let over = if t == Transport::Relay {
                        // The one path that crosses a third party's bandwidth limits: say so.
                        format!("through the relay at {a} (slower than a direct connection)")
                    } else {
                        format!("over {t} {way} {a}{how}")
                    };
                    format!(
                        "connected {over}, in {}/s, out {}/s",
                        human_bytes(d.rate_in_bps.unwrap_or(0)),
                        human_bytes(d.rate_out_bps.unwrap_or(0))
                    )
                }
                _ if d.paused => String::from("paused"),
                _ => String::from("not connected"),
            };
            writeln!(f, "Device {} {:?}: {how}", d.id.short(), d.name)?;
        }
        Ok(())
    }
}

/// Seconds as `1h 2m 3s` (the larger units only when needed).
pub fn format_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`, for showing when something was seen.
pub fn format_time(unix_secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix_secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{unix_secs} (Unix time)"),
    }
}

/// A configured device as front-ends list it (`peerfold device list --json`, `GET /api/devices`).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceView {
    pub id: String,
    pub name: String,
    pub addresses: Vec<String>,
    pub paused: bool,
    /// Whether the folders it offers are added without asking.
    pub auto_accept_folders: bool,
    /// Whether it introduces the devices it shares folders with.
    pub introducer: bool,
    /// The introducer that added it, if one did.
    pub introduced_by: Option<String>,
    /// The folders shared with it.
    pub folders: Vec<String>,
    /// KiB/s sent to it (0: unlimited).
    #[serde(default)]
    pub max_send_kibps: u64,
    /// KiB/s received from it (0: unlimited).
    #[serde(default)]
    pub max_recv_kibps: u64,
}

/// Every configured device, with the folders shared with it.
pub fn device_views(config: &Config) -> Vec<DeviceView> {
    config
        .devices
        .iter()
        .map(|d| DeviceView {
            id: d.id.to_string(),
            name: d.name.clone(),
            addresses: d.addresses.clone(),
            paused: d.paused,
            auto_accept_folders: d.auto_accept_folders,
            introducer: d.introducer,
            introduced_by: d.introduced_by.map(|i| i.to_string()),
            folders: config
                .folders
                .iter()
                .filter(|f| f.devices.contains(&d.id))
                .map(|f| f.id.to_string())
                .collect(),
            max_send_kibps: d.max_send_kibps,
            max_recv_kibps: d.max_recv_kibps,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syncing_folder_shows_its_rate_eta_and_failed_items_and_a_connection_its_rates() {
        let id = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD";
        let counts = serde_json::json!({"files": 1, "directories": 0, "bytes": 3 << 20});
        let status: Status = serde_json::from_value(serde_json::json!({
            "device": id, "running": true,
            "folders": [{"id": "f", "label": "", "path": "/f", "type": "send-receive", "state": "syncing",
                "local": counts, "global": counts, "need": {"items": 1, "bytes": 3 << 20},
                "devices": [], "rate_bps": 1 << 20, "eta_s": 3, "failed_items": 2}],
            "devices": [{"id": id, "name": "laptop", "paused": false, "connected": true,
                "address": "127.0.0.1:22000", "transport": "tcp", "rate_in_bps": 2048, "rate_out_bps": 10}],
        }))
        .unwrap();
        let text = status.to_string();
        assert!(text.contains("  pulling at 1.0 MiB/s, done in 3s\n"), "{text}");
        assert!(text.contains("  2 items failed to sync (`peerfold folder errors f` says why)\n"), "{text}");
        assert!(text.contains("from 127.0.0.1:22000, in 2.0 KiB/s, out 10 B/s"), "{text}");
        assert_eq!(format_duration(3725), "1h 2m 5s");
        assert_eq!(human_bytes(1023), "1023 B");
    }
}
