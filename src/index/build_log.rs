//! The event log an index was built from, kept beside it
//! ([`BUILD_LOG_FILE`]) so a compaction can rebuild the index from the same
//! log plus what was written live, without the caller's original files (which
//! no longer describe the index after one compaction).
//!
//! The manifest covers the file (size and CRC-32) in its own entry, which
//! opening an index checks only by size, and only when the file is there:
//! an engine never reads the log (a long one would otherwise be read and
//! checksummed at every open), and index generations are published to
//! replicas without it. A compaction reads it whole and verifies it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::manifest::FileEntry;
#[cfg(doc)]
use super::manifest::Manifest;
use super::BUILD_LOG_FILE;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::events::{Event, Events, Impression};

/// The parts of an [`Events`], borrowed for writing.
#[derive(Serialize)]
struct Stored<'a> {
    users: &'a [String],
    events: &'a [Event],
    impressions: &'a [Impression],
}

/// The same, owned, for reading (bincode reads the fields in order).
#[derive(Deserialize)]
struct Owned {
    users: Vec<String>,
    events: Vec<Event>,
    impressions: Vec<Impression>,
}

/// Writes `events` into the index being built in `dir` (before its manifest
/// is written, which then covers it).
pub(crate) fn write(dir: &Path, events: &Events) -> Result<()> {
    let (users, events, impressions) = events.parts();
    let bytes = bincode::serde::encode_to_vec(
        Stored {
            users,
            events,
            impressions,
        },
        super::bincode_config(),
    )
    .map_err(|e| Error::internal_by("encode", e))?;
    let path = dir.join(BUILD_LOG_FILE);
    std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))
}

/// Reads the build log of the index in `dir` over `catalog` (the index's
/// items in order), checking it against its entry in the index's verified
/// manifest ([`Manifest::log`]). `None` when the index was built without one
/// (from log artefacts).
pub(crate) fn read(dir: &Path, entry: Option<&FileEntry>, catalog: &Catalog) -> Result<Option<Events>> {
    let Some(entry) = entry else {
        return Ok(None);
    };
    let path = dir.join(&entry.path);
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::corrupt(
            &path,
            "missing: this copy of the index was made without its build log (a replica's): compact where it was built",
        ),
        _ => Error::io(&path, e),
    })?;
    if bytes.len() as u64 != entry.bytes || crc32fast::hash(&bytes) != entry.crc32 {
        return Err(Error::corrupt(&path, "checksum mismatch"));
    }
    let stored: Owned = super::decode(&bytes, &path)?;
    Events::from_parts(stored.users, stored.events, stored.impressions, catalog)
        .map(Some)
        .map_err(|e| Error::corrupt(&path, format!("does not match the index's items: {e}")))
}

/// Copies the build log of the index in `from` into `to`, a copy of that
/// index being written (an in-place retrain), before its manifest is sealed.
pub(crate) fn copy(from: &Path, to: &Path) -> Result<()> {
    let src = from.join(BUILD_LOG_FILE);
    if !src.exists() {
        return Ok(());
    }
    let dst = to.join(BUILD_LOG_FILE);
    std::fs::copy(&src, &dst).map(drop).map_err(|e| Error::io(&dst, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Item;

    #[test]
    fn a_stored_log_reads_back_and_damage_is_named() {
        let catalog = Catalog::new((0..3).map(|i| Item::new(format!("i{i}"), format!("t{i}"))).collect()).unwrap();
        let log = "{\"user\":\"u\",\"item\":\"i1\",\"ts\":1700000000}\n{\"user\":\"v\",\"item\":\"i2\",\"ts\":1700000001,\"type\":\"search\",\"query\":\"q\"}\n";
        let events = Events::from_jsonl_reader(log.as_bytes(), "events.jsonl".as_ref(), &catalog).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &events).unwrap();
        let bytes = std::fs::read(dir.path().join(BUILD_LOG_FILE)).unwrap();
        let entry = |crc: u32| FileEntry {
            path: BUILD_LOG_FILE.into(),
            bytes: bytes.len() as u64,
            crc32: crc,
        };
        let back = read(dir.path(), Some(&entry(crc32fast::hash(&bytes))), &catalog).unwrap().unwrap();
        assert_eq!(back.events(), events.events());
        assert_eq!(back.users(), events.users());
        let e = read(dir.path(), Some(&entry(0)), &catalog).unwrap_err().to_string();
        assert!(e.contains("events.bin") && e.contains("checksum"), "{e}");
        let smaller = Catalog::new(vec![Item::new("i0", "t0")]).unwrap();
        let e = read(dir.path(), Some(&entry(crc32fast::hash(&bytes))), &smaller)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match"), "{e}");
        assert!(read(dir.path(), None, &catalog).unwrap().is_none());
    }
}
