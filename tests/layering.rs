//! The layering of `src/`: a module may use modules of its own layer or of
//! the layers below it, never one above. Read from the `crate::` paths of
//! every source file's non-test code.
//!
//! Layers, bottom to top (a module path is placed by its longest listed
//! prefix):
//!
//! 0. leaf utilities: error, rng, vector kernels, sparse matrices, metrics, progress, JSON Lines
//! 1. the data and its contract: catalog, events, the index schema, request types, Parquet input
//! 2. stage components: retrieval, ranking, the encoder, the learned and content embeddings
//! 3. the index format: manifest, item store, file names and decoding
//! 4. online: the engine and the hot-swap handle
//! 5. offline orchestration: the builder
//! 6. the evaluation harness (feature `harness`): eval, synth, movielens
//!
//! `KNOWN_BACK_EDGES` lists the imports that still point upwards, each to be
//! removed by the architecture work (issue 11). The test fails on any other
//! upward import, and also when a listed one is gone, so the list only shrinks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("rng", 0),
    ("sparse", 0),
    ("metrics", 0),
    ("progress", 0),
    ("jsonl", 0),
    ("retrieval::distance", 0),
    ("catalog", 1),
    ("events", 1),
    ("request", 1),
    ("parquet", 1),
    ("index::schema", 1),
    ("retrieval", 2),
    ("ranking", 2),
    ("encoder", 2),
    ("index::embeddings", 2),
    ("index::content", 2),
    ("index", 3),
    ("engine", 4),
    ("handle", 4),
    ("index::builder", 5),
    ("eval", 6),
    ("synth", 6),
    ("movielens", 6),
];

/// `(from module, to module path)` imports that still go upwards.
const KNOWN_BACK_EDGES: &[(&str, &str)] = &[
    // Cold-start vectors read the item store's tag sets.
    ("index::embeddings", "index"),
    // Training lists are assembled through the engine's feature path (the
    // stage boundary is to become a public type below the engine).
    ("ranking::dataset", "engine"),
    // Features read the item store's columns.
    ("ranking::features", "index"),
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

/// `src/index/builder.rs` → `index::builder`; `src/index/mod.rs` → `index`.
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

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut upward = BTreeSet::new();
    let mut unplaced = BTreeSet::new();
    for file in &files {
        let from = module_of(&src, file);
        if from == "lib" {
            continue; // the crate root declares and re-exports every module
        }
        let Some(from_layer) = layer_of(&from) else {
            unplaced.insert(from.clone());
            continue;
        };
        let text = std::fs::read_to_string(file).expect("a source file is readable");
        for to in crate_paths(non_test_code(&text)) {
            match layer_of(&to) {
                None => {
                    unplaced.insert(to);
                }
                Some(to_layer) if to_layer > from_layer => {
                    // Record the edge at the granularity of the layer table.
                    let target = LAYERS
                        .iter()
                        .filter(|(p, _)| to == *p || to.starts_with(&format!("{p}::")))
                        .max_by_key(|(p, _)| p.len())
                        .map(|(p, _)| p.to_string())
                        .unwrap_or(to);
                    upward.insert((from.clone(), target));
                }
                Some(_) => {}
            }
        }
    }
    assert!(unplaced.is_empty(), "modules with no layer in LAYERS: {unplaced:?}");
    let known: BTreeSet<(String, String)> = KNOWN_BACK_EDGES.iter().map(|&(a, b)| (a.to_string(), b.to_string())).collect();
    let new: Vec<_> = upward.difference(&known).collect();
    assert!(new.is_empty(), "imports from a layer above: {new:?}");
    let gone: Vec<_> = known.difference(&upward).collect();
    assert!(
        gone.is_empty(),
        "listed in KNOWN_BACK_EDGES but no longer imported (remove them): {gone:?}"
    );
}

#[test]
fn the_path_reader_sees_grouped_and_inline_paths() {
    let code = "use crate::index::{decode, ANN_FILE};\nuse crate::{engine::Engine, rng};\nlet x = crate::retrieval::lexical::analyze(t);\n// crate::eval in a comment\n";
    assert_eq!(crate_paths(code), vec!["index", "engine", "rng", "retrieval::lexical::analyze"]);
    assert_eq!(layer_of("retrieval::distance"), Some(0));
    assert_eq!(layer_of("retrieval::lexical"), Some(2));
    assert_eq!(layer_of("index::builder"), Some(5));
    assert_eq!(layer_of("nowhere"), None);
}
