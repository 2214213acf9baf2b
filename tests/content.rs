//! The content space: item text embedded by the sentence encoder, searched
//! beside the learned space. Needs the model (`scripts/fetch_minilm.sh`).

mod common;

use common::encoder;
use twostage::{Catalog, Context, Engine, Error, Events, IndexBuilder, Request, Retriever};

/// Words whose descriptions share no word with the queries below: only
/// meaning can connect them.
const ITEMS: &str = r#"
{"id":"dog","title":"dog","text":{"description":"loyal companion, pet"},"tags":{"kind":["animal"]}}
{"id":"cat","title":"cat","text":{"description":"feline pet"},"tags":{"kind":["animal"]}}
{"id":"car","title":"automobile","text":{"description":"motor vehicle"},"tags":{"kind":["machine"]}}
{"id":"plane","title":"aeroplane","text":{"description":"aircraft"},"tags":{"kind":["machine"]}}
{"id":"banana","title":"banana","text":{"description":"yellow fruit"},"tags":{"kind":["food"]}}
{"id":"bread","title":"bread","text":{"description":"baked loaf"},"tags":{"kind":["food"]}}
{"id":"piano","title":"piano","text":{"description":"keyboard instrument"},"tags":{"kind":["music"]}}
{"id":"violin","title":"violin","text":{"description":"bowed string instrument"},"tags":{"kind":["music"]}}
"#;

fn catalog() -> Catalog {
    Catalog::from_jsonl_reader(ITEMS.trim().as_bytes(), "items.jsonl".as_ref()).unwrap()
}

fn no_events(catalog: &Catalog) -> Events {
    Events::from_jsonl_reader(&b""[..], "events.jsonl".as_ref(), catalog).unwrap()
}

#[test]
fn a_search_finds_items_by_meaning_and_cold_items_get_content_neighbours() {
    let catalog = catalog();
    let events = no_events(&catalog);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    IndexBuilder::new().encoder(encoder()).build(&catalog, &events, &dir).unwrap();

    let bare = Engine::open(&dir).unwrap();
    let info = bare.info();
    assert_eq!(info.encoder.as_ref().map(|e| e.dim), Some(384));
    assert!(!info.encoder_attached);
    // Without the encoder a search is refused, not silently weaker...
    let err = bare.recommend(&Request::new(Context::search("an animal that barks"))).unwrap_err();
    assert!(matches!(err, Error::EncoderMismatch { found: None, .. }), "{err}");
    assert!(err.is_caller_error());
    // ...while item contexts use the stored content vectors. Nobody ever
    // played anything: the neighbours come from text alone.
    let recs = bare.recommend(&Request::new(Context::listening("dog")).k(3)).unwrap();
    assert_eq!(recs.items.first().map(|r| r.id.as_str()), Some("cat"), "{recs:?}");
    assert!(recs.items[0].sources.iter().any(|s| s.retriever == Retriever::Content));

    let engine = bare.with_encoder(encoder()).unwrap();
    for (query, want) in [
        ("a creature that barks and guards the house", "dog"),
        ("something to fly across the ocean", "plane"),
        ("a tropical thing to eat", "banana"),
        ("play a sonata with a bow", "violin"),
    ] {
        let recs = engine.recommend(&Request::new(Context::search(query)).k(3).explain(true)).unwrap();
        let top = &recs.items[0];
        assert_eq!(top.id, want, "{query}: {recs:?}");
        assert!(top.sources.iter().any(|s| s.retriever == Retriever::Content));
        let features = top.features.as_ref().unwrap();
        let sim = features.iter().find(|(n, _)| n == "content_sim").map(|f| f.1);
        assert!(sim.is_some_and(|s| s > 0.2), "{features:?}");
    }
}

#[test]
fn an_encoder_must_match_the_index() {
    let catalog = catalog();
    let events = no_events(&catalog);
    let tmp = tempfile::tempdir().unwrap();

    // An index without a content space takes no encoder.
    let plain = tmp.path().join("plain");
    IndexBuilder::new().build(&catalog, &events, &plain).unwrap();
    let err = Engine::open(&plain).unwrap().with_encoder(encoder()).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
    // And searches on it work as before, without one.
    let recs = Engine::open(&plain)
        .unwrap()
        .recommend(&Request::new(Context::search("violin")))
        .unwrap();
    assert_eq!(recs.items[0].id, "violin");

    // Another model (here: the same weights under another configuration
    // file, hence another fingerprint) is refused.
    let model = twostage::encoder::default_model_dir(env!("CARGO_MANIFEST_DIR"));
    let other = tmp.path().join("other-model");
    std::fs::create_dir(&other).unwrap();
    for f in ["tokenizer.json", "model.safetensors", "sentence_bert_config.json"] {
        std::fs::copy(model.join(f), other.join(f)).unwrap();
    }
    let config = std::fs::read_to_string(model.join("config.json")).unwrap();
    std::fs::write(other.join("config.json"), format!("{config}\n")).unwrap();
    let other = twostage::Encoder::load(&other).unwrap();
    assert_ne!(other.info().fingerprint, encoder().info().fingerprint);

    let with = tmp.path().join("with");
    IndexBuilder::new().encoder(encoder()).build(&catalog, &events, &with).unwrap();
    let err = Engine::open(&with).unwrap().with_encoder(other.clone()).unwrap_err();
    assert!(matches!(err, Error::EncoderMismatch { found: Some(_), .. }), "{err}");
    assert!(err.to_string().contains(&encoder().info().fingerprint), "{err}");
}

#[test]
fn a_reload_keeps_the_encoder_attached() {
    let catalog = catalog();
    let events = no_events(&catalog);
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for dir in [&a, &b] {
        IndexBuilder::new().encoder(encoder()).build(&catalog, &events, dir).unwrap();
    }
    let handle = twostage::EngineHandle::new(Engine::open_with_encoder(&a, Some(&encoder())).unwrap());
    handle.reload(&b).unwrap();
    let recs = handle
        .recommend(&Request::new(Context::search("a tropical thing to eat")).k(1))
        .unwrap();
    assert_eq!(recs.items[0].id, "banana");
    assert!(handle.load().info().encoder_attached);
}

#[test]
fn retraining_a_content_index_needs_its_encoder() {
    let catalog = catalog();
    let events = common::sessions(&catalog, 300, &["dog", "cat", "banana"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    IndexBuilder::new()
        .encoder(encoder())
        .without_ranker_training()
        .build(&catalog, &events, &dir)
        .unwrap();
    let params = twostage::TrainParams::linear().max_epochs(2);
    let err = twostage::retrain_ranker(&dir, &catalog, &events, None, &params, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::EncoderMismatch { found: None, .. }), "{err}");
    let summary = twostage::retrain_ranker(&dir, &catalog, &events, Some(&encoder()), &params, &mut |_| {}).unwrap();
    assert_eq!(summary.epochs.len(), 2);
    let engine = Engine::open_with_encoder(&dir, Some(&encoder())).unwrap();
    assert_eq!(engine.info().ranker.kind, "linear");
    assert!(engine.recommend(&Request::new(Context::listening("dog"))).is_ok());
}

#[test]
fn hostile_queries_on_a_content_index_get_results_not_panics() {
    let catalog = catalog();
    let events = no_events(&catalog);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    IndexBuilder::new().encoder(encoder()).build(&catalog, &events, &dir).unwrap();
    let engine = Engine::open_with_encoder(&dir, Some(&encoder())).unwrap();
    let huge = "violin bow ".repeat(10_000); // 110 KB: capped before tokenising, cut at 256 tokens
    for query in [
        huge.as_str(),
        "😀🎻🍌",
        "小提琴",
        "скрипка",
        "title:(violin OR \"piano\") AND NOT banana~2^3 [unbalanced",
        "\u{0}\u{7}\t\r\n violin",
        "a",
    ] {
        let recs = engine.recommend(&Request::new(Context::search(query)).k(3));
        let recs = recs.unwrap_or_else(|e| panic!("{query:.40?}: {e}"));
        assert!(!recs.items.is_empty(), "{query:.40?}: the content space always has neighbours");
    }
    // Whitespace alone is still a caller error, with or without an encoder.
    assert!(engine
        .recommend(&Request::new(Context::search("  \n ")))
        .unwrap_err()
        .is_caller_error());
}

#[test]
fn a_repeated_search_takes_its_vector_from_the_query_cache() {
    let catalog = catalog();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    IndexBuilder::new()
        .encoder(encoder())
        .build(&catalog, &no_events(&catalog), &dir)
        .unwrap();
    let engine = Engine::open_with_encoder(&dir, Some(&encoder())).unwrap();
    let ask = |engine: &Engine, text: &str| {
        let recs = engine.recommend(&Request::new(Context::search(text)).k(3)).unwrap();
        recs.items.into_iter().map(|r| (r.id, r.score)).collect::<Vec<_>>()
    };
    let first = ask(&engine, "a fruit to eat");
    assert_eq!(ask(&engine, "  a fruit\tto eat "), first, "a whitespace variant is the same query");
    let stats = engine.query_cache_stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (1, 1, 1), "{stats:?}");
    assert_eq!(stats.bytes, "a fruit to eat".len() + 384 * 4);
    assert_eq!(stats.capacity, twostage::DEFAULT_QUERY_CACHE);

    let off = Engine::open_with_encoder(&dir, Some(&encoder())).unwrap().with_query_cache(0);
    assert_eq!(ask(&off, "a fruit to eat"), first, "cached and encoded vectors rank alike");
    ask(&off, "a fruit to eat");
    let stats = off.query_cache_stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (0, 2, 0), "{stats:?}");
    // A reload keeps the capacity chosen, not the default.
    let handle = twostage::EngineHandle::new(off);
    handle.reload(&dir).unwrap();
    assert_eq!(handle.load().query_cache_stats().capacity, 0);
}

#[test]
fn an_upserted_item_is_placed_by_meaning_and_needs_the_encoder() {
    let catalog = catalog();
    let events = no_events(&catalog);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    IndexBuilder::new().encoder(encoder()).build(&catalog, &events, &dir).unwrap();
    let mut wolf = twostage::Item::new("wolf", "wolf");
    wolf.text.insert("description".into(), "wild canine that howls at night".into());
    // Without the encoder there is no content vector to give it: refused, nothing applied.
    let bare = Engine::open(&dir).unwrap();
    let err = bare.upsert_items(std::slice::from_ref(&wolf)).unwrap_err();
    assert!(matches!(err, Error::EncoderMismatch { found: None, .. }), "{err}");
    assert!(bare.item("wolf").is_none());

    let engine = bare.with_encoder(encoder()).unwrap();
    engine.upsert_items(std::slice::from_ref(&wolf)).unwrap();
    // Found by meaning alone (no word in common), and its neighbours by meaning too.
    let content_only = |req: Request| {
        let mut req = req.k(1);
        for r in Retriever::ALL {
            if r != Retriever::Content {
                req = req.candidates(r, 0);
            }
        }
        engine.recommend(&req).unwrap().items[0].id.clone()
    };
    assert_eq!(
        content_only(Request::new(Context::search("an animal of the forest that hunts in packs"))),
        "wolf"
    );
    assert_eq!(content_only(Request::new(Context::listening("wolf"))), "dog");
    // A changed record is placed by its new text: the dog's old vector no longer answers.
    let mut dog = engine.item("dog").unwrap();
    dog.text.insert("description".into(), "a four-wheeled machine for roads".into());
    dog.title = "roadster".into();
    engine.upsert_items(&[dog]).unwrap();
    let machine = content_only(Request::new(Context::listening("dog")));
    assert!(["car", "plane"].contains(&machine.as_str()), "{machine}");
    assert_ne!(content_only(Request::new(Context::listening("wolf"))), "dog");
    // Replayed without the encoder: the log kept the vectors.
    drop(engine);
    let reopened = Engine::open(&dir).unwrap();
    let recs = reopened.recommend(&Request::new(Context::listening("wolf")).k(1)).unwrap();
    assert_eq!(recs.items[0].id, "cat", "{recs:?}");
}
