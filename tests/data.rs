//! The shipped demo data is exactly what the seeded generator writes.

use twostage::synth::music::{generate, MusicConfig};

mod common;

#[test]
fn committed_music_data_matches_the_generator_byte_for_byte() {
    let data = generate(&MusicConfig::default());
    for (name, fresh) in [
        ("items.jsonl", &data.items),
        ("events.jsonl", &data.events),
        ("queries.jsonl", &data.queries),
    ] {
        let committed = std::fs::read_to_string(common::data_dir().join(name)).expect(name);
        assert!(
            committed == *fresh,
            "data/music/{name} differs from the generator's output: run `cargo run --release --features harness --example generate_music_data`"
        );
    }
}

#[test]
fn shipped_data_meets_the_size_requirements() {
    let f = common::music();
    assert!(f.catalog.len() >= 5_000);
    assert!(f.events.len() >= 100_000);
    assert!(f.events.users().len() >= 2_000);
    let bytes: u64 = ["items.jsonl", "events.jsonl", "queries.jsonl"]
        .iter()
        .map(|n| std::fs::metadata(common::data_dir().join(n)).unwrap().len())
        .sum();
    assert!(bytes < 20_000_000, "data/ must stay under 20 MB, is {bytes}");
}
