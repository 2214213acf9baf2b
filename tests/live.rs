//! Live writes. Deletions: gone from every retriever and every context from
//! the call's return on, atomic per batch, durable across reopen, reload
//! and SIGKILL (a child process killed mid-write loses no acknowledged
//! delete or upsert). Events: plays move popularity at once, durably.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use twostage::{Context, Engine, EngineHandle, Error, LiveEvent, Request, Retriever};

/// A private copy of the shared music index (deletions must not leak into
/// other tests).
fn private_index() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    common::copy_dir(&common::music().dir, &dir);
    (tmp, dir)
}

fn requests() -> Vec<Request> {
    let playing = "trk-00001".to_string();
    let mut out = vec![
        Request::new(Context::search("ambient soft drones")).k(50),
        Request::new(Context::listening(&playing)).k(50),
        Request::new(Context::history(["trk-00002", "trk-00003", "trk-00004"])).k(50),
        Request::new(Context::personalized_search("calm pads", ["trk-00005"])).k(50),
    ];
    // Each retriever alone, too: none may hand a deleted item to the ranker.
    for r in Retriever::ALL {
        let mut req = Request::new(Context::search("ambient soft drones")).k(20);
        for other in Retriever::ALL {
            if other != r {
                req = req.candidates(other, 0);
            }
        }
        out.push(req.clone());
        let mut more = Request::new(Context::listening(&playing)).k(20);
        more.candidates = req.candidates;
        out.push(more);
    }
    out
}

fn answered(engine: &Engine, reqs: &[Request]) -> HashSet<String> {
    reqs.iter()
        .filter_map(|r| engine.recommend(r).ok())
        .flat_map(|recs| recs.items.into_iter().map(|i| i.id))
        .collect()
}

#[test]
fn a_deleted_item_leaves_every_result_at_once_and_stays_deleted() {
    let (_tmp, dir) = private_index();
    let engine = Engine::open(&dir).unwrap();
    let reqs = requests();
    let before = answered(&engine, &reqs);
    // The top answers of the four contexts, and more: every one of them is served today.
    let mut victims: Vec<String> = reqs[..4]
        .iter()
        .flat_map(|r| engine.recommend(r).unwrap().items.into_iter().take(5).map(|i| i.id))
        .collect();
    victims.sort();
    victims.dedup();
    assert!(victims.len() >= 8 && victims.iter().all(|v| before.contains(v)));

    assert_eq!(engine.delete_items(&victims).unwrap(), victims.len());
    let after = answered(&engine, &reqs);
    for v in &victims {
        assert!(!after.contains(v), "{v} was deleted and still served");
        assert!(engine.is_deleted(v).unwrap());
    }
    assert!(after.len() > 20, "the rest is still served");
    // A pin cannot bring it back.
    let pinned = engine
        .recommend(&Request::new(Context::search("ambient")).pin(victims[0].clone(), 0))
        .unwrap();
    assert!(pinned.items.iter().all(|i| i.id != victims[0]));
    assert!(pinned.warnings.iter().any(|w| w.contains(&victims[0])), "{:?}", pinned.warnings);
    // Deleting again writes nothing new.
    assert_eq!(engine.delete_items(&victims[..2]).unwrap(), 0);
    assert_eq!(engine.live_status().unwrap().records, 1);

    // Durable: a fresh open (the index still verifies with the log beside it),
    // and a handle's reload, replay it.
    let reopened = Engine::open(&dir).unwrap();
    let s = reopened.live_status().unwrap();
    assert_eq!((s.deleted, s.records, s.unknown_ids, s.torn_tail), (victims.len(), 1, 0, None));
    assert!(answered(&reopened, &reqs).is_disjoint(&victims.iter().cloned().collect()));
    let handle = EngineHandle::open(&dir).unwrap();
    handle.delete_items(&["trk-00100"]).unwrap();
    handle.reload(&dir).unwrap();
    assert!(handle.load().is_deleted("trk-00100").unwrap() && handle.load().is_deleted(&victims[0]).unwrap());
}

#[test]
fn a_batch_with_an_unknown_id_applies_nothing() {
    let (_tmp, dir) = private_index();
    let engine = Engine::open(&dir).unwrap();
    let err = engine.delete_items(&["trk-00001", "no-such-track", "trk-00002"]).unwrap_err();
    assert!(matches!(&err, Error::UnknownItem(id) if id == "no-such-track"), "{err}");
    assert!(!engine.is_deleted("trk-00001").unwrap());
    assert_eq!(engine.live_status().unwrap().records, 0);
    assert!(!dir.join("live.wal").exists() || Engine::open(&dir).unwrap().live_status().unwrap().deleted == 0);
    let too_many = vec!["trk-00001"; twostage::MAX_WRITE_BATCH + 1];
    assert!(matches!(engine.delete_items(&too_many), Err(Error::InvalidRequest(_))));
}

#[test]
fn a_torn_last_record_is_dropped_and_reported_and_damage_is_an_error() {
    let (_tmp, dir) = private_index();
    let engine = Engine::open(&dir).unwrap();
    engine.delete_items(&["trk-00010"]).unwrap();
    engine.delete_items(&["trk-00011"]).unwrap();
    drop(engine);
    let log = dir.join("live.wal");
    let good = std::fs::read(&log).unwrap();
    // A crash mid-append: half of a third record.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(&[40, 0, 0, 0, 7, 7])
        .unwrap();
    let engine = Engine::open(&dir).unwrap();
    let s = engine.live_status().unwrap();
    assert_eq!(s.deleted, 2);
    assert_eq!(s.torn_tail.map(|t| (t.offset, t.bytes)), Some((good.len() as u64, 6)));
    // The next write cuts the tail off; the log is whole again.
    engine.delete_items(&["trk-00012"]).unwrap();
    let s = Engine::open(&dir).unwrap().live_status().unwrap();
    assert_eq!((s.deleted, s.records, s.torn_tail), (3, 3, None));

    // A flipped byte inside the first record is damage, not a crash.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[8 + 8 + 2] ^= 1;
    std::fs::write(&log, &bytes).unwrap();
    let err = match Engine::open(&dir) {
        Ok(_) => panic!("a damaged log must not open"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("live.wal") && err.contains("offset 8"), "{err}");
}

/// Child side of the kill tests: deletes the ids given on stdin one per
/// call (or, for a line `play ID`, records one play of ID), printing each
/// line once its call returned. Run only by the parents.
#[test]
#[ignore = "run as a child process by the *_before_sigkill_survive tests"]
fn child_writer() {
    let Ok(dir) = std::env::var("TWOSTAGE_LIVE_CHILD_INDEX") else {
        return;
    };
    let engine = Engine::open(&dir).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.unwrap();
        if let Some(item) = line.strip_prefix("play ") {
            engine
                .record_events(&[LiveEvent::play("killed", item, 1_900_000_000 + n as i64)])
                .unwrap();
        } else if let Some(id) = line.strip_prefix("upsert ") {
            // Its title is its id's words: a search finds it.
            let item = twostage::Item::new(id, id.replace('-', " "));
            engine.upsert_items(&[item]).unwrap();
        } else {
            engine.delete_items(&[line.as_str()]).unwrap();
        }
        writeln!(out, "acked {line}").unwrap();
        out.flush().unwrap();
    }
}

/// Runs [`child_writer`] on `dir`, sends it `lines`, reads `wait_for` of
/// its acknowledgements and kills it with SIGKILL while the rest of the
/// lines are being written; returns the acknowledged lines.
#[cfg(unix)]
fn write_then_kill(dir: &std::path::Path, lines: &[String], wait_for: usize) -> Vec<String> {
    let common::Child {
        process: mut child,
        mut stdin,
        mut out,
    } = common::spawn_child("child_writer", "TWOSTAGE_LIVE_CHILD_INDEX", dir);
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    let mut acked = Vec::new();
    while acked.len() < wait_for {
        match out.next() {
            Some(Ok(l)) => {
                if let Some(line) = l.strip_prefix("acked ") {
                    acked.push(line.to_string());
                }
            }
            _ => break,
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    acked
}

#[cfg(unix)]
#[test]
fn deletions_acknowledged_before_sigkill_survive() {
    let (_tmp, dir) = private_index();
    let kills: usize = std::env::var("TWOSTAGE_LIVE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    // 20 ids a round, each deleted once: the catalog has 6,000 tracks.
    assert!(kills * 20 <= 6000, "at most 300 rounds");
    let ids: Vec<String> = (1..=6000).map(|i| format!("trk-{i:05}")).collect();
    let mut rng = twostage::rng::SplitMix64::new(7);
    let mut acked: Vec<String> = Vec::new();
    let mut next = 0;
    for round in 0..kills {
        // Send a burst, read a random number of acknowledgements, then kill
        // while the rest of the burst is being written.
        let burst = 20;
        let wait_for = (rng.next_u64() % burst as u64) as usize;
        acked.extend(write_then_kill(&dir, &ids[next..next + burst], wait_for));
        next += burst;
        let engine = Engine::open(&dir).unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL: {e}"));
        for id in &acked {
            assert!(engine.is_deleted(id).unwrap(), "round {round}: acknowledged deletion of {id} lost");
        }
        let status = engine.live_status().unwrap();
        assert!(status.deleted >= acked.len() && status.deleted <= next, "round {round}: {status:?}");
    }
    assert!(acked.len() > kills, "the children acknowledged {} deletions", acked.len());
}

#[cfg(unix)]
#[test]
fn upserts_acknowledged_before_sigkill_survive() {
    let (_tmp, dir) = private_index();
    let kills: usize = std::env::var("TWOSTAGE_LIVE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let mut rng = twostage::rng::SplitMix64::new(11);
    let mut acked: Vec<String> = Vec::new();
    let mut sent = 0;
    let built = Engine::open(&dir).unwrap().len();
    for round in 0..kills {
        let burst: Vec<String> = (0..10).map(|k| format!("upsert quokka{round}-zyzzyva{k}")).collect();
        let wait_for = (rng.next_u64() % burst.len() as u64) as usize;
        acked.extend(write_then_kill(&dir, &burst, wait_for));
        sent += burst.len();
        let engine = Engine::open(&dir).unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL: {e}"));
        let status = engine.live_status().unwrap();
        assert!(status.added >= acked.len() && status.added <= sent, "round {round}: {status:?}");
        assert_eq!(engine.len(), built + status.added, "round {round}");
        for line in &acked {
            let id = line.trim_start_matches("upsert ");
            assert!(engine.item(id).is_some(), "round {round}: acknowledged upsert of {id} lost");
        }
        // The last acknowledged one is searchable by its words.
        if let Some(id) = acked.last().map(|l| l.trim_start_matches("upsert ")) {
            let req = Request::new(Context::search(id.replace('-', " "))).k(1);
            assert_eq!(engine.recommend(&req).unwrap().items[0].id, id, "round {round}");
        }
    }
    assert!(acked.len() > kills, "the children acknowledged {} upserts", acked.len());
}

/// The popularity retriever alone, for a history it cannot otherwise serve.
fn popular_only(k: usize) -> Request {
    let mut req = Request::new(Context::history(["trk-00001"])).k(k);
    for r in Retriever::ALL {
        if r != Retriever::Popular {
            req = req.candidates(r, 0);
        }
    }
    req
}

#[test]
fn live_plays_move_popularity_at_once_and_durably() {
    let (_tmp, dir) = private_index();
    let engine = Engine::open(&dir).unwrap();
    // The popularity retriever's own order (retrieval, before the ranker).
    let popular = |e: &Engine| -> Vec<String> { e.retrieve(&popular_only(10)).unwrap().ids().map(String::from).collect() };
    let before = popular(&engine);
    // The least played item that popularity does not serve today.
    let quiet = (2..=6000)
        .map(|i| format!("trk-{i:05}"))
        .filter(|id| !before.contains(id))
        .min_by_key(|id| engine.plays(id).unwrap())
        .unwrap();
    let top_plays = engine.plays(&before[0]).unwrap();
    let base = engine.plays(&quiet).unwrap();
    let burst: Vec<LiveEvent> = (0..=top_plays)
        .map(|n| LiveEvent::play(format!("u{n}"), &quiet, 1_800_000_000 + i64::from(n)))
        .collect();
    engine.record_events(&burst).unwrap();
    assert_eq!(engine.plays(&quiet).unwrap(), base + top_plays + 1);
    assert_eq!(popular(&engine)[0], quiet, "the most played item now");
    // The ranker's features read the same counts.
    let recs = engine.recommend(&popular_only(50).explain(true)).unwrap();
    let row = recs.items.iter().find(|i| i.id == quiet).expect("served");
    let log_popularity = row
        .features
        .as_ref()
        .unwrap()
        .iter()
        .find(|(n, _)| n == "log_popularity")
        .unwrap()
        .1;
    assert!((log_popularity - 1.0).abs() < 1e-6, "{log_popularity}");

    // A bad event refuses its batch whole, naming it.
    let bad = vec![
        LiveEvent::play("u", &quiet, 1_800_000_000),
        LiveEvent::play("u", "no-such-track", 1_800_000_000),
    ];
    let err = engine.record_events(&bad).unwrap_err().to_string();
    assert!(err.contains("events[1].item") && err.contains("no-such-track"), "{err}");
    let skip = LiveEvent {
        query: Some("q".into()),
        ..LiveEvent::play("u", &quiet, 1_800_000_000)
    };
    assert!(engine.record_events(&[skip]).unwrap_err().to_string().contains("events[0].query"));
    assert_eq!(
        engine.plays(&quiet).unwrap(),
        base + top_plays + 1,
        "nothing of a refused batch applied"
    );

    // Durable: replayed by open, beside deletions.
    engine.delete_items(&[before[0].as_str()]).unwrap();
    let reopened = Engine::open(&dir).unwrap();
    assert_eq!(reopened.plays(&quiet).unwrap(), base + top_plays + 1);
    let s = reopened.live_status().unwrap();
    assert_eq!((s.events, s.deleted, s.records), (burst.len(), 1, 2));
    assert_eq!(popular(&reopened)[0], quiet);
}

#[test]
fn concurrent_writers_lose_nothing_and_each_sees_its_write_on_return() {
    let (_tmp, dir) = private_index();
    let engine = Engine::open(&dir).unwrap();
    let items: Vec<String> = (10..18).map(|i| format!("trk-{i:05}")).collect();
    let base: Vec<u32> = items.iter().map(|id| engine.plays(id).unwrap()).collect();
    const CALLS: u32 = 40;
    std::thread::scope(|s| {
        for (w, item) in items.iter().enumerate() {
            let (engine, base) = (&engine, &base);
            s.spawn(move || {
                for n in 0..CALLS {
                    engine
                        .record_events(&[LiveEvent::play(format!("w{w}"), item, 1_800_000_000 + i64::from(n))])
                        .unwrap();
                    // Read-your-writes: this writer's play counts on return,
                    // whichever call's fsync made it durable.
                    assert!(engine.plays(item).unwrap() > base[w] + n);
                }
            });
        }
        // And a writer deleting meanwhile, in the same groups.
        let engine = &engine;
        s.spawn(move || {
            for i in 0..CALLS {
                engine.delete_items(&[format!("trk-{:05}", 100 + i)]).unwrap();
            }
        });
    });
    let check = |e: &Engine| {
        for (item, b) in items.iter().zip(&base) {
            assert_eq!(e.plays(item).unwrap(), b + CALLS, "{item}");
        }
        let s = e.live_status().unwrap();
        assert_eq!((s.events, s.deleted), (items.len() * CALLS as usize, CALLS as usize));
        s
    };
    let s = check(&engine);
    assert_eq!(s.records, (items.len() + 1) * CALLS as usize);
    assert!(s.syncs >= 1 && s.syncs <= s.records, "{} fsyncs for {} records", s.syncs, s.records);
    check(&Engine::open(&dir).unwrap());
}

#[test]
fn live_sessions_feed_co_visitation_at_once_and_durably() {
    let (_tmp, dir) = private_index();
    let engine = Engine::open(&dir).unwrap();
    let covisit_only = |item: &str| {
        let mut req = Request::new(Context::listening(item)).k(10);
        for r in Retriever::ALL {
            if r != Retriever::Covisit {
                req = req.candidates(r, 0);
            }
        }
        req
    };
    let next_to = |e: &Engine, item: &str| -> Vec<String> { e.retrieve(&covisit_only(item)).unwrap().ids().map(String::from).collect() };
    let (a, b) = ("trk-00010", "trk-05990");
    assert!(!next_to(&engine, a).contains(&b.to_string()), "not co-visited in the built log");
    // Fifty users play a then b, a minute apart, in new sessions.
    let events: Vec<LiveEvent> = (0..50)
        .flat_map(|u| {
            let t = 1_900_000_000 + u * 10_000;
            [
                LiveEvent::play(format!("live-{u}"), a, t),
                LiveEvent::play(format!("live-{u}"), b, t + 60),
            ]
        })
        .collect();
    engine.record_events(&events).unwrap();
    assert_eq!(next_to(&engine, a)[0], b, "b is what follows a now");
    assert!(next_to(&engine, b).contains(&a.to_string()), "and a is what precedes b");
    // Two plays a session gap apart are not a pair.
    let (c, d) = ("trk-00020", "trk-05980");
    engine
        .record_events(&[
            LiveEvent::play("late", c, 1_950_000_000),
            LiveEvent::play("late", d, 1_950_000_000 + 86_400),
        ])
        .unwrap();
    assert!(!next_to(&engine, c).contains(&d.to_string()));
    let reopened = Engine::open(&dir).unwrap();
    assert_eq!(next_to(&reopened, a)[0], b, "replayed by open");
}

#[cfg(unix)]
#[test]
fn plays_acknowledged_before_sigkill_survive() {
    let (_tmp, dir) = private_index();
    let item = "trk-00077";
    let base = Engine::open(&dir).unwrap().plays(item).unwrap();
    let mut rng = twostage::rng::SplitMix64::new(9);
    let (mut acked, mut sent) = (0u32, 0u32);
    for round in 0..10 {
        let plays_sent: Vec<String> = (0..20).map(|_| format!("play {item}")).collect();
        sent += 20;
        let wait_for = (rng.next_u64() % 20) as usize;
        acked += write_then_kill(&dir, &plays_sent, wait_for).len() as u32;
        let plays = Engine::open(&dir).unwrap().plays(item).unwrap() - base;
        assert!(
            plays >= acked && plays <= sent,
            "round {round}: {plays} plays after {acked} acknowledged of {sent} sent"
        );
    }
}
