//! The live records over a built index: items upserted since the build,
//! new ones and changed ones, as one immutable [`Overlay`] that each write
//! replaces and each request keeps for its whole run.
//!
//! An item added live takes the next internal id after the built ones; a
//! changed item keeps its id, so its plays, co-visitation, linear weights
//! and learned vector (what the log says of it) stay its own, and only what
//! the record says (text, tags, attributes, group, content vector) is read
//! from the overlay. [`Items`] answers per-item questions for a request:
//! the overlay's record where there is one, else the built store's.
//!
//! The overlay is small next to the index (a compaction folds it into a
//! new build), so its vectors are scanned exactly rather than indexed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::catalog::{Attribute, Item};
use crate::retrieval::ann::Metric;
use crate::store::{ItemStore, NONE};

/// One upserted record, with what the retrievers read of it.
#[derive(Clone, Debug)]
pub(crate) struct LiveItem {
    /// The record (without its catalog vector).
    pub item: Item,
    /// Its tags' ids in the built tag table, sorted: tags no built item
    /// has are matched by value ([`LiveItem::has_tag`]).
    pub tags: Vec<u32>,
    /// Its group id: a built one, or one first seen live.
    pub group: u32,
    /// Its learned-space vector, for an item without a built one: the
    /// catalog's vector or the builder's cold-start rule.
    pub learned: Option<Vec<f32>>,
    /// Its content-space vector (normalised), on indexes with a content space.
    pub content: Option<Vec<f32>>,
}

impl LiveItem {
    /// Whether the record has tag `field = value`.
    pub fn has_tag(&self, field: &str, value: &str) -> bool {
        self.item.tags.get(field).is_some_and(|vs| vs.iter().any(|v| v == value))
    }

    /// The record's number attribute `attr`, if it has one.
    pub fn number(&self, attr: &str) -> Option<f64> {
        match self.item.attributes.get(attr) {
            Some(Attribute::Number(v)) if v.is_finite() => Some(*v),
            _ => None,
        }
    }
}

/// The field names of the upserted records, by kind.
#[derive(Clone, Debug, Default)]
pub(crate) struct FieldNames {
    pub text: BTreeSet<String>,
    pub attributes: BTreeSet<String>,
    pub tags: BTreeSet<String>,
}

/// Every live record of one moment (see the module docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct Overlay {
    /// Items in the built index: the first id an added item takes.
    base: u32,
    records: HashMap<u32, Arc<LiveItem>>,
    /// The internal ids of the items added live, by external id.
    added: HashMap<String, u32>,
    /// Groups first seen live, by name: ids from the built group count on.
    new_groups: Vec<String>,
    new_group_ids: HashMap<String, u32>,
    /// Built groups: how many, for new group ids.
    base_groups: u32,
    /// Field names the records use.
    pub fields: FieldNames,
}

impl Overlay {
    /// An empty overlay over `base` built items in `base_groups` groups.
    pub fn new(base: usize, base_groups: usize) -> Overlay {
        Overlay {
            base: u32::try_from(base).unwrap_or(u32::MAX),
            base_groups: u32::try_from(base_groups).unwrap_or(u32::MAX),
            ..Overlay::default()
        }
    }

    /// Items of the index with those added live: one past the largest id.
    pub fn len(&self) -> usize {
        self.base as usize + self.added.len()
    }

    /// Items added since the build.
    pub fn added(&self) -> usize {
        self.added.len()
    }

    /// Live records (added and changed items).
    pub fn records_len(&self) -> usize {
        self.records.len()
    }

    /// The live record of `item`, if it was upserted.
    #[inline]
    pub fn record(&self, item: u32) -> Option<&LiveItem> {
        if self.records.is_empty() {
            return None;
        }
        self.records.get(&item).map(Arc::as_ref)
    }

    /// Whether `item` has a live record: a built item whose built text and
    /// content vector no longer hold.
    #[inline]
    pub fn shadows(&self, item: u32) -> bool {
        !self.records.is_empty() && self.records.contains_key(&item)
    }

    /// The internal id of an item added live.
    pub fn added_id(&self, id: &str) -> Option<u32> {
        self.added.get(id).copied()
    }

    /// Every live record, in no particular order.
    pub fn records(&self) -> impl Iterator<Item = (u32, &LiveItem)> + '_ {
        self.records.iter().map(|(&i, r)| (i, r.as_ref()))
    }

    /// The built items with a live record.
    pub fn changed_built_items(&self) -> impl Iterator<Item = u32> + '_ {
        self.records.keys().copied().filter(move |&i| i < self.base)
    }

    /// The id `id` takes: its own if the index holds it (`built` or added
    /// live), else the next one, marked new.
    pub fn id_for(&self, id: &str, built: Option<u32>) -> (u32, bool) {
        match built.or_else(|| self.added_id(id)) {
            Some(i) => (i, false),
            None => (self.base + self.added.len() as u32, true),
        }
    }

    /// The group id of group name `name` for a record: `built` (the built
    /// group of that name) or one first seen live, assigned here.
    pub fn group_id(&mut self, name: &str, built: Option<u32>) -> u32 {
        if let Some(g) = built {
            return g;
        }
        if let Some(&g) = self.new_group_ids.get(name) {
            return g;
        }
        let g = self.base_groups + self.new_groups.len() as u32;
        self.new_groups.push(name.to_string());
        self.new_group_ids.insert(name.to_string(), g);
        g
    }

    /// Sets the record of `item` (from [`Overlay::id_for`]).
    pub fn put(&mut self, item: u32, record: LiveItem) {
        if item >= self.base && !self.added.contains_key(&record.item.id) {
            self.added.insert(record.item.id.clone(), item);
        }
        let names = &mut self.fields;
        names.text.extend(record.item.text.keys().cloned());
        names.attributes.extend(record.item.attributes.keys().cloned());
        names.tags.extend(record.item.tags.keys().cloned());
        self.records.insert(item, Arc::new(record));
    }

    /// The `k` records nearest `query` (normalised under `Cosine`) by the
    /// vector `space` gives them, among those `accept` lets through, as
    /// (item, distance), nearest first, ties by id: an exact scan, as the
    /// overlay is small.
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        metric: Metric,
        space: fn(&LiveItem) -> Option<&[f32]>,
        accept: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let mut hits: Vec<(u32, f32)> = self
            .records()
            .filter_map(|(i, r)| space(r).filter(|v| v.len() == query.len()).map(|v| (i, v)))
            .filter(|&(i, _)| accept(i))
            .map(|(i, v)| (i, metric.distance(query, v)))
            .collect();
        hits.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        hits.truncate(k);
        hits
    }

    /// The name of a group first seen live.
    fn new_group_name(&self, group: u32) -> Option<&str> {
        let k = group.checked_sub(self.base_groups)?;
        self.new_groups.get(k as usize).map(String::as_str)
    }
}

/// `a` and `b` (each nearest first) merged: the `k` nearest, ties by id.
pub(crate) fn merge_nearest(mut a: Vec<(u32, f32)>, b: Vec<(u32, f32)>, k: usize) -> Vec<(u32, f32)> {
    if b.is_empty() {
        return a;
    }
    a.extend(b);
    a.sort_unstable_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
    a.truncate(k);
    a
}

/// The catalog as one request sees it: the built store under the overlay
/// of the moment the request started.
#[derive(Clone)]
pub(crate) struct Items {
    pub store: Arc<ItemStore>,
    pub overlay: Arc<Overlay>,
}

impl Items {
    /// The record of `item` (without its vector).
    #[inline]
    pub fn record(&self, item: u32) -> Option<&Item> {
        match self.overlay.record(item) {
            Some(r) => Some(&r.item),
            None => self.store.items.get(item as usize),
        }
    }

    /// Sorted tag ids of `item` (in the built tag table).
    #[inline]
    pub fn tags(&self, item: u32) -> &[u32] {
        match self.overlay.record(item) {
            Some(r) => &r.tags,
            None => self.store.tags.of(item),
        }
    }

    /// The group id of `item`, [`NONE`] when it has none.
    #[inline]
    pub fn group(&self, item: u32) -> u32 {
        match self.overlay.record(item) {
            Some(r) => r.group,
            None => self.store.group(item),
        }
    }

    /// The group key value of `item`, if it has one.
    pub fn group_name(&self, item: u32) -> Option<&str> {
        let g = self.group(item);
        if g == NONE {
            return None;
        }
        self.store
            .group_names
            .get(g as usize)
            .map(String::as_str)
            .or_else(|| self.overlay.new_group_name(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, group: u32) -> LiveItem {
        LiveItem {
            item: Item::new(id, id),
            tags: Vec::new(),
            group,
            learned: None,
            content: None,
        }
    }

    #[test]
    fn added_items_take_the_next_ids_and_keep_them() {
        let mut o = Overlay::new(10, 3);
        assert_eq!(o.id_for("a", None), (10, true));
        o.put(10, record("a", NONE));
        assert_eq!(o.id_for("a", None), (10, false), "an update of an added item keeps its id");
        assert_eq!(o.id_for("b", None), (11, true));
        assert_eq!(o.id_for("built", Some(4)), (4, false));
        o.put(4, record("built", NONE));
        assert_eq!((o.len(), o.added(), o.records_len()), (11, 1, 2));
        assert_eq!(o.changed_built_items().collect::<Vec<_>>(), [4]);
        assert!(o.shadows(4) && o.shadows(10) && !o.shadows(5));
        // Groups: a built name keeps its id, a new name gets the next.
        assert_eq!(o.group_id("x", Some(1)), 1);
        assert_eq!(o.group_id("new", None), 3);
        assert_eq!(o.group_id("new", None), 3);
        assert_eq!(o.new_group_name(3), Some("new"));
        assert_eq!(o.new_group_name(2), None);
    }
}
