//! The index manifest (`manifest.json`): format version, build parameters,
//! schema, ranker description and a checksum of every other file; and the
//! verified read that `Engine::open` does before any byte reaches a
//! dependency.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::BuildParams;
use crate::ranking::model::RankerInfo;
use crate::schema::Schema;

/// The manifest's file name.
pub(crate) const MANIFEST: &str = "manifest.json";
/// Marks a directory as a twostage index.
pub(crate) const FORMAT: &str = "twostage-index";
/// The on-disk format this library writes and reads. Version 2 added the
/// optional content space and its ranker features; version 3 the BM25F text
/// index (one weighted field, analyzers per field); version 4 the linear
/// item-item (EASE) weights and their ranker features; version 5 the
/// query–category model of logged searches and its ranker feature; version
/// 6 the `fold_in` ranker feature (the files are those of 5, but a ranker
/// of 5 was trained without it); version 7 the items the cold-start rule
/// gave vectors (so items added live are placed by the same rule).
pub const FORMAT_VERSION: u32 = 7;
/// A manifest larger than this is not ours.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// One covered file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEntry {
    /// Relative path with `/` separators.
    pub path: String,
    pub bytes: u64,
    pub crc32: u32,
}

/// Figures recorded at build time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildStats {
    /// Catalog items.
    pub items: usize,
    /// Events read.
    pub events: usize,
    /// Sessions with at least two plays.
    pub sessions: usize,
    /// Items with a vector (searchable by ANN).
    pub vectors: usize,
    /// Vector dimension (0 when no item has a vector).
    pub dim: usize,
    /// Where vectors came from: `catalog`, `learned` or `none`.
    pub vector_source: String,
    /// How the linear item-item model was fitted: `exact` (one dense
    /// inverse), `restricted` (co-occurrence neighbourhoods) or `none` (no plays).
    #[serde(default)]
    pub linear_fit: String,
    /// Linear item-item weights stored.
    #[serde(default)]
    pub linear_weights: usize,
    /// Logged searches (with a query, for an item with categories) the
    /// query–category model learned from: 0 leaves the ranker's
    /// `query_category` feature at 0.
    #[serde(default)]
    pub query_category_searches: usize,
    /// Milliseconds the build took.
    pub build_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub created_by: String,
    pub schema: Schema,
    pub build: BuildParams,
    pub stats: BuildStats,
    pub ranker: RankerInfo,
    /// The sentence encoder that built the content space, if any.
    #[serde(default)]
    pub encoder: Option<crate::encoder::EncoderInfo>,
    /// Which order each context kind is served with, as validated at build.
    #[serde(default)]
    pub serving: crate::ranking::ServingPlan,
    pub files: Vec<FileEntry>,
    /// The event log the index was built from ([`BUILD_LOG_FILE`](super::BUILD_LOG_FILE)),
    /// kept for compaction: covered here but not read by `read_verified`
    /// (an engine never needs it), so opening stays as fast with a long log.
    /// Absent from indexes built from log artefacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<FileEntry>,
    /// CRC-32 of this manifest serialised with this field set to 0: the
    /// manifest guards every other file, this guards the manifest.
    pub manifest_crc32: u32,
}

/// `p` as a relative path that stays inside its directory, if it does.
pub(crate) fn rel_path(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    let ok = !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| path.to_path_buf())
}

/// All regular files under `dir`, as sorted `/`-separated relative paths.
/// Anything that is not a plain file or directory (a symlink, a socket) is an error.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<String>> {
    fn walk(base: &Path, rel: &str, out: &mut Vec<String>) -> Result<()> {
        let here = if rel.is_empty() { base.to_path_buf() } else { base.join(rel) };
        let entries = std::fs::read_dir(&here).map_err(|e| Error::io(&here, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&here, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(Error::corrupt(entry.path(), "file name is not UTF-8"));
            };
            let child = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let ft = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            if ft.is_dir() {
                walk(base, &child, out)?;
            } else if ft.is_file() {
                out.push(child);
            } else {
                return Err(Error::corrupt(entry.path(), "not a regular file"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

impl Manifest {
    /// The exact bytes written to disk (serde_json's output is deterministic
    /// for a value, and with its `float_roundtrip` feature floats parse back
    /// to the same bits, so re-serialising reproduces the bytes).
    fn canonical_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::internal_by("manifest", e))
    }

    /// Checksums every file under `dir` (except the manifest) into `files`,
    /// then writes and fsyncs the manifest.
    pub fn write(mut self, dir: &Path) -> Result<()> {
        self.files.clear();
        self.log = None;
        for rel in list_files(dir)? {
            if rel == MANIFEST || rel == super::LIVE_LOG_FILE {
                continue;
            }
            let path = dir.join(&rel);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let entry = FileEntry {
                bytes: bytes.len() as u64,
                crc32: crc32fast::hash(&bytes),
                path: rel,
            };
            if entry.path == super::BUILD_LOG_FILE {
                self.log = Some(entry);
            } else {
                self.files.push(entry);
            }
        }
        self.manifest_crc32 = 0;
        self.manifest_crc32 = crc32fast::hash(&self.canonical_bytes()?);
        let json = self.canonical_bytes()?;
        let path = dir.join(MANIFEST);
        let mut f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        f.write_all(&json).and_then(|_| f.sync_all()).map_err(|e| Error::io(&path, e))?;
        Ok(())
    }

    /// Reads the manifest and every file it covers, verifying format,
    /// version, the exact set of files, their sizes and checksums. Returns
    /// the files' bytes: callers hand these (never a second read from disk)
    /// to the decoders.
    pub fn read_verified(dir: &Path) -> Result<(Manifest, BTreeMap<String, Vec<u8>>)> {
        let mpath = dir.join(MANIFEST);
        let meta = std::fs::metadata(&mpath).map_err(|e| match e.kind() {
            // Say what the path is not, rather than only what the OS could not find.
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => Error::NotAnIndex {
                path: dir.to_path_buf(),
                dir_exists: dir.is_dir(),
            },
            _ => Error::io(&mpath, e),
        })?;
        if meta.len() > MAX_MANIFEST_BYTES {
            return Err(Error::corrupt(&mpath, "manifest is implausibly large"));
        }
        let raw = std::fs::read(&mpath).map_err(|e| Error::io(&mpath, e))?;
        let value: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| Error::corrupt(&mpath, format!("not valid JSON: {e}")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(Error::corrupt(&mpath, "not a twostage index manifest"));
        }
        let Some(found) = value.get("format_version").and_then(|v| v.as_u64()) else {
            return Err(Error::corrupt(&mpath, "`format_version` is missing or not a number"));
        };
        if found != FORMAT_VERSION as u64 {
            return Err(Error::IncompatibleVersion {
                path: mpath,
                found: u32::try_from(found).unwrap_or(u32::MAX),
                supported: FORMAT_VERSION,
            });
        }
        let mut manifest: Manifest = serde_json::from_value(value).map_err(|e| Error::corrupt_by(&mpath, e))?;
        let stored = manifest.manifest_crc32;
        manifest.manifest_crc32 = 0;
        if crc32fast::hash(&manifest.canonical_bytes()?) != stored {
            return Err(Error::corrupt(&mpath, "manifest checksum mismatch"));
        }
        manifest.manifest_crc32 = stored;

        let on_disk = list_files(dir)?;
        let listed: BTreeMap<&str, &FileEntry> = manifest.files.iter().map(|f| (f.path.as_str(), f)).collect();
        if listed.len() != manifest.files.len() {
            return Err(Error::corrupt(&mpath, "a file is listed twice"));
        }
        for rel in &on_disk {
            // The live log changes after the build; it checks itself. The
            // build's log is checked when a compaction reads it.
            let build_log = rel == super::BUILD_LOG_FILE && manifest.log.is_some();
            if rel != MANIFEST && rel != super::LIVE_LOG_FILE && !build_log && !listed.contains_key(rel.as_str()) {
                return Err(Error::corrupt(dir.join(rel), "file is not part of the index (not in the manifest)"));
            }
        }
        if let Some(entry) = &manifest.log {
            // Its size only, and only when it is there: serving never reads
            // it (replicas are sent the index without it), and its checksum
            // is the compaction's to verify.
            let path = dir.join(super::BUILD_LOG_FILE);
            match std::fs::symlink_metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&path, e)),
                Ok(meta) if entry.path == super::BUILD_LOG_FILE && meta.is_file() && meta.len() == entry.bytes => {}
                Ok(_) => {
                    return Err(Error::corrupt(
                        &path,
                        format!("not the {}-byte build log the manifest lists", entry.bytes),
                    ))
                }
            }
        }
        let mut files = BTreeMap::new();
        for entry in &manifest.files {
            let Some(rel) = rel_path(&entry.path) else {
                return Err(Error::corrupt(&mpath, format!("unsafe path `{}` in manifest", entry.path)));
            };
            let path = dir.join(rel);
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            if !meta.is_file() {
                return Err(Error::corrupt(&path, "not a regular file"));
            }
            if meta.len() != entry.bytes {
                return Err(Error::corrupt(
                    &path,
                    format!("size {} differs from the manifest's {}", meta.len(), entry.bytes),
                ));
            }
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            if bytes.len() as u64 != entry.bytes || crc32fast::hash(&bytes) != entry.crc32 {
                return Err(Error::corrupt(&path, "checksum mismatch"));
            }
            files.insert(entry.path.clone(), bytes);
        }
        Ok((manifest, files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_paths_must_stay_inside() {
        assert!(rel_path("text/meta.json").is_some());
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "./a"] {
            assert!(rel_path(bad).is_none(), "{bad}");
        }
    }
}
