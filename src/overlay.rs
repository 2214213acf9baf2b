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
}

/// The two vector spaces a record may have a vector in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Space {
    /// The learned space, for an item without a built vector there: the
    /// catalog's vector or the builder's cold-start rule.
    Learned,
    /// The content space (normalised), on indexes with one.
    Content,
}

/// The records' vectors in one space, contiguous, so a scan streams
/// through memory rather than chasing one allocation per record.
#[derive(Clone, Debug, Default)]
struct Vectors {
    dim: usize,
    items: Vec<u32>,
    data: Vec<f32>,
    /// Where each item's vector is.
    slot: HashMap<u32, usize>,
}

impl Vectors {
    fn get(&self, item: u32) -> Option<&[f32]> {
        let &s = self.slot.get(&item)?;
        self.data.get(s * self.dim..(s + 1) * self.dim)
    }

    /// Sets (or with `None`, removes) the vector of `item`. A vector of
    /// another dimension than the first one's is not kept (the callers
    /// checked dimensions already).
    fn put(&mut self, item: u32, v: Option<&[f32]>) {
        if self.items.is_empty() {
            if let Some(v) = v {
                self.dim = v.len();
            }
        }
        let v = v.filter(|v| v.len() == self.dim && self.dim > 0);
        match (self.slot.get(&item).copied(), v) {
            (Some(s), Some(v)) => self.data[s * self.dim..(s + 1) * self.dim].copy_from_slice(v),
            (None, Some(v)) => {
                self.slot.insert(item, self.items.len());
                self.items.push(item);
                self.data.extend_from_slice(v);
            }
            (Some(s), None) => {
                // The last vector moves into the freed slot.
                let last = self.items.len() - 1;
                self.items.swap_remove(s);
                if s != last {
                    let (head, tail) = self.data.split_at_mut(last * self.dim);
                    head[s * self.dim..(s + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
                    self.slot.insert(self.items[s], s);
                }
                self.data.truncate(last * self.dim);
                self.slot.remove(&item);
            }
            (None, None) => {}
        }
    }

    /// See [`Overlay::nearest`].
    fn nearest(&self, query: &[f32], k: usize, metric: Metric, accept: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        if k == 0 || self.dim == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let mut all: Vec<(u32, f32)> = self
            .items
            .iter()
            .zip(self.data.chunks_exact(self.dim))
            .map(|(&i, v)| (i, metric.distance(query, v)))
            .collect();
        let order = |a: &(u32, f32), b: &(u32, f32)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
        // Distances first, the filter only on the nearest: most records
        // pass, so a few times `k` of them nearly always hold `k` that do.
        let mut out = Vec::with_capacity(k);
        let mut from = 0;
        let mut take = k.saturating_mul(4);
        while from < all.len() && out.len() < k {
            let rest = &mut all[from..];
            let m = take.min(rest.len());
            if m < rest.len() {
                rest.select_nth_unstable_by(m - 1, order);
            }
            rest[..m].sort_unstable_by(order);
            out.extend(rest[..m].iter().copied().filter(|&(i, _)| accept(i)).take(k - out.len()));
            from += m;
            take = take.saturating_mul(4);
        }
        out
    }
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
    learned: Vectors,
    content: Vectors,
    /// One bit per item id: whether it has a record. Every filter check
    /// asks, for built items too, and a bit is cheaper than a hash probe.
    marked: Vec<u64>,
    /// Field names the records use.
    pub fields: FieldNames,
    /// Records put, counting each change of an item again: the documents
    /// the text index took live (it counts a replaced one until it merges).
    documents: u64,
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

    /// Documents the text index took live (see the field).
    pub fn documents(&self) -> u64 {
        self.documents
    }

    /// Live records (added and changed items).
    pub fn records_len(&self) -> usize {
        self.records.len()
    }

    /// The live record of `item`, if it was upserted.
    #[inline]
    pub fn record(&self, item: u32) -> Option<&LiveItem> {
        if !self.shadows(item) {
            return None;
        }
        self.records.get(&item).map(Arc::as_ref)
    }

    /// Whether `item` has a live record: a built item whose built text and
    /// content vector no longer hold.
    #[inline]
    pub fn shadows(&self, item: u32) -> bool {
        self.marked.get(item as usize / 64).is_some_and(|w| w & (1 << (item % 64)) != 0)
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

    /// The vector of `item`'s record in `space`.
    #[inline]
    pub fn vector(&self, space: Space, item: u32) -> Option<&[f32]> {
        if self.records.is_empty() {
            return None;
        }
        match space {
            Space::Learned => self.learned.get(item),
            Space::Content => self.content.get(item),
        }
    }

    /// Sets the record of `item` (from [`Overlay::id_for`]) and its vectors.
    pub fn put(&mut self, item: u32, record: LiveItem, learned: Option<&[f32]>, content: Option<&[f32]>) {
        self.learned.put(item, learned);
        self.content.put(item, content);
        if item >= self.base && !self.added.contains_key(&record.item.id) {
            self.added.insert(record.item.id.clone(), item);
        }
        let word = item as usize / 64;
        if self.marked.len() <= word {
            self.marked.resize(word + 1, 0);
        }
        self.marked[word] |= 1 << (item % 64);
        let names = &mut self.fields;
        names.text.extend(record.item.text.keys().cloned());
        names.attributes.extend(record.item.attributes.keys().cloned());
        names.tags.extend(record.item.tags.keys().cloned());
        self.records.insert(item, Arc::new(record));
        self.documents += 1;
    }

    /// The `k` records nearest `query` (normalised under `Cosine`) in
    /// `space`, among those `accept` lets through, as (item, distance),
    /// nearest first, ties by id: an exact scan, as the overlay is small.
    pub fn nearest(&self, space: Space, query: &[f32], k: usize, metric: Metric, accept: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        match space {
            Space::Learned => self.learned.nearest(query, k, metric, accept),
            Space::Content => self.content.nearest(query, k, metric, accept),
        }
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
        }
    }

    #[test]
    fn added_items_take_the_next_ids_and_keep_them() {
        let mut o = Overlay::new(10, 3);
        assert_eq!(o.id_for("a", None), (10, true));
        o.put(10, record("a", NONE), None, None);
        assert_eq!(o.id_for("a", None), (10, false), "an update of an added item keeps its id");
        assert_eq!(o.id_for("b", None), (11, true));
        assert_eq!(o.id_for("built", Some(4)), (4, false));
        o.put(4, record("built", NONE), None, None);
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

    #[test]
    fn the_scan_finds_the_nearest_accepted_vectors_and_follows_changes() {
        let mut o = Overlay::new(0, 0);
        // 100 records on a line: record i at (i, 1).
        for i in 0..100u32 {
            o.put(i, record(&format!("r{i}"), NONE), Some(&[i as f32, 1.0]), None);
        }
        let q = [10.0, 1.0];
        let near: Vec<u32> = o.nearest(Space::Learned, &q, 3, Metric::L2, |_| true).iter().map(|h| h.0).collect();
        assert_eq!(near, [10, 9, 11], "ties by id");
        // A filter that rejects all the nearest ones still fills k.
        let far: Vec<u32> = o
            .nearest(Space::Learned, &q, 2, Metric::L2, |i| i >= 90)
            .iter()
            .map(|h| h.0)
            .collect();
        assert_eq!(far, [90, 91]);
        // Moved, and removed: the scan follows.
        o.put(95, record("r95", NONE), Some(&[10.0, 1.0]), None);
        o.put(10, record("r10", NONE), None, None);
        let near: Vec<u32> = o.nearest(Space::Learned, &q, 2, Metric::L2, |_| true).iter().map(|h| h.0).collect();
        assert_eq!(near, [95, 9]);
        assert_eq!(o.vector(Space::Learned, 10), None);
        assert_eq!(o.vector(Space::Learned, 95), Some(&[10.0, 1.0][..]));
        assert_eq!(o.vector(Space::Learned, 99), Some(&[99.0, 1.0][..]), "the moved slot");
        assert_eq!(o.nearest(Space::Content, &q, 2, Metric::L2, |_| true), []);
    }
}
