//! EASE (Steck, "Embarrassingly Shallow Autoencoders", WWW 2019), the
//! linear item-item baseline: `B = I - P · diag(1 / diag(P))` with
//! `P = (XᵀX + λI)⁻¹` over the binary user × item play matrix, and a user's
//! score for an item the sum of `B`'s rows of the items they played. A
//! dense `n × n` inverse, so only for catalogs up to [`MAX_ITEMS`].

use std::collections::HashSet;

use crate::events::{EventKind, Events};
use crate::retrieval::linear::invert_spd;

/// L2 weight of the reference figures in issue 13 (the harness chooses λ
/// on the validation requests instead).
pub const LAMBDA: f64 = 500.0;
/// Largest catalog the dense inverse is computed for (n³ work, 8·n² bytes).
pub const MAX_ITEMS: usize = 3_000;

/// A fitted EASE model: the dense item-item weight matrix, row-major.
pub struct Ease {
    n: usize,
    weights: Vec<f32>,
}

impl Ease {
    /// Fits on the plays in `events` over `n` items; `None` above [`MAX_ITEMS`].
    pub fn fit(n: usize, events: &Events, lambda: f64) -> Option<Ease> {
        if n > MAX_ITEMS {
            return None;
        }
        let mut per_user: Vec<HashSet<u32>> = vec![HashSet::new(); events.users().len()];
        for e in events
            .events()
            .iter()
            .filter(|e| e.kind == EventKind::Play && (e.item as usize) < n)
        {
            if let Some(set) = per_user.get_mut(e.user as usize) {
                set.insert(e.item);
            }
        }
        let mut gram = vec![0f64; n * n];
        for set in &per_user {
            for &i in set {
                for &j in set {
                    gram[i as usize * n + j as usize] += 1.0;
                }
            }
        }
        for i in 0..n {
            gram[i * n + i] += lambda;
        }
        invert_spd(&mut gram, n);
        let p = gram;
        let mut weights = vec![0f32; n * n];
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    weights[i * n + j] = (-p[i * n + j] / p[j * n + j]) as f32;
                }
            }
        }
        Some(Ease { n, weights })
    }

    /// The `k` best items for a user who has `history`, never one of
    /// `history` or for which `excluded` is true.
    pub fn recommend(&self, history: &[u32], k: usize, excluded: impl Fn(u32) -> bool) -> Vec<u32> {
        let seen: HashSet<u32> = history.iter().copied().filter(|&h| (h as usize) < self.n).collect();
        let mut scores = vec![0f32; self.n];
        for &h in &seen {
            let row = &self.weights[h as usize * self.n..(h as usize + 1) * self.n];
            scores.iter_mut().zip(row).for_each(|(s, w)| *s += w);
        }
        let mut ranked: Vec<(u32, f32)> = (0..self.n as u32)
            .filter(|j| !seen.contains(j) && !excluded(*j))
            .map(|j| (j, scores[j as usize]))
            .collect();
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
    fn items_played_together_recommend_each_other() {
        let catalog = Catalog::new((0..4).map(|i| Item::new(format!("i{i}"), "t")).collect()).unwrap();
        // Users play {0, 1} or {2, 3}.
        let events: Vec<Event> = (0..20u32)
            .flat_map(|u| {
                let pair = if u % 2 == 0 { [0, 1] } else { [2, 3] };
                pair.into_iter().enumerate().map(move |(t, item)| Event {
                    user: u,
                    item,
                    ts: i64::from(u) * 10 + t as i64,
                    kind: EventKind::Play,
                    query: None,
                    session: None,
                })
            })
            .collect();
        let users = (0..20).map(|u| format!("u{u}")).collect();
        let events = Events::from_events(users, events, &catalog).unwrap();
        let ease = Ease::fit(4, &events, 1.0).unwrap();
        assert_eq!(ease.recommend(&[0], 1, |_| false), vec![1]);
        assert_eq!(ease.recommend(&[3], 1, |_| false), vec![2]);
        let without = ease.recommend(&[0], 3, |j| j == 1);
        assert_eq!(without.len(), 2);
        assert!(!without.contains(&1) && !without.contains(&0), "{without:?}");
        assert!(Ease::fit(MAX_ITEMS + 1, &events, 1.0).is_none());
    }
}
