//! Live writes: deleting items from a built index without a rebuild.

use super::Engine;
use crate::error::{Error, Result};
use crate::live::{LiveStatus, MAX_WRITE_BATCH};

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
    /// it are serialised. An in-place [`retrain_ranker`](crate::retrain_ranker)
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
        let names = ids.iter().map(|id| id.as_ref().to_string()).collect();
        self.live.delete(&items, names)
    }

    /// Whether the item with this id has been deleted since the build
    /// ([`Engine::delete_items`]).
    pub fn is_deleted(&self, id: &str) -> Result<bool> {
        let item = self.resolve_id(id)?;
        Ok(self.live.snapshot().contains(item))
    }

    /// The live log's state: deletions since the build, acknowledged write
    /// batches, and what replaying it at open dropped.
    pub fn live_status(&self) -> Result<LiveStatus> {
        self.live.status()
    }
}
