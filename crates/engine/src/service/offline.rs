//! The service of a home with no daemon running: answers from the configuration file and the
//! index directly, changes saved for the next start (which scans what changed on disk).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Backend, Discovery, Edited, InviteLink, NeededItem, Request, Response, Service, ServiceError};
use crate::config::{Change, Config, Edit, FolderConfig, FolderId};
use crate::db::Index;
use crate::engine::FailedItem;
use crate::folder_files::{self, ConflictView, Keep, VersionedFile};
use crate::identity::DeviceId;
use crate::recent_log::LogLine;
use crate::scan::ScanSummary;

/// [`Service`] over a home's `config.toml` and index, for device `me`. Whoever makes it for
/// changes holds the home (its lock), so nothing else writes them meanwhile; for a read-only
/// request ([`Request::is_read_only`]) an index opened read-only, without the lock, will do.
pub struct Offline {
    me: DeviceId,
    config_file: PathBuf,
    index: Index,
    /// The device's TLS identity, to join an invitation with (see [`Offline::with_tls`]).
    tls: Option<crate::net::TlsIdentity>,
}

impl Offline {
    pub fn new(me: DeviceId, config_file: &Path, index: Index) -> Self {
        Self { me, config_file: config_file.to_owned(), index, tls: None }
    }

    /// Lets it join invitations, dialling with this identity (the home's own).
    pub fn with_tls(mut self, tls: crate::net::TlsIdentity) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Closes the index (the last commit is on disk when this returns).
    pub async fn close(self) {
        self.index.close().await;
    }

    fn load(&self) -> Result<Config, ServiceError> {
        Config::load(&self.config_file).map_err(|e| ServiceError::failed(&e))
    }
}

/// Why a request that acts on a running folder cannot be answered without the daemon.
fn needs_daemon(folder: &FolderConfig) -> ServiceError {
    let folder = &folder.id;
    ServiceError::NeedsDaemon(format!(
        "folder \"{folder}\" can be changed this way only while Peerfold runs: start `peerfold serve` and try again"
    ))
}

/// Runs blocking file work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, folder_files::FilesError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Failed(format!("the file operation did not finish: {e}")))?
        .map_err(ServiceError::from)
}

impl Backend for Offline {
    fn config(&self) -> Result<Arc<Config>, ServiceError> {
        self.load().map(Arc::new)
    }

    fn index(&self) -> &Index {
        &self.index
    }

    async fn edit(&self, edit: Edit) -> Result<Edited, ServiceError> {
        let mut config = self.load()?;
        let change = config
            .edit(self.me, edit)
            .map_err(|e| ServiceError::BadRequest(crate::engine::error_chain(&e)))?;
        if change.changed() {
            if let Change::FolderAdded { path, .. } = &change {
                crate::config::create_folder_root(path).map_err(|e| {
                    ServiceError::Failed(format!("cannot create folder {}: {e}", path.display()))
                })?;
            }
            config.save(&self.config_file).map_err(|e| ServiceError::failed(&e))?;
            crate::engine::settle_pending(&self.index, &change).await;
        }
        Ok(Edited { changed: change.changed(), message: change.to_string() })
    }

    fn me(&self) -> DeviceId {
        self.me
    }

    fn engine(&self) -> Option<&crate::engine::Engine> {
        None
    }

    fn uptime_s(&self) -> u64 {
        0
    }

    async fn scan(&self, folder: &FolderConfig) -> Result<ScanSummary, ServiceError> {
        Err(needs_daemon(folder))
    }

    async fn confirm_deletes(&self, folder: &FolderConfig) -> Result<Edited, ServiceError> {
        Err(needs_daemon(folder))
    }

    async fn revert(&self, folder: &FolderConfig) -> Result<Edited, ServiceError> {
        Err(needs_daemon(folder))
    }

    async fn ignores(&self, folder: &FolderConfig) -> Result<Vec<String>, ServiceError> {
        let root = folder.path.clone();
        blocking(move || folder_files::read_ignores(&root)).await
    }

    async fn set_ignores(
        &self,
        folder: &FolderConfig,
        lines: Vec<String>,
    ) -> Result<Vec<String>, ServiceError> {
        let root = folder.path.clone();
        blocking(move || {
            folder_files::write_ignores(&root, &lines)?;
            folder_files::read_ignores(&root)
        })
        .await
    }

    async fn set_selection(
        &self,
        folder: &FolderConfig,
        lines: Vec<String>,
        trash: Vec<String>,
    ) -> Result<(), ServiceError> {
        let root = folder.path.clone();
        blocking(move || {
            folder_files::write_ignores(&root, &lines)?;
            let now = std::time::SystemTime::now();
            for path in &trash {
                folder_files::trash_subtree(&root, path, now)?;
            }
            Ok(())
        })
        .await
    }

    async fn conflicts(
        &self,
        config: &Config,
        folder: &FolderConfig,
    ) -> Result<Vec<ConflictView>, ServiceError> {
        // A folder never indexed has no conflict copies in the index.
        let Some(idx) = self.index.folder(folder.id.as_str()).await? else { return Ok(Vec::new()) };
        folder_files::conflicts(&self.index, idx, config, self.me.short())
            .await
            .map_err(|e| ServiceError::failed(&e))
    }

    async fn resolve_conflict(
        &self,
        folder: &FolderConfig,
        conflict: String,
        keep: Keep,
    ) -> Result<(), ServiceError> {
        let (root, versioning) = (folder.path.clone(), folder.versioning != crate::config::Versioning::None);
        blocking(move || {
            folder_files::resolve_conflict(&root, &conflict, keep, versioning, std::time::SystemTime::now())
        })
        .await
        .map(drop)
    }

    async fn versions(&self, folder: &FolderConfig) -> Result<Vec<VersionedFile>, ServiceError> {
        let root = folder.path.clone();
        blocking(move || folder_files::list_versions(&root)).await
    }

    async fn restore(
        &self,
        folder: &FolderConfig,
        path: String,
        version: String,
    ) -> Result<(), ServiceError> {
        let root = folder.path.clone();
        blocking(move || folder_files::restore_version(&root, &path, &version, std::time::SystemTime::now()))
            .await
            .map(drop)
    }

    fn failed_items(&self, _: &FolderConfig) -> Result<Vec<FailedItem>, ServiceError> {
        // Failed items live in the daemon's memory: none without it.
        Ok(Vec::new())
    }

    async fn needed(&self, folder: &FolderConfig) -> Result<Vec<NeededItem>, ServiceError> {
        let idx = self.index.folder(folder.id.as_str()).await?.unwrap_or(crate::db::FolderIdx::NONE);
        let items = self.index.needed_items(idx, crate::engine::NEEDED_LISTED).await?;
        Ok(items.into_iter().map(Into::into).collect())
    }

    fn discovery(&self) -> Result<Discovery, ServiceError> {
        Err(ServiceError::NeedsDaemon(String::from(
            "candidates are the devices heard on the LAN while Peerfold runs: start `peerfold serve` and try again",
        )))
    }

    fn log(&self, _: u64) -> Result<Vec<LogLine>, ServiceError> {
        Err(ServiceError::NeedsDaemon(String::from(
            "the log is the running daemon's: start `peerfold serve` and try again",
        )))
    }

    async fn join(&self, link: String, paths: BTreeMap<String, PathBuf>) -> Result<Edited, ServiceError> {
        let Some(tls) = self.tls.clone() else {
            return Err(ServiceError::NeedsDaemon(
                "joining needs this device's identity: start `peerfold serve` and try again".into(),
            ));
        };
        let net = crate::net::Net::bind(tls, &[]).await.map_err(|e| ServiceError::failed(&e))?;
        let joined = super::join(self, &net, link, paths).await;
        net.shutdown().await;
        joined
    }

    async fn invite(
        &self,
        _: Vec<FolderId>,
        _: Option<u64>,
        _: Option<u32>,
    ) -> Result<InviteLink, ServiceError> {
        Err(ServiceError::NeedsDaemon(String::from(
            "an invitation holds the addresses the daemon listens on, and the daemon answers it: \
             start `peerfold serve` and try again",
        )))
    }
}

impl Service for Offline {
    async fn handle(&self, request: Request) -> Result<Response, ServiceError> {
        super::handle(self, request).await
    }
}
