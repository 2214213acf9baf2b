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

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};

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
    let catalog = Catalog::build(cfg);
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

// ---------------------------------------------------------------------------
// PRNG: xoshiro256** seeded by the crate's SplitMix64, so output never
// depends on a crate. (xoshiro, not SplitMix64 itself, because the committed
// demo data is this generator's output byte for byte.)

struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Independent streams per generation phase keep one phase's changes from
    /// reshuffling the others.
    fn new(seed: u64, stream: u64) -> Rng {
        let mut st = crate::rng::SplitMix64::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let s = [st.next_u64(), st.next_u64(), st.next_u64(), st.next_u64()];
        Rng { s }
    }
    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }
    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in [0, n); 0 when n == 0 so callers need no special case.
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
    /// Uniform in [lo, hi] (inclusive); lo when hi < lo.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as usize) as u64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        if xs.is_empty() {
            None
        } else {
            xs.get(self.below(xs.len()))
        }
    }
    /// Pareto-like heavy tail `xm * u^-0.75` computed with sqrt only.
    fn heavy(&mut self, xm: f64) -> f64 {
        let u = 1.0 - self.f64(); // (0, 1]
        let s = u.sqrt();
        xm / (s * s.sqrt())
    }
    /// Index drawn proportionally to `weights` (uniform if all are zero).
    fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        if total.is_nan() || total <= 0.0 {
            return self.below(weights.len());
        }
        let mut r = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if r < *w {
                return i;
            }
            r -= w;
        }
        weights.len().saturating_sub(1)
    }
}

/// Zipf weight with exponent 0.75, built from sqrt so it is bit-exact everywhere.
fn zipf075(rank: usize) -> f64 {
    let r = (rank + 1) as f64;
    let s = r.sqrt();
    1.0 / (s * s.sqrt())
}

/// Items with cumulative weights for O(log n) popularity-weighted draws.
#[derive(Default)]
struct Cum {
    items: Vec<u32>,
    cum: Vec<f64>,
}

impl Cum {
    fn push(&mut self, item: u32, w: f64) {
        let last = self.cum.last().copied().unwrap_or(0.0);
        self.items.push(item);
        self.cum.push(last + w.max(0.0));
    }
    fn sample(&self, rng: &mut Rng) -> Option<u32> {
        let total = *self.cum.last()?;
        if total.is_nan() || total <= 0.0 {
            return rng.pick(&self.items).copied();
        }
        let r = rng.f64() * total;
        let i = self.cum.partition_point(|c| *c <= r).min(self.items.len() - 1);
        self.items.get(i).copied()
    }
}

// ---------------------------------------------------------------------------
// Vocabulary.

struct Genre {
    name: &'static str,
    family: u8,
    weight: f64,
    tempo: (u64, u64),
    dur: (u64, u64),
    moods: &'static [u8],
    instruments: &'static [&'static str],
}

#[rustfmt::skip]
const MOODS: [&str; 16] = [
    "melancholic", "upbeat", "calm", "energetic", "dark", "romantic", "dreamy", "aggressive",
    "nostalgic", "playful", "hopeful", "nocturnal", "euphoric", "mellow", "intense", "groovy",
];
// Mood indices, for readability of the genre table.
const MEL: u8 = 0;
const UPB: u8 = 1;
const CLM: u8 = 2;
const ENG: u8 = 3;
const DRK: u8 = 4;
const ROM: u8 = 5;
const DRM: u8 = 6;
const AGG: u8 = 7;
const NOS: u8 = 8;
const PLY: u8 = 9;
const HOP: u8 = 10;
const NOC: u8 = 11;
const EUP: u8 = 12;
const MLW: u8 = 13;
const INT: u8 = 14;
const GRV: u8 = 15;

/// Activities that make "<mood> <genre> for <activity>" queries sound natural.
#[rustfmt::skip]
const MOOD_ACTIVITY: [&[&str]; 16] = [
    &["rainy days", "late nights"], &["parties", "road trips"], &["studying", "reading"],
    &["running", "the gym"], &["late nights", "driving"], &["date night", "dinner"],
    &["sleep", "daydreaming"], &["the gym", "working out"], &["road trips", "rainy days"],
    &["kids", "cooking"], &["mornings", "road trips"], &["driving", "late nights"],
    &["parties", "dancing"], &["sunday mornings", "cooking"], &["working out", "focus"],
    &["dancing", "cooking"],
];

#[rustfmt::skip]
const GENRES: [Genre; 24] = [
    Genre { name: "rock", family: 0, weight: 1.4, tempo: (100, 150), dur: (170, 330), moods: &[ENG, UPB, NOS, INT, HOP, AGG], instruments: &["electric guitars", "a pounding drum kit", "bass guitar", "hammond organ"] },
    Genre { name: "indie rock", family: 0, weight: 1.2, tempo: (100, 160), dur: (150, 290), moods: &[MEL, UPB, NOS, ENG, DRM, PLY], instruments: &["jangly guitars", "fuzz bass", "driving drums", "a cheap synth"] },
    Genre { name: "punk", family: 0, weight: 0.6, tempo: (150, 200), dur: (90, 200), moods: &[AGG, ENG, INT, PLY, DRK], instruments: &["distorted guitars", "fast drums", "shouted vocals", "overdriven bass"] },
    Genre { name: "metal", family: 0, weight: 0.8, tempo: (90, 190), dur: (220, 480), moods: &[AGG, DRK, INT, ENG, EUP], instruments: &["down-tuned guitars", "double kick drums", "growled vocals", "shredding solos"] },
    Genre { name: "pop", family: 1, weight: 1.8, tempo: (95, 130), dur: (160, 240), moods: &[UPB, ROM, EUP, PLY, HOP, MEL], instruments: &["glossy synths", "hand claps", "layered vocals", "a punchy kick"] },
    Genre { name: "synthpop", family: 1, weight: 0.9, tempo: (105, 130), dur: (180, 280), moods: &[NOC, UPB, DRM, NOS, ROM, MEL], instruments: &["analog synths", "drum machines", "arpeggiators", "vocoders"] },
    Genre { name: "dream pop", family: 1, weight: 0.5, tempo: (80, 120), dur: (190, 320), moods: &[DRM, MEL, CLM, ROM, NOC], instruments: &["reverb-soaked guitars", "breathy vocals", "tape delay", "warm keys"] },
    Genre { name: "indie folk", family: 2, weight: 0.9, tempo: (70, 120), dur: (160, 300), moods: &[MEL, CLM, HOP, NOS, ROM, MLW], instruments: &["acoustic guitar", "banjo", "soft harmonies", "upright piano"] },
    Genre { name: "folk", family: 2, weight: 0.6, tempo: (70, 125), dur: (150, 300), moods: &[NOS, CLM, MEL, HOP, MLW], instruments: &["fingerpicked guitar", "fiddle", "harmonica", "mandolin"] },
    Genre { name: "country", family: 2, weight: 0.8, tempo: (80, 140), dur: (160, 260), moods: &[NOS, UPB, ROM, MEL, HOP], instruments: &["pedal steel", "twangy telecaster", "fiddle", "acoustic guitar"] },
    Genre { name: "blues", family: 2, weight: 0.5, tempo: (60, 120), dur: (180, 360), moods: &[MEL, DRK, MLW, NOS, GRV], instruments: &["slide guitar", "harmonica", "walking bass", "a smoky voice"] },
    Genre { name: "jazz", family: 3, weight: 0.8, tempo: (70, 220), dur: (200, 480), moods: &[MLW, CLM, NOC, ROM, GRV, PLY], instruments: &["saxophone", "upright bass", "brushed drums", "muted trumpet", "piano"] },
    Genre { name: "soul", family: 3, weight: 0.7, tempo: (70, 115), dur: (170, 280), moods: &[ROM, MEL, GRV, HOP, MLW], instruments: &["horn section", "rhodes piano", "gospel backing vocals", "tight drums"] },
    Genre { name: "funk", family: 3, weight: 0.5, tempo: (95, 120), dur: (180, 330), moods: &[GRV, UPB, PLY, ENG, EUP], instruments: &["slap bass", "wah guitar", "clavinet", "horn stabs"] },
    Genre { name: "latin", family: 3, weight: 0.8, tempo: (90, 130), dur: (170, 280), moods: &[UPB, ROM, GRV, EUP, ENG], instruments: &["congas", "nylon guitar", "brass", "timbales"] },
    Genre { name: "hip hop", family: 4, weight: 1.6, tempo: (80, 100), dur: (150, 270), moods: &[AGG, GRV, DRK, ENG, NOC, NOS], instruments: &["boom-bap drums", "sampled soul loops", "808 bass", "turntable scratches"] },
    Genre { name: "trip hop", family: 4, weight: 0.4, tempo: (70, 100), dur: (220, 360), moods: &[DRK, NOC, DRM, MEL, MLW], instruments: &["dusty breakbeats", "vinyl crackle", "strings", "deep bass"] },
    Genre { name: "reggae", family: 4, weight: 0.5, tempo: (60, 90), dur: (190, 300), moods: &[MLW, UPB, GRV, HOP, CLM], instruments: &["offbeat guitar skank", "deep dub bass", "melodica", "organ bubble"] },
    Genre { name: "techno", family: 5, weight: 0.8, tempo: (124, 140), dur: (300, 480), moods: &[DRK, INT, ENG, NOC, EUP], instruments: &["a relentless kick", "modular synths", "hi-hat rolls", "acid basslines"] },
    Genre { name: "house", family: 5, weight: 0.9, tempo: (118, 128), dur: (240, 420), moods: &[EUP, UPB, GRV, NOC, ROM], instruments: &["four-on-the-floor drums", "piano stabs", "diva vocals", "filtered disco loops"] },
    Genre { name: "drum and bass", family: 5, weight: 0.5, tempo: (165, 178), dur: (240, 400), moods: &[ENG, INT, DRK, EUP, AGG], instruments: &["chopped breakbeats", "reese bass", "atmospheric pads", "rapid snares"] },
    Genre { name: "ambient", family: 6, weight: 0.5, tempo: (60, 90), dur: (240, 480), moods: &[CLM, DRM, MLW, NOC, MEL], instruments: &["slow-moving pads", "field recordings", "granular textures", "soft drones"] },
    Genre { name: "classical", family: 6, weight: 0.6, tempo: (50, 140), dur: (180, 480), moods: &[CLM, MEL, ROM, INT, HOP, DRM], instruments: &["string quartet", "solo piano", "full orchestra", "woodwinds"] },
    Genre { name: "disco", family: 1, weight: 0.4, tempo: (110, 126), dur: (200, 380), moods: &[EUP, UPB, GRV, PLY, ROM], instruments: &["string sweeps", "octave bass", "four-on-the-floor drums", "funky guitar"] },
];

#[rustfmt::skip]
const ADJ: &[&str] = &[
    "Velvet", "Neon", "Silver", "Golden", "Broken", "Hollow", "Electric", "Crimson", "Quiet",
    "Wild", "Paper", "Glass", "Midnight", "Lonely", "Northern", "Southern", "Distant", "Burning",
    "Frozen", "Hidden", "Scarlet", "Amber", "Blue", "Black", "Faded", "Bright", "Gentle",
    "Restless", "Secret", "Sleeping", "Wandering", "Lost", "Little", "Endless", "Violet", "Copper",
    "Iron", "Sacred", "Strange", "Sweet", "Tender", "Silent", "Cosmic", "Lunar", "Static",
    "Analog", "Summer", "Winter", "Ocean", "Desert", "Wooden", "Emerald", "Ivory", "Honey",
    "Dusty", "Pale", "Heavy", "Soft", "Crystal", "Magnetic",
];
#[rustfmt::skip]
const NOUNS_PL: &[&str] = &[
    "Foxes", "Wolves", "Ravens", "Tigers", "Horses", "Lions", "Owls", "Sparrows", "Serpents",
    "Kings", "Queens", "Saints", "Ghosts", "Pilots", "Sailors", "Strangers", "Dreamers", "Lovers",
    "Thieves", "Rebels", "Drifters", "Machines", "Echoes", "Shadows", "Rivers", "Satellites",
    "Comets", "Giants", "Angels", "Orphans", "Prophets", "Daughters", "Brothers", "Sisters",
    "Hearts", "Bones", "Roses", "Lilies", "Pines", "Waves", "Storms", "Lanterns", "Mirrors",
    "Engines", "Cowboys", "Vandals", "Monks", "Poets", "Animals", "Tapes",
];
#[rustfmt::skip]
const NOUN: &[&str] = &[
    "Harbor", "Heart", "River", "Light", "Night", "Fire", "Rain", "Sky", "Road", "Dream", "Shadow",
    "Moon", "Sun", "Star", "City", "Garden", "Mirror", "Window", "Highway", "Storm", "Thunder",
    "Echo", "Ghost", "Horizon", "Island", "Valley", "Mountain", "Kingdom", "Paradise", "Memory",
    "Silence", "Fever", "Gravity", "Satellite", "Signal", "Wave", "Tide", "Flame", "Smoke", "Dust",
    "Stone", "Diamond", "Gold", "Crown", "Angel", "Heaven", "Morning", "Evening", "Season",
    "Letter", "Promise", "Whisper", "Lullaby", "Anthem", "Parade", "Carousel", "Lantern",
    "Compass", "Anchor", "Orbit", "Voltage", "Circuit", "Pulse", "Rhythm", "Groove", "Melody",
    "Chorus", "Feather", "Blossom", "Ember", "Frost", "Meadow", "Canyon", "Lights", "Tears",
    "Eyes", "Hands", "Wings", "Streets", "Waters",
];
#[rustfmt::skip]
const VERBS: &[&str] = &[
    "Chasing", "Dancing", "Falling", "Burning", "Waiting", "Running", "Holding", "Breaking",
    "Dreaming", "Calling", "Crossing", "Leaving", "Finding", "Losing", "Following", "Counting",
    "Drowning", "Flying",
];
#[rustfmt::skip]
const FIRST: &[&str] = &[
    "Ava", "Ben", "Clara", "Daniel", "Elena", "Felix", "Grace", "Hugo", "Iris", "Jonas", "Kara",
    "Leo", "Maya", "Nina", "Oscar", "Paula", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera",
    "Will", "Xavier", "Yara", "Zoe", "Marcus", "Lena", "Theo", "Nora", "Jules", "Mila", "Ray",
    "June", "Otis", "Ruby", "Cole", "Ivy", "Miles", "Etta", "Louis", "Billie", "Nico", "Sade",
    "Arlo", "Frida", "Kai", "Luna", "Omar", "Priya",
];
#[rustfmt::skip]
const LAST: &[&str] = &[
    "Hart", "Stone", "Vance", "Moreau", "Lindqvist", "Okafor", "Navarro", "Kowalski", "Tanaka",
    "Brooks", "Fischer", "Delgado", "Mercer", "Holloway", "Sutton", "Ward", "Blake", "Ellis",
    "Carver", "Monroe", "Lang", "Baptiste", "Reyes", "Novak", "Haddad", "Petrov", "Nakamura",
    "Ortega", "Whitfield", "Calloway", "Duarte", "Kessler", "Marlowe", "Fontaine", "Adeyemi",
    "Lund", "Santos", "Byrne", "Achterberg", "Valdez",
];
#[rustfmt::skip]
const PLACES: &[&str] = &[
    "Lisbon", "Detroit", "Kyoto", "Berlin", "Memphis", "Lagos", "Havana", "Oslo", "Marseille",
    "Bristol", "Seoul", "Austin", "Glasgow", "Manila", "Nairobi", "Montreal", "Naples",
    "Reykjavik", "Bogota", "Leeds",
];
#[rustfmt::skip]
const ENSEMBLES: &[&str] = &[
    "Trio", "Quartet", "Ensemble", "Orchestra", "Collective", "Band", "Sound System",
];
#[rustfmt::skip]
const FORMS: &[&str] = &[
    "Nocturne", "Sonata", "Etude", "Prelude", "Suite", "Concerto", "Fugue", "Waltz", "Romance",
];
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "C major", "C minor", "D major", "D minor", "E flat major", "E minor", "F major",
    "F sharp minor", "G major", "G minor", "A major", "A minor", "B flat major", "B minor",
];
#[rustfmt::skip]
const TEXTURES: &[&str] = &[
    "lush layered production", "sparse arrangements", "a driving beat", "hazy reverb",
    "crisp drums", "a lo-fi crackle", "soaring vocals", "intimate vocals", "swirling harmonies",
    "a hypnotic groove", "a wall of distortion", "gentle fingerpicking", "deep sub bass",
    "shimmering pads", "warm tape saturation", "a slow-burning build", "call-and-response vocals",
    "tight syncopation", "cinematic strings", "a sing-along chorus",
];
const PIECES: &[&str] = &["track", "song", "piece", "tune", "number", "cut"];
const STOP: &[&str] = &["the", "of", "in", "a", "and", "for", "no", "to", "&"];

const WINDOW_START: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z
const WINDOW_END: i64 = 1_751_328_000; // 2025-07-01T00:00:00Z, exclusive
const NONE: u8 = u8::MAX;

// ---------------------------------------------------------------------------
// Catalog.

struct Artist {
    name: String,
    genre: u8,
    genre2: u8,
    pop: f64,
    era: (u16, u16),
    albums: std::ops::Range<u32>,
    tracks: std::ops::Range<u32>,
}

struct Album {
    name: String,
    tracks: std::ops::Range<u32>,
}

struct Track {
    title: String,
    artist: u32,
    album: u32,
    genres: [u8; 2],
    moods: [u8; 2],
    year: u16,
    duration: u16,
    tempo: u16,
    pop: f64,
    cold: bool,
}

impl Track {
    fn has_genre(&self, g: u8) -> bool {
        g != NONE && self.genres.contains(&g)
    }
    fn genre_list(&self) -> impl Iterator<Item = u8> + '_ {
        self.genres.iter().copied().filter(|g| *g != NONE)
    }
    fn mood_list(&self) -> impl Iterator<Item = u8> + '_ {
        self.moods.iter().copied().filter(|m| *m != NONE)
    }
}

struct Catalog {
    artists: Vec<Artist>,
    albums: Vec<Album>,
    tracks: Vec<Track>,
    by_genre: Vec<Cum>,
    by_genre_mood: Vec<Cum>, // index g * 16 + m
    global: Cum,
    artists_by_genre: Vec<Cum>,
    all_artists: Cum,
}

/// Word-list draw; the lists are never empty, "" only guards against edits.
fn pick(rng: &mut Rng, xs: &[&'static str]) -> &'static str {
    rng.pick(xs).copied().unwrap_or("")
}

fn title_case_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn artist_name(rng: &mut Rng, g: &Genre) -> String {
    let style = rng.below(10);
    match (g.family, style) {
        (6, 0..=5) | (3, 0..=2) => {
            let (f, l) = (pick(rng, FIRST), pick(rng, LAST));
            if rng.chance(0.4) {
                format!("{f} {l} {}", pick(rng, ENSEMBLES))
            } else {
                format!("{f} {l}")
            }
        }
        (4, 0..=2) | (5, 0..=1) => {
            let pre = if g.family == 4 {
                ["MC", "Lil", "Young", "Big"]
            } else {
                ["DJ", "DJ", "Kid", "Dr."]
            };
            let p = pre[rng.below(4)];
            if rng.chance(0.5) {
                format!("{p} {}", pick(rng, LAST))
            } else {
                format!("{p} {} {}", pick(rng, ADJ), pick(rng, NOUN))
            }
        }
        (_, 0..=2) => format!("The {} {}", pick(rng, ADJ), pick(rng, NOUNS_PL)),
        (_, 3..=4) => format!("{} {}", pick(rng, FIRST), pick(rng, LAST)),
        (_, 5) => format!("{} & the {}", pick(rng, FIRST), pick(rng, NOUNS_PL)),
        (_, 6..=7) => format!("{} {}", pick(rng, ADJ), pick(rng, NOUN)),
        _ => format!("{} {}", pick(rng, NOUN), pick(rng, NOUN)),
    }
}

fn album_name(rng: &mut Rng) -> String {
    match rng.below(8) {
        0..=2 => format!("{} {}", pick(rng, ADJ), pick(rng, NOUN)),
        3 => format!("{} of {}", pick(rng, NOUN), pick(rng, NOUN)),
        4 => format!("The {} Sessions", pick(rng, NOUN)),
        5 => format!("{} Nights", pick(rng, PLACES)),
        6 => format!("Songs for the {}", pick(rng, NOUN)),
        _ => pick(rng, NOUN).to_string(),
    }
}

fn track_title(rng: &mut Rng, g: &Genre) -> String {
    if g.name == "classical" && rng.chance(0.6) {
        return format!("{} No. {} in {}", pick(rng, FORMS), rng.range(1, 12), pick(rng, KEYS));
    }
    match rng.below(12) {
        0..=3 => format!("{} {}", pick(rng, ADJ), pick(rng, NOUN)),
        4 => format!("{} of {}", pick(rng, NOUN), pick(rng, NOUN)),
        5 => format!("The {}", pick(rng, NOUN)),
        6 => pick(rng, NOUN).to_string(),
        7..=8 => format!("{} the {}", pick(rng, VERBS), pick(rng, NOUN)),
        9 => format!("{} in the {}", pick(rng, NOUN), pick(rng, NOUN)),
        10 => format!("{} {}", pick(rng, VERBS), pick(rng, ADJ)),
        _ => {
            let suffix = match g.family {
                2 => "Blues",
                3 => "Waltz",
                4 => "Dub",
                5 => "Mix",
                _ => "Song",
            };
            format!("{} {} {}", pick(rng, ADJ), pick(rng, NOUN), suffix)
        }
    }
}

impl Catalog {
    fn build(cfg: &MusicConfig) -> Catalog {
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
        Catalog {
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
    fn sample_genre(&self, rng: &mut Rng, g: u8, mood: u8) -> Option<u32> {
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

    fn sample_artist_track(&self, rng: &mut Rng, a: u32, exclude: u32) -> Option<u32> {
        let art = self.artists.get(a as usize)?;
        let ids: Vec<u32> = art.tracks.clone().filter(|t| *t != exclude).collect();
        let w: Vec<f64> = ids.iter().map(|t| self.tracks[*t as usize].pop).collect();
        if ids.is_empty() {
            return None;
        }
        ids.get(rng.weighted(&w)).copied()
    }
}

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

fn describe(rng: &mut Rng, c: &Catalog, t: &Track) -> String {
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

fn write_items(cfg: &MusicConfig, c: &Catalog, w: &mut impl Write) -> io::Result<()> {
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
// Query strings (shared by search events and the query set).

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum QKind {
    Artist,
    Title,
    Album,
    Descriptor,
    Mixed,
}

impl QKind {
    fn name(self) -> &'static str {
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

fn query_for(rng: &mut Rng, c: &Catalog, t: u32, kind: QKind) -> String {
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
// events.jsonl

const PLAY: u8 = 0;
const SKIP: u8 = 1;
const SEARCH: u8 = 2;

struct Ev {
    ts: i64,
    user: u32,
    seq: u32,
    item: u32,
    kind: u8,
    query: u32,
}

struct User {
    genres: Vec<(u8, f64)>,
    moods: Vec<u8>,
    favs: Vec<u32>,
}

fn make_user(rng: &mut Rng, c: &Catalog) -> User {
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

fn simulate_events(cfg: &MusicConfig, c: &Catalog) -> (Vec<Ev>, Vec<String>) {
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
fn next_track(rng: &mut Rng, c: &Catalog, u: &User, cur: u32, theme_g: u8, theme_m: u8) -> Option<u32> {
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

fn write_events(cfg: &MusicConfig, _c: &Catalog, evs: &(Vec<Ev>, Vec<String>), w: &mut impl Write) -> io::Result<()> {
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

struct Query {
    text: String,
    kind: QKind,
    relevant: BTreeMap<u32, u8>,
}

/// Tracks ordered by popularity, most popular first; ties by id for determinism.
fn by_pop_desc(c: &Catalog, ids: &mut [u32]) {
    ids.sort_unstable_by(|a, b| c.tracks[*b as usize].pop.total_cmp(&c.tracks[*a as usize].pop).then(a.cmp(b)));
}

fn build_queries(cfg: &MusicConfig, c: &Catalog) -> Vec<Query> {
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

#[derive(Serialize)]
struct QueryOut<'a> {
    id: String,
    query: &'a str,
    kind: &'static str,
    relevant: BTreeMap<String, u8>,
}

fn write_queries(cfg: &MusicConfig, _c: &Catalog, qs: &[Query], w: &mut impl Write) -> io::Result<()> {
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
    use serde_json::Value;
    use std::collections::HashMap;

    fn small() -> MusicConfig {
        MusicConfig {
            tracks: 1500,
            artists: 175,
            users: 400,
            queries: 60,
            seed: 7,
        }
    }

    fn lines(s: &str) -> Vec<Value> {
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
