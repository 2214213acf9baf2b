//! The one reader of the on-disk format: verify the manifest and every
//! file's checksum, decode each part, and cross-check the parts against the
//! manifest and each other, for [`Engine::open`](crate::Engine::open). The
//! in-place retrain verifies the same manifest and checksums and reads the
//! content space through the same [`content_space`] check; it copies the
//! other files as they are.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::{Error, Result};
use crate::index::manifest::Manifest;
use crate::index::{decode, ANN_FILE, CONTENT_FILE, ITEMS_FILE, QUERY_CATEGORIES_FILE, RANKER_FILE, TEXT_DIR};
use crate::ranking::categories::QueryCategories;
use crate::ranking::model::Ranker;
use crate::retrieval::ann::{AnnIndex, Metric};
use crate::retrieval::lexical::LexicalIndex;
use crate::store::ItemStore;

/// Every verified file of an index, by relative path.
pub(crate) type Files = BTreeMap<String, Vec<u8>>;

/// A whole index, decoded and cross-checked.
pub(crate) struct IndexParts {
    pub manifest: Manifest,
    pub store: ItemStore,
    /// The learned (or catalog) vector space.
    pub ann: AnnIndex,
    /// The content space, when the index was built with an encoder.
    pub content: Option<AnnIndex>,
    pub text: LexicalIndex,
    pub ranker: Ranker,
    /// What the words of logged searches say of item categories.
    pub categories: QueryCategories,
    /// External id → internal id (ids are unique: checked here).
    pub by_id: HashMap<String, u32>,
}

/// Reads the index in `dir`: the verified manifest and files, then every part.
pub(crate) fn read(dir: &Path) -> Result<IndexParts> {
    let (manifest, mut files) = Manifest::read_verified(dir)?;
    let store: ItemStore = decode(take(&mut files, dir, ITEMS_FILE)?.as_slice(), &dir.join(ITEMS_FILE))?;
    let ann: AnnIndex = decode(take(&mut files, dir, ANN_FILE)?.as_slice(), &dir.join(ANN_FILE))?;
    ann.validate().map_err(|e| Error::corrupt(dir.join(ANN_FILE), e))?;
    if ann.metric() != manifest.build.metric {
        return Err(Error::corrupt(dir.join(ANN_FILE), "metric differs from the manifest"));
    }
    store.validate(ann.len()).map_err(|e| Error::corrupt(dir.join(ITEMS_FILE), e))?;
    if store.len() != manifest.stats.items {
        return Err(Error::corrupt(dir.join(ITEMS_FILE), "item count differs from the manifest"));
    }
    let ranker = Ranker::from_bytes(
        &take(&mut files, dir, RANKER_FILE)?,
        manifest.ranker.clone(),
        &dir.join(RANKER_FILE),
    )?;
    let categories_path = dir.join(QUERY_CATEGORIES_FILE);
    let categories: QueryCategories = decode(take(&mut files, dir, QUERY_CATEGORIES_FILE)?.as_slice(), &categories_path)?;
    categories.validate().map_err(|e| Error::corrupt(&categories_path, e))?;
    let content = content_space(&manifest, &files, dir)?;
    files.remove(CONTENT_FILE);
    let prefix = format!("{TEXT_DIR}/");
    let text_files = files
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|rest| (rest.to_string(), v)))
        .collect();
    let text = LexicalIndex::from_files(&text_files, &manifest.schema, &dir.join(TEXT_DIR))?;
    let mut by_id = HashMap::with_capacity(store.len());
    for (i, item) in store.items.iter().enumerate() {
        if by_id.insert(item.id.clone(), i as u32).is_some() {
            return Err(Error::corrupt(dir.join(ITEMS_FILE), format!("duplicate item id `{}`", item.id)));
        }
    }
    Ok(IndexParts {
        manifest,
        store,
        ann,
        content,
        text,
        ranker,
        categories,
        by_id,
    })
}

/// The content space of a verified index: present exactly when the manifest
/// names an encoder, with one row per item of the encoder's dimension.
pub(crate) fn content_space(manifest: &Manifest, files: &Files, dir: &Path) -> Result<Option<AnnIndex>> {
    let path = dir.join(CONTENT_FILE);
    match (&manifest.encoder, files.get(CONTENT_FILE)) {
        (Some(info), Some(bytes)) => {
            let graph: AnnIndex = decode(bytes, &path)?;
            graph.validate().map_err(|e| Error::corrupt(&path, e))?;
            if graph.len() != manifest.stats.items || graph.dim() != info.dim || graph.metric() != Metric::Cosine {
                return Err(Error::corrupt(
                    &path,
                    "content space does not match the items or the encoder in the manifest",
                ));
            }
            Ok(Some(graph))
        }
        (Some(_), None) => Err(Error::corrupt(&path, "missing from the manifest")),
        (None, Some(_)) => Err(Error::corrupt(&path, "a content space without an encoder in the manifest")),
        (None, None) => Ok(None),
    }
}

fn take(files: &mut Files, dir: &Path, name: &str) -> Result<Vec<u8>> {
    files
        .remove(name)
        .ok_or_else(|| Error::corrupt(dir.join(name), "missing from the manifest"))
}
