//! The user/listening simulator: stable tastes per user, sessions that follow
//! albums, artists and a theme, plays, skips and searches (events.jsonl).

use super::catalog::{GeneratedCatalog, Track};
use super::prng::Rng;
use super::search::{query_for, QKind};
use super::vocab::{GENRES, NONE};
use super::MusicConfig;

pub(super) const WINDOW_START: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z
pub(super) const WINDOW_END: i64 = 1_751_328_000; // 2025-07-01T00:00:00Z, exclusive

pub(super) const PLAY: u8 = 0;
pub(super) const SKIP: u8 = 1;
pub(super) const SEARCH: u8 = 2;

pub(super) struct Ev {
    pub(super) ts: i64,
    pub(super) user: u32,
    pub(super) seq: u32,
    pub(super) item: u32,
    pub(super) kind: u8,
    pub(super) query: u32,
}

struct User {
    genres: Vec<(u8, f64)>,
    moods: Vec<u8>,
    favs: Vec<u32>,
}

fn make_user(rng: &mut Rng, c: &GeneratedCatalog) -> User {
    let genre_w: Vec<f64> = GENRES.iter().map(|g| g.weight).collect();
    let g1 = rng.weighted(&genre_w) as u8;
    let ng = 1 + rng.weighted(&[0.35, 0.4, 0.25]);
    let mut genres = vec![(g1, 1.0)];
    while genres.len() < ng {
        let g = if rng.chance(0.6) {
            let fam: Vec<u8> = (0..GENRES.len() as u8)
                .filter(|x| GENRES[*x as usize].family == GENRES[g1 as usize].family)
                .collect();
            rng.pick(&fam).copied().unwrap_or(g1)
        } else {
            rng.weighted(&genre_w) as u8
        };
        if !genres.iter().any(|(x, _)| *x == g) {
            genres.push((g, 0.2 + 0.5 * rng.f64()));
        } else if rng.chance(0.3) {
            break;
        }
    }
    let mut moods = Vec::new();
    let nm = 1 + rng.below(2);
    for _ in 0..6 {
        if moods.len() >= nm {
            break;
        }
        let m = rng.pick(GENRES[g1 as usize].moods).copied().unwrap_or(0);
        if !moods.contains(&m) {
            moods.push(m);
        }
    }
    let mut favs = Vec::new();
    let nf = 2 + rng.below(4);
    for _ in 0..nf * 3 {
        if favs.len() >= nf {
            break;
        }
        let a = if rng.chance(0.85) {
            let gi = rng.weighted(&genres.iter().map(|x| x.1).collect::<Vec<_>>());
            c.artists_by_genre[genres[gi].0 as usize].sample(rng)
        } else {
            c.all_artists.sample(rng)
        };
        if let Some(a) = a {
            if !favs.contains(&a) {
                favs.push(a);
            }
        }
    }
    User { genres, moods, favs }
}

fn skip_prob(u: &User, t: &Track) -> f64 {
    let gm = t.genre_list().any(|g| u.genres.iter().any(|(x, _)| *x == g));
    let mm = t.mood_list().any(|m| u.moods.contains(&m));
    let fav = u.favs.contains(&t.artist);
    match (gm || fav, mm) {
        (true, true) => 0.06,
        (true, false) => 0.12,
        (false, true) => 0.28,
        (false, false) => 0.38,
    }
}

pub(super) fn simulate_events(cfg: &MusicConfig, c: &GeneratedCatalog) -> (Vec<Ev>, Vec<String>) {
    let mut evs: Vec<Ev> = Vec::new();
    let mut queries: Vec<String> = Vec::new();
    if c.tracks.is_empty() {
        return (evs, queries);
    }
    let mut rng = Rng::new(cfg.seed, 3);
    let window = (WINDOW_END - WINDOW_START) as f64;
    for u in 0..cfg.users {
        let user = make_user(&mut rng, c);
        let n_sessions = (rng.heavy(2.05) as usize).clamp(1, 150);
        let join = if rng.chance(0.35) {
            WINDOW_START
        } else {
            WINDOW_START + (rng.f64() * 0.7 * window) as i64
        };
        let span = (WINDOW_END - 4 * 3600 - join).max(1) as f64;
        let mut starts: Vec<i64> = (0..n_sessions).map(|_| join + (rng.f64() * span) as i64).collect();
        starts.sort_unstable();
        let mut last_ts = i64::MIN / 2;
        let mut seq = 0u32;
        let gw: Vec<f64> = user.genres.iter().map(|x| x.1).collect();
        for s0 in starts {
            let mut ts = s0.max(last_ts + 2 * 3600 + rng.range(0, 3600) as i64);
            if ts >= WINDOW_END - 60 {
                break;
            }
            let theme_g = user.genres[rng.weighted(&gw)].0;
            let theme_m = if rng.chance(0.65) {
                rng.pick(&user.moods).copied().unwrap_or(NONE)
            } else {
                NONE
            };
            let len = (1.5 + rng.heavy(2.6)).clamp(3.0, 30.0) as usize;
            let mut played: Vec<u32> = Vec::with_capacity(len);
            let mut context: Option<u32> = None;
            let mut first = true;
            for _ in 0..len {
                let mut t = 0u32;
                for _attempt in 0..4 {
                    let cand = match context {
                        None => c.sample_genre(&mut rng, theme_g, theme_m),
                        Some(cur) => next_track(&mut rng, c, &user, cur, theme_g, theme_m),
                    };
                    t = cand.unwrap_or(0);
                    if !played.contains(&t) {
                        break;
                    }
                }
                if ts + 1 >= WINDOW_END {
                    break;
                }
                let tr = &c.tracks[t as usize];
                if first && rng.chance(0.065) {
                    let kind = match rng.weighted(&[0.45, 0.25, 0.1, 0.15, 0.05]) {
                        0 => QKind::Artist,
                        1 => QKind::Title,
                        2 => QKind::Album,
                        3 => QKind::Descriptor,
                        _ => QKind::Mixed,
                    };
                    queries.push(query_for(&mut rng, c, t, kind));
                    evs.push(Ev {
                        ts,
                        user: u as u32,
                        seq,
                        item: t,
                        kind: SEARCH,
                        query: (queries.len() - 1) as u32,
                    });
                    seq += 1;
                    ts += 1;
                    evs.push(Ev {
                        ts,
                        user: u as u32,
                        seq,
                        item: t,
                        kind: PLAY,
                        query: u32::MAX,
                    });
                    seq += 1;
                    last_ts = ts;
                    ts += tr.duration as i64 + rng.range(0, 2) as i64;
                    context = Some(t);
                } else if rng.chance(skip_prob(&user, tr)) {
                    evs.push(Ev {
                        ts,
                        user: u as u32,
                        seq,
                        item: t,
                        kind: SKIP,
                        query: u32::MAX,
                    });
                    seq += 1;
                    last_ts = ts;
                    ts += rng.range(5, 40) as i64;
                } else {
                    evs.push(Ev {
                        ts,
                        user: u as u32,
                        seq,
                        item: t,
                        kind: PLAY,
                        query: u32::MAX,
                    });
                    seq += 1;
                    last_ts = ts;
                    ts += tr.duration as i64 + rng.range(0, 2) as i64;
                    context = Some(t);
                }
                first = false;
                played.push(t);
                if ts >= WINDOW_END {
                    break;
                }
            }
        }
    }
    evs.sort_unstable_by_key(|e| (e.ts, e.user, e.seq));
    (evs, queries)
}

/// The session's next track given the last *played* track (skips carry no taste signal).
fn next_track(rng: &mut Rng, c: &GeneratedCatalog, u: &User, cur: u32, theme_g: u8, theme_m: u8) -> Option<u32> {
    let tr = &c.tracks[cur as usize];
    let cur_g = if tr.has_genre(theme_g) { theme_g } else { tr.genres[0] };
    let mood = if theme_m != NONE {
        theme_m
    } else {
        tr.moods[rng.below(if tr.moods[1] == NONE { 1 } else { 2 })]
    };
    match rng.weighted(&[0.35, 0.40, 0.10, 0.10, 0.05]) {
        0 => {
            let alb = c.albums.get(tr.album as usize)?;
            if rng.chance(0.6) && cur + 1 < alb.tracks.end {
                Some(cur + 1)
            } else {
                c.sample_artist_track(rng, tr.artist, cur)
            }
        }
        1 => c.sample_genre(rng, cur_g, mood),
        2 => {
            let others: Vec<(u8, f64)> = u.genres.iter().copied().filter(|(g, _)| *g != cur_g).collect();
            if others.is_empty() {
                c.sample_genre(rng, cur_g, mood)
            } else {
                let g = others[rng.weighted(&others.iter().map(|x| x.1).collect::<Vec<_>>())].0;
                let m = if rng.chance(0.5) {
                    rng.pick(&u.moods).copied().unwrap_or(NONE)
                } else {
                    NONE
                };
                c.sample_genre(rng, g, m)
            }
        }
        3 => match rng.pick(&u.favs) {
            Some(&a) => c.sample_artist_track(rng, a, cur),
            None => c.sample_genre(rng, cur_g, mood),
        },
        _ => c.global.sample(rng),
    }
}

#[cfg(test)]
mod tests {
    use super::super::generate;
    use super::super::tests::{lines, small};
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn events_reference_catalog_and_are_sorted() {
        let d = generate(&small());
        let ids: HashSet<String> = lines(&d.items).iter().map(|v| v["id"].as_str().unwrap_or("").to_string()).collect();
        let evs = lines(&d.events);
        assert!(!evs.is_empty());
        let mut prev = i64::MIN;
        for (k, e) in evs.iter().enumerate() {
            let ts = e["ts"].as_i64().expect("ts");
            assert!(ts >= prev, "events out of order");
            assert!((WINDOW_START..WINDOW_END).contains(&ts));
            prev = ts;
            assert!(ids.contains(e["item"].as_str().unwrap_or("")));
            let kind = e["type"].as_str().unwrap_or("");
            assert!(["play", "skip", "search"].contains(&kind));
            if kind == "search" {
                assert!(!e["query"].as_str().unwrap_or("").is_empty());
                // The played result follows one second later (possibly after other users' events).
                let found = evs[k + 1..]
                    .iter()
                    .take_while(|x| x["ts"].as_i64() <= Some(ts + 1))
                    .any(|x| x["user"] == e["user"] && x["item"] == e["item"] && x["type"] == "play" && x["ts"].as_i64() == Some(ts + 1));
                assert!(found, "search without its play: {e}");
            } else {
                assert!(e.get("query").is_none());
            }
        }
    }

    #[test]
    fn sessions_are_coherent() {
        let d = generate(&small());
        let meta: HashMap<String, (String, Vec<String>)> = lines(&d.items)
            .iter()
            .map(|v| {
                let genres = v["tags"]["genre"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|g| g.as_str()).map(String::from).collect())
                    .unwrap_or_default();
                (
                    v["id"].as_str().unwrap_or("").to_string(),
                    (v["attributes"]["artist"].as_str().unwrap_or("").to_string(), genres),
                )
            })
            .collect();
        // Rebuild sessions from time gaps alone, as consumers must.
        let mut last: HashMap<String, (i64, Option<String>)> = HashMap::new();
        let mut pairs: Vec<(String, String)> = Vec::new();
        for e in lines(&d.events) {
            let (user, item, ts) = (
                e["user"].as_str().unwrap_or("").to_string(),
                e["item"].as_str().unwrap_or("").to_string(),
                e["ts"].as_i64().unwrap_or(0),
            );
            let entry = last.entry(user).or_insert((i64::MIN / 2, None));
            let gap = ts - entry.0;
            assert!(!(600..7200).contains(&gap), "ambiguous session gap {gap}");
            if gap >= 600 {
                entry.1 = None;
            }
            entry.0 = ts;
            if e["type"] == "play" {
                if let Some(prev) = entry.1.replace(item.clone()) {
                    if prev != item {
                        pairs.push((prev, item));
                    }
                }
            }
        }
        assert!(pairs.len() > 1000);
        let related = |a: &str, b: &str| {
            let (x, y) = (&meta[a], &meta[b]);
            x.0 == y.0 || x.1.iter().any(|g| y.1.contains(g))
        };
        let within = pairs.iter().filter(|(a, b)| related(a, b)).count() as f64 / pairs.len() as f64;
        let mut rng = Rng::new(99, 0);
        let n = pairs.len();
        let random = (0..n).filter(|_| related(&pairs[rng.below(n)].1, &pairs[rng.below(n)].1)).count() as f64 / n as f64;
        assert!(within > 0.7 && within > 4.0 * random, "within {within:.3} random {random:.3}");
    }
}
