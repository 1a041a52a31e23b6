//! The last log lines, kept in memory for the API's `/api/log` (the web UI's log view).
//!
//! A `tracing` layer that the binary (or the desktop app) installs beside its stderr output:
//! it keeps the newest [`CAPACITY`] events at INFO and above, each numbered, so a client can
//! ask for what came after the last line it saw. The subscriber is process-wide, so the buffer
//! is too ([`RECENT`]).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// How many lines are kept.
pub const CAPACITY: usize = 500;

/// The process's recent log lines.
pub static RECENT: RecentLog = RecentLog { inner: Mutex::new(Lines { next: 1, lines: VecDeque::new() }) };

/// One log line.
#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    /// Increases by one per line; ask for lines after the last one seen.
    pub seq: u64,
    /// RFC 3339, UTC.
    pub at: String,
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message and its fields.
    pub message: String,
}

pub struct RecentLog {
    inner: Mutex<Lines>,
}

struct Lines {
    next: u64,
    lines: VecDeque<LogLine>,
}

impl RecentLog {
    /// The kept lines numbered after `since`, oldest first.
    pub fn since(&self, since: u64) -> Vec<LogLine> {
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.lines.iter().filter(|l| l.seq > since).cloned().collect()
    }

    fn push(&self, at: String, level: String, target: String, message: String) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let seq = inner.next;
        inner.next += 1;
        if inner.lines.len() == CAPACITY {
            inner.lines.pop_front();
        }
        inner.lines.push_back(LogLine { seq, at, level, target, message });
    }
}

/// The layer that fills [`RECENT`]; give it a filter (INFO and above is what the UI shows).
pub struct Layer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Layer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let meta = event.metadata();
        let at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        RECENT.push(at, meta.level().to_string(), meta.target().to_owned(), message.0);
    }
}

/// `message` first, then `field=value` for the others, as the stderr output shows them.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}{rest}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn lines_are_numbered_bounded_and_carry_their_fields() {
        let subscriber = tracing_subscriber::registry().with(Layer);
        tracing::subscriber::with_default(subscriber, || {
            let before = RECENT.since(0).last().map_or(0, |l| l.seq);
            tracing::warn!(device = "ABC", "connection closed");
            let got = RECENT.since(before);
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(got[0].message, "connection closed device=ABC");
            assert_eq!(got[0].level, "WARN");
            for i in 0..CAPACITY + 10 {
                tracing::info!(i, "line");
            }
            let all = RECENT.since(0);
            assert_eq!(all.len(), CAPACITY, "only the newest are kept");
            assert!(all.windows(2).all(|w| w[1].seq == w[0].seq + 1));
            assert!(all[0].seq > before + 1, "the oldest went first");
        });
    }
}
