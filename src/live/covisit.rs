//! Co-visitation from live plays: the same pairs the build counts (b played
//! d ≤ window plays after a in one session: a→b gains 1/d, b→a half that),
//! from sessions that start after the build, added to the built lists when
//! a request aggregates its context items.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// What requests read of the live pairs: each touched item's strongest
/// `keep` live neighbours (the built lists keep as many), each list behind
/// its own `Arc`, so publishing a batch copies only the lists it changed.
#[derive(Clone, Debug, Default)]
pub(crate) struct LiveCovisit {
    tops: HashMap<u32, Arc<Vec<(u32, f32)>>>,
}

impl LiveCovisit {
    /// Adds `weight × live co-visitation` of every context item into `scores`.
    pub fn add_to(&self, context: &[(u32, f32)], scores: &mut HashMap<u32, f32>) {
        for &(item, weight) in context {
            if let Some(list) = self.tops.get(&item) {
                for &(to, w) in list.iter() {
                    *scores.entry(to).or_insert(0.0) += weight * w;
                }
            }
        }
    }
}

/// Every live pair weight (the writer's side), and the items whose lists
/// changed since the last publication.
#[derive(Debug)]
pub(crate) struct PairCounts {
    weights: HashMap<u32, HashMap<u32, f32>>,
    touched: HashSet<u32>,
    keep: usize,
}

impl PairCounts {
    /// Counts that publish each item's `keep` strongest live neighbours.
    pub fn new(keep: usize) -> PairCounts {
        PairCounts {
            weights: HashMap::new(),
            touched: HashSet::new(),
            keep: keep.max(1),
        }
    }

    fn add(&mut self, from: u32, to: u32, w: f32) {
        *self.weights.entry(from).or_default().entry(to).or_insert(0.0) += w;
        self.touched.insert(from);
    }

    /// Writes the lists of the items touched since the last call into `view`.
    pub fn publish(&mut self, view: &mut LiveCovisit) {
        for item in self.touched.drain() {
            let Some(all) = self.weights.get(&item) else {
                continue;
            };
            let mut top: Vec<(u32, f32)> = all.iter().map(|(&j, &w)| (j, w)).collect();
            let by_weight = |x: &(u32, f32), y: &(u32, f32)| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0));
            if top.len() > self.keep {
                top.select_nth_unstable_by(self.keep - 1, by_weight);
                top.truncate(self.keep);
            }
            top.sort_unstable_by(by_weight);
            view.tops.insert(item, Arc::new(top));
        }
    }

    /// The live weight of the pair `from → to`.
    #[cfg(test)]
    pub fn weight(&self, from: u32, to: u32) -> f32 {
        self.weights.get(&from).and_then(|m| m.get(&to)).copied().unwrap_or(0.0)
    }
}

/// Each user's current session: when they last played, and their last
/// `window` distinct-in-a-row plays, most recent last.
#[derive(Debug)]
pub(crate) struct Sessions {
    gap_secs: i64,
    window: usize,
    users: HashMap<String, (i64, VecDeque<u32>)>,
}

impl Sessions {
    pub fn new(gap_secs: i64, window: usize) -> Sessions {
        Sessions {
            gap_secs,
            window,
            users: HashMap::new(),
        }
    }

    /// Counts `user` playing `item` at `ts` into `pairs`. A play more than
    /// the session gap after the user's last one (or before it: events out
    /// of order) starts a new session; an immediate repeat adds nothing.
    pub fn play(&mut self, user: &str, item: u32, ts: i64, pairs: &mut PairCounts) {
        // Looked up before inserting: most plays are by users already seen.
        if !self.users.contains_key(user) {
            self.users.insert(user.to_string(), (ts, VecDeque::new()));
        }
        let Some((last_ts, recent)) = self.users.get_mut(user) else {
            return;
        };
        if ts < *last_ts || ts - *last_ts > self.gap_secs {
            recent.clear();
        }
        *last_ts = ts;
        if recent.back() == Some(&item) {
            return;
        }
        for (d, &a) in recent.iter().rev().enumerate() {
            if a != item {
                let w = 1.0 / (d + 1) as f32;
                pairs.add(a, item, w);
                pairs.add(item, a, 0.5 * w);
            }
        }
        recent.push_back(item);
        if recent.len() > self.window {
            recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::covisit::{pair_counts, pair_weights};

    #[test]
    fn live_sessions_count_the_pairs_the_build_counts() {
        let seq = [1u32, 2, 2, 3, 4, 1, 5];
        let mut live = PairCounts::new(100);
        let mut s = Sessions::new(1800, 3);
        for (t, &item) in seq.iter().enumerate() {
            s.play("u", item, 1000 + t as i64 * 60, &mut live);
        }
        let mut deduped = seq.to_vec();
        deduped.dedup();
        let mut built: HashMap<(u32, u32), f32> = HashMap::new();
        for (a, b, w) in pair_weights(&pair_counts(&[deduped], 3)) {
            *built.entry((a, b)).or_default() += w;
            *built.entry((b, a)).or_default() += 0.5 * w;
        }
        for (&(a, b), &w) in &built {
            assert!((live.weight(a, b) - w).abs() < 1e-6, "{a}->{b}: {} vs {w}", live.weight(a, b));
        }
        let pairs: usize = live.weights.values().map(|l| l.len()).sum();
        assert_eq!(pairs, built.len());
    }

    #[test]
    fn a_gap_or_another_user_starts_a_new_session() {
        let mut live = PairCounts::new(100);
        let mut s = Sessions::new(1800, 5);
        s.play("u", 1, 0, &mut live);
        s.play("v", 2, 10, &mut live);
        s.play("u", 3, 4000, &mut live);
        assert_eq!(live.weights.len(), 0);
        s.play("u", 4, 4100, &mut live);
        assert_eq!(live.weight(3, 4), 1.0);
        let mut view = LiveCovisit::default();
        live.publish(&mut view);
        let mut scores = HashMap::new();
        view.add_to(&[(3, 2.0)], &mut scores);
        assert_eq!(scores, HashMap::from([(4, 2.0)]));
    }

    #[test]
    fn requests_read_each_items_strongest_live_neighbours() {
        let mut live = PairCounts::new(2);
        for (to, w) in [(10, 1.0), (11, 3.0), (12, 2.0), (13, 0.5)] {
            live.add(1, to, w);
        }
        let mut view = LiveCovisit::default();
        live.publish(&mut view);
        assert_eq!(*view.tops[&1], vec![(11, 3.0), (12, 2.0)]);
        live.add(1, 13, 5.0);
        let before = view.clone();
        live.publish(&mut view);
        assert_eq!(*view.tops[&1], vec![(13, 5.5), (11, 3.0)]);
        assert_eq!(*before.tops[&1], vec![(11, 3.0), (12, 2.0)], "a published view never changes");
    }
}
