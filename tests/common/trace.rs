//! A `tracing` subscriber that records span names and event messages, for
//! tests that check what a service's own subscriber would see. Only for a
//! test binary that runs one recording at a time (see `tests/tracing.rs`).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// What was seen, in order.
#[derive(Default)]
pub struct Seen {
    /// `level name` of every span created.
    pub spans: Vec<String>,
    /// `level message` of every event.
    pub events: Vec<String>,
}

/// Records every span and event at every level.
#[derive(Clone, Default)]
pub struct Recorder {
    seen: Arc<Mutex<Seen>>,
    next: Arc<AtomicU64>,
}

impl Recorder {
    /// Runs `f` with this recorder as the thread's subscriber.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        tracing::subscriber::with_default(self.clone(), || {
            // Other tests on other threads hit the same callsites with no
            // subscriber; a callsite first registered in a race with this
            // dispatcher can keep a cached "never" interest. Recompute it.
            tracing::callsite::rebuild_interest_cache();
            f()
        })
    }

    /// Span names seen (without levels).
    pub fn span_names(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|s| {
                s.spans
                    .iter()
                    .filter_map(|l| l.split_once(' ').map(|(_, n)| n.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Spans as `LEVEL name`.
    pub fn spans(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.spans.clone()).unwrap_or_default()
    }

    /// Events as `LEVEL message`.
    pub fn events(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.events.clone()).unwrap_or_default()
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        if let Ok(mut s) = self.seen.lock() {
            s.spans.push(format!("{} {}", attrs.metadata().level(), attrs.metadata().name()));
        }
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        if let Ok(mut s) = self.seen.lock() {
            s.events.push(format!("{} {}", event.metadata().level(), m.0));
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
