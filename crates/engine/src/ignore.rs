//! Parsing and matching of Syncthing `.stignore` files.
//!
//! This module owns the ignore-pattern language as Syncthing 1.19 implements it
//! (`lib/ignore` plus the gobwas/glob v0.2.3 matcher it compiles patterns with):
//! reading a folder's `.stignore` and the files it `#include`s, expanding every
//! line the way Syncthing does, and answering "is this folder-relative path
//! ignored?". It does no directory walking, no watching, and it does not know
//! Syncthing's internal names (`.stfolder`, `.stignore`, `~syncthing~*.tmp`, ...):
//! callers combine [`Ignores::matches`] with those checks themselves.
//!
//! Semantics, in the order Syncthing applies them:
//! - one pattern per line (`\n` or `\r\n`); each line is trimmed of leading and
//!   trailing white space; a line identical to one seen before (in any file of
//!   this load) is skipped; blank lines and lines starting with `//` are skipped;
//! - `#include <path>` splices in the patterns of another file, resolved against
//!   the directory of the file holding the directive (a leading `/` does not make
//!   it absolute); a missing file, an include loop and including one file twice
//!   are errors;
//! - a line ending in `/` (e.g. `foo/`) matches only what is *inside* `foo`;
//!   a line ending in `/**` is used as is; any other line `p` becomes `p` and `p/**`,
//!   so a matched directory matches everything below it;
//! - the prefixes `!` (include: "not ignored"), `(?i)` (case-insensitive) and
//!   `(?d)` (deletable) may appear once each, in any order; on macOS and Windows
//!   every pattern is case-insensitive, as in Syncthing;
//! - a pattern starting with `/` is anchored at the folder root, one starting
//!   with `**/` is also tried without that prefix, any other one `p` is also
//!   tried as `**/p` (so it matches at any depth);
//! - glob syntax: `*` (any run of non-`/` characters), `**` (any run, `/`
//!   included), `?` (one non-`/` character), `[abc]`, `[a-z]`, `[!a-z]`,
//!   `{alt1,alt2}` and `\` escaping the next character (not on Windows, where
//!   `\` is turned into `/` like Syncthing does); an unclosed `{` is closed at
//!   the end and a trailing lone `\` is dropped, as gobwas/glob v0.2.3 does, and
//!   its `P**S` shortcut is kept too: `a/**/b` also matches `a/b`;
//! - the first pattern that matches the full relative path decides.
//!
//! Ignore files should be UTF-8; invalid bytes are read as U+FFFD (as Go would
//! see them). A bad line is an [`IgnoreError`] naming the file and line number.
//!
//! Matching is compiled once: every pattern is translated into an anchored
//! regular expression, runs of consecutive patterns with the same outcome are
//! joined into one alternation, and the groups go into a [`RegexSet`] (one for
//! case-sensitive, one for case-folded groups); the lowest matching group wins.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io;
use std::path::{Component, Path, PathBuf};

use regex::{Regex, RegexSet, RegexSetBuilder};

use crate::layout::IGNORE_FILE;

/// Syncthing 1.19 folds case for every pattern on macOS and Windows.
const DEFAULT_FOLD_CASE: bool = cfg!(any(target_os = "macos", target_os = "windows"));

/// Limits for compiling the pattern sets; generous, so only absurd ignore files fail.
const REGEX_SIZE_LIMIT: usize = 256 << 20;
const REGEX_DFA_SIZE_LIMIT: usize = 16 << 20;

/// Errors from loading or parsing ignore patterns. A folder whose patterns fail
/// to load must not be synced (Syncthing stops the folder rather than guessing).
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// The root ignore file exists but could not be read.
    #[error("cannot read ignore file {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A line is not a valid pattern or directive.
    #[error("{}:{line}: invalid ignore pattern {pattern:?}: {reason}", file.display())]
    Pattern { file: PathBuf, line: usize, pattern: String, reason: String },
    /// An `#include` names a file that does not exist.
    #[error("{}:{line}: included ignore file {} does not exist", file.display(), path.display())]
    IncludeNotFound { file: PathBuf, line: usize, path: PathBuf },
    /// An `#include` names a file that exists but could not be read.
    #[error("{}:{line}: cannot read included ignore file {}: {source}", file.display(), path.display())]
    IncludeIo { file: PathBuf, line: usize, path: PathBuf, source: io::Error },
    /// An `#include` names a file that is already being included (a cycle).
    #[error("{}:{line}: include loop: {} is already being included", file.display(), path.display())]
    IncludeLoop { file: PathBuf, line: usize, path: PathBuf },
    /// An `#include` names a file that was already included elsewhere.
    #[error("{}:{line}: ignore file {} is included more than once", file.display(), path.display())]
    DuplicateInclude { file: PathBuf, line: usize, path: PathBuf },
    /// The patterns are individually valid but too large to compile together.
    #[error("ignore patterns of {} are too large to compile: {reason}", file.display())]
    TooComplex { file: PathBuf, reason: String },
}

/// Outcome of matching one path against the patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    /// No pattern matched: the path is synced.
    NotMatched,
    /// An ignore pattern matched first. `deletable` (from `(?d)`) allows removing
    /// the file when it is the only thing preventing a directory deletion.
    Ignored { deletable: bool },
    /// A `!` pattern matched first: the path is synced.
    Included,
}

impl Match {
    /// True when the path is ignored.
    pub fn is_ignored(self) -> bool {
        matches!(self, Match::Ignored { .. })
    }

    /// True when the path is ignored and may be deleted to remove its parent.
    pub fn is_deletable(self) -> bool {
        matches!(self, Match::Ignored { deletable: true })
    }
}

/// A compiled set of ignore patterns (a folder's `.stignore` with its includes).
#[derive(Clone, Debug, Default)]
pub struct Ignores {
    /// Every trimmed line read, included files spliced in after their `#include`.
    lines: Vec<String>,
    /// The trimmed lines of the root file only (Syncthing's `Lines()`).
    root_lines: Vec<String>,
    /// Expanded patterns in match order (Syncthing's `Patterns()`).
    patterns: Vec<Pattern>,
    matcher: Matcher,
    /// Inverted so that `Default` (no patterns) allows skipping, as in Syncthing.
    must_descend_ignored_dirs: bool,
}

impl Ignores {
    /// Reads `<folder_root>/.stignore` (no file = no patterns, not an error) and its includes.
    pub fn load(folder_root: &Path) -> Result<Self, IgnoreError> {
        let path = folder_root.join(IGNORE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Self::parse(&String::from_utf8_lossy(&bytes), &path),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(IgnoreError::Io { path, source }),
        }
    }

    /// Parses pattern text as if it were the file `origin` (used for error messages and for resolving
    /// #include relative to origin's directory).
    pub fn parse(text: &str, origin: &Path) -> Result<Self, IgnoreError> {
        let root = lexical_clean(origin);
        let mut parser = Parser::new(root.clone());
        parser.parse_file(text, &root)?;
        let matcher = Matcher::build(&parser.patterns, &parser.files, &root)?;
        let patterns: Vec<Pattern> = parser.patterns.into_iter().map(|p| p.pattern).collect();
        let must_descend_ignored_dirs = !skip_allowed(&patterns);
        Ok(Self {
            lines: parser.lines,
            root_lines: parser.root_lines,
            patterns,
            matcher,
            must_descend_ignored_dirs,
        })
    }

    /// `rel_path` is folder-relative, NFC, `/`-separated, no leading `/` (e.g. "a/b/c.txt").
    pub fn matches(&self, rel_path: &str) -> Match {
        if self.matcher.results.is_empty() || rel_path.is_empty() || rel_path == "." {
            return Match::NotMatched;
        }
        self.matcher.matches(rel_path)
    }

    /// Shorthand for `self.matches(rel_path).is_ignored()`.
    pub fn is_ignored(&self, rel_path: &str) -> bool {
        self.matches(rel_path).is_ignored()
    }

    /// True when no pattern could re-include something below an ignored directory, so a walker may
    /// skip ignored directories without descending (mirror Syncthing's SkipIgnoredDirs logic).
    pub fn skip_ignored_dirs(&self) -> bool {
        !self.must_descend_ignored_dirs
    }

    /// The effective lines (after includes), for display and for change detection: every trimmed
    /// line read, in processing order, with an included file's lines right after its `#include`.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The trimmed lines of the root file alone, blank lines and comments included
    /// (what Syncthing's `Lines()` returns and its GUI edits).
    pub fn root_lines(&self) -> &[String] {
        &self.root_lines
    }

    /// The expanded patterns in match order, written like Syncthing's `Patterns()`
    /// (e.g. `foo` gives `foo`, `**/foo`, `foo/**`, `**/foo/**`).
    pub fn patterns(&self) -> Vec<String> {
        self.patterns.iter().map(Pattern::to_syncthing_string).collect()
    }

    /// True when there are no patterns (the file may still hold comments).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Outcome flags of one pattern line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Flags {
    include: bool,
    fold_case: bool,
    deletable: bool,
}

impl Flags {
    fn result(self) -> Match {
        if self.include { Match::Included } else { Match::Ignored { deletable: self.deletable } }
    }
}

/// One expanded pattern, as Syncthing's `Pattern`: prefixes stripped, lower-cased
/// when case-folded, a leading `/` kept for rooted patterns.
#[derive(Clone, Debug)]
struct Pattern {
    glob: String,
    flags: Flags,
}

impl Pattern {
    fn to_syncthing_string(&self) -> String {
        let mut out = String::new();
        if self.flags.deletable {
            out.push_str("(?d)");
        }
        if self.flags.fold_case {
            out.push_str("(?i)");
        }
        if self.flags.include {
            out.push('!');
        }
        out.push_str(&self.glob);
        out
    }

    /// Syncthing's `allowsSkippingIgnoredDirs`: only top-level include patterns
    /// (`!/name`, no `**` except at the end) keep ignored directories skippable.
    fn allows_skipping_ignored_dirs(&self) -> bool {
        if !self.flags.include {
            return true;
        }
        let Some(rest) = self.glob.strip_prefix('/') else {
            return false;
        };
        if rest.contains('/') {
            return false;
        }
        let without_tail = self.glob.strip_suffix("**").unwrap_or(&self.glob);
        !without_tail.contains("**")
    }
}

/// Syncthing's SkipIgnoredDirs computation; an automatically added `p/**` right
/// after an accepted `p` is not held against skipping.
fn skip_allowed(patterns: &[Pattern]) -> bool {
    let mut previous: &[u8] = b"";
    for pattern in patterns {
        let glob = pattern.glob.as_bytes();
        if glob.len() > 3 && glob.get(..glob.len() - 3) == Some(previous) {
            continue;
        }
        if !pattern.allows_skipping_ignored_dirs() {
            return false;
        }
        previous = glob;
    }
    true
}

/// A pattern during parsing, with where it came from and its regex translation.
struct ParsedPattern {
    pattern: Pattern,
    regex: String,
    file: usize,
    line: usize,
    source_line: String,
}

struct Parser {
    seen_lines: HashSet<String>,
    stack: Vec<PathBuf>,
    included: HashSet<PathBuf>,
    files: Vec<PathBuf>,
    lines: Vec<String>,
    root_lines: Vec<String>,
    patterns: Vec<ParsedPattern>,
}

impl Parser {
    fn new(root: PathBuf) -> Self {
        let mut included = HashSet::new();
        included.insert(root.clone());
        Self {
            seen_lines: HashSet::new(),
            stack: vec![root],
            included,
            files: Vec::new(),
            lines: Vec::new(),
            root_lines: Vec::new(),
            patterns: Vec::new(),
        }
    }

    fn parse_file(&mut self, text: &str, file: &Path) -> Result<(), IgnoreError> {
        let file_idx = self.files.len();
        self.files.push(file.to_path_buf());
        let is_root = self.stack.len() == 1;
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let line = raw.trim();
            self.lines.push(line.to_owned());
            if is_root {
                self.root_lines.push(line.to_owned());
            }
            // Syncthing 1.19 skips a line already seen anywhere in this load.
            if !self.seen_lines.insert(line.to_owned()) {
                continue;
            }
            if line.is_empty() || line.starts_with("//") {
                continue;
            }
            let line = to_slash(line);
            let at = LineRef { file, file_idx, line_no, text: &line };
            if line.starts_with("#include") {
                self.include(&at)?;
            } else if line.ends_with("/**") {
                self.add(&line, &at)?;
            } else if line.ends_with('/') {
                self.add(&format!("{line}**"), &at)?;
            } else {
                self.add(&line, &at)?;
                self.add(&format!("{line}/**"), &at)?;
            }
        }
        Ok(())
    }

    fn add(&mut self, spec: &str, at: &LineRef<'_>) -> Result<(), IgnoreError> {
        let expanded = parse_line(spec).map_err(|reason| at.pattern_error(reason))?;
        for (pattern, regex) in expanded {
            self.patterns.push(ParsedPattern {
                pattern,
                regex,
                file: at.file_idx,
                line: at.line_no,
                source_line: at.text.to_owned(),
            });
        }
        Ok(())
    }

    fn include(&mut self, at: &LineRef<'_>) -> Result<(), IgnoreError> {
        let rel = at.text.split_once(' ').map_or("", |(_, rest)| rest.trim());
        if rel.is_empty() {
            return Err(at.pattern_error("#include needs a file name".to_owned()));
        }
        let target = resolve_include(at.file, rel);
        let located = |path: PathBuf| (at.file.to_path_buf(), at.line_no, path);
        if self.stack.contains(&target) {
            let (file, line, path) = located(target);
            return Err(IgnoreError::IncludeLoop { file, line, path });
        }
        if !self.included.insert(target.clone()) {
            let (file, line, path) = located(target);
            return Err(IgnoreError::DuplicateInclude { file, line, path });
        }
        let bytes = match std::fs::read(&target) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let (file, line, path) = located(target);
                return Err(IgnoreError::IncludeNotFound { file, line, path });
            }
            Err(source) => {
                let (file, line, path) = located(target);
                return Err(IgnoreError::IncludeIo { file, line, path, source });
            }
        };
        self.stack.push(target.clone());
        self.parse_file(&String::from_utf8_lossy(&bytes), &target)?;
        self.stack.pop();
        Ok(())
    }
}

/// Where a line being parsed lives, for error messages.
struct LineRef<'a> {
    file: &'a Path,
    file_idx: usize,
    line_no: usize,
    text: &'a str,
}

impl LineRef<'_> {
    fn pattern_error(&self, reason: String) -> IgnoreError {
        IgnoreError::Pattern {
            file: self.file.to_path_buf(),
            line: self.line_no,
            pattern: self.text.to_owned(),
            reason,
        }
    }
}

/// Syncthing's `parseLine`: strips the prefixes and expands one pattern into the
/// globs actually matched, each with its regex translation.
fn parse_line(line: &str) -> Result<Vec<(Pattern, String)>, String> {
    let mut flags = Flags { include: false, fold_case: DEFAULT_FOLD_CASE, deletable: false };
    // Each prefix at most once, in any order; a repeated one is part of the pattern.
    let mut seen = [false; 3];
    let mut rest = line;
    loop {
        if let Some(r) = rest.strip_prefix('!').filter(|_| !seen[0]) {
            seen[0] = true;
            flags.include = true;
            rest = r;
        } else if let Some(r) = rest.strip_prefix("(?i)").filter(|_| !seen[1]) {
            seen[1] = true;
            flags.fold_case = true;
            rest = r;
        } else if let Some(r) = rest.strip_prefix("(?d)").filter(|_| !seen[2]) {
            seen[2] = true;
            flags.deletable = true;
            rest = r;
        } else {
            break;
        }
    }
    if rest.is_empty() {
        return Err("missing pattern after the prefixes".to_owned());
    }
    let text = if flags.fold_case { fold_case(rest) } else { Cow::Borrowed(rest) };
    let make = |glob: &str, matched: &str| -> Result<(Pattern, String), String> {
        Ok((Pattern { glob: glob.to_owned(), flags }, glob::to_regex(matched)?))
    };
    if let Some(rooted) = text.strip_prefix('/') {
        return Ok(vec![make(&text, rooted)?]);
    }
    if let Some(tail) = text.strip_prefix("**/") {
        return Ok(vec![make(&text, &text)?, make(tail, tail)?]);
    }
    let anywhere = format!("**/{text}");
    Ok(vec![make(&text, &text)?, make(&anywhere, &anywhere)?])
}

/// Go's `strings.ToLower`: every character through its simple lowercase mapping.
fn fold_case(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        let lower = |c: char| c.to_lowercase().next().unwrap_or(c);
        if s.chars().all(|c| lower(c) == c) {
            Cow::Borrowed(s)
        } else {
            Cow::Owned(s.chars().map(lower).collect())
        }
    }
}

/// Syncthing runs `filepath.ToSlash` on every line: on Windows `\` is a path
/// separator there, so escaping is not available.
#[cfg(windows)]
fn to_slash(line: &str) -> Cow<'_, str> {
    if line.contains('\\') { Cow::Owned(line.replace('\\', "/")) } else { Cow::Borrowed(line) }
}

#[cfg(not(windows))]
fn to_slash(line: &str) -> Cow<'_, str> {
    Cow::Borrowed(line)
}

/// Go's `filepath.Join(filepath.Dir(current), rel)`: `rel` is always appended
/// (a leading `/` does not make it absolute) and the result is cleaned lexically.
fn resolve_include(current: &Path, rel: &str) -> PathBuf {
    let mut path = current.parent().map(Path::to_path_buf).unwrap_or_default();
    for part in rel.split('/').filter(|part| !part.is_empty()) {
        path.push(part);
    }
    lexical_clean(&path)
}

/// Removes `.` components and resolves `..` against earlier components, without
/// touching the file system (like Go's `filepath.Clean`).
fn lexical_clean(path: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(component),
            },
            other => out.push(other),
        }
    }
    out.iter().collect()
}

/// The compiled form: result per group, and the sets mapping regexes to groups.
#[derive(Clone, Debug, Default)]
struct Matcher {
    results: Vec<Match>,
    exact: Option<GroupSet>,
    folded: Option<GroupSet>,
}

#[derive(Clone, Debug)]
struct GroupSet {
    set: RegexSet,
    /// Group index of each regex of `set`, ascending.
    groups: Vec<usize>,
}

impl GroupSet {
    fn first_match(&self, path: &str) -> Option<usize> {
        // Most paths match nothing, and `is_match` can stop early: checking it
        // first roughly halves the cost of unmatched paths.
        if !self.set.is_match(path) {
            return None;
        }
        let idx = self.set.matches(path).iter().next()?;
        self.groups.get(idx).copied()
    }
}

impl Matcher {
    fn build(patterns: &[ParsedPattern], files: &[PathBuf], origin: &Path) -> Result<Self, IgnoreError> {
        // Consecutive patterns with the same outcome form one group: the first
        // matching group is then the group of the first matching pattern.
        let mut groups: Vec<(Flags, String)> = Vec::new();
        for p in patterns {
            match groups.last_mut() {
                Some((flags, src)) if *flags == p.pattern.flags => {
                    src.push('|');
                    src.push_str(&p.regex);
                }
                _ => groups.push((p.pattern.flags, p.regex.clone())),
            }
        }
        let mut exact = (Vec::new(), Vec::new());
        let mut folded = (Vec::new(), Vec::new());
        for (idx, (flags, src)) in groups.iter().enumerate() {
            let target = if flags.fold_case { &mut folded } else { &mut exact };
            target.0.push(format!("^(?:{src})$"));
            target.1.push(idx);
        }
        let compile = |(sources, groups): (Vec<String>, Vec<usize>)| {
            if sources.is_empty() {
                return Ok(None);
            }
            RegexSetBuilder::new(&sources)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
                .build()
                .map(|set| Some(GroupSet { set, groups }))
        };
        match (compile(exact), compile(folded)) {
            (Ok(exact), Ok(folded)) => {
                Ok(Self { results: groups.iter().map(|(flags, _)| flags.result()).collect(), exact, folded })
            }
            (Err(err), _) | (_, Err(err)) => Err(Self::locate_error(patterns, files, origin, err)),
        }
    }

    /// Blames the first pattern that fails on its own, else the size of the whole.
    fn locate_error(
        patterns: &[ParsedPattern],
        files: &[PathBuf],
        origin: &Path,
        err: regex::Error,
    ) -> IgnoreError {
        for p in patterns {
            if let Err(single) = Regex::new(&format!("^(?:{})$", p.regex)) {
                return IgnoreError::Pattern {
                    file: files.get(p.file).cloned().unwrap_or_default(),
                    line: p.line,
                    pattern: p.source_line.clone(),
                    reason: single.to_string(),
                };
            }
        }
        IgnoreError::TooComplex { file: origin.to_path_buf(), reason: err.to_string() }
    }

    fn matches(&self, path: &str) -> Match {
        let mut best = self.exact.as_ref().and_then(|s| s.first_match(path));
        if let Some(folded) = &self.folded {
            // Only worth folding the path if a folded group could come first.
            let could_win = folded.groups.first().is_some_and(|&first| best.is_none_or(|b| first < b));
            if could_win && let Some(g) = folded.first_match(&fold_case(path)) {
                best = Some(best.map_or(g, |b| b.min(g)));
            }
        }
        best.and_then(|g| self.results.get(g).copied()).unwrap_or(Match::NotMatched)
    }
}

/// Translation of one glob into a regex with the exact behaviour of gobwas/glob
/// v0.2.3 as used by Syncthing 1.19 (`glob.Compile(pattern, '/')`).
///
/// The lexer, parser and the matcher-tree construction are ported so that the
/// one semantic quirk of that version is reproduced: a `Text`, `**`, `Text`
/// sequence is compiled to a prefix/suffix test that also accepts strings where
/// prefix and suffix overlap (so `a/**/b` matches `a/b`, and `a**a` matches `a`).
/// All other matcher kinds behave like plain concatenation.
mod glob {
    /// Deeper `{...}` nesting is rejected (instead of risking the stack).
    const MAX_BRACE_DEPTH: usize = 32;
    /// Longer node lists skip the (cubic) tree shaping and are concatenated.
    const MAX_SHAPED_NODES: usize = 64;
    /// `**`: any run of characters, `/` and newlines included.
    const SUPER: &str = "(?s:.)*";
    /// `*`: any run of characters except `/`.
    const ANY: &str = "[^/]*";
    /// `?`: one character except `/`.
    const SINGLE: &str = "[^/]";

    pub(super) fn to_regex(glob: &str) -> Result<String, String> {
        let tokens = lex(glob)?;
        let ast = parse(tokens)?;
        let matcher = compile_node(&ast);
        let mut out = String::new();
        emit(&matcher, &mut out);
        Ok(out)
    }

    #[derive(Clone, Debug, PartialEq)]
    enum Token {
        Text(String),
        Any,
        Super,
        Single,
        Not,
        Separator,
        RangeOpen,
        RangeClose,
        RangeLo(char),
        RangeBetween,
        RangeHi(char),
        TermsOpen,
        TermsClose,
    }

    const TEXT_BREAKERS: &[char] = &['?', '*', '[', '{'];
    const TERMS_BREAKERS: &[char] = &['?', '*', '[', '{', '}', ','];

    fn lex(glob: &str) -> Result<Vec<Token>, String> {
        let chars: Vec<char> = glob.chars().collect();
        let mut pos = 0;
        let mut depth = 0usize;
        let mut out = Vec::new();
        while let Some(&c) = chars.get(pos) {
            match c {
                '{' => {
                    depth += 1;
                    if depth > MAX_BRACE_DEPTH {
                        return Err(format!(
                            "`{{...}}` alternatives nested more than {MAX_BRACE_DEPTH} deep"
                        ));
                    }
                    out.push(Token::TermsOpen);
                    pos += 1;
                }
                ',' if depth > 0 => {
                    out.push(Token::Separator);
                    pos += 1;
                }
                '}' if depth > 0 => {
                    out.push(Token::TermsClose);
                    depth -= 1;
                    pos += 1;
                }
                '[' => {
                    out.push(Token::RangeOpen);
                    pos += 1;
                    lex_range(&chars, &mut pos, &mut out)?;
                }
                '?' => {
                    out.push(Token::Single);
                    pos += 1;
                }
                '*' => {
                    if chars.get(pos + 1) == Some(&'*') {
                        out.push(Token::Super);
                        pos += 2;
                    } else {
                        out.push(Token::Any);
                        pos += 1;
                    }
                }
                _ => {
                    let breakers = if depth > 0 { TERMS_BREAKERS } else { TEXT_BREAKERS };
                    let text = fetch_text(&chars, &mut pos, breakers);
                    if !text.is_empty() {
                        out.push(Token::Text(text));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Reads literal text up to an unescaped breaker. `\` escapes any character;
    /// a trailing lone `\` is dropped (gobwas/glob v0.2.3 behaviour).
    fn fetch_text(chars: &[char], pos: &mut usize, breakers: &[char]) -> String {
        let mut data = String::new();
        let mut escaped = false;
        while let Some(&c) = chars.get(*pos) {
            if !escaped {
                if c == '\\' {
                    escaped = true;
                    *pos += 1;
                    continue;
                }
                if breakers.contains(&c) {
                    break;
                }
            }
            escaped = false;
            data.push(c);
            *pos += 1;
        }
        data
    }

    /// After `[`: either `lo-hi` or a run of characters, optionally after `!`, then `]`.
    fn lex_range(chars: &[char], pos: &mut usize, out: &mut Vec<Token>) -> Result<(), String> {
        let (mut want_hi, mut want_close, mut seen_not) = (false, false, false);
        loop {
            let Some(&c) = chars.get(*pos) else {
                return Err("unclosed character class `[`".to_owned());
            };
            *pos += 1;
            if want_close {
                if c != ']' {
                    return Err(format!("expected `]` to close the character class, found {c:?}"));
                }
                out.push(Token::RangeClose);
                return Ok(());
            }
            if want_hi {
                out.push(Token::RangeHi(c));
                want_close = true;
                continue;
            }
            if !seen_not && c == '!' {
                out.push(Token::Not);
                seen_not = true;
                continue;
            }
            if chars.get(*pos) == Some(&'-') {
                *pos += 1;
                out.push(Token::RangeLo(c));
                out.push(Token::RangeBetween);
                want_hi = true;
                continue;
            }
            *pos -= 1;
            let text = fetch_text(chars, pos, &[']']);
            if !text.is_empty() {
                out.push(Token::Text(text));
            }
            want_close = true;
        }
    }

    #[derive(Clone, Debug, PartialEq)]
    enum Node {
        Pattern(Vec<Node>),
        AnyOf(Vec<Node>),
        Nothing,
        Text(String),
        Any,
        Super,
        Single,
        List { chars: Vec<char>, not: bool },
        Range { lo: char, hi: char, not: bool },
    }

    /// An unclosed `{` is closed at the end of the pattern, as gobwas/glob does.
    fn parse(tokens: Vec<Token>) -> Result<Node, String> {
        let mut stack: Vec<(Vec<Node>, Vec<Node>)> = Vec::new();
        let mut current: Vec<Node> = Vec::new();
        let mut tokens = tokens.into_iter();
        while let Some(token) = tokens.next() {
            match token {
                Token::Text(text) => current.push(Node::Text(text)),
                Token::Any => current.push(Node::Any),
                Token::Super => current.push(Node::Super),
                Token::Single => current.push(Node::Single),
                Token::RangeOpen => current.push(parse_range(&mut tokens)?),
                Token::TermsOpen => stack.push((std::mem::take(&mut current), Vec::new())),
                Token::Separator => match stack.last_mut() {
                    Some((_, alternatives)) => {
                        alternatives.push(Node::Pattern(std::mem::take(&mut current)));
                    }
                    None => return Err("unexpected `,`".to_owned()),
                },
                Token::TermsClose => match stack.pop() {
                    Some((parent, mut alternatives)) => {
                        alternatives.push(Node::Pattern(std::mem::replace(&mut current, parent)));
                        current.push(Node::AnyOf(alternatives));
                    }
                    None => return Err("unexpected `}`".to_owned()),
                },
                other => return Err(format!("unexpected token {other:?}")),
            }
        }
        while let Some((parent, mut alternatives)) = stack.pop() {
            alternatives.push(Node::Pattern(std::mem::replace(&mut current, parent)));
            current.push(Node::AnyOf(alternatives));
        }
        Ok(Node::Pattern(current))
    }

    fn parse_range(tokens: &mut impl Iterator<Item = Token>) -> Result<Node, String> {
        let (mut not, mut lo, mut hi) = (false, '\0', '\0');
        let mut chars = String::new();
        loop {
            match tokens.next() {
                None => return Err("unclosed character class `[`".to_owned()),
                Some(Token::Not) => not = true,
                Some(Token::RangeLo(c)) => lo = c,
                Some(Token::RangeHi(c)) => {
                    hi = c;
                    if hi < lo {
                        return Err(format!("character range `{lo}-{hi}` ends before it starts"));
                    }
                }
                Some(Token::Text(text)) => chars = text,
                Some(Token::RangeClose) => {
                    let is_range = lo != '\0' && hi != '\0';
                    let is_chars = !chars.is_empty();
                    // Exactly one of `lo-hi` and a character list (gobwas' check).
                    if is_range == is_chars {
                        return Err("empty or malformed character class `[...]`".to_owned());
                    }
                    return Ok(if is_range {
                        Node::Range { lo, hi, not }
                    } else {
                        Node::List { chars: chars.chars().collect(), not }
                    });
                }
                Some(_) => {}
            }
        }
    }

    /// gobwas/glob's matcher kinds, kept for their shape; see [`emit`] for meaning.
    #[derive(Clone, Debug)]
    enum M {
        Text(String),
        Any,
        Super,
        Single,
        List { chars: Vec<char>, not: bool },
        Range { lo: char, hi: char, not: bool },
        Nothing,
        AnyOf(Vec<M>),
        Row(Vec<M>),
        Every(Vec<M>),
        Concat(Vec<M>),
        BTree { value: Box<M>, left: Option<Box<M>>, right: Option<Box<M>> },
        Prefix(String),
        Suffix(String),
        Contains(String),
        PrefixSuffix(String, String),
        PrefixAny(String),
        SuffixAny(String),
    }

    impl M {
        /// Static length in characters, `None` when variable (gobwas' `Len() == -1`).
        fn len(&self) -> Option<usize> {
            match self {
                M::Text(text) => Some(text.chars().count()),
                M::Single | M::List { .. } | M::Range { .. } => Some(1),
                M::Nothing => Some(0),
                M::Row(items) => items.iter().map(M::len).sum(),
                M::AnyOf(items) => {
                    let mut len = None;
                    for item in items {
                        let item_len = item.len()?;
                        match len {
                            None => len = Some(item_len),
                            Some(l) if l != item_len => return None,
                            Some(_) => {}
                        }
                    }
                    len
                }
                M::BTree { value, left, right } => {
                    let side = |m: &Option<Box<M>>| m.as_ref().map_or(Some(0), |m| m.len());
                    Some(side(left)? + value.len()? + side(right)?)
                }
                _ => None,
            }
        }
    }

    fn compile_node(node: &Node) -> M {
        match node {
            Node::AnyOf(children) => {
                if let Some(minimized) = minimize_any_of(children) {
                    return compile_node(&minimized);
                }
                M::AnyOf(children.iter().map(|c| optimize(compile_node(c))).collect())
            }
            Node::Pattern(children) => {
                if children.is_empty() {
                    return M::Nothing;
                }
                let matchers: Vec<M> = children.iter().map(|c| optimize(compile_node(c))).collect();
                if matchers.len() > MAX_SHAPED_NODES {
                    return M::Concat(matchers);
                }
                optimize(compile_matchers(minimize_matchers(matchers)))
            }
            Node::Nothing => M::Nothing,
            Node::Text(text) => M::Text(text.clone()),
            Node::Any => M::Any,
            Node::Super => M::Super,
            Node::Single => M::Single,
            Node::List { chars, not } => optimize(M::List { chars: chars.clone(), not: *not }),
            Node::Range { lo, hi, not } => M::Range { lo: *lo, hi: *hi, not: *not },
        }
    }

    /// gobwas' `compileMatchers`: split around the last longest static-length matcher.
    fn compile_matchers(mut matchers: Vec<M>) -> M {
        if matchers.len() <= 1 {
            return matchers.pop().unwrap_or(M::Nothing);
        }
        if let Some(glued) = glue(&matchers) {
            return glued;
        }
        let mut pick: Option<(usize, usize)> = None;
        for (idx, m) in matchers.iter().enumerate() {
            if let Some(len) = m.len()
                && pick.is_none_or(|(_, max)| len >= max)
            {
                pick = Some((idx, len));
            }
        }
        let Some((idx, _)) = pick else {
            let rest = matchers.split_off(1);
            let first = matchers.pop().unwrap_or(M::Nothing);
            return M::BTree {
                value: Box::new(first),
                left: None,
                right: Some(Box::new(compile_matchers(rest))),
            };
        };
        let right = matchers.split_off(idx + 1);
        let value = matchers.pop().unwrap_or(M::Nothing);
        let side = |part: Vec<M>| (!part.is_empty()).then(|| Box::new(compile_matchers(part)));
        M::BTree { value: Box::new(value), left: side(matchers), right: side(right) }
    }

    fn glue(matchers: &[M]) -> Option<M> {
        glue_every(matchers).or_else(|| glue_row(matchers))
    }

    /// Runs of wildcards sharing one separator set.
    fn glue_every(matchers: &[M]) -> Option<M> {
        if matchers.len() <= 1 {
            return None;
        }
        let (mut has_any, mut has_super, mut has_single) = (false, false, false);
        let mut separator: Option<Vec<char>> = None;
        for m in matchers {
            let sep = match m {
                M::Super => {
                    has_super = true;
                    Vec::new()
                }
                M::Any => {
                    has_any = true;
                    vec!['/']
                }
                M::Single => {
                    has_single = true;
                    vec!['/']
                }
                M::List { chars, not: true } => {
                    has_single = true;
                    chars.clone()
                }
                _ => return None,
            };
            match &separator {
                None => separator = Some(sep),
                Some(first) if *first == sep => {}
                Some(_) => return None,
            }
        }
        if has_super && !has_any && !has_single {
            return Some(M::Super);
        }
        if has_any && !has_super && !has_single {
            return Some(M::Any);
        }
        Some(M::Every(matchers.to_vec()))
    }

    /// Runs of static-length matchers.
    fn glue_row(matchers: &[M]) -> Option<M> {
        if matchers.len() <= 1 || matchers.iter().any(|m| m.len().is_none()) {
            return None;
        }
        Some(M::Row(matchers.to_vec()))
    }

    /// gobwas' `minimizeMatchers`: repeatedly glue the best gluable run.
    fn minimize_matchers(matchers: Vec<M>) -> Vec<M> {
        let n = matchers.len();
        let mut done: Option<(M, usize, usize)> = None;
        for l in 0..n {
            for r in (l + 1..=n).rev() {
                let Some(glued) = matchers.get(l..r).and_then(glue) else {
                    continue;
                };
                let swap = match &done {
                    None => true,
                    Some((current, cl, cr)) => {
                        let longer = matches!((current.len(), glued.len()), (Some(c), Some(g)) if g > c);
                        longer || cr - cl < r - l
                    }
                };
                if swap {
                    done = Some((glued, l, r));
                }
            }
        }
        let Some((glued, left, right)) = done else {
            return matchers;
        };
        let mut next = Vec::with_capacity(n);
        let mut glued = Some(glued);
        for (idx, m) in matchers.into_iter().enumerate() {
            if idx < left || idx >= right {
                next.push(m);
            } else if let Some(g) = glued.take() {
                next.push(g);
            }
        }
        if next.len() == n {
            return next;
        }
        minimize_matchers(next)
    }

    /// gobwas' `optimizeMatcher`.
    fn optimize(m: M) -> M {
        match m {
            M::AnyOf(mut items) if items.len() == 1 => items.pop().unwrap_or(M::Nothing),
            M::List { chars, not: false } if chars.len() == 1 => M::Text(chars.into_iter().collect()),
            M::BTree { value, left, right } => {
                let left = left.map(|l| Box::new(optimize(*l)));
                let right = right.map(|r| Box::new(optimize(*r)));
                let text = match *value {
                    M::Text(text) => text,
                    other => {
                        return M::BTree { value: Box::new(other), left, right };
                    }
                };
                match (left.as_deref(), right.as_deref()) {
                    (None, None) => M::Text(text),
                    (Some(M::Super), Some(M::Super)) => M::Contains(text),
                    (Some(M::Super), None) => M::Suffix(text),
                    (None, Some(M::Super)) => M::Prefix(text),
                    (None, Some(M::Suffix(suffix))) => M::PrefixSuffix(text, suffix.clone()),
                    (Some(M::Prefix(prefix)), None) => M::PrefixSuffix(prefix.clone(), text),
                    (Some(M::Any), None) => M::SuffixAny(text),
                    (None, Some(M::Any)) => M::PrefixAny(text),
                    _ => M::BTree { value: Box::new(M::Text(text)), left, right },
                }
            }
            other => other,
        }
    }

    /// gobwas' `minimizeTreeAnyOf`: factor common leading/trailing nodes out of `{...}`.
    fn minimize_any_of(children: &[Node]) -> Option<Node> {
        let kids: Vec<&[Node]> = children
            .iter()
            .map(|c| match c {
                Node::Pattern(nodes) => Some(nodes.as_slice()),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let (common_left, common_right) = common_children(&kids)?;
        if common_left.is_empty() && common_right.is_empty() {
            return None;
        }
        let mut alternatives: Vec<Node> = Vec::new();
        for kid in &kids {
            let end = kid.len().checked_sub(common_right.len())?;
            let reuse = kid.get(common_left.len()..end)?;
            let node = if reuse.is_empty() { Node::Nothing } else { Node::Pattern(reuse.to_vec()) };
            if !alternatives.contains(&node) {
                alternatives.push(node);
            }
        }
        let mut result = Vec::new();
        if !common_left.is_empty() {
            result.push(Node::Pattern(common_left));
        }
        if alternatives.len() == 1 {
            if let Some(only) = alternatives.pop().filter(|n| *n != Node::Nothing) {
                result.push(only);
            }
        } else if alternatives.len() > 1 {
            result.push(Node::AnyOf(alternatives));
        }
        if !common_right.is_empty() {
            result.push(Node::Pattern(common_right));
        }
        Some(Node::Pattern(result))
    }

    /// gobwas' `commonChildren`; `None` only on an (unexpected) index miss.
    fn common_children(nodes: &[&[Node]]) -> Option<(Vec<Node>, Vec<Node>)> {
        if nodes.len() <= 1 {
            return Some((Vec::new(), Vec::new()));
        }
        let mut least = 0;
        for (idx, node) in nodes.iter().enumerate() {
            if node.len() < nodes.get(least)?.len() {
                least = idx;
            }
        }
        let tree = *nodes.get(least)?;
        let tree_len = tree.len();
        let mut left = Vec::new();
        let mut right: Vec<Option<Node>> = vec![None; tree_len];
        let mut last_right = tree_len;
        let (mut break_left, mut break_right) = (false, false);
        let mut total = 0;
        for i in 0..tree_len {
            if total >= tree_len || (break_left && break_right) {
                break;
            }
            let j = tree_len - 1 - i;
            let tree_left = tree.get(i)?;
            let tree_right = tree.get(j)?;
            for (k, other) in nodes.iter().enumerate() {
                if break_left && break_right {
                    break;
                }
                if k == least {
                    continue;
                }
                let rest_left = other.get(i)?;
                let rest_right = other.get(j + other.len() - tree_len)?;
                break_left = break_left || tree_left != rest_left;
                break_right = break_right || (!break_left && j <= i);
                break_right = break_right || tree_right != rest_right;
            }
            if !break_left {
                total += 1;
                left.push(tree_left.clone());
            }
            if !break_right {
                total += 1;
                last_right = j;
                *right.get_mut(j)? = Some(tree_right.clone());
            }
        }
        let right = right.into_iter().skip(last_right).flatten().collect();
        Some((left, right))
    }

    fn emit(m: &M, out: &mut String) {
        match m {
            M::Text(text) => out.push_str(&regex::escape(text)),
            M::Any => out.push_str(ANY),
            M::Super => out.push_str(SUPER),
            M::Single => out.push_str(SINGLE),
            M::List { chars, not } => class(chars.iter().map(|&c| (c, c)), *not, out),
            M::Range { lo, hi, not } => class(std::iter::once((*lo, *hi)), *not, out),
            M::Nothing => {}
            M::AnyOf(items) => {
                out.push_str("(?:");
                for (idx, item) in items.iter().enumerate() {
                    if idx > 0 {
                        out.push('|');
                    }
                    emit(item, out);
                }
                out.push(')');
            }
            M::Row(items) | M::Every(items) | M::Concat(items) => {
                for item in items {
                    emit(item, out);
                }
            }
            M::BTree { value, left, right } => {
                if let Some(left) = left {
                    emit(left, out);
                }
                emit(value, out);
                if let Some(right) = right {
                    emit(right, out);
                }
            }
            M::Prefix(prefix) => {
                out.push_str(&regex::escape(prefix));
                out.push_str(SUPER);
            }
            M::Suffix(suffix) => {
                out.push_str(SUPER);
                out.push_str(&regex::escape(suffix));
            }
            M::Contains(needle) => {
                out.push_str(SUPER);
                out.push_str(&regex::escape(needle));
                out.push_str(SUPER);
            }
            M::PrefixAny(prefix) => {
                out.push_str(&regex::escape(prefix));
                out.push_str(ANY);
            }
            M::SuffixAny(suffix) => {
                out.push_str(ANY);
                out.push_str(&regex::escape(suffix));
            }
            M::PrefixSuffix(prefix, suffix) => {
                // gobwas: HasPrefix(s, prefix) && HasSuffix(s, suffix), overlap allowed.
                out.push_str("(?:");
                out.push_str(&regex::escape(prefix));
                out.push_str(SUPER);
                out.push_str(&regex::escape(suffix));
                for short in overlaps(prefix, suffix) {
                    out.push('|');
                    out.push_str(&regex::escape(&short));
                }
                out.push(')');
            }
        }
    }

    /// Strings shorter than `prefix + suffix` that start with `prefix` and end with `suffix`.
    fn overlaps(prefix: &str, suffix: &str) -> Vec<String> {
        let (p, s) = (prefix.as_bytes(), suffix.as_bytes());
        let mut out = Vec::new();
        for len in p.len().max(s.len())..p.len() + s.len() {
            let offset = len - s.len();
            let consistent = (offset..p.len()).all(|i| p.get(i) == s.get(i - offset));
            let tail = s.get(p.len() - offset..);
            if let (true, Some(tail)) = (consistent, tail) {
                let mut bytes = p.to_vec();
                bytes.extend_from_slice(tail);
                if let Ok(text) = String::from_utf8(bytes) {
                    out.push(text);
                }
            }
        }
        out
    }

    fn class(ranges: impl Iterator<Item = (char, char)>, not: bool, out: &mut String) {
        out.push('[');
        if not {
            out.push('^');
        }
        for (lo, hi) in ranges {
            out.push_str(&format!("\\x{{{:x}}}", u32::from(lo)));
            if lo != hi {
                out.push_str(&format!("-\\x{{{:x}}}", u32::from(hi)));
            }
        }
        out.push(']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const ORIGIN: &str = "/folder/.stignore";

    fn ign(text: &str) -> Ignores {
        Ignores::parse(text, Path::new(ORIGIN)).expect("patterns should parse")
    }

    fn err(text: &str) -> IgnoreError {
        Ignores::parse(text, Path::new(ORIGIN)).expect_err("patterns should be rejected")
    }

    fn assert_cases(ignores: &Ignores, cases: &[(&str, bool)]) {
        for &(path, ignored) in cases {
            assert_eq!(ignores.is_ignored(path), ignored, "path {path:?}");
        }
    }

    // Syncthing 1.19: TestCommentsAndBlankLines.
    #[test]
    fn comment_lines() {
        let i = ign("\n\t// foo\n\t//bar\n\n\t//!baz\n\t//#dex\n\n\t//        ips\n\n");
        assert!(i.is_empty());
        assert!(!i.is_ignored("foo"));
        assert!(!i.is_ignored("//bar"));
        assert_eq!(i.matches("bar"), Match::NotMatched);
    }

    // Syncthing 1.19: TestIssue4680, `#` alone does not start a comment.
    #[test]
    fn hash_line_is_a_pattern() {
        let i = ign("#snapshot");
        assert_cases(&i, &[("#snapshot", true), ("#snapshot/foo", true), ("snapshot", false)]);
    }

    // Syncthing 1.19: parseIgnoreFile trims every line with strings.TrimSpace.
    #[test]
    fn blank_lines_and_surrounding_whitespace() {
        let i = ign("   \n\t  foo  \t\n\n(?i)my pictures \n");
        assert_cases(
            &i,
            &[
                ("foo", true),
                (" foo", false),
                ("foo ", false),
                ("My Pictures", true),
                ("My Pictures/Img15.PNG", true),
                ("MyPictures", false),
            ],
        );
        assert_eq!(i.lines(), ["", "foo", "", "(?i)my pictures"]);
    }

    #[test]
    fn crlf_lines() {
        let i = ign("foo\r\n/bar\r\n\r\n!baz\r\n*z\r\n");
        assert_cases(&i, &[("foo", true), ("bar", true), ("x/bar", false), ("baz", false), ("quz", true)]);
        assert_eq!(i.lines(), ["foo", "/bar", "", "!baz", "*z"]);
    }

    // Syncthing 1.19 docs: `te*st` matches test, subdir/telerest but not tele/rest.
    #[test]
    fn star_does_not_cross_slash() {
        let i = ign("te*st");
        assert_cases(
            &i,
            &[("test", true), ("telerest", true), ("subdir/telerest", true), ("tele/rest", false)],
        );
    }

    // Syncthing 1.19 docs (`te**st`) and TestIssue3674.
    #[test]
    fn double_star_crosses_slash() {
        let i = ign("te**st");
        assert_cases(&i, &[("test", true), ("subdir/telerest", true), ("tele/sub/dir/rest", true)]);
        let i = ign("a*b\na**c");
        assert_cases(
            &i,
            &[
                ("ab", true),
                ("asdfb", true),
                ("ac", true),
                ("asdfc", true),
                ("as/db", false),
                ("as/dc", true),
            ],
        );
    }

    // Syncthing 1.19 docs (`te??st`) and TestGobwasGlobIssue18.
    #[test]
    fn question_mark_matches_one_non_slash_char() {
        let i = ign("te??st");
        assert_cases(&i, &[("tebest", true), ("teb/st", false), ("test", false)]);
        let i = ign("a?b\nbb?");
        assert_cases(
            &i,
            &[("ab", false), ("acb", true), ("asdb", false), ("bb", false), ("bba", true), ("bbaa", false)],
        );
    }

    // Syncthing 1.19 docs: `[a-z]` character ranges; gobwas also has `[abc]` and `[!...]`.
    #[test]
    fn character_class() {
        let i = ign("/file[0-9].txt\n/[abc]x\n/[!a-c]y");
        assert_cases(
            &i,
            &[
                ("file1.txt", true),
                ("filex.txt", false),
                ("ax", true),
                ("cx", true),
                ("dx", false),
                ("dy", true),
                ("by", false),
            ],
        );
    }

    // Syncthing 1.19: TestCommas.
    #[test]
    fn alternatives() {
        let i = ign("foo,bar.txt\n{baz,quux}.txt\n/*.{jpg,png}");
        assert_cases(
            &i,
            &[
                ("foo.txt", false),
                ("bar.txt", false),
                ("foo,bar.txt", true),
                ("baz.txt", true),
                ("quux.txt", true),
                ("baz,quux.txt", false),
                ("a.jpg", true),
                ("a.png", true),
                ("a.gif", false),
            ],
        );
    }

    // Syncthing 1.19 (gobwas/glob v0.2.3 parser): an unclosed `{` is closed at the end.
    #[test]
    fn unclosed_alternatives_are_closed() {
        let i = ign("/x{a,b");
        assert_cases(&i, &[("xa", true), ("xb", true), ("x{a,b", false)]);
    }

    // Syncthing 1.19 docs: `\{banana\}` matches `{banana}` literally (not on Windows).
    #[cfg(not(windows))]
    #[test]
    fn escape() {
        let i = ign("\\{banana\\}\n/star\\*\n/q\\?\n/tail\\");
        assert_cases(
            &i,
            &[
                ("{banana}", true),
                ("banana", false),
                ("star*", true),
                ("starx", false),
                ("q?", true),
                ("qx", false),
                // gobwas/glob v0.2.3 drops a trailing lone backslash.
                ("tail", true),
            ],
        );
    }

    // Syncthing 1.19: TestWindowsPatterns, `\` is a path separator on Windows.
    #[cfg(windows)]
    #[test]
    fn backslash_is_separator_on_windows() {
        let i = ign("a\\b");
        assert!(i.is_ignored("a/b"));
    }

    // Syncthing 1.19 docs: `/foo` matches foo but not subdir/foo; TestRoot.
    #[test]
    fn leading_slash_anchors_to_root() {
        let i = ign("/foo");
        assert_cases(&i, &[("foo", true), ("foo/bar", true), ("subdir/foo", false), ("foobar", false)]);
        let i = ign("!/a\n/*");
        assert_cases(&i, &[(".", false), ("a", false), ("a/x", false), ("b", true), ("b/x", true)]);
    }

    // Syncthing 1.19 docs: `foo` matches foo, subdir/foo and any directory named foo.
    #[test]
    fn bare_name_matches_at_any_depth() {
        let i = ign("foo");
        assert_cases(
            &i,
            &[("foo", true), ("subdir/foo", true), ("a/b/c/foo", true), ("foofoo", false), ("xfoo", false)],
        );
    }

    // Syncthing 1.19: parseIgnoreFile adds `pattern/**` for every plain line.
    #[test]
    fn directory_pattern_matches_contents() {
        let i = ign("foo\n/bar\nx/y");
        assert_cases(
            &i,
            &[
                ("foo/a", true),
                ("sub/foo/a/b", true),
                ("bar/a/b", true),
                ("sub/bar/a", false),
                ("x/y/z", true),
                ("q/x/y/z", true),
                ("x/yz", false),
            ],
        );
    }

    // Syncthing 1.19: TestIssue3639 and the docs note, `foo/` matches the contents only.
    #[test]
    fn trailing_slash() {
        let i = ign("foo/");
        assert_cases(&i, &[("foo", false), ("foo/bar", true), ("foo/bar/baz", true), ("sub/foo/bar", true)]);
        assert_eq!(i.patterns(), expected(&["foo/**", "**/foo/**"]));
    }

    // Syncthing 1.19: TestIssue3164, `**/` patterns are also tried without that prefix.
    #[test]
    fn double_star_prefix_and_expansion() {
        let i = ign("(?d)(?i)*.part\n(?d)(?i)/foo\n(?d)(?i)**/bar");
        let want = [
            "(?d)(?i)*.part",
            "(?d)(?i)**/*.part",
            "(?d)(?i)*.part/**",
            "(?d)(?i)**/*.part/**",
            "(?d)(?i)/foo",
            "(?d)(?i)/foo/**",
            "(?d)(?i)**/bar",
            "(?d)(?i)bar",
            "(?d)(?i)**/bar/**",
            "(?d)(?i)bar/**",
        ];
        assert_eq!(i.patterns(), want);
        assert_cases(
            &i,
            &[("bar", true), ("x/BAR", true), ("bar/x", true), ("foo/x", true), ("x/foo", false)],
        );
    }

    fn expected(globs: &[&str]) -> Vec<String> {
        let fold = if DEFAULT_FOLD_CASE { "(?i)" } else { "" };
        globs.iter().map(|g| format!("{fold}{g}")).collect()
    }

    // Syncthing 1.19: TestExcludes.
    #[test]
    fn negation_includes() {
        let i = ign("!iex2\n!ign1/ex\nign1\ni*2\n!ign2");
        assert_cases(
            &i,
            &[
                ("ign1", true),
                ("ign2", true),
                ("ibla2", true),
                ("iex2", false),
                ("ign1/ign", true),
                ("ign1/ex", false),
                ("ign1/iex2", false),
                ("iex2/ign", false),
                ("foo/bar/ign1", true),
                ("foo/bar/ign2", true),
                ("foo/bar/iex2", false),
            ],
        );
        assert_eq!(i.matches("iex2"), Match::Included);
        assert_eq!(i.matches("ign1"), Match::Ignored { deletable: false });
        assert_eq!(i.matches("other"), Match::NotMatched);
    }

    // Syncthing 1.19 docs: the first pattern that matches decides.
    #[test]
    fn first_match_wins() {
        let i = ign("!keep.txt\n*.txt");
        assert_eq!(i.matches("keep.txt"), Match::Included);
        assert_eq!(i.matches("other.txt"), Match::Ignored { deletable: false });
        let i = ign("*.txt\n!keep.txt");
        assert_eq!(i.matches("keep.txt"), Match::Ignored { deletable: false });
        let i = ign("(?d)a*\n!ab\nabc");
        assert_eq!(i.matches("abc"), Match::Ignored { deletable: true });
        let i = ign("!ab\n(?d)a*\nabc");
        assert_eq!(i.matches("ab"), Match::Included);
        assert_eq!(i.matches("abc"), Match::Ignored { deletable: true });
    }

    // Syncthing 1.19 docs: `(?i)test` matches test, TEST and tEsT; `(?i)!picture*.png`.
    #[test]
    fn case_insensitive_prefix() {
        let i = ign("(?i)test\n(?i)!picture*.png\n*.png\n(?i)/ÄBC");
        assert_cases(
            &i,
            &[
                ("test", true),
                ("TEST", true),
                ("tEsT", true),
                ("dir/TeSt", true),
                ("äbc", true),
                ("ÄbC", true),
            ],
        );
        assert_eq!(i.matches("Picture1.PNG"), Match::Included);
        assert!(i.is_ignored("other.png"));
    }

    // Syncthing 1.19: TestCaseSensitivity, patterns fold case only on macOS and Windows.
    #[test]
    fn default_case_sensitivity() {
        let i = ign("test");
        assert!(i.is_ignored("test"));
        assert!(!i.is_ignored("foo"));
        for path in ["TEST", "Test", "tESt"] {
            assert_eq!(i.is_ignored(path), DEFAULT_FOLD_CASE, "{path}");
        }
    }

    // Syncthing 1.19: TestDeletables.
    #[test]
    fn deletable_prefix() {
        let i = ign("(?d)ign1\n(?d)(?i)ign2\n(?i)(?d)ign3\n!(?d)ign4\n!ign5\n!(?i)(?d)ign6\nign7\n(?i)ign8");
        let cases = [
            ("ign1", true, true),
            ("ign2", true, true),
            ("ign3", true, true),
            ("ign4", false, false),
            ("ign5", false, false),
            ("ign6", false, false),
            ("ign7", true, false),
            ("ign8", true, false),
        ];
        for (path, ignored, deletable) in cases {
            let m = i.matches(path);
            assert_eq!((m.is_ignored(), m.is_deletable()), (ignored, deletable), "{path}");
        }
    }

    // Syncthing 1.19: TestFlagOrder, prefixes in any order, each at most once.
    #[test]
    fn combined_prefixes() {
        let i =
            ign("(?i)(?d)!ign1\n(?d)(?i)!ign2\n(?i)!(?d)ign3\n(?d)!(?i)ign4\n!(?i)(?d)ign5\n!(?d)(?i)ign6\n\
             !!(?i)(?d)ign7\n(?i)(?i)(?d)ign8\n(?i)(?d)(?d)!ign9\n(?d)(?d)!ign10");
        for n in 1..=6 {
            assert_eq!(i.matches(&format!("IGN{n}")), Match::Included, "ign{n}");
        }
        for n in 7..=9 {
            assert!(!i.matches(&format!("ign{n}")).is_deletable(), "ign{n}");
        }
        // A repeated prefix is kept as pattern text: `(?d)!ign10` with `?` as a wildcard.
        assert!(!i.is_ignored("ign10"));
        assert_eq!(i.matches("(?d)!ign10"), Match::Ignored { deletable: true });
    }

    // Syncthing 1.19: TestEmptyPatterns.
    #[test]
    fn prefix_without_pattern_is_error() {
        for text in ["!", "(?d)", "(?i)", "!(?i)(?d)"] {
            assert!(matches!(err(text), IgnoreError::Pattern { .. }), "{text}");
        }
    }

    // Syncthing 1.19: TestBadPatterns (`[`, `/[`, `**/[`) as errors with file and line.
    #[test]
    fn bad_pattern_is_clear_error() {
        match err("foo\n// fine\n  /bar[  \nbaz") {
            IgnoreError::Pattern { file, line, pattern, reason } => {
                assert_eq!(file, Path::new(ORIGIN));
                assert_eq!(line, 3);
                assert_eq!(pattern, "/bar[");
                assert!(reason.contains('['), "{reason}");
            }
            other => panic!("unexpected error {other:?}"),
        }
        let shown = err("a[z-a]").to_string();
        // The file's path is shown with the system's separators (`\folder\.stignore` on Windows).
        let at = ":1: invalid ignore pattern \"a[z-a]\"";
        assert!(shown.replace('\\', "/").starts_with(&format!("{ORIGIN}{at}")), "{shown}");
        for text in ["[", "/[", "**/[", "[]", "[!]", "[a-", "[a-b", "[ab-cd]x[", "x[a-z0-9]"] {
            assert!(matches!(err(text), IgnoreError::Pattern { .. }), "{text}");
        }
    }

    // Syncthing 1.19: TestIssue3174, non-ASCII text.
    #[test]
    fn unicode_patterns() {
        let i = ign("*ä*");
        assert!(i.is_ignored("åäö"));
        assert!(!i.is_ignored("åö"));
    }

    // Syncthing 1.19: TestSpecialChars.
    #[test]
    fn special_characters() {
        let i = ign(
            "(?i)/#recycle\n(?i)/#nosync\n(?i)/$Recycle.bin\n(?i)/$RECYCLE.BIN\n(?i)/System Volume Information",
        );
        assert_cases(
            &i,
            &[
                ("#nosync", true),
                ("$RECYCLE.BIN", true),
                ("$RECYCLE.BIN/S-1-5-18/desktop.ini", true),
                ("x", false),
            ],
        );
    }

    // Syncthing 1.19 (gobwas v0.2.3 PrefixSuffix, its issue #51): `a/**/b` matches `a/b`.
    #[test]
    fn double_star_glob_quirks_match_syncthing() {
        let i = ign("a/**/b");
        assert_cases(
            &i,
            &[
                ("a/b", true),
                ("a/x/b", true),
                ("a/x/y/b", true),
                ("x/a/y/b", true),
                ("x/a/b", false),
                ("a/b/c", false),
                ("a/x/b/c", true),
            ],
        );
        let i = ign("/a**a\n/x**y?");
        assert_cases(&i, &[("a", true), ("aa", true), ("ab", false), ("xyz", true), ("xz", false)]);
    }

    #[test]
    fn dot_and_empty_paths_never_match() {
        let i = ign("*\n**");
        assert_eq!(i.matches("."), Match::NotMatched);
        assert_eq!(i.matches(""), Match::NotMatched);
        assert!(i.is_ignored("x"));
    }

    #[test]
    fn empty_ignores_match_nothing() {
        let i = Ignores::default();
        assert!(i.is_empty());
        assert!(i.skip_ignored_dirs());
        assert_eq!(i.matches("anything/at/all"), Match::NotMatched);
        assert!(ign("").is_empty());
    }

    // Syncthing 1.19: TestIssue5009.
    #[test]
    fn skip_ignored_dirs_false_with_negation() {
        assert!(ign("ign1\ni*2").skip_ignored_dirs());
        assert!(!ign("!iex2\n!ign1/ex\nign1\ni*2\n!ign2").skip_ignored_dirs());
        assert!(!ign("!/foo/ign*\n*").skip_ignored_dirs());
    }

    // Syncthing 1.19: TestSkipIgnoredDirs, top-level includes keep skipping possible.
    #[test]
    fn skip_ignored_dirs_true_for_top_level_includes() {
        let cases = [
            ("!/test", true),
            ("!/t[eih]t", true),
            ("!/t*t", true),
            ("!/t?t", true),
            ("!/**", true),
            ("!/parent/test", false),
            ("!/parent/t[eih]t", false),
            ("!/parent/t*t", false),
            ("!/parent/t?t", false),
            ("!/**.mp3", false),
            ("!/pa*nt/test", false),
            ("!/pa[sdf]nt/t[eih]t", false),
            ("!/lowest/pa[sdf]nt/test", false),
            ("!/lo*st/parent/test", false),
            ("/pa*nt/test", true),
            ("test", true),
            ("*", true),
        ];
        for (line, want) in cases {
            assert_eq!(ign(line).skip_ignored_dirs(), want, "{line}");
        }
        assert!(ign("/foo/ign*\n!/f*\n!/bar\n*").skip_ignored_dirs());
    }

    // Syncthing 1.19: TestLines and TestDuplicateLines.
    #[test]
    fn root_lines_and_duplicates() {
        let i = ign("\n!/a\n/*\n!/a\n");
        assert_eq!(i.root_lines(), ["", "!/a", "/*", "!/a"]);
        assert_eq!(i.patterns(), expected(&["!/a", "!/a/**", "/*", "/*/**"]));
        assert_eq!(i.patterns().len(), ign("!/a\n/*").patterns().len());
    }

    fn write(path: &Path, text: &str) {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("create dir");
        }
        fs::write(path, text).expect("write file");
    }

    #[test]
    fn load_without_stignore_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let i = Ignores::load(dir.path()).expect("no file is fine");
        assert!(i.is_empty());
        assert!(i.lines().is_empty());
        assert!(!i.is_ignored("x"));
    }

    #[test]
    fn load_reads_stignore() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join(IGNORE_FILE), "// comment\n*.tmp\n!keep\n");
        let i = Ignores::load(dir.path()).expect("load");
        assert!(i.is_ignored("a/b.tmp"));
        assert_eq!(i.matches("keep"), Match::Included);
        assert!(!i.is_ignored("b.txt"));
        assert!(!i.skip_ignored_dirs());
    }

    // Syncthing 1.19: include = Join(Dir(including file), path); patterns stay root-relative.
    #[test]
    fn include_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(&root.join(IGNORE_FILE), "/first\n#include sub/more.txt\n/last\n");
        write(&root.join("sub/more.txt"), "// from sub\n/nested\n#include deeper/x\n");
        write(&root.join("sub/deeper/x"), "!/last\n");
        let i = Ignores::load(root).expect("load");
        assert_cases(
            &i,
            &[("first", true), ("nested", true), ("sub/nested", false), ("last", false), ("other", false)],
        );
        assert_eq!(i.matches("last"), Match::Included);
        assert_eq!(
            i.lines(),
            [
                "/first",
                "#include sub/more.txt",
                "// from sub",
                "/nested",
                "#include deeper/x",
                "!/last",
                "/last"
            ]
        );
        assert_eq!(i.root_lines(), ["/first", "#include sub/more.txt", "/last"]);
    }

    // Syncthing 1.19: filepath.Join(dir, "/x") keeps `#include /x` relative to dir.
    #[test]
    fn include_with_leading_slash_is_relative() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join(IGNORE_FILE), "#include /inc/list\n");
        write(&dir.path().join("inc/list"), "*.bak\n");
        assert!(Ignores::load(dir.path()).expect("load").is_ignored("x.bak"));
    }

    // Syncthing 1.19: TestIssue4901, a missing include is an error until it exists.
    #[test]
    fn include_missing_is_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join(IGNORE_FILE), "#include unicorn-lazor-death\npuppy\n");
        match Ignores::load(dir.path()) {
            Err(IgnoreError::IncludeNotFound { file, line, path }) => {
                assert_eq!(file, dir.path().join(IGNORE_FILE));
                assert_eq!(line, 1);
                assert_eq!(path, dir.path().join("unicorn-lazor-death"));
            }
            other => panic!("unexpected {other:?}"),
        }
        write(&dir.path().join("unicorn-lazor-death"), " ");
        assert!(Ignores::load(dir.path()).expect("load").is_ignored("puppy"));
    }

    // Syncthing 1.19: TestPartialIncludeLine.
    #[test]
    fn include_without_file_is_error() {
        for text in ["#include", "#include\n", "#include ", "#include \n", "#include   \n\n\n", "#includefoo"]
        {
            assert!(matches!(err(text), IgnoreError::Pattern { line: 1, .. }), "{text:?}");
        }
    }

    // Syncthing 1.19: a cycle back to an included file is a "multiple include" error.
    #[test]
    fn include_loop_is_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(&root.join(IGNORE_FILE), "#include a\n");
        write(&root.join("a"), "x\n#include sub/b\n");
        write(&root.join("sub/b"), "y\n#include ../a\n");
        match Ignores::load(root) {
            Err(IgnoreError::IncludeLoop { file, line, path }) => {
                assert_eq!(file, root.join("sub/b"));
                assert_eq!(line, 2);
                assert_eq!(path, root.join("a"));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Deliberate difference: Syncthing re-reads the root here and dedups every line.
        write(&root.join(IGNORE_FILE), "#include sub/c\n");
        write(&root.join("sub/c"), "#include ../.stignore\n");
        assert!(matches!(Ignores::load(root), Err(IgnoreError::IncludeLoop { .. })));
    }

    // Syncthing 1.19: "multiple include" error, but a repeated identical line is skipped.
    #[test]
    fn duplicate_include() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(&root.join("common"), "*.o\n");
        write(&root.join(IGNORE_FILE), "#include common\n#include common\n");
        assert!(Ignores::load(root).expect("identical line is skipped").is_ignored("x.o"));
        write(&root.join(IGNORE_FILE), "#include common\n#include ./common\n");
        assert!(matches!(Ignores::load(root), Err(IgnoreError::DuplicateInclude { line: 2, .. })));
    }

    #[test]
    fn unreadable_root_is_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join(IGNORE_FILE)).expect("mkdir");
        assert!(matches!(Ignores::load(dir.path()), Err(IgnoreError::Io { .. })));
    }

    #[test]
    fn deeply_nested_alternatives_are_rejected_not_crashing() {
        let text = format!("{}x{}", "{a,".repeat(200), "}".repeat(200));
        assert!(matches!(err(&text), IgnoreError::Pattern { .. }));
        let long = "a?".repeat(500);
        assert!(ign(&long).is_ignored(&"ab".repeat(500)));
    }

    #[test]
    fn many_patterns() {
        let mut text = String::new();
        for n in 0..2000 {
            text.push_str(&format!("dir{n}/*.tmp\n!keep{n}\n(?i)Case{n}\n"));
        }
        let i = ign(&text);
        assert!(i.is_ignored("x/dir1999/a.tmp"));
        assert_eq!(i.matches("a/keep7"), Match::Included);
        assert!(i.is_ignored("CASE42/sub"));
        assert!(!i.is_ignored("dir1/a.txt"));
    }
}
