//! The JSON Lines writers of items.jsonl, events.jsonl and queries.jsonl,
//! with the ids and the item descriptions.

use super::catalog::{GeneratedCatalog, Track};
use super::listening::{Ev, PLAY, SEARCH, SKIP};
use super::names::title_case_first;
use super::prng::Rng;
use super::search::Query;
use super::vocab::{GENRES, MOODS, MOOD_ACTIVITY, NONE, PIECES, TEXTURES};
use super::MusicConfig;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};

fn pad_width(count: usize, min: usize) -> usize {
    let mut digits = 1;
    let mut c = count;
    while c >= 10 {
        c /= 10;
        digits += 1;
    }
    digits.max(min)
}

struct Ids {
    track_w: usize,
    user_w: usize,
    query_w: usize,
}

impl Ids {
    fn new(cfg: &MusicConfig) -> Ids {
        Ids {
            track_w: pad_width(cfg.tracks, 5),
            user_w: pad_width(cfg.users, 5),
            query_w: pad_width(cfg.queries, 4),
        }
    }
    fn track(&self, t: u32) -> String {
        format!("trk-{:0w$}", t as usize + 1, w = self.track_w)
    }
    fn user(&self, u: u32) -> String {
        format!("usr-{:0w$}", u as usize + 1, w = self.user_w)
    }
    fn query(&self, q: usize) -> String {
        format!("q-{:0w$}", q + 1, w = self.query_w)
    }
}

fn write_line<W: Write, T: Serialize>(w: &mut W, buf: &mut Vec<u8>, rec: &T) -> io::Result<()> {
    buf.clear();
    serde_json::to_writer(&mut *buf, rec).map_err(io::Error::from)?;
    buf.push(b'\n');
    w.write_all(buf)
}

// ---------------------------------------------------------------------------
// items.jsonl

#[derive(Serialize)]
struct ItemText {
    description: String,
}
#[derive(Serialize)]
struct ItemTags {
    genre: Vec<&'static str>,
    mood: Vec<&'static str>,
}
#[derive(Serialize)]
struct ItemAttrs<'a> {
    artist: &'a str,
    album: &'a str,
    year: u16,
    duration_s: u16,
    tempo_bpm: u16,
}
#[derive(Serialize)]
struct ItemOut<'a> {
    id: String,
    title: &'a str,
    text: ItemText,
    tags: ItemTags,
    attributes: ItemAttrs<'a>,
}

fn era_phrase(year: u16) -> String {
    let part = match year % 10 {
        0..=3 => "early",
        4..=6 => "mid",
        _ => "late",
    };
    format!("{part} {}s", year / 10 * 10)
}

fn describe(rng: &mut Rng, c: &GeneratedCatalog, t: &Track) -> String {
    let g = &GENRES[t.genres[0] as usize];
    let m1 = MOODS[t.moods[0] as usize];
    let m2 = if t.moods[1] != NONE { MOODS[t.moods[1] as usize] } else { m1 };
    let inst1 = rng.pick(g.instruments).copied().unwrap_or("guitars");
    let mut inst2 = rng.pick(g.instruments).copied().unwrap_or("drums");
    if inst2 == inst1 {
        inst2 = g.instruments.iter().copied().find(|i| *i != inst1).unwrap_or(inst2);
    }
    let texture = rng.pick(TEXTURES).copied().unwrap_or("");
    let piece = rng.pick(PIECES).copied().unwrap_or("track");
    let genre = if t.genres[1] != NONE && rng.chance(0.5) {
        format!("{} and {}", g.name, GENRES[t.genres[1] as usize].name)
    } else {
        g.name.to_string()
    };
    let moods = if m2 != m1 { format!("{m1} and {m2}") } else { m1.to_string() };
    let era = era_phrase(t.year);
    let artist = c.artists.get(t.artist as usize).map(|a| a.name.as_str()).unwrap_or("");
    let album = c.albums.get(t.album as usize).map(|a| a.name.as_str()).unwrap_or("");
    let article = |w: &str| {
        if w.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "An"
        } else {
            "A"
        }
    };
    let mut s = match rng.below(7) {
        0 => format!("{} {m1} {genre} {piece} with {inst1} and {inst2}, from the {era}.", article(m1)),
        1 => format!("{} {genre} built around {inst1}, with {texture}.", title_case_first(&moods)),
        2 => format!(
            "{artist} deliver {} {m1} {genre} {piece} full of {texture} and {inst1}.",
            article(m1).to_lowercase()
        ),
        3 => format!(
            "{} {m1} {piece} blending {genre} with {texture}. Recorded in {}.",
            article(m1),
            t.year
        ),
        4 => format!(
            "{} and {inst1} carry this {m1} {genre} {piece} from the {era}.",
            title_case_first(texture)
        ),
        5 => format!("{} {m2} cut from {album}: {genre} with {inst1} and {texture}.", article(m2),),
        _ => format!(
            "{} at {} bpm: {moods}, with {inst2} and {texture}.",
            title_case_first(&genre),
            t.tempo
        ),
    };
    if t.cold && rng.chance(0.6) {
        s.push_str(" A new release.");
    } else if rng.chance(0.15) {
        s.push_str(&format!(
            " Recommended for {}.",
            rng.pick(MOOD_ACTIVITY[t.moods[0] as usize]).copied().unwrap_or("any time")
        ));
    }
    s
}

pub(super) fn write_items(cfg: &MusicConfig, c: &GeneratedCatalog, w: &mut impl Write) -> io::Result<()> {
    let ids = Ids::new(cfg);
    let mut rng = Rng::new(cfg.seed, 2);
    let mut buf = Vec::with_capacity(512);
    for (i, t) in c.tracks.iter().enumerate() {
        let rec = ItemOut {
            id: ids.track(i as u32),
            title: &t.title,
            text: ItemText {
                description: describe(&mut rng, c, t),
            },
            tags: ItemTags {
                genre: t.genre_list().map(|g| GENRES[g as usize].name).collect(),
                mood: t.mood_list().map(|m| MOODS[m as usize]).collect(),
            },
            attributes: ItemAttrs {
                artist: c.artists.get(t.artist as usize).map(|a| a.name.as_str()).unwrap_or(""),
                album: c.albums.get(t.album as usize).map(|a| a.name.as_str()).unwrap_or(""),
                year: t.year,
                duration_s: t.duration,
                tempo_bpm: t.tempo,
            },
        };
        write_line(w, &mut buf, &rec)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// events.jsonl

#[derive(Serialize)]
struct EventOut<'a> {
    user: String,
    item: String,
    ts: i64,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
}

pub(super) fn write_events(cfg: &MusicConfig, _c: &GeneratedCatalog, evs: &(Vec<Ev>, Vec<String>), w: &mut impl Write) -> io::Result<()> {
    let ids = Ids::new(cfg);
    let mut buf = Vec::with_capacity(256);
    for e in &evs.0 {
        let rec = EventOut {
            user: ids.user(e.user),
            item: ids.track(e.item),
            ts: e.ts,
            kind: match e.kind {
                PLAY => "play",
                SKIP => "skip",
                _ => "search",
            },
            query: if e.kind == SEARCH {
                evs.1.get(e.query as usize).map(|s| s.as_str())
            } else {
                None
            },
        };
        write_line(w, &mut buf, &rec)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// queries.jsonl

#[derive(Serialize)]
struct QueryOut<'a> {
    id: String,
    query: &'a str,
    kind: &'static str,
    relevant: BTreeMap<String, u8>,
}

pub(super) fn write_queries(cfg: &MusicConfig, _c: &GeneratedCatalog, qs: &[Query], w: &mut impl Write) -> io::Result<()> {
    let ids = Ids::new(cfg);
    let mut buf = Vec::with_capacity(1024);
    for (i, q) in qs.iter().enumerate() {
        let rec = QueryOut {
            id: ids.query(i),
            query: &q.text,
            kind: q.kind.name(),
            relevant: q.relevant.iter().map(|(t, g)| (ids.track(*t), *g)).collect(),
        };
        write_line(w, &mut buf, &rec)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_width_grows_with_count() {
        let ids = Ids::new(&MusicConfig {
            tracks: 1_000_000,
            users: 100_000,
            queries: 300,
            artists: 1,
            seed: 0,
        });
        assert_eq!(ids.track(0), "trk-0000001");
        assert_eq!(ids.user(41), "usr-000042");
        assert_eq!(ids.query(0), "q-0001");
        assert_eq!(Ids::new(&MusicConfig::default()).track(99), "trk-00100");
    }
}
