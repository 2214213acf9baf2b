//! Shared fixtures: one index over the shipped music data, built once per test binary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use twostage::{Catalog, Engine, Events, IndexBuilder};

pub struct Fixture {
    pub catalog: Catalog,
    pub events: Events,
    pub engine: Engine,
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/music")
}

/// The music catalog and events, built into an index in a temp dir, once.
pub fn music() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let catalog = Catalog::from_jsonl_path(data_dir().join("items.jsonl")).expect("catalog");
        let events = Events::from_jsonl_path(data_dir().join("events.jsonl"), &catalog).expect("events");
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("index");
        // Ranker training has its own test (tests/ranker.rs); these tests are about retrieval and serving.
        IndexBuilder::new()
            .group_key("artist")
            .without_ranker_training()
            .build(&catalog, &events, &dir)
            .expect("build");
        let engine = Engine::open(&dir).expect("open");
        Fixture {
            catalog,
            events,
            engine,
            dir,
            _tmp: tmp,
        }
    })
}

/// Copies a directory tree (an index) recursively.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The sentence encoder (all-MiniLM-L6-v2), loaded once. Fails loudly when
/// the model is missing: `scripts/fetch_minilm.sh` fetches it (CI does).
pub fn encoder() -> twostage::Encoder {
    static E: OnceLock<twostage::Encoder> = OnceLock::new();
    E.get_or_init(|| {
        let dir = twostage::encoder::default_model_dir(env!("CARGO_MANIFEST_DIR"));
        twostage::Encoder::load(&dir).unwrap_or_else(|e| {
            panic!(
                "cannot load the sentence encoder from {}: {e}\nrun scripts/fetch_minilm.sh (or set TWOSTAGE_MODEL_DIR)",
                dir.display()
            )
        })
    })
    .clone()
}

/// One short session per user, each playing `items` in order, 200 s apart:
/// 300 users give the latest 15% of the log enough lists to train a ranker.
pub fn sessions(catalog: &Catalog, users: i64, items: &[&str]) -> Events {
    let mut log = String::new();
    for user in 0..users {
        for (i, item) in items.iter().enumerate() {
            log += &format!(
                "{{\"user\":\"u{user}\",\"item\":\"{item}\",\"ts\":{}}}\n",
                1_700_000_000 + user * 10_000 + i as i64 * 200
            );
        }
    }
    Events::from_jsonl_reader(log.as_bytes(), "events.jsonl".as_ref(), catalog).expect("events")
}

/// A child process of this test binary running the ignored test `test`
/// with `var` set to `index`, once it printed `ready`: the child, its
/// stdin, and its stdout's remaining lines.
pub struct Child {
    pub process: std::process::Child,
    pub stdin: std::process::ChildStdin,
    pub out: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

pub fn spawn_child(test: &str, var: &str, index: &std::path::Path) -> Child {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut process = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"])
        .env(var, index)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = process.stdin.take().unwrap();
    let mut out = std::io::BufReader::new(process.stdout.take().unwrap()).lines();
    while let Some(Ok(l)) = out.next() {
        // libtest prints "test NAME ... " before it, on the same line.
        if l.ends_with("ready") {
            break;
        }
    }
    Child { process, stdin, out }
}
