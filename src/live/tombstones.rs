//! Tombstones: which items of an index are deleted, one bit each.

/// The deleted items of an index, by internal id: one bit each.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tombstones {
    bits: Vec<u64>,
    /// Items of the index (the bits past it stay clear).
    len: usize,
    pub(super) count: usize,
}

impl Tombstones {
    pub(super) fn sized(items: usize) -> Tombstones {
        Tombstones {
            bits: vec![0; items.div_ceil(64)],
            len: items,
            count: 0,
        }
    }

    /// Makes room for items up to `items` (added live), not deleted.
    pub(super) fn grow(&mut self, items: usize) {
        if items > self.len {
            self.bits.resize(items.div_ceil(64), 0);
            self.len = items;
        }
    }

    /// Un-deletes `item` (upserted again); false if it was not deleted.
    pub(super) fn remove(&mut self, item: u32) -> bool {
        if !self.contains(item) {
            return false;
        }
        if let Some(w) = self.bits.get_mut(item as usize / 64) {
            *w &= !(1 << (item % 64));
            self.count -= 1;
        }
        true
    }

    /// Whether `item` is deleted.
    #[inline]
    pub fn contains(&self, item: u32) -> bool {
        self.bits.get(item as usize / 64).is_some_and(|w| w & (1 << (item % 64)) != 0)
    }

    /// Marks `item` deleted; false if it already was (or is out of range).
    pub(super) fn insert(&mut self, item: u32) -> bool {
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
}
