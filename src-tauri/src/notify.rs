//! Native notifications: which engine events are worth interrupting the user for, and showing
//! them (tauri-plugin-notification).
//!
//! A device asking to connect, a folder offered, a new conflict and errors. Events that repeat
//! while nothing changed (a pending device dials again every few seconds, a peer re-announces
//! its offers, a folder stays in error) are shown once per run.

use std::collections::HashSet;

use peerfold_engine::engine::{Event, FolderState};
use tauri::{AppHandle, Runtime};

/// Remembers what was shown, so repeats are not.
#[derive(Default)]
pub struct Notifier {
    shown: HashSet<String>,
}

impl Notifier {
    /// The notification (title, body) for `event`, if it deserves one and was not shown yet.
    pub fn notification(&mut self, event: &Event) -> Option<(String, String)> {
        let (key, title, body) = match event {
            Event::DevicePending { device, name, address } => {
                let who = if name.is_empty() {
                    format!("Device {device}")
                } else {
                    format!("\"{name}\" ({device})")
                };
                (
                    format!("device:{device}"),
                    "A device wants to connect".to_owned(),
                    format!("{who} asks to connect from {address}. Open Peerfold to add it."),
                )
            }
            Event::FolderOffered { folder, label, device } => {
                let what = if label.is_empty() {
                    format!("\"{folder}\"")
                } else {
                    format!("\"{label}\" ({folder})")
                };
                (
                    format!("offer:{folder}:{device}"),
                    "A folder is offered".to_owned(),
                    format!("Device {device} shares folder {what}. Open Peerfold to accept it."),
                )
            }
            Event::Pulled { folder, conflicts, .. } if !conflicts.is_empty() => {
                let first = &conflicts[0];
                let more = match conflicts.len() {
                    1 => String::new(),
                    n => format!(" and {} more", n - 1),
                };
                // Every conflict copy is new, so it is always shown.
                return Some((
                    format!("Conflict in folder \"{folder}\""),
                    format!("{first}{more} changed on two devices at once; both versions are kept."),
                ));
            }
            Event::StateChanged { folder, state } => {
                let FolderState::Error { message } = state else {
                    // Out of the error: the same error later is news again.
                    self.shown.retain(|k| !k.starts_with(&format!("error:{folder}:")));
                    return None;
                };
                (
                    format!("error:{folder}:{message}"),
                    format!("Folder \"{folder}\" has a problem"),
                    format!("{message}."),
                )
            }
            Event::MassDeleteHeld { folder, deleted, total } => (
                format!("held:{folder}:{deleted}"),
                format!("Folder \"{folder}\" is waiting for you"),
                format!(
                    "{deleted} of its {total} files are gone; nothing is deleted on other devices until you confirm."
                ),
            ),
            Event::PullIssue { folder, path, reason } => (
                format!("pull:{folder}:{path}:{reason}"),
                format!("A file in \"{folder}\" cannot be synced"),
                format!("{path}: {reason}."),
            ),
            _ => return None,
        };
        self.shown.insert(key).then_some((title, body))
    }
}

/// Shows a notification. Off the main thread: on Linux it is a D-Bus call that may wait, and
/// a desktop without a notification service is not an error worth more than a log line.
pub fn show<R: Runtime>(app: &AppHandle<R>, title: &str, body: &str) {
    use tauri_plugin_notification::NotificationExt as _;
    let app = app.clone();
    let (title, body) = (title.to_owned(), body.to_owned());
    tauri::async_runtime::spawn_blocking(move || {
        if let Err(e) = app.notification().builder().title(&title).body(&body).show() {
            tracing::info!(error = %e, %title, "cannot show a notification");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> peerfold_engine::identity::DeviceId {
        "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD".parse().unwrap()
    }

    #[test]
    fn pending_devices_and_offers_are_shown_once() {
        let mut n = Notifier::default();
        let pending = Event::DevicePending {
            device: device(),
            name: "laptop".into(),
            address: "tcp://127.0.0.1:1".into(),
        };
        let (title, body) = n.notification(&pending).unwrap();
        assert_eq!(title, "A device wants to connect");
        assert!(body.contains("\"laptop\"") && body.contains("tcp://127.0.0.1:1"), "{body}");
        assert!(n.notification(&pending).is_none(), "the same request again is not news");
        let offer =
            Event::FolderOffered { folder: "photos".into(), label: "Photos".into(), device: device() };
        assert!(n.notification(&offer).unwrap().1.contains("\"Photos\" (photos)"));
        assert!(n.notification(&offer).is_none());
    }

    #[test]
    fn conflicts_always_and_errors_once_until_resolved() {
        let mut n = Notifier::default();
        let folder: peerfold_engine::config::FolderId = "docs".parse().unwrap();
        let pulled = Event::Pulled {
            folder: folder.clone(),
            applied: 2,
            fetched_bytes: 0,
            copied_bytes: 0,
            conflicts: vec!["a.sync-conflict-1.txt".into(), "b.sync-conflict-1.txt".into()],
        };
        assert!(n.notification(&pulled).unwrap().1.starts_with("a.sync-conflict-1.txt and 1 more"));
        assert!(n.notification(&pulled).is_some(), "every conflict is new");
        let clean = Event::Pulled {
            folder: folder.clone(),
            applied: 1,
            fetched_bytes: 0,
            copied_bytes: 0,
            conflicts: vec![],
        };
        assert!(n.notification(&clean).is_none());

        let error = Event::StateChanged {
            folder: folder.clone(),
            state: FolderState::Error { message: "disk gone".into() },
        };
        assert_eq!(n.notification(&error).unwrap().0, "Folder \"docs\" has a problem");
        assert!(n.notification(&error).is_none());
        assert!(n.notification(&Event::StateChanged { folder, state: FolderState::Idle }).is_none());
        assert!(n.notification(&error).is_some(), "the error is news again after it was resolved");
    }

    #[test]
    fn connections_are_not_notified() {
        let mut n = Notifier::default();
        let e = Event::DeviceDisconnected { device: device(), reason: "closed".into() };
        assert!(n.notification(&e).is_none());
    }
}
