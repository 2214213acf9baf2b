//! Live writes on a built index without a rebuild: upserting items,
//! deleting items and recording events.

use super::Engine;
use crate::catalog::{Attribute, Catalog, Item};
use crate::error::{Error, Result};
use crate::live::{LiveEvent, LiveStatus, Upsert, MAX_WRITE_BATCH};

/// What [`Engine::upsert_items`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Upserted {
    /// Items the index did not hold: added.
    pub added: usize,
    /// Items it held (built, or added earlier): their records replaced.
    pub updated: usize,
}

impl Engine {
    /// Adds the items the index does not hold and replaces the records of
    /// those it does, by id, from this call's return on: text search finds
    /// them by their words (and a changed item no longer by its old ones),
    /// filters, boosts and features read the new records, the learned space
    /// places a new item as the build places an item without plays (its
    /// catalog vector where the space is the catalog's, else the mean of
    /// its group's and tags' vectors), and on an index with a content space
    /// the attached encoder embeds it (so that needs the encoder,
    /// [`Error::EncoderMismatch`] without it). A changed item keeps what
    /// the log says of it: its plays, co-visitation, linear weights and
    /// learned vector (where the learned space is the catalog's, a changed
    /// item's new catalog vector is not used until the next build). A
    /// deleted item upserted again is no longer deleted.
    ///
    /// The batch is atomic and checked as the builder checks a catalog:
    /// an item that breaks the data contract (an empty id, an id twice in
    /// the batch, an over-long text, a non-finite number, an attribute of
    /// another type than the index's, a catalog vector of another
    /// dimension than the index's) refuses it whole with
    /// [`Error::InvalidRequest`] naming `items[i].field`, and nothing is
    /// applied. Durable and concurrent as [`Engine::delete_items`] is: the
    /// records (with their content vectors) are fsynced to the live log,
    /// which [`Engine::open`] replays. At most [`MAX_WRITE_BATCH`] items.
    ///
    /// Live items are kept beside the built index and searched exactly;
    /// a new build folds them in.
    ///
    /// ```no_run
    /// # fn main() -> twostage::Result<()> {
    /// use twostage::catalog::Item;
    /// let engine = twostage::Engine::open("index")?;
    /// let mut item = Item::new("track-new-1", "Blue in Green (live)");
    /// item.tags.insert("genre".into(), vec!["jazz".into()]);
    /// let done = engine.upsert_items(&[item])?;
    /// assert_eq!(done.added, 1);
    /// # Ok(()) }
    /// ```
    pub fn upsert_items(&self, items: &[Item]) -> Result<Upserted> {
        let prepared = self.prepare_upserts(items)?;
        self.apply_upserts(prepared)
    }

    /// The first half of [`Engine::upsert_items`]: `items` checked against
    /// this index and embedded by its encoder, not yet written. Apart so
    /// that a caller serialising its writes (`EngineHandle`) runs the
    /// encoder before it takes its lock.
    pub(crate) fn prepare_upserts(&self, items: &[Item]) -> Result<Vec<Upsert>> {
        if items.len() > MAX_WRITE_BATCH {
            return Err(Error::InvalidRequest(format!(
                "{} items in one write; at most {MAX_WRITE_BATCH}",
                items.len()
            )));
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let checked = Catalog::new(items.to_vec()).map_err(|e| match e {
            Error::InvalidData { line, field, reason, .. } => {
                let i = line.unwrap_or(1).saturating_sub(1);
                Error::InvalidRequest(format!("items[{i}].{field}: {reason}"))
            }
            other => other,
        })?;
        for (i, item) in checked.items().iter().enumerate() {
            self.check_against_index(item)
                .map_err(|(field, why)| Error::InvalidRequest(format!("items[{i}].{field}: {why}")))?;
        }
        let content = match &self.content {
            None => vec![None; items.len()],
            Some(_) => {
                let schema = &self.manifest.schema;
                let texts: Vec<String> = checked
                    .items()
                    .iter()
                    .map(|it| crate::index::content::item_text(it, schema))
                    .collect();
                let vectors = self.encode_items(&texts)?;
                // The log must read back what it was given: JSON has no NaN.
                if vectors.iter().any(|v| v.iter().any(|x| !x.is_finite())) {
                    return Err(Error::internal("encoder", "the encoder gave a non-finite content vector"));
                }
                vectors.into_iter().map(Some).collect()
            }
        };
        Ok(checked
            .into_items()
            .into_iter()
            .zip(content)
            .map(|(item, content)| Upsert { item, content })
            .collect())
    }

    /// The second half of [`Engine::upsert_items`]: writes what
    /// [`Engine::prepare_upserts`] of this engine gave.
    pub(crate) fn apply_upserts(&self, upsert: Vec<Upsert>) -> Result<Upserted> {
        if upsert.is_empty() {
            return Ok(Upserted::default());
        }
        let n = upsert.len();
        let record = crate::live::log::Record {
            upsert,
            ..Default::default()
        };
        let added = self.live.write(record, &[], &[], &self.text)?;
        Ok(Upserted { added, updated: n - added })
    }

    /// Where `item` (valid on its own) disagrees with the built index: the
    /// field and why.
    fn check_against_index(&self, item: &Item) -> std::result::Result<(), (String, String)> {
        for (name, value) in &item.attributes {
            let number_column = self.numbers.column(name).is_some();
            let text_attribute = self.field_names.attributes.contains(name) && !number_column;
            match value {
                Attribute::Text(_) if number_column => {
                    return Err((format!("attributes.{name}"), "a string where the index holds numbers".into()))
                }
                Attribute::Number(_) if text_attribute => {
                    return Err((format!("attributes.{name}"), "a number where the index holds strings".into()))
                }
                _ => {}
            }
        }
        if let Some(v) = &item.vector {
            let dim = self.ann.dim();
            if self.manifest.stats.vector_source == "catalog" && v.len() != dim {
                return Err(("vector".into(), format!("dimension {} differs from the index's {dim}", v.len())));
            }
        }
        Ok(())
    }

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
        let view = self.live.view();
        let items = ids
            .iter()
            .map(|id| self.resolve_id(&view.overlay, id.as_ref()))
            .collect::<Result<Vec<u32>>>()?;
        let record = crate::live::log::Record {
            delete: ids.iter().map(|id| id.as_ref().to_string()).collect(),
            ..Default::default()
        };
        self.live.write(record, &items, &[], &self.text)
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
        let view = self.live.view();
        for (i, e) in events.iter().enumerate() {
            if let Err((field, why)) = e.check() {
                return Err(Error::InvalidRequest(format!("events[{i}].{field}: {why}")));
            }
            let Some(item) = self.id_of(&view.overlay, &e.item) else {
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
        self.live.write(record, &[], &items, &self.text).map(|_| ())
    }

    /// Plays of the item with this id, counting those recorded live.
    pub fn plays(&self, id: &str) -> Result<u32> {
        let view = self.live.view();
        let item = self.resolve_id(&view.overlay, id)?;
        Ok(view.popularity.plays(item))
    }

    /// Whether the item with this id has been deleted since the build
    /// ([`Engine::delete_items`]).
    pub fn is_deleted(&self, id: &str) -> Result<bool> {
        let view = self.live.view();
        let item = self.resolve_id(&view.overlay, id)?;
        Ok(view.deleted.contains(item))
    }

    /// The live log's state: deletions and events since the build,
    /// acknowledged write batches, and what replaying it at open dropped.
    pub fn live_status(&self) -> Result<LiveStatus> {
        self.live.status()
    }
}

/// What a compaction rebuilds a served index from, besides its logs.
pub(crate) struct Base {
    /// The built items in order, each with the catalog vector the index
    /// took from it (where the learned space is the catalog's).
    pub items: Vec<Item>,
    pub manifest: crate::index::manifest::Manifest,
    pub ranker: crate::ranking::model::Ranker,
}

impl Engine {
    /// The built index as a compaction reads it.
    pub(crate) fn base(&self) -> Base {
        let catalog_vectors = self.manifest.stats.vector_source == "catalog";
        let cold: std::collections::HashSet<u32> = self.store.cold_filled.iter().copied().collect();
        let items = (0u32..)
            .zip(&self.store.items)
            .map(|(i, item)| {
                let mut item = item.clone();
                if catalog_vectors && !cold.contains(&i) {
                    item.vector = self.store.row(i).and_then(|r| self.ann.vector(r)).map(<[f32]>::to_vec);
                }
                item
            })
            .collect();
        Base {
            items,
            manifest: self.manifest.clone(),
            ranker: self.ranker.clone(),
        }
    }

    /// The live writes' state, for a compaction to seal and carry.
    pub(crate) fn live(&self) -> &crate::live::Live {
        &self.live
    }

    /// Items in the built index (without those added live).
    pub(crate) fn built_len(&self) -> usize {
        self.store.items.len()
    }
}
