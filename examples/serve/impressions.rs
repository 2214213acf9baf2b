//! The impression log: every answer to a request that carries a `user`
//! appends one line per item shown, in the events file's JSON Lines format,
//! so the file can be handed to the next build beside `events.jsonl`
//! (`Events` loads impressions apart from the events; see
//! `twostage::Impression`):
//!
//! ```text
//! {"user":"usr-00042","item":"trk-00007","ts":1733472000,"type":"impression","request":"r-675f1a2b-00003-17","variant":"ranker","position":0}
//! ```
//!
//! Each answer gets a request id (`"request_id"` in its JSON), unique across
//! restarts of the service (the start time and process id prefix a counter).
//! Lines are written and flushed under one lock per answer, so an answer's
//! lines are never interleaved with another's; they are not fsynced: an
//! impression log is analytics, and losing its last lines to a machine crash
//! costs less than an fsync per request.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

/// An append-only impression file.
pub struct ImpressionLog {
    file: Mutex<BufWriter<File>>,
    prefix: String,
    next: AtomicU64,
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl ImpressionLog {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> std::io::Result<ImpressionLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(ImpressionLog {
            file: Mutex::new(BufWriter::new(file)),
            prefix: format!("r-{:x}-{:05}", now_secs(), std::process::id()),
            next: AtomicU64::new(0),
        })
    }

    /// A request id no other answer of this or an earlier run has.
    pub fn request_id(&self) -> String {
        format!("{}-{}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Appends one line per item of an answer, in order.
    pub fn record(&self, request: &str, user: &str, variant: Option<&str>, items: &[String]) -> std::io::Result<()> {
        let ts = now_secs();
        let mut lines = String::new();
        for (position, item) in items.iter().enumerate() {
            let mut line = json!({"user": user, "item": item, "ts": ts, "type": "impression", "request": request, "position": position});
            if let Some(v) = variant {
                line["variant"] = json!(v);
            }
            lines.push_str(&line.to_string());
            lines.push('\n');
        }
        // A poisoned lock only means another writer panicked mid-write; the
        // file is still appendable.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(lines.as_bytes())?;
        file.flush()
    }
}
