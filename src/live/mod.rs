//! Live writes on a built index, without a rebuild: item upserts (new and
//! changed records, placed by [`upsert`] into the [`Overlay`]), deletions
//! (takedowns) and events — plays move popularity and co-visitation
//! ([`covisit`]), skips the skip rate, and searches are kept for the next
//! build. A batch is appended to the index directory's write-ahead log
//! ([`log`]) and fsynced, then published as a new [`View`] (tombstones,
//! popularity, live co-visitation, the overlay and the text index's
//! snapshot with the records' documents) that every request takes when it
//! starts: from the call's return on every retriever reads the records,
//! drops a deleted item and reads the counts, while requests already
//! running finish on the view they started with.
//! [`Engine::open`](crate::Engine::open) replays the log.

pub(crate) mod covisit;
mod event;
pub(crate) mod log;
mod tombstones;
pub(crate) mod upsert;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use arc_swap::ArcSwap;

use crate::error::{Error, Result};
use crate::events::EventKind;
use crate::overlay::Overlay;
use crate::retrieval::lexical::{LexicalIndex, TextSnapshot};
use crate::retrieval::popular::Popularity;
use crate::store::ItemStore;
pub use event::LiveEvent;
pub use log::TornTail;
pub(crate) use tombstones::Tombstones;
pub(crate) use upsert::{Built, Upsert};

/// Largest number of ids or events one write call may carry.
pub const MAX_WRITE_BATCH: usize = 100_000;

/// What a request sees of the live writes: one consistent snapshot.
#[derive(Clone)]
pub(crate) struct View {
    pub deleted: Arc<Tombstones>,
    pub popularity: Arc<Popularity>,
    pub covisit: Arc<covisit::LiveCovisit>,
    /// Items added or changed since the build.
    pub overlay: Arc<Overlay>,
    /// The text index with the upserted records' documents.
    pub text: TextSnapshot,
}

/// What the live log holds and what opening it found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiveStatus {
    /// Items deleted since the index was built.
    pub deleted: usize,
    /// Items added since the index was built.
    pub added: usize,
    /// Live records: items added or changed since the index was built.
    pub upserted: usize,
    /// Events recorded since the index was built.
    pub events: usize,
    /// Acknowledged write batches in the log.
    pub records: usize,
    /// Group commits since the engine opened the log, each one write and
    /// one fsync: with concurrent writers, one makes several batches
    /// durable at once.
    pub syncs: usize,
    /// Ids in the log that this index does not hold (deleted in another
    /// generation, or never part of it): skipped on replay.
    pub unknown_ids: usize,
    /// An incomplete last record, left by a crash during a write that was
    /// therefore never acknowledged: dropped on replay, cut off at the next write.
    pub torn_tail: Option<TornTail>,
}

/// An engine's live state: the view requests read, the log's appending
/// end, which one writer at a time holds, and the writes waiting for it.
///
/// Writes are committed in groups: a call queues its record, and whichever
/// waiting call finds no commit under way takes every queued record and
/// makes them durable with one fsync, then wakes the others with their
/// outcomes. Alone, a write is committed at once; under concurrent writers
/// the fsync, which dominates a small write, is shared.
pub(crate) struct Live {
    view: ArcSwap<View>,
    writer: Mutex<Writer>,
    queue: Mutex<Queue>,
    committed: Condvar,
    path: PathBuf,
    /// What upserts read of the built index.
    built: Built,
    store: Arc<ItemStore>,
}

/// A write waiting for the group commit that makes it durable.
struct Pending {
    ticket: u64,
    record: log::Record,
    deleted: Vec<u32>,
    event_items: Vec<u32>,
}

/// Writes not yet committed, and the outcomes of committed ones until
/// their callers collect them.
#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    /// Whether a call is committing a group now.
    leading: bool,
    next_ticket: u64,
    outcomes: HashMap<u64, Result<usize>>,
}

/// Held by the call committing a group. Dropped, it hands the group's
/// outcomes to their callers and lets another call lead; if the commit
/// unwound before it had outcomes, the group's callers are told so rather
/// than every writer waiting for ever.
struct Leading<'a> {
    live: &'a Live,
    tickets: Vec<u64>,
    outcomes: Vec<(u64, Result<usize>)>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut q = self.live.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        q.leading = false;
        q.outcomes.extend(self.outcomes.drain(..));
        for &t in &self.tickets {
            q.outcomes
                .entry(t)
                .or_insert_with(|| Err(Error::internal("live writes", "the commit of this write failed unexpectedly")));
        }
        self.live.committed.notify_all();
    }
}

struct Writer {
    appender: Option<log::Appender>,
    /// Each user's live session, and every live pair, for co-visitation.
    sessions: covisit::Sessions,
    pairs: covisit::PairCounts,
    /// Parts of views replaced by later writes, freed here once no request
    /// holds them: a request that outlived its view would otherwise free
    /// them, and freeing a large overlay or table took milliseconds from
    /// that request. Requests hold a view's parts, not the view, so the
    /// parts are what is counted.
    retired: Vec<Box<dyn Retired + Send>>,
    status: LiveStatus,
    /// Why writes are refused: the text index failed to take documents
    /// whose records the log already holds, so this engine's view can no
    /// longer match the log; opening the index again applies them.
    broken: Option<String>,
    /// Why writes are refused: a compaction is handing this engine's log
    /// to the next generation, or has handed it over.
    sealed: Option<String>,
    /// Length of the log's acknowledged part: where the next record goes.
    log_len: u64,
}

/// How the index counted co-visitation, for live plays to count the same.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SessionRules {
    pub gap_secs: i64,
    pub window: usize,
    /// Neighbours the built lists keep per item; live lists keep as many.
    pub keep: usize,
}

impl Live {
    /// Replays the log in `dir` over the built index (`store`, `built`),
    /// whose text index `text` takes the upserted records' documents.
    pub fn open(dir: &Path, store: Arc<ItemStore>, built: Built, text: &LexicalIndex, rules: SessionRules) -> Result<Live> {
        let path = dir.join(log::LOG_FILE);
        let replay = log::read(&path)?;
        let mut dead = Tombstones::sized(store.len());
        let mut counts = store.popularity.clone();
        let mut overlay = Overlay::new(store.len(), store.group_names.len());
        let mut docs = Vec::new();
        let mut pairs = covisit::PairCounts::new(rules.keep);
        let mut sessions = covisit::Sessions::new(rules.gap_secs, rules.window);
        let (mut unknown_ids, mut events) = (0, 0);
        for record in &replay.records {
            upsert::apply(&built, &store, &record.upsert, &mut overlay, &mut dead, &mut docs);
            counts.grow(overlay.len());
            let index_of = |id: &str| built.by_id.get(id).copied().or_else(|| overlay.added_id(id));
            for id in &record.delete {
                match index_of(id) {
                    Some(i) => {
                        dead.insert(i);
                    }
                    None => unknown_ids += 1,
                }
            }
            for e in &record.events {
                match index_of(&e.item) {
                    Some(i) => {
                        counts.count_live(i, e.kind);
                        if e.kind == EventKind::Play {
                            sessions.play(&e.user, i, e.ts, &mut pairs);
                        }
                    }
                    None => unknown_ids += 1,
                }
                events += 1;
            }
        }
        if let Some(t) = replay.torn {
            tracing::warn!(path = %path.display(), offset = t.offset, bytes = t.bytes, "live log: dropped an incomplete last record (a crash during a write)");
        }
        let snapshot = if docs.is_empty() {
            text.snapshot()
        } else {
            let docs: Vec<(u32, &crate::catalog::Item)> = docs.iter().map(|(i, r)| (*i, r)).collect();
            text.stage(&docs)?;
            text.publish()?
        };
        let mut live_covisit = covisit::LiveCovisit::default();
        pairs.publish(&mut live_covisit);
        let status = LiveStatus {
            deleted: dead.count,
            added: overlay.added(),
            upserted: overlay.records_len(),
            events,
            records: replay.records.len(),
            syncs: 0,
            unknown_ids,
            torn_tail: replay.torn,
        };
        Ok(Live {
            view: ArcSwap::from_pointee(View {
                deleted: Arc::new(dead),
                popularity: Arc::new(counts),
                covisit: Arc::new(live_covisit),
                overlay: Arc::new(overlay),
                text: snapshot,
            }),
            writer: Mutex::new(Writer {
                appender: None,
                sessions,
                pairs,
                retired: Vec::new(),
                status,
                broken: None,
                sealed: None,
                log_len: replay.valid_len,
            }),
            queue: Mutex::new(Queue::default()),
            committed: Condvar::new(),
            path,
            built,
            store,
        })
    }

    /// The live writes as of now (a request keeps this view throughout).
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
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

    /// Writes `record`, whose deleted ids resolve to `deleted` and whose
    /// events' items to `event_items` (its upserts take their ids as they
    /// are applied, their documents going to `text`): durable in the log
    /// before its view is published. Returns how many items were not
    /// deleted already (a deletion) or were new (an upsert).
    pub fn write(&self, record: log::Record, deleted: &[u32], event_items: &[u32], text: &LexicalIndex) -> Result<usize> {
        let poisoned = |_| Error::internal("live writes", "a writer panicked while holding the write queue");
        let mut q = self.queue.lock().map_err(poisoned)?;
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.pending.push(Pending {
            ticket,
            record,
            deleted: deleted.to_vec(),
            event_items: event_items.to_vec(),
        });
        loop {
            if let Some(outcome) = q.outcomes.remove(&ticket) {
                return outcome;
            }
            if q.leading {
                // This write is in the group being committed, or queued for
                // the next one.
                q = self.committed.wait(q).map_err(poisoned)?;
                continue;
            }
            // No commit under way, so this write is still queued: lead the
            // next group, which holds it.
            q.leading = true;
            let group = std::mem::take(&mut q.pending);
            drop(q);
            let mut leading = Leading {
                live: self,
                tickets: group.iter().map(|p| p.ticket).collect(),
                outcomes: Vec::new(),
            };
            leading.outcomes = self.commit(group, text);
            drop(leading);
            q = self.queue.lock().map_err(poisoned)?;
        }
    }

    /// Commits a group of writes, in their order: each that changes
    /// something is appended to the log, all with one fsync, and then all
    /// are published as one new view. A write that changes nothing (its
    /// items already deleted) is not logged; a write too large for the log
    /// fails alone. If the append fails, every write of the group fails
    /// with its error and none is published.
    fn commit(&self, group: Vec<Pending>, text: &LexicalIndex) -> Vec<(u64, Result<usize>)> {
        let mut outcomes = Vec::with_capacity(group.len());
        let mut w = match self.lock() {
            Ok(w) => w,
            Err(e) => return group.into_iter().map(|p| (p.ticket, Err(shared(&e)))).collect(),
        };
        if let Some(why) = w.sealed.as_ref().or(w.broken.as_ref()) {
            let e = Error::internal("live writes", why.clone());
            return group.into_iter().map(|p| (p.ticket, Err(shared(&e)))).collect();
        }
        let current = self.view.load_full();
        // Tombstones as of each write: a write deleting only items deleted
        // before it changes nothing. Where those deletions are earlier in
        // this group, its outcome waits for theirs: if their append fails,
        // its items were never deleted.
        let mut dead: Option<Tombstones> = None;
        // Items added or changed by the group, and their documents.
        let mut overlay: Option<Overlay> = None;
        let mut docs = Vec::new();
        let mut accepted: Vec<(Pending, usize)> = Vec::with_capacity(group.len());
        let mut redundant_in_group: Vec<u64> = Vec::new();
        let mut encoded = Vec::with_capacity(group.len());
        for p in group {
            if p.event_items.is_empty() && p.record.upsert.is_empty() {
                // Deleted as of this write: before the group, and by the
                // writes before it in the group (an upsert there may have
                // brought an item back).
                let now = dead.as_ref().unwrap_or(&current.deleted);
                if p.deleted.iter().all(|&i| now.contains(i)) {
                    if p.deleted.iter().all(|&i| current.deleted.contains(i)) {
                        outcomes.push((p.ticket, Ok(0)));
                    } else {
                        redundant_in_group.push(p.ticket);
                    }
                    continue;
                }
            }
            match log::encode(&p.record) {
                Ok(bytes) => encoded.push(bytes),
                Err(e) => {
                    outcomes.push((p.ticket, Err(e)));
                    continue;
                }
            }
            let added = if !p.record.upsert.is_empty() {
                let o = overlay.get_or_insert_with(|| Overlay::clone(&current.overlay));
                let d = dead.get_or_insert_with(|| Tombstones::clone(&current.deleted));
                upsert::apply(&self.built, &self.store, &p.record.upsert, o, d, &mut docs)
            } else if p.deleted.is_empty() {
                0
            } else {
                let d = dead.get_or_insert_with(|| Tombstones::clone(&current.deleted));
                p.deleted.iter().filter(|&&i| d.insert(i)).count()
            };
            accepted.push((p, added));
        }
        if accepted.is_empty() {
            return outcomes;
        }
        let staged = if docs.is_empty() {
            Ok(())
        } else {
            let docs: Vec<(u32, &crate::catalog::Item)> = docs.iter().map(|(i, r)| (*i, r)).collect();
            text.stage(&docs)
        };
        let appended = staged.and_then(|()| self.append(&mut w, &encoded));
        // The documents become searchable only once their records are durable.
        let published = match appended {
            Ok(()) if docs.is_empty() => Ok(None),
            Ok(()) => text.publish().map(Some).map_err(|e| {
                let why = format!(
                    "the text index failed to take written items ({e}); the writes are in the log and apply when the index is opened again"
                );
                w.broken = Some(why.clone());
                Error::internal("live writes", why)
            }),
            Err(e) => {
                text.discard();
                Err(e)
            }
        };
        let snapshot = match published {
            Ok(s) => s,
            Err(e) => {
                let failed = accepted.iter().map(|(p, _)| p.ticket).chain(redundant_in_group);
                outcomes.extend(failed.map(|t| (t, Err(shared(&e)))));
                return outcomes;
            }
        };
        outcomes.extend(redundant_in_group.into_iter().map(|t| (t, Ok(0))));
        let mut next = View::clone(&current);
        if let Some(dead) = dead {
            next.deleted = Arc::new(dead);
        }
        if let Some(snapshot) = snapshot {
            next.text = snapshot;
        }
        let grown = overlay.as_ref().is_some_and(|o| o.len() > current.popularity.len());
        if grown || accepted.iter().any(|(p, _)| !p.event_items.is_empty()) {
            let mut counts = Popularity::clone(&current.popularity);
            if let Some(o) = &overlay {
                counts.grow(o.len());
            }
            let Writer { sessions, pairs, .. } = &mut *w;
            for (p, _) in &accepted {
                for (&item, e) in p.event_items.iter().zip(&p.record.events) {
                    counts.count_live(item, e.kind);
                    if e.kind == EventKind::Play {
                        sessions.play(&e.user, item, e.ts, pairs);
                    }
                }
            }
            let mut published = covisit::LiveCovisit::clone(&current.covisit);
            pairs.publish(&mut published);
            next.popularity = Arc::new(counts);
            next.covisit = Arc::new(published);
        }
        if let Some(o) = overlay {
            w.status.added = o.added();
            w.status.upserted = o.records_len();
            next.overlay = Arc::new(o);
        }
        w.status.records += accepted.len();
        w.status.syncs += 1;
        w.status.deleted = next.deleted.count;
        w.status.events += accepted.iter().map(|(p, _)| p.record.events.len()).sum::<usize>();
        // A torn tail is cut off by the first append.
        w.status.torn_tail = None;
        let old = self.view.swap(Arc::new(next));
        let new = self.view.load();
        retire(&mut w.retired, &old.deleted, &new.deleted);
        retire(&mut w.retired, &old.popularity, &new.popularity);
        retire(&mut w.retired, &old.covisit, &new.covisit);
        retire(&mut w.retired, &old.overlay, &new.overlay);
        drop(old);
        w.retired.retain(|r| r.in_use());
        outcomes.extend(accepted.into_iter().map(|(p, added)| (p.ticket, Ok(added))));
        outcomes
    }

    /// Appends encoded records to the log with one fsync, opening it on the
    /// first write.
    fn append(&self, w: &mut Writer, encoded: &[Vec<u8>]) -> Result<()> {
        if w.appender.is_none() {
            w.appender = Some(log::Appender::open(&self.path)?);
        }
        let Some(appender) = w.appender.as_mut() else {
            return Err(Error::internal("live writes", "the log's appender was not opened"));
        };
        match appender.append_encoded(encoded) {
            Ok(len) => {
                w.log_len = len;
                Ok(())
            }
            Err(e) => {
                // The next write opens the log again, which reads it and
                // cuts off anything of this append left behind.
                w.appender = None;
                Err(e)
            }
        }
    }

    /// The log's acknowledged length now: every write acknowledged so far
    /// is in the records before it.
    pub fn log_len(&self) -> Result<u64> {
        Ok(self.lock()?.log_len)
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.path
    }

    /// Refuses every write from now on, saying `why`, and returns the log's
    /// acknowledged length: the log ends there for good, unless
    /// [`unseal`](Live::unseal) lets writes in again.
    pub fn seal(&self, why: String) -> Result<u64> {
        let mut w = self.lock()?;
        w.sealed = Some(why);
        Ok(w.log_len)
    }

    /// Takes writes again after a [`seal`](Live::seal) whose handover failed.
    pub fn unseal(&self) {
        if let Ok(mut w) = self.lock() {
            w.sealed = None;
        }
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

/// A part of a replaced view, kept until no request holds it.
trait Retired {
    fn in_use(&self) -> bool;
}

impl<T> Retired for Arc<T> {
    fn in_use(&self) -> bool {
        Arc::strong_count(self) > 1
    }
}

/// Keeps `old` in `retired` unless the new view shares it.
fn retire<T: Send + Sync + 'static>(retired: &mut Vec<Box<dyn Retired + Send>>, old: &Arc<T>, new: &Arc<T>) {
    if !Arc::ptr_eq(old, new) {
        retired.push(Box::new(Arc::clone(old)));
    }
}

/// `e` again, for each write of a group that failed with it.
fn shared(e: &Error) -> Error {
    match e {
        Error::Io { path, source } => Error::io(path, std::io::Error::new(source.kind(), source.to_string())),
        Error::InvalidRequest(m) => Error::InvalidRequest(m.clone()),
        Error::Corrupt { path, reason, .. } => Error::corrupt(path, reason),
        other => Error::internal("live writes", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: SessionRules = SessionRules {
        gap_secs: 1800,
        window: 5,
        keep: 100,
    };

    /// A live log over a built index of `n` items `i0`, `i1`, …
    struct Fx {
        live: Live,
        text: LexicalIndex,
    }

    impl std::ops::Deref for Fx {
        type Target = Live;
        fn deref(&self) -> &Live {
            &self.live
        }
    }

    fn fixture(dir: &Path, n: usize) -> Fx {
        use crate::catalog::{Catalog, Item};
        let catalog = Catalog::new((0..n).map(|i| Item::new(format!("i{i}"), format!("title {i}"))).collect()).unwrap();
        let schema = crate::schema::Schema::infer(&catalog);
        let store = ItemStore::build(
            &catalog,
            &schema,
            Popularity::default(),
            Default::default(),
            Default::default(),
            vec![crate::store::NONE; n],
            Vec::new(),
        );
        let store = Arc::new(store);
        let text = LexicalIndex::in_memory(&catalog, &schema);
        let by_id = (0..n).map(|i| (format!("i{i}"), i as u32)).collect();
        let built = Built::new(upsert::BuiltParts {
            store: &store,
            by_id: Arc::new(by_id),
            group_key: None,
            tag_fields: Vec::new(),
            vector_source: "none",
            metric: crate::retrieval::ann::Metric::Cosine,
            dim: 0,
            vector_of: &|_| None,
        });
        let live = Live::open(dir, store, built, &text, RULES).unwrap();
        Fx { live, text }
    }

    fn try_delete(fx: &Fx, items: &[u32]) -> Result<usize> {
        let record = log::Record {
            delete: items.iter().map(|i| format!("i{i}")).collect(),
            ..log::Record::default()
        };
        fx.live.write(record, items, &[], &fx.text)
    }

    fn delete(live: &Fx, items: &[u32]) -> usize {
        try_delete(live, items).unwrap()
    }

    #[test]
    fn writes_are_durable_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let live = fixture(dir.path(), 10);
        assert_eq!(delete(&live, &[3, 4]), 2);
        assert_eq!(delete(&live, &[4]), 0, "already deleted: nothing written");
        assert_eq!(delete(&live, &[4, 5]), 1);
        let before = live.view();
        let again = fixture(dir.path(), 10);
        let s = again.status().unwrap();
        assert_eq!((s.deleted, s.records, s.unknown_ids), (3, 2, 0));
        assert!((0..10).all(|i| again.view().deleted.contains(i) == before.deleted.contains(i)));
        // A smaller catalog: ids it does not hold are counted, not fatal.
        let smaller = fixture(dir.path(), 4);
        assert_eq!(smaller.status().unwrap().unknown_ids, 3);
    }

    /// Starts a writer for each of `writes`, one after the other, while
    /// the test holds the log: the first leads a group of its own and
    /// blocks, the rest queue behind it in the order given. Lets go once
    /// all are queued; their outcomes, in the order given.
    fn grouped(live: &Fx, writes: &[&[u32]]) -> Vec<Result<usize>> {
        let writes: Vec<Write> = writes.iter().map(|&items| Write::Delete(items)).collect();
        grouped_writes(live, &writes)
    }

    /// One write of [`grouped_writes`].
    #[derive(Clone, Copy)]
    enum Write<'a> {
        Delete(&'a [u32]),
        /// An upsert of item `i3`, a built item.
        UpsertI3,
    }

    /// [`grouped`] for any mix of deletions and upserts.
    fn grouped_writes(live: &Fx, writes: &[Write<'_>]) -> Vec<Result<usize>> {
        let held = live.lock().unwrap();
        std::thread::scope(|s| {
            let mut handles = Vec::new();
            for (n, &write) in writes.iter().enumerate() {
                handles.push(s.spawn(move || match write {
                    Write::Delete(items) => try_delete(live, items),
                    Write::UpsertI3 => {
                        let record = log::Record {
                            upsert: vec![Upsert {
                                item: crate::catalog::Item::new("i3", "back again"),
                                content: None,
                            }],
                            ..log::Record::default()
                        };
                        live.live.write(record, &[], &[], &live.text)
                    }
                }));
                // Queued: the first taken by its own commit, each later one waiting.
                let queued = |q: &Queue| if n == 0 { q.leading } else { q.pending.len() == n };
                while !queued(&live.queue.lock().unwrap()) {
                    std::thread::yield_now();
                }
            }
            drop(held);
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn concurrent_writes_share_one_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let live = fixture(dir.path(), 10);
        let added: Vec<usize> = grouped(&live, &[&[0], &[1], &[2, 3], &[4]])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(added, [1, 1, 2, 1]);
        let s = live.status().unwrap();
        // The first write alone, then the three queued behind it together.
        assert_eq!((s.records, s.syncs, s.deleted), (4, 2, 5));
        let again = fixture(dir.path(), 10);
        let s = again.status().unwrap();
        assert_eq!((s.records, s.deleted), (4, 5));
        assert!((0..5).all(|i| again.view().deleted.contains(i)) && !again.view().deleted.contains(5));
    }

    #[test]
    fn a_write_made_redundant_earlier_in_its_group_is_not_logged() {
        let dir = tempfile::tempdir().unwrap();
        let live = fixture(dir.path(), 10);
        let added: Vec<usize> = grouped(&live, &[&[0], &[7], &[7], &[7, 8]])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(added, [1, 1, 0, 1]);
        let s = live.status().unwrap();
        assert_eq!((s.records, s.syncs, s.deleted), (3, 2, 3));
    }

    #[test]
    fn a_delete_after_an_upsert_in_one_group_deletes_again() {
        let dir = tempfile::tempdir().unwrap();
        let fx = fixture(dir.path(), 10);
        assert_eq!(delete(&fx, &[3]), 1);
        // A write holding the group, then an upsert of the deleted item and
        // its deletion again, committed together in that order.
        let outcomes: Vec<usize> = grouped_writes(&fx, &[Write::Delete(&[3]), Write::UpsertI3, Write::Delete(&[3])])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(outcomes, [0, 0, 1], "the upsert adds nothing new; the deletion deletes");
        assert!(fx.view().deleted.contains(3));
        drop(fx);
        assert!(fixture(dir.path(), 10).view().deleted.contains(3), "and the log says so");
    }

    #[test]
    fn a_failed_append_fails_its_whole_group_and_what_relied_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let live = fixture(dir.path(), 10);
        // The log cannot be opened for appending: every append fails.
        std::fs::create_dir(dir.path().join(log::LOG_FILE)).unwrap();
        let outcomes = grouped(&live, &[&[0], &[7], &[7], &[1]]);
        // The third write would change nothing after the second, but the
        // second failed: item 7 is not deleted, and its caller must not hear
        // that it already was.
        assert!(outcomes.iter().all(Result::is_err), "{outcomes:?}");
        let s = live.status().unwrap();
        assert_eq!((s.records, s.syncs, s.deleted), (0, 0, 0));
        assert!(!live.view().deleted.contains(7));
    }
}
