//! Requests built from arbitrary text (search text, ids, tag filters)
//! against a small index: a result or a typed error, never a panic.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use twostage::{Catalog, Context, Engine, Events, IndexBuilder, Request};

const ITEMS: &str = r#"{"id":"t1","title":"Blue Train","text":{"description":"hard bop: a classic"},"tags":{"genre":["jazz"]},"attributes":{"artist":"Coltrane","year":1957}}
{"id":"t2","title":"Giant Steps","tags":{"genre":["jazz"]},"attributes":{"artist":"Coltrane"}}
{"id":"t3","title":"東京 Night (remix)","tags":{"genre":["city pop"]},"attributes":{"artist":"山下"}}
{"id":"t4","title":"AND OR NOT","tags":{"genre":["rock"]},"attributes":{"artist":"AC/DC"}}
{"id":"t5","title":"Back in Black","tags":{"genre":["rock"]},"attributes":{"artist":"AC/DC"}}
"#;

fn engine() -> &'static Engine {
    static E: OnceLock<(Engine, tempfile::TempDir)> = OnceLock::new();
    &E.get_or_init(|| {
        let catalog = Catalog::from_jsonl_reader(ITEMS.as_bytes(), Path::new("items.jsonl")).expect("catalog");
        let mut log = String::new();
        for u in 0..10 {
            for (i, item) in ["t1", "t2", "t3", "t4", "t5"].iter().enumerate().skip(u % 2) {
                log += &format!("{{\"user\":\"u{u}\",\"item\":\"{item}\",\"ts\":{}}}\n", 1_700_000_000 + u * 10_000 + i * 60);
            }
            // A logged search per user: the ranker's query–category feature has words to score.
            log += &format!(
                "{{\"user\":\"u{u}\",\"item\":\"t{}\",\"ts\":{},\"type\":\"search\",\"query\":\"rock {u}\"}}\n",
                1 + u % 5,
                1_700_000_000 + u * 10_000 + 900
            );
        }
        let events = Events::from_jsonl_reader(log.as_bytes(), Path::new("events.jsonl"), &catalog).expect("events");
        let dir = tempfile::tempdir().expect("tempdir");
        IndexBuilder::new().group_key("artist").build(&catalog, &events, dir.path().join("i")).expect("build");
        (Engine::open(dir.path().join("i")).expect("open"), dir)
    })
    .0
}

fuzz_target!(|data: &[u8]| {
    let engine = engine();
    let Some((&k, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let k = k as usize % 8;
    let mut parts = text.splitn(3, '\u{1}');
    let (a, b, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let requests = [
        Request::new(Context::search(text.as_ref())).k(k),
        Request::new(Context::personalized_search(a, vec!["t1".to_string()])).k(k).explain(true),
        Request::new(Context::listening(a)).k(k),
        Request::new(Context::history(vec![a.to_string(), "t2".to_string()])).k(k).exclude(vec![b.to_string()]),
        Request::new(Context::search("jazz")).k(k).require_tag("genre", a).exclude_tag(b, c),
    ];
    for req in &requests {
        match engine.recommend(req) {
            Ok(recs) => {
                assert!(recs.items.len() <= k);
                assert!(recs.items.iter().all(|r| r.score.is_finite()), "non-finite score for {req:?}");
            }
            Err(e) => assert!(e.is_caller_error(), "{e} for {req:?}"),
        }
    }
});
