//! Fusion: merge the retrievers' lists into one candidate set, keeping each
//! retriever's rank and score, ordered by weighted reciprocal rank fusion.

use std::collections::HashMap;

use crate::request::Retriever;

/// RRF's damping constant (Cormack et al. 2009): 60 is the usual choice and
/// makes the fused order insensitive to score scales.
pub(crate) const RRF_K: f32 = 60.0;
/// The least weight a retriever has in fusion: weight 0 makes its hits
/// count only below every weighted one, still in its own order (so a
/// retriever alone keeps its order whatever the serving plan's weights).
pub(crate) const MIN_WEIGHT: f32 = 1e-4;

/// One retriever's hit on a candidate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Hit {
    /// 0-based rank in that retriever's list.
    pub rank: u32,
    /// The retriever's raw score.
    pub score: f32,
}

/// A fused candidate.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Candidate {
    pub item: u32,
    /// Indexed by [`Retriever::index`].
    pub hits: [Option<Hit>; Retriever::ALL.len()],
    /// Weighted reciprocal-rank-fusion score.
    pub rrf: f32,
}

/// Merges ranked lists (already filtered) into at most `depth` candidates,
/// best weighted RRF first (`weights` by [`Retriever::index`]: a hit at
/// 0-based rank r adds `weight / (RRF_K + r + 1)`), ties by item id.
pub(crate) fn fuse(lists: &[(Retriever, &[(u32, f32)])], depth: usize, weights: &[f32; Retriever::ALL.len()]) -> Vec<Candidate> {
    let mut by_item: HashMap<u32, usize> = HashMap::new();
    let mut out: Vec<Candidate> = Vec::new();
    for &(retriever, list) in lists {
        for (rank, &(item, score)) in list.iter().enumerate() {
            let slot = *by_item.entry(item).or_insert_with(|| {
                out.push(Candidate {
                    item,
                    hits: [None; Retriever::ALL.len()],
                    rrf: 0.0,
                });
                out.len() - 1
            });
            let c = &mut out[slot];
            // A retriever lists an item once; if it repeats, its best rank counts.
            if c.hits[retriever.index()].is_none() {
                c.hits[retriever.index()] = Some(Hit { rank: rank as u32, score });
                c.rrf += weights[retriever.index()].max(MIN_WEIGHT) / (RRF_K + rank as f32 + 1.0);
            }
        }
    }
    out.sort_unstable_by(|a, b| b.rrf.total_cmp(&a.rrf).then(a.item.cmp(&b.item)));
    out.truncate(depth);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_found_by_several_retrievers_rise_and_keep_provenance() {
        let ann = [(1, 0.9), (2, 0.8), (3, 0.7)];
        let cov = [(3, 5.0), (4, 1.0)];
        let equal = [1.0; Retriever::ALL.len()];
        let fused = fuse(&[(Retriever::Ann, &ann), (Retriever::Covisit, &cov)], 10, &equal);
        assert_eq!(fused[0].item, 3);
        assert_eq!(fused[0].hits[Retriever::Ann.index()], Some(Hit { rank: 2, score: 0.7 }));
        assert_eq!(fused[0].hits[Retriever::Covisit.index()], Some(Hit { rank: 0, score: 5.0 }));
        assert_eq!(fused.len(), 4);
        assert_eq!(fuse(&[(Retriever::Ann, &ann)], 2, &equal).len(), 2);
        assert!(fuse(&[], 5, &equal).is_empty());
        // Weighted: co-visitation's first item outranks the item both found.
        let mut w = equal;
        w[Retriever::Covisit.index()] = 4.0;
        let fused = fuse(&[(Retriever::Ann, &ann), (Retriever::Covisit, &cov)], 10, &w);
        assert_eq!(fused.iter().map(|c| c.item).collect::<Vec<_>>(), [3, 4, 1, 2]);
        // Weight 0: below every weighted hit, in its own order.
        w[Retriever::Ann.index()] = 0.0;
        let fused = fuse(&[(Retriever::Ann, &ann), (Retriever::Covisit, &cov)], 10, &w);
        assert_eq!(fused.iter().map(|c| c.item).collect::<Vec<_>>(), [3, 4, 1, 2]);
        let alone = fuse(&[(Retriever::Ann, &ann)], 10, &w);
        assert_eq!(alone.iter().map(|c| c.item).collect::<Vec<_>>(), [1, 2, 3]);
    }
}
