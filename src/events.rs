//! Interactions: plays, skips and searches, grouped into sessions.
//!
//! A JSON Lines events file has one event per line:
//!
//! ```json
//! {"user":"usr-00001","item":"trk-00042","ts":1717171717,"type":"play"}
//! {"user":"usr-00001","item":"trk-00043","ts":1717171931,"type":"skip"}
//! {"user":"usr-00001","item":"trk-00042","ts":1717172200,"type":"search","query":"velvet foxes"}
//! ```
//!
//! `type` defaults to `play`; a `search` event records the query a user typed
//! and the item they then played. An optional `session` string groups events
//! explicitly; otherwise sessions are split on a gap of inactivity.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::jsonl::{self, kind};

/// Earliest accepted timestamp (unix seconds): 1970-01-01.
pub const MIN_TS: i64 = 0;
/// Latest accepted timestamp (unix seconds): 2100-01-01.
pub const MAX_TS: i64 = 4_102_444_800;
/// Default inactivity gap that ends a session: 30 minutes, the common web-analytics choice.
pub const DEFAULT_SESSION_GAP_SECS: i64 = 30 * 60;

/// What the user did with the item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    /// Consumed the item (a positive signal).
    Play,
    /// Skipped it (a negative signal).
    Skip,
    /// Typed a query, then played the item from the results.
    Search,
}

/// One interaction, with ids interned: `user` indexes [`Events::users`] and
/// `item` is the catalog's internal id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Interned user.
    pub user: u32,
    /// Internal item id.
    pub item: u32,
    /// Unix seconds.
    pub ts: i64,
    /// What happened.
    pub kind: EventKind,
    /// The query, for [`EventKind::Search`].
    pub query: Option<String>,
    /// Interned explicit session id, when the log carries one.
    pub session: Option<u32>,
}

/// An item shown to a user in an answer (`"type": "impression"` in the
/// log, as the service example writes them with `--impressions`): kept apart
/// from the events, so shown items never count as plays, skips or activity.
/// Builds do not read them yet; they are loaded and validated so a log that
/// carries them can be built from, and so a later build can learn from what
/// was shown and not played.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Impression {
    /// Interned user.
    pub user: u32,
    /// Internal item id.
    pub item: u32,
    /// Unix seconds.
    pub ts: i64,
    /// The answer it was shown in (the service's request id).
    pub request: String,
    /// The ranking variant that produced the answer, when it was recorded.
    pub variant: Option<String>,
    /// Its 0-based position in the answer.
    pub position: u32,
}

/// A validated, time-ordered interaction log over one catalog.
///
/// ```
/// use twostage::{Catalog, EventKind, Events};
/// # fn main() -> twostage::Result<()> {
/// let catalog = Catalog::from_jsonl_reader(r#"{"id":"t1","title":"Blue Train"}"#.as_bytes(), "items.jsonl".as_ref())?;
/// let log = r#"{"user":"u1","item":"t1","ts":1700000100,"type":"search","query":"coltrane"}
/// {"user":"u1","item":"t1","ts":1700000000}"#;
/// let events = Events::from_jsonl_reader(log.as_bytes(), "events.jsonl".as_ref(), &catalog)?;
/// assert_eq!(events.len(), 2);
/// assert_eq!(events.events()[0].kind, EventKind::Play, "sorted by time");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Events {
    users: Vec<String>,
    events: Vec<Event>,
    impressions: Vec<Impression>,
}

/// One session: a user's consecutive events, in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Session<'a> {
    /// Interned user.
    pub user: u32,
    /// The events, oldest first.
    pub events: Vec<&'a Event>,
}

impl<'a> Session<'a> {
    /// Internal ids of the items played (not skipped) in order: the sequence
    /// co-visitation and embeddings learn from. A search counts through the
    /// play event that follows it.
    pub fn played(&self) -> impl Iterator<Item = u32> + '_ {
        self.events.iter().filter(|e| e.kind == EventKind::Play).map(|e| e.item)
    }
}

/// The interned id of user `name`, interning it if new.
fn intern(ids: &mut HashMap<String, u32>, names: &mut Vec<String>, name: &str) -> u32 {
    let next = ids.len() as u32;
    *ids.entry(name.to_owned()).or_insert_with(|| {
        names.push(name.to_owned());
        next
    })
}

/// The fields of an impression record beside its user, item and time
/// (its user is filled in by the caller).
fn impression(rec: &jsonl::Record<'_>, item: u32, ts: i64) -> Result<Impression> {
    if rec.obj.contains_key("query") {
        return Err(rec.error("query", "only search events carry a query"));
    }
    let request = rec.required_str("request")?;
    if request.is_empty() || request.len() > crate::catalog::MAX_ID_BYTES {
        return Err(rec.error("request", "must be a non-empty id of at most 512 bytes"));
    }
    let position = match rec.obj.get("position") {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| rec.error("position", "expected a non-negative integer"))?,
        Some(other) => return Err(rec.error("position", format!("expected an integer, found {}", kind(other)))),
        None => return Err(rec.error("position", "missing required field")),
    };
    Ok(Impression {
        user: 0,
        item,
        ts,
        request: request.to_owned(),
        variant: rec.optional_str("variant")?.map(str::to_owned),
        position,
    })
}

impl Events {
    /// Loads a JSON Lines events file, resolving item ids against `catalog`.
    pub fn from_jsonl_path(path: impl AsRef<Path>, catalog: &Catalog) -> Result<Events> {
        let path = path.as_ref();
        Events::from_jsonl_reader(jsonl::open(path)?, path, catalog)
    }

    /// Loads JSON Lines events from a reader; `source` names it in errors.
    pub fn from_jsonl_reader(reader: impl BufRead, source: &Path, catalog: &Catalog) -> Result<Events> {
        Events::from_records(catalog, |each| jsonl::for_each_record(reader, source, each))
    }

    /// Loads a Parquet events file (feature `parquet`), resolving item ids
    /// against `catalog`: the columns are the JSON Lines fields (`user`,
    /// `item`, `ts`, optional `type`, `query`, `session`; `ts` may be an
    /// integer of unix seconds or an Arrow timestamp) and every row meets the
    /// same data contract. Errors name the file, row group, row and column.
    #[cfg(feature = "parquet")]
    pub fn from_parquet_path(path: impl AsRef<Path>, catalog: &Catalog) -> Result<Events> {
        let path = path.as_ref();
        Events::from_records(catalog, |each| crate::parquet::for_each_record(path, each))
    }

    /// Validates the records `drive` produces into a log.
    fn from_records(catalog: &Catalog, drive: impl FnOnce(jsonl::RecordSink<'_>) -> Result<usize>) -> Result<Events> {
        let mut users: HashMap<String, u32> = HashMap::new();
        let mut sessions: HashMap<String, u32> = HashMap::new();
        let mut out = Events::default();
        drive(&mut |rec| {
            rec.deny_unknown(&["user", "item", "ts", "type", "query", "session", "request", "variant", "position"])?;
            let user_name = rec.required_str("user")?;
            if user_name.trim().is_empty() || user_name.len() > crate::catalog::MAX_ID_BYTES {
                return Err(rec.error("user", "must be a non-empty id of at most 512 bytes"));
            }
            let item_id = rec.required_str("item")?;
            let item = catalog
                .index_of(item_id)
                .ok_or_else(|| rec.error("item", format!("unknown item id `{item_id}` (not in the catalog)")))?;
            let ts = match rec.obj.get("ts") {
                None => return Err(rec.error("ts", "missing required field")),
                Some(Value::Number(n)) => match n.as_i64() {
                    Some(t) if (MIN_TS..MAX_TS).contains(&t) => t,
                    Some(t) => return Err(rec.error("ts", format!("timestamp {t} is outside 1970..2100 (unix seconds expected)"))),
                    None => return Err(rec.error("ts", "expected an integer number of unix seconds")),
                },
                Some(other) => return Err(rec.error("ts", format!("expected an integer, found {}", kind(other)))),
            };
            let event_kind = match rec.optional_str("type")? {
                None | Some("play") => EventKind::Play,
                Some("skip") => EventKind::Skip,
                Some("search") => EventKind::Search,
                Some("impression") => {
                    let impression = impression(&rec, item, ts)?;
                    let user = intern(&mut users, &mut out.users, user_name);
                    out.impressions.push(Impression { user, ..impression });
                    return Ok(());
                }
                Some(other) => return Err(rec.error("type", format!("`{other}` is not one of play, skip, search, impression"))),
            };
            if let Some(field) = ["request", "variant", "position"].into_iter().find(|f| rec.obj.contains_key(*f)) {
                return Err(rec.error(field, "only impression events carry it"));
            }
            let query = rec.optional_str("query")?.map(str::to_owned);
            match (&event_kind, &query) {
                (EventKind::Search, None) => return Err(rec.error("query", "a search event needs a query")),
                (EventKind::Search, Some(q)) if q.len() > crate::catalog::MAX_TEXT_BYTES => {
                    return Err(rec.error("query", "query longer than the text limit"))
                }
                (EventKind::Play | EventKind::Skip, Some(_)) => return Err(rec.error("query", "only search events carry a query")),
                _ => {}
            }
            let session = match rec.optional_str("session")? {
                None => None,
                Some(s) => {
                    let next = sessions.len() as u32;
                    Some(*sessions.entry(s.to_owned()).or_insert(next))
                }
            };
            let user = intern(&mut users, &mut out.users, user_name);
            out.events.push(Event {
                user,
                item,
                ts,
                kind: event_kind,
                query,
                session,
            });
            Ok(())
        })?;
        out.sort();
        Ok(out)
    }

    /// Builds a log from already-interned events (e.g. converted from another
    /// format). `users` names the interned users; every event must refer to a
    /// user in it and an item of `catalog`.
    pub fn from_events(users: Vec<String>, events: Vec<Event>, catalog: &Catalog) -> Result<Events> {
        for (i, e) in events.iter().enumerate() {
            let err = |field: &str, reason: String| Error::InvalidData {
                path: "<events>".into(),
                line: Some(i + 1),
                field: field.into(),
                reason,
            };
            if e.user as usize >= users.len() {
                return Err(err("user", format!("user index {} out of range", e.user)));
            }
            if e.item as usize >= catalog.len() {
                return Err(err("item", format!("item index {} out of range", e.item)));
            }
            if !(MIN_TS..MAX_TS).contains(&e.ts) {
                return Err(err("ts", format!("timestamp {} is outside 1970..2100", e.ts)));
            }
            if (e.kind == EventKind::Search) != e.query.is_some() {
                return Err(err("query", "search events, and only they, carry a query".into()));
            }
        }
        let mut out = Events {
            users,
            events,
            impressions: Vec::new(),
        };
        out.sort();
        Ok(out)
    }

    /// The log as its parts, for storing (see `index::build_log`).
    pub(crate) fn parts(&self) -> (&[String], &[Event], &[Impression]) {
        (&self.users, &self.events, &self.impressions)
    }

    /// A log from stored parts over `catalog`, checked as
    /// [`Events::from_events`] checks.
    pub(crate) fn from_parts(users: Vec<String>, events: Vec<Event>, impressions: Vec<Impression>, catalog: &Catalog) -> Result<Events> {
        if let Some(i) = impressions
            .iter()
            .position(|e| e.user as usize >= users.len() || e.item as usize >= catalog.len())
        {
            return Err(Error::InvalidData {
                path: "<impressions>".into(),
                line: Some(i + 1),
                field: "item".into(),
                reason: "user or item index out of range".into(),
            });
        }
        let mut out = Events::from_events(users, events, catalog)?;
        out.impressions = impressions;
        out.sort();
        Ok(out)
    }

    /// The impressions the log carries, oldest first (see [`Impression`]).
    pub fn impressions(&self) -> &[Impression] {
        &self.impressions
    }

    /// Stable sort by time, so equal timestamps keep file order.
    fn sort(&mut self) {
        self.events.sort_by_key(|e| e.ts);
        self.impressions.sort_by_key(|e| e.ts);
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// All events, oldest first.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// External user ids, indexed by [`Event::user`].
    pub fn users(&self) -> &[String] {
        &self.users
    }

    /// The latest timestamp in the log, if any.
    pub fn last_ts(&self) -> Option<i64> {
        self.events.last().map(|e| e.ts)
    }

    /// Splits each user's time-ordered events into sessions: a new session
    /// starts when the explicit session id changes or after more than
    /// `gap_secs` of inactivity. Sessions come ordered by user, then time.
    pub fn sessions(&self, gap_secs: i64) -> Vec<Session<'_>> {
        let mut by_user: Vec<Vec<&Event>> = vec![Vec::new(); self.users.len()];
        for e in &self.events {
            if let Some(list) = by_user.get_mut(e.user as usize) {
                list.push(e);
            }
        }
        let mut out = Vec::new();
        for (user, list) in by_user.into_iter().enumerate() {
            let mut current: Vec<&Event> = Vec::new();
            for e in list {
                if let Some(prev) = current.last() {
                    if e.ts - prev.ts > gap_secs || e.session != prev.session {
                        out.push(Session {
                            user: user as u32,
                            events: std::mem::take(&mut current),
                        });
                    }
                }
                current.push(e);
            }
            if !current.is_empty() {
                out.push(Session {
                    user: user as u32,
                    events: current,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Item;

    fn catalog() -> Catalog {
        Catalog::new(vec![Item::new("a", "A"), Item::new("b", "B"), Item::new("c", "C")]).unwrap()
    }

    fn load(text: &str) -> Result<Events> {
        Events::from_jsonl_reader(text.as_bytes(), Path::new("events.jsonl"), &catalog())
    }

    #[test]
    fn loads_sorts_and_sessionizes() {
        let ev = load(concat!(
            "{\"user\":\"u\",\"item\":\"b\",\"ts\":200}\n",
            "{\"user\":\"u\",\"item\":\"a\",\"ts\":100}\n",
            "{\"user\":\"u\",\"item\":\"c\",\"ts\":300,\"type\":\"skip\"}\n",
            "{\"user\":\"u\",\"item\":\"a\",\"ts\":99999,\"type\":\"search\",\"query\":\"a\"}\n",
            "{\"user\":\"v\",\"item\":\"a\",\"ts\":150}\n",
        ))
        .unwrap();
        assert_eq!(ev.len(), 5);
        assert_eq!(ev.users(), &["u".to_string(), "v".to_string()]);
        assert!(ev.events().windows(2).all(|w| w[0].ts <= w[1].ts));
        let s = ev.sessions(DEFAULT_SESSION_GAP_SECS);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].played().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(s[1].events[0].query.as_deref(), Some("a"));
    }

    #[test]
    fn impressions_are_loaded_apart_from_the_events() {
        let ev = load(concat!(
            "{\"user\":\"u\",\"item\":\"a\",\"ts\":100}\n",
            "{\"user\":\"w\",\"item\":\"b\",\"ts\":90,\"type\":\"impression\",\"request\":\"r-1\",\"variant\":\"ranker\",\"position\":0}\n",
            "{\"user\":\"u\",\"item\":\"c\",\"ts\":50,\"type\":\"impression\",\"request\":\"r-0\",\"position\":3}\n",
        ))
        .unwrap();
        assert_eq!(ev.len(), 1, "an impression is not an event");
        assert_eq!(ev.sessions(DEFAULT_SESSION_GAP_SECS).len(), 1);
        let imp = ev.impressions();
        assert_eq!(imp.len(), 2);
        assert_eq!(
            (imp[0].item, imp[0].position, imp[0].request.as_str(), imp[0].variant.as_deref()),
            (2, 3, "r-0", None)
        );
        assert_eq!(
            (ev.users()[imp[1].user as usize].as_str(), imp[1].variant.as_deref()),
            ("w", Some("ranker"))
        );
        for (text, field, needle) in [
            (
                "{\"user\":\"u\",\"item\":\"a\",\"ts\":1,\"type\":\"impression\",\"position\":0}",
                "`request`",
                "missing",
            ),
            (
                "{\"user\":\"u\",\"item\":\"a\",\"ts\":1,\"type\":\"impression\",\"request\":\"r\",\"position\":-1}",
                "`position`",
                "non-negative",
            ),
            (
                "{\"user\":\"u\",\"item\":\"a\",\"ts\":1,\"request\":\"r\"}",
                "`request`",
                "only impression",
            ),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains(needle), "{text} -> {e}");
        }
    }

    #[test]
    fn contract_errors_name_line_and_field() {
        let cases = [
            ("{\"user\":\"u\",\"item\":\"zz\",\"ts\":1}", "`item`", "unknown item"),
            ("{\"user\":\"u\",\"item\":\"a\"}", "`ts`", "missing"),
            ("{\"user\":\"u\",\"item\":\"a\",\"ts\":-5}", "`ts`", "outside"),
            ("{\"user\":\"u\",\"item\":\"a\",\"ts\":1.5}", "`ts`", "integer"),
            ("{\"user\":\"u\",\"item\":\"a\",\"ts\":1,\"type\":\"like\"}", "`type`", "not one of"),
            (
                "{\"user\":\"u\",\"item\":\"a\",\"ts\":1,\"type\":\"search\"}",
                "`query`",
                "needs a query",
            ),
            ("{\"user\":7,\"item\":\"a\",\"ts\":1}", "`user`", "expected a string"),
        ];
        for (text, field, needle) in cases {
            let e = load(&format!("{{\"user\":\"ok\",\"item\":\"a\",\"ts\":1}}\n{text}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("line 2") && e.contains(field) && e.contains(needle), "{text} -> {e}");
        }
    }

    #[test]
    fn explicit_session_ids_split_sessions() {
        let ev = load(concat!(
            "{\"user\":\"u\",\"item\":\"a\",\"ts\":1,\"session\":\"s1\"}\n",
            "{\"user\":\"u\",\"item\":\"b\",\"ts\":2,\"session\":\"s2\"}\n",
        ))
        .unwrap();
        assert_eq!(ev.sessions(DEFAULT_SESSION_GAP_SECS).len(), 2);
    }
}
