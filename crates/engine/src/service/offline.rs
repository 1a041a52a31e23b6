//! The service of a home with no daemon running: answers from the configuration file and the
//! index directly, changes saved for the next start (which scans what changed on disk).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{
    Backend, Edited, FolderConflict, IgnoreLines, Request, Response, Service, ServiceError, SystemInfo,
};
use crate::config::{Change, Config, Edit, FolderId};
use crate::db::Index;
use crate::folder_files;
use crate::identity::DeviceId;

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

    fn folder(&self, id: &FolderId) -> Result<crate::config::FolderConfig, ServiceError> {
        super::folder_config(&self.load()?, id)
    }
}

/// Why a request that acts on a running folder cannot be answered without the daemon.
fn needs_daemon(folder: &FolderId) -> ServiceError {
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
}

impl Service for Offline {
    async fn handle(&self, request: Request) -> Result<Response, ServiceError> {
        let now = std::time::SystemTime::now;
        Ok(match request {
            Request::System => Response::System(SystemInfo {
                id: self.me.to_string(),
                name: self.load()?.name,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                uptime_s: 0,
            }),
            Request::Status => {
                let config = self.load()?;
                Response::Status(Box::new(crate::status::status(self.me, &config, &self.index, None).await?))
            }
            Request::Devices => Response::Devices(crate::status::device_views(&self.load()?)),
            Request::Folders => Response::Folders(super::folder_views(&self.load()?)),
            Request::Edit { edit } => Response::Edited(self.edit(edit).await?),
            Request::AddDevice { device, name, addresses } => {
                Response::Edited(super::add_device(self, device, name, addresses).await?)
            }
            Request::UpdateDevice { device, name, addresses, paused } => {
                Response::Edited(super::update_device(self, device, name, addresses, paused).await?)
            }
            Request::RemoveDevice { device } => Response::Edited(super::remove_device(self, device).await?),
            Request::AddFolder { folder, path, label, folder_type, devices, versioning, create } => {
                Response::Edited(
                    super::add_folder(self, folder, path, label, folder_type, devices, versioning, create)
                        .await?,
                )
            }
            Request::UpdateFolder {
                folder,
                label,
                devices,
                versioning,
                paused,
                rescan_interval_s,
                watch,
            } => Response::Edited(
                super::update_folder(
                    self,
                    folder,
                    label,
                    devices,
                    versioning,
                    paused,
                    rescan_interval_s,
                    watch,
                )
                .await?,
            ),
            Request::RemoveFolder { folder } => Response::Edited(super::remove_folder(self, folder).await?),
            Request::Scan { folder } | Request::ConfirmDeletes { folder } | Request::Revert { folder } => {
                return Err(needs_daemon(&folder));
            }
            Request::Ignores { folder } => {
                let root = self.folder(&folder)?.path;
                Response::Ignores(IgnoreLines {
                    lines: blocking(move || folder_files::read_ignores(&root)).await?,
                })
            }
            Request::SetIgnores { folder, lines } => {
                let root = self.folder(&folder)?.path;
                let lines = blocking(move || {
                    folder_files::write_ignores(&root, &lines)?;
                    folder_files::read_ignores(&root)
                })
                .await?;
                Response::Ignores(IgnoreLines { lines })
            }
            Request::Conflicts { folder } => {
                let config = self.load()?;
                let ids: Vec<FolderId> = match folder {
                    Some(id) => vec![super::folder_config(&config, &id)?.id],
                    None => config.folders.iter().map(|f| f.id.clone()).collect(),
                };
                let mut all = Vec::new();
                for id in ids {
                    // A folder never indexed has no conflict copies in the index.
                    let Some(idx) = self.index.folder(id.as_str()).await? else { continue };
                    let list = folder_files::conflicts(&self.index, idx, &config, self.me.short())
                        .await
                        .map_err(|e| ServiceError::failed(&e))?;
                    all.extend(
                        list.into_iter().map(|conflict| FolderConflict { folder: id.clone(), conflict }),
                    );
                }
                Response::Conflicts(all)
            }
            Request::ResolveConflict { folder, conflict, keep } => {
                let f = self.folder(&folder)?;
                let versioning = f.versioning != crate::config::Versioning::None;
                let name = conflict.clone();
                blocking(move || folder_files::resolve_conflict(&f.path, &name, keep, versioning, now()))
                    .await?;
                Response::Edited(super::resolved(&conflict, keep))
            }
            Request::Versions { folder } => {
                let root = self.folder(&folder)?.path;
                Response::Versions(blocking(move || folder_files::list_versions(&root)).await?)
            }
            Request::Restore { folder, path, version } => {
                let root = self.folder(&folder)?.path;
                let (p, v) = (path.clone(), version.clone());
                blocking(move || folder_files::restore_version(&root, &p, &v, now())).await?;
                Response::Edited(super::restored(&path, &version))
            }
            Request::FailedItems { folder } => {
                // Failed items live in the daemon's memory: none without it.
                self.folder(&folder)?;
                Response::FailedItems(Vec::new())
            }
            Request::Needed { folder } => {
                self.folder(&folder)?;
                let idx = self.index.folder(folder.as_str()).await?.unwrap_or(crate::db::FolderIdx::NONE);
                let items = self.index.needed_items(idx, crate::engine::NEEDED_LISTED).await?;
                Response::Needed(items.into_iter().map(Into::into).collect())
            }
            Request::Pending => Response::Pending(super::pending(self).await?),
            Request::AcceptDevice { device, name, addresses } => {
                Response::Edited(super::accept_device(self, device, name, addresses).await?)
            }
            Request::AcceptFolder { folder, device, path, create } => {
                Response::Edited(super::accept_folder(self, folder, device, path, create).await?)
            }
            Request::DismissDevice { device } => Response::Edited(super::dismiss_device(self, device).await?),
            Request::DismissFolder { folder, device } => {
                Response::Edited(super::dismiss_folder(self, folder, device).await?)
            }
            Request::Discovery => {
                return Err(ServiceError::NeedsDaemon(String::from(
                    "candidates are the devices heard on the LAN while Peerfold runs: start `peerfold serve` \
                     and try again",
                )));
            }
            Request::Log { .. } => {
                return Err(ServiceError::NeedsDaemon(String::from(
                    "the log is the running daemon's: start `peerfold serve` and try again",
                )));
            }
            Request::Join { link, paths } => {
                let Some(tls) = self.tls.clone() else {
                    return Err(ServiceError::NeedsDaemon(
                        "joining needs this device's identity: start `peerfold serve` and try again".into(),
                    ));
                };
                let net = crate::net::Net::bind(tls, &[]).await.map_err(|e| ServiceError::failed(&e))?;
                let joined = super::join(self, &net, link, paths).await;
                net.shutdown().await;
                Response::Edited(joined?)
            }
            Request::Invite { .. } => {
                return Err(ServiceError::NeedsDaemon(String::from(
                    "an invitation holds the addresses the daemon listens on, and the daemon answers it: \
                     start `peerfold serve` and try again",
                )));
            }
        })
    }
}
