//! Live writes on a built index, without a rebuild: deletions (takedowns)
//! and events — plays move popularity and co-visitation ([`covisit`]),
//! skips the skip rate, and searches are kept for the next build. A batch is appended to the index
//! directory's write-ahead log ([`log`]) and fsynced, then published as a
//! new [`View`] (tombstones, popularity, live co-visitation)
//! that every request takes when it starts: every retriever drops a deleted
//! item and reads the counts from the call's return on, while requests
//! already running finish on the view they started with.
//! [`Engine::open`](crate::Engine::open) replays the log.

pub(crate) mod covisit;
pub(crate) mod log;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::events::EventKind;
use crate::retrieval::popular::Popularity;
pub use log::TornTail;

/// Largest number of ids or events one write call may carry.
pub const MAX_WRITE_BATCH: usize = 100_000;

/// An interaction recorded after the build ([`Engine::record_events`](crate::Engine::record_events)),
/// in the events file's shape: `{"user", "item", "ts", "type"}` (`type`
/// `play`, the default, `skip` or `search`; a search carries its `query`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveEvent {
    /// The user's id.
    pub user: String,
    /// The item's external id.
    pub item: String,
    /// Unix seconds.
    pub ts: i64,
    /// What happened.
    #[serde(rename = "type", default = "play", with = "kind_name")]
    pub kind: EventKind,
    /// The query, for a search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

fn play() -> EventKind {
    EventKind::Play
}

/// `type` as the events file writes it.
mod kind_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::events::EventKind;

    pub fn serialize<S: Serializer>(k: &EventKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match k {
            EventKind::Skip => "skip",
            EventKind::Search => "search",
            _ => "play",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EventKind, D::Error> {
        match String::deserialize(d)?.as_str() {
            "play" => Ok(EventKind::Play),
            "skip" => Ok(EventKind::Skip),
            "search" => Ok(EventKind::Search),
            other => Err(serde::de::Error::custom(format!("`{other}` is not one of play, skip, search"))),
        }
    }
}

impl LiveEvent {
    /// A play of `item` by `user` at `ts`.
    pub fn play(user: impl Into<String>, item: impl Into<String>, ts: i64) -> LiveEvent {
        LiveEvent {
            user: user.into(),
            item: item.into(),
            ts,
            kind: EventKind::Play,
            query: None,
        }
    }

    /// The builder's data contract for one event; the message names the field.
    pub(crate) fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        if self.user.trim().is_empty() || self.user.len() > crate::catalog::MAX_ID_BYTES {
            return Err(("user", "must be a non-empty id of at most 512 bytes".into()));
        }
        if !(0..crate::events::MAX_TS).contains(&self.ts) {
            return Err(("ts", format!("timestamp {} is outside 1970..2100 (unix seconds expected)", self.ts)));
        }
        match (self.kind, &self.query) {
            (EventKind::Search, None) => Err(("query", "a search event needs a query".into())),
            (EventKind::Search, Some(q)) if q.len() > crate::catalog::MAX_TEXT_BYTES => {
                Err(("query", "query longer than the text limit".into()))
            }
            (EventKind::Play | EventKind::Skip, Some(_)) => Err(("query", "only search events carry a query".into())),
            _ => Ok(()),
        }
    }
}

/// What a request sees of the live writes: one consistent snapshot.
#[derive(Clone)]
pub(crate) struct View {
    pub deleted: Arc<Tombstones>,
    pub popularity: Arc<Popularity>,
    pub covisit: Arc<covisit::LiveCovisit>,
}

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
    /// Events recorded since the index was built.
    pub events: usize,
    /// Acknowledged write batches in the log.
    pub records: usize,
    /// Ids in the log that this index does not hold (deleted in another
    /// generation, or never part of it): skipped on replay.
    pub unknown_ids: usize,
    /// An incomplete last record, left by a crash during a write that was
    /// therefore never acknowledged: dropped on replay, cut off at the next write.
    pub torn_tail: Option<TornTail>,
}

/// An engine's live state: the view requests read, and the log's
/// appending end, which one writer at a time holds.
pub(crate) struct Live {
    view: ArcSwap<View>,
    writer: Mutex<Writer>,
    path: PathBuf,
}

struct Writer {
    appender: Option<log::Appender>,
    /// Each user's live session, and every live pair, for co-visitation.
    sessions: covisit::Sessions,
    pairs: covisit::PairCounts,
    /// Views replaced by later writes, freed here once no request holds
    /// them: a request that outlived its view would otherwise free it,
    /// and freeing a large view took milliseconds from that request.
    retired: Vec<Arc<View>>,
    status: LiveStatus,
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
    /// Replays the log in `dir` over an index of `items` items whose built
    /// counts are `popularity`, `index_of` resolving external ids.
    pub fn open(
        dir: &Path,
        items: usize,
        popularity: &Popularity,
        rules: SessionRules,
        index_of: impl Fn(&str) -> Option<u32>,
    ) -> Result<Live> {
        let path = dir.join(log::LOG_FILE);
        let replay = log::read(&path)?;
        let mut dead = Tombstones::sized(items);
        let mut counts = popularity.clone();
        let mut pairs = covisit::PairCounts::new(rules.keep);
        let mut sessions = covisit::Sessions::new(rules.gap_secs, rules.window);
        let (mut unknown_ids, mut events) = (0, 0);
        for record in &replay.records {
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
        let mut live_covisit = covisit::LiveCovisit::default();
        pairs.publish(&mut live_covisit);
        let status = LiveStatus {
            deleted: dead.count,
            events,
            records: replay.records.len(),
            unknown_ids,
            torn_tail: replay.torn,
        };
        Ok(Live {
            view: ArcSwap::from_pointee(View {
                deleted: Arc::new(dead),
                popularity: Arc::new(counts),
                covisit: Arc::new(live_covisit),
            }),
            writer: Mutex::new(Writer {
                appender: None,
                sessions,
                pairs,
                retired: Vec::new(),
                status,
            }),
            path,
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
    /// events' items to `event_items`: durable in the log before its view
    /// is published. Returns how many items were not deleted already.
    pub fn write(&self, record: log::Record, deleted: &[u32], event_items: &[u32]) -> Result<usize> {
        let mut w = self.lock()?;
        let current = self.view.load_full();
        if event_items.is_empty() && deleted.iter().all(|&i| current.deleted.contains(i)) {
            return Ok(0);
        }
        if w.appender.is_none() {
            w.appender = Some(log::Appender::open(&self.path)?);
        }
        let Some(appender) = w.appender.as_mut() else {
            return Err(Error::internal("live writes", "the log's appender was not opened"));
        };
        if let Err(e) = appender.append(&record) {
            // It may have left part of the record: the next write opens the
            // log again, which reads it and cuts that tail off first.
            w.appender = None;
            return Err(e);
        }
        let mut next = View::clone(&current);
        let mut added = 0;
        if !deleted.is_empty() {
            let mut dead = Tombstones::clone(&current.deleted);
            added = deleted.iter().filter(|&&i| dead.insert(i)).count();
            next.deleted = Arc::new(dead);
        }
        if !event_items.is_empty() {
            let mut counts = Popularity::clone(&current.popularity);
            let Writer { sessions, pairs, .. } = &mut *w;
            for (&item, e) in event_items.iter().zip(&record.events) {
                counts.count_live(item, e.kind);
                if e.kind == EventKind::Play {
                    sessions.play(&e.user, item, e.ts, pairs);
                }
            }
            let mut published = covisit::LiveCovisit::clone(&current.covisit);
            pairs.publish(&mut published);
            next.popularity = Arc::new(counts);
            next.covisit = Arc::new(published);
        }
        w.status.records += 1;
        w.status.deleted = next.deleted.count;
        w.status.events += record.events.len();
        // A torn tail is cut off by the first append.
        w.status.torn_tail = None;
        let old = self.view.swap(Arc::new(next));
        w.retired.push(old);
        w.retired.retain(|v| Arc::strong_count(v) > 1);
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

    const RULES: SessionRules = SessionRules {
        gap_secs: 1800,
        window: 5,
        keep: 100,
    };

    fn delete(live: &Live, items: &[u32]) -> usize {
        let record = log::Record {
            delete: items.iter().map(|i| format!("i{i}")).collect(),
            ..log::Record::default()
        };
        live.write(record, items, &[]).unwrap()
    }

    #[test]
    fn writes_are_durable_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let index_of = |id: &str| id.strip_prefix('i').and_then(|n| n.parse().ok());
        let empty = Popularity::default();
        let live = Live::open(dir.path(), 10, &empty, RULES, index_of).unwrap();
        assert_eq!(delete(&live, &[3, 4]), 2);
        assert_eq!(delete(&live, &[4]), 0, "already deleted: nothing written");
        assert_eq!(delete(&live, &[4, 5]), 1);
        let before = live.view();
        let again = Live::open(dir.path(), 10, &empty, RULES, index_of).unwrap();
        let s = again.status().unwrap();
        assert_eq!((s.deleted, s.records, s.unknown_ids), (3, 2, 0));
        assert!((0..10).all(|i| again.view().deleted.contains(i) == before.deleted.contains(i)));
        // A smaller catalog: ids it does not hold are counted, not fatal.
        let smaller = Live::open(dir.path(), 4, &empty, RULES, |id| index_of(id).filter(|&i| i < 4)).unwrap();
        assert_eq!(smaller.status().unwrap().unknown_ids, 3);
    }

    #[test]
    fn a_live_event_reads_and_writes_the_events_file_shape() {
        let e: LiveEvent = serde_json::from_str(r#"{"user":"u","item":"a","ts":5}"#).unwrap();
        assert_eq!(e, LiveEvent::play("u", "a", 5));
        let s: LiveEvent = serde_json::from_str(r#"{"user":"u","item":"a","ts":5,"type":"search","query":"q"}"#).unwrap();
        assert_eq!((s.kind, s.check()), (EventKind::Search, Ok(())));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"user":"u","item":"a","ts":5,"type":"search","query":"q"}"#
        );
        assert!(serde_json::from_str::<LiveEvent>(r#"{"user":"u","item":"a","ts":5,"type":"like"}"#).is_err());
        assert_eq!(LiveEvent::play("", "a", 5).check().unwrap_err().0, "user");
        assert_eq!(LiveEvent::play("u", "a", -1).check().unwrap_err().0, "ts");
        let search = LiveEvent {
            kind: EventKind::Search,
            ..LiveEvent::play("u", "a", 5)
        };
        assert_eq!(search.check().unwrap_err().0, "query");
    }
}
