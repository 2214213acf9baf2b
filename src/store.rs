//! The per-item store (`items.bin`): item records for display, tag sets,
//! group ids, popularity, co-visitation lists and the item ↔ vector-row map.
//! Every per-item table is a column indexed by the dense internal id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Item};
use crate::retrieval::covisit::CoVisitation;
use crate::retrieval::linear::LinearItemItem;
use crate::retrieval::popular::Popularity;
use crate::schema::Schema;

/// Marks "none" in u32 columns.
pub(crate) const NONE: u32 = u32::MAX;

/// Each item's set of (tag field, value) pairs, as sorted global tag ids.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct TagSets {
    /// `field \u{1f} value`, sorted; the position is the tag id.
    keys: Vec<String>,
    offsets: Vec<u64>,
    ids: Vec<u32>,
}

fn tag_key(field: &str, value: &str) -> String {
    format!("{field}\u{1f}{value}")
}

impl TagSets {
    fn build(catalog: &Catalog, fields: &[String]) -> TagSets {
        let mut keys: Vec<String> = catalog
            .items()
            .iter()
            .flat_map(|it| {
                fields
                    .iter()
                    .flat_map(move |f| it.tags.get(f).into_iter().flatten().map(move |v| tag_key(f, v)))
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut offsets = vec![0u64];
        let mut ids = Vec::new();
        for it in catalog.items() {
            let start = ids.len();
            for f in fields {
                for v in it.tags.get(f).into_iter().flatten() {
                    if let Ok(id) = keys.binary_search(&tag_key(f, v)) {
                        ids.push(id as u32);
                    }
                }
            }
            ids[start..].sort_unstable();
            let mut tail = ids.split_off(start);
            tail.dedup();
            ids.extend(tail);
            offsets.push(ids.len() as u64);
        }
        TagSets { keys, offsets, ids }
    }

    /// The id of tag `field = value`, if any item has it.
    pub fn id(&self, field: &str, value: &str) -> Option<u32> {
        self.keys.binary_search(&tag_key(field, value)).ok().map(|i| i as u32)
    }

    /// Sorted tag ids of `item`.
    pub fn of(&self, item: u32) -> &[u32] {
        let i = item as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => self.ids.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Whether `item` has tag `id`.
    pub fn has(&self, item: u32, id: u32) -> bool {
        self.of(item).binary_search(&id).is_ok()
    }

    fn validate(&self, n: usize) -> Result<(), String> {
        if self.offsets.len() != n + 1
            || self.offsets.first() != Some(&0)
            || self.offsets.windows(2).any(|w| w[0] > w[1])
            || self.offsets.last().copied() != Some(self.ids.len() as u64)
        {
            return Err("tag offsets are inconsistent".into());
        }
        if self.ids.iter().any(|&t| t as usize >= self.keys.len()) {
            return Err("tag id out of range".into());
        }
        Ok(())
    }
}

/// Everything the online path needs per item, apart from vectors (in the
/// ANN index) and text (in the lexical index).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct ItemStore {
    /// Catalog records without vectors, for display and ids.
    pub items: Vec<Item>,
    pub tags: TagSets,
    /// Group id per item (same artist/brand), [`NONE`] when the item has none.
    pub groups: Vec<u32>,
    /// The group key's value for each group id.
    pub group_names: Vec<String>,
    pub popularity: Popularity,
    pub covisit: CoVisitation,
    /// Linear item-item (EASE) weights.
    pub linear: LinearItemItem,
    /// ANN row of each item, [`NONE`] when the item has no vector.
    pub item_row: Vec<u32>,
    /// Item of each ANN row.
    pub row_item: Vec<u32>,
    /// Items whose vector the builder's cold-start rule gave (from their
    /// group's and tags' vectors), ascending: an item added live is placed
    /// from the others, as the build placed these.
    pub cold_filled: Vec<u32>,
}

impl ItemStore {
    pub fn build(
        catalog: &Catalog,
        schema: &Schema,
        popularity: Popularity,
        covisit: CoVisitation,
        linear: LinearItemItem,
        item_row: Vec<u32>,
        row_item: Vec<u32>,
    ) -> ItemStore {
        let mut group_ids: BTreeMap<String, u32> = BTreeMap::new();
        let groups = catalog
            .items()
            .iter()
            .map(|it| {
                let key = schema.group_key.as_ref().and_then(|g| it.attributes.get(g)).map(|a| a.to_string());
                match key {
                    Some(k) => {
                        let next = group_ids.len() as u32;
                        *group_ids.entry(k).or_insert(next)
                    }
                    None => NONE,
                }
            })
            .collect();
        let mut group_names = vec![String::new(); group_ids.len()];
        for (name, &id) in &group_ids {
            group_names[id as usize] = name.clone();
        }
        let items = catalog
            .items()
            .iter()
            .map(|it| Item {
                vector: None,
                ..it.clone()
            })
            .collect();
        ItemStore {
            items,
            tags: TagSets::build(catalog, &schema.tag_fields),
            groups,
            group_names,
            popularity,
            covisit,
            linear,
            item_row,
            row_item,
            cold_filled: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn group(&self, item: u32) -> u32 {
        self.groups.get(item as usize).copied().unwrap_or(NONE)
    }

    pub fn row(&self, item: u32) -> Option<u32> {
        self.item_row.get(item as usize).copied().filter(|&r| r != NONE)
    }

    pub fn item_of_row(&self, row: u32) -> Option<u32> {
        self.row_item.get(row as usize).copied()
    }

    /// Checks every cross-reference after decoding, so lookups cannot go out
    /// of bounds and ids map both ways.
    pub fn validate(&self, ann_rows: usize) -> Result<(), String> {
        let n = self.items.len();
        if self.groups.len() != n || self.item_row.len() != n {
            return Err("per-item columns differ in length".into());
        }
        if self.groups.iter().any(|&g| g != NONE && g as usize >= self.group_names.len()) {
            return Err("group id out of range".into());
        }
        if self.row_item.len() != ann_rows {
            return Err(format!("{} vector rows mapped, the ANN index has {ann_rows}", self.row_item.len()));
        }
        for (row, &item) in self.row_item.iter().enumerate() {
            if self.item_row.get(item as usize).copied() != Some(row as u32) {
                return Err(format!("vector row {row} and item {item} do not map to each other"));
            }
        }
        if self.item_row.iter().filter(|&&r| r != NONE).count() != ann_rows {
            return Err("items claim vector rows the ANN index does not have".into());
        }
        if self.cold_filled.windows(2).any(|w| w[0] >= w[1]) || self.cold_filled.last().is_some_and(|&i| i as usize >= n) {
            return Err("cold-start items are not ascending item ids".into());
        }
        self.tags.validate(n)?;
        self.popularity.validate(n)?;
        self.covisit.validate(n)?;
        self.linear.validate(n)?;
        Ok(())
    }
}
