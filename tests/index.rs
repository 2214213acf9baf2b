//! The index on disk: verified on open, replaced atomically, and learned
//! embeddings that predict listening better than popularity.

use std::collections::HashMap;
use std::path::Path;

use twostage::{Catalog, Context, Engine, Error, Events, IndexBuilder, Request, Retriever, Vectors};

mod common;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Byte offsets worth damaging in a file of `len` bytes: both ends, the
/// quarters and a few in the header (where lengths and magic numbers live).
fn offsets(len: usize) -> Vec<usize> {
    let mut v = vec![
        0,
        1,
        2,
        7,
        len / 4,
        len / 3,
        len / 2,
        3 * len / 4,
        len.saturating_sub(2),
        len.saturating_sub(1),
    ];
    v.retain(|&o| o < len);
    v.sort_unstable();
    v.dedup();
    v
}

#[test]
fn every_file_is_checked_on_open() {
    let f = common::music();
    let tmp = tempfile::tempdir().unwrap();
    // One copy, each mutation undone after its check: cheap enough to try many.
    let copy = tmp.path().join("copy");
    common::copy_dir(&f.dir, &copy);
    let mut tried = 0;
    for file in files(&f.dir) {
        let rel = file.strip_prefix(&f.dir).unwrap();
        let name = rel.file_name().unwrap().to_str().unwrap().to_string();
        let target = copy.join(rel);
        let original = std::fs::read(&target).unwrap();
        let len = original.len();
        let mut mutations: Vec<(String, Vec<u8>)> = Vec::new();
        // The build log is checked by size on open, and whole by the
        // compaction that reads it (tests/compact.rs).
        let checked_whole = name != "events.bin";
        for at in offsets(len).into_iter().filter(|_| checked_whole) {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut b = original.clone();
                b[at] ^= mask;
                mutations.push((format!("flip {mask:#04x} at {at}"), b));
            }
        }
        for at in [0, 1, len / 3, len / 2, len.saturating_sub(1)] {
            if at < len {
                mutations.push((format!("truncate to {at}"), original[..at].to_vec()));
            }
        }
        let mut longer = original.clone();
        longer.push(0);
        mutations.push(("append a byte".into(), longer));
        for (what, bytes) in mutations {
            std::fs::write(&target, &bytes).unwrap();
            let err = Engine::open(&copy)
                .err()
                .unwrap_or_else(|| panic!("{what} of {} was not detected", rel.display()));
            assert!(!err.is_caller_error(), "{what} of {}: {err}", rel.display());
            assert!(err.to_string().contains(&name), "{what}: error does not name {name}: {err}");
            tried += 1;
        }
        std::fs::write(&target, &original).unwrap();
    }
    assert!(tried > 100, "only {tried} mutations tried");
    // Every mutation was undone: the copy opens and serves again.
    assert_eq!(Engine::open(&copy).unwrap().len(), f.engine.len());

    // A foreign file in place of one of ours (same name, other content).
    let copy = tmp.path().join("foreign");
    common::copy_dir(&f.dir, &copy);
    std::fs::copy(copy.join("ann/graph.bin"), copy.join("items.bin")).unwrap();
    let err = Engine::open(&copy).err().unwrap();
    assert!(
        matches!(err, Error::Corrupt { .. }) && err.to_string().contains("items.bin"),
        "{err}"
    );
    // A directory whose manifest is someone else's.
    let copy = tmp.path().join("not-ours");
    std::fs::create_dir(&copy).unwrap();
    std::fs::write(copy.join("manifest.json"), br#"{"name":"some other tool","version":3}"#).unwrap();
    let err = Engine::open(&copy).err().unwrap();
    assert!(err.to_string().contains("not a twostage index"), "{err}");
    // No manifest at all (an empty directory, or a path that does not exist).
    let err = Engine::open(tmp.path().join("nowhere")).err().unwrap();
    assert!(matches!(err, Error::NotAnIndex { .. }), "{err}");
    // A missing file and an extra file.
    let copy = tmp.path().join("missing");
    common::copy_dir(&f.dir, &copy);
    std::fs::remove_file(copy.join("items.bin")).unwrap();
    assert!(matches!(Engine::open(&copy), Err(Error::Io { .. })));
    let copy = tmp.path().join("extra");
    common::copy_dir(&f.dir, &copy);
    std::fs::write(copy.join("text/stray.bin"), b"x").unwrap();
    assert!(Engine::open(&copy).err().unwrap().to_string().contains("stray.bin"));
    // A newer format version says so.
    let copy = tmp.path().join("newer");
    common::copy_dir(&f.dir, &copy);
    let manifest = std::fs::read_to_string(copy.join("manifest.json")).unwrap();
    let bumped = manifest.replace(
        &format!("\"format_version\": {}", twostage::FORMAT_VERSION),
        "\"format_version\": 999",
    );
    std::fs::write(copy.join("manifest.json"), bumped).unwrap();
    let err = Engine::open(&copy).err().unwrap();
    assert!(matches!(err, Error::IncompatibleVersion { found: 999, .. }), "{err}");
    assert!(err.to_string().contains("newer"));
}

#[test]
fn a_rebuild_replaces_the_index_and_a_failed_build_leaves_it_alone() {
    let f = common::music();
    let tmp = tempfile::tempdir().unwrap();
    let small: Vec<_> = f.catalog.items()[..300].to_vec();
    let catalog = Catalog::new(small).unwrap();
    let events = Events::default();
    let out = tmp.path().join("idx");
    IndexBuilder::new().build(&catalog, &events, &out).unwrap();
    assert_eq!(Engine::open(&out).unwrap().len(), 300);
    let bigger = Catalog::new(f.catalog.items()[..400].to_vec()).unwrap();
    IndexBuilder::new().build(&bigger, &events, &out).unwrap();
    assert_eq!(Engine::open(&out).unwrap().len(), 400);
    // A build that fails (bad group key) changes nothing.
    assert!(IndexBuilder::new()
        .group_key("no-such-attribute")
        .build(&catalog, &events, &out)
        .is_err());
    assert_eq!(Engine::open(&out).unwrap().len(), 400);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("idx")],
        "temporary directories left behind"
    );
    // Refuses to replace a directory that is not an index.
    let other = tmp.path().join("docs");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("keep.txt"), b"mine").unwrap();
    assert!(IndexBuilder::new().build(&catalog, &events, &other).is_err());
    assert!(other.join("keep.txt").exists());
}

/// Item embeddings learned from the first 80% of the log must predict the
/// next track of later sessions much better than popularity.
#[test]
fn learned_neighbours_predict_the_next_track_better_than_popularity() {
    let f = common::music();
    let all = f.events.events();
    let cut = all[all.len() * 8 / 10].ts;
    let users = f.events.users().to_vec();
    let train: Vec<_> = all.iter().filter(|e| e.ts < cut).cloned().collect();
    let test: Vec<_> = all.iter().filter(|e| e.ts >= cut).cloned().collect();
    let train = Events::from_events(users.clone(), train, &f.catalog).unwrap();
    let test = Events::from_events(users, test, &f.catalog).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    IndexBuilder::new()
        .without_ranker_training()
        .build(&f.catalog, &train, tmp.path().join("i"))
        .unwrap();
    let engine = Engine::open(tmp.path().join("i")).unwrap();

    let mut plays: HashMap<u32, usize> = HashMap::new();
    for e in train.events() {
        *plays.entry(e.item).or_default() += 1;
    }
    let mut popular: Vec<(u32, usize)> = plays.into_iter().collect();
    popular.sort_by_key(|&(i, c)| (std::cmp::Reverse(c), i));
    let popular: Vec<String> = popular
        .iter()
        .take(50)
        .map(|&(i, _)| f.catalog.items()[i as usize].id.clone())
        .collect();

    let (mut ann_hits, mut pop_hits, mut n) = (0, 0, 0);
    for s in test.sessions(1800).iter().step_by(7) {
        let seq: Vec<u32> = s.played().collect();
        for w in seq.windows(2).take(3) {
            let (cur, next) = (&f.catalog.items()[w[0] as usize].id, &f.catalog.items()[w[1] as usize].id);
            if cur == next {
                continue;
            }
            // ANN alone: switch the other retrievers off.
            let req = Request::new(Context::listening(cur.clone()))
                .k(50)
                .candidates(Retriever::Covisit, 0)
                .candidates(Retriever::Popular, 0)
                .candidates(Retriever::Ann, 50);
            let recs = engine.recommend(&req).unwrap();
            ann_hits += recs.items.iter().any(|r| &r.id == next) as usize;
            pop_hits += popular.contains(next) as usize;
            n += 1;
        }
    }
    assert!(n > 500, "too few test transitions: {n}");
    let (ann, pop) = (ann_hits as f64 / n as f64, pop_hits as f64 / n as f64);
    eprintln!("next-track hit rate @50 over {n} transitions: ANN {ann:.3}, popularity {pop:.3}");
    assert!(ann > 2.0 * pop, "ANN {ann:.3} vs popularity {pop:.3}");
}

#[test]
fn a_catalog_with_over_long_text_builds_when_asked_to_truncate_and_the_report_counts_it() {
    // One real catalog had an 81 KB description: refused by default, cut on request.
    let long = "harbour lights and distant engines ".repeat(2_400);
    let items = format!(
        "{{\"id\":\"a\",\"title\":\"Night Ferry\",\"text\":{{\"description\":\"{long}\"}}}}\n\
         {{\"id\":\"b\",\"title\":\"Morning Train\",\"text\":{{\"description\":\"rails at dawn\"}}}}\n"
    );
    assert!(long.len() > twostage::catalog::MAX_TEXT_BYTES);
    let refused = Catalog::from_jsonl_reader(items.as_bytes(), "items.jsonl".as_ref()).unwrap_err();
    assert!(
        refused.is_caller_error() && refused.to_string().contains("text.description"),
        "{refused}"
    );

    let policy = twostage::LongText::Truncate { max_bytes: 16 << 10 };
    let catalog = Catalog::from_jsonl_reader_with(items.as_bytes(), "items.jsonl".as_ref(), policy).unwrap();
    let events = Events::from_jsonl_reader(&b""[..], "events.jsonl".as_ref(), &catalog).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = IndexBuilder::new().build(&catalog, &events, dir.path().join("i")).unwrap();
    assert_eq!(report.truncated_fields, 1);
    let engine = Engine::open(dir.path().join("i")).unwrap();
    let hits = engine.recommend(&Request::new(Context::search("distant engines")).k(1)).unwrap();
    assert_eq!(hits.items[0].id, "a", "the kept part of the text is searchable");
}

#[test]
fn opening_a_folder_that_is_not_an_index_says_so_once() {
    use std::error::Error as _;
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let unrelated = tmp.path().join("photos");
    std::fs::create_dir(&unrelated).unwrap();
    std::fs::write(unrelated.join("holiday.jpg"), b"not an index").unwrap();
    std::fs::create_dir(unrelated.join("2024")).unwrap();
    for dir in [&empty, &unrelated] {
        let err = Engine::open(dir).unwrap_err();
        assert!(matches!(&err, Error::NotAnIndex { path, .. } if path == dir), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("not a twostage index (no manifest.json in {})", dir.display())
        );
        // No OS error as a source: a chain printer (anyhow's `{:#}`) would print it a second time.
        assert!(err.source().is_none(), "{err}");
        assert!(err.is_caller_error());
    }
    let nowhere = tmp.path().join("nowhere");
    let err = Engine::open(&nowhere).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("not a twostage index (no such directory {})", nowhere.display())
    );
}

#[test]
fn the_build_report_says_which_retrievers_are_live_and_why_one_is_off() {
    use twostage::Retriever;
    let state = |report: &twostage::BuildReport, r: Retriever| report.retrievers.iter().find(|s| s.retriever == r).cloned().unwrap();
    let items = r#"
{"id":"t1","title":"Blue Train"}
{"id":"t2","title":"Giant Steps"}
{"id":"t3","title":"So What"}
"#;
    let catalog = Catalog::from_jsonl_reader(items.as_bytes(), "items.jsonl".as_ref()).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // No events at all: only the lexical retriever can answer.
    let none = Events::from_jsonl_reader(&b""[..], "events.jsonl".as_ref(), &catalog).unwrap();
    let report = IndexBuilder::new().build(&catalog, &none, dir.path().join("a")).unwrap();
    assert_eq!(report.retrievers.len(), Retriever::ALL.len());
    assert!(state(&report, Retriever::Lexical).live);
    for r in [Retriever::Ann, Retriever::Covisit, Retriever::Popular, Retriever::Content] {
        let s = state(&report, r);
        assert!(!s.live && s.note.is_some(), "{s:?}");
    }
    assert!(state(&report, Retriever::Covisit).note.unwrap().contains("two plays"));

    // Sessions: everything but the content space (no encoder) is live.
    let events = common::sessions(&catalog, 30, &["t1", "t2", "t3"]);
    let report = IndexBuilder::new()
        .without_ranker_training()
        .build(&catalog, &events, dir.path().join("b"))
        .unwrap();
    for r in [Retriever::Ann, Retriever::Lexical, Retriever::Covisit, Retriever::Popular] {
        assert!(state(&report, r).live, "{r:?}");
    }
    assert!(state(&report, Retriever::Content).note.unwrap().contains("encoder"));

    // Only some items carry a vector: refused by default, naming the first
    // without one; with the fallback the report says how few have one.
    let partial = r#"
{"id":"t1","title":"Blue Train","vector":[1.0,0.0]}
{"id":"t2","title":"Giant Steps"}
{"id":"t3","title":"So What"}
"#;
    let catalog = Catalog::from_jsonl_reader(partial.as_bytes(), "items.jsonl".as_ref()).unwrap();
    let events = common::sessions(&catalog, 30, &["t1", "t2", "t3"]);
    let e = IndexBuilder::new()
        .without_ranker_training()
        .build(&catalog, &events, dir.path().join("c"))
        .unwrap_err();
    assert!(
        e.is_caller_error() && e.to_string().contains("1 of 3") && e.to_string().contains("`t2`"),
        "{e}"
    );
    assert!(!dir.path().join("c").exists(), "nothing is written");
    let report = IndexBuilder::new()
        .without_ranker_training()
        .vectors(Vectors::CatalogWithFallback)
        .build(&catalog, &events, dir.path().join("c"))
        .unwrap();
    let ann = state(&report, Retriever::Ann);
    assert!(
        ann.live && ann.note.as_deref().is_some_and(|n| n.contains("1 of 3") && n.contains("catalog")),
        "{ann:?}"
    );
    // Or the catalog's vectors are set aside and every item gets a learned one.
    let report = IndexBuilder::new()
        .without_ranker_training()
        .vectors(Vectors::Learned)
        .build(&catalog, &events, dir.path().join("d"))
        .unwrap();
    assert_eq!((report.stats.vector_source.as_str(), report.stats.vectors), ("learned", 3));
    // A fallback with nothing to fall back from is a mistake, said so.
    let plain = Catalog::from_jsonl_reader(items.as_bytes(), "items.jsonl".as_ref()).unwrap();
    let e = IndexBuilder::new()
        .vectors(Vectors::CatalogWithFallback)
        .build(&plain, &common::sessions(&plain, 30, &["t1", "t2", "t3"]), dir.path().join("e"))
        .unwrap_err();
    assert!(e.to_string().contains("no catalog item carries"), "{e}");
}

#[test]
fn the_report_gives_the_schema_used_and_a_saved_schema_builds_the_same_index_shape() {
    let items = r#"
{"id":"t1","title":"Blue Train","text":{"notes":"hard bop"},"tags":{"genre":["jazz"]},"attributes":{"artist":"Coltrane"}}
{"id":"t2","title":"Giant Steps","tags":{"genre":["jazz"]},"attributes":{"artist":"Coltrane"}}
"#;
    let catalog = Catalog::from_jsonl_reader(items.as_bytes(), "items.jsonl".as_ref()).unwrap();
    let events = common::sessions(&catalog, 10, &["t1", "t2"]);
    let dir = tempfile::tempdir().unwrap();
    let report = IndexBuilder::new()
        .without_ranker_training()
        .group_key("artist")
        .build(&catalog, &events, dir.path().join("a"))
        .unwrap();
    assert_eq!(report.schema, twostage::Schema::infer(&catalog).with_group_key("artist"));

    // Saved as JSON, edited (no longer search the notes), given back.
    let mut json: serde_json::Value = serde_json::to_value(&report.schema).unwrap();
    json["text_fields"].as_array_mut().unwrap().retain(|f| f["source"] != "text.notes");
    let edited: twostage::Schema = serde_json::from_value(json).unwrap();
    let again = IndexBuilder::new()
        .without_ranker_training()
        .schema(edited.clone())
        .build(&catalog, &events, dir.path().join("b"))
        .unwrap();
    assert_eq!(again.schema, edited);
    assert_eq!(Engine::open(dir.path().join("b")).unwrap().info().schema, edited);
    let hits = Engine::open(dir.path().join("b"))
        .unwrap()
        .recommend(&Request::new(Context::search("hard bop")).k(1))
        .unwrap();
    assert!(hits.items.is_empty(), "the notes are no longer searched");

    // A misspelt key in a schema file is refused, not ignored.
    assert!(serde_json::from_str::<twostage::Schema>(r#"{"text_fields":[],"tag_fieldz":[]}"#).is_err());
}
