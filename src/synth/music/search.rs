//! Search-query simulation: the query strings users type (shared by the
//! search events and the query set) and the graded query set of queries.jsonl.

use super::catalog::{GeneratedCatalog, Track};
use super::prng::Rng;
use super::vocab::{GENRES, MOODS, MOOD_ACTIVITY, NONE, STOP};
use super::MusicConfig;
use std::collections::{BTreeMap, HashMap, HashSet};

// ---------------------------------------------------------------------------
// Query strings (shared by search events and the query set).

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum QKind {
    Artist,
    Title,
    Album,
    Descriptor,
    Mixed,
}

impl QKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            QKind::Artist => "artist",
            QKind::Title => "title",
            QKind::Album => "album",
            QKind::Descriptor => "descriptor",
            QKind::Mixed => "mixed",
        }
    }
}

fn tokens(s: &str) -> Vec<String> {
    s.split(|ch: char| !ch.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// Users type names loosely: often lowercase, sometimes without "the" or a word.
fn loosen(rng: &mut Rng, s: &str, p_lower: f64) -> String {
    let mut words: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
    if words.len() >= 2 && words[0].eq_ignore_ascii_case("the") && rng.chance(0.5) {
        words.remove(0);
    } else if words.len() >= 3 && rng.chance(0.12) {
        let i = rng.below(words.len());
        words.remove(i);
    }
    let out = words.join(" ");
    if rng.chance(p_lower) {
        out.to_lowercase()
    } else {
        out
    }
}

/// A (genre, mood) descriptor for a track, e.g. "upbeat techno for running".
fn descriptor_for(rng: &mut Rng, t: &Track) -> (u8, u8, String) {
    let g = t.genres[0];
    let m = if t.moods[1] != NONE && rng.chance(0.5) {
        t.moods[1]
    } else {
        t.moods[0]
    };
    let (gn, mn) = (GENRES[g as usize].name, MOODS[m as usize]);
    let s = match rng.below(5) {
        0 | 1 => format!("{mn} {gn}"),
        2 => format!("{mn} {gn} music"),
        3 => format!("{mn} {gn} for {}", rng.pick(MOOD_ACTIVITY[m as usize]).copied().unwrap_or("today")),
        _ => format!("{gn} {mn}"),
    };
    (g, m, s)
}

fn title_word(rng: &mut Rng, title: &str) -> Option<String> {
    let words: Vec<String> = tokens(title)
        .into_iter()
        .filter(|w| !STOP.contains(&w.as_str()) && w.len() > 2)
        .collect();
    rng.pick(&words).cloned()
}

pub(super) fn query_for(rng: &mut Rng, c: &GeneratedCatalog, t: u32, kind: QKind) -> String {
    let tr = &c.tracks[t as usize];
    let artist = c.artists.get(tr.artist as usize).map(|a| a.name.as_str()).unwrap_or("");
    match kind {
        QKind::Artist => loosen(rng, artist, 0.6),
        QKind::Title => loosen(rng, &tr.title, 0.6),
        QKind::Album => loosen(rng, c.albums.get(tr.album as usize).map(|a| a.name.as_str()).unwrap_or(""), 0.6),
        QKind::Descriptor => descriptor_for(rng, tr).2,
        QKind::Mixed => {
            let w = title_word(rng, &tr.title).unwrap_or_default();
            format!("{} {w}", loosen(rng, artist, 0.8)).trim().to_string()
        }
    }
}

// ---------------------------------------------------------------------------
// queries.jsonl

pub(super) struct Query {
    pub(super) text: String,
    pub(super) kind: QKind,
    pub(super) relevant: BTreeMap<u32, u8>,
}

/// Tracks ordered by popularity, most popular first; ties by id for determinism.
fn by_pop_desc(c: &GeneratedCatalog, ids: &mut [u32]) {
    ids.sort_unstable_by(|a, b| c.tracks[*b as usize].pop.total_cmp(&c.tracks[*a as usize].pop).then(a.cmp(b)));
}

pub(super) fn build_queries(cfg: &MusicConfig, c: &GeneratedCatalog) -> Vec<Query> {
    let mut out: Vec<Query> = Vec::new();
    if c.tracks.is_empty() || cfg.queries == 0 {
        return out;
    }
    let mut rng = Rng::new(cfg.seed, 4);
    // Title word index for "shares the title's rarer words" grading.
    let mut word_tracks: HashMap<String, Vec<u32>> = HashMap::new();
    for (i, t) in c.tracks.iter().enumerate() {
        let mut ws = tokens(&t.title);
        ws.sort_unstable();
        ws.dedup();
        for w in ws {
            word_tracks.entry(w).or_default().push(i as u32);
        }
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut attempts = 0usize;
    while out.len() < cfg.queries && attempts < cfg.queries * 30 {
        attempts += 1;
        // Half popularity-weighted (people search for hits), half uniform (the long tail).
        let t = if rng.chance(0.5) {
            c.global.sample(&mut rng).unwrap_or(0)
        } else {
            rng.below(c.tracks.len()) as u32
        };
        let tr = &c.tracks[t as usize];
        let kind = match rng.weighted(&[0.25, 0.25, 0.15, 0.25, 0.10]) {
            0 => QKind::Artist,
            1 => QKind::Title,
            2 => QKind::Album,
            3 => QKind::Descriptor,
            _ => QKind::Mixed,
        };
        let mut rel: BTreeMap<u32, u8> = BTreeMap::new();
        let text;
        match kind {
            QKind::Artist => {
                text = query_for(&mut rng, c, t, kind);
                let mut ids: Vec<u32> = c.artists[tr.artist as usize].tracks.clone().collect();
                by_pop_desc(c, &mut ids);
                for id in ids.into_iter().take(30) {
                    rel.insert(id, 3);
                }
            }
            QKind::Title => {
                text = query_for(&mut rng, c, t, kind);
                let title_l = tr.title.to_lowercase();
                // Every catalog word recurs, so "rare" is relative: the title's
                // least frequent content word earns grade 1, all content words 2.
                let words: Vec<String> = tokens(&tr.title).into_iter().filter(|w| !STOP.contains(&w.as_str())).collect();
                let rarest = words.iter().filter_map(|w| word_tracks.get(w)).min_by_key(|v| v.len());
                let mut others: Vec<u32> = rarest.map(|v| v.iter().copied().filter(|x| *x != t).collect()).unwrap_or_default();
                by_pop_desc(c, &mut others);
                let full = |id: &u32| {
                    let other = &c.tracks[*id as usize].title;
                    let ow = tokens(other);
                    other.to_lowercase() == title_l || words.iter().all(|w| ow.contains(w))
                };
                // Full matches first so the cap never drops a better answer.
                let (mut graded, partial): (Vec<u32>, Vec<u32>) = others.into_iter().partition(|id| full(id));
                let n_full = graded.len();
                graded.extend(partial);
                for (k, id) in graded.into_iter().take(30).enumerate() {
                    rel.insert(id, if k < n_full { 2 } else { 1 });
                }
                rel.insert(t, 3);
            }
            QKind::Album => {
                let alb = &c.albums[tr.album as usize];
                text = query_for(&mut rng, c, t, kind);
                // Same-named albums by other artists are a plausible but weaker answer.
                let room = 30usize.saturating_sub((alb.tracks.end - alb.tracks.start) as usize);
                let mut same_name: Vec<u32> = c
                    .albums
                    .iter()
                    .enumerate()
                    .filter(|(ai, a)| *ai as u32 != tr.album && a.name == alb.name)
                    .flat_map(|(_, a)| a.tracks.clone())
                    .collect();
                by_pop_desc(c, &mut same_name);
                for id in same_name.into_iter().take(room) {
                    rel.insert(id, 2);
                }
                for id in alb.tracks.clone() {
                    rel.insert(id, 3);
                }
            }
            QKind::Descriptor => {
                let (g, m, s) = descriptor_for(&mut rng, tr);
                text = s;
                let mut both = c.by_genre_mood[g as usize * 16 + m as usize].items.clone();
                by_pop_desc(c, &mut both);
                for id in both.into_iter().take(50) {
                    rel.insert(id, 2);
                }
                let mut genre = c.by_genre[g as usize].items.clone();
                by_pop_desc(c, &mut genre);
                for id in genre.into_iter().take(50) {
                    rel.entry(id).or_insert(1);
                }
            }
            QKind::Mixed => {
                let Some(word) = title_word(&mut rng, &tr.title) else {
                    continue;
                };
                let art = &c.artists[tr.artist as usize];
                text = format!("{} {word}", loosen(&mut rng, &art.name, 0.8));
                let mut ids: Vec<u32> = art.tracks.clone().collect();
                by_pop_desc(c, &mut ids);
                for id in ids.into_iter().take(30) {
                    let has = tokens(&c.tracks[id as usize].title).contains(&word);
                    rel.insert(id, if has { 3 } else { 1 });
                }
                rel.insert(t, 3);
            }
        }
        if text.trim().is_empty() || rel.is_empty() || !seen.insert(text.clone()) {
            continue;
        }
        out.push(Query { text, kind, relevant: rel });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::generate;
    use super::super::tests::{lines, small};
    use super::*;

    #[test]
    fn queries_are_graded_and_reference_catalog() {
        let d = generate(&small());
        let ids: HashSet<String> = lines(&d.items).iter().map(|v| v["id"].as_str().unwrap_or("").to_string()).collect();
        let qs = lines(&d.queries);
        assert_eq!(qs.len(), 60);
        let mut texts = HashSet::new();
        for q in &qs {
            assert!(texts.insert(q["query"].as_str().unwrap_or("").to_string()), "duplicate query");
            let rel = q["relevant"].as_object().expect("relevant map");
            assert!(!rel.is_empty());
            for (id, g) in rel {
                assert!(ids.contains(id));
                assert!((1..=3).contains(&g.as_u64().unwrap_or(0)));
            }
        }
    }
}
