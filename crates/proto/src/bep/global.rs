//! Which of several devices' versions of a file is the folder's global version, and whether a
//! device holding some version needs the global one — Syncthing 1.19's rules, without I/O.

use super::{FileInfo, VectorOrdering};

/// True when `a` wins over `b`, whose version is concurrent with `a`'s (Syncthing 1.19
/// `WinsConflict`): a valid entry beats an invalid one, then a modification beats a delete, then
/// the newer modification time wins, and on equal times the version that is greater at the
/// lowest device ID where the two differ.
pub fn wins_conflict(a: &FileInfo, b: &FileInfo) -> bool {
    if a.invalid != b.invalid {
        return !a.invalid;
    }
    if a.deleted != b.deleted {
        return !a.deleted;
    }
    let (ta, tb) = ((a.modified_s, a.modified_ns), (b.modified_s, b.modified_ns));
    if ta != tb {
        return ta > tb;
    }
    a.version.compare(&b.version) == VectorOrdering::ConcurrentGreater
}

/// True when `candidate` should replace `current` as the global version.
///
/// Invalid entries (ignored files, receive-only local changes) never beat valid ones; among
/// equals the current holder stays, so that a device that already has the global version is the
/// one named as holding it.
pub fn beats(candidate: &FileInfo, current: &FileInfo) -> bool {
    if candidate.invalid != current.invalid {
        return !candidate.invalid;
    }
    match candidate.version.compare(&current.version) {
        VectorOrdering::Greater => true,
        VectorOrdering::Equal | VectorOrdering::Lesser => false,
        VectorOrdering::ConcurrentGreater | VectorOrdering::ConcurrentLesser => {
            wins_conflict(candidate, current)
        }
    }
}

/// The index in `entries` of the global version, `None` for no entries. The first entry wins
/// ties, so callers list this device's entry first.
pub fn global_index(entries: &[&FileInfo]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, e) in entries.iter().enumerate() {
        match best {
            Some(b) if !beats(e, entries[b]) => {}
            _ => best = Some(i),
        }
    }
    best
}

/// True when a device holding `have` (`None`: nothing) must act to reach `global`: fetch it,
/// apply its metadata, or delete. An invalid global is never needed, and a delete is not needed
/// by a device that never had the file. An invalid entry with the global version is what a
/// device that ignores the name records (Syncthing's "ignored" local flag): it needs nothing
/// until the global version changes or the name is no longer ignored.
pub fn needs(have: Option<&FileInfo>, global: &FileInfo) -> bool {
    if global.invalid {
        return false;
    }
    match have {
        None => !global.deleted,
        Some(have) => have.version != global.version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bep::{FileType, Vector};
    use crate::identity::ShortId;

    const A: ShortId = ShortId(1);
    const B: ShortId = ShortId(2);

    fn entry(version: Vector, modified_s: i64) -> FileInfo {
        FileInfo {
            name: "f".into(),
            file_type: FileType::File,
            size: 1,
            permissions: 0o644,
            no_permissions: false,
            modified_s,
            modified_ns: 0,
            modified_by: A,
            deleted: false,
            invalid: false,
            version,
            sequence: 1,
            block_size: 131072,
            blocks: Vec::new(),
            symlink_target: String::new(),
        }
    }

    #[test]
    fn a_newer_version_is_global_whatever_its_mtime() {
        let old = entry(Vector::new().updated(A, 10), 500);
        let new = entry(old.version.updated(B, 20), 100);
        assert_eq!(global_index(&[&old, &new]), Some(1));
        assert_eq!(global_index(&[&new, &old]), Some(0));
        assert!(needs(Some(&old), &new));
        assert!(!needs(Some(&new), &new));
    }

    #[test]
    fn concurrent_versions_follow_syncthing_1_19() {
        let base = Vector::new().updated(A, 10);
        let mut a = entry(base.updated(A, 20), 100);
        let mut b = entry(base.updated(B, 20), 200);
        // Newer mtime wins.
        assert_eq!(global_index(&[&a, &b]), Some(1));
        // A modification beats a delete even when the delete is newer.
        a.deleted = false;
        b.deleted = true;
        assert_eq!(global_index(&[&a, &b]), Some(0));
        assert_eq!(global_index(&[&b, &a]), Some(1));
        // A valid entry beats an invalid one.
        b.deleted = false;
        b.invalid = true;
        assert_eq!(global_index(&[&b, &a]), Some(1));
        // Equal mtimes: the version greater at the lowest differing device ID (A's counter) wins.
        b.invalid = false;
        b.modified_s = a.modified_s;
        assert_eq!(a.version.compare(&b.version), VectorOrdering::ConcurrentGreater);
        assert_eq!(global_index(&[&b, &a]), Some(1));
        assert_eq!(global_index(&[&a, &b]), Some(0));
    }

    #[test]
    fn the_first_of_equal_versions_holds_the_global() {
        let v = Vector::new().updated(A, 10);
        let (x, y) = (entry(v.clone(), 1), entry(v, 1));
        assert_eq!(global_index(&[&x, &y]), Some(0));
        assert_eq!(global_index(&[]), None);
    }

    #[test]
    fn deletes_are_needed_only_by_devices_that_have_the_file() {
        let v = Vector::new().updated(A, 10);
        let mut gone = entry(v.updated(B, 11), 1);
        gone.deleted = true;
        assert!(!needs(None, &gone));
        assert!(needs(Some(&entry(v, 1)), &gone));
        let mut invalid = entry(Vector::new(), 1);
        invalid.invalid = true;
        assert!(!needs(None, &invalid));
    }

    #[test]
    fn an_ignored_name_recorded_with_the_global_version_is_not_needed() {
        let v = Vector::new().updated(A, 10);
        let global = entry(v.updated(B, 11), 1);
        let ignored = FileInfo { invalid: true, ..global.clone() };
        assert!(!needs(Some(&ignored), &global));
        let mut gone = global.clone();
        gone.deleted = true;
        assert!(!needs(Some(&FileInfo { invalid: true, ..gone.clone() }), &gone));
        // Ignored with an older version (the scanner marked the local file): the global
        // version moved on, so the puller looks again (and records that one as ignored).
        let older = FileInfo { invalid: true, ..entry(v, 1) };
        assert!(needs(Some(&older), &global));
    }
}
