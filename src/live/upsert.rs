//! Item upserts: what an added or changed record becomes in the
//! [`Overlay`] — its tag ids and group in the built tables, its vectors —
//! decided the way the build decides them, so a live item sits where a
//! build of the same catalog would put it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::catalog::Item;
use crate::overlay::{LiveItem, Overlay};
use crate::retrieval::ann::Metric;
use crate::store::{ItemStore, NONE};
use crate::vector::normalized;

/// One upserted item as the log keeps it: the record in the items file's
/// shape, and its content vector when the index has a content space (the
/// encoder ran before the write, so replay needs no encoder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Upsert {
    pub item: Item,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<f32>>,
}

/// What an upsert needs of the built index, read once at open.
pub(crate) struct Built {
    /// Built item of each external id.
    pub by_id: std::sync::Arc<HashMap<String, u32>>,
    /// The attribute whose value is an item's group, and the built group ids.
    group_key: Option<String>,
    group_ids: HashMap<String, u32>,
    tag_fields: Vec<String>,
    /// The learned space's vectors came from the catalog: an added item's
    /// own vector (of this dimension) places it, as in the build.
    catalog_vectors: Option<usize>,
    metric: Metric,
    cold: ColdStart,
}

/// The builder's cold-start rule ([`fill_from_content`]): an item without
/// a learned vector gets the normalised sums of the vectors of the items
/// in its group (weighted 2) and with each of its tags (weighted 1), here
/// precomputed over the built vectors.
///
/// [`fill_from_content`]: crate::index::embeddings::fill_from_content
#[derive(Default)]
struct ColdStart {
    dim: usize,
    groups: HashMap<u32, Vec<f32>>,
    tags: HashMap<u32, Vec<f32>>,
}

impl ColdStart {
    fn of(store: &ItemStore, vector_of: &dyn Fn(u32) -> Option<Vec<f32>>, dim: usize) -> ColdStart {
        let mut cold = ColdStart {
            dim,
            ..ColdStart::default()
        };
        // The vectors the build's rule summed: not those it filled itself.
        let mut filled = store.cold_filled.iter().copied().peekable();
        for item in 0..store.len() as u32 {
            if filled.next_if_eq(&item).is_some() {
                continue;
            }
            let Some(v) = vector_of(item) else { continue };
            let add = |acc: &mut Vec<f32>| acc.iter_mut().zip(&v).for_each(|(a, x)| *a += x);
            let g = store.group(item);
            if g != NONE {
                add(cold.groups.entry(g).or_insert_with(|| vec![0.0; dim]));
            }
            for &t in store.tags.of(item) {
                add(cold.tags.entry(t).or_insert_with(|| vec![0.0; dim]));
            }
        }
        cold
    }

    fn vector(&self, group: u32, tags: &[u32]) -> Option<Vec<f32>> {
        if self.dim == 0 {
            return None;
        }
        let mut acc = vec![0.0f32; self.dim];
        let mut add = |sum: &Vec<f32>, weight: f32| {
            if let Some(s) = normalized(sum.clone()) {
                acc.iter_mut().zip(&s).for_each(|(a, x)| *a += weight * x);
            }
        };
        if let Some(sum) = self.groups.get(&group) {
            add(sum, 2.0);
        }
        for t in tags {
            if let Some(sum) = self.tags.get(t) {
                add(sum, 1.0);
            }
        }
        normalized(acc)
    }
}

/// What [`Built::new`] reads of the built index.
pub(crate) struct BuiltParts<'a> {
    pub store: &'a ItemStore,
    pub by_id: std::sync::Arc<HashMap<String, u32>>,
    pub group_key: Option<String>,
    pub tag_fields: Vec<String>,
    pub vector_source: &'a str,
    pub metric: Metric,
    pub dim: usize,
    /// The learned-space vector of a built item.
    pub vector_of: &'a dyn Fn(u32) -> Option<Vec<f32>>,
}

impl Built {
    pub fn new(p: BuiltParts<'_>) -> Built {
        let store = p.store;
        let group_ids = store
            .group_names
            .iter()
            .enumerate()
            .map(|(g, name)| (name.clone(), g as u32))
            .collect();
        Built {
            by_id: p.by_id,
            group_key: p.group_key,
            group_ids,
            tag_fields: p.tag_fields,
            catalog_vectors: (p.vector_source == "catalog").then_some(p.dim),
            metric: p.metric,
            cold: ColdStart::of(store, p.vector_of, p.dim),
        }
    }

    /// The overlay record of `u`, whose id is `item` (from
    /// [`Overlay::id_for`]), given the built tag table in `store`, and its
    /// learned-space vector where it has no built one.
    pub fn record(&self, overlay: &mut Overlay, store: &ItemStore, item: u32, u: &Upsert) -> (LiveItem, Option<Vec<f32>>) {
        let mut record = u.item.clone();
        let own_vector = record.vector.take();
        let mut tags: Vec<u32> = self
            .tag_fields
            .iter()
            .flat_map(|f| record.tags.get(f).into_iter().flatten().filter_map(move |v| store.tags.id(f, v)))
            .collect();
        tags.sort_unstable();
        tags.dedup();
        let group = match self.group_key.as_ref().and_then(|g| record.attributes.get(g)) {
            Some(value) => {
                let name = value.to_string();
                overlay.group_id(&name, self.group_ids.get(&name).copied())
            }
            None => NONE,
        };
        let learned = if store.row(item).is_some() {
            // What the log learned of the item stays its own.
            None
        } else {
            let own = match (self.catalog_vectors, own_vector) {
                (Some(dim), Some(v)) if v.len() == dim => match self.metric {
                    Metric::Cosine => normalized(v),
                    Metric::L2 | Metric::Dot => Some(v),
                },
                _ => None,
            };
            own.or_else(|| self.cold.vector(group, &tags))
        };
        (LiveItem { item: record, tags, group }, learned)
    }
}

/// Applies `upserts` in order: each item takes its id (its own, or the
/// next one if new), its record replaces any earlier one, a deleted item
/// is deleted no more, and its document is queued in `docs` for the text
/// index. Returns how many items were new.
pub(crate) fn apply(
    built: &Built,
    store: &ItemStore,
    upserts: &[Upsert],
    overlay: &mut Overlay,
    dead: &mut super::Tombstones,
    docs: &mut Vec<(u32, Item)>,
) -> usize {
    let mut added = 0;
    for u in upserts {
        let (item, new) = overlay.id_for(&u.item.id, built.by_id.get(&u.item.id).copied());
        added += usize::from(new);
        let (record, learned) = built.record(overlay, store, item, u);
        docs.push((item, record.item.clone()));
        overlay.put(item, record, learned.as_deref(), u.content.as_deref());
        dead.grow(overlay.len());
        dead.remove(item);
    }
    added
}
