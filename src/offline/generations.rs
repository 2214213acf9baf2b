//! Index generations in object storage (feature `generations`): a build
//! publishes its index as an immutable, checksummed generation; replicas
//! follow a small pointer to the latest one and swap in each generation
//! they could download and verify whole.
//!
//! Layout under the store's root (any URL `object_store` parses:
//! `file:///srv/indexes/music`, `s3://bucket/indexes/music`, `memory:///`):
//!
//! ```text
//! generations/<id>/manifest.json   the index's files, each named with its size and CRC-32
//! generations/<id>/...             the files, as in the index directory
//! LATEST                           {"format": "twostage-generation-pointer", "version": 1, "generation": {...}}
//! ```
//!
//! Publishing uploads every file first and moves the pointer last, so a
//! follower never sees a generation the pointer names before all of it is
//! there; a follower downloads into a temporary directory, checks every
//! file against the manifest (and the manifest against the pointer) and
//! only then renames it into place. A damaged or partial generation is an
//! error, never a served index. The live log of an index (`live.wal`) is a
//! replica's own and never part of a generation.
//!
//! The API is async (object stores are network services) and runs on the
//! caller's tokio runtime, as S3 clients need one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::manifest::{rel_path, Manifest, MANIFEST};

const POINTER: &str = "LATEST";
const POINTER_FORMAT: &str = "twostage-generation-pointer";
const POINTER_VERSION: u32 = 1;
/// Largest manifest or pointer object read whole (as the index reader's limit).
const MAX_SMALL_OBJECT: u64 = 64 << 20;

/// One published index generation, as the pointer names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Generation {
    /// `<unix seconds>-<manifest CRC-32 in hex>`: sorts by publication time.
    pub id: String,
    /// The CRC-32 the generation's manifest records for itself.
    pub manifest_crc32: u32,
    /// Files in the generation, its manifest included.
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pointer {
    format: String,
    version: u32,
    generation: Generation,
}

/// A location in an object store holding published index generations.
pub struct GenerationStore {
    store: Arc<dyn ObjectStore>,
    root: StorePath,
    url: String,
}

impl std::fmt::Debug for GenerationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationStore").field("url", &self.url).finish()
    }
}

fn store_error(location: impl Into<String>, reason: impl std::fmt::Display) -> Error {
    Error::Store {
        location: location.into(),
        reason: reason.to_string(),
    }
}

impl GenerationStore {
    /// The store at `url`, configured from the environment as the
    /// `object_store` crate reads it (for S3: `AWS_ENDPOINT`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, ...).
    pub fn open(url: &str) -> Result<GenerationStore> {
        GenerationStore::open_with(url, std::env::vars().filter(|(k, _)| k.starts_with("AWS_")))
    }

    /// The store at `url` with explicit `(key, value)` options (for S3:
    /// `aws_endpoint`, `aws_region`, `aws_access_key_id`, ...).
    pub fn open_with(url: &str, options: impl IntoIterator<Item = (String, String)>) -> Result<GenerationStore> {
        let parsed = url::Url::parse(url).map_err(|e| Error::InvalidConfig(format!("generation store `{url}`: {e}")))?;
        let options: Vec<(String, String)> = options.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        let (store, root) =
            object_store::parse_url_opts(&parsed, options).map_err(|e| Error::InvalidConfig(format!("generation store `{url}`: {e}")))?;
        Ok(GenerationStore {
            store: Arc::from(store),
            root,
            url: url.trim_end_matches('/').to_string(),
        })
    }

    /// The URL the store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, rel: &str) -> StorePath {
        rel.split('/').fold(self.root.clone(), |p, part| p.child(part))
    }

    fn location(&self, rel: &str) -> String {
        format!("{}/{rel}", self.url)
    }

    async fn get_small(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let got = match self.store.get(&self.path(rel)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_error(self.location(rel), e)),
        };
        if got.meta.size > MAX_SMALL_OBJECT {
            return Err(store_error(
                self.location(rel),
                format!("{} bytes is implausibly large", got.meta.size),
            ));
        }
        let bytes = got.bytes().await.map_err(|e| store_error(self.location(rel), e))?;
        Ok(Some(bytes.to_vec()))
    }

    /// Publishes the index in `index_dir` as a new generation and points
    /// `LATEST` at it. The index is verified first (every file against its
    /// manifest; a damaged index is refused and nothing is uploaded), the
    /// bytes verified are the bytes uploaded, and the pointer moves only
    /// after every file is stored. Each file is one PUT, so a file must be
    /// within the store's single-object limit (5 GB on S3).
    pub async fn publish(&self, index_dir: impl AsRef<Path>) -> Result<Generation> {
        let dir = index_dir.as_ref();
        let (manifest, files) = Manifest::read_verified(dir)?;
        let manifest_bytes = std::fs::read(dir.join(MANIFEST)).map_err(|e| Error::io(dir.join(MANIFEST), e))?;
        // Read twice: a build that replaced the directory in between must
        // not pair one manifest with the other's files.
        if serde_json::from_slice::<Manifest>(&manifest_bytes).map(|m| m.manifest_crc32).ok() != Some(manifest.manifest_crc32) {
            return Err(Error::corrupt(dir.join(MANIFEST), "the index changed while it was being published"));
        }
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let id = format!("{seconds:010}-{:08x}", manifest.manifest_crc32);
        let prefix = format!("generations/{id}");
        // Generations are immutable: never write into one that exists.
        if self.get_small(&format!("{prefix}/{MANIFEST}")).await?.is_some() {
            return Err(store_error(self.location(&prefix), "this generation is already published"));
        }
        let mut bytes = manifest_bytes.len() as u64;
        for (rel, content) in files {
            bytes += content.len() as u64;
            let at = format!("{prefix}/{rel}");
            self.store
                .put(&self.path(&at), PutPayload::from(content))
                .await
                .map_err(|e| store_error(self.location(&at), e))?;
        }
        let at = format!("{prefix}/{MANIFEST}");
        self.store
            .put(&self.path(&at), PutPayload::from(manifest_bytes))
            .await
            .map_err(|e| store_error(self.location(&at), e))?;
        let generation = Generation {
            id,
            manifest_crc32: manifest.manifest_crc32,
            files: manifest.files.len() + 1,
            bytes,
        };
        let pointer = Pointer {
            format: POINTER_FORMAT.to_string(),
            version: POINTER_VERSION,
            generation: generation.clone(),
        };
        let json = serde_json::to_vec_pretty(&pointer).map_err(|e| Error::internal_by("generation pointer", e))?;
        self.store
            .put(&self.path(POINTER), PutPayload::from(json))
            .await
            .map_err(|e| store_error(self.location(POINTER), e))?;
        Ok(generation)
    }

    /// The generation `LATEST` points at, or `None` before the first publish.
    pub async fn latest(&self) -> Result<Option<Generation>> {
        let Some(raw) = self.get_small(POINTER).await? else {
            return Ok(None);
        };
        let pointer: Pointer =
            serde_json::from_slice(&raw).map_err(|e| store_error(self.location(POINTER), format!("not a generation pointer: {e}")))?;
        if pointer.format != POINTER_FORMAT || pointer.version != POINTER_VERSION {
            return Err(store_error(
                self.location(POINTER),
                format!(
                    "pointer format `{}` version {}; this build reads `{POINTER_FORMAT}` version {POINTER_VERSION}",
                    pointer.format, pointer.version
                ),
            ));
        }
        if rel_path(&pointer.generation.id).is_none_or(|p| p.components().count() != 1) {
            return Err(store_error(
                self.location(POINTER),
                format!("unsafe generation id `{}`", pointer.generation.id),
            ));
        }
        Ok(Some(pointer.generation))
    }

    /// Downloads `generation` into `cache/<id>` and returns that directory,
    /// or returns it at once when an earlier download is there and verifies. Every file
    /// is checked against the manifest, and the manifest against the
    /// pointer, in a temporary directory that is renamed into place only
    /// when all of it verified: a damaged or partial generation is an error
    /// and leaves nothing behind.
    pub async fn download(&self, generation: &Generation, cache: impl AsRef<Path>) -> Result<PathBuf> {
        let cache = cache.as_ref();
        if rel_path(&generation.id).is_none_or(|p| p.components().count() != 1) {
            return Err(Error::InvalidConfig(format!("unsafe generation id `{}`", generation.id)));
        }
        let target = cache.join(&generation.id);
        if target.join(MANIFEST).is_file() {
            // An earlier download, kept only if it still verifies (a crash
            // after the rename may have left unsynced files behind).
            if Manifest::read_verified(&target).is_ok_and(|(m, _)| m.manifest_crc32 == generation.manifest_crc32) {
                return Ok(target);
            }
            std::fs::remove_dir_all(&target).map_err(|e| Error::io(&target, e))?;
        }
        std::fs::create_dir_all(cache).map_err(|e| Error::io(cache, e))?;
        let tmp = cache.join(format!(".{}.download-{}", generation.id, std::process::id()));
        let result = self
            .download_into(generation, &tmp)
            .await
            .and_then(|()| match std::fs::rename(&tmp, &target) {
                Ok(()) => Ok(target.clone()),
                // Another follower sharing this cache finished first: its copy verified too.
                Err(_) if Manifest::read_verified(&target).is_ok() => Ok(target.clone()),
                Err(e) => Err(Error::io(&target, e)),
            });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    async fn download_into(&self, generation: &Generation, tmp: &Path) -> Result<()> {
        let _ = std::fs::remove_dir_all(tmp);
        std::fs::create_dir_all(tmp).map_err(|e| Error::io(tmp, e))?;
        let prefix = format!("generations/{}", generation.id);
        let manifest_at = format!("{prefix}/{MANIFEST}");
        let raw = self
            .get_small(&manifest_at)
            .await?
            .ok_or_else(|| store_error(self.location(&manifest_at), "missing: the generation is partial"))?;
        let manifest: Manifest =
            serde_json::from_slice(&raw).map_err(|e| store_error(self.location(&manifest_at), format!("not an index manifest: {e}")))?;
        if manifest.manifest_crc32 != generation.manifest_crc32 {
            return Err(store_error(
                self.location(&manifest_at),
                format!(
                    "manifest checksum {:08x}, the pointer says {:08x}",
                    manifest.manifest_crc32, generation.manifest_crc32
                ),
            ));
        }
        std::fs::write(tmp.join(MANIFEST), &raw).map_err(|e| Error::io(tmp.join(MANIFEST), e))?;
        for entry in &manifest.files {
            let at = format!("{prefix}/{}", entry.path);
            let Some(rel) = rel_path(&entry.path) else {
                return Err(store_error(
                    self.location(&manifest_at),
                    format!("unsafe path `{}` in manifest", entry.path),
                ));
            };
            let got = match self.store.get(&self.path(&at)).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(store_error(self.location(&at), "missing: the generation is partial"))
                }
                Err(e) => return Err(store_error(self.location(&at), e)),
            };
            // Checked before the body is read: a wrong size never allocates it.
            if got.meta.size != entry.bytes {
                return Err(store_error(
                    self.location(&at),
                    format!("size {} differs from the manifest's {}", got.meta.size, entry.bytes),
                ));
            }
            let bytes = got.bytes().await.map_err(|e| store_error(self.location(&at), e))?;
            if crc32fast::hash(&bytes) != entry.crc32 {
                return Err(store_error(self.location(&at), "checksum mismatch"));
            }
            let path = tmp.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            std::fs::write(&path, &bytes).map_err(|e| Error::io(&path, e))?;
        }
        // The whole directory, as Engine::open will see it: format, version,
        // the exact set of files, and the manifest's own checksum.
        Manifest::read_verified(tmp)?;
        Ok(())
    }
}
