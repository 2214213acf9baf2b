//! Opening a corrupted index directory: a typed error (or, when the mutation
//! is harmless, a working engine), never a panic.
//!
//! Input: a list of 8-byte edits `[file, op, offset (u32 LE), value, flags]`.
//! When the first byte of the input is odd the manifest is re-checksummed
//! after the edits, so mutated bytes get past the checksums and reach the
//! decoders (bincode, the ANN validator, tantivy, safetensors).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use twostage::{Catalog, Context, Engine, Events, IndexBuilder, Request};

struct Template {
    /// Relative path and bytes of every file of a small built index.
    files: Vec<(PathBuf, Vec<u8>)>,
    work: PathBuf,
    _dir: tempfile::TempDir,
}

fn list(dir: &Path, base: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read_dir").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            list(&p, base, out);
        } else {
            let bytes = std::fs::read(&p).expect("read");
            out.push((p.strip_prefix(base).expect("prefix").to_path_buf(), bytes));
        }
    }
}

fn template() -> &'static Mutex<Template> {
    static T: OnceLock<Mutex<Template>> = OnceLock::new();
    T.get_or_init(|| {
        let mut items = String::new();
        for i in 0..60 {
            items += &format!(
                "{{\"id\":\"i{i}\",\"title\":\"title {i} word{}\",\"tags\":{{\"genre\":[\"g{}\"]}},\"attributes\":{{\"artist\":\"a{}\"}}}}\n",
                i % 7,
                i % 3,
                i % 5
            );
        }
        let catalog = Catalog::from_jsonl_reader(items.as_bytes(), Path::new("items.jsonl")).expect("catalog");
        let mut log = String::new();
        for u in 0..30 {
            for j in 0..6 {
                log += &format!("{{\"user\":\"u{u}\",\"item\":\"i{}\",\"ts\":{}}}\n", (u * 3 + j * 7) % 60, 1_700_000_000 + u * 10_000 + j * 60);
            }
            // Searches too, so the index carries a non-empty query–category model to corrupt.
            log += &format!(
                "{{\"user\":\"u{u}\",\"item\":\"i{}\",\"ts\":{},\"type\":\"search\",\"query\":\"word{} title\"}}\n",
                u % 60,
                1_700_000_000 + u * 10_000 + 500,
                u % 7
            );
        }
        let events = Events::from_jsonl_reader(log.as_bytes(), Path::new("events.jsonl"), &catalog).expect("events");
        let dir = tempfile::tempdir().expect("tempdir");
        let index = dir.path().join("index");
        IndexBuilder::new().group_key("artist").build(&catalog, &events, &index).expect("build");
        let mut files = Vec::new();
        list(&index, &index, &mut files);
        let work = dir.path().join("work");
        Mutex::new(Template { files, work, _dir: dir })
    })
}

fuzz_target!(|data: &[u8]| {
    let t = template().lock().unwrap_or_else(|e| e.into_inner());
    let _ = std::fs::remove_dir_all(&t.work);
    let mut files = t.files.clone();
    let reseal = data.first().is_some_and(|b| b % 2 == 1);
    for edit in data.get(1..).unwrap_or(&[]).chunks_exact(8) {
        let n = files.len();
        let Some((_, bytes)) = files.get_mut(edit[0] as usize % n) else { continue };
        let at = u32::from_le_bytes([edit[2], edit[3], edit[4], edit[5]]) as usize;
        let at = if bytes.is_empty() { 0 } else { at % (bytes.len() + 1) };
        match edit[1] % 4 {
            0 => {
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= edit[6].max(1);
                }
            }
            1 => bytes.truncate(at),
            2 => bytes.insert(at, edit[6]),
            _ => {
                if let Some(b) = bytes.get_mut(at) {
                    *b = edit[6];
                }
            }
        }
    }
    for (rel, bytes) in &files {
        let path = t.work.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
    }
    if reseal && twostage::index::reseal_for_fuzzing(&t.work).is_err() {
        return;
    }
    match Engine::open(&t.work) {
        // A mutation that still opens must give an engine that serves.
        Ok(engine) => {
            for req in [Request::new(Context::search("title word3")), Request::new(Context::listening("i7"))] {
                let _ = engine.recommend(&req);
            }
        }
        Err(e) => assert!(!e.is_caller_error(), "{e}"),
    }
});
