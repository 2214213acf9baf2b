//! Log artefacts as Parquet (feature `parquet`): the schemas of
//! docs/artefacts.md, written by [`LogArtefacts::write_parquet`] and by the
//! Spark job, read and checked by [`LogArtefacts::from_parquet`].
//!
//! Each artefact `name` is `name.parquet` in the artefacts directory: one
//! file (as written here) or a directory of part files (as Spark writes
//! it), read in file-name order. Every row is checked; an error names the
//! file, row group, row and column.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use parquet::arrow::ArrowWriter;
use serde_json::Value;

use super::{ArtefactSummary, LogArtefacts, SearchCount, ARTEFACTS_FORMAT, ARTEFACTS_VERSION};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::jsonl::{kind, Record};
use crate::retrieval::covisit::PairCount;
use crate::retrieval::linear::{Cooccurrence, CooccurrenceRow};
use crate::retrieval::popular::PlayCounts;

/// The artefacts of a set, by file name.
const SUMMARY: &str = "summary.parquet";
const POPULARITY: &str = "popularity.parquet";
const PAIRS: &str = "pairs.parquet";
const COOCCURRENCE: &str = "cooccurrence.parquet";
const SEARCHES: &str = "searches.parquet";

/// Largest co-visitation distance, as the builder accepts.
const MAX_WINDOW: i64 = 1000;

impl LogArtefacts {
    /// Writes the artefacts into directory `dir` (created if missing) as
    /// the Parquet files of docs/artefacts.md, replacing files of the same
    /// names, and the training windows (if computed) into `dir/training`,
    /// replacing that directory whole.
    pub fn write_parquet(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let s = &self.summary;
        write(&dir.join(SUMMARY), 1, |_| {
            vec![
                ("format", strings([s.format.as_str()])),
                ("version", ints([i64::from(s.version)])),
                ("session_gap_secs", ints([s.session_gap_secs])),
                ("covisit_window", ints([s.covisit_window as i64])),
                (
                    "cooccurrence_kept",
                    Arc::new(Int64Array::from(vec![s.cooccurrence_kept.map(|k| k as i64)])) as ArrayRef,
                ),
                ("items", ints([s.items as i64])),
                ("events", ints([s.events as i64])),
                ("sessions", ints([s.sessions as i64])),
                ("first_ts", ints([s.first_ts])),
                ("last_ts", ints([s.last_ts])),
            ]
        })?;
        let c = &self.counts;
        let items: Vec<usize> = (0..self.ids.len()).filter(|&i| c.plays[i] + c.skips[i] > 0).collect();
        write(&dir.join(POPULARITY), items.len(), |range| {
            let rows = &items[range];
            let column = |v: &[u64]| ints(rows.iter().map(|&i| v[i] as i64));
            vec![
                ("item", strings(rows.iter().map(|&i| self.ids[i].as_str()))),
                ("plays", column(&c.plays)),
                ("skips", column(&c.skips)),
                ("recent_plays", column(&c.recent_plays)),
                ("play_seconds", column(&c.play_seconds)),
            ]
        })?;
        let id = |i: u32| self.ids[i as usize].as_str();
        write(&dir.join(PAIRS), self.pairs.len(), |range| {
            let rows = &self.pairs[range];
            vec![
                ("from_item", strings(rows.iter().map(|p| id(p.from)))),
                ("to_item", strings(rows.iter().map(|p| id(p.to)))),
                (
                    "distance",
                    Arc::new(Int32Array::from_iter_values(rows.iter().map(|p| p.distance as i32))) as ArrayRef,
                ),
                ("count", ints(rows.iter().map(|p| p.count as i64))),
            ]
        })?;
        let entries: Vec<(u32, u32, u32)> = self
            .cooccurrence
            .rows
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                let own = (r.own > 0).then_some((i as u32, i as u32, r.own));
                own.into_iter().chain(r.partners.iter().map(move |&(j, u)| (i as u32, j, u)))
            })
            .collect();
        write(&dir.join(COOCCURRENCE), entries.len(), |range| {
            let rows = &entries[range];
            vec![
                ("item", strings(rows.iter().map(|e| id(e.0)))),
                ("other", strings(rows.iter().map(|e| id(e.1)))),
                ("users", ints(rows.iter().map(|e| i64::from(e.2)))),
            ]
        })?;
        write(&dir.join(SEARCHES), self.searches.len(), |range| {
            let rows = &self.searches[range];
            vec![
                ("query", strings(rows.iter().map(|s| s.query.as_str()))),
                ("item", strings(rows.iter().map(|s| id(s.item)))),
                ("count", ints(rows.iter().map(|s| s.count as i64))),
            ]
        })?;
        self.write_training(dir)
    }

    /// Reads the artefacts in directory `dir` against `catalog`, checking
    /// every row: item ids known to the catalog, counts in range, no
    /// duplicates, the summary's format and version; an error names the
    /// file, row group, row and column.
    pub fn from_parquet(dir: impl AsRef<Path>, catalog: &Catalog) -> Result<LogArtefacts> {
        let dir = dir.as_ref();
        let summary = read_summary(&dir.join(SUMMARY), catalog)?;
        let n = catalog.len();
        let item = |rec: &Record<'_>, field: &str| -> Result<u32> {
            let id = rec.required_str(field)?;
            catalog
                .index_of(id)
                .ok_or_else(|| rec.error(field, format!("unknown item id `{id}` (not in the catalog)")))
        };

        let mut counts = PlayCounts {
            plays: vec![0; n],
            skips: vec![0; n],
            recent_plays: vec![0; n],
            play_seconds: vec![0; n],
            first_ts: summary.first_ts,
            last_ts: summary.last_ts,
        };
        let mut seen = vec![false; n];
        for_each(&dir.join(POPULARITY), &mut |rec| {
            rec.deny_unknown(&["item", "plays", "skips", "recent_plays", "play_seconds"])?;
            let i = item(&rec, "item")? as usize;
            if std::mem::replace(&mut seen[i], true) {
                return Err(rec.error("item", "a second row for this item"));
            }
            let plays = count(&rec, "plays", 0)?;
            let recent = count(&rec, "recent_plays", 0)?;
            if recent > plays {
                return Err(rec.error("recent_plays", format!("{recent} is more than the item's {plays} plays")));
            }
            counts.plays[i] = plays;
            counts.skips[i] = count(&rec, "skips", 0)?;
            counts.recent_plays[i] = recent;
            counts.play_seconds[i] = count(&rec, "play_seconds", 0)?;
            Ok(())
        })?;

        let mut pairs = Vec::new();
        for_each(&dir.join(PAIRS), &mut |rec| {
            rec.deny_unknown(&["from_item", "to_item", "distance", "count"])?;
            let (from, to) = (item(&rec, "from_item")?, item(&rec, "to_item")?);
            if from == to {
                return Err(rec.error("to_item", "an item paired with itself (never counted)"));
            }
            let distance = int(&rec, "distance")?;
            if !(1..=summary.covisit_window as i64).contains(&distance) {
                return Err(rec.error(
                    "distance",
                    format!("{distance} is outside 1..={}, the summary's window", summary.covisit_window),
                ));
            }
            pairs.push(PairCount {
                from,
                to,
                distance: distance as u32,
                count: count(&rec, "count", 1)?,
            });
            Ok(())
        })?;
        pairs.sort_unstable();
        if let Some(w) = pairs
            .windows(2)
            .find(|w| (w[0].from, w[0].to, w[0].distance) == (w[1].from, w[1].to, w[1].distance))
        {
            return Err(whole_file(
                &dir.join(PAIRS),
                "from_item",
                format!(
                    "two rows for {}→{} at distance {}",
                    catalog.items()[w[0].from as usize].id,
                    catalog.items()[w[0].to as usize].id,
                    w[0].distance
                ),
            ));
        }

        let mut rows = vec![CooccurrenceRow::default(); n];
        let mut own_seen = vec![false; n];
        for_each(&dir.join(COOCCURRENCE), &mut |rec| {
            rec.deny_unknown(&["item", "other", "users"])?;
            let (i, j) = (item(&rec, "item")?, item(&rec, "other")?);
            let users = count(&rec, "users", 1)?;
            let users = u32::try_from(users).map_err(|_| rec.error("users", format!("{users} is above {}", u32::MAX)))?;
            if i == j {
                if std::mem::replace(&mut own_seen[i as usize], true) {
                    return Err(rec.error("other", "a second row for this item's own count"));
                }
                rows[i as usize].own = users;
            } else {
                rows[i as usize].partners.push((j, users));
            }
            Ok(())
        })?;
        let cooc_file = dir.join(COOCCURRENCE);
        let name = |i: usize| catalog.items()[i].id.as_str();
        for (i, row) in rows.iter_mut().enumerate() {
            row.partners.sort_unstable();
            if let Some(w) = row.partners.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(whole_file(
                    &cooc_file,
                    "other",
                    format!("two rows for {} with {}", name(i), name(w[0].0 as usize)),
                ));
            }
            if let Some(&(j, u)) = row.partners.iter().find(|&&(_, u)| u > row.own) {
                return Err(whole_file(
                    &cooc_file,
                    "users",
                    format!(
                        "{} shares {u} users with {}, more than its own {}",
                        name(i),
                        name(j as usize),
                        row.own
                    ),
                ));
            }
            if let Some(k) = summary.cooccurrence_kept.filter(|&k| row.partners.len() > k) {
                return Err(whole_file(
                    &cooc_file,
                    "other",
                    format!("{} has {} partners, above the summary's {k}", name(i), row.partners.len()),
                ));
            }
        }
        if summary.cooccurrence_kept.is_none() {
            // Every partner both ways with one count: a Gram matrix is symmetric.
            for (i, row) in rows.iter().enumerate() {
                for &(j, u) in &row.partners {
                    let back = rows[j as usize]
                        .partners
                        .binary_search_by_key(&(i as u32), |&(x, _)| x)
                        .ok()
                        .map(|p| rows[j as usize].partners[p].1);
                    if back != Some(u) {
                        return Err(whole_file(
                            &cooc_file,
                            "users",
                            format!(
                                "{} with {}: {u} users, but {} the other way (all partners kept: counts must be symmetric)",
                                name(i),
                                name(j as usize),
                                back.map_or("no row".to_string(), |b| b.to_string())
                            ),
                        ));
                    }
                }
            }
        }

        let mut searches = Vec::new();
        for_each(&dir.join(SEARCHES), &mut |rec| {
            rec.deny_unknown(&["query", "item", "count"])?;
            searches.push(SearchCount {
                query: rec.required_str("query")?.to_string(),
                item: item(&rec, "item")?,
                count: count(&rec, "count", 1)?,
            });
            Ok(())
        })?;
        searches.sort_unstable();
        if let Some(w) = searches.windows(2).find(|w| (&w[0].query, w[0].item) == (&w[1].query, w[1].item)) {
            return Err(whole_file(
                &dir.join(SEARCHES),
                "query",
                format!(
                    "two rows for the query {:?} and {}",
                    w[0].query,
                    catalog.items()[w[0].item as usize].id
                ),
            ));
        }

        Ok(LogArtefacts {
            ids: catalog.items().iter().map(|it| it.id.clone()).collect(),
            training: LogArtefacts::read_training(dir, catalog, &summary)?,
            searches,
            cooccurrence: Cooccurrence {
                rows,
                kept: summary.cooccurrence_kept,
            },
            summary,
            counts,
            pairs,
        })
    }
}

pub(super) fn strings<'a>(v: impl IntoIterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

pub(super) fn ints(v: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(v))
}

/// Rows per Arrow batch written: bounded memory whatever the artefact's size.
const WRITE_ROWS: usize = 1 << 20;

/// Writes `rows` rows to `path`, `make` giving the columns of each range.
pub(super) fn write<'a>(path: &Path, rows: usize, make: impl Fn(std::ops::Range<usize>) -> Vec<(&'a str, ArrayRef)>) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| Error::internal("artefact write", format!("{}: {e}", path.display()));
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    let mut start = 0;
    loop {
        let end = (start + WRITE_ROWS).min(rows);
        let columns = make(start..end);
        let fields: Vec<Field> = columns
            .iter()
            // Nullable, as Spark writes them: the reader checks presence itself.
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect();
        let batch =
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect()).map_err(|e| failed(&e))?;
        let w = match &mut writer {
            Some(w) => w,
            None => {
                let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
                writer.insert(ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| failed(&e))?)
            }
        };
        w.write(&batch).map_err(|e| failed(&e))?;
        start = end;
        if start >= rows {
            break;
        }
    }
    if let Some(w) = writer {
        w.close().map_err(|e| failed(&e))?;
    }
    Ok(())
}

/// The Parquet files of artefact `path`: itself, or the `.parquet` files
/// in it by name (Spark's part files; its `_SUCCESS` and checksums skipped).
fn files_of(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        if !path.exists() {
            return Err(whole_file(path, "<file>", "missing: every artefact of the set is needed"));
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let p = entry.map_err(|e| Error::io(path, e))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".parquet") && !name.starts_with(['.', '_']) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

pub(super) fn for_each(path: &Path, each: &mut dyn for<'r> FnMut(Record<'r>) -> Result<()>) -> Result<()> {
    for file in files_of(path)? {
        crate::parquet::for_each_record(&file, each)?;
    }
    Ok(())
}

pub(super) fn whole_file(path: &Path, field: &str, reason: impl Into<String>) -> Error {
    crate::jsonl::file_error(path, field, reason)
}

pub(super) fn int(rec: &Record<'_>, field: &str) -> Result<i64> {
    match rec.obj.get(field) {
        None => Err(rec.error(field, "missing required field")),
        Some(Value::Number(x)) => x
            .as_i64()
            .ok_or_else(|| rec.error(field, format!("expected an integer, found {x}"))),
        Some(other) => Err(rec.error(field, format!("expected an integer, found {}", kind(other)))),
    }
}

/// A count of at least `min`.
pub(super) fn count(rec: &Record<'_>, field: &str, min: i64) -> Result<u64> {
    let v = int(rec, field)?;
    if v < min {
        return Err(rec.error(field, format!("{v} is below {min}")));
    }
    Ok(v as u64)
}

fn read_summary(path: &Path, catalog: &Catalog) -> Result<ArtefactSummary> {
    let mut found: Vec<ArtefactSummary> = Vec::new();
    for_each(path, &mut |rec| {
        rec.deny_unknown(&[
            "format",
            "version",
            "session_gap_secs",
            "covisit_window",
            "cooccurrence_kept",
            "items",
            "events",
            "sessions",
            "first_ts",
            "last_ts",
        ])?;
        let format = rec.required_str("format")?;
        if format != ARTEFACTS_FORMAT {
            return Err(rec.error("format", format!("`{format}` is not `{ARTEFACTS_FORMAT}`")));
        }
        let version = int(&rec, "version")?;
        if version != i64::from(ARTEFACTS_VERSION) {
            return Err(rec.error(
                "version",
                format!("version {version}; this build reads version {ARTEFACTS_VERSION}"),
            ));
        }
        let items = count(&rec, "items", 1)?;
        if items != catalog.len() as u64 {
            return Err(rec.error(
                "items",
                format!("computed against {items} items; this catalog has {}", catalog.len()),
            ));
        }
        let window = int(&rec, "covisit_window")?;
        if !(1..=MAX_WINDOW).contains(&window) {
            return Err(rec.error("covisit_window", format!("{window} is outside 1..={MAX_WINDOW}")));
        }
        let kept = match rec.obj.get("cooccurrence_kept") {
            None => None,
            Some(_) => Some(count(&rec, "cooccurrence_kept", 0)? as usize),
        };
        let (first_ts, last_ts) = (int(&rec, "first_ts")?, int(&rec, "last_ts")?);
        if last_ts < first_ts {
            return Err(rec.error("last_ts", format!("{last_ts} is before first_ts {first_ts}")));
        }
        found.push(ArtefactSummary {
            format: format.to_string(),
            version: ARTEFACTS_VERSION,
            session_gap_secs: count(&rec, "session_gap_secs", 1)? as i64,
            covisit_window: window as usize,
            cooccurrence_kept: kept,
            items: items as usize,
            events: count(&rec, "events", 0)?,
            sessions: count(&rec, "sessions", 0)?,
            first_ts,
            last_ts,
        });
        Ok(())
    })?;
    match found.len() {
        1 => Ok(found.remove(0)),
        rows => Err(whole_file(path, "<file>", format!("{rows} rows; a summary has exactly one"))),
    }
}
