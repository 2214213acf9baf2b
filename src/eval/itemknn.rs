//! ItemKNN, the classic neighbourhood baseline: cosine similarity between
//! items' user sets, the 100 nearest neighbours kept per item, and a
//! user's score for an item the sum of its similarities to the user's items
//! (as RecBole's ItemKNN with shrink 0).

use std::collections::{HashMap, HashSet};

use crate::events::{EventKind, Events};
use crate::sparse::Csr;

/// Neighbours kept per item (RecBole's default `k`).
pub const NEIGHBOURS: usize = 100;

/// Item–item cosine neighbourhoods.
pub struct ItemKnn {
    sims: Csr,
}

impl ItemKnn {
    /// Fits on the plays in `events` over `n` items.
    pub fn fit(n: usize, events: &Events) -> ItemKnn {
        let mut per_user: Vec<HashSet<u32>> = vec![HashSet::new(); events.users().len()];
        for e in events.events().iter().filter(|e| e.kind == EventKind::Play) {
            if let Some(set) = per_user.get_mut(e.user as usize) {
                set.insert(e.item);
            }
        }
        let mut count = vec![0f32; n];
        let mut pairs = Vec::new();
        for set in &per_user {
            let mut items: Vec<u32> = set.iter().copied().filter(|&i| (i as usize) < n).collect();
            items.sort_unstable();
            for (a, &i) in items.iter().enumerate() {
                count[i as usize] += 1.0;
                for &j in &items[a + 1..] {
                    pairs.push((i, j, 1.0));
                    pairs.push((j, i, 1.0));
                }
            }
        }
        let co = Csr::from_triplets(n, n, pairs);
        let rows = (0..n)
            .map(|i| {
                let (cols, vals) = co.row(i);
                let mut row: Vec<(u32, f32)> = cols
                    .iter()
                    .zip(vals)
                    .map(|(&j, &c)| (j, c / (count[i] * count[j as usize]).sqrt().max(1e-12)))
                    .collect();
                row.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                row.truncate(NEIGHBOURS);
                row
            })
            .collect();
        ItemKnn {
            sims: Csr::from_rows(rows),
        }
    }

    /// The `k` best items for a user who has `history`, never one of
    /// `history` or for which `excluded` is true.
    pub fn recommend(&self, history: &[u32], k: usize, excluded: impl Fn(u32) -> bool) -> Vec<u32> {
        let seen: HashSet<u32> = history.iter().copied().collect();
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for &h in &seen {
            let (cols, vals) = self.sims.row(h as usize);
            for (&j, &s) in cols.iter().zip(vals) {
                *scores.entry(j).or_insert(0.0) += s;
            }
        }
        let mut ranked: Vec<(u32, f32)> = scores.into_iter().filter(|(j, _)| !seen.contains(j) && !excluded(*j)).collect();
        ranked.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.into_iter().take(k).map(|(j, _)| j).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Item};
    use crate::events::Event;

    #[test]
    fn co_consumed_items_are_neighbours() {
        let catalog = Catalog::new((0..4).map(|i| Item::new(format!("i{i}"), "t")).collect()).unwrap();
        let play = |user, item| Event {
            user,
            item,
            ts: 1,
            kind: EventKind::Play,
            query: None,
            session: None,
        };
        // Users 0 and 1 take items 0 and 1; user 2 takes 2 and 3.
        let ev = Events::from_events(
            vec!["a".into(), "b".into(), "c".into()],
            vec![play(0, 0), play(0, 1), play(1, 0), play(1, 1), play(2, 2), play(2, 3)],
            &catalog,
        )
        .unwrap();
        let knn = ItemKnn::fit(4, &ev);
        assert_eq!(knn.recommend(&[0], 2, |_| false), vec![1]);
        assert!(knn.recommend(&[0], 2, |j| j == 1).is_empty());
    }
}
