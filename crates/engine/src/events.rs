//! What the engine tells front-ends: a folder's state and the events it broadcasts. Defined
//! below the engine so that the tasks emitting them (the model's connections, the folder tasks)
//! need nothing from the engine itself.

use serde::Serialize;

use crate::config::FolderId;
use crate::identity::DeviceId;

/// What a folder is doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum FolderState {
    Idle,
    Scanning,
    Syncing,
    Error {
        message: String,
    },
    /// A scan found `deleted` of the folder's `total` files gone at once and recorded none of
    /// those deletions: the user confirms them
    /// ([`Engine::confirm_deletes`](crate::engine::Engine::confirm_deletes)) or restores the
    /// files. Meanwhile every scan is a full scan and nothing is pulled.
    WaitingForConfirmation {
        deleted: u64,
        total: u64,
    },
}

/// Something that happened, for front-ends to show.
// IDs and addresses are strings in the API document (`value_type`).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    StateChanged {
        #[schema(value_type = String)]
        folder: FolderId,
        state: FolderState,
    },
    /// A scan finished; `changed` entries were recorded and the folder is at `sequence`.
    LocalIndexUpdated {
        #[schema(value_type = String)]
        folder: FolderId,
        changed: u64,
        sequence: i64,
    },
    /// A pull finished: `applied` entries were created, changed or deleted.
    Pulled {
        #[schema(value_type = String)]
        folder: FolderId,
        applied: u64,
        fetched_bytes: u64,
        copied_bytes: u64,
        conflicts: Vec<String>,
    },
    /// An entry the puller could not apply (it tries again later).
    PullIssue {
        #[schema(value_type = String)]
        folder: FolderId,
        path: String,
        reason: String,
    },
    /// A file or directory the scanner had to pass over.
    ScanIssue {
        #[schema(value_type = String)]
        folder: FolderId,
        path: String,
        reason: String,
    },
    /// A receive-only folder's local changes were reverted: `reverted` entries get the global
    /// version back (pulled next), `deleted` entries only this device had were deleted.
    Reverted {
        #[schema(value_type = String)]
        folder: FolderId,
        reverted: u64,
        deleted: u64,
    },
    /// A scan found `deleted` of the folder's `total` files gone and held the deletions back;
    /// the folder waits for the user (see [`FolderState::WaitingForConfirmation`]).
    MassDeleteHeld {
        #[schema(value_type = String)]
        folder: FolderId,
        deleted: u64,
        total: u64,
    },
    /// A device that is not configured here tried to connect; it is kept as pending until the
    /// user accepts or dismisses it.
    DevicePending {
        #[schema(value_type = String)]
        device: DeviceId,
        /// The name it announced (empty if it sent none in time).
        name: String,
        /// Where it connected from, as `tcp://IP:PORT` or `quic://IP:PORT`.
        address: String,
    },
    /// A device offered a folder that is not shared with it here; kept until accepted or
    /// dismissed. Sent again each time the device announces it (every ClusterConfig).
    FolderOffered {
        folder: String,
        label: String,
        #[schema(value_type = String)]
        device: DeviceId,
    },
    /// A configured device connected.
    DeviceConnected {
        #[schema(value_type = String)]
        device: DeviceId,
        #[schema(value_type = String)]
        address: std::net::SocketAddr,
        transport: crate::net::Transport,
    },
    /// A connected device's connection ended.
    DeviceDisconnected {
        #[schema(value_type = String)]
        device: DeviceId,
        reason: String,
    },
}
