//! Item upserts on a built index: a new item is found by every retriever
//! that can place it, a changed one by its new record only, from the call's
//! return on and after reopening; a batch with an invalid item applies
//! nothing.

mod common;

use std::path::PathBuf;

use twostage::catalog::{Attribute, FieldValue, Item};
use twostage::{Context, Engine, Error, LiveEvent, RangeFilter, Request, Retriever};

/// A private copy of the shared music index (writes must not leak into
/// other tests).
fn private_index() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    common::copy_dir(&common::music().dir, &dir);
    (tmp, dir)
}

/// `req` served by retriever `r` alone.
fn only(r: Retriever, mut req: Request) -> Request {
    for other in Retriever::ALL {
        if other != r {
            req = req.candidates(other, 0);
        }
    }
    req
}

fn ids(engine: &Engine, req: &Request) -> Vec<String> {
    engine.recommend(req).unwrap().items.into_iter().map(|i| i.id).collect()
}

/// A track by an artist of the catalog, in a genre no built track has.
fn new_track() -> Item {
    let mut item = Item::new("new-00001", "Zyzzyva Quokka Overture");
    item.text
        .insert("description".into(), "A glassy nocturne for marimba and tape.".into());
    item.tags.insert("genre".into(), vec!["ambient".into(), "glasswave".into()]);
    item.tags.insert("mood".into(), vec!["nocturnal".into()]);
    item.attributes.insert("artist".into(), Attribute::Text("Heavy Parade".into()));
    item.attributes.insert("year".into(), Attribute::Number(2031.0));
    item
}

#[test]
fn an_added_item_is_served_at_once_by_its_words_filters_and_group_and_after_reopening() {
    let (_tmp, dir) = private_index();
    let engine = Engine::open(&dir).unwrap();
    let n = engine.len();
    let search = Request::new(Context::search("zyzzyva quokka")).k(5);
    assert!(!ids(&engine, &search).contains(&"new-00001".to_string()));
    let done = engine.upsert_items(&[new_track()]).unwrap();
    assert_eq!((done.added, done.updated), (1, 0));
    assert_eq!(engine.len(), n + 1);
    assert_eq!(engine.item("new-00001").unwrap().title, "Zyzzyva Quokka Overture");

    let check = |engine: &Engine| {
        // Text: its own words find it first.
        assert_eq!(ids(engine, &search).first().map(String::as_str), Some("new-00001"));
        // Filters read the live record: a tag no built item has, a year past every built one.
        let tagged = Request::new(Context::search("marimba nocturne ambient"))
            .require_tag("genre", "glasswave")
            .k(10);
        assert_eq!(ids(engine, &tagged), ["new-00001"]);
        let late = Request::new(Context::search("ambient nocturne"))
            .range(RangeFilter::new("year").gte(2030.0))
            .k(10);
        assert_eq!(ids(engine, &late), ["new-00001"]);
        // Fields come from the record.
        let recs = engine.recommend(&search.clone().fields(["title", "year"])).unwrap();
        let fields = recs.items[0].fields.clone().unwrap();
        assert_eq!(fields["year"], FieldValue::Number(2031.0));
        // It is a context like any item, and the learned space places it by
        // its artist and tags: more like it is mostly that artist's.
        let more = ids(engine, &only(Retriever::Ann, Request::new(Context::listening("new-00001")).k(20)));
        let same_artist = more
            .iter()
            .filter(|id| engine.item(id).and_then(|i| i.attributes.get("artist").cloned()) == Some(Attribute::Text("Heavy Parade".into())))
            .count();
        assert!(same_artist >= 10, "{same_artist} of 20 by the same artist: {more:?}");
        // And the artist's tracks find it in the learned space.
        let history: Vec<String> = common::music()
            .catalog
            .items()
            .iter()
            .filter(|i| i.attributes.get("artist") == Some(&Attribute::Text("Heavy Parade".into())))
            .take(5)
            .map(|i| i.id.clone())
            .collect();
        let near = ids(engine, &only(Retriever::Ann, Request::new(Context::history(history)).k(100)));
        assert!(near.contains(&"new-00001".to_string()), "{near:?}");
    };
    check(&engine);
    // Events count for it at once.
    engine.record_events(&[LiveEvent::play("u1", "new-00001", 1_900_000_000)]).unwrap();
    assert_eq!(engine.plays("new-00001").unwrap(), 1);
    drop(engine);

    let engine = Engine::open(&dir).unwrap();
    assert_eq!(engine.len(), n + 1);
    assert_eq!(engine.plays("new-00001").unwrap(), 1);
    let status = engine.live_status().unwrap();
    assert_eq!((status.added, status.upserted), (1, 1));
    check(&engine);

    // Deleted, it leaves every result; upserted again, it is back.
    engine.delete_items(&["new-00001"]).unwrap();
    assert!(!ids(&engine, &search).contains(&"new-00001".to_string()));
    let done = engine.upsert_items(&[new_track()]).unwrap();
    assert_eq!((done.added, done.updated), (0, 1));
    assert!(!engine.is_deleted("new-00001").unwrap());
    check(&engine);
}

#[test]
fn a_changed_item_is_found_by_its_new_words_only_and_keeps_its_plays() {
    let (_tmp, dir) = private_index();
    let engine = Engine::open(&dir).unwrap();
    let id = "trk-00001";
    let old = engine.item(id).unwrap();
    let plays = engine.plays(id).unwrap();
    let old_words = only(Retriever::Lexical, Request::new(Context::search(&old.title)).k(50));
    assert!(ids(&engine, &old_words).contains(&id.to_string()));
    let mut changed = old.clone();
    changed.title = "Xylophone Marmalade".into();
    changed.text.insert("description".into(), "Renamed.".into());
    changed.tags.insert("genre".into(), vec!["glasswave".into()]);
    let done = engine.upsert_items(&[changed]).unwrap();
    assert_eq!((done.added, done.updated), (0, 1));
    let n = engine.len();

    let check = |engine: &Engine| {
        assert_eq!(engine.len(), n, "a change adds no item");
        let new_words = Request::new(Context::search("xylophone marmalade")).k(5);
        assert_eq!(ids(engine, &new_words).first().map(String::as_str), Some(id));
        assert!(!ids(engine, &old_words).contains(&id.to_string()), "found by its old title");
        let old_genre = Request::new(Context::search("ambient")).require_tag("genre", "ambient").k(200);
        assert!(
            !ids(engine, &old_genre).contains(&id.to_string()),
            "its old tag still passes a filter"
        );
        let new_genre = Request::new(Context::search("xylophone")).require_tag("genre", "glasswave").k(5);
        assert_eq!(ids(engine, &new_genre), [id]);
        // What the log says of it stays.
        assert_eq!(engine.plays(id).unwrap(), plays);
        assert!(engine.item_vector(id).is_some());
    };
    check(&engine);
    drop(engine);
    check(&Engine::open(&dir).unwrap());
}

#[test]
fn a_batch_with_an_invalid_item_applies_nothing_and_names_the_field() {
    let (_tmp, dir) = private_index();
    let engine = Engine::open(&dir).unwrap();
    let n = engine.len();
    let good = new_track();
    let mut wrong_type = Item::new("new-00002", "x");
    wrong_type.attributes.insert("year".into(), Attribute::Text("nineteen".into()));
    let mut not_finite = Item::new("new-00003", "x");
    not_finite.attributes.insert("tempo_bpm".into(), Attribute::Number(f64::NAN));
    let cases: [(Vec<Item>, &str); 4] = [
        (vec![good.clone(), wrong_type], "items[1].attributes.year"),
        (vec![good.clone(), not_finite], "items[1].attributes.tempo_bpm"),
        (vec![good.clone(), Item::new(" ", "blank id")], "items[1].id"),
        (vec![good.clone(), good.clone()], "items[1].id"),
    ];
    for (batch, field) in cases {
        match engine.upsert_items(&batch) {
            Err(Error::InvalidRequest(m)) => assert!(m.starts_with(field), "{m}"),
            other => panic!("{field}: {other:?}"),
        }
        assert_eq!(engine.len(), n, "{field}: part of the batch was applied");
        assert!(engine.item("new-00001").is_none());
    }
    assert_eq!(engine.live_status().unwrap().records, 0);
    assert_eq!(engine.upsert_items(&[]).unwrap().added, 0);
}

#[test]
fn a_request_keeps_the_catalog_it_started_with() {
    let (_tmp, dir) = private_index();
    let engine = Engine::open(&dir).unwrap();
    let req = Request::new(Context::search("ambient soft drones")).k(5).fields(["title"]);
    let before = engine.retrieve(&req).unwrap();
    let top = before.id(0).unwrap().to_string();
    let old_title = engine.item(&top).unwrap().title;
    let mut renamed = engine.item(&top).unwrap();
    renamed.title = "Renamed While Ranking".into();
    engine.upsert_items(&[renamed]).unwrap();
    // Ranked after the write, the candidates carry the records of the
    // moment they were retrieved.
    let title_of = |recs: &twostage::Recommendations| {
        let r = recs.items.iter().find(|r| r.id == top).expect("still a candidate");
        r.fields.as_ref().unwrap()["title"].clone()
    };
    let ranked = engine.rank(&req, before, None).unwrap();
    assert_eq!(title_of(&ranked), FieldValue::Text(old_title));
    // A request that starts now sees the new record.
    let now = engine.recommend(&req.clone().k(50)).unwrap();
    assert_eq!(title_of(&now), FieldValue::Text("Renamed While Ranking".into()));
}

#[test]
fn a_filter_on_a_tag_only_live_items_have_is_served_from_them() {
    let (_tmp, dir) = private_index();
    let engine = Engine::open(&dir).unwrap();
    engine.upsert_items(&[new_track()]).unwrap();
    // Every vector retriever alone: none walks a graph no built row passes,
    // and each still finds the live item.
    for r in [Retriever::Ann, Retriever::Lexical] {
        let req = only(
            r,
            Request::new(Context::history(["trk-00001", "trk-00002"]))
                .require_tag("genre", "glasswave")
                .k(5),
        );
        let got = ids(&engine, &req);
        assert!(got.iter().all(|id| id == "new-00001"), "{r:?}: {got:?}");
    }
    let ann = only(
        Retriever::Ann,
        Request::new(Context::history(["trk-00001"])).require_tag("genre", "glasswave").k(5),
    );
    assert_eq!(ids(&engine, &ann), ["new-00001"]);
}

#[test]
fn a_range_filter_sees_a_changed_items_new_value_in_the_exact_scan() {
    let (_tmp, dir) = private_index();
    let engine = Engine::open(&dir).unwrap();
    let year = |id: &str| match engine.item(id).unwrap().attributes.get("year") {
        Some(Attribute::Number(y)) => *y,
        other => panic!("{other:?}"),
    };
    // X, and Y its nearest neighbour in the learned space, of another year than 1993.
    let x = common::music()
        .catalog
        .items()
        .iter()
        .map(|i| i.id.clone())
        .find(|id| year(id) != 1993.0)
        .unwrap();
    let y = ids(&engine, &only(Retriever::Ann, Request::new(Context::listening(&x)).k(1)))[0].clone();
    let in_1993 = |engine: &Engine| {
        let range = RangeFilter::new("year").gte(1993.0).lte(1993.0);
        // ANN alone at depth 10: a beam of 64 over 6,000 rows, so the few
        // hundred items of one year are scanned exactly.
        let req = only(
            Retriever::Ann,
            Request::new(Context::listening(&y))
                .range(range)
                .candidates(Retriever::Ann, 10)
                .k(10),
        );
        ids(engine, &req)
    };
    assert!(!in_1993(&engine).contains(&x));
    let mut moved = engine.item(&x).unwrap();
    moved.attributes.insert("year".into(), Attribute::Number(1993.0));
    engine.upsert_items(&[moved]).unwrap();
    let got = in_1993(&engine);
    assert!(got.contains(&x), "{x} (now 1993) missing: {got:?}");
}
