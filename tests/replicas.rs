//! Replicas that follow published index generations (feature
//! `generations`): two `serve` processes on loopback follow one store on
//! the local filesystem, converge to each newly published generation under
//! load with no failed request, and refuse a damaged or partial generation
//! while the current one keeps serving.

#![cfg(all(feature = "generations", feature = "encoder"))]

mod common;
#[path = "common/process.rs"]
mod process;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use process::Service;
use serde_json::Value;
use twostage::{Catalog, Events, Generation, GenerationStore, IndexBuilder};

/// A `serve` process following `store`, polling every 100 ms.
fn start_replica(store: &str, cache: &Path) -> Service {
    Service::start(&["--index", store, "--poll-ms", "100", "--cache", cache.to_str().unwrap()], &[])
}

fn healthz(url: &str) -> Value {
    let body = ureq::get(&format!("{url}/healthz")).call().unwrap().into_string().unwrap();
    serde_json::from_str(&body).unwrap()
}

fn serving(url: &str) -> String {
    healthz(url)["generation"]["serving"].as_str().unwrap_or_default().to_string()
}

/// Waits until every replica serves `id`.
fn converge(replicas: &[Service], id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while replicas.iter().any(|r| serving(&r.url) != id) {
        assert!(
            Instant::now() < deadline,
            "replicas did not converge to {id}: {:?}",
            replicas.iter().map(|r| healthz(&r.url)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An index of the first `items` music items and their events.
fn build(dir: &Path, items: usize) {
    let data = common::data_dir();
    let text: String = std::fs::read_to_string(data.join("items.jsonl"))
        .unwrap()
        .lines()
        .take(items)
        .flat_map(|l| [l, "\n"])
        .collect();
    let catalog = Catalog::from_jsonl_reader(text.as_bytes(), Path::new("items.jsonl")).unwrap();
    let log: String = std::fs::read_to_string(data.join("events.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| {
            l.find("\"item\":\"")
                .is_some_and(|at| catalog.index_of(&l[at + 8..][..9]).is_some())
        })
        .flat_map(|l| [l, "\n"])
        .collect();
    let events = Events::from_jsonl_reader(log.as_bytes(), Path::new("events.jsonl"), &catalog).unwrap();
    IndexBuilder::new()
        .group_key("artist")
        .without_ranker_training()
        .build(&catalog, &events, dir)
        .unwrap();
}

fn publish(store: &GenerationStore, dir: &Path) -> Generation {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(store.publish(dir)).unwrap()
}

/// Points `LATEST` at a copy of generation `from` under a new id, with
/// `damage` applied to the copy's files in the store.
fn publish_broken(root: &Path, from: &Generation, id: &str, damage: impl FnOnce(&Path)) {
    let gens = root.join("generations");
    common::copy_dir(&gens.join(&from.id), &gens.join(id));
    damage(&gens.join(id));
    let pointer = serde_json::json!({
        "format": "twostage-generation-pointer",
        "version": 1,
        "generation": {"id": id, "manifest_crc32": from.manifest_crc32, "files": from.files, "bytes": from.bytes},
    });
    std::fs::write(root.join("LATEST"), serde_json::to_vec(&pointer).unwrap()).unwrap();
}

#[test]
fn two_replicas_converge_under_load_and_refuse_broken_generations() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    std::fs::create_dir_all(&root).unwrap();
    let url = format!("file://{}", root.display());
    let store = GenerationStore::open(&url).unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    build(&a, 1500);
    build(&b, 2500);
    let first = publish(&store, &a);

    let replicas = [
        start_replica(&url, &tmp.path().join("cache1")),
        start_replica(&url, &tmp.path().join("cache2")),
    ];
    converge(&replicas, &first.id);
    assert_eq!(healthz(&replicas[0].url)["items"], 1500);

    // Load on both replicas for the rest of the test.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|t| {
            let url = replicas[t % 2].url.clone();
            let (stop, sent, failed) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&failed));
            std::thread::spawn(move || {
                let body = r#"{"context":{"listening":{"item":"trk-00042"}},"k":10}"#;
                while !stop.load(Ordering::Relaxed) {
                    let ok = ureq::post(&format!("{url}/recommend"))
                        .send_string(body)
                        .is_ok_and(|r| r.status() == 200);
                    sent.fetch_add(1, Ordering::Relaxed);
                    failed.fetch_add(usize::from(!ok), Ordering::Relaxed);
                }
            })
        })
        .collect();

    let second = publish(&store, &b);
    assert_ne!(second.id, first.id);
    converge(&replicas, &second.id);
    for r in &replicas {
        assert_eq!(healthz(&r.url)["items"], 2500, "the new generation serves");
    }

    // A damaged generation (one byte of the item store flipped) and a
    // partial one (a file missing): refused, the current one keeps serving.
    let damaged = "9999999998-damaged";
    publish_broken(&root, &second, damaged, |dir| {
        let path = dir.join("items.bin");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    });
    let refused = |id: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        for r in &replicas {
            loop {
                let h = healthz(&r.url);
                if h["generation"]["refused"]["generation"] == id {
                    assert_eq!(h["generation"]["serving"], second.id.as_str(), "{h}");
                    assert_eq!(h["items"], 2500);
                    break;
                }
                assert!(Instant::now() < deadline, "{id} was not refused: {h}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    refused(damaged);
    let partial = "9999999999-partial";
    publish_broken(&root, &second, partial, |dir| std::fs::remove_file(dir.join("items.bin")).unwrap());
    refused(partial);
    let reason = healthz(&replicas[1].url)["generation"]["refused"]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("partial"), "{reason}");

    // And the next good generation is taken again.
    std::thread::sleep(Duration::from_millis(1100)); // a new second: a new id
    let third = publish(&store, &a);
    converge(&replicas, &third.id);

    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{sent} requests during the swaps, {failed} failed");
    assert!(sent > 100, "only {sent} requests sent");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
}

#[test]
fn publishing_verifies_the_index_first_and_never_rewrites_a_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    std::fs::create_dir_all(&root).unwrap();
    let store = GenerationStore::open(&format!("file://{}", root.display())).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(rt.block_on(store.latest()).unwrap(), None, "nothing published yet");

    let dir = tmp.path().join("index");
    build(&dir, 500);
    let good = rt.block_on(store.publish(&dir)).unwrap();
    assert_eq!(rt.block_on(store.latest()).unwrap(), Some(good.clone()));
    // The same index within the same second has the same id: refused, not rewritten.
    match rt.block_on(store.publish(&dir)) {
        Err(twostage::Error::Store { reason, .. }) if reason.contains("already published") => {}
        other => {
            // A second boundary passed between the two: a new id is fine.
            let g = other.unwrap();
            assert_ne!(g.id, good.id);
        }
    }

    // A damaged index is refused before anything is uploaded.
    let path = dir.join("items.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let before = rt.block_on(store.latest()).unwrap();
    let err = rt.block_on(store.publish(&dir)).unwrap_err();
    assert!(matches!(err, twostage::Error::Corrupt { .. }), "{err}");
    assert_eq!(rt.block_on(store.latest()).unwrap(), before, "the pointer did not move");

    // A download verifies, and a second one reuses the verified copy.
    let cache = tmp.path().join("cache");
    let got = rt.block_on(store.download(&good, &cache)).unwrap();
    assert!(twostage::Engine::open(&got).is_ok());
    assert_eq!(rt.block_on(store.download(&good, &cache)).unwrap(), got);
    // A pointer that names no generation is an error, never a served index.
    let mut missing = good.clone();
    missing.id = "0000000001-00000000".into();
    let err = rt.block_on(store.download(&missing, &cache)).unwrap_err();
    assert!(
        matches!(&err, twostage::Error::Store { reason, .. } if reason.contains("partial")),
        "{err}"
    );
    assert!(!cache.join(&missing.id).exists());
}

/// The same against an S3 API: run by `scripts/s3_generations.sh`, which
/// starts moto's S3 server on loopback, creates the bucket and sets
/// `TWOSTAGE_S3_TEST_URL` and the `AWS_*` variables (`--ignored` here, as
/// plain `cargo test` has no S3 server).
#[test]
#[ignore = "needs an S3 server: scripts/s3_generations.sh"]
fn a_replica_follows_generations_on_s3() {
    let url = std::env::var("TWOSTAGE_S3_TEST_URL").expect("TWOSTAGE_S3_TEST_URL (scripts/s3_generations.sh sets it)");
    let store = GenerationStore::open(&url).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    build(&a, 700);
    build(&b, 900);
    let first = publish(&store, &a);
    let replica = [start_replica(&url, &tmp.path().join("cache"))];
    converge(&replica, &first.id);
    assert_eq!(healthz(&replica[0].url)["items"], 700);
    std::thread::sleep(Duration::from_millis(1100)); // a new second: a new id
    let second = publish(&store, &b);
    converge(&replica, &second.id);
    assert_eq!(healthz(&replica[0].url)["items"], 900);
    let ok = ureq::post(&format!("{}/recommend", replica[0].url))
        .send_string(r#"{"context":{"listening":{"item":"trk-00042"}},"k":10}"#)
        .unwrap();
    assert_eq!(ok.status(), 200);
}
