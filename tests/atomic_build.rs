//! Builds are atomic: a build killed midway (a real child process, killed at
//! several stages) leaves the existing index usable and nothing that looks
//! like an index; the next build cleans up the dead build's leftovers.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use twostage::{Catalog, Engine, Events, IndexBuilder};

mod common;

/// Tells the child test where to build.
const CHILD_OUT: &str = "TWOSTAGE_TEST_CHILD_BUILD_OUT";

/// The child process of `a_build_killed_midway_leaves_the_old_index_usable`:
/// a full build of the music data, long enough to be killed at several stages.
#[test]
#[ignore = "run as a child process by a_build_killed_midway_leaves_the_old_index_usable"]
fn child_build() {
    let out = std::env::var_os(CHILD_OUT).expect("run by a_build_killed_midway_leaves_the_old_index_usable");
    let catalog = Catalog::from_jsonl_path(common::data_dir().join("items.jsonl")).unwrap();
    let events = Events::from_jsonl_path(common::data_dir().join("events.jsonl"), &catalog).unwrap();
    IndexBuilder::new()
        .group_key("artist")
        .without_ranker_training()
        .build(&catalog, &events, out)
        .unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_build_killed_midway_leaves_the_old_index_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("idx");
    let catalog = Catalog::from_jsonl_path(common::data_dir().join("items.jsonl")).unwrap();
    let small = Catalog::new(catalog.items()[..200].to_vec()).unwrap();
    IndexBuilder::new().build(&small, &Events::default(), &out).unwrap();
    let mut expected = 200;
    let mut kills = 0;
    // Kill the child as soon as its temporary directory exists, once the text
    // index is being written, and once the item store is on disk.
    for stage in ["", "text", "items.bin"] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_build", "--exact", "--ignored", "--test-threads", "1"])
            .env(CHILD_OUT, &out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let prefix = format!(".idx.tmp-{}-", child.id());
        let deadline = Instant::now() + Duration::from_secs(300);
        let killed = loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "the child build failed");
                break false;
            }
            let reached = names(tmp.path())
                .iter()
                .any(|n| n.starts_with(&prefix) && (stage.is_empty() || tmp.path().join(n).join(stage).exists()));
            if reached {
                child.kill().unwrap();
                child.wait().unwrap();
                break true;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("the child build did not reach {stage:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if killed {
            kills += 1;
        } else {
            // It finished before we could kill it: the new index is in place.
            expected = catalog.len();
        }
        // The old (or, if it finished, the new) index is complete and serves.
        let engine = Engine::open(&out).unwrap_or_else(|e| panic!("index unusable after a kill at {stage:?}: {e}"));
        assert_eq!(engine.len(), expected);
        // Whatever the killed build left is hidden and is not an index.
        for n in names(tmp.path()).iter().filter(|n| n.as_str() != "idx") {
            assert!(n.starts_with(".idx.tmp-"), "unexpected {n}");
            assert!(Engine::open(tmp.path().join(n)).is_err(), "{n} opens as an index");
        }
    }
    assert!(kills >= 2, "only {kills} of 3 builds were killed midway");
    // The next build replaces the index and removes the dead builds' leftovers.
    IndexBuilder::new().build(&small, &Events::default(), &out).unwrap();
    assert_eq!(Engine::open(&out).unwrap().len(), 200);
    assert_eq!(
        names(tmp.path()),
        vec!["idx".to_string()],
        "stale temporary directories were not cleaned up"
    );
}

#[test]
fn a_concurrent_builds_directory_is_not_taken_for_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("idx");
    let catalog = Catalog::from_jsonl_path(common::data_dir().join("items.jsonl")).unwrap();
    let small = Catalog::new(catalog.items()[..50].to_vec()).unwrap();
    // A directory as a build in this (live) process would name it.
    let live = tmp.path().join(format!(".idx.tmp-{}-12345", std::process::id()));
    std::fs::create_dir(&live).unwrap();
    std::fs::write(live.join("half-written"), b"...").unwrap();
    IndexBuilder::new().build(&small, &Events::default(), &out).unwrap();
    assert!(live.join("half-written").exists(), "a running build's directory was removed");
    assert_eq!(Engine::open(&out).unwrap().len(), 50);
}
