//! Popularity: play counts, skip counts and recent plays per item, and the
//! most-played list that serves cold-start contexts.

use serde::{Deserialize, Serialize};

use crate::events::{EventKind, Events};

/// Window counted as "recent" for the trend feature: the last 30 days of the log.
pub const RECENT_SECS: i64 = 30 * 24 * 3600;

/// Per-item interaction counts and the items ordered by plays.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Popularity {
    plays: Vec<u32>,
    skips: Vec<u32>,
    recent_plays: Vec<u32>,
    /// Mean time of each item's plays, on [0, 1] from the log's first event
    /// to its last; NaN-free, 0 for never played items (see `played_at`).
    mean_time: Vec<f32>,
    /// Items by plays, most first, ties by id.
    order: Vec<u32>,
    max_plays: u32,
}

/// The per-item log counts popularity is built from. Integers, so every
/// producer of them (this build, or a Spark job writing log artefacts)
/// agrees exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PlayCounts {
    /// Plays per item.
    pub plays: Vec<u64>,
    /// Skips per item.
    pub skips: Vec<u64>,
    /// Plays in the last [`RECENT_SECS`] of the log (to `last_ts`).
    pub recent_plays: Vec<u64>,
    /// Per item, the sum over its plays of `ts − first_ts`.
    pub play_seconds: Vec<u64>,
    /// Time of the log's first event of any kind (0 for an empty log).
    pub first_ts: i64,
    /// Time of the log's last event of any kind (0 for an empty log).
    pub last_ts: i64,
}

impl PlayCounts {
    /// Counts `events` over `n` items.
    pub fn count(n: usize, events: &Events) -> PlayCounts {
        let first_ts = events.events().first().map_or(0, |e| e.ts);
        let last_ts = events.last_ts().unwrap_or(0);
        let mut c = PlayCounts {
            plays: vec![0; n],
            skips: vec![0; n],
            recent_plays: vec![0; n],
            play_seconds: vec![0; n],
            first_ts,
            last_ts,
        };
        let recent_from = last_ts - RECENT_SECS;
        for e in events.events() {
            let i = e.item as usize;
            if i >= n {
                continue;
            }
            match e.kind {
                EventKind::Play => {
                    c.plays[i] += 1;
                    // Sorted log: ts ≥ first_ts.
                    c.play_seconds[i] += (e.ts - first_ts).unsigned_abs();
                    if e.ts >= recent_from {
                        c.recent_plays[i] += 1;
                    }
                }
                EventKind::Skip => c.skips[i] += 1,
                // The play that follows a search is counted as a play.
                EventKind::Search => {}
            }
        }
        c
    }
}

impl Popularity {
    /// Counts `events` over `n` items.
    #[cfg(test)]
    pub fn build(n: usize, events: &Events) -> Popularity {
        Popularity::from_counts(&PlayCounts::count(n, events))
    }

    /// Popularity from per-item counts (counts beyond `u32::MAX` saturate).
    pub fn from_counts(c: &PlayCounts) -> Popularity {
        let n = c.plays.len();
        let narrow = |v: &[u64]| v.iter().map(|&x| u32::try_from(x).unwrap_or(u32::MAX)).collect::<Vec<u32>>();
        let mut p = Popularity {
            plays: narrow(&c.plays),
            skips: narrow(&c.skips),
            recent_plays: narrow(&c.recent_plays),
            mean_time: vec![0.0; n],
            ..Default::default()
        };
        let span = (c.last_ts - c.first_ts).max(1) as f64;
        for ((t, &seconds), &plays) in p.mean_time.iter_mut().zip(&c.play_seconds).zip(&c.plays) {
            if plays > 0 {
                *t = (seconds as f64 / plays as f64 / span) as f32;
            }
        }
        p.order = (0..n as u32).collect();
        p.order.sort_by_key(|&i| (std::cmp::Reverse(p.plays[i as usize]), i));
        p.max_plays = p.plays.iter().copied().max().unwrap_or(0);
        p
    }

    /// Items counted.
    pub fn len(&self) -> usize {
        self.plays.len()
    }

    /// Counts items up to `n` (added after the build), never played: they
    /// join the most-played order last, by id, as unplayed items sort.
    pub fn grow(&mut self, n: usize) {
        let from = self.plays.len();
        if n <= from {
            return;
        }
        self.plays.resize(n, 0);
        self.skips.resize(n, 0);
        self.recent_plays.resize(n, 0);
        self.mean_time.resize(n, 0.0);
        self.order.extend(from as u32..n as u32);
    }

    /// Counts one event that happened after the build (a live write): a
    /// play adds a play, recent by definition and timed at the end of the
    /// build's log; a skip adds a skip; a search adds nothing (as in
    /// [`Popularity::build`]: the play that follows it is its own event). The most-played
    /// order is kept by moving the item, never by sorting again, so an
    /// event costs two binary searches and one shift. Out-of-range items
    /// are ignored (the caller resolved them).
    pub fn count_live(&mut self, item: u32, kind: EventKind) {
        let i = item as usize;
        if i >= self.plays.len() {
            return;
        }
        match kind {
            EventKind::Play => {}
            EventKind::Skip => {
                self.skips[i] = self.skips[i].saturating_add(1);
                return;
            }
            _ => return,
        }
        let old = self.plays[i];
        let new = old.saturating_add(1);
        // The order is sorted by (plays descending, id ascending).
        let key = |plays: u32, id: u32| (std::cmp::Reverse(plays), id);
        let Ok(at) = self
            .order
            .binary_search_by_key(&key(old, item), |&j| key(self.plays[j as usize], j))
        else {
            return;
        };
        let to = self.order[..at].partition_point(|&j| key(self.plays[j as usize], j) < key(new, item));
        self.order[to..=at].rotate_right(1);
        self.plays[i] = new;
        self.recent_plays[i] = self.recent_plays[i].saturating_add(1);
        self.mean_time[i] = ((f64::from(self.mean_time[i]) * f64::from(old) + 1.0) / f64::from(new)) as f32;
        self.max_plays = self.max_plays.max(new);
    }

    /// The `n` most played items `accept` lets through, as (item, plays).
    /// Never played items are not popular: a catalog without plays has none.
    pub fn top(&self, n: usize, accept: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        self.order
            .iter()
            .copied()
            .take_while(|&i| self.plays(i) > 0)
            .filter(|&i| accept(i))
            .take(n)
            .map(|i| (i, self.plays(i) as f32))
            .collect()
    }

    /// Plays of `item`.
    pub fn plays(&self, item: u32) -> u32 {
        self.plays.get(item as usize).copied().unwrap_or(0)
    }

    /// log(1 + plays) scaled to [0, 1] by the most played item.
    pub fn log_popularity(&self, item: u32) -> f32 {
        if self.max_plays == 0 {
            return 0.0;
        }
        (1.0 + self.plays(item) as f32).ln() / (1.0 + self.max_plays as f32).ln()
    }

    /// Share of an item's plays that fall in the last 30 days, smoothed
    /// towards zero for rarely played items.
    pub fn recent_share(&self, item: u32) -> f32 {
        let r = self.recent_plays.get(item as usize).copied().unwrap_or(0) as f32;
        r / (self.plays(item) as f32 + 5.0)
    }

    /// When `item` is played, on average: its plays' mean time on [0, 1]
    /// over the log's span (`None` if never played). Users are active in
    /// periods, and items are played in periods: the two meeting is a signal.
    pub fn played_at(&self, item: u32) -> Option<f32> {
        (self.plays(item) > 0).then(|| self.mean_time.get(item as usize).copied().unwrap_or(0.0))
    }

    /// Skips / (plays + skips) with a Beta(1, 9) prior, so an item skipped
    /// once and played never is not a 100% skip.
    pub fn skip_rate(&self, item: u32) -> f32 {
        let s = self.skips.get(item as usize).copied().unwrap_or(0) as f32;
        (s + 1.0) / (s + self.plays(item) as f32 + 10.0)
    }

    pub fn validate(&self, n: usize) -> Result<(), String> {
        let lens = [
            self.plays.len(),
            self.skips.len(),
            self.recent_plays.len(),
            self.mean_time.len(),
            self.order.len(),
        ];
        if lens.iter().any(|&l| l != n) {
            return Err(format!("popularity columns have lengths {lens:?}, expected {n}"));
        }
        if self.mean_time.iter().any(|t| !(0.0..=1.0).contains(t)) {
            return Err("popularity mean time outside [0, 1]".into());
        }
        if self.order.iter().any(|&i| i as usize >= n) {
            return Err("popularity order holds an item id out of range".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Item};
    use std::path::Path;

    #[test]
    fn counts_plays_and_skips_and_orders_by_plays() {
        let c = Catalog::new(vec![Item::new("a", "A"), Item::new("b", "B"), Item::new("c", "C")]).unwrap();
        let text = "{\"user\":\"u\",\"item\":\"b\",\"ts\":1}\n{\"user\":\"u\",\"item\":\"b\",\"ts\":2}\n{\"user\":\"u\",\"item\":\"a\",\"ts\":3}\n{\"user\":\"u\",\"item\":\"c\",\"ts\":4,\"type\":\"skip\"}\n";
        let ev = Events::from_jsonl_reader(text.as_bytes(), Path::new("e"), &c).unwrap();
        let p = Popularity::build(3, &ev);
        // c was only skipped: never played, not popular.
        assert_eq!(p.top(3, |_| true).iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 0]);
        assert_eq!(p.top(1, |i| i != 1)[0].0, 0);
        assert!((p.log_popularity(1) - 1.0).abs() < 1e-6);
        assert!(p.skip_rate(2) > p.skip_rate(1));
        // b played at 1 and 2, a at 3, over the log's span 1..=4.
        assert!((p.played_at(1).unwrap() - 0.5 / 3.0).abs() < 1e-6);
        assert!((p.played_at(0).unwrap() - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(p.played_at(2), None, "skipped only");
        assert!(p.validate(3).is_ok() && p.validate(4).is_err());
    }

    #[test]
    fn live_plays_keep_the_order_a_rebuild_would_give() {
        let items: Vec<Item> = (0..50).map(|i| Item::new(format!("i{i}"), "t")).collect();
        let c = Catalog::new(items).unwrap();
        let mut rng = crate::rng::SplitMix64::new(3);
        let mut log = String::new();
        let mut live = Vec::new();
        for n in 0..2000 {
            let item = (rng.next_u64() % 50).min(rng.next_u64() % 50);
            let kind = if rng.next_u64().is_multiple_of(5) { "skip" } else { "play" };
            let line = format!("{{\"user\":\"u\",\"item\":\"i{item}\",\"ts\":{n},\"type\":\"{kind}\"}}\n");
            if n < 800 {
                log += &line;
            } else {
                live.push((item as u32, if kind == "skip" { EventKind::Skip } else { EventKind::Play }, line));
            }
        }
        let base = Events::from_jsonl_reader(log.as_bytes(), Path::new("e"), &c).unwrap();
        let mut p = Popularity::build(50, &base);
        let mut all = log.clone();
        for (item, kind, line) in &live {
            p.count_live(*item, *kind);
            all += line;
        }
        let rebuilt = Popularity::build(50, &Events::from_jsonl_reader(all.as_bytes(), Path::new("e"), &c).unwrap());
        let (plays, skips) = (p.plays.clone(), p.skips.clone());
        p.count_live(3, EventKind::Search);
        assert_eq!((&p.plays, &p.skips), (&plays, &skips), "a search counts nothing, as in a build");
        assert_eq!(p.order, rebuilt.order);
        assert_eq!(
            (&p.plays, &p.skips, p.max_plays),
            (&rebuilt.plays, &rebuilt.skips, rebuilt.max_plays)
        );
        assert!(p.validate(50).is_ok());
    }
}
