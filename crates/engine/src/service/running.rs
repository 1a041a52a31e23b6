//! The service of a running engine: the daemon's, and the desktop app's in-process.

use std::sync::Arc;
use std::time::Instant;

use super::{
    Backend, DiscoveredDevice, Discovery, Edited, FolderConflict, IgnoreLines, Request, Response, Service,
    ServiceError, SystemInfo,
};
use crate::config::{Config, Edit, FolderId};
use crate::db::Index;
use crate::engine::Engine;
use crate::identity::DeviceId;

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

    /// 404 for a folder that is not configured, before asking the engine anything.
    fn known_folder(&self, id: &FolderId) -> Result<(), ServiceError> {
        super::folder_config(&self.engine.config(), id).map(drop)
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
}

impl Service for Running {
    async fn handle(&self, request: Request) -> Result<Response, ServiceError> {
        let engine = &self.engine;
        Ok(match request {
            Request::System => Response::System(SystemInfo {
                id: self.me.to_string(),
                name: engine.config().name.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                uptime_s: self.started.elapsed().as_secs(),
            }),
            Request::Status => {
                let config = engine.config();
                let status = crate::status::status(self.me, &config, engine.index(), Some(engine)).await?;
                Response::Status(Box::new(status))
            }
            Request::Devices => Response::Devices(crate::status::device_views(&engine.config())),
            Request::Folders => Response::Folders(super::folder_views(&engine.config())),
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
            Request::Scan { folder } => {
                self.known_folder(&folder)?;
                Response::Scanned(Box::new(engine.scan(&folder, Vec::new()).await?))
            }
            Request::ConfirmDeletes { folder } => {
                self.known_folder(&folder)?;
                let summary = engine.confirm_deletes(&folder).await?;
                let message = format!(
                    "Confirmed: folder \"{folder}\" recorded {} deletions and syncs again.",
                    summary.deleted
                );
                Response::Edited(Edited { changed: true, message })
            }
            Request::Revert { folder } => {
                self.known_folder(&folder)?;
                let outcome = engine.revert(&folder).await?;
                let message = format!(
                    "Reverting folder \"{folder}\": {} entries get the other devices' version back, {} added here are removed (to the trash can if it keeps versions).",
                    outcome.reverted, outcome.deleted
                );
                Response::Edited(Edited { changed: outcome.reverted + outcome.deleted > 0, message })
            }
            Request::Ignores { folder } => {
                Response::Ignores(IgnoreLines { lines: engine.ignores(&folder).await? })
            }
            Request::SetIgnores { folder, lines } => {
                self.known_folder(&folder)?;
                engine.set_ignores(&folder, lines).await?;
                Response::Ignores(IgnoreLines { lines: engine.ignores(&folder).await? })
            }
            Request::Conflicts { folder } => {
                let ids = match folder {
                    Some(id) => {
                        self.known_folder(&id)?;
                        vec![id]
                    }
                    None => engine.config().folders.iter().map(|f| f.id.clone()).collect(),
                };
                let mut all = Vec::new();
                for folder in ids {
                    let list = engine.conflicts(&folder).await?;
                    all.extend(
                        list.into_iter().map(|conflict| FolderConflict { folder: folder.clone(), conflict }),
                    );
                }
                Response::Conflicts(all)
            }
            Request::ResolveConflict { folder, conflict, keep } => {
                self.known_folder(&folder)?;
                engine.resolve_conflict(&folder, conflict.clone(), keep).await?;
                Response::Edited(super::resolved(&conflict, keep))
            }
            Request::Versions { folder } => Response::Versions(engine.versions(&folder).await?),
            Request::Restore { folder, path, version } => {
                self.known_folder(&folder)?;
                engine.restore_version(&folder, path.clone(), version.clone()).await?;
                Response::Edited(super::restored(&path, &version))
            }
            Request::FailedItems { folder } => Response::FailedItems(engine.failed_items(&folder)?),
            Request::Needed { folder } => {
                Response::Needed(engine.needed(&folder).await?.into_iter().map(Into::into).collect())
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
                let config = engine.config();
                let devices = engine
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
                Response::Discovery(Discovery { announced: engine.announced(), devices })
            }
            Request::Log { since } => Response::Log(crate::recent_log::RECENT.since(since)),
            Request::Join { link, paths } => {
                let Some(net) = engine.net() else {
                    return Err(ServiceError::NeedsDaemon("this engine runs without networking".into()));
                };
                Response::Edited(super::join(self, net, link, paths).await?)
            }
            Request::Invite { folders, expires_s, uses } => {
                Response::Invite(super::invite(engine, self.me, folders, expires_s, uses).await?)
            }
        })
    }
}
