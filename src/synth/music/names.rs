//! Artist names, album names and track titles drawn from the word lists.

use super::prng::Rng;
use super::vocab::{Genre, ADJ, ENSEMBLES, FIRST, FORMS, KEYS, LAST, NOUN, NOUNS_PL, PLACES, VERBS};

/// Word-list draw; the lists are never empty, "" only guards against edits.
fn pick(rng: &mut Rng, xs: &[&'static str]) -> &'static str {
    rng.pick(xs).copied().unwrap_or("")
}

pub(super) fn title_case_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

pub(super) fn artist_name(rng: &mut Rng, g: &Genre) -> String {
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

pub(super) fn album_name(rng: &mut Rng) -> String {
    match rng.below(8) {
        0..=2 => format!("{} {}", pick(rng, ADJ), pick(rng, NOUN)),
        3 => format!("{} of {}", pick(rng, NOUN), pick(rng, NOUN)),
        4 => format!("The {} Sessions", pick(rng, NOUN)),
        5 => format!("{} Nights", pick(rng, PLACES)),
        6 => format!("Songs for the {}", pick(rng, NOUN)),
        _ => pick(rng, NOUN).to_string(),
    }
}

pub(super) fn track_title(rng: &mut Rng, g: &Genre) -> String {
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
