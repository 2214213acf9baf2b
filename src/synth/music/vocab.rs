//! Vocabulary: the moods, the genre table and the word lists every name,
//! title, description and query is made of.

pub(super) struct Genre {
    pub(super) name: &'static str,
    pub(super) family: u8,
    pub(super) weight: f64,
    pub(super) tempo: (u64, u64),
    pub(super) dur: (u64, u64),
    pub(super) moods: &'static [u8],
    pub(super) instruments: &'static [&'static str],
}

#[rustfmt::skip]
pub(super) const MOODS: [&str; 16] = [
    "melancholic", "upbeat", "calm", "energetic", "dark", "romantic", "dreamy", "aggressive",
    "nostalgic", "playful", "hopeful", "nocturnal", "euphoric", "mellow", "intense", "groovy",
];
// Mood indices, for readability of the genre table.
pub(super) const MEL: u8 = 0;
pub(super) const UPB: u8 = 1;
pub(super) const CLM: u8 = 2;
pub(super) const ENG: u8 = 3;
pub(super) const DRK: u8 = 4;
pub(super) const ROM: u8 = 5;
pub(super) const DRM: u8 = 6;
pub(super) const AGG: u8 = 7;
pub(super) const NOS: u8 = 8;
pub(super) const PLY: u8 = 9;
pub(super) const HOP: u8 = 10;
pub(super) const NOC: u8 = 11;
pub(super) const EUP: u8 = 12;
pub(super) const MLW: u8 = 13;
pub(super) const INT: u8 = 14;
pub(super) const GRV: u8 = 15;

/// Activities that make "<mood> <genre> for <activity>" queries sound natural.
#[rustfmt::skip]
pub(super) const MOOD_ACTIVITY: [&[&str]; 16] = [
    &["rainy days", "late nights"], &["parties", "road trips"], &["studying", "reading"],
    &["running", "the gym"], &["late nights", "driving"], &["date night", "dinner"],
    &["sleep", "daydreaming"], &["the gym", "working out"], &["road trips", "rainy days"],
    &["kids", "cooking"], &["mornings", "road trips"], &["driving", "late nights"],
    &["parties", "dancing"], &["sunday mornings", "cooking"], &["working out", "focus"],
    &["dancing", "cooking"],
];

#[rustfmt::skip]
pub(super) const GENRES: [Genre; 24] = [
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
pub(super) const ADJ: &[&str] = &[
    "Velvet", "Neon", "Silver", "Golden", "Broken", "Hollow", "Electric", "Crimson", "Quiet",
    "Wild", "Paper", "Glass", "Midnight", "Lonely", "Northern", "Southern", "Distant", "Burning",
    "Frozen", "Hidden", "Scarlet", "Amber", "Blue", "Black", "Faded", "Bright", "Gentle",
    "Restless", "Secret", "Sleeping", "Wandering", "Lost", "Little", "Endless", "Violet", "Copper",
    "Iron", "Sacred", "Strange", "Sweet", "Tender", "Silent", "Cosmic", "Lunar", "Static",
    "Analog", "Summer", "Winter", "Ocean", "Desert", "Wooden", "Emerald", "Ivory", "Honey",
    "Dusty", "Pale", "Heavy", "Soft", "Crystal", "Magnetic",
];
#[rustfmt::skip]
pub(super) const NOUNS_PL: &[&str] = &[
    "Foxes", "Wolves", "Ravens", "Tigers", "Horses", "Lions", "Owls", "Sparrows", "Serpents",
    "Kings", "Queens", "Saints", "Ghosts", "Pilots", "Sailors", "Strangers", "Dreamers", "Lovers",
    "Thieves", "Rebels", "Drifters", "Machines", "Echoes", "Shadows", "Rivers", "Satellites",
    "Comets", "Giants", "Angels", "Orphans", "Prophets", "Daughters", "Brothers", "Sisters",
    "Hearts", "Bones", "Roses", "Lilies", "Pines", "Waves", "Storms", "Lanterns", "Mirrors",
    "Engines", "Cowboys", "Vandals", "Monks", "Poets", "Animals", "Tapes",
];
#[rustfmt::skip]
pub(super) const NOUN: &[&str] = &[
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
pub(super) const VERBS: &[&str] = &[
    "Chasing", "Dancing", "Falling", "Burning", "Waiting", "Running", "Holding", "Breaking",
    "Dreaming", "Calling", "Crossing", "Leaving", "Finding", "Losing", "Following", "Counting",
    "Drowning", "Flying",
];
#[rustfmt::skip]
pub(super) const FIRST: &[&str] = &[
    "Ava", "Ben", "Clara", "Daniel", "Elena", "Felix", "Grace", "Hugo", "Iris", "Jonas", "Kara",
    "Leo", "Maya", "Nina", "Oscar", "Paula", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera",
    "Will", "Xavier", "Yara", "Zoe", "Marcus", "Lena", "Theo", "Nora", "Jules", "Mila", "Ray",
    "June", "Otis", "Ruby", "Cole", "Ivy", "Miles", "Etta", "Louis", "Billie", "Nico", "Sade",
    "Arlo", "Frida", "Kai", "Luna", "Omar", "Priya",
];
#[rustfmt::skip]
pub(super) const LAST: &[&str] = &[
    "Hart", "Stone", "Vance", "Moreau", "Lindqvist", "Okafor", "Navarro", "Kowalski", "Tanaka",
    "Brooks", "Fischer", "Delgado", "Mercer", "Holloway", "Sutton", "Ward", "Blake", "Ellis",
    "Carver", "Monroe", "Lang", "Baptiste", "Reyes", "Novak", "Haddad", "Petrov", "Nakamura",
    "Ortega", "Whitfield", "Calloway", "Duarte", "Kessler", "Marlowe", "Fontaine", "Adeyemi",
    "Lund", "Santos", "Byrne", "Achterberg", "Valdez",
];
#[rustfmt::skip]
pub(super) const PLACES: &[&str] = &[
    "Lisbon", "Detroit", "Kyoto", "Berlin", "Memphis", "Lagos", "Havana", "Oslo", "Marseille",
    "Bristol", "Seoul", "Austin", "Glasgow", "Manila", "Nairobi", "Montreal", "Naples",
    "Reykjavik", "Bogota", "Leeds",
];
#[rustfmt::skip]
pub(super) const ENSEMBLES: &[&str] = &[
    "Trio", "Quartet", "Ensemble", "Orchestra", "Collective", "Band", "Sound System",
];
#[rustfmt::skip]
pub(super) const FORMS: &[&str] = &[
    "Nocturne", "Sonata", "Etude", "Prelude", "Suite", "Concerto", "Fugue", "Waltz", "Romance",
];
#[rustfmt::skip]
pub(super) const KEYS: &[&str] = &[
    "C major", "C minor", "D major", "D minor", "E flat major", "E minor", "F major",
    "F sharp minor", "G major", "G minor", "A major", "A minor", "B flat major", "B minor",
];
#[rustfmt::skip]
pub(super) const TEXTURES: &[&str] = &[
    "lush layered production", "sparse arrangements", "a driving beat", "hazy reverb",
    "crisp drums", "a lo-fi crackle", "soaring vocals", "intimate vocals", "swirling harmonies",
    "a hypnotic groove", "a wall of distortion", "gentle fingerpicking", "deep sub bass",
    "shimmering pads", "warm tape saturation", "a slow-burning build", "call-and-response vocals",
    "tight syncopation", "cinematic strings", "a sing-along chorus",
];
pub(super) const PIECES: &[&str] = &["track", "song", "piece", "tune", "number", "cut"];
pub(super) const STOP: &[&str] = &["the", "of", "in", "a", "and", "for", "no", "to", "&"];

/// "No genre" / "no mood" in the `u8` slots of tracks, artists and sessions.
pub(super) const NONE: u8 = u8::MAX;
