//! A bounded cache of query embeddings, keyed by the query text with its
//! whitespace normalised: search traffic repeats itself, and encoding a
//! query is most of a search's time.
//!
//! Eviction is generational (two hash maps, as in a two-generation or
//! "segmented" cache): entries go into the young map; when it holds half
//! the capacity, the old map is dropped and the young one becomes old; a hit
//! in the old map moves the entry back to the young one. Every operation is
//! O(1), the bound holds exactly, and an entry used at least once per half
//! capacity of new queries is never evicted: close to LRU, without its
//! linked list.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Default number of cached queries: 4,096 entries of 384 dimensions are
/// about 6.6 MB with their keys.
pub const DEFAULT_QUERY_CACHE: usize = 4_096;

/// What the query-embedding cache has done since the engine opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueryCacheStats {
    /// Most entries it holds (0: caching is off).
    pub capacity: usize,
    /// Entries it holds now.
    pub entries: usize,
    /// Bytes held by the entries (vectors and keys, not the maps' overhead).
    pub bytes: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to encode.
    pub misses: u64,
}

impl QueryCacheStats {
    /// Share of lookups answered from the cache (0 before any).
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

#[derive(Default)]
struct Generations {
    young: HashMap<String, Arc<[f32]>>,
    old: HashMap<String, Arc<[f32]>>,
    bytes: usize,
}

fn size(key: &str, v: &[f32]) -> usize {
    key.len() + std::mem::size_of_val(v)
}

impl Generations {
    fn insert(&mut self, capacity: usize, key: String, v: Arc<[f32]>) {
        if self.young.len() >= capacity / 2 {
            let dropped = std::mem::replace(&mut self.old, std::mem::take(&mut self.young));
            self.bytes -= dropped.iter().map(|(k, v)| size(k, v)).sum::<usize>();
        }
        self.bytes += size(&key, &v);
        if let Some(prev) = self.young.insert(key.clone(), v) {
            self.bytes -= size(&key, &prev);
        }
    }
}

/// The cache itself: shared by every request of one engine.
pub(crate) struct QueryCache {
    capacity: usize,
    maps: Mutex<Generations>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The cache key: the text with runs of whitespace made one space and the
/// ends trimmed. The tokenizer splits on whitespace first, so texts that
/// differ only there have the same word pieces and the same vector.
pub(crate) fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl QueryCache {
    /// A cache of at most `capacity` queries, rounded up to an even number
    /// (each generation holds half; 0 caches nothing).
    pub fn new(capacity: usize) -> QueryCache {
        QueryCache {
            capacity: capacity.div_ceil(2) * 2,
            maps: Mutex::new(Generations::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The vector of `text`: from the cache, or from `encode` (then cached).
    /// An error from `encode` is returned and nothing is cached.
    pub fn get_or_encode<E>(&self, text: &str, encode: impl FnOnce() -> Result<Vec<f32>, E>) -> Result<Arc<[f32]>, E> {
        if self.capacity == 0 {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return encode().map(Arc::from);
        }
        let key = normalise(text);
        if let Ok(mut maps) = self.maps.lock() {
            let found = maps.young.get(&key).cloned();
            let found = found.or_else(|| {
                // A hit in the old generation moves back to the young one.
                let v = maps.old.remove(&key)?;
                maps.bytes -= size(&key, &v);
                maps.insert(self.capacity, key.clone(), v.clone());
                Some(v)
            });
            if let Some(v) = found {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(v);
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        // Encoded outside the lock: concurrent misses of one text may both
        // encode it, which costs time, never correctness.
        let v: Arc<[f32]> = encode()?.into();
        if let Ok(mut maps) = self.maps.lock() {
            maps.insert(self.capacity, key, v.clone());
        }
        Ok(v)
    }

    /// What the cache holds and has done.
    pub fn stats(&self) -> QueryCacheStats {
        let (entries, bytes) = self.maps.lock().map(|m| (m.young.len() + m.old.len(), m.bytes)).unwrap_or_default();
        QueryCacheStats {
            capacity: self.capacity,
            entries,
            bytes,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(x: f32) -> Result<Vec<f32>, ()> {
        Ok(vec![x; 4])
    }

    #[test]
    fn repeats_and_whitespace_variants_hit_and_errors_are_not_cached() {
        let cache = QueryCache::new(8);
        let a = cache.get_or_encode("calm  piano", || vector(1.0)).unwrap();
        let b = cache
            .get_or_encode(" calm piano\t", || -> Result<Vec<f32>, ()> { panic!("encoded twice") })
            .unwrap();
        assert_eq!(a, b);
        assert!(cache.get_or_encode("broken", || -> Result<Vec<f32>, ()> { Err(()) }).is_err());
        assert_eq!(
            cache.get_or_encode("broken", || vector(2.0)).unwrap()[0],
            2.0,
            "a failed encode is not cached"
        );
        let s = cache.stats();
        assert_eq!((s.hits, s.misses, s.entries), (1, 3, 2));
        assert_eq!(s.bytes, "calm piano".len() + "broken".len() + 2 * 16);
        assert!((s.hit_rate() - 0.25).abs() < 1e-12);
        // Case is kept: a cased model gives other vectors.
        cache.get_or_encode("Calm piano", || vector(3.0)).unwrap();
        assert_eq!(cache.stats().misses, 4);
    }

    #[test]
    fn stays_within_capacity_and_keeps_what_is_used() {
        let cache = QueryCache::new(10);
        cache.get_or_encode("hot", || vector(0.0)).unwrap();
        for i in 0..1_000 {
            cache.get_or_encode(&format!("q{i}"), || vector(i as f32)).unwrap();
            // A query asked once per few new ones is never evicted.
            if i % 3 == 0 {
                cache
                    .get_or_encode("hot", || -> Result<Vec<f32>, ()> { panic!("hot query evicted at {i}") })
                    .unwrap();
            }
            let s = cache.stats();
            assert!(s.entries <= 10, "{s:?}");
            let maps = cache.maps.lock().unwrap();
            assert_eq!(s.bytes, maps.young.iter().chain(&maps.old).map(|(k, v)| size(k, v)).sum::<usize>());
        }
        assert_eq!(QueryCache::new(7).stats().capacity, 8);
        let off = QueryCache::new(0);
        off.get_or_encode("x", || vector(1.0)).unwrap();
        off.get_or_encode("x", || vector(1.0)).unwrap();
        assert_eq!((off.stats().hits, off.stats().misses, off.stats().entries), (0, 2, 0));
    }
}
