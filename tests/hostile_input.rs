//! Hostile catalogs, events and requests: every one gives a typed error that
//! names the file, line and field (never a panic, never a half-loaded
//! result), or a sensible answer.

use std::path::Path;

use twostage::{Catalog, Context, Engine, Error, Events, IndexBuilder, Item, Request};

fn catalog(text: &[u8]) -> Result<Catalog, Error> {
    Catalog::from_jsonl_reader(text, Path::new("items.jsonl"))
}

const GOOD: &str = "{\"id\":\"a\",\"title\":\"A\"}\n{\"id\":\"b\",\"title\":\"B\",\"vector\":[1,2]}\n";

/// Asserts `result` is an `InvalidData` error naming `items.jsonl`/`events.jsonl`, `line` and `field`.
fn assert_names<T: std::fmt::Debug>(result: Result<T, Error>, file: &str, line: Option<usize>, field: &str, what: &str) {
    match result {
        Err(Error::InvalidData {
            path,
            line: l,
            field: f,
            reason,
        }) => {
            assert_eq!(path, Path::new(file), "{what}");
            assert_eq!(l, line, "{what}: {reason}");
            assert!(f.contains(field), "{what}: field `{f}` should name `{field}` ({reason})");
        }
        other => panic!("{what}: expected InvalidData, got {other:?}"),
    }
}

#[test]
fn hostile_catalogs_are_refused_by_file_line_and_field() {
    let big = "x".repeat(10 << 20);
    let cases: Vec<(String, Option<usize>, &str, &str)> = vec![
        // Non-finite numbers: JSON has no NaN/inf literals, so they come as strings or overflow.
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"vector\":[1,\"NaN\"]}}"),
            Some(3),
            "vector[1]",
            "NaN as a string",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"vector\":[1e39,0]}}"),
            Some(3),
            "vector[0]",
            "f32 overflow",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"vector\":[NaN,0]}}"),
            Some(3),
            "<line>",
            "NaN literal",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"vector\":[1e999,0]}}"),
            Some(3),
            "<line>",
            "inf literal",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"attributes\":{{\"year\":1e999}}}}"),
            Some(3),
            "<line>",
            "inf attribute",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"vector\":[1,2,3]}}"),
            Some(3),
            "vector",
            "mixed dimensions",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"vector\":[]}}"),
            Some(3),
            "vector",
            "empty vector",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"vector\":\"1,2\"}}"),
            Some(3),
            "vector",
            "vector as a string",
        ),
        (format!("{GOOD}{{\"id\":\"a\",\"title\":\"again\"}}"), Some(3), "id", "duplicate id"),
        (format!("{GOOD}{{\"title\":\"no id\"}}"), Some(3), "id", "missing id"),
        (format!("{GOOD}{{\"id\":\"c\"}}"), Some(3), "title", "missing title"),
        (format!("{GOOD}{{\"id\":5,\"title\":\"C\"}}"), Some(3), "id", "numeric id"),
        (format!("{GOOD}{{\"id\":\"c\",\"title\":[\"C\"]}}"), Some(3), "title", "array title"),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"tags\":5}}"),
            Some(3),
            "tags",
            "tags not an object",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"tags\":{{\"genre\":[1]}}}}"),
            Some(3),
            "tags.genre[0]",
            "numeric tag",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"attributes\":{{\"year\":true}}}}"),
            Some(3),
            "attributes.year",
            "bool attribute",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"text\":{{\"d\":{{}}}}}}"),
            Some(3),
            "text.d",
            "object text",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"colour\":\"red\"}}"),
            Some(3),
            "colour",
            "unknown field",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\\u0000\",\"title\":\"C\"}}"),
            Some(3),
            "id",
            "control character in id",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\",\"text\":{{\"description\":\"{big}\"}}}}"),
            Some(3),
            "text.description",
            "10 MB text field",
        ),
        (
            format!("{GOOD}{{\"id\":\"c\",\"title\":\"{big}\"}}"),
            Some(3),
            "title",
            "10 MB title",
        ),
        (format!("{GOOD}[1,2]"), Some(3), "<line>", "not an object"),
        (format!("{GOOD}{{\"id\":\"c\",\"title\":\"C\""), Some(3), "<line>", "truncated JSON"),
        (String::new(), None, "<file>", "empty file"),
        ("\n  \n\r\n".to_string(), None, "<file>", "blank file"),
    ];
    for (text, line, field, what) in cases {
        assert_names(catalog(text.as_bytes()), "items.jsonl", line, field, what);
    }
    // Invalid UTF-8, inside a string and as a bare byte.
    let mut bytes = GOOD.as_bytes().to_vec();
    bytes.extend_from_slice(b"{\"id\":\"c\",\"title\":\"\xc3\x28\"}\n");
    assert_names(catalog(&bytes), "items.jsonl", Some(3), "<line>", "invalid UTF-8");
    let mut bytes = GOOD.as_bytes().to_vec();
    bytes.extend_from_slice(b"\xff\xfe\n");
    assert_names(catalog(&bytes), "items.jsonl", Some(3), "<line>", "binary garbage");
    // A line beyond any sane record is refused without being read whole.
    let huge = format!("{GOOD}{{\"id\":\"c\",\"title\":\"{}\"}}", "y".repeat(20 << 20));
    assert_names(catalog(huge.as_bytes()), "items.jsonl", Some(3), "<line>", "20 MB line");
}

#[test]
fn in_memory_catalogs_meet_the_same_contract() {
    let with_vector = |id: &str, v: Vec<f32>| Item {
        vector: Some(v),
        ..Item::new(id, "t")
    };
    let cases = [
        (vec![with_vector("a", vec![f32::NAN])], 1, "vector[0]"),
        (vec![with_vector("a", vec![0.0, f32::INFINITY])], 1, "vector[1]"),
        (vec![with_vector("a", vec![1.0]), with_vector("b", vec![1.0, 2.0])], 2, "vector"),
        (vec![Item::new("a", "t"), Item::new("a", "u")], 2, "id"),
        (vec![Item::new("", "t")], 1, "id"),
    ];
    for (items, line, field) in cases {
        let what = format!("{items:?}");
        assert_names(Catalog::new(items), "<items>", Some(line), field, &what);
    }
}

#[test]
fn hostile_events_are_refused_by_file_line_and_field() {
    let c = catalog(GOOD.as_bytes()).unwrap();
    let events = |text: &[u8]| Events::from_jsonl_reader(text, Path::new("events.jsonl"), &c);
    let ok = "{\"user\":\"u\",\"item\":\"a\",\"ts\":1700000000}\n";
    let cases = [
        ("{\"user\":\"u\",\"item\":\"zz\",\"ts\":1700000000}", "item", "unknown item"),
        ("{\"user\":\"u\",\"item\":7,\"ts\":1700000000}", "item", "numeric item"),
        ("{\"item\":\"a\",\"ts\":1700000000}", "user", "missing user"),
        ("{\"user\":\"\",\"item\":\"a\",\"ts\":1700000000}", "user", "empty user"),
        ("{\"user\":\"u\",\"item\":\"a\",\"ts\":\"yesterday\"}", "ts", "string ts"),
        ("{\"user\":\"u\",\"item\":\"a\",\"ts\":1e300}", "ts", "huge float ts"),
        (
            "{\"user\":\"u\",\"item\":\"a\",\"ts\":99999999999999}",
            "ts",
            "ts in the far future",
        ),
        (
            "{\"user\":\"u\",\"item\":\"a\",\"ts\":1700000000,\"type\":\"buy\"}",
            "type",
            "unknown type",
        ),
        (
            "{\"user\":\"u\",\"item\":\"a\",\"ts\":1700000000,\"type\":\"search\"}",
            "query",
            "search without a query",
        ),
        (
            "{\"user\":\"u\",\"item\":\"a\",\"ts\":1700000000,\"query\":\"q\"}",
            "query",
            "play with a query",
        ),
        (
            "{\"user\":\"u\",\"item\":\"a\",\"ts\":1700000000,\"session\":5}",
            "session",
            "numeric session",
        ),
        (
            "{\"user\":\"u\",\"item\":\"a\",\"ts\":1700000000,\"extra\":1}",
            "extra",
            "unknown field",
        ),
        ("\"just a string\"", "<line>", "not an object"),
    ];
    for (line, field, what) in cases {
        assert_names(events(format!("{ok}{ok}{line}\n").as_bytes()), "events.jsonl", Some(3), field, what);
    }
    let big = format!(
        "{ok}{{\"user\":\"u\",\"item\":\"a\",\"ts\":1700000000,\"type\":\"search\",\"query\":\"{}\"}}",
        "q".repeat(10 << 20)
    );
    assert_names(events(big.as_bytes()), "events.jsonl", Some(2), "query", "10 MB query");
    let mut bytes = ok.as_bytes().to_vec();
    bytes.extend_from_slice(b"{\"user\":\"\xe2\x82\",\"item\":\"a\",\"ts\":1}\n");
    assert_names(events(&bytes), "events.jsonl", Some(2), "<line>", "invalid UTF-8");
    // An empty log is valid (a new catalog has no interactions yet): it loads
    // empty, and an index builds from it.
    let empty = events(b"").unwrap();
    assert!(empty.is_empty());
    let tmp = tempfile::tempdir().unwrap();
    // GOOD gives one of its two items a vector: the other falls back.
    IndexBuilder::new()
        .vectors(twostage::Vectors::CatalogWithFallback)
        .build(&c, &empty, tmp.path().join("i"))
        .unwrap();
    assert_eq!(Engine::open(tmp.path().join("i")).unwrap().len(), 2);
}

const ITEMS: &str = r#"{"id":"t1","title":"Blue Train","text":{"description":"hard bop: a (classic) \"album\""},"tags":{"genre":["jazz"]},"attributes":{"artist":"Coltrane"}}
{"id":"t2","title":"Giant Steps","tags":{"genre":["jazz"]},"attributes":{"artist":"Coltrane"}}
{"id":"t3","title":"東京 Night","tags":{"genre":["city pop"]},"attributes":{"artist":"山下達郎"}}
{"id":"t4","title":"AND OR NOT","tags":{"genre":["rock"]},"attributes":{"artist":"Operators"}}
{"id":"t5","title":"Back in Black","tags":{"genre":["rock"]},"attributes":{"artist":"AC/DC"}}
{"id":"t6","title":"Мелодия","tags":{"genre":["folk"]},"attributes":{"artist":"Хор"}}
"#;

fn engine() -> (Engine, tempfile::TempDir) {
    let c = catalog(ITEMS.as_bytes()).unwrap();
    let mut log = String::new();
    for u in 0..12 {
        for (i, item) in ["t1", "t2", "t3", "t4", "t5", "t6"].iter().enumerate().skip(u % 3) {
            log += &format!(
                "{{\"user\":\"u{u}\",\"item\":\"{item}\",\"ts\":{}}}\n",
                1_700_000_000 + u * 10_000 + i * 60
            );
        }
    }
    let events = Events::from_jsonl_reader(log.as_bytes(), Path::new("events.jsonl"), &c).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    IndexBuilder::new()
        .group_key("artist")
        .build(&c, &events, tmp.path().join("i"))
        .unwrap();
    (Engine::open(tmp.path().join("i")).unwrap(), tmp)
}

fn top(engine: &Engine, q: &str) -> Option<String> {
    engine
        .recommend(&Request::new(Context::search(q)).k(1))
        .unwrap()
        .items
        .first()
        .map(|r| r.id.clone())
}

#[test]
fn hostile_requests_get_a_sensible_answer_or_a_clear_error() {
    let (engine, _tmp) = engine();
    let n = engine.len();
    // k = 0 asks for nothing: a caller error; k beyond the catalog returns what there is.
    let zero = engine.recommend(&Request::new(Context::listening("t1")).k(0)).unwrap_err();
    assert!(matches!(zero, Error::InvalidRequest(_)) && zero.is_caller_error());
    let all = engine.recommend(&Request::new(Context::listening("t1")).k(n * 10)).unwrap();
    assert!(!all.items.is_empty() && all.items.len() < n, "{} of {n}", all.items.len());
    let too_big = engine.recommend(&Request::new(Context::listening("t1")).k(usize::MAX)).unwrap_err();
    assert!(matches!(too_big, Error::InvalidRequest(_)) && too_big.is_caller_error());
    // Unknown ids in a context are errors naming the id; in `exclude` they are simply absent.
    for ctx in [
        Context::listening("nope"),
        Context::history(["t1", "nope"]),
        Context::personalized_search("jazz", ["nope"]),
    ] {
        let e = engine.recommend(&Request::new(ctx)).unwrap_err();
        assert!(matches!(&e, Error::UnknownItem(id) if id == "nope"), "{e}");
    }
    assert!(engine
        .recommend(&Request::new(Context::listening("t1")).exclude(["nope", ""]))
        .is_ok());
    // Empty or whitespace-only text is a bad request.
    for q in ["", " ", "\t\n", "\u{3000}"] {
        let e = engine.recommend(&Request::new(Context::search(q))).unwrap_err();
        assert!(matches!(e, Error::InvalidRequest(_)), "{q:?}: {e}");
    }
    // Query-language syntax is just text: it never errors, and words still match.
    let syntax = [
        "\"Blue Train\"",
        "title:Blue",
        "title:(blue OR train)",
        "AND",
        "OR",
        "NOT",
        "AND OR NOT",
        "blue AND NOT train",
        "*",
        "blue*",
        "b?ue",
        "train~2",
        "train^10",
        "\"unbalanced",
        "(unbalanced",
        "unbalanced)",
        "[1 TO 5]",
        "{a TO b}",
        "+blue -train",
        "a:b:c",
        "\\",
        "/regex.*/",
        "!",
        "&&",
        "||",
        "-",
        "\u{0}",
        "id:t1",
        "item:0",
    ];
    for q in syntax {
        let recs = engine
            .recommend(&Request::new(Context::search(q)).k(3))
            .unwrap_or_else(|e| panic!("{q:?}: {e}"));
        assert!(recs.items.len() <= 3);
    }
    assert_eq!(top(&engine, "title:(Blue AND Train)").as_deref(), Some("t1"));
    assert_eq!(top(&engine, "AND OR NOT").as_deref(), Some("t4"), "operators are searched as words");
    assert_eq!(top(&engine, "(classic) \"album\"").as_deref(), Some("t1"));
    // Non-Latin scripts and emoji.
    assert_eq!(top(&engine, "東京").as_deref(), Some("t3"));
    assert_eq!(top(&engine, "мелодия").as_deref(), Some("t6"));
    assert_eq!(top(&engine, "山下達郎").as_deref(), Some("t3"));
    for q in ["🎵🎶", "🎷 blue", "👨‍👩‍👧‍👦", "\u{202e}reversed", "ｂｌｕｅ"] {
        engine
            .recommend(&Request::new(Context::search(q)))
            .unwrap_or_else(|e| panic!("{q:?}: {e}"));
    }
    // A 100 KB query is served, quickly.
    let long: String = "blue train jazz (x:y) ".repeat(5_000);
    assert!(long.len() >= 100 << 10);
    let t = std::time::Instant::now();
    let recs = engine.recommend(&Request::new(Context::search(long.as_str()))).unwrap();
    assert!(!recs.items.is_empty());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "100 KB query took {:?}",
        t.elapsed()
    );
    // Hostile tag filters: an unknown field is a bad request; odd values just match nothing.
    let e = engine
        .recommend(&Request::new(Context::search("blue")).require_tag("genre:jazz", "x"))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e}");
    let none = engine
        .recommend(&Request::new(Context::search("blue")).require_tag("genre", "jazz OR rock"))
        .unwrap();
    assert!(none.items.is_empty());
    // Too long a history is a bad request, not a slow one.
    let e = engine.recommend(&Request::new(Context::history(vec!["t1"; 100_000]))).unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e}");
}
