//! Co-visitation from live plays: the same pairs the build counts (b played
//! d ≤ window plays after a in one session: a→b gains 1/d, b→a half that),
//! from sessions that start after the build, added to the built lists when
//! a request aggregates its context items.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Live pair weights by source item. Each item's list sits behind its own
/// `Arc`, so publishing a batch copies only the lists it touched.
#[derive(Clone, Debug, Default)]
pub(crate) struct LiveCovisit {
    lists: HashMap<u32, Arc<Vec<(u32, f32)>>>,
}

impl LiveCovisit {
    /// Adds `weight × live co-visitation` of every context item into `scores`.
    pub fn add_to(&self, context: &[(u32, f32)], scores: &mut HashMap<u32, f32>) {
        for &(item, weight) in context {
            if let Some(list) = self.lists.get(&item) {
                for &(to, w) in list.iter() {
                    *scores.entry(to).or_insert(0.0) += weight * w;
                }
            }
        }
    }

    fn add(&mut self, from: u32, to: u32, w: f32) {
        let list = Arc::make_mut(self.lists.entry(from).or_default());
        match list.iter_mut().find(|(j, _)| *j == to) {
            Some((_, x)) => *x += w,
            None => list.push((to, w)),
        }
    }

    /// Pairs counted so far (directed).
    #[cfg(test)]
    pub fn weight(&self, from: u32, to: u32) -> f32 {
        self.lists
            .get(&from)
            .and_then(|l| l.iter().find(|(j, _)| *j == to))
            .map_or(0.0, |x| x.1)
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
    pub fn play(&mut self, user: &str, item: u32, ts: i64, pairs: &mut LiveCovisit) {
        let (last_ts, recent) = self.users.entry(user.to_string()).or_insert_with(|| (ts, VecDeque::new()));
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
    use crate::retrieval::covisit::directed_pairs;

    #[test]
    fn live_sessions_count_the_pairs_the_build_counts() {
        let seq = [1u32, 2, 2, 3, 4, 1, 5];
        let mut live = LiveCovisit::default();
        let mut s = Sessions::new(1800, 3);
        for (t, &item) in seq.iter().enumerate() {
            s.play("u", item, 1000 + t as i64 * 60, &mut live);
        }
        let mut deduped = seq.to_vec();
        deduped.dedup();
        let mut built: HashMap<(u32, u32), f32> = HashMap::new();
        for (a, b, w) in directed_pairs(&[deduped], 3) {
            *built.entry((a, b)).or_default() += w;
            *built.entry((b, a)).or_default() += 0.5 * w;
        }
        for (&(a, b), &w) in &built {
            assert!((live.weight(a, b) - w).abs() < 1e-6, "{a}->{b}: {} vs {w}", live.weight(a, b));
        }
        let pairs: usize = live.lists.values().map(|l| l.len()).sum();
        assert_eq!(pairs, built.len());
    }

    #[test]
    fn a_gap_or_another_user_starts_a_new_session() {
        let mut live = LiveCovisit::default();
        let mut s = Sessions::new(1800, 5);
        s.play("u", 1, 0, &mut live);
        s.play("v", 2, 10, &mut live);
        s.play("u", 3, 4000, &mut live);
        assert_eq!(live.lists.len(), 0);
        s.play("u", 4, 4100, &mut live);
        assert_eq!(live.weight(3, 4), 1.0);
        let mut scores = HashMap::new();
        live.add_to(&[(3, 2.0)], &mut scores);
        assert_eq!(scores, HashMap::from([(4, 2.0)]));
    }
}
