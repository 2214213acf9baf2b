//! Catalog-wide BM25 statistics for a catalog split into shards.
//!
//! BM25 weighs a term by how rare it is in the index that scores it. A
//! shard that holds a quarter of the catalog scores with its own quarter's
//! statistics, so the same item gets a different score on each possible
//! shard, and the coordinator's merge by score is not the single index's
//! order. As Elasticsearch's `dfs_query_then_fetch` does, a coordinator
//! asks every shard for the statistics of the search's terms
//! ([`Engine::text_statistics`](crate::Engine::text_statistics)), adds them
//! up ([`TextStatistics::add`]), and sends the sum with the search
//! ([`Request::text_statistics`](crate::Request::text_statistics)): every
//! shard then scores as the whole catalog would.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The BM25 statistics of a search's terms over one index, or summed over
/// the shards of a catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextStatistics {
    /// Items in the text index (every shard's, once summed).
    pub docs: u64,
    /// Tokens of the searched text over all those items (a field's tokens
    /// count as often as its weight repeats them).
    pub tokens: u64,
    /// Items whose text holds each of the search's terms, by term as the
    /// index analyses it.
    pub doc_freq: BTreeMap<String, u64>,
}

impl TextStatistics {
    /// Adds another index's statistics of the same search: summed over
    /// every shard, the catalog's.
    pub fn add(&mut self, other: &TextStatistics) {
        self.docs = self.docs.saturating_add(other.docs);
        self.tokens = self.tokens.saturating_add(other.tokens);
        for (term, &n) in &other.doc_freq {
            let df = self.doc_freq.entry(term.clone()).or_insert(0);
            *df = df.saturating_add(n);
        }
    }

    /// These statistics cut to the terms of `local` (this index's own, of
    /// the same search), if they can be those of a catalog that includes
    /// this index: no fewer items, tokens or items per term than it has on
    /// its own, none of its terms missing, no term in more items than there
    /// are. Anything else is an error saying which.
    ///
    /// `slack` is how many documents this index took live since it opened
    /// (upserts): statistics gathered a moment before a write may count up
    /// to that many fewer items per figure (and fewer tokens) and are then
    /// raised to this index's own.
    pub(crate) fn checked_against(&self, local: &TextStatistics, slack: u64) -> Result<TextStatistics, String> {
        let tokens_short = self.tokens < local.tokens && slack == 0;
        if self.docs.saturating_add(slack) < local.docs || tokens_short {
            return Err(format!(
                "text_statistics count {} items and {} tokens; this index alone holds {} and {} (they must cover every shard, this one included)",
                self.docs, self.tokens, local.docs, local.tokens
            ));
        }
        let docs = self.docs.max(local.docs);
        let mut doc_freq = BTreeMap::new();
        for (t, &own) in &local.doc_freq {
            let Some(&n) = self.doc_freq.get(t) else {
                return Err(format!(
                    "text_statistics lack the term `{t}`: compute them from the same search text (Engine::text_statistics)"
                ));
            };
            if n.saturating_add(slack) < own || n > docs {
                return Err(format!(
                    "text_statistics give `{t}` {n} items: fewer than this index's {own}, or more than their {}",
                    self.docs
                ));
            }
            doc_freq.insert(t.clone(), n.max(own));
        }
        Ok(TextStatistics {
            docs,
            tokens: self.tokens.max(local.tokens),
            doc_freq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(docs: u64, tokens: u64, terms: &[(&str, u64)]) -> TextStatistics {
        TextStatistics {
            docs,
            tokens,
            doc_freq: terms.iter().map(|&(t, n)| (t.to_string(), n)).collect(),
        }
    }

    #[test]
    fn shards_add_up_to_the_catalog() {
        let mut all = stats(10, 100, &[("rain", 2), ("song", 5)]);
        all.add(&stats(30, 200, &[("rain", 1), ("song", 0)]));
        assert_eq!(all, stats(40, 300, &[("rain", 3), ("song", 5)]));
        let local = stats(10, 100, &[("rain", 2)]);
        // Cut to the search's terms.
        assert_eq!(all.checked_against(&local, 0).unwrap(), stats(40, 300, &[("rain", 3)]));
    }

    #[test]
    fn statistics_that_cannot_be_the_catalogs_are_refused() {
        let s = stats(10, 100, &[("rain", 2)]);
        let refused = |local: TextStatistics| s.checked_against(&local, 0).unwrap_err();
        assert!(refused(stats(11, 100, &[])).contains("11"));
        assert!(refused(stats(10, 101, &[])).contains("101"), "tokens below this index's own");
        assert!(refused(stats(10, 100, &[("snow", 0)])).contains("snow"));
        assert!(
            refused(stats(10, 100, &[("rain", 3)])).contains("rain"),
            "fewer items than this index's"
        );
        let over = stats(1, 1, &[("rain", 2)]);
        assert!(over
            .checked_against(&stats(1, 1, &[("rain", 1)]), 0)
            .unwrap_err()
            .contains("more than"));
    }

    #[test]
    fn statistics_gathered_just_before_live_writes_are_raised_to_this_indexs() {
        // Two documents written live since the coordinator asked.
        let local = stats(12, 130, &[("rain", 4)]);
        let given = stats(10, 100, &[("rain", 2)]);
        assert_eq!(given.checked_against(&local, 2).unwrap(), stats(12, 130, &[("rain", 4)]));
        assert!(given.checked_against(&local, 1).is_err(), "more than the live writes explain");
        assert!(given.checked_against(&local, 0).is_err());
    }
}
