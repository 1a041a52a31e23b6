//! The service of a running engine: the daemon's, and the desktop app's in-process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::{
    Backend, DiscoveredDevice, Discovery, Edited, InviteLink, NeededItem, Request, Response, Service,
    ServiceError,
};
use crate::config::{Config, Edit, FolderConfig, FolderId};
use crate::db::Index;
use crate::engine::{Engine, FailedItem};
use crate::folder_files::{ConflictView, Keep, VersionedFile};
use crate::identity::DeviceId;
use crate::recent_log::LogLine;
use crate::scan::ScanSummary;

/// [`Service`] over the running [`Engine`]: changes apply at once.
#[derive(Clone)]
pub struct Running {
    engine: Arc<Engine>,
    me: DeviceId,
    started: Instant,
}

impl Running {
    pub fn new(engine: Arc<Engine>, me: DeviceId) -> Self {
        Self { engine, me, started: Instant::now() }
    }

    /// The engine it drives (for what is not a request: its event stream).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// This device's ID.
    pub fn me(&self) -> DeviceId {
        self.me
    }
}

impl Backend for Running {
    fn config(&self) -> Result<Arc<Config>, ServiceError> {
        Ok(self.engine.config())
    }

    fn index(&self) -> &Index {
        self.engine.index()
    }

    async fn edit(&self, edit: Edit) -> Result<Edited, ServiceError> {
        let change = self.engine.edit_config(edit).await?;
        Ok(Edited { changed: change.changed(), message: change.to_string() })
    }

    fn me(&self) -> DeviceId {
        self.me
    }

    fn engine(&self) -> Option<&Engine> {
        Some(&self.engine)
    }

    fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    async fn scan(&self, folder: &FolderConfig) -> Result<ScanSummary, ServiceError> {
        Ok(self.engine.scan(&folder.id, Vec::new()).await?)
    }

    async fn confirm_deletes(&self, folder: &FolderConfig) -> Result<Edited, ServiceError> {
        let summary = self.engine.confirm_deletes(&folder.id).await?;
        let message = format!(
            "Confirmed: folder \"{}\" recorded {} deletions and syncs again.",
            folder.id, summary.deleted
        );
        Ok(Edited { changed: true, message })
    }

    async fn revert(&self, folder: &FolderConfig) -> Result<Edited, ServiceError> {
        let outcome = self.engine.revert(&folder.id).await?;
        let message = format!(
            "Reverting folder \"{}\": {} entries get the other devices' version back, {} added here are removed (to the trash can if it keeps versions).",
            folder.id, outcome.reverted, outcome.deleted
        );
        Ok(Edited { changed: outcome.reverted + outcome.deleted > 0, message })
    }

    async fn ignores(&self, folder: &FolderConfig) -> Result<Vec<String>, ServiceError> {
        Ok(self.engine.ignores(&folder.id).await?)
    }

    async fn set_ignores(
        &self,
        folder: &FolderConfig,
        lines: Vec<String>,
    ) -> Result<Vec<String>, ServiceError> {
        self.engine.set_ignores(&folder.id, lines).await?;
        Ok(self.engine.ignores(&folder.id).await?)
    }

    async fn set_selection(
        &self,
        folder: &FolderConfig,
        lines: Vec<String>,
        trash: Vec<String>,
    ) -> Result<(), ServiceError> {
        Ok(self.engine.set_selection(&folder.id, lines, trash).await?)
    }

    async fn conflicts(&self, _: &Config, folder: &FolderConfig) -> Result<Vec<ConflictView>, ServiceError> {
        Ok(self.engine.conflicts(&folder.id).await?)
    }

    async fn resolve_conflict(
        &self,
        folder: &FolderConfig,
        conflict: String,
        keep: Keep,
    ) -> Result<(), ServiceError> {
        Ok(self.engine.resolve_conflict(&folder.id, conflict, keep).await?)
    }

    async fn versions(&self, folder: &FolderConfig) -> Result<Vec<VersionedFile>, ServiceError> {
        Ok(self.engine.versions(&folder.id).await?)
    }

    async fn restore(
        &self,
        folder: &FolderConfig,
        path: String,
        version: String,
    ) -> Result<(), ServiceError> {
        Ok(self.engine.restore_version(&folder.id, path, version).await?)
    }

    fn failed_items(&self, folder: &FolderConfig) -> Result<Vec<FailedItem>, ServiceError> {
        Ok(self.engine.failed_items(&folder.id)?)
    }

    async fn needed(&self, folder: &FolderConfig) -> Result<Vec<NeededItem>, ServiceError> {
        Ok(self.engine.needed(&folder.id).await?.into_iter().map(Into::into).collect())
    }

    fn discovery(&self) -> Result<Discovery, ServiceError> {
        let config = self.engine.config();
        let devices = self
            .engine
            .discovered()
            .into_iter()
            .map(|s| DiscoveredDevice {
                known: config.devices.iter().any(|d| d.id == s.device),
                device: s.device,
                addresses: s.addresses,
                source: s.source,
                age_s: s.age_s,
            })
            .collect();
        Ok(Discovery { announced: self.engine.announced(), devices })
    }

    fn log(&self, since: u64) -> Result<Vec<LogLine>, ServiceError> {
        Ok(crate::recent_log::RECENT.since(since))
    }

    async fn join(&self, link: String, paths: BTreeMap<String, PathBuf>) -> Result<Edited, ServiceError> {
        let Some(net) = self.engine.net() else {
            return Err(ServiceError::NeedsDaemon("this engine runs without networking".into()));
        };
        super::join(self, net, link, paths).await
    }

    async fn invite(
        &self,
        folders: Vec<FolderId>,
        expires_s: Option<u64>,
        uses: Option<u32>,
    ) -> Result<InviteLink, ServiceError> {
        super::invite(&self.engine, self.me, folders, expires_s, uses).await
    }
}

impl Service for Running {
    async fn handle(&self, request: Request) -> Result<Response, ServiceError> {
        super::handle(self, request).await
    }
}
