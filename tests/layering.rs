//! The layering of `src/`: a module may use modules of its own layer or of
//! the layers below it, never one above. Read from the `crate::` paths of
//! every source file's non-test code.
//!
//! Layers, bottom to top (a module path is placed by its longest listed
//! prefix):
//!
//! 0. leaf utilities: error, rng, vector kernels, sparse matrices, small dense
//!    linear algebra, metrics, progress, JSON Lines
//! 1. the data and its contract: catalog, events, the schema, request types, Parquet input
//! 2. stage components: retrieval, the per-item store, ranking, the encoder,
//!    the learned and content embeddings
//! 3. the index format: manifest, reader, writer, file names
//! 4. online: the engine, its live writes and the hot-swap handle
//! 5. offline orchestration: the builder, training lists, retrain, publish
//! 6. the evaluation harness (feature `harness`): eval, synth, movielens
//!
//! A second test reads the same paths at the granularity of the crate's
//! top-level modules and fails on any cycle between them, within a layer too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("rng", 0),
    ("sparse", 0),
    ("linalg", 0),
    ("metrics", 0),
    ("progress", 0),
    ("jsonl", 0),
    ("vector", 0),
    ("catalog", 1),
    ("events", 1),
    ("request", 1),
    ("parquet", 1),
    ("schema", 1),
    ("retrieval", 2),
    ("store", 2),
    ("overlay", 2),
    ("ranking", 2),
    ("encoder", 2),
    ("index::embeddings", 2),
    ("index::content", 2),
    ("index", 3),
    ("engine", 4),
    ("live", 4),
    ("handle", 4),
    ("offline", 5),
    ("eval", 6),
    ("synth", 6),
    ("movielens", 6),
];

fn layer_of(path: &str) -> Option<u8> {
    LAYERS
        .iter()
        .filter(|(prefix, _)| path == *prefix || path.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|&(_, layer)| layer)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/index/manifest.rs` → `index::manifest`; `src/index/mod.rs` → `index`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src/").with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The code before the unit tests (`#[cfg(test)] mod tests`).
fn non_test_code(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    }
}

/// Every path named after `crate::`, cut at its first capitalised segment (a
/// type or constant), expanding a `crate::{a, b::c}` group one level. A
/// trailing function name may remain; the layer lookup is by prefix.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                out.extend(inner.split(',').map(|p| module_prefix(p.trim())).filter(|p| !p.is_empty()));
            } else {
                let p = module_prefix(rest);
                if !p.is_empty() {
                    out.push(p);
                }
            }
        }
    }
    out
}

fn module_prefix(path: &str) -> String {
    let end = path
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(path.len());
    path[..end]
        .split("::")
        .take_while(|s| s.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join("::")
}

/// `(module, the crate paths its non-test code names)` for every file of `src/` but the root.
fn imports() -> Vec<(String, Vec<String>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).expect("a source file is readable");
            (module_of(&src, file), crate_paths(non_test_code(&text)))
        })
        // The crate root declares and re-exports every module.
        .filter(|(from, _)| from != "lib")
        .collect()
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let mut upward = BTreeSet::new();
    let mut unplaced = BTreeSet::new();
    for (from, paths) in imports() {
        let Some(from_layer) = layer_of(&from) else {
            unplaced.insert(from.clone());
            continue;
        };
        for to in paths {
            match layer_of(&to) {
                None => {
                    unplaced.insert(to);
                }
                Some(to_layer) if to_layer > from_layer => {
                    upward.insert((from.clone(), to));
                }
                Some(_) => {}
            }
        }
    }
    assert!(unplaced.is_empty(), "modules with no layer in LAYERS: {unplaced:?}");
    assert!(upward.is_empty(), "imports from a layer above: {upward:?}");
}

#[test]
fn top_level_modules_have_no_cycle() {
    let top = |path: &str| path.split("::").next().unwrap_or("").to_string();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, paths) in imports() {
        let from = top(&from);
        for to in paths.iter().map(|p| top(p)).filter(|t| *t != from) {
            edges.entry(from.clone()).or_default().insert(to);
        }
    }
    // A module is on a cycle when it can reach itself.
    let reaches = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = edges.get(start).into_iter().flatten().map(String::as_str).collect();
        while let Some(m) = stack.pop() {
            if seen.insert(m.to_string()) {
                stack.extend(edges.get(m).into_iter().flatten().map(String::as_str));
            }
        }
        seen
    };
    let on_cycle: Vec<&String> = edges.keys().filter(|m| reaches(m).contains(*m)).collect();
    assert!(on_cycle.is_empty(), "top-level modules on an import cycle: {on_cycle:?}");
}

#[test]
fn the_path_reader_sees_grouped_and_inline_paths() {
    let code = "use crate::index::{decode, ANN_FILE};\nuse crate::{engine::Engine, rng};\nlet x = crate::retrieval::lexical::analyze(t);\n// crate::eval in a comment\n";
    assert_eq!(crate_paths(code), vec!["index", "engine", "rng", "retrieval::lexical::analyze"]);
    assert_eq!(layer_of("vector"), Some(0));
    assert_eq!(layer_of("retrieval::lexical"), Some(2));
    assert_eq!(layer_of("offline::builder"), Some(5));
    assert_eq!(layer_of("index::embeddings"), Some(2));
    assert_eq!(layer_of("nowhere"), None);
}
