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
use super::{ArtefactSummary, LogArtefacts};
use crate::catalog::Catalog;
use crate::catalog::MAX_TEXT_BYTES;
use crate::error::{Error, Result};
use crate::jsonl::{kind, Record};
use crate::ranking::dataset::{Target, TARGET_HISTORY};
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
                (
                    "max_lists",
                    ints(rows.iter().map(|_| i64::try_from(t.max_lists).unwrap_or(i64::MAX))),
                ),
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

    /// Reads `dir/training` when present, checking every row, and that the
    /// windows belong to the log `top` summarises (a stale directory left
    /// by an earlier run is refused, not trained on).
    pub(super) fn read_training(dir: &Path, catalog: &Catalog, top: &ArtefactSummary) -> Result<Option<Box<TrainingArtefacts>>> {
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
        // Bounds: window 0 runs to the end of the log (and starts nowhere
        // only in an empty log); window w ≥ 1 ends where w − 1 begins;
        // absent windows have none.
        for (w, &(_, from, to, is, ..)) in rows.iter().enumerate() {
            let fits = match (w, is) {
                (_, false) => from.is_none() && to.is_none(),
                (0, true) => to.is_none() && from.is_none() == (top.events == 0) && from.is_none_or(|f| f <= top.last_ts),
                (_, true) => from.is_some() && to.is_some() && to == rows[w - 1].1,
            };
            if !fits {
                return Err(whole_file(
                    &path,
                    "from_ts",
                    format!(
                        "window {w}'s bounds {from:?}..{to:?} do not fit (window 0 runs to the log's end, which is {}; \
                         each later window ends where the one before it begins; an absent window has none)",
                        top.last_ts
                    ),
                ));
            }
        }
        let max_lists = rows[0].4 as usize;
        let mut windows = Vec::with_capacity(present);
        for (w, &(_, from, to, ..)) in rows[..present].iter().enumerate() {
            let wdir = window_dir(dir, w);
            let log = LogArtefacts::from_parquet(&wdir, catalog)?;
            if log.training.is_some() {
                return Err(whole_file(&wdir, TRAINING, "a window's log has training windows of its own"));
            }
            // The log before the window: part of this log, and over before it starts.
            let (s, before) = (&log.summary, from.unwrap_or(i64::MAX));
            let stale = s.events > top.events
                || (s.events > 0 && (s.first_ts != top.first_ts || s.last_ts >= before))
                || (from.is_none() && s.events != 0);
            if stale
                || (s.session_gap_secs, s.covisit_window, s.cooccurrence_kept)
                    != (top.session_gap_secs, top.covisit_window, top.cooccurrence_kept)
            {
                return Err(whole_file(
                    &wdir.join("summary.parquet"),
                    "events",
                    format!(
                        "training window {w}'s log ({} events, {}..{}) is not the part of this log ({} events, {}..{}) before {from:?}, \
                         or was computed with other parameters: a stale training directory? (compute the artefacts again)",
                        s.events, s.first_ts, s.last_ts, top.events, top.first_ts, top.last_ts
                    ),
                ));
            }
            let targets = read_targets(&wdir.join(TARGETS), catalog)?;
            if targets.len() > max_lists || (w > 0 && targets.is_empty()) {
                return Err(whole_file(
                    &wdir.join(TARGETS),
                    "position",
                    format!(
                        "{} requests; a window keeps at most max_lists = {max_lists}, and a later window at least one",
                        targets.len()
                    ),
                ));
            }
            windows.push(TrainingWindow { from, to, log, targets });
        }
        Ok(Some(Box::new(TrainingArtefacts {
            holdout: rows[0].5,
            max_lists,
            asked: rows.len(),
            windows,
        })))
    }
}

/// A column of at most [`TARGET_HISTORY`] item ids, each known to the catalog.
fn ids(rec: &Record<'_>, field: &str, catalog: &Catalog) -> Result<Vec<String>> {
    let list = match rec.obj.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(rec.error(field, format!("expected a list of item ids, found {}", kind(other)))),
    };
    if list.len() > TARGET_HISTORY {
        return Err(rec.error(
            field,
            format!("{} items; a logged request carries at most {TARGET_HISTORY}", list.len()),
        ));
    }
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
        if let Some(t) = text.filter(|t| t.len() > MAX_TEXT_BYTES) {
            return Err(rec.error("text", format!("{} bytes; the limit is {MAX_TEXT_BYTES}", t.len())));
        }
        let playing = rec.optional_str("playing")?.map(|p| known("playing", p)).transpose()?;
        let history = ids(&rec, "history", catalog)?;
        let kind_name = rec.required_str("kind")?;
        // Each column the kind has, and none it has not.
        let (wants_text, wants_playing, wants_history) = match kind_name {
            "search" => (Some(true), Some(false), Some(false)),
            "listening" => (Some(false), Some(true), Some(false)),
            "history" => (Some(false), Some(false), Some(true)),
            "personalized_search" => (Some(true), Some(false), Some(true)),
            "session" => (None, None, None),
            other => {
                return Err(rec.error(
                    "kind",
                    format!("`{other}` is not one of search, listening, history, personalized_search, session"),
                ))
            }
        };
        for (field, wanted, has) in [
            ("text", wants_text, text.is_some()),
            ("playing", wants_playing, playing.is_some()),
            ("history", wants_history, !history.is_empty()),
        ] {
            if wanted.is_some_and(|w| w != has) {
                let what = if has { "is not part of" } else { "is needed by" };
                return Err(rec.error(field, format!("{what} a `{kind_name}` request")));
            }
        }
        let context = match kind_name {
            "search" => Context::search(text.unwrap_or_default()),
            "listening" => Context::listening(playing.unwrap_or_default()),
            "history" => Context::history(history),
            "personalized_search" => Context::personalized_search(text.unwrap_or_default(), history),
            _ if text.is_none() && playing.is_none() && history.is_empty() => {
                return Err(rec.error("kind", "a `session` needs a text, a playing item or a history"))
            }
            _ => Context::session(text, playing.as_deref(), history),
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
