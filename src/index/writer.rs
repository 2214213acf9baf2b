//! The one writer of the on-disk format: every part of an index encoded
//! into its file, the manifest that checksums them, and the fsyncs that
//! make the directory safe to publish. The builder and the in-place retrain
//! write through here (the text index is written by tantivy into
//! [`text_dir`]): the parts first, then [`seal`] writes the manifest.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::index::manifest::{list_files, Manifest};
use crate::index::reader::Files;
use crate::index::{bincode_config, ANN_FILE, CONTENT_DIR, CONTENT_FILE, ITEMS_FILE, QUERY_CATEGORIES_FILE, RANKER_FILE, TEXT_DIR};
use crate::ranking::categories::QueryCategories;
use crate::ranking::model::Ranker;
use crate::retrieval::ann::AnnIndex;
use crate::store::ItemStore;

/// The parts of a new index, besides its text index.
pub(crate) struct NewIndex<'a> {
    pub store: &'a ItemStore,
    pub ann: &'a AnnIndex,
    pub content: Option<&'a AnnIndex>,
    pub ranker: &'a Ranker,
    pub categories: &'a QueryCategories,
}

/// Where the text index of the index being written in `dir` goes.
pub(crate) fn text_dir(dir: &Path) -> PathBuf {
    dir.join(TEXT_DIR)
}

/// Writes every part into `dir` (which already holds the text index); the
/// index is complete once [`seal`] has written its manifest.
pub(crate) fn write_parts(dir: &Path, index: NewIndex<'_>) -> Result<()> {
    write_file(&dir.join(ITEMS_FILE), &encode(index.store)?)?;
    write_file(&dir.join(ANN_FILE), &encode(index.ann)?)?;
    write_file(&dir.join(QUERY_CATEGORIES_FILE), &encode(index.categories)?)?;
    if let Some(graph) = index.content {
        write_file(&dir.join(CONTENT_FILE), &encode(graph)?)?;
    }
    index.ranker.save(&dir.join(RANKER_FILE))
}

/// Writes `manifest` over the files now in `dir` (its `files` and checksum
/// filled in here) and fsyncs the whole tree.
pub(crate) fn seal(dir: &Path, manifest: Manifest) -> Result<()> {
    manifest.write(dir)?;
    sync_tree(dir)
}

/// Writes into `dir` a copy of a verified index (`files`, `manifest`) with
/// its ranker replaced by `ranker` and its query–category model by
/// `categories` (learned from the log the ranker was trained on, so that
/// serving reads the feature as training did), and fsyncs it.
pub(crate) fn write_with_ranker(
    dir: &Path,
    files: &Files,
    mut manifest: Manifest,
    ranker: &Ranker,
    categories: &QueryCategories,
) -> Result<()> {
    for (rel, bytes) in files {
        if rel != RANKER_FILE && rel != QUERY_CATEGORIES_FILE {
            write_file(&dir.join(rel), bytes)?;
        }
    }
    write_file(&dir.join(QUERY_CATEGORIES_FILE), &encode(categories)?)?;
    ranker.save(&dir.join(RANKER_FILE))?;
    manifest.stats.query_category_searches = categories.searches();
    seal(
        dir,
        Manifest {
            ranker: ranker.info().clone(),
            ..manifest
        },
    )
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode_config()).map_err(|e| Error::internal_by("encode", e))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))
}

/// fsyncs every file and directory under `dir`, so the rename that
/// publishes it cannot expose unwritten data after a crash.
fn sync_tree(dir: &Path) -> Result<()> {
    for rel in list_files(dir)? {
        let p = dir.join(rel);
        std::fs::File::open(&p).and_then(|f| f.sync_all()).map_err(|e| Error::io(&p, e))?;
    }
    sync_dir(dir)?;
    let ann_dir = Path::new(ANN_FILE).parent().unwrap_or(Path::new(""));
    for sub in [Path::new(TEXT_DIR), ann_dir, Path::new(CONTENT_DIR)] {
        let p = dir.join(sub);
        if p.is_dir() {
            sync_dir(&p)?;
        }
    }
    Ok(())
}

/// fsyncs a directory's entries. Directories can be fsynced on Unix;
/// elsewhere this is best effort.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    match std::fs::File::open(dir).and_then(|f| f.sync_all()) {
        Ok(()) => Ok(()),
        Err(e) if cfg!(unix) => Err(Error::io(dir, e)),
        Err(_) => Ok(()),
    }
}
