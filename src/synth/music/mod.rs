//! Deterministic synthetic music dataset: a track catalog, listening events
//! (plays, skips and search-log events) and a graded search-query set.
//!
//! The data is built so that sequence-aware and personalised recommenders have
//! real structure to find: sessions follow albums and artists, users have
//! stable genre/mood tastes and favourite artists, and popularity is Zipf-like
//! but far from the whole story. Output depends only on the config: the PRNG
//! is implemented here (no crate upgrade can change it) and the generator only
//! uses IEEE-exact float operations (`+ - * / sqrt`), so bytes do not depend
//! on the platform's libm either.
//!
//! One private module per idea: `vocab` holds the word lists and the genre
//! table, `prng` the seeded draws, `catalog` (with `names`) builds the artists,
//! albums and tracks, `listening` simulates the users' sessions, `search` the
//! query strings and the graded query set, and `writers` the three JSON Lines
//! files.

use std::io::{self, Write};

mod catalog;
mod listening;
mod names;
mod prng;
mod search;
mod vocab;
mod writers;

use catalog::GeneratedCatalog;
use listening::simulate_events;
use search::build_queries;
use writers::{write_events, write_items, write_queries};

/// Sizes and seed of a synthetic music dataset.
///
/// Fields are public so benchmarks can vary one dimension at a time; use
/// [`MusicConfig::default`] for the shipped dataset and [`MusicConfig::scaled`]
/// for consistently shaped larger catalogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MusicConfig {
    /// Number of tracks in the catalog (each becomes one line of items.jsonl).
    pub tracks: usize,
    /// Number of artists the tracks are spread over (clamped to `tracks`).
    pub artists: usize,
    /// Number of listeners generating events.
    pub users: usize,
    /// Number of graded queries in queries.jsonl (fewer only for tiny catalogs).
    pub queries: usize,
    /// Seed of every random choice; the same config always gives the same bytes.
    pub seed: u64,
}

impl Default for MusicConfig {
    /// The shipped dataset under `data/music`: small enough for the repo,
    /// large enough (>100k events) for offline evaluation to be meaningful.
    fn default() -> Self {
        MusicConfig {
            tracks: 6000,
            artists: 700,
            users: 2500,
            queries: 300,
            seed: 42,
        }
    }
}

impl MusicConfig {
    /// The default dataset's shape at another catalog size, for latency
    /// benchmarks (100k, 1M tracks). Users grow with the square root of the
    /// catalog so event volume stays tractable; `scaled(6000)` equals the default.
    pub fn scaled(tracks: usize) -> Self {
        if tracks == 0 {
            return MusicConfig {
                tracks: 0,
                artists: 0,
                users: 0,
                queries: 0,
                seed: 42,
            };
        }
        let artists = ((tracks as u128 * 7 / 60) as usize).max(1);
        let users = (2500.0 * (tracks as f64 / 6000.0).sqrt() + 0.5) as usize;
        MusicConfig {
            tracks,
            artists,
            users: users.clamp(1, 40_000),
            queries: 300,
            seed: 42,
        }
    }
}

/// The three JSON Lines files held in memory, for tests and small experiments
/// that do not want to touch the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MusicData {
    /// items.jsonl: one track per line.
    pub items: String,
    /// events.jsonl: plays, skips and searches, sorted by timestamp.
    pub events: String,
    /// queries.jsonl: graded search queries.
    pub queries: String,
}

/// Generates the dataset and writes the three JSON Lines files.
///
/// Writers are used as given; pass buffered writers for files. The whole
/// world is built in memory first so the three outputs are mutually consistent.
pub fn generate_to(cfg: &MusicConfig, items: &mut impl Write, events: &mut impl Write, queries: &mut impl Write) -> io::Result<()> {
    let catalog = GeneratedCatalog::build(cfg);
    write_items(cfg, &catalog, items)?;
    let evs = simulate_events(cfg, &catalog);
    write_events(cfg, &catalog, &evs, events)?;
    let qs = build_queries(cfg, &catalog);
    write_queries(cfg, &catalog, &qs, queries)
}

/// Generates the dataset as in-memory JSON Lines text (same bytes as
/// [`generate_to`] would write).
pub fn generate(cfg: &MusicConfig) -> MusicData {
    let (mut i, mut e, mut q) = (Vec::new(), Vec::new(), Vec::new());
    // Writing into a Vec<u8> cannot fail, and every record serialises to valid
    // JSON, so there is no error to report here.
    let _ = generate_to(cfg, &mut i, &mut e, &mut q);
    let text = |v: Vec<u8>| String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    MusicData {
        items: text(i),
        events: text(e),
        queries: text(q),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::HashSet;

    pub(super) fn small() -> MusicConfig {
        MusicConfig {
            tracks: 1500,
            artists: 175,
            users: 400,
            queries: 60,
            seed: 7,
        }
    }

    pub(super) fn lines(s: &str) -> Vec<Value> {
        s.lines().map(|l| serde_json::from_str(l).expect("valid JSON line")).collect()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_differs() {
        let a = generate(&small());
        let b = generate(&small());
        assert_eq!(a, b);
        let c = generate(&MusicConfig { seed: 8, ..small() });
        assert_ne!(a.items, c.items);
        assert_ne!(a.events, c.events);
        assert_ne!(a.queries, c.queries);
    }

    #[test]
    fn generate_to_matches_generate() {
        let d = generate(&small());
        let (mut i, mut e, mut q) = (Vec::new(), Vec::new(), Vec::new());
        generate_to(&small(), &mut i, &mut e, &mut q).expect("write to Vec");
        assert_eq!(d.items.as_bytes(), &i[..]);
        assert_eq!(d.events.as_bytes(), &e[..]);
        assert_eq!(d.queries.as_bytes(), &q[..]);
    }

    #[test]
    fn default_counts_and_shape() {
        let cfg = MusicConfig::default();
        assert_eq!(MusicConfig::scaled(6000), cfg);
        let d = generate(&cfg);
        let items = lines(&d.items);
        assert_eq!(items.len(), 6000);
        assert_eq!(items[0]["id"], "trk-00001");
        let artists: HashSet<&str> = items.iter().filter_map(|v| v["attributes"]["artist"].as_str()).collect();
        assert_eq!(artists.len(), 700);
        let events = d.events.lines().count();
        assert!((100_000..=150_000).contains(&events), "{events} events");
        let users: HashSet<&str> = d.events.lines().filter_map(|l| l.split('"').nth(3)).collect();
        assert!(users.len() >= 2000, "{} users", users.len());
        assert_eq!(d.queries.lines().count(), 300);
        assert!(d.items.len() + d.events.len() + d.queries.len() < 15_000_000);
        let cold = items
            .iter()
            .filter(|v| v["attributes"]["year"].as_u64().unwrap_or(0) >= 2024)
            .count();
        assert!((450..=750).contains(&cold), "{cold} cold tracks");
    }

    #[test]
    fn zero_and_tiny_configs_do_not_panic() {
        let zero = MusicConfig {
            tracks: 0,
            artists: 0,
            users: 0,
            queries: 0,
            seed: 1,
        };
        let d = generate(&zero);
        assert!(d.items.is_empty() && d.events.is_empty() && d.queries.is_empty());
        assert_eq!(generate(&MusicConfig::scaled(0)), d);
        let no_users = generate(&MusicConfig { users: 0, ..small() });
        assert!(no_users.events.is_empty() && !no_users.items.is_empty());
        let no_tracks = generate(&MusicConfig { tracks: 0, ..small() });
        assert!(no_tracks.items.is_empty() && no_tracks.events.is_empty() && no_tracks.queries.is_empty());
        for cfg in [
            MusicConfig {
                tracks: 1,
                artists: 5,
                users: 3,
                queries: 10,
                seed: 1,
            },
            MusicConfig {
                tracks: 7,
                artists: 0,
                users: 2,
                queries: 3,
                seed: 2,
            },
            MusicConfig {
                tracks: 40,
                artists: 40,
                users: 5,
                queries: 50,
                seed: 3,
            },
            MusicConfig {
                tracks: 900,
                artists: 2,
                users: 5,
                queries: 5,
                seed: 4,
            },
            MusicConfig::scaled(10),
        ] {
            let d = generate(&cfg);
            assert_eq!(d.items.lines().count(), cfg.tracks);
        }
    }
}
