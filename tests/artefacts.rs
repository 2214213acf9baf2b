//! Log artefacts (feature `parquet`): what a build reads of the event log,
//! written as Parquet and read back, builds the very index the log builds;
//! damaged or mismatched artefacts are refused with the file, row and column.

#![cfg(feature = "parquet")]

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use twostage::{Catalog, Context, CovisitParams, Engine, Error, Events, IndexBuilder, LogArtefacts, Request, Retriever, TrainParams};

fn builder() -> IndexBuilder {
    IndexBuilder::new().group_key("artist").without_ranker_training()
}

/// The music catalog and the first 30,000 events of its log.
fn music() -> (Catalog, Events) {
    let dir = common::data_dir();
    let catalog = Catalog::from_jsonl_path(dir.join("items.jsonl")).unwrap();
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let head: String = text.lines().take(30_000).flat_map(|l| [l, "\n"]).collect();
    let events = Events::from_jsonl_reader(head.as_bytes(), Path::new("events.jsonl"), &catalog).unwrap();
    (catalog, events)
}

/// Only the co-visitation and popularity retrievers: the two the artefacts
/// decide alone (the ANN graph's parallel build is not deterministic).
fn collaborative(context: Context) -> Request {
    [Retriever::Ann, Retriever::Lexical, Retriever::Content, Retriever::Linear]
        .into_iter()
        .fold(Request::new(context).k(20), |r, off| r.candidates(off, 0))
}

fn ids(engine: &Engine, request: &Request) -> Vec<String> {
    engine.recommend(request).unwrap().items.into_iter().map(|r| r.id).collect()
}

#[test]
fn artefacts_round_trip_and_build_the_same_index() {
    let (catalog, events) = music();
    let tmp = tempfile::tempdir().unwrap();
    let b = builder();
    let computed = b.log_artefacts(&catalog, &events).unwrap();
    assert_eq!(computed.summary().events, 30_000);
    assert!(computed.summary().sessions > 1_000, "{:?}", computed.summary());
    computed.write_parquet(tmp.path().join("artefacts")).unwrap();
    let read = LogArtefacts::from_parquet(tmp.path().join("artefacts"), &catalog).unwrap();
    assert_eq!(read.differences(&computed, 5), Vec::<String>::new());
    assert_eq!(read, computed);

    let (from_log, from_artefacts) = (tmp.path().join("log"), tmp.path().join("art"));
    let r1 = b.build(&catalog, &events, &from_log).unwrap();
    let r2 = b.build_from_artefacts(&catalog, &read, &from_artefacts).unwrap();
    assert_eq!((r1.stats.events, r1.stats.sessions), (r2.stats.events, r2.stats.sessions));
    // Popularity, co-visitation lists, linear weights, learned vectors and
    // every item column: byte for byte.
    let store = |dir: &Path| std::fs::read(dir.join("items.bin")).unwrap();
    assert!(store(&from_log) == store(&from_artefacts), "items.bin differs");
    // The query–category model, from the searches artefact.
    assert!(r1.stats.query_category_searches > 100, "{}", r1.stats.query_category_searches);
    assert_eq!(r1.stats.query_category_searches, r2.stats.query_category_searches);
    let model = |dir: &Path| std::fs::read(dir.join("query_categories.bin")).unwrap();
    assert!(model(&from_log) == model(&from_artefacts), "query_categories.bin differs");

    let (e1, e2) = (Engine::open(&from_log).unwrap(), Engine::open(&from_artefacts).unwrap());
    let mut compared = 0;
    for item in catalog.items().iter().step_by(97) {
        let request = collaborative(Context::listening(item.id.as_str()));
        let got = ids(&e1, &request);
        assert_eq!(got, ids(&e2, &request), "listening to {}", item.id);
        compared += usize::from(!got.is_empty());
    }
    assert!(compared > 50, "only {compared} non-empty lists compared");
    let popular = collaborative(Context::listening(catalog.items()[0].id.as_str())).candidates(Retriever::Covisit, 0);
    assert_eq!(ids(&e1, &popular), ids(&e2, &popular), "popularity");
    assert_eq!(ids(&e1, &popular).len(), 20);
}

/// A catalog small enough for the exact linear fit, which reads every
/// co-occurrence partner (the artefacts keep them all, both ways).
#[test]
fn an_exactly_fitted_catalog_builds_the_same_from_artefacts() {
    let dir = common::data_dir();
    let items: String = std::fs::read_to_string(dir.join("items.jsonl"))
        .unwrap()
        .lines()
        .take(800)
        .flat_map(|l| [l, "\n"])
        .collect();
    let catalog = Catalog::from_jsonl_reader(items.as_bytes(), Path::new("items.jsonl")).unwrap();
    let log: String = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| catalog.index_of(&l[l.find("\"item\":\"").unwrap() + 8..][..9]).is_some())
        .flat_map(|l| [l, "\n"])
        .collect();
    let events = Events::from_jsonl_reader(log.as_bytes(), Path::new("events.jsonl"), &catalog).unwrap();
    assert!(events.len() > 5_000, "{} events", events.len());
    let tmp = tempfile::tempdir().unwrap();
    let b = builder();
    let artefacts = b.log_artefacts(&catalog, &events).unwrap();
    assert_eq!(artefacts.summary().cooccurrence_kept, None, "every partner, for the exact fit");
    artefacts.write_parquet(tmp.path().join("a")).unwrap();
    let read = LogArtefacts::from_parquet(tmp.path().join("a"), &catalog).unwrap();
    assert_eq!(read, artefacts);
    let r1 = b.build(&catalog, &events, tmp.path().join("log")).unwrap();
    let r2 = b.build_from_artefacts(&catalog, &read, tmp.path().join("art")).unwrap();
    assert_eq!((r1.stats.linear_fit.as_str(), r2.stats.linear_fit.as_str()), ("exact", "exact"));
    assert!(r1.stats.linear_weights > 10_000, "{} weights", r1.stats.linear_weights);
    let store = |d: &str| std::fs::read(tmp.path().join(d).join("items.bin")).unwrap();
    assert!(store("log") == store("art"), "items.bin differs");
}

#[test]
fn spark_style_part_directories_read_the_same() {
    let (catalog, events) = music();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let computed = builder().log_artefacts(&catalog, &events).unwrap();
    computed.write_parquet(dir).unwrap();
    for name in ["summary", "popularity", "pairs", "cooccurrence", "searches"] {
        let file = dir.join(format!("{name}.parquet"));
        let moved = dir.join(format!("{name}.part"));
        std::fs::rename(&file, &moved).unwrap();
        std::fs::create_dir(&file).unwrap();
        std::fs::rename(&moved, file.join("part-00000-x.snappy.parquet")).unwrap();
        std::fs::write(file.join("_SUCCESS"), "").unwrap();
        std::fs::write(file.join(".part-00000-x.snappy.parquet.crc"), "junk").unwrap();
    }
    assert_eq!(LogArtefacts::from_parquet(dir, &catalog).unwrap(), computed);
}

fn write(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn strings(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

#[test]
fn damaged_or_mismatched_artefacts_are_refused_by_name() {
    let (catalog, events) = music();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    builder().log_artefacts(&catalog, &events).unwrap().write_parquet(dir).unwrap();
    let pairs = |from: [&str; 3], distance: [i32; 3]| {
        write(
            &dir.join("pairs.parquet"),
            vec![
                ("from_item", strings(&from)),
                ("to_item", strings(&["trk-00001", "trk-00002", "trk-00003"])),
                ("distance", Arc::new(Int32Array::from(distance.to_vec())) as ArrayRef),
                ("count", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ],
        )
    };
    let refused = |column: &str, row: usize, says: &str| match LogArtefacts::from_parquet(dir, &catalog) {
        Err(Error::InvalidParquet {
            path,
            row_group,
            row: r,
            column: c,
            reason,
        }) => {
            assert!(path.ends_with("pairs.parquet"), "{}", path.display());
            assert_eq!((row_group, r, c.as_str()), (0, row, column), "{reason}");
            assert!(reason.contains(says), "{reason}");
        }
        other => panic!("expected a Parquet error naming {column}, got {other:?}"),
    };
    pairs(["trk-00009", "trk-00009", "no-such-item"], [1, 2, 1]);
    refused("from_item", 2, "unknown item id `no-such-item`");
    pairs(["trk-00009", "trk-00009", "trk-00009"], [1, 6, 1]);
    refused("distance", 1, "outside 1..=5");

    // Computed with another window: the build says which parameter differs.
    let other = IndexBuilder::new()
        .without_ranker_training()
        .covisit(CovisitParams::default().window(3));
    let good = other.log_artefacts(&catalog, &events).unwrap();
    let err = builder().build_from_artefacts(&catalog, &good, dir.join("index")).unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig(m) if m.contains("window 3")), "{err}");
    // Artefacts without training windows: a training build is refused, not silently untrained.
    let err = IndexBuilder::new()
        .covisit(CovisitParams::default().window(3))
        .build_from_artefacts(&catalog, &good, dir.join("index"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig(m) if m.contains("needs log artefacts with training windows")),
        "{err}"
    );
    assert!(!dir.join("index").exists(), "nothing written");
}

fn training() -> TrainParams {
    TrainParams::linear().max_epochs(2).max_lists(400).windows(2)
}

/// A builder that trains computes the training windows too: per window the
/// artefacts of the log before it and its logged requests. Written and read
/// back they are equal, and a build from them trains the ranker on the
/// same lists the build from the log does.
#[test]
fn training_windows_round_trip_and_train_the_ranker() {
    let (catalog, events) = music();
    let tmp = tempfile::tempdir().unwrap();
    let b = IndexBuilder::new().group_key("artist").ranker(training());
    let computed = b.log_artefacts(&catalog, &events).unwrap();
    computed.write_parquet(tmp.path().join("a")).unwrap();
    let read = LogArtefacts::from_parquet(tmp.path().join("a"), &catalog).unwrap();
    assert_eq!(read.differences(&computed, 5), Vec::<String>::new());
    assert_eq!(read, computed);
    // Each window's prior log is the log's own artefacts, cut earlier.
    let windows = std::fs::read_dir(tmp.path().join("a/training")).unwrap().count();
    assert_eq!(windows, 3, "windows.parquet and two window directories");
    let earlier = LogArtefacts::from_parquet(tmp.path().join("a/training/window-1"), &catalog).unwrap();
    let latest = LogArtefacts::from_parquet(tmp.path().join("a/training/window-0"), &catalog).unwrap();
    assert!(earlier.summary().events < latest.summary().events);
    assert!(latest.summary().events < computed.summary().events);

    let from_log = b.build(&catalog, &events, tmp.path().join("log")).unwrap();
    let from_art = b.build_from_artefacts(&catalog, &read, tmp.path().join("art")).unwrap();
    let (t1, t2) = (from_log.training.unwrap(), from_art.training.unwrap());
    // The same requests through the same retrieval: the same lists (the
    // learned space's 6,000 rows are scanned exactly, at most 32 rows per
    // beam entry at the default ANN depth, so the ANN graph's parallel
    // build, which is not deterministic, decides nothing here).
    assert!(catalog.len() <= 32 * twostage::request::CandidateCounts::default().ann);
    assert_eq!(t1.generated_lists, t2.generated_lists);
    assert!(t1.train_lists > 100, "{} lists", t1.train_lists);
    assert_eq!(t1.train_lists, t2.train_lists);
    assert_eq!(t1.valid_lists, t2.valid_lists);
    assert_eq!(t1.train_candidate_recall, t2.train_candidate_recall);

    // Computed for another training: refused, naming what differs.
    let other = IndexBuilder::new().group_key("artist").ranker(training().max_lists(300));
    let err = other.build_from_artefacts(&catalog, &read, tmp.path().join("x")).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig(m) if m.contains("at most 400 requests; the build keeps 300")),
        "{err}"
    );
    let other = IndexBuilder::new().group_key("artist").ranker(training().windows(3));
    let err = other.build_from_artefacts(&catalog, &read, tmp.path().join("x")).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig(m) if m.contains("computed for 2 windows")),
        "{err}"
    );
    // A bad row in a window's requests is refused by file, row and column.
    let targets = tmp.path().join("a/training/window-1/targets.parquet");
    write(
        &targets,
        vec![
            ("position", Arc::new(Int64Array::from(vec![0, 1])) as ArrayRef),
            ("kind", strings(&["history", "history"])),
            ("history", {
                let mut l = arrow_array::builder::ListBuilder::new(arrow_array::builder::StringBuilder::new());
                l.values().append_value("trk-00001");
                l.append(true);
                l.values().append_value("no-such-item");
                l.append(true);
                Arc::new(l.finish()) as ArrayRef
            }),
            ("item", strings(&["trk-00002", "trk-00003"])),
        ],
    );
    let err = LogArtefacts::from_parquet(tmp.path().join("a"), &catalog).unwrap_err().to_string();
    assert!(
        err.contains("targets.parquet") && err.contains("history") && err.contains("no-such-item"),
        "{err}"
    );
}

/// Every check of the reader, each on a copy of good artefacts with one
/// artefact replaced: the error names the file and what is wrong.
#[test]
fn each_contract_rule_is_checked_on_read() {
    let (catalog, events) = music();
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    builder().log_artefacts(&catalog, &events).unwrap().write_parquet(&good).unwrap();
    let ints = |v: &[i64]| Arc::new(Int64Array::from(v.to_vec())) as ArrayRef;
    let summary = |format: &str, items: i64, rows: usize| {
        let n = rows;
        vec![
            ("format", strings(&vec![format; n])),
            ("version", ints(&vec![2; n])),
            ("session_gap_secs", ints(&vec![1800; n])),
            ("covisit_window", ints(&vec![5; n])),
            ("cooccurrence_kept", ints(&vec![128; n])),
            ("items", ints(&vec![items; n])),
            ("events", ints(&vec![30_000; n])),
            ("sessions", ints(&vec![10; n])),
            ("first_ts", ints(&vec![0; n])),
            ("last_ts", ints(&vec![10; n])),
        ]
    };
    type Columns = Vec<(&'static str, ArrayRef)>;
    let cases: Vec<(&str, Columns, &str)> = vec![
        ("summary", summary("something-else", 6000, 1), "is not `twostage-log-artefacts`"),
        ("summary", summary("twostage-log-artefacts", 5999, 1), "this catalog has 6000"),
        (
            "summary",
            summary("twostage-log-artefacts", 6000, 2),
            "2 rows; a summary has exactly one",
        ),
        (
            "popularity",
            vec![
                ("item", strings(&["trk-00009"])),
                ("plays", ints(&[2])),
                ("skips", ints(&[0])),
                ("recent_plays", ints(&[3])),
                ("play_seconds", ints(&[0])),
            ],
            "more than the item's 2 plays",
        ),
        (
            "cooccurrence",
            vec![
                ("item", strings(&["trk-00009", "trk-00009"])),
                ("other", strings(&["trk-00009", "trk-00010"])),
                ("users", ints(&[2, 3])),
            ],
            "more than its own 2",
        ),
        (
            "cooccurrence",
            vec![
                ("item", strings(&["trk-00009"])),
                ("other", strings(&["trk-00010"])),
                ("users", ints(&[-1])),
            ],
            "below 1",
        ),
        (
            "pairs",
            vec![
                ("from_item", strings(&["trk-00009", "trk-00009"])),
                ("to_item", strings(&["trk-00010", "trk-00010"])),
                ("distance", Arc::new(Int32Array::from(vec![1, 1])) as ArrayRef),
                ("count", ints(&[1, 2])),
            ],
            "two rows for trk-00009→trk-00010 at distance 1",
        ),
        (
            "pairs",
            vec![
                ("from_item", strings(&["trk-00009"])),
                ("to_item", strings(&["trk-00009"])),
                ("distance", Arc::new(Int32Array::from(vec![1])) as ArrayRef),
                ("count", ints(&[1])),
            ],
            "paired with itself",
        ),
        (
            "pairs",
            vec![
                ("from_item", strings(&["trk-00009"])),
                ("to_item", strings(&["trk-00010"])),
                ("distance", Arc::new(Int32Array::from(vec![1])) as ArrayRef),
                ("count", ints(&[1])),
                ("weight", ints(&[1])),
            ],
            "unknown field",
        ),
        (
            "searches",
            vec![
                ("query", strings(&["velvet", "velvet"])),
                ("item", strings(&["trk-00009", "trk-00009"])),
                ("count", ints(&[1, 4])),
            ],
            "two rows for the query \"velvet\" and trk-00009",
        ),
        (
            "searches",
            vec![
                ("query", strings(&["velvet"])),
                ("item", strings(&["trk-00009"])),
                ("count", ints(&[0])),
            ],
            "below 1",
        ),
        (
            "summary",
            {
                let mut v1 = summary("twostage-log-artefacts", 6000, 1);
                v1[1].1 = ints(&[1]);
                v1
            },
            "version 1; this build reads version 2",
        ),
    ];
    for (i, (name, columns, says)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("case{i}"));
        common::copy_dir(&good, &dir);
        write(&dir.join(format!("{name}.parquet")), columns);
        let err = LogArtefacts::from_parquet(&dir, &catalog).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{name}.parquet")) && err.contains(says),
            "case {i} ({name}): {err}"
        );
    }
    // A missing artefact; counts that are not symmetric where every partner is kept.
    let dir = tmp.path().join("missing");
    common::copy_dir(&good, &dir);
    std::fs::remove_file(dir.join("pairs.parquet")).unwrap();
    let err = LogArtefacts::from_parquet(&dir, &catalog).unwrap_err().to_string();
    assert!(err.contains("pairs.parquet") && err.contains("missing"), "{err}");
    let dir = tmp.path().join("asymmetric");
    common::copy_dir(&good, &dir);
    let mut all = summary("twostage-log-artefacts", 6000, 1);
    all[4].1 = Arc::new(Int64Array::from(vec![None::<i64>]));
    write(&dir.join("summary.parquet"), all);
    write(
        &dir.join("cooccurrence.parquet"),
        vec![
            ("item", strings(&["trk-00009", "trk-00010", "trk-00009", "trk-00010"])),
            ("other", strings(&["trk-00009", "trk-00010", "trk-00010", "trk-00009"])),
            ("users", ints(&[5, 5, 2, 3])),
        ],
    );
    let err = LogArtefacts::from_parquet(&dir, &catalog).unwrap_err().to_string();
    assert!(err.contains("cooccurrence.parquet") && err.contains("must be symmetric"), "{err}");
}

/// The training windows' edge cases survive the round trip through
/// Parquet: an empty log (window 0 starts nowhere), windows the log does
/// not have (absent rows), and windows that keep no requests.
#[test]
fn training_windows_edge_cases_round_trip() {
    let (catalog, events) = music();
    let tmp = tempfile::tempdir().unwrap();
    let round_trip = |name: &str, b: &IndexBuilder, events: &Events| {
        let computed = b.log_artefacts(&catalog, events).unwrap();
        computed.write_parquet(tmp.path().join(name)).unwrap();
        let read = LogArtefacts::from_parquet(tmp.path().join(name), &catalog).unwrap();
        assert_eq!(read, computed, "{name}");
        read.training_window_sizes().unwrap()
    };
    let trains = |p: TrainParams| IndexBuilder::new().group_key("artist").ranker(p);
    // No events: window 0 is the whole (empty) log, with no requests.
    let empty = Events::from_jsonl_reader(&b""[..], Path::new("events.jsonl"), &catalog).unwrap();
    assert_eq!(round_trip("empty", &trains(training()), &empty), [0]);
    // No requests kept: later windows are absent, window 0 is empty.
    assert_eq!(round_trip("none", &trains(training().max_lists(0)), &events), [0]);
    // Six windows: 90% of the log in windows, each subsampled.
    assert_eq!(round_trip("six", &trains(training().windows(6).max_lists(50)), &events), [50; 6]);
    // A build reads the newest windows of artefacts computed for more.
    let six = LogArtefacts::from_parquet(tmp.path().join("six"), &catalog).unwrap();
    let report = trains(training().windows(2).max_lists(50))
        .build_from_artefacts(&catalog, &six, tmp.path().join("index"))
        .unwrap();
    let trained = report.training.expect("a ranker trained on the two newest windows");
    assert!(trained.train_lists > 50, "{} lists", trained.train_lists);

    // A stale training directory (from another log) is refused, not trained on.
    let stale = tmp.path().join("stale");
    common::copy_dir(&tmp.path().join("empty"), &stale);
    std::fs::remove_dir_all(stale.join("training")).unwrap();
    common::copy_dir(&tmp.path().join("six").join("training"), &stale.join("training"));
    let err = LogArtefacts::from_parquet(&stale, &catalog).unwrap_err().to_string();
    assert!(err.contains("windows.parquet") && err.contains("do not fit"), "{err}");
}

/// `differences` finds what two producers disagree on: here the artefacts
/// of the log and of its first two thirds, which differ in every artefact.
#[test]
fn differences_name_each_artefact_that_differs() {
    let (catalog, events) = music();
    let b = builder();
    let text = std::fs::read_to_string(common::data_dir().join("events.jsonl")).unwrap();
    let head: String = text.lines().take(20_000).flat_map(|l| [l, "\n"]).collect();
    let fewer = Events::from_jsonl_reader(head.as_bytes(), Path::new("events.jsonl"), &catalog).unwrap();
    let (all, part) = (
        b.log_artefacts(&catalog, &events).unwrap(),
        b.log_artefacts(&catalog, &fewer).unwrap(),
    );
    assert!(all.differences(&all, 5).is_empty());
    let found = all.differences(&part, usize::MAX);
    for artefact in ["summary", "popularity", "pairs", "searches", "cooccurrence"] {
        assert!(
            found.iter().any(|d| d.starts_with(artefact)),
            "no {artefact} difference in {found:?}"
        );
    }
    assert_eq!(all.differences(&part, 3).len(), 3, "the limit holds");
}
