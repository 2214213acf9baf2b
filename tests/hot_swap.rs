//! Concurrent use and hot swap: requests from several threads while the
//! index is swapped repeatedly — no errors, no answer mixing two indexes, and
//! every swapped-out engine freed.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use twostage::{Catalog, Context, Engine, EngineHandle, Events, IndexBuilder, Request};

/// An index whose ids all start with `prefix` and whose titles all contain "song".
fn build(prefix: &str, dir: &Path) {
    let mut items = String::new();
    for i in 0..40 {
        items += &format!(
            "{{\"id\":\"{prefix}{i}\",\"title\":\"{prefix} song {i}\",\"tags\":{{\"genre\":[\"g{}\"]}}}}\n",
            i % 4
        );
    }
    let catalog = Catalog::from_jsonl_reader(items.as_bytes(), Path::new("items.jsonl")).unwrap();
    let mut log = String::new();
    for u in 0..20 {
        for j in 0..5 {
            log += &format!(
                "{{\"user\":\"u{u}\",\"item\":\"{prefix}{}\",\"ts\":{}}}\n",
                (u + j * 3) % 40,
                1_700_000_000 + u * 10_000 + j * 60
            );
        }
    }
    let events = Events::from_jsonl_reader(log.as_bytes(), Path::new("events.jsonl"), &catalog).unwrap();
    IndexBuilder::new().build(&catalog, &events, dir).unwrap();
}

#[test]
fn recommend_from_many_threads_while_swapping() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    build("a", &a);
    build("b", &b);
    let handle = Arc::new(EngineHandle::open(&a).unwrap());
    let mut retired: Vec<Weak<Engine>> = vec![Arc::downgrade(&handle.load())];

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let seen = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (handle, stop, served, seen) = (Arc::clone(&handle), Arc::clone(&stop), Arc::clone(&served), seen.clone());
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) || n < 20 {
                    // One snapshot for a whole "page": a search and a follow-up.
                    let engine = handle.load();
                    let hits = engine.recommend(&Request::new(Context::search("song")).k(5)).unwrap();
                    assert_eq!(hits.items.len(), 5);
                    let prefix = &hits.items[0].id[..1];
                    assert!(
                        hits.items.iter().all(|r| r.id.starts_with(prefix)),
                        "one answer mixes two indexes: {:?}",
                        hits.items
                    );
                    let next = engine
                        .recommend(&Request::new(Context::listening(hits.items[0].id.clone())).k(5))
                        .unwrap();
                    assert!(
                        next.items.iter().all(|r| r.id.starts_with(prefix)),
                        "a snapshot changed under a request"
                    );
                    // The convenience path takes its own snapshot per call.
                    let via_handle = handle.recommend(&Request::new(Context::search("song")).k(3)).unwrap();
                    let p = &via_handle.items[0].id[..1];
                    assert!(via_handle.items.iter().all(|r| r.id.starts_with(p)));
                    seen[(prefix == "b") as usize].fetch_add(1, Ordering::Relaxed);
                    n += 1;
                    if t == 0 && n.is_multiple_of(50) {
                        std::thread::yield_now();
                    }
                }
                served.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();

    for i in 0..40 {
        let dir = if i % 2 == 0 { &b } else { &a };
        let previous = if i % 3 == 0 {
            handle.swap(Engine::open(dir).unwrap())
        } else {
            handle.reload(dir).unwrap()
        };
        retired.push(Arc::downgrade(&handle.load()));
        drop(previous);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // A failed reload keeps the current engine serving.
    let current = handle.load().info().path;
    assert!(handle.reload(tmp.path().join("missing")).is_err());
    assert_eq!(handle.load().info().path, current);

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("a request thread failed");
    }
    assert!(served.load(Ordering::Relaxed) >= 80);
    assert!(
        seen[0].load(Ordering::Relaxed) > 0 && seen[1].load(Ordering::Relaxed) > 0,
        "both indexes served"
    );
    // No leaks: once the handle is gone, every engine ever served is freed.
    drop(handle);
    let alive = retired.iter().filter(|w| w.upgrade().is_some()).count();
    assert_eq!(alive, 0, "{alive} engines still alive after the handle was dropped");
}
