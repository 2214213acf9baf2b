//! Training windows as Parquet (docs/artefacts.md, "Training windows"):
//! `training/windows.parquet`, one row per window asked for, and for each
//! window the log has, `training/window-N/` with the artefacts of the log
//! before it and its logged requests (`targets.parquet`).

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray};
use serde_json::Value;

use super::files::{for_each, int, ints, strings, whole_file, write};
use super::training::{TrainingArtefacts, TrainingWindow};
use super::LogArtefacts;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::jsonl::{kind, Record};
use crate::ranking::dataset::Target;
use crate::request::{Context, Request};

const TRAINING: &str = "training";
const WINDOWS: &str = "windows.parquet";
const TARGETS: &str = "targets.parquet";
/// Most windows a build trains on (`TrainParams::windows`).
const MAX_WINDOWS: i64 = 6;

/// A row of `windows.parquet`: window, from_ts, to_ts, present, max_lists, holdout.
type WindowRow = (i64, Option<i64>, Option<i64>, bool, i64, f64);

fn window_dir(dir: &Path, w: usize) -> std::path::PathBuf {
    dir.join(TRAINING).join(format!("window-{w}"))
}

/// A context as the columns `kind`, `text`, `playing`, `history`.
fn columns(c: &Context) -> (&'static str, Option<&str>, Option<&str>, &[String]) {
    match c {
        Context::Search { text } => ("search", Some(text), None, &[]),
        Context::Listening { item } => ("listening", None, Some(item), &[]),
        Context::History { items } => ("history", None, None, items),
        Context::PersonalizedSearch { text, history } => ("personalized_search", Some(text), None, history),
        Context::Session { text, playing, history } => ("session", text.as_deref(), playing.as_deref(), history),
    }
}

fn lists<'a>(rows: impl Iterator<Item = &'a [String]>) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for row in rows {
        for s in row {
            b.values().append_value(s);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn optional(rows: impl Iterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(rows.collect::<Vec<_>>()))
}

impl LogArtefacts {
    /// Writes the training windows into `dir/training` (replacing it); removes
    /// a stale one when there are none.
    pub(super) fn write_training(&self, dir: &Path) -> Result<()> {
        let root = dir.join(TRAINING);
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        }
        let Some(t) = &self.training else {
            return Ok(());
        };
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        let at = |w: usize| t.windows.get(w);
        write(&root.join(WINDOWS), t.asked, |range| {
            let rows: Vec<usize> = range.collect();
            vec![
                ("window", ints(rows.iter().map(|&w| w as i64))),
                (
                    "from_ts",
                    Arc::new(Int64Array::from(
                        rows.iter().map(|&w| at(w).and_then(|x| x.from)).collect::<Vec<_>>(),
                    )) as ArrayRef,
                ),
                (
                    "to_ts",
                    Arc::new(Int64Array::from(rows.iter().map(|&w| at(w).and_then(|x| x.to)).collect::<Vec<_>>())) as ArrayRef,
                ),
                (
                    "present",
                    Arc::new(arrow_array::BooleanArray::from(
                        rows.iter().map(|&w| at(w).is_some()).collect::<Vec<_>>(),
                    )) as ArrayRef,
                ),
                ("max_lists", ints(rows.iter().map(|_| t.max_lists as i64))),
                ("holdout", Arc::new(Float64Array::from(vec![t.holdout; rows.len()])) as ArrayRef),
            ]
        })?;
        for (w, window) in t.windows.iter().enumerate() {
            let wdir = window_dir(dir, w);
            window.log.write_parquet(&wdir)?;
            let targets = &window.targets;
            write(&wdir.join(TARGETS), targets.len(), |range| {
                let rows = &targets[range.clone()];
                let cols: Vec<_> = rows.iter().map(|t| columns(&t.request.context)).collect();
                vec![
                    ("position", ints(range.map(|n| n as i64))),
                    ("kind", strings(cols.iter().map(|c| c.0))),
                    ("text", optional(cols.iter().map(|c| c.1.map(str::to_string)))),
                    ("playing", optional(cols.iter().map(|c| c.2.map(str::to_string)))),
                    ("history", lists(cols.iter().map(|c| c.3))),
                    ("negatives", lists(rows.iter().map(|t| t.request.negatives.as_slice()))),
                    // One relevant item per logged request.
                    (
                        "item",
                        strings(rows.iter().map(|t| t.relevant.keys().next().map_or("", String::as_str))),
                    ),
                ]
            })?;
        }
        Ok(())
    }

    /// Reads `dir/training` when present, checking every row.
    pub(super) fn read_training(dir: &Path, catalog: &Catalog) -> Result<Option<Box<TrainingArtefacts>>> {
        let root = dir.join(TRAINING);
        if !root.exists() {
            return Ok(None);
        }
        let path = root.join(WINDOWS);
        let mut rows: Vec<WindowRow> = Vec::new();
        for_each(&path, &mut |rec| {
            rec.deny_unknown(&["window", "from_ts", "to_ts", "present", "max_lists", "holdout"])?;
            let opt = |f: &str| -> Result<Option<i64>> {
                match rec.obj.get(f) {
                    None | Some(Value::Null) => Ok(None),
                    Some(_) => int(&rec, f).map(Some),
                }
            };
            let present = match rec.obj.get("present") {
                Some(Value::Bool(b)) => *b,
                Some(other) => return Err(rec.error("present", format!("expected a boolean, found {}", kind(other)))),
                None => return Err(rec.error("present", "missing required field")),
            };
            let holdout = match rec.obj.get("holdout") {
                Some(Value::Number(x)) => x.as_f64().unwrap_or(f64::NAN),
                _ => return Err(rec.error("holdout", "expected a number")),
            };
            if !(holdout > 0.0 && holdout < 1.0) {
                return Err(rec.error("holdout", format!("{holdout} is not a share of the log in (0, 1)")));
            }
            let max_lists = int(&rec, "max_lists")?;
            if max_lists < 0 {
                return Err(rec.error("max_lists", format!("{max_lists} is below 0")));
            }
            let (from, to) = (opt("from_ts")?, opt("to_ts")?);
            if let (Some(f), Some(t)) = (from, to) {
                if f >= t {
                    return Err(rec.error("to_ts", format!("{t} is not after from_ts {f}")));
                }
            }
            rows.push((int(&rec, "window")?, from, to, present, max_lists, holdout));
            Ok(())
        })?;
        rows.sort_by_key(|r| r.0);
        let bad = |m: String| Err(whole_file(&path, "window", m));
        if rows.is_empty() || rows.len() as i64 > MAX_WINDOWS || rows.iter().enumerate().any(|(n, r)| r.0 != n as i64) {
            return bad(format!("windows must be numbered 0, 1, … with 1 to {MAX_WINDOWS} rows"));
        }
        if rows.windows(2).any(|p| (p[0].4, p[0].5.to_bits()) != (p[1].4, p[1].5.to_bits())) {
            return bad("every row must give the same max_lists and holdout".into());
        }
        let present = rows.iter().take_while(|r| r.3).count();
        if present == 0 || rows[present..].iter().any(|r| r.3) {
            return bad("window 0 is always present, and no window after an absent one".into());
        }
        let mut windows = Vec::with_capacity(present);
        for (w, &(_, from, to, ..)) in rows[..present].iter().enumerate() {
            let wdir = window_dir(dir, w);
            let log = LogArtefacts::from_parquet(&wdir, catalog)?;
            if log.training.is_some() {
                return Err(whole_file(&wdir, TRAINING, "a window's log has training windows of its own"));
            }
            windows.push(TrainingWindow {
                from,
                to,
                log,
                targets: read_targets(&wdir.join(TARGETS), catalog)?,
            });
        }
        Ok(Some(Box::new(TrainingArtefacts {
            holdout: rows[0].5,
            max_lists: rows[0].4 as usize,
            asked: rows.len(),
            windows,
        })))
    }
}

/// A column of item ids, each known to the catalog.
fn ids(rec: &Record<'_>, field: &str, catalog: &Catalog) -> Result<Vec<String>> {
    let list = match rec.obj.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(rec.error(field, format!("expected a list of item ids, found {}", kind(other)))),
    };
    list.iter()
        .map(|v| match v {
            Value::String(id) if catalog.index_of(id).is_some() => Ok(id.clone()),
            Value::String(id) => Err(rec.error(field, format!("unknown item id `{id}` (not in the catalog)"))),
            other => Err(rec.error(field, format!("expected an item id, found {}", kind(other)))),
        })
        .collect()
}

fn read_targets(path: &Path, catalog: &Catalog) -> Result<Vec<Target>> {
    let mut out: Vec<(i64, Target)> = Vec::new();
    for_each(path, &mut |rec| {
        rec.deny_unknown(&["position", "kind", "text", "playing", "history", "negatives", "item"])?;
        let known = |field: &str, id: &str| -> Result<String> {
            match catalog.index_of(id) {
                Some(_) => Ok(id.to_string()),
                None => Err(rec.error(field, format!("unknown item id `{id}` (not in the catalog)"))),
            }
        };
        let text = rec.optional_str("text")?;
        let playing = rec.optional_str("playing")?.map(|p| known("playing", p)).transpose()?;
        let history = ids(&rec, "history", catalog)?;
        let kind_name = rec.required_str("kind")?;
        let need = |field: &str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(rec.error(field, format!("does not fit the kind `{kind_name}`")))
            }
        };
        let context = match kind_name {
            "search" => {
                need("playing", playing.is_none() && history.is_empty())?;
                Context::search(text.ok_or_else(|| rec.error("text", "a search needs a text"))?)
            }
            "listening" => {
                need("text", text.is_none() && history.is_empty())?;
                Context::listening(playing.ok_or_else(|| rec.error("playing", "listening needs an item"))?)
            }
            "history" => {
                need("text", text.is_none() && playing.is_none() && !history.is_empty())?;
                Context::history(history)
            }
            "personalized_search" => {
                need("playing", playing.is_none() && !history.is_empty())?;
                Context::personalized_search(text.ok_or_else(|| rec.error("text", "a search needs a text"))?, history)
            }
            "session" => {
                need("text", text.is_some() || playing.is_some() || !history.is_empty())?;
                Context::session(text, playing.as_deref(), history)
            }
            other => {
                return Err(rec.error(
                    "kind",
                    format!("`{other}` is not one of search, listening, history, personalized_search, session"),
                ))
            }
        };
        let item = known("item", rec.required_str("item")?)?;
        let position = int(&rec, "position")?;
        out.push((
            position,
            Target {
                request: Request::new(context).negatives(ids(&rec, "negatives", catalog)?),
                relevant: std::collections::HashMap::from([(item, 1)]),
            },
        ));
        Ok(())
    })?;
    out.sort_by_key(|(p, _)| *p);
    if let Some(n) = out.iter().enumerate().position(|(n, (p, _))| *p != n as i64) {
        return Err(whole_file(
            path,
            "position",
            format!(
                "positions must be 0, 1, …, {}: {} is missing or repeated",
                out.len().saturating_sub(1),
                n
            ),
        ));
    }
    Ok(out.into_iter().map(|(_, t)| t).collect())
}
