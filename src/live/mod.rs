//! Live writes on a built index, without a rebuild: for now, deletions
//! (takedowns). A deletion is appended to the index directory's
//! write-ahead log ([`log`]) and fsynced, then published as a new
//! [`Tombstones`] snapshot that every request resolves its filter against,
//! so every retriever drops the item from the call's return on, while
//! requests already running finish on the snapshot they started with.
//! [`Engine::open`](crate::Engine::open) replays the log.

pub(crate) mod log;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::error::{Error, Result};
pub use log::TornTail;

/// Largest number of ids one write call may carry.
pub const MAX_WRITE_BATCH: usize = 100_000;

/// The deleted items of an index, by internal id: one bit each.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tombstones {
    bits: Vec<u64>,
    /// Items of the index (the bits past it stay clear).
    len: usize,
    count: usize,
}

impl Tombstones {
    fn sized(items: usize) -> Tombstones {
        Tombstones {
            bits: vec![0; items.div_ceil(64)],
            len: items,
            count: 0,
        }
    }

    /// Whether `item` is deleted.
    #[inline]
    pub fn contains(&self, item: u32) -> bool {
        self.bits.get(item as usize / 64).is_some_and(|w| w & (1 << (item % 64)) != 0)
    }

    /// Marks `item` deleted; false if it already was (or is out of range).
    fn insert(&mut self, item: u32) -> bool {
        if item as usize >= self.len {
            return false;
        }
        let Some(w) = self.bits.get_mut(item as usize / 64) else {
            return false;
        };
        let bit = 1 << (item % 64);
        let new = *w & bit == 0;
        *w |= bit;
        self.count += usize::from(new);
        new
    }
}

/// What the live log holds and what opening it found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiveStatus {
    /// Items deleted since the index was built.
    pub deleted: usize,
    /// Acknowledged write batches in the log.
    pub records: usize,
    /// Ids in the log that this index does not hold (deleted in another
    /// generation, or never part of it): skipped on replay.
    pub unknown_ids: usize,
    /// An incomplete last record, left by a crash during a write that was
    /// therefore never acknowledged: dropped on replay, cut off at the next write.
    pub torn_tail: Option<TornTail>,
}

/// An engine's live state: the tombstones requests read, and the log's
/// appending end, which one writer at a time holds.
pub(crate) struct Live {
    tombstones: ArcSwap<Tombstones>,
    writer: Mutex<Writer>,
    path: PathBuf,
}

struct Writer {
    appender: Option<log::Appender>,
    status: LiveStatus,
}

impl Live {
    /// Replays the log in `dir` over an index of `items` items, `index_of`
    /// resolving external ids.
    pub fn open(dir: &Path, items: usize, index_of: impl Fn(&str) -> Option<u32>) -> Result<Live> {
        let path = dir.join(log::LOG_FILE);
        let replay = log::read(&path)?;
        let mut dead = Tombstones::sized(items);
        let mut unknown_ids = 0;
        for record in &replay.records {
            for id in &record.delete {
                match index_of(id) {
                    Some(i) => {
                        dead.insert(i);
                    }
                    None => unknown_ids += 1,
                }
            }
        }
        if let Some(t) = replay.torn {
            tracing::warn!(path = %path.display(), offset = t.offset, bytes = t.bytes, "live log: dropped an incomplete last record (a crash during a write)");
        }
        let status = LiveStatus {
            deleted: dead.count,
            records: replay.records.len(),
            unknown_ids,
            torn_tail: replay.torn,
        };
        Ok(Live {
            tombstones: ArcSwap::from_pointee(dead),
            writer: Mutex::new(Writer { appender: None, status }),
            path,
        })
    }

    /// The tombstones as of now (a request keeps this snapshot throughout).
    pub fn snapshot(&self) -> Arc<Tombstones> {
        self.tombstones.load_full()
    }

    /// What the log holds.
    pub fn status(&self) -> Result<LiveStatus> {
        Ok(self.lock()?.status.clone())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Writer>> {
        self.writer
            .lock()
            .map_err(|_| Error::internal("live writes", "a writer panicked while holding the log"))
    }

    /// Deletes `items` (internal ids, with their external `ids` for the
    /// log): durable in the log before they are published. Returns how many
    /// were not deleted already.
    pub fn delete(&self, items: &[u32], ids: Vec<String>) -> Result<usize> {
        let mut w = self.lock()?;
        let current = self.tombstones.load();
        if items.iter().all(|&i| current.contains(i)) {
            return Ok(0);
        }
        if w.appender.is_none() {
            w.appender = Some(log::Appender::open(&self.path)?);
        }
        let Some(appender) = w.appender.as_mut() else {
            return Err(Error::internal("live writes", "the log's appender was not opened"));
        };
        appender.append(&log::Record { delete: ids })?;
        let mut next = Tombstones::clone(&current);
        let added = items.iter().filter(|&&i| next.insert(i)).count();
        w.status.records += 1;
        w.status.deleted = next.count;
        // A torn tail is cut off by the first append.
        w.status.torn_tail = None;
        self.tombstones.store(Arc::new(next));
        Ok(added)
    }

    /// Copies the log of the index in `from` into `to`, a new generation of
    /// the same catalog (an in-place retrain), so its deletions outlive the
    /// swap. A deletion made between this copy and the swap is not carried:
    /// retrain when nothing writes to the index.
    pub fn carry_over(from: &Path, to: &Path) -> Result<()> {
        let src = from.join(log::LOG_FILE);
        if !src.exists() {
            return Ok(());
        }
        let dst = to.join(log::LOG_FILE);
        std::fs::copy(&src, &dst).map_err(|e| Error::io(&dst, e))?;
        let f = std::fs::File::open(&dst).map_err(|e| Error::io(&dst, e))?;
        f.sync_all().map_err(|e| Error::io(&dst, e))?;
        crate::index::writer::sync_dir(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_count_each_item_once() {
        let mut t = Tombstones::sized(130);
        assert!(t.insert(0) && t.insert(129) && !t.insert(129));
        assert!(!t.insert(130), "out of range");
        assert_eq!(t.count, 2);
        assert!(t.contains(0) && t.contains(129) && !t.contains(64) && !t.contains(9999));
    }

    #[test]
    fn deletes_are_durable_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let index_of = |id: &str| id.strip_prefix('i').and_then(|n| n.parse().ok());
        let live = Live::open(dir.path(), 10, index_of).unwrap();
        assert_eq!(live.delete(&[3, 4], vec!["i3".into(), "i4".into()]).unwrap(), 2);
        assert_eq!(live.delete(&[4], vec!["i4".into()]).unwrap(), 0, "already deleted: nothing written");
        assert_eq!(live.delete(&[4, 5], vec!["i4".into(), "i5".into()]).unwrap(), 1);
        let before = live.snapshot();
        let again = Live::open(dir.path(), 10, index_of).unwrap();
        let s = again.status().unwrap();
        assert_eq!((s.deleted, s.records, s.unknown_ids), (3, 2, 0));
        assert!((0..10).all(|i| again.snapshot().contains(i) == before.contains(i)));
        // A smaller catalog: ids it does not hold are counted, not fatal.
        assert_eq!(
            Live::open(dir.path(), 4, |id| index_of(id).filter(|&i| i < 4))
                .unwrap()
                .status()
                .unwrap()
                .unknown_ids,
            3
        );
    }
}
