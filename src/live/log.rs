//! The write-ahead log of live writes, `live.wal` in the index directory:
//! an 8-byte magic, then records of `[payload length u32 LE][CRC-32 of the
//! payload u32 LE][payload]`, the payload one JSON object
//! (`{"delete": ["id", …]}`, `{"events": [{…}, …]}` or
//! `{"upsert": [{"item": {…}, "content": [f32, …]}, …]}`). Items are named by their external ids, so a
//! record means the same to any generation that holds them.
//!
//! Reading tells a crash from damage: a last record cut short or failing its
//! checksum is what an append interrupted by a crash leaves, and is dropped
//! and reported ([`TornTail`]); a bad record with another after it is damage,
//! and an error naming the file and offset.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The log's file name inside the index directory.
pub(crate) use crate::index::LIVE_LOG_FILE as LOG_FILE;

const MAGIC: &[u8; 8] = b"TSWAL\x00\x01\x00";

/// Bytes before each record's payload: its length and its checksum.
const RECORD_HEADER: usize = 8;

/// Largest payload a record may have (a batch of about a million ids).
pub(crate) const MAX_PAYLOAD: usize = 64 << 20;

/// One acknowledged batch of writes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    /// External ids of the items deleted by this batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delete: Vec<String>,
    /// Events recorded by this batch, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<super::LiveEvent>,
    /// Items added or changed by this batch, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upsert: Vec<super::Upsert>,
}

/// What a crash left at the end of the log: dropped when it was read, and
/// cut off before the next write appends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Byte offset where the incomplete record begins (the log's valid length).
    pub offset: u64,
    /// Bytes from there to the end of the file.
    pub bytes: u64,
}

/// The records of a log, in order, and where its valid part ends.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    pub records: Vec<Record>,
    /// Length of the valid prefix: where the next record goes.
    pub valid_len: u64,
    pub torn: Option<TornTail>,
}

/// Reads the log at `path` (a missing file is an empty log).
pub(crate) fn read(path: &Path) -> Result<Replay> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replay::default()),
        Err(e) => return Err(Error::io(path, e)),
    };
    parse(path, &bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Replay> {
    let len = bytes.len() as u64;
    if bytes.len() < MAGIC.len() {
        // A crash while the log was being created leaves a prefix of the magic.
        if MAGIC.starts_with(bytes) {
            return Ok(Replay {
                torn: (len > 0).then_some(TornTail { offset: 0, bytes: len }),
                ..Replay::default()
            });
        }
        return Err(Error::corrupt(path, "not a twostage live log (bad magic at offset 0)"));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(Error::corrupt(path, "not a twostage live log (bad magic at offset 0)"));
    }
    parse_records(path, bytes, MAGIC.len())
}

/// The records of `bytes` (a whole log) from offset `at`, a record boundary.
fn parse_records(path: &Path, bytes: &[u8], mut at: usize) -> Result<Replay> {
    let len = bytes.len() as u64;
    let mut records = Vec::new();
    let torn = |at: usize| TornTail {
        offset: at as u64,
        bytes: len - at as u64,
    };
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < RECORD_HEADER {
            return Ok(Replay {
                records,
                valid_len: at as u64,
                torn: Some(torn(at)),
            });
        }
        let payload_len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let end = RECORD_HEADER.saturating_add(payload_len);
        if end > rest.len() {
            // Runs past the end of the file: an append the crash cut short.
            return Ok(Replay {
                records,
                valid_len: at as u64,
                torn: Some(torn(at)),
            });
        }
        let payload = &rest[RECORD_HEADER..end];
        let last = end == rest.len();
        if payload_len > MAX_PAYLOAD || crc32fast::hash(payload) != crc {
            if last {
                return Ok(Replay {
                    records,
                    valid_len: at as u64,
                    torn: Some(torn(at)),
                });
            }
            return Err(Error::corrupt(
                path,
                format!("record at offset {at} fails its checksum and is not the last (damage, not a crash)"),
            ));
        }
        let record: Record = serde_json::from_slice(payload).map_err(|e| {
            Error::corrupt(
                path,
                format!("record at offset {at} passes its checksum but is not a live-log record: {e}"),
            )
        })?;
        records.push(record);
        at += end;
    }
    Ok(Replay {
        records,
        valid_len: at as u64,
        torn: None,
    })
}

/// The appending end of a log, opened on the first write.
/// The records of the log at `path` before offset `end` (a record boundary
/// an earlier read or append returned): what a compaction folds into the
/// next generation.
pub(crate) fn read_until(path: &Path, end: u64) -> Result<Vec<Record>> {
    let mut bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && end == 0 => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    if end > bytes.len() as u64 {
        return Err(Error::corrupt(
            path,
            format!("the log is shorter than offset {end}, where its last read ended"),
        ));
    }
    bytes.truncate(end as usize);
    let replay = parse(path, &bytes)?;
    match replay.torn {
        Some(t) if end > MAGIC.len() as u64 => Err(Error::corrupt(
            path,
            format!("record at offset {} ends past offset {end}, which should end a record", t.offset),
        )),
        _ => Ok(replay.records),
    }
}

/// The records of the log at `path` from offset `from` (a record boundary
/// an earlier read or append returned) to its end, with their bytes as
/// they are in the file: what a compaction carries into the next
/// generation's log. A torn last record is left out.
pub(crate) fn read_from(path: &Path, from: u64) -> Result<Tail> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && from == 0 => return Ok(Tail::default()),
        Err(e) => return Err(Error::io(path, e)),
    };
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        // Never written to (a crash while it was created): nothing to carry.
        return match from {
            0 => Ok(Tail::default()),
            _ => Err(Error::corrupt(path, "not a twostage live log (bad magic at offset 0)")),
        };
    }
    let from = usize::try_from(from).unwrap_or(usize::MAX).max(MAGIC.len());
    if from > bytes.len() {
        return Err(Error::corrupt(
            path,
            format!("the log is shorter than offset {from}, where its last read ended"),
        ));
    }
    let replay = parse_records(path, &bytes, from)?;
    let end = usize::try_from(replay.valid_len).unwrap_or(bytes.len()).min(bytes.len());
    Ok(Tail {
        records: replay.records.len(),
        bytes: bytes[from..end].to_vec(),
        end: end as u64,
    })
}

/// Records of a log from some offset on ([`read_from`]).
#[derive(Debug, Default)]
pub(crate) struct Tail {
    /// How many.
    pub records: usize,
    /// Their bytes as they are in the file.
    pub bytes: Vec<u8>,
    /// Where they end in the file.
    pub end: u64,
}

/// Writes a new log at `path` holding `records`, bytes [`read_from`]
/// returned, and fsyncs it and its directory.
pub(crate) fn create(path: &Path, records: &[u8]) -> Result<()> {
    let io = |e| Error::io(path, e);
    let mut f = File::create(path).map_err(io)?;
    f.write_all(MAGIC)
        .and_then(|()| f.write_all(records))
        .and_then(|()| f.sync_all())
        .map_err(io)?;
    match path.parent() {
        Some(dir) => crate::index::writer::sync_dir(dir),
        None => Ok(()),
    }
}

/// Appends `records`, bytes [`read_from`] returned, to the log [`create`]
/// wrote at `path`, and fsyncs it.
pub(crate) fn append_raw(path: &Path, records: &[u8]) -> Result<()> {
    let io = |e| Error::io(path, e);
    let mut f = OpenOptions::new().append(true).open(path).map_err(io)?;
    f.write_all(records).and_then(|()| f.sync_data()).map_err(io)
}

pub(crate) struct Appender {
    file: File,
    path: PathBuf,
}

/// `record` as the log stores it: header and payload, ready to append.
pub(crate) fn encode(record: &Record) -> Result<Vec<u8>> {
    let payload = serde_json::to_vec(record).map_err(|e| Error::internal("live log", e.to_string()))?;
    if payload.len() > MAX_PAYLOAD {
        return Err(Error::InvalidRequest(format!(
            "a write batch of {} bytes is above the limit of {MAX_PAYLOAD}: split it",
            payload.len()
        )));
    }
    let mut buf = Vec::with_capacity(RECORD_HEADER + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
    Ok(buf)
}

impl Appender {
    /// Opens the log at `path` for appending, creating it with its magic if
    /// it does not exist. The log is read again first, so that only a torn
    /// tail found now is cut off: records another engine on the same
    /// directory appended since this one replayed are kept (they are
    /// acknowledged). Every write goes to the end of the file (append mode).
    pub fn open(path: &Path) -> Result<Appender> {
        let io = |e| Error::io(path, e);
        let now = read(path)?;
        let file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io)?;
        if now.valid_len < MAGIC.len() as u64 {
            // New, or a crash cut its creation short.
            file.set_len(0).map_err(io)?;
            (&file).write_all(MAGIC).map_err(io)?;
            file.sync_all().map_err(io)?;
            if let Some(dir) = path.parent() {
                crate::index::writer::sync_dir(dir)?;
            }
        } else if now.torn.is_some() {
            file.set_len(now.valid_len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok(Appender {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends `record` and returns once it is on stable storage.
    #[cfg(test)]
    pub fn append(&mut self, record: &Record) -> Result<()> {
        self.append_encoded(&[encode(record)?]).map(drop)
    }

    /// Appends records made by [`encode`], in order, with one write and one
    /// fsync for all of them (a group commit), and returns once they are on
    /// stable storage. A crash before the fsync returns leaves, on a file
    /// system that persists one write's pages in order, a prefix of them:
    /// whole records, never acknowledged, which may be replayed, and at
    /// most one torn one, which the reader drops. One that persists them
    /// out of order can leave a damaged record before a whole one, which
    /// the reader reports as damage (naming the offset) rather than guess.
    /// On an error the log is cut back to where it ended (best effort), so
    /// records nobody was told are written do not come back at the next open.
    /// Appends and fsyncs `records`; returns the log's length after them.
    pub fn append_encoded(&mut self, records: &[Vec<u8>]) -> Result<u64> {
        let io = |e| Error::io(&self.path, e);
        let end = self.file.metadata().map_err(io)?.len();
        let buf = records.concat();
        let written = self.file.write_all(&buf).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let _ = self.file.set_len(end).and_then(|()| self.file.sync_data());
            return Err(io(e));
        }
        Ok(end + buf.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ids: &[&str]) -> Record {
        Record {
            delete: ids.iter().map(|s| s.to_string()).collect(),
            ..Record::default()
        }
    }

    fn log_of(records: &[Record]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        let mut a = Appender::open(&path).unwrap();
        for r in records {
            a.append(r).unwrap();
        }
        (dir, path)
    }

    #[test]
    fn records_read_back_in_order() {
        let (_d, path) = log_of(&[rec(&["a"]), rec(&["b", "c"])]);
        let r = read(&path).unwrap();
        assert_eq!(r.records, [rec(&["a"]), rec(&["b", "c"])]);
        assert_eq!(r.valid_len, std::fs::metadata(&path).unwrap().len());
        assert!(r.torn.is_none());
        assert!(read(&path.with_extension("missing")).unwrap().records.is_empty());
    }

    #[test]
    fn every_cut_of_the_last_record_is_a_torn_tail_and_the_rest_survives() {
        let (_d, path) = log_of(&[rec(&["a"]), rec(&["b", "c"])]);
        let full = std::fs::read(&path).unwrap();
        let first_end = read(&path).unwrap().valid_len as usize - (RECORD_HEADER + serde_json::to_vec(&rec(&["b", "c"])).unwrap().len());
        for cut in first_end + 1..full.len() {
            let r = parse(&path, &full[..cut]).unwrap();
            assert_eq!(r.records, [rec(&["a"])], "cut at {cut}");
            assert_eq!(
                r.torn,
                Some(TornTail {
                    offset: first_end as u64,
                    bytes: (cut - first_end) as u64
                })
            );
        }
        // A crash while creating the log: a prefix of the magic.
        for cut in 0..MAGIC.len() {
            let r = parse(&path, &full[..cut]).unwrap();
            assert!(r.records.is_empty());
            assert_eq!(r.torn.is_some(), cut > 0);
        }
        // A last record of the right length whose bytes never reached the disk.
        let mut zeroed = full.clone();
        zeroed[first_end + RECORD_HEADER..].fill(0);
        assert_eq!(parse(&path, &zeroed).unwrap().records, [rec(&["a"])]);
    }

    #[test]
    fn damage_before_the_last_record_is_an_error_naming_the_offset() {
        let (_d, path) = log_of(&[rec(&["a"]), rec(&["b"])]);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[MAGIC.len() + RECORD_HEADER + 3] ^= 0x20;
        let e = parse(&path, &bytes).unwrap_err().to_string();
        assert!(e.contains("live.wal") && e.contains("offset 8") && e.contains("checksum"), "{e}");
        bytes[0] = b'X';
        assert!(parse(&path, &bytes).unwrap_err().to_string().contains("bad magic"));
    }

    #[test]
    fn an_append_after_a_torn_tail_cuts_it_off_first() {
        let (_d, path) = log_of(&[rec(&["a"])]);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, 1]).unwrap();
        drop(f);
        let r = read(&path).unwrap();
        assert_eq!(r.torn.map(|t| t.bytes), Some(5));
        Appender::open(&path).unwrap().append(&rec(&["b"])).unwrap();
        let again = read(&path).unwrap();
        assert_eq!(again.records, [rec(&["a"]), rec(&["b"])]);
        assert!(again.torn.is_none());
    }

    #[test]
    fn a_second_appender_keeps_what_the_first_wrote_after_it_was_replayed() {
        let (_d, path) = log_of(&[rec(&["a"])]);
        let mut first = Appender::open(&path).unwrap();
        let mut second = Appender::open(&path).unwrap();
        first.append(&rec(&["b"])).unwrap();
        second.append(&rec(&["c"])).unwrap();
        first.append(&rec(&["d"])).unwrap();
        assert_eq!(read(&path).unwrap().records, [rec(&["a"]), rec(&["b"]), rec(&["c"]), rec(&["d"])]);
    }
}
