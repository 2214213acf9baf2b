//! [`EngineHandle`]: serve from one index while swapping in a freshly built
//! one, without stopping and without locks on the request path.
//!
//! An [`Engine`] is immutable. A service that rebuilds its index keeps the
//! current engine in a handle; each request takes a snapshot (an
//! `Arc<Engine>`) and runs entirely on it, so a request that started before a
//! swap finishes on the index it started with, and the old engine is freed
//! when its last in-flight request drops the snapshot.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use crate::engine::Engine;
use crate::error::Result;
use crate::request::{Recommendations, Request};

/// A shareable, hot-swappable reference to the current [`Engine`].
///
/// ```no_run
/// # fn main() -> twostage::Result<()> {
/// use std::sync::{Arc, Mutex, MutexGuard};
/// use twostage::{Context, EngineHandle, Request};
///
/// let handle = Arc::new(EngineHandle::open("index")?);
/// // Request threads: one snapshot per request.
/// let engine = handle.load();
/// let recs = engine.recommend(&Request::new(Context::search("jazz")))?;
/// # let _ = recs;
/// // A rebuild thread, after `IndexBuilder::build` published a new index:
/// handle.reload("index")?; // on error the current engine keeps serving
/// # Ok(()) }
/// ```
pub struct EngineHandle {
    current: ArcSwap<Engine>,
    /// Held by writes and reloads, so a write never lands on an engine a
    /// reload is replacing (the new one replays the log it has read).
    writes: Mutex<()>,
    /// What compactions did (see `EngineHandle::compact`).
    compaction: Mutex<CompactionStatus>,
}

/// The compactions of an [`EngineHandle`] ([`EngineHandle::compaction_status`]).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct CompactionStatus {
    /// Whether one is running now.
    pub running: bool,
    /// Compactions that swapped in a new generation.
    pub completed: u64,
    /// Compactions that failed (the previous generation kept serving).
    pub failed: u64,
    /// Wall time of the last one to finish, seconds.
    pub last_seconds: Option<f64>,
    /// Why the last one failed, while no later one has succeeded.
    pub last_error: Option<String>,
}

impl EngineHandle {
    /// A handle serving `engine`.
    pub fn new(engine: Engine) -> EngineHandle {
        EngineHandle {
            current: ArcSwap::from_pointee(engine),
            writes: Mutex::new(()),
            compaction: Mutex::new(CompactionStatus::default()),
        }
    }

    /// Opens the index in `dir` (see [`Engine::open`]) and serves it.
    pub fn open(dir: impl AsRef<Path>) -> Result<EngineHandle> {
        Engine::open(dir).map(EngineHandle::new)
    }

    /// A snapshot of the current engine. Hold it for the whole request (or a
    /// batch of related requests) so every answer comes from one index.
    pub fn load(&self) -> Arc<Engine> {
        self.current.load_full()
    }

    /// Serves `req` from the current engine (one snapshot for the whole request).
    pub fn recommend(&self, req: &Request) -> Result<Recommendations> {
        self.current.load().recommend(req)
    }

    /// Deletes items from the current engine ([`Engine::delete_items`]),
    /// never at the same time as a [`reload`](EngineHandle::reload): a
    /// deletion acknowledged before a reload is in the engine it loads, and
    /// one made after it goes to that engine.
    pub fn delete_items<S: AsRef<str>>(&self, ids: &[S]) -> Result<usize> {
        let _writes = self.lock_writes()?;
        self.current.load().delete_items(ids)
    }

    /// Adds or changes items on the current engine ([`Engine::upsert_items`]),
    /// never at the same time as a reload (see [`delete_items`](EngineHandle::delete_items)).
    /// The items are checked and embedded before the write lock is taken,
    /// so an encoder at work holds up no other write; if a reload swapped
    /// the engine meanwhile, they are checked and embedded again for the
    /// new one.
    pub fn upsert_items(&self, items: &[crate::Item]) -> Result<crate::Upserted> {
        let engine = self.current.load_full();
        let prepared = engine.prepare_upserts(items)?;
        let _writes = self.lock_writes()?;
        let now = self.current.load_full();
        let prepared = if Arc::ptr_eq(&engine, &now) {
            prepared
        } else {
            now.prepare_upserts(items)?
        };
        now.apply_upserts(prepared)
    }

    /// Records events on the current engine ([`Engine::record_events`]),
    /// never at the same time as a reload (see [`delete_items`](EngineHandle::delete_items)).
    pub fn record_events(&self, events: &[crate::LiveEvent]) -> Result<()> {
        let _writes = self.lock_writes()?;
        self.current.load().record_events(events)
    }

    /// Held while nothing may write to the current engine: reloads and a
    /// compaction's handover.
    pub(crate) fn lock_writes(&self) -> Result<MutexGuard<'_, ()>> {
        self.writes
            .lock()
            .map_err(|_| crate::Error::internal("live writes", "a writer panicked during a write or reload"))
    }

    /// The compaction status, to read or update.
    pub(crate) fn compaction_state(&self) -> MutexGuard<'_, CompactionStatus> {
        self.compaction.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes `engine` current and returns the previous one. Requests already
    /// running keep their snapshot of the previous engine.
    pub fn swap(&self, engine: Engine) -> Arc<Engine> {
        self.current.swap(Arc::new(engine))
    }

    /// Opens the index in `dir` and, only if that succeeds, makes it current;
    /// returns the previous engine. A corrupt or missing index is an error and
    /// leaves the current engine serving.
    ///
    /// The sentence encoder attached to the current engine, if any, is
    /// attached to the new one when it has a content space; an index built
    /// by another model is refused ([`Error::EncoderMismatch`](crate::Error::EncoderMismatch)).
    /// The new engine's query cache has the current one's capacity and
    /// starts empty (the new index may hold other items).
    pub fn reload(&self, dir: impl AsRef<Path>) -> Result<Arc<Engine>> {
        let _writes = self.lock_writes()?;
        let current = self.current.load();
        let mut engine = Engine::open(dir)?.with_query_cache(current.query_cache_stats().capacity);
        if engine.has_content_space() {
            if let Some(encoder) = current.encoder() {
                engine = engine.with_encoder(encoder.clone())?;
            }
        }
        Ok(self.swap(engine))
    }
}

impl From<Engine> for EngineHandle {
    fn from(engine: Engine) -> EngineHandle {
        EngineHandle::new(engine)
    }
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let engine = self.current.load();
        f.debug_struct("EngineHandle")
            .field("path", &engine.info().path)
            .field("items", &engine.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<EngineHandle>();
    }
}
