//! Live writes on a built index without a rebuild: deleting items and
//! recording events.

use super::Engine;
use crate::error::{Error, Result};
use crate::live::{LiveEvent, LiveStatus, MAX_WRITE_BATCH};

impl Engine {
    /// Deletes the items with these ids from every result, from this call's
    /// return on: every retriever drops them, and so do pins. The batch is
    /// atomic: an unknown id refuses it whole ([`Error::UnknownItem`]) and
    /// nothing is applied. The call returns once the deletion is fsynced to
    /// the index directory's live log (`live.wal`), which [`Engine::open`]
    /// replays; requests already running finish on the view they started
    /// with. Returns how many of the items were not deleted already.
    ///
    /// A deleted item may still be a request's context (it was played). One
    /// process writes to an index directory at a time; concurrent calls in
    /// it are committed in groups, each group with one fsync, so writers
    /// that arrive together wait for one fsync, not for each other's
    /// ([`LiveStatus::syncs`] counts them). An in-place [`retrain_ranker`](crate::retrain_ranker)
    /// keeps the log; a new build into the directory replaces it with the
    /// directory, so remove deleted items from the catalog the next build
    /// reads. At most [`MAX_WRITE_BATCH`] ids per call.
    ///
    /// ```no_run
    /// # fn main() -> twostage::Result<()> {
    /// let engine = twostage::Engine::open("index")?;
    /// engine.delete_items(&["track-00042"])?;
    /// # Ok(()) }
    /// ```
    pub fn delete_items<S: AsRef<str>>(&self, ids: &[S]) -> Result<usize> {
        if ids.len() > MAX_WRITE_BATCH {
            return Err(Error::InvalidRequest(format!(
                "{} ids in one write; at most {MAX_WRITE_BATCH}",
                ids.len()
            )));
        }
        let items = ids.iter().map(|id| self.resolve_id(id.as_ref())).collect::<Result<Vec<u32>>>()?;
        let record = crate::live::log::Record {
            delete: ids.iter().map(|id| id.as_ref().to_string()).collect(),
            ..Default::default()
        };
        self.live.write(record, &items, &[])
    }

    /// Records interactions that happened after the build: from this call's
    /// return on, plays count towards
    /// popularity — the popularity retriever, the `log_popularity`,
    /// `recent_share` and `played_at` features, and which items count as
    /// rarely played — and towards co-visitation: a user's plays within the
    /// index's session gap of each other are paired as the build pairs them
    /// (within its window; `a→b` gains `1/distance`, `b→a` half), and the
    /// pairs are added to the built lists for every request. Skips count
    /// towards `skip_rate`. A search (with the play that followed it logged
    /// as its own play event, as in the events file) is kept in the log and
    /// counts towards nothing live, as a build counts it. Durable and atomic as [`Engine::delete_items`]
    /// is: an event that breaks the events file's contract ([`LiveEvent`];
    /// an unknown item, an empty user, a timestamp outside 1970..2100, a
    /// search without its query) refuses the batch whole, naming
    /// `events[i].field`, and nothing is applied.
    ///
    /// Events are taken in the order given (a user's plays in time order).
    /// Sessions start after the build: a user's first live play is not
    /// paired with plays in the built log, and explicit session ids are not
    /// read. The linear model and the ranker learn from these events at the
    /// next build, which must read them from the events file; a live play
    /// counts as recent, with no decay until then. At most
    /// [`MAX_WRITE_BATCH`] events per call.
    pub fn record_events(&self, events: &[LiveEvent]) -> Result<()> {
        if events.len() > MAX_WRITE_BATCH {
            return Err(Error::InvalidRequest(format!(
                "{} events in one write; at most {MAX_WRITE_BATCH}",
                events.len()
            )));
        }
        let mut items = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            if let Err((field, why)) = e.check() {
                return Err(Error::InvalidRequest(format!("events[{i}].{field}: {why}")));
            }
            let Some(&item) = self.by_id.get(&e.item) else {
                return Err(Error::InvalidRequest(format!(
                    "events[{i}].item: unknown item id `{}` (not in the index)",
                    e.item
                )));
            };
            items.push(item);
        }
        if events.is_empty() {
            return Ok(());
        }
        let record = crate::live::log::Record {
            events: events.to_vec(),
            ..Default::default()
        };
        self.live.write(record, &[], &items).map(|_| ())
    }

    /// Plays of the item with this id, counting those recorded live.
    pub fn plays(&self, id: &str) -> Result<u32> {
        let item = self.resolve_id(id)?;
        Ok(self.live.view().popularity.plays(item))
    }

    /// Whether the item with this id has been deleted since the build
    /// ([`Engine::delete_items`]).
    pub fn is_deleted(&self, id: &str) -> Result<bool> {
        let item = self.resolve_id(id)?;
        Ok(self.live.view().deleted.contains(item))
    }

    /// The live log's state: deletions and events since the build,
    /// acknowledged write batches, and what replaying it at open dropped.
    pub fn live_status(&self) -> Result<LiveStatus> {
        self.live.status()
    }
}
