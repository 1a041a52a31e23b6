//! Selective sync: which parts of a folder's tree this device takes, kept as Syncthing-compatible
//! `.stignore` lines in a marked block, so that a Syncthing peer and a hand-edited file read
//! them the same way. Pure: lines in, lines out.
//!
//! The user's choices are rules on paths: a *deselected* path is left out with everything below
//! it, a *selected* path inside a deselected one is taken again. Each rule's kind is the
//! opposite of the nearest rule above it (the folder root is selected), so a path's state is
//! that of its nearest rule. They become lines, first match winning as in Syncthing:
//! - a deselected path with nothing selected below it: `/Photos`;
//! - with something selected below it, its directory is kept (a pattern on an ignored
//!   directory cannot bring back what is inside it) and its children are left out, but for
//!   the way down to what is selected: `!/Photos/2024` then `/Photos/*`;
//! - a selected path: `!/Photos/2024`, after the lines of what is deselected inside it.
//!
//! The block goes after the user's own lines, so that those still apply inside what is
//! selected (`*.tmp` keeps ignoring temporary files there); lines outside the block are never
//! touched.

use std::collections::BTreeMap;

/// The first line of the block this module owns (`//` starts a comment in `.stignore`).
pub const BEGIN: &str = "// peerfold selective sync: begin (managed by `peerfold folder select`/`deselect`)";
/// Its last line.
pub const END: &str = "// peerfold selective sync: end";

/// The prefix [`BEGIN`] is recognised by (its explanation may change).
const BEGIN_PREFIX: &str = "// peerfold selective sync: begin";

/// Why a selection change is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectionError {
    #[error("{0:?} is not a folder-relative path (no leading '/', no '.' or '..', no empty parts)")]
    BadPath(String),
    #[error("the folder root cannot be deselected: pause the folder instead")]
    Root,
    /// On Windows `\` separates paths in a `.stignore` and Syncthing 1.19 has no other escape,
    /// so a name with a pattern character cannot be written as itself.
    #[error(
        "{0:?} has a character that is a pattern in .stignore ('*?[]{{}}'), which cannot be escaped on Windows"
    )]
    Unescapable(String),
    #[error("the .stignore has a selective-sync begin line without an end line")]
    Unterminated,
}

/// Whether a path (and what is below it) is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Selected,
    Deselected,
}

/// The user's choices: path → choice, only where it differs from the path above.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    rules: BTreeMap<String, Choice>,
}

/// A `.stignore` split around the block: the user's lines before and after it, and the block's
/// lines (without its markers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub before: Vec<String>,
    pub block: Vec<String>,
    pub after: Vec<String>,
}

impl Split {
    /// Splits `.stignore` lines; a file without the block keeps every line in `before`.
    pub fn of(lines: &[String]) -> Result<Self, SelectionError> {
        let Some(begin) = lines.iter().position(|l| l.trim_end().starts_with(BEGIN_PREFIX)) else {
            return Ok(Self { before: lines.to_vec(), ..Self::default() });
        };
        let end =
            lines[begin..].iter().position(|l| l.trim_end() == END).ok_or(SelectionError::Unterminated)?;
        let end = begin + end;
        Ok(Self {
            before: lines[..begin].to_vec(),
            block: lines[begin + 1..end].to_vec(),
            after: lines[end + 1..].to_vec(),
        })
    }

    /// The whole file again with `block` as the block (none when it is empty), in its place or,
    /// new, after the user's lines.
    pub fn join(&self, block: Vec<String>) -> Vec<String> {
        let mut out = self.before.clone();
        if !block.is_empty() {
            out.push(BEGIN.to_owned());
            out.extend(block);
            out.push(END.to_owned());
        }
        out.extend(self.after.iter().cloned());
        out
    }
}

impl Selection {
    /// The selection the block's lines express (as [`Selection::lines`] writes them; other
    /// lines in the block are dropped).
    pub fn parse(block: &[String]) -> Self {
        let mut starred = std::collections::HashSet::new();
        for line in block {
            if let Some(dir) = line.strip_prefix('/').and_then(|l| l.strip_suffix("/*")) {
                starred.insert(unescape(dir));
            }
        }
        let mut rules = BTreeMap::new();
        for line in block {
            if let Some(path) = line.strip_prefix("!/") {
                let path = unescape(path);
                // A directory kept only as the way down to something selected is no choice.
                if !starred.contains(&path) {
                    rules.insert(path, Choice::Selected);
                }
            } else if let Some(path) = line.strip_prefix('/') {
                let path = path.strip_suffix("/*").map_or_else(|| unescape(path), unescape);
                rules.insert(path, Choice::Deselected);
            }
        }
        let mut s = Self { rules };
        s.normalize();
        s
    }

    /// Whether `path` is taken.
    pub fn choice(&self, path: &str) -> Choice {
        self.rules
            .iter()
            .filter(|(p, _)| is_within(path, p))
            .max_by_key(|(p, _)| p.len())
            .map_or(Choice::Selected, |(_, c)| *c)
    }

    /// The rules, in path order.
    pub fn rules(&self) -> impl Iterator<Item = (&str, Choice)> {
        self.rules.iter().map(|(p, c)| (p.as_str(), *c))
    }

    /// Takes `path` and everything below it.
    pub fn select(&mut self, path: &str) -> Result<(), SelectionError> {
        let path = clean(path)?;
        self.set(path, Choice::Selected);
        Ok(())
    }

    /// Leaves `path` and everything below it out.
    pub fn deselect(&mut self, path: &str) -> Result<(), SelectionError> {
        let path = clean(path)?;
        if path.is_empty() {
            return Err(SelectionError::Root);
        }
        self.set(path, Choice::Deselected);
        Ok(())
    }

    fn set(&mut self, path: String, choice: Choice) {
        self.rules.retain(|p, _| !is_within(p, &path));
        if self.choice(&path) != choice {
            self.rules.insert(path, choice);
        }
    }

    /// Drops rules that repeat the state above them (a hand-edited or stale block).
    fn normalize(&mut self) {
        let paths: Vec<String> = self.rules.keys().cloned().collect();
        for p in paths {
            let Some(c) = self.rules.remove(&p) else { continue };
            if self.choice(&p) != c {
                self.rules.insert(p, c);
            }
        }
    }

    /// The block's lines (without its markers), most specific first.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (path, choice) in self.children_of(None) {
            debug_assert_eq!(choice, Choice::Deselected);
            self.emit(path, choice, &mut out);
        }
        out
    }

    /// The rules whose nearest rule above is `parent` (`None`: none above).
    fn children_of(&self, parent: Option<&str>) -> Vec<(&str, Choice)> {
        self.rules
            .iter()
            .filter(|(p, _)| {
                let nearest = self
                    .rules
                    .keys()
                    .filter(|q| q.len() < p.len() && is_within(p, q))
                    .max_by_key(|q| q.len())
                    .map(String::as_str);
                nearest == parent && parent.is_none_or(|parent| is_within(p, parent) && *p != parent)
            })
            .map(|(p, c)| (p.as_str(), *c))
            .collect()
    }

    fn emit(&self, path: &str, choice: Choice, out: &mut Vec<String>) {
        let inner = self.children_of(Some(path));
        match choice {
            Choice::Selected => {
                for (p, c) in inner {
                    self.emit(p, c, out);
                }
                out.push(format!("!/{}", escape(path)));
            }
            Choice::Deselected if inner.is_empty() => out.push(format!("/{}", escape(path))),
            Choice::Deselected => {
                // The directories on the way from `path` down to each selected path are kept
                // and their other children left out, deepest first.
                let mut ways: BTreeMap<String, Vec<String>> = BTreeMap::new();
                let mut selected: BTreeMap<&str, Choice> = BTreeMap::new();
                for (p, c) in &inner {
                    selected.insert(p, *c);
                    let mut child = p.to_string();
                    while let Some((dir, _)) = child.rsplit_once('/') {
                        if dir.len() < path.len() {
                            break;
                        }
                        let kept = ways.entry(dir.to_owned()).or_default();
                        if !kept.contains(&child) {
                            kept.push(child.clone());
                        }
                        if dir == path {
                            break;
                        }
                        child = dir.to_owned();
                    }
                }
                // Deepest first: a directory's lines before its parent's star.
                let mut dirs: Vec<(&String, &Vec<String>)> = ways.iter().collect();
                dirs.sort_by(|a, b| {
                    b.0.matches('/').count().cmp(&a.0.matches('/').count()).then(a.0.cmp(b.0))
                });
                for (dir, kept) in dirs {
                    for child in kept {
                        match selected.get(child.as_str()) {
                            Some(c) => self.emit(child, *c, out),
                            None => out.push(format!("!/{}", escape(child))),
                        }
                    }
                    out.push(format!("/{}/*", escape(dir)));
                }
            }
        }
    }
}

/// `path` is `dir` or below it (`""` is the folder root, above everything).
fn is_within(path: &str, dir: &str) -> bool {
    dir.is_empty() || path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// A folder-relative path as the rules hold it: `/`-separated, no empty, `.` or `..` parts
/// (`""` or `/` alone is the root).
fn clean(path: &str) -> Result<String, SelectionError> {
    let p = path.trim_end_matches('/');
    if p.is_empty() || p == "." {
        return Ok(String::new());
    }
    if p.starts_with('/') || p.contains('\\') || p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(SelectionError::BadPath(path.to_owned()));
    }
    if cfg!(windows) && p.contains(SPECIAL) {
        return Err(SelectionError::Unescapable(path.to_owned()));
    }
    Ok(p.to_owned())
}

/// Characters with a meaning in Syncthing's patterns, escaped with a backslash (Syncthing's
/// escape character everywhere but Windows).
const SPECIAL: &[char] = &['\\', '*', '?', '[', ']', '{', '}'];

fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if SPECIAL.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn unescape(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(next) = chars.next()
        {
            out.push(next);
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ignore::Ignores;

    fn lines(s: &Selection) -> Vec<String> {
        s.lines()
    }

    /// What Syncthing's matcher (ours, tested against its semantics) makes of the lines.
    fn ignored(block: &[String], path: &str) -> bool {
        let text = block.join("\n");
        Ignores::parse(&text, std::path::Path::new(".stignore"))
            .expect("generated lines parse")
            .is_ignored(path)
    }

    #[test]
    fn deselecting_a_directory_is_one_anchored_line() {
        let mut s = Selection::default();
        s.deselect("Videos").unwrap();
        assert_eq!(lines(&s), ["/Videos"]);
        let l = lines(&s);
        assert!(ignored(&l, "Videos") && ignored(&l, "Videos/a/b.mp4"));
        assert!(!ignored(&l, "Videos2") && !ignored(&l, "x/Videos"));
    }

    #[test]
    fn only_2024_from_photos() {
        let mut s = Selection::default();
        s.deselect("Photos").unwrap();
        s.select("Photos/2024").unwrap();
        let l = lines(&s);
        assert_eq!(l, ["!/Photos/2024", "/Photos/*"]);
        assert!(!ignored(&l, "Photos") && !ignored(&l, "Photos/2024") && !ignored(&l, "Photos/2024/a.jpg"));
        assert!(
            ignored(&l, "Photos/2023") && ignored(&l, "Photos/2023/a.jpg") && ignored(&l, "Photos/x.jpg")
        );
    }

    #[test]
    fn a_deep_selection_keeps_the_way_down() {
        let mut s = Selection::default();
        s.deselect("P").unwrap();
        s.select("P/a/b").unwrap();
        let l = lines(&s);
        assert_eq!(l, ["!/P/a/b", "/P/a/*", "!/P/a", "/P/*"]);
        assert!(!ignored(&l, "P/a") && !ignored(&l, "P/a/b/c"));
        assert!(ignored(&l, "P/a/x") && ignored(&l, "P/y") && ignored(&l, "P/y/z"));
    }

    #[test]
    fn nested_deselect_inside_a_select_inside_a_deselect() {
        let mut s = Selection::default();
        s.deselect("P").unwrap();
        s.select("P/a").unwrap();
        s.deselect("P/a/raw").unwrap();
        s.select("P/a/raw/keep").unwrap();
        let l = lines(&s);
        assert_eq!(l, ["!/P/a/raw/keep", "/P/a/raw/*", "!/P/a", "/P/*"]);
        assert!(!ignored(&l, "P/a/x.jpg") && !ignored(&l, "P/a/raw/keep/1"));
        assert!(ignored(&l, "P/a/raw/other") && ignored(&l, "P/b"));
        assert_eq!(s.choice("P/a/raw/keep/1"), Choice::Selected);
        assert_eq!(s.choice("P/a/raw/x"), Choice::Deselected);
        // And it reads back the same.
        assert_eq!(Selection::parse(&l), s);
    }

    #[test]
    fn selecting_again_removes_the_lines() {
        let mut s = Selection::default();
        s.deselect("P").unwrap();
        s.select("P/a").unwrap();
        s.select("P").unwrap();
        assert!(lines(&s).is_empty(), "{:?}", lines(&s));
        s.deselect("Q/x").unwrap();
        s.deselect("Q/y").unwrap();
        assert_eq!(lines(&s), ["/Q/x", "/Q/y"]);
        s.select("Q/x").unwrap();
        assert_eq!(lines(&s), ["/Q/y"]);
        // Deselecting what is already out, or above it, adds nothing twice.
        s.deselect("Q/y/z").unwrap();
        assert_eq!(lines(&s), ["/Q/y"]);
        s.deselect("Q").unwrap();
        assert_eq!(lines(&s), ["/Q"]);
        s.select("").unwrap();
        assert!(lines(&s).is_empty());
    }

    #[test]
    fn the_users_lines_are_kept_around_the_block() {
        let file: Vec<String> = ["// mine", "!keep.tmp", "*.tmp"].map(String::from).to_vec();
        let split = Split::of(&file).unwrap();
        let mut s = Selection::parse(&split.block);
        s.deselect("Photos").unwrap();
        let out = split.join(s.lines());
        assert_eq!(out, ["// mine", "!keep.tmp", "*.tmp", BEGIN, "/Photos", END]);

        // A block in the middle stays there, and the user's lines after it stay after it.
        let mut edited = out.clone();
        edited.push("later".into());
        let split = Split::of(&edited).unwrap();
        assert_eq!(split.after, ["later"]);
        let mut s = Selection::parse(&split.block);
        assert_eq!(s.choice("Photos/x"), Choice::Deselected);
        s.select("Photos").unwrap();
        assert_eq!(split.join(s.lines()), ["// mine", "!keep.tmp", "*.tmp", "later"]);
        // The user's patterns still apply inside what is selected.
        let mut s = Selection::default();
        s.deselect("P").unwrap();
        s.select("P/a").unwrap();
        let all = Split::of(&file).unwrap().join(s.lines());
        assert!(ignored(&all, "P/a/x.tmp") && !ignored(&all, "P/a/keep.tmp") && !ignored(&all, "P/a/x.jpg"));
    }

    #[cfg(not(windows))]
    #[test]
    fn names_with_pattern_characters_are_escaped() {
        let mut s = Selection::default();
        s.deselect("a*b/[x]").unwrap();
        let l = lines(&s);
        assert_eq!(l, [r"/a\*b/\[x\]"]);
        assert!(ignored(&l, "a*b/[x]/f") && !ignored(&l, "aXb/[x]") && !ignored(&l, "a*b/x"));
        assert_eq!(Selection::parse(&l), s);
    }

    #[cfg(windows)]
    #[test]
    fn names_with_pattern_characters_are_refused_on_windows() {
        let mut s = Selection::default();
        assert!(matches!(s.deselect("a*b/[x]"), Err(SelectionError::Unescapable(_))));
        assert!(matches!(s.select("a{b}"), Err(SelectionError::Unescapable(_))));
        assert_eq!(s, Selection::default());
    }

    #[test]
    fn bad_paths_and_the_root_are_refused() {
        let mut s = Selection::default();
        for bad in ["/abs", "a/../b", "a//b", "./a"] {
            assert!(matches!(s.deselect(bad), Err(SelectionError::BadPath(_))), "{bad}");
        }
        assert_eq!(s.deselect(""), Err(SelectionError::Root));
        assert_eq!(Split::of(&[BEGIN.to_owned(), "/x".to_owned()]), Err(SelectionError::Unterminated));
    }
}
