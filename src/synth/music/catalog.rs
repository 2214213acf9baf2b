//! The generated catalog: artists, albums and tracks, with the
//! popularity-weighted samplers the listening and query simulations draw from.

use super::names::{album_name, artist_name, track_title};
use super::prng::{zipf075, Cum, Rng};
use super::vocab::{AGG, CLM, ENG, EUP, GENRES, MLW, NONE, PLACES};
use super::MusicConfig;
use std::collections::HashSet;

pub(super) struct Artist {
    pub(super) name: String,
    pub(super) genre: u8,
    pub(super) genre2: u8,
    pub(super) pop: f64,
    pub(super) era: (u16, u16),
    pub(super) albums: std::ops::Range<u32>,
    pub(super) tracks: std::ops::Range<u32>,
}

pub(super) struct Album {
    pub(super) name: String,
    pub(super) tracks: std::ops::Range<u32>,
}

pub(super) struct Track {
    pub(super) title: String,
    pub(super) artist: u32,
    pub(super) album: u32,
    pub(super) genres: [u8; 2],
    pub(super) moods: [u8; 2],
    pub(super) year: u16,
    pub(super) duration: u16,
    pub(super) tempo: u16,
    pub(super) pop: f64,
    pub(super) cold: bool,
}

impl Track {
    pub(super) fn has_genre(&self, g: u8) -> bool {
        g != NONE && self.genres.contains(&g)
    }
    pub(super) fn genre_list(&self) -> impl Iterator<Item = u8> + '_ {
        self.genres.iter().copied().filter(|g| *g != NONE)
    }
    pub(super) fn mood_list(&self) -> impl Iterator<Item = u8> + '_ {
        self.moods.iter().copied().filter(|m| *m != NONE)
    }
}

/// The generated world the three files are written from: artists, albums and
/// tracks, plus popularity-weighted samplers over them. Not a
/// [`crate::Catalog`]: that is what a consumer loads back from items.jsonl.
pub(super) struct GeneratedCatalog {
    pub(super) artists: Vec<Artist>,
    pub(super) albums: Vec<Album>,
    pub(super) tracks: Vec<Track>,
    pub(super) by_genre: Vec<Cum>,
    pub(super) by_genre_mood: Vec<Cum>, // index g * 16 + m
    pub(super) global: Cum,
    pub(super) artists_by_genre: Vec<Cum>,
    pub(super) all_artists: Cum,
}

impl GeneratedCatalog {
    pub(super) fn build(cfg: &MusicConfig) -> GeneratedCatalog {
        let mut rng = Rng::new(cfg.seed, 1);
        let n = cfg.tracks;
        let na = if n == 0 { 0 } else { cfg.artists.clamp(1, n) };
        let genre_w: Vec<f64> = GENRES.iter().map(|g| g.weight).collect();

        // Popularity rank is a random permutation so ids carry no popularity signal.
        let mut ranks: Vec<usize> = (0..na).collect();
        for i in (1..na).rev() {
            let j = rng.below(i + 1);
            ranks.swap(i, j);
        }
        let artist_pop: Vec<f64> = ranks.iter().map(|r| zipf075(*r)).collect();

        // Track counts: a floor of 5 (one short album) where the budget allows,
        // the rest spread towards popular artists, who release more.
        let base = if n >= 5 * na { 5 } else { n / na.max(1) };
        let mut counts = vec![base; na];
        let mut extra = n - base * na;
        if na > 0 && extra > 0 {
            let maxp = artist_pop.iter().cloned().fold(0.0, f64::max).max(1e-12);
            let w: Vec<f64> = artist_pop.iter().map(|p| 0.15 + rng.f64() + 3.0 * p / maxp).collect();
            let wsum: f64 = w.iter().sum();
            let cap = 56usize.max(2 * n.div_ceil(na));
            let budget = extra as f64;
            for (c, wi) in counts.iter_mut().zip(&w) {
                let add = ((budget * wi / wsum) as usize).min(cap - *c).min(extra);
                *c += add;
                extra -= add;
            }
            let mut i = rng.below(na);
            let mut guard = 0usize;
            while extra > 0 {
                if counts[i] < cap || guard > na {
                    counts[i] += 1;
                    extra -= 1;
                }
                i = (i + 1) % na;
                guard += 1;
            }
        }

        let mut names: HashSet<String> = HashSet::with_capacity(na);
        let mut artists = Vec::with_capacity(na);
        let mut albums = Vec::new();
        let mut tracks: Vec<Track> = Vec::with_capacity(n);
        for (a, &count) in counts.iter().enumerate() {
            let g = rng.weighted(&genre_w) as u8;
            let gi = &GENRES[g as usize];
            let genre2 = if rng.chance(0.25) {
                let fam: Vec<u8> = (0..GENRES.len() as u8)
                    .filter(|x| *x != g && GENRES[*x as usize].family == gi.family)
                    .collect();
                rng.pick(&fam).copied().unwrap_or(NONE)
            } else {
                NONE
            };
            let mut moods: Vec<u8> = Vec::new();
            let nm = 2 + rng.below(2);
            for _ in 0..nm * 3 {
                if moods.len() >= nm {
                    break;
                }
                let m = if rng.chance(0.85) {
                    rng.pick(gi.moods).copied().unwrap_or(0)
                } else {
                    rng.below(16) as u8
                };
                if !moods.contains(&m) {
                    moods.push(m);
                }
            }
            // Unique names: retry, then disambiguate like real services do.
            let mut name = artist_name(&mut rng, gi);
            let mut tries = 0;
            while names.contains(&name) {
                tries += 1;
                name = if tries < 8 {
                    artist_name(&mut rng, gi)
                } else if tries < 16 {
                    format!(
                        "{} of {}",
                        artist_name(&mut rng, gi),
                        rng.pick(PLACES).copied().unwrap_or("Nowhere")
                    )
                } else {
                    format!("{} ({})", artist_name(&mut rng, gi), tries)
                };
            }
            names.insert(name.clone());

            // Album plan: 1-4 albums of 5-14 tracks whenever the count allows.
            let lo = count.div_ceil(14).max(1);
            let hi = lo.max((count / 5).min(4));
            let nalb = lo + rng.below(hi - lo + 1);
            let mut sizes = vec![count / nalb; nalb];
            for s in sizes.iter_mut().take(count % nalb) {
                *s += 1;
            }
            for _ in 0..nalb * 2 {
                let (i, j) = (rng.below(nalb), rng.below(nalb));
                if i != j && sizes[i] > 5 && sizes[j] < 14 {
                    sizes[i] -= 1;
                    sizes[j] += 1;
                }
            }

            let start = 1960 + rng.range(0, 62) as u16;
            let span = 2 + rng.range(0, 20) as u16;
            let era = (start, (start + span).min(2023));
            let a_pop = artist_pop[a];
            let album_start = albums.len() as u32;
            let track_start = tracks.len() as u32;
            let hit_album = rng.below(nalb);
            let eras = (era.1 - era.0) as usize;
            for (k, &size) in sizes.iter().enumerate() {
                let alb_id = albums.len() as u32;
                let year = era.0 + ((eras * k + rng.below(eras / nalb + 1)) / nalb).min(eras) as u16;
                let genre = if genre2 != NONE && rng.chance(0.3) { genre2 } else { g };
                let aname = album_name(&mut rng);
                let first = tracks.len() as u32;
                let alb_factor = if k == hit_album { 1.0 } else { 0.25 + 0.5 * rng.f64() };
                let singles = [rng.below(size.clamp(1, 4)), rng.below(size.max(1))];
                let title_track = if rng.chance(0.3) { Some(rng.below(size.max(1))) } else { None };
                for p in 0..size {
                    let gg = &GENRES[genre as usize];
                    let mut genres = [genre, NONE];
                    let other = if genre == g { genre2 } else { g };
                    if other != NONE && rng.chance(0.2) {
                        genres[1] = other;
                    }
                    let m1 = if rng.chance(0.85) {
                        moods[rng.below(moods.len())]
                    } else {
                        rng.pick(gg.moods).copied().unwrap_or(0)
                    };
                    let mut tm = [m1, NONE];
                    if rng.chance(0.45) {
                        let m2 = moods[rng.below(moods.len())];
                        if m2 != m1 {
                            tm[1] = m2;
                        }
                    }
                    let mut tempo = rng.range(gg.tempo.0, gg.tempo.1) as i64;
                    if tm.contains(&ENG) || tm.contains(&AGG) || tm.contains(&EUP) {
                        tempo += 6;
                    }
                    if tm.contains(&CLM) || tm.contains(&MLW) {
                        tempo -= 6;
                    }
                    let duration = rng.range(gg.dur.0, gg.dur.1).clamp(90, 480) as u16;
                    let title = if title_track == Some(p) {
                        aname.clone()
                    } else {
                        track_title(&mut rng, gg)
                    };
                    let single = if singles.contains(&p) {
                        1.0
                    } else {
                        0.06 + 0.3 * rng.f64() / (1.0 + p as f64 * 0.15)
                    };
                    let pop = a_pop * alb_factor * single * (0.6 + 0.8 * rng.f64());
                    tracks.push(Track {
                        title,
                        artist: a as u32,
                        album: alb_id,
                        genres,
                        moods: tm,
                        year,
                        duration,
                        tempo: tempo.clamp(40, 220) as u16,
                        pop,
                        cold: false,
                    });
                }
                albums.push(Album {
                    name: aname,
                    tracks: first..tracks.len() as u32,
                });
            }
            artists.push(Artist {
                name,
                genre: g,
                genre2,
                pop: a_pop,
                era,
                albums: album_start..albums.len() as u32,
                tracks: track_start..tracks.len() as u32,
            });
        }

        // Cold start: ~10% of tracks are brand-new albums (2024-25) with
        // near-zero base popularity, so they get few or no plays.
        let target_cold = n / 10;
        let mut order: Vec<usize> = (0..na).collect();
        for i in (1..na).rev() {
            let j = rng.below(i + 1);
            order.swap(i, j);
        }
        let mut cold = 0usize;
        for &a in &order {
            if cold >= target_cold {
                break;
            }
            let art = &mut artists[a];
            if art.albums.end <= art.albums.start {
                continue;
            }
            let alb = &albums[(art.albums.end - 1) as usize];
            let len = (alb.tracks.end - alb.tracks.start) as usize;
            if cold + len > target_cold + 3 && art.albums.end - art.albums.start == 1 {
                continue; // avoid overshooting and leaving an artist with only cold tracks
            }
            let year = 2024 + rng.below(2) as u16;
            for t in alb.tracks.clone() {
                let tr = &mut tracks[t as usize];
                tr.cold = true;
                tr.year = year;
                tr.pop *= 0.002;
            }
            art.era.1 = year;
            cold += len;
        }

        let mut by_genre: Vec<Cum> = (0..GENRES.len()).map(|_| Cum::default()).collect();
        let mut by_genre_mood: Vec<Cum> = (0..GENRES.len() * 16).map(|_| Cum::default()).collect();
        let mut global = Cum::default();
        for (i, t) in tracks.iter().enumerate() {
            global.push(i as u32, t.pop);
            for g in t.genre_list() {
                by_genre[g as usize].push(i as u32, t.pop);
                for m in t.mood_list() {
                    by_genre_mood[g as usize * 16 + m as usize].push(i as u32, t.pop);
                }
            }
        }
        let mut artists_by_genre: Vec<Cum> = (0..GENRES.len()).map(|_| Cum::default()).collect();
        let mut all_artists = Cum::default();
        for (i, a) in artists.iter().enumerate() {
            all_artists.push(i as u32, a.pop);
            artists_by_genre[a.genre as usize].push(i as u32, a.pop);
            if a.genre2 != NONE {
                artists_by_genre[a.genre2 as usize].push(i as u32, a.pop * 0.5);
            }
        }
        GeneratedCatalog {
            artists,
            albums,
            tracks,
            by_genre,
            by_genre_mood,
            global,
            artists_by_genre,
            all_artists,
        }
    }

    /// Popularity-weighted draw within a genre, preferring a mood when given.
    pub(super) fn sample_genre(&self, rng: &mut Rng, g: u8, mood: u8) -> Option<u32> {
        if g == NONE {
            return self.global.sample(rng);
        }
        if mood != NONE && rng.chance(0.65) {
            if let Some(t) = self.by_genre_mood[g as usize * 16 + mood as usize].sample(rng) {
                return Some(t);
            }
        }
        self.by_genre[g as usize].sample(rng).or_else(|| self.global.sample(rng))
    }

    pub(super) fn sample_artist_track(&self, rng: &mut Rng, a: u32, exclude: u32) -> Option<u32> {
        let art = self.artists.get(a as usize)?;
        let ids: Vec<u32> = art.tracks.clone().filter(|t| *t != exclude).collect();
        let w: Vec<f64> = ids.iter().map(|t| self.tracks[*t as usize].pop).collect();
        if ids.is_empty() {
            return None;
        }
        ids.get(rng.weighted(&w)).copied()
    }
}
