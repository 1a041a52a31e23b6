//! Introductions (Syncthing's introducer): what a ClusterConfig from a device marked
//! `introducer` changes here. For each folder we share with the introducer, every other device
//! it lists is added (remembering who introduced it) and the folder is shared with it; a device
//! the introducer added that it no longer lists with a folder stops sharing that folder, and is
//! removed once it lists it with none — unless the introducer is marked
//! `skip_introduction_removals`, or the user added the device directly.

use std::collections::{HashMap, HashSet};

use crate::bep::wire;
use crate::config::{Config, Edit, FolderId};
use crate::identity::DeviceId;

/// The edits `introducer`'s ClusterConfig `cc` calls for, in order; empty when it is not an
/// introducer or nothing changes.
pub fn edits(config: &Config, me: DeviceId, introducer: DeviceId, cc: &wire::ClusterConfig) -> Vec<Edit> {
    let Some(intro) = config.devices.iter().find(|d| d.id == introducer && d.introducer) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut listed: HashMap<FolderId, HashSet<DeviceId>> = HashMap::new();
    let mut anywhere = HashSet::new();
    let mut adding = HashSet::new();
    for folder in &cc.folders {
        let Ok(id) = folder.id.parse::<FolderId>() else { continue };
        // Only folders we share with the introducer: it cannot push others on us.
        let Some(ours) = config.folder(&id).filter(|f| f.devices.contains(&introducer)) else { continue };
        for d in &folder.devices {
            let Ok(device) = d.device_id() else { continue };
            if device == me || device == introducer {
                continue;
            }
            listed.entry(id.clone()).or_default().insert(device);
            anywhere.insert(device);
            if config.device(&device).is_none() && adding.insert(device) {
                out.push(Edit::AddIntroduced {
                    id: device,
                    name: d.name.clone(),
                    addresses: d.addresses.clone(),
                    by: introducer,
                    introducer: d.introducer,
                    skip_introduction_removals: d.skip_introduction_removals,
                });
            }
            if !ours.devices.contains(&device) {
                out.push(Edit::Share { folder: id.clone(), device });
            }
        }
    }
    if intro.skip_introduction_removals {
        return out;
    }
    for d in config.devices.iter().filter(|d| d.introduced_by == Some(introducer)) {
        if !anywhere.contains(&d.id) {
            out.push(Edit::RemoveDevice { id: d.id });
            continue;
        }
        for f in
            config.folders.iter().filter(|f| f.devices.contains(&introducer) && f.devices.contains(&d.id))
        {
            if !listed.get(&f.id).is_some_and(|l| l.contains(&d.id)) {
                out.push(Edit::Unshare { folder: f.id.clone(), device: d.id });
            }
        }
    }
    out
}

// The test uses a Unix absolute folder path (`/f`) as a fixture, which Windows takes as
// relative (no drive): it tests the rules, not the platform, and runs on Linux; the Windows
// unit-test run under Wine (README, "Platforms") leaves it out.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::config::FolderConfig;

    fn dev(n: u8) -> DeviceId {
        DeviceId::from_bytes([n; 32])
    }

    fn cc(folders: &[(&str, &[DeviceId])]) -> wire::ClusterConfig {
        wire::ClusterConfig {
            folders: folders
                .iter()
                .map(|(id, devices)| wire::Folder {
                    id: (*id).to_owned(),
                    devices: devices
                        .iter()
                        .map(|d| wire::Device {
                            id: d.as_bytes().to_vec(),
                            name: format!("n{}", d.as_bytes()[0]),
                            addresses: vec!["tcp://127.0.0.1:22000".into()],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn apply(config: &mut Config, edits: Vec<Edit>) {
        for e in edits {
            config.edit(dev(1), e).unwrap();
        }
    }

    #[test]
    fn an_introducer_adds_shares_and_takes_back_only_what_it_introduced() {
        let (me, intro, q, user_added) = (dev(1), dev(2), dev(3), dev(4));
        let mut c = Config::default();
        c.add_device(me, intro, None, None).unwrap();
        c.add_device(me, user_added, None, None).unwrap();
        c.edit(me, Edit::Introducer { id: intro, introducer: true }).unwrap();
        c.add_folder(FolderConfig {
            devices: vec![intro],
            ..FolderConfig::new("f".parse().unwrap(), "/f".into())
        })
        .unwrap();
        // Not shared with the introducer here: ignored.
        c.add_folder(FolderConfig::new("g".parse().unwrap(), "/g".into())).unwrap();
        let first = cc(&[("f", &[intro, me, q, user_added]), ("g", &[intro, me, dev(9)])]);
        let e = edits(&c, me, intro, &first);
        apply(&mut c, e);
        let added = c.device(&q).unwrap();
        assert_eq!(added.introduced_by, Some(intro));
        assert_eq!(added.addresses, vec!["tcp://127.0.0.1:22000".to_owned()]);
        assert!(c.device(&dev(9)).is_none());
        let f = c.folder(&"f".parse().unwrap()).unwrap().clone();
        assert!(f.devices.contains(&q) && f.devices.contains(&user_added));
        // Again: nothing more to do.
        assert_eq!(edits(&c, me, intro, &first), Vec::new());
        // It stops sharing f with them: the device it introduced goes, the user's stays.
        let e = edits(&c, me, intro, &cc(&[("f", &[intro, me])]));
        apply(&mut c, e);
        assert!(c.device(&q).is_none());
        assert!(c.device(&user_added).is_some());
        // Marked to skip removals, it only ever adds.
        let mut c2 = c.clone();
        let e = edits(&c2, me, intro, &first);
        apply(&mut c2, e);
        c2.devices.iter_mut().find(|d| d.id == intro).unwrap().skip_introduction_removals = true;
        assert_eq!(edits(&c2, me, intro, &cc(&[("f", &[intro, me])])), Vec::new());
        // Not an introducer: nothing.
        c.edit(me, Edit::Introducer { id: intro, introducer: false }).unwrap();
        assert_eq!(edits(&c, me, intro, &first), Vec::new());
    }
}
