//! One printing function per typed answer: JSON (`--json`) or the lines a person reads.

use peerfold::bandwidth::InForce;
use peerfold::config::{Config, kibps};
use peerfold::discovery::Seen;
use peerfold::engine::FailedItem;
use peerfold::folder_files::VersionedFile;
use peerfold::service::{
    BrowsePage, Discovery, Edited, EntryKind, FolderConflict, FolderView, IgnoreLines, NeededItem, Pending,
    PendingDevice, PendingFolder,
};
use peerfold::status::{self, DeviceView, Status};
use serde::Serialize;

/// Prints `items` as JSON, or a line each (`none` when there are none).
fn list<T: Serialize>(
    items: &[T],
    json: bool,
    none: &str,
    line: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(items)?);
    } else if items.is_empty() {
        println!("{none}");
    } else {
        for item in items {
            println!("{}", line(item));
        }
    }
    Ok(())
}

/// JSON as it always printed: through `serde_json::Value`, whose objects keep their keys sorted.
fn json_value(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&serde_json::to_value(value)?)?);
    Ok(())
}

/// What a change did: its one line.
/// A new invitation: the link, its QR code and what it offers.
pub fn invite(invite: &peerfold::service::InviteLink, json: bool) -> anyhow::Result<()> {
    if json {
        return json_value(invite);
    }
    println!("{}", invite.link);
    let qr = peerfold::identity::qr_text_terminal(&invite.link);
    if !qr.is_empty() {
        println!("{qr}");
    }
    let folders: Vec<String> = invite.folders.iter().map(|f| format!("\"{}\"", f.id)).collect();
    let offered = if folders.is_empty() { String::from("no folders") } else { folders.join(", ") };
    let uses = if invite.uses == 1 { String::from("once") } else { format!("{} times", invite.uses) };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let left = invite.expires_at.saturating_sub(now).max(0);
    let valid = match left {
        s if s >= 2 * 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    };
    println!("Offers {offered}; works {uses}, for the next {valid}. On the other device: peerfold join LINK");
    println!("It reaches this device at: {}", invite.addresses.join(", "));
    Ok(())
}

pub fn edited(answer: &Edited) {
    println!("{}", answer.message);
}

pub fn status(status: &Status, json: bool) -> anyhow::Result<()> {
    if json {
        json_value(status)
    } else {
        print!("{status}");
        Ok(())
    }
}

fn pending_device(d: &PendingDevice) -> String {
    let name = if d.name.is_empty() { String::new() } else { format!(" {:?}", d.name) };
    format!("{}{name} from {}, last seen {}", d.device, d.address, status::format_time(d.seen_at))
}

fn pending_folder(f: &PendingFolder) -> String {
    let label = if f.label.is_empty() { String::new() } else { format!(" ({})", f.label) };
    format!("\"{}\"{label} offered by {}, last seen {}", f.folder, f.device, status::format_time(f.seen_at))
}

/// `peerfold pending`: both lists, with how to accept.
pub fn pending(pending: &Pending, json: bool) -> anyhow::Result<()> {
    if json {
        return json_value(pending);
    }
    println!("Devices asking to connect (accept with `peerfold pending accept-device ID`):");
    list(&pending.devices, false, "  none", |d| format!("  {}", pending_device(d)))?;
    println!("Folder offers (accept with `peerfold pending accept-folder ID --from DEVICE PATH`):");
    list(&pending.folders, false, "  none", |f| format!("  {}", pending_folder(f)))
}

pub fn pending_devices(devices: &[PendingDevice], json: bool) -> anyhow::Result<()> {
    list(devices, json, "No devices are pending.", pending_device)
}

pub fn pending_folders(folders: &[PendingFolder], json: bool) -> anyhow::Result<()> {
    list(folders, json, "No folder offers are pending.", pending_folder)
}

/// `device candidates`: the devices discovery heard of that are not configured.
pub fn candidates(discovery: Discovery, json: bool) -> anyhow::Result<()> {
    let seen: Vec<Seen> = discovery
        .devices
        .into_iter()
        .filter(|d| !d.known)
        .map(|d| Seen { device: d.device, addresses: d.addresses, source: d.source, age_s: d.age_s })
        .collect();
    list(&seen, json, "No devices were heard of that are not added.", |s| {
        format!("{} ({}) at {}, {} s ago", s.device, s.source, s.addresses.join(", "), s.age_s)
    })
}

pub fn devices(devices: &[DeviceView], json: bool) -> anyhow::Result<()> {
    list(devices, json, "No devices are configured.", |d| {
        let name = if d.name.is_empty() { String::new() } else { format!(" {:?}", d.name) };
        let folders: Vec<String> = d.folders.iter().map(|f| format!("\"{f}\"")).collect();
        let shared = if folders.is_empty() { "no folders".to_owned() } else { folders.join(", ") };
        let paused = if d.paused { ", paused" } else { "" };
        let auto = if d.auto_accept_folders { ", accepts its folders" } else { "" };
        let intro = if d.introducer { ", introducer" } else { "" };
        let by = d.introduced_by.as_ref().map(|i| format!(", introduced by {i}")).unwrap_or_default();
        let limits = if d.max_send_kibps != 0 || d.max_recv_kibps != 0 {
            format!(", sending {}, receiving {}", kibps(d.max_send_kibps), kibps(d.max_recv_kibps))
        } else {
            String::new()
        };
        format!(
            "{}{name}: {}; shares {shared}{paused}{auto}{intro}{by}{limits}",
            d.id,
            d.addresses.join(", ")
        )
    })
}

pub fn folders(folders: &[FolderView], json: bool) -> anyhow::Result<()> {
    list(folders, json, "No folders are configured.", |f| {
        let label = if f.label.is_empty() { String::new() } else { format!(" ({})", f.label) };
        let shared = match f.devices.len() {
            0 => "shared with no device".to_owned(),
            1 => "shared with 1 device".to_owned(),
            n => format!("shared with {n} devices"),
        };
        let paused = if f.paused { ", paused" } else { "" };
        format!("\"{}\"{label} at {}: {}, {}, {shared}{paused}", f.id, f.path, f.folder_type, f.versioning)
    })
}

/// The patterns, a line each; after setting them, how many there are now.
pub fn ignores(folder: &str, answer: &IgnoreLines, set: bool) {
    if set {
        println!("Folder \"{folder}\" has {} ignore lines now.", answer.lines.len());
    } else {
        for line in &answer.lines {
            println!("{line}");
        }
    }
}

/// The old versions of every file, or of `only` that one.
pub fn versions(mut files: Vec<VersionedFile>, only: Option<&str>, json: bool) -> anyhow::Result<()> {
    files.retain(|f| only.is_none_or(|p| p == f.path));
    list(&files, json, "No old versions are kept.", |f| {
        let versions: Vec<String> = f
            .versions
            .iter()
            .map(|v| format!("  {}  {}  modified {}", v.version, status::human_bytes(v.size), v.modified))
            .collect();
        format!("{}\n{}", f.path, versions.join("\n"))
    })
}

pub fn failed_items(items: &[FailedItem], json: bool) -> anyhow::Result<()> {
    list(items, json, "No items failed.", |i| {
        let path = if i.path.is_empty() { "(the whole pull)" } else { &i.path };
        format!("{path}: {} (since {})", i.error, i.at)
    })
}

/// One page of a browsed directory: a line per child, or one JSON object per child.
pub fn browse_page(page: &BrowsePage, json: bool) -> anyhow::Result<()> {
    for item in &page.items {
        if json {
            println!("{}", serde_json::to_string(item)?);
            continue;
        }
        let mark = match (item.selected, item.partial) {
            (true, false) => "[x]",
            (_, true) => "[-]",
            (false, false) => "[ ]",
        };
        let slash = if item.kind == EntryKind::Directory { "/" } else { "" };
        let here = if item.local { "here" } else { "not here" };
        let on = if item.devices.is_empty() {
            String::new()
        } else {
            let ids: Vec<String> = item.devices.iter().map(|d| d.short().to_string()).collect();
            format!(", on {}", ids.join(" "))
        };
        println!("{mark} {}{slash}  {}, {here}{on}", item.name, status::human_bytes(item.size));
    }
    Ok(())
}

pub fn needed(items: &[NeededItem], json: bool) -> anyhow::Result<()> {
    list(items, json, "Nothing is needed.", |i| {
        if i.deleted {
            format!("{} (to delete)", i.path)
        } else {
            format!("{} ({})", i.path, status::human_bytes(i.size))
        }
    })
}

pub fn conflicts(conflicts: &[FolderConflict], json: bool) -> anyhow::Result<()> {
    list(conflicts, json, "No conflicts.", |c| {
        let c_ = &c.conflict;
        let device = c_.device_name.as_ref().map_or(c_.device.clone(), |n| format!("{} ({n})", c_.device));
        let current = c_.current.as_ref().map_or(String::from("gone"), |f| {
            format!("{}, modified {}", status::human_bytes(f.size), f.modified)
        });
        format!(
            "\"{}\" {}: conflict copy {} ({}, modified {}) vs current ({current}); named for device {device}",
            c.folder,
            c_.path,
            c_.conflict,
            status::human_bytes(c_.copy.size),
            c_.copy.modified
        )
    })
}

/// The configured limits and schedule, and what is in force now.
pub fn limits(config: &Config, now: &InForce) {
    let o = &config.options;
    let lan = if o.limit_lan { "also on the LAN" } else { "not on the LAN" };
    println!("Limits: sending {}, receiving {}, {lan}.", kibps(o.max_send_kibps), kibps(o.max_recv_kibps));
    for (i, rule) in o.schedule.iter().enumerate() {
        let what = if rule.pause {
            "every device paused".to_owned()
        } else {
            format!("sending {}, receiving {}", kibps(rule.max_send_kibps), kibps(rule.max_recv_kibps))
        };
        let marker = if now.rule.as_ref().is_some_and(|r| r.index == i) { "  (in force now)" } else { "" };
        println!("Schedule {}: {}: {what}{marker}", i + 1, rule.window());
    }
    let state = |v: Option<bool>, yes: &str, no: &str| match v {
        Some(true) => yes.to_owned(),
        Some(false) => no.to_owned(),
        None => "unknown".to_owned(),
    };
    if o.pause_on_metered {
        let now = state(now.power.metered, "metered now", "not metered now");
        println!("Every device pauses on a metered network ({now}).");
    }
    if o.pause_on_battery {
        let now = state(now.power.on_battery, "on battery now", "on mains power now");
        println!("Every device pauses on battery ({now}).");
    }
    if !now.paused.is_empty() {
        println!("Every device is paused now (`peerfold status` says why).");
    } else {
        println!(
            "In force now: sending {}, receiving {}.",
            kibps(now.max_send_kibps),
            kibps(now.max_recv_kibps)
        );
    }
}
