//! Auto-accepting folders (Syncthing's `autoAcceptFolders`): what a folder offer from a device
//! marked so becomes here. The peer names the folder and its label; it never chooses where we
//! write: the path is always a directory directly under the default folder path, named after
//! the label (or ID) made safe as Syncthing's `fs.SanitizePath` does.

use std::path::Path;

use crate::config::{Config, Edit, FolderConfig, FolderId};
use crate::identity::DeviceId;

/// Longest directory name made from a peer's label, in characters.
const MAX_NAME: usize = 64;

/// The edit that accepts `device`'s offer of folder `id` labelled `label`: share the folder if
/// it is configured here, else add it in a new directory under `base`. `None` when there is
/// nothing to do, or no safe free name (the offer is then left for the user).
pub fn accept(config: &Config, base: &Path, device: DeviceId, id: &str, label: &str) -> Option<Edit> {
    let folder: FolderId = id.parse().ok()?;
    if let Some(existing) = config.folder(&folder) {
        return (!existing.devices.contains(&device)).then_some(Edit::Share { folder, device });
    }
    // Syncthing's order: the label, then the ID; a name already taken on disk is skipped,
    // never reused (it may be someone else's directory).
    for name in [sanitize(label), sanitize(id)] {
        if name.is_empty() {
            continue;
        }
        let path = base.join(&name);
        if path.symlink_metadata().is_ok() {
            continue;
        }
        let f = FolderConfig {
            label: label.chars().take(MAX_NAME * 4).collect(),
            devices: vec![device],
            ..FolderConfig::new(folder, path)
        };
        return Some(Edit::AddFolder { folder: Box::new(f) });
    }
    None
}

/// A peer's label or folder ID as one directory name: characters that are special in paths or
/// on some system dropped, runs of spaces collapsed, no leading dot (so never `.`, `..` or a
/// hidden directory), no surrounding spaces, at most [`MAX_NAME`] characters; empty for a name
/// Windows reserves. As Syncthing's `fs.SanitizePath`, plus the dot and length rules.
pub fn sanitize(name: &str) -> String {
    const DISALLOWED: &str = "<>:\"'/\\|?*[]{};!@$%&^#\u{7f}";
    let mut out = String::new();
    let mut prev = ' ';
    for c in name.chars() {
        if c.is_control()
            || c == char::REPLACEMENT_CHARACTER
            || DISALLOWED.contains(c)
            || (c == ' ' && prev == ' ')
        {
            continue;
        }
        out.push(c);
        prev = c;
    }
    let out: String = out.trim().trim_start_matches('.').trim().chars().take(MAX_NAME).collect();
    let out = out.trim_end().trim_end_matches('.').to_owned();
    let stem = out.split('.').next().unwrap_or_default().to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (stem.len() == 4
            && (stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved { String::new() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_labels_become_one_plain_directory_name() {
        assert_eq!(sanitize("../../evil/Photos"), "evilPhotos");
        assert_eq!(sanitize(".."), "");
        assert_eq!(sanitize("/etc/passwd"), "etcpasswd");
        assert_eq!(sanitize("C:\\Windows\\System32"), "CWindowsSystem32");
        assert_eq!(sanitize("  My   Photos \n"), "My Photos");
        assert_eq!(sanitize(".ssh"), "ssh");
        assert_eq!(sanitize("con"), "");
        assert_eq!(sanitize("COM1.txt"), "");
        assert_eq!(sanitize("Holiday 2024"), "Holiday 2024");
        assert_eq!(sanitize(&"x".repeat(1000)).len(), MAX_NAME);
        assert_eq!(sanitize("trailing..."), "trailing");
    }

    #[test]
    fn an_offer_is_added_under_the_base_or_shared_if_configured() {
        let dir = tempfile::tempdir().unwrap();
        let me = DeviceId::from_bytes([1; 32]);
        let peer = DeviceId::from_bytes([2; 32]);
        let mut config = Config::default();
        config.add_device(me, peer, None, None).unwrap();
        let Some(Edit::AddFolder { folder }) = accept(&config, dir.path(), peer, "f1", "../x") else {
            panic!("not added")
        };
        assert_eq!(folder.path, dir.path().join("x"));
        assert_eq!(folder.devices, vec![peer]);
        // The label's name is taken on disk: the ID's is used; both taken: left to the user.
        std::fs::create_dir(dir.path().join("x")).unwrap();
        let Some(Edit::AddFolder { folder }) = accept(&config, dir.path(), peer, "f1", "x") else {
            panic!("not added")
        };
        assert_eq!(folder.path, dir.path().join("f1"));
        std::fs::create_dir(dir.path().join("f1")).unwrap();
        assert_eq!(accept(&config, dir.path(), peer, "f1", "x"), None);
        // Configured here, not shared with it: shared; already shared: nothing.
        config.add_folder(FolderConfig::new("f1".parse().unwrap(), dir.path().join("f1"))).unwrap();
        assert_eq!(
            accept(&config, dir.path(), peer, "f1", "x"),
            Some(Edit::Share { folder: "f1".parse().unwrap(), device: peer })
        );
        config.share(&"f1".parse().unwrap(), peer).unwrap();
        assert_eq!(accept(&config, dir.path(), peer, "f1", "x"), None);
    }
}
