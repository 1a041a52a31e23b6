//! Placeholder until the .stignore module lands.
use std::path::{Path, PathBuf};
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    #[error("cannot read {path}")]
    Io { path: PathBuf, source: std::io::Error },
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    NotMatched,
    Ignored { deletable: bool },
    Included,
}
impl Match {
    pub fn is_ignored(self) -> bool {
        matches!(self, Self::Ignored { .. })
    }
}
#[derive(Clone, Debug, Default)]
pub struct Ignores {
    lines: Vec<String>,
}
impl Ignores {
    pub fn load(_root: &Path) -> Result<Self, IgnoreError> {
        Ok(Self::default())
    }
    pub fn matches(&self, _p: &str) -> Match {
        Match::NotMatched
    }
    pub fn skip_ignored_dirs(&self) -> bool {
        true
    }
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}
