//! Compaction: folds the live writes of a served index into a new
//! generation and swaps it in, without pausing requests.
//!
//! A generation is rebuilt from what it was built from and what was written
//! to it since: the build's event log kept in the index
//! ([`build_log`](crate::index::build_log)), its item records, and the live
//! log's acknowledged records up to the moment the compaction starts. The
//! build runs in a temporary sibling directory while the old generation
//! serves and takes writes; the records written meanwhile are carried into
//! the new generation's live log, the last of them while writes wait for a
//! moment (requests do not), and the finished directory is exchanged with
//! the old one in one atomic rename. A crash at any point leaves the old
//! generation with its whole log, or the new one with the carried records:
//! nothing acknowledged is lost either way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::catalog::{Catalog, Item};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::events::{Event, Events, Impression};
use crate::handle::{CompactionStatus, EngineHandle};
use crate::live::log::{self, Record};
use crate::offline::builder::{Incumbent, IndexBuilder, Log};
use crate::offline::publish::publish;
use crate::ranking::train::{TrainParams, TrainSummary};

/// When [`EngineHandle::compact_if_due`] compacts, and whether a compaction
/// retrains the ranker.
///
/// ```
/// let policy = twostage::Compaction::default().item_share(0.10).retrain_share(0.20);
/// assert_eq!(policy.item_share, 0.10);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Compaction {
    /// Compact once the items added, changed or deleted live reach this
    /// share of the built items. Default 0.05.
    pub item_share: f64,
    /// Or once the events recorded live reach this share of the events the
    /// index was built from (at least [`Compaction::min_events`]). Default 0.25.
    pub event_share: f64,
    /// Retrain the ranker when the events recorded live reach this share of
    /// the build's (at least [`Compaction::min_events`]); otherwise the
    /// served ranker and its plan are kept. A retrained ranker is served
    /// only if it scores at least as well as the served one on the same
    /// held-out lists, and, as at a build, only for the contexts where it
    /// beats the single retrievers. Default 0.05.
    pub retrain_share: f64,
    /// Fewest live events that make a compaction due or a retrain worth it. Default 1,000.
    pub min_events: usize,
    /// How a retrain trains (default [`TrainParams::default`]).
    pub train: TrainParams,
}

impl Default for Compaction {
    fn default() -> Compaction {
        Compaction {
            item_share: 0.05,
            event_share: 0.25,
            retrain_share: 0.05,
            min_events: 1_000,
            train: TrainParams::default(),
        }
    }
}

impl Compaction {
    /// Sets [`Compaction::item_share`].
    pub fn item_share(mut self, share: f64) -> Compaction {
        self.item_share = share;
        self
    }

    /// Sets [`Compaction::event_share`].
    pub fn event_share(mut self, share: f64) -> Compaction {
        self.event_share = share;
        self
    }

    /// Sets [`Compaction::retrain_share`].
    pub fn retrain_share(mut self, share: f64) -> Compaction {
        self.retrain_share = share;
        self
    }

    /// Sets [`Compaction::min_events`].
    pub fn min_events(mut self, events: usize) -> Compaction {
        self.min_events = events;
        self
    }

    /// Sets [`Compaction::train`].
    pub fn train(mut self, params: TrainParams) -> Compaction {
        self.train = params;
        self
    }

    fn check(&self) -> Result<()> {
        for (name, v) in [
            ("item_share", self.item_share),
            ("event_share", self.event_share),
            ("retrain_share", self.retrain_share),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::InvalidConfig(format!(
                    "compaction {name} must be a finite share ≥ 0, not {v}"
                )));
            }
        }
        self.train.check()
    }

    /// Whether the live events are enough, against `built` events at
    /// build time, at `share`.
    fn enough_events(&self, live: usize, built: usize, share: f64) -> bool {
        live >= self.min_events && live as f64 >= share * built as f64
    }
}

/// What a compaction did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Compacted {
    /// Items in the new generation.
    pub items: usize,
    /// Events it was built from.
    pub events: usize,
    /// Live-log records folded into it.
    pub folded_records: usize,
    /// Records written during the compaction, carried into its live log.
    pub carried_records: usize,
    /// Ranker training, when the compaction retrained
    /// ([`TrainSummary::kept_incumbent`] says whether the served ranker won).
    pub training: Option<TrainSummary>,
    /// Wall time of the whole compaction.
    pub duration: Duration,
    /// How long writes waited at the handover (requests never wait).
    pub writes_paused: Duration,
}

/// Marks the handle's compaction running; dropped, records how it ended.
struct Running<'a> {
    handle: &'a EngineHandle,
    started: Instant,
    outcome: Option<std::result::Result<(), String>>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut s = self.handle.compaction_state();
        s.running = false;
        s.last_seconds = Some(self.started.elapsed().as_secs_f64());
        match self.outcome.take() {
            Some(Ok(())) => {
                s.completed += 1;
                s.last_error = None;
            }
            Some(Err(e)) => {
                s.failed += 1;
                s.last_error = Some(e);
            }
            None => {
                s.failed += 1;
                s.last_error = Some("the compaction panicked".into());
            }
        }
    }
}

impl EngineHandle {
    /// Whether the live writes have passed `policy`'s thresholds.
    pub fn compaction_due(&self, policy: &Compaction) -> Result<bool> {
        let engine = self.load();
        let status = engine.live_status()?;
        let built = engine.built_len();
        let changed = status.upserted + status.deleted;
        let items_due = changed > 0 && changed as f64 >= policy.item_share * built as f64;
        let events_due = policy.enough_events(status.events, engine.info().stats.events, policy.event_share);
        Ok(items_due || events_due)
    }

    /// [`compact`](EngineHandle::compact)s when [`compaction_due`](EngineHandle::compaction_due):
    /// `None` when it was not.
    pub fn compact_if_due(&self, policy: &Compaction) -> Result<Option<Compacted>> {
        if self.compaction_due(policy)? {
            self.compact(policy).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Folds the live writes into a new generation of the index and serves
    /// it: the items as upserted, without the deleted ones and their
    /// events, and every retriever rebuilt over the build's log plus the
    /// events recorded live (the build's settings and schema, as the
    /// manifest records them; the attached encoder embeds the items anew).
    /// The ranker is retrained when `policy` says enough events arrived,
    /// and kept otherwise.
    ///
    /// Runs on the calling thread (a service runs it on one of its own);
    /// requests and writes go on meanwhile: writes acknowledged during the
    /// build are carried into the new generation's live log, and at the
    /// handover writes wait (for about one [`Engine::open`] of the new
    /// generation) while requests keep running on the old one. The old
    /// engine then refuses writes: a caller holding it (from
    /// [`load`](EngineHandle::load)) should write through the handle.
    /// One compaction at a time: a second call while one runs is refused.
    ///
    /// Errors leave the old generation serving with everything written to
    /// it: an index built from log artefacts (it keeps no event log to
    /// rebuild from: rebuild it), an index with a content space and no
    /// encoder attached, a reload during the compaction. Should the new
    /// generation, published, fail to open, the old engine keeps serving
    /// reads and refuses writes until [`reload`](EngineHandle::reload)
    /// succeeds (the new generation holds every acknowledged write).
    pub fn compact(&self, policy: &Compaction) -> Result<Compacted> {
        policy.check()?;
        let mut running = self.start_compaction()?;
        let result = self.run_compaction(policy, running.started);
        running.outcome = Some(result.as_ref().map(drop).map_err(|e| e.to_string()));
        result
    }

    fn start_compaction(&self) -> Result<Running<'_>> {
        let mut s = self.compaction_state();
        if s.running {
            return Err(Error::InvalidRequest("a compaction of this index is already running".into()));
        }
        s.running = true;
        Ok(Running {
            handle: self,
            started: Instant::now(),
            outcome: None,
        })
    }

    fn run_compaction(&self, policy: &Compaction, started: Instant) -> Result<Compacted> {
        let engine = self.load();
        let dir = engine.info().path;
        let _span = tracing::info_span!("compaction", index = %dir.display()).entered();
        let live = engine.live();
        let folded_end = live.log_len()?;
        let records = log::read_until(live.log_path(), folded_end)?;
        let base = engine.base();
        let base_catalog = Catalog::new(base.items)?;
        let Some(base_events) = crate::index::build_log::read(&dir, base.manifest.log.as_ref(), &base_catalog)? else {
            return Err(Error::InvalidConfig(format!(
                "the index at {} was built from log artefacts and keeps no event log to compact from: rebuild it",
                dir.display()
            )));
        };
        let folded = fold(&base_catalog, &base_events, &records)?;
        drop((base_catalog, base_events));

        let mut builder = IndexBuilder::with_params(base.manifest.schema.clone(), base.manifest.build.clone());
        match (&base.manifest.encoder, engine.encoder()) {
            (Some(_), Some(encoder)) => builder = builder.encoder(encoder.clone()),
            (Some(built), None) => {
                return Err(Error::EncoderMismatch {
                    expected: crate::encoder::describe(built),
                    found: None,
                })
            }
            (None, _) => {}
        }
        let retrain = cfg!(feature = "train") && policy.enough_events(folded.live_events, base.manifest.stats.events, policy.retrain_share);
        builder = if retrain {
            builder.ranker(policy.train.clone())
        } else {
            builder.without_ranker_training()
        };
        builder = builder.replacing(Incumbent {
            ranker: base.ranker,
            serving: base.manifest.serving.clone(),
        });
        let (tmp, report) = builder.stage(&folded.catalog, Log::Events(&folded.events), &dir, &|_| {})?;
        let remove_tmp = |e: Error| {
            let _ = std::fs::remove_dir_all(&tmp);
            e
        };

        // What was written during the build, then a trial open of the new
        // generation with it, while the old one still takes writes.
        let wal = tmp.join(log::LOG_FILE);
        let carried = log::read_from(live.log_path(), folded_end).map_err(remove_tmp)?;
        log::create(&wal, &carried.bytes).map_err(remove_tmp)?;
        drop(Engine::open_with_encoder(&tmp, engine.encoder()).map_err(remove_tmp)?);
        let manifest = crate::index::manifest::MANIFEST;
        let new_manifest = std::fs::read(tmp.join(manifest)).map_err(|e| remove_tmp(Error::io(tmp.join(manifest), e)))?;

        // The handover: no write lands between the last carry and the swap.
        let writes = self.lock_writes().map_err(remove_tmp)?;
        let pause = Instant::now();
        if !Arc::ptr_eq(&self.load(), &engine) {
            return Err(remove_tmp(Error::InvalidRequest(
                "the index was reloaded during the compaction; the compaction was abandoned".into(),
            )));
        }
        live.seal(format!(
            "the index at {} was compacted into a new generation: write through the EngineHandle, which serves it",
            dir.display()
        ))
        .map_err(remove_tmp)?;
        let handed = log::read_from(live.log_path(), carried.end)
            .and_then(|last| log::append_raw(&wal, &last.bytes).map(|()| last.records))
            .and_then(|last| publish(&tmp, &dir).map(|()| last));
        let last = match handed {
            Ok(n) => n,
            // The exchange happened and only the fsync after it failed: the
            // directory holds the new generation, which the old engine must
            // not write past.
            Err(e) if std::fs::read(dir.join(manifest)).is_ok_and(|m| m == new_manifest) => {
                tracing::warn!(error = %e, "compaction: the new generation is in place, but syncing its rename failed");
                let _ = std::fs::remove_dir_all(&tmp);
                log::read_from(&wal_in(&dir), 0)?.records.saturating_sub(carried.records)
            }
            Err(e) => {
                live.unseal();
                return Err(remove_tmp(e));
            }
        };
        let opened = Engine::open_with_encoder(&dir, engine.encoder()).map_err(|e| {
            Error::internal(
                "compaction",
                format!(
                    "the new generation at {} holds every acknowledged write but failed to open ({e}); \
                     the previous engine serves reads and refuses writes until EngineHandle::reload succeeds",
                    dir.display()
                ),
            )
        })?;
        self.swap(opened.with_query_cache(engine.query_cache_stats().capacity));
        let writes_paused = pause.elapsed();
        drop(writes);
        tracing::info!(
            items = folded.catalog.len(),
            folded = records.len(),
            carried = carried.records + last,
            paused_ms = writes_paused.as_millis() as u64,
            "compacted"
        );
        Ok(Compacted {
            items: folded.catalog.len(),
            events: folded.events.len(),
            folded_records: records.len(),
            carried_records: carried.records + last,
            training: report.training,
            duration: started.elapsed(),
            writes_paused,
        })
    }

    /// The compactions of this handle so far.
    pub fn compaction_status(&self) -> CompactionStatus {
        self.compaction_state().clone()
    }
}

/// The live log of the index in `dir`.
fn wal_in(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join(log::LOG_FILE)
}

/// A catalog and log with the live records folded in.
struct Folded {
    catalog: Catalog,
    events: Events,
    /// Events of `records` kept (their item is in the catalog).
    live_events: usize,
}

/// Applies the live-log `records` to the built `catalog` and `events` as
/// replaying them does (each record's upserts, then its deletions, then its
/// events): upserted items replace their records or are appended, deleted
/// items leave the catalog with their events and impressions, and the
/// events of items still there are appended to the log.
fn fold(catalog: &Catalog, events: &Events, records: &[Record]) -> Result<Folded> {
    let mut items: Vec<Option<Item>> = catalog.items().iter().cloned().map(Some).collect();
    let mut index: HashMap<String, usize> = catalog.items().iter().enumerate().map(|(i, it)| (it.id.clone(), i)).collect();
    for r in records {
        for u in &r.upsert {
            match index.get(&u.item.id) {
                Some(&i) => items[i] = Some(u.item.clone()),
                None => {
                    index.insert(u.item.id.clone(), items.len());
                    items.push(Some(u.item.clone()));
                }
            }
        }
        for id in &r.delete {
            if let Some(&i) = index.get(id) {
                items[i] = None;
            }
        }
    }
    let mut renumbered = vec![None; items.len()];
    let mut kept = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        if let Some(item) = item {
            renumbered[i] = Some(kept.len() as u32);
            kept.push(item);
        }
    }
    let folded_catalog = Catalog::new(kept)?;
    let new_id = |old: u32| renumbered.get(old as usize).copied().flatten();
    let (users, built, impressions) = events.parts();
    let mut users = users.to_vec();
    let mut user_ids: HashMap<String, u32> = users.iter().enumerate().map(|(i, u)| (u.clone(), i as u32)).collect();
    let mut out: Vec<Event> = built
        .iter()
        .filter_map(|e| new_id(e.item).map(|item| Event { item, ..e.clone() }))
        .collect();
    let before = out.len();
    for e in records.iter().flat_map(|r| &r.events) {
        let Some(item) = index.get(&e.item).and_then(|&i| new_id(i as u32)) else {
            continue;
        };
        let user = *user_ids.entry(e.user.clone()).or_insert_with(|| {
            users.push(e.user.clone());
            (users.len() - 1) as u32
        });
        out.push(Event {
            user,
            item,
            ts: e.ts,
            kind: e.kind,
            query: e.query.clone(),
            session: None,
        });
    }
    let live_events = out.len() - before;
    let impressions: Vec<Impression> = impressions
        .iter()
        .filter_map(|e| new_id(e.item).map(|item| Impression { item, ..e.clone() }))
        .collect();
    let events = Events::from_parts(users, out, impressions, &folded_catalog)?;
    Ok(Folded {
        catalog: folded_catalog,
        events,
        live_events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{LiveEvent, Upsert};

    #[test]
    fn folding_replays_records_in_order_and_drops_deleted_items_with_their_events() {
        let catalog = Catalog::new((0..4).map(|i| Item::new(format!("i{i}"), format!("t{i}"))).collect()).unwrap();
        let log = "{\"user\":\"u\",\"item\":\"i1\",\"ts\":1700000000}\n{\"user\":\"u\",\"item\":\"i2\",\"ts\":1700000001}\n";
        let events = Events::from_jsonl_reader(log.as_bytes(), "events.jsonl".as_ref(), &catalog).unwrap();
        let upsert = |id: &str, title: &str| Upsert {
            item: Item::new(id, title),
            content: None,
        };
        let records = vec![
            Record {
                upsert: vec![upsert("new", "added"), upsert("i3", "changed")],
                delete: vec!["i1".into(), "unknown".into()],
                events: vec![LiveEvent::play("w", "new", 1700000005), LiveEvent::play("u", "i1", 1700000006)],
            },
            // Deleted, then upserted again: back, with its events.
            Record {
                delete: vec!["i2".into()],
                ..Record::default()
            },
            Record {
                upsert: vec![upsert("i2", "back")],
                events: vec![LiveEvent::play("u", "i2", 1700000007)],
                ..Record::default()
            },
        ];
        let f = fold(&catalog, &events, &records).unwrap();
        let ids: Vec<&str> = f.catalog.items().iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i0", "i2", "i3", "new"]);
        assert_eq!(f.catalog.items()[2].title, "changed");
        assert_eq!(f.catalog.items()[1].title, "back");
        let played: Vec<(&str, &str)> = f
            .events
            .events()
            .iter()
            .map(|e| (f.events.users()[e.user as usize].as_str(), ids[e.item as usize]))
            .collect();
        assert_eq!(played, [("u", "i2"), ("w", "new"), ("u", "i2")], "i1's events left with it");
        assert_eq!(f.live_events, 2);
    }
}
