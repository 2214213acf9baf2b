//! Events recorded live, in the events file's shape.

use serde::{Deserialize, Serialize};

use crate::events::EventKind;

/// An interaction recorded after the build ([`Engine::record_events`](crate::Engine::record_events)),
/// in the events file's shape: `{"user", "item", "ts", "type"}` (`type`
/// `play`, the default, `skip` or `search`; a search carries its `query`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveEvent {
    /// The user's id.
    pub user: String,
    /// The item's external id.
    pub item: String,
    /// Unix seconds.
    pub ts: i64,
    /// What happened.
    #[serde(rename = "type", default = "play", with = "kind_name")]
    pub kind: EventKind,
    /// The query, for a search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

fn play() -> EventKind {
    EventKind::Play
}

/// `type` as the events file writes it.
mod kind_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::events::EventKind;

    pub fn serialize<S: Serializer>(k: &EventKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match k {
            EventKind::Skip => "skip",
            EventKind::Search => "search",
            _ => "play",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EventKind, D::Error> {
        match String::deserialize(d)?.as_str() {
            "play" => Ok(EventKind::Play),
            "skip" => Ok(EventKind::Skip),
            "search" => Ok(EventKind::Search),
            other => Err(serde::de::Error::custom(format!("`{other}` is not one of play, skip, search"))),
        }
    }
}

impl LiveEvent {
    /// A play of `item` by `user` at `ts`.
    pub fn play(user: impl Into<String>, item: impl Into<String>, ts: i64) -> LiveEvent {
        LiveEvent {
            user: user.into(),
            item: item.into(),
            ts,
            kind: EventKind::Play,
            query: None,
        }
    }

    /// The builder's data contract for one event; the message names the field.
    pub(crate) fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        if self.user.trim().is_empty() || self.user.len() > crate::catalog::MAX_ID_BYTES {
            return Err(("user", "must be a non-empty id of at most 512 bytes".into()));
        }
        if !(0..crate::events::MAX_TS).contains(&self.ts) {
            return Err(("ts", format!("timestamp {} is outside 1970..2100 (unix seconds expected)", self.ts)));
        }
        match (self.kind, &self.query) {
            (EventKind::Search, None) => Err(("query", "a search event needs a query".into())),
            (EventKind::Search, Some(q)) if q.len() > crate::catalog::MAX_TEXT_BYTES => {
                Err(("query", "query longer than the text limit".into()))
            }
            (EventKind::Play | EventKind::Skip, Some(_)) => Err(("query", "only search events carry a query".into())),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_event_reads_and_writes_the_events_file_shape() {
        let e: LiveEvent = serde_json::from_str(r#"{"user":"u","item":"a","ts":5}"#).unwrap();
        assert_eq!(e, LiveEvent::play("u", "a", 5));
        let s: LiveEvent = serde_json::from_str(r#"{"user":"u","item":"a","ts":5,"type":"search","query":"q"}"#).unwrap();
        assert_eq!((s.kind, s.check()), (EventKind::Search, Ok(())));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"user":"u","item":"a","ts":5,"type":"search","query":"q"}"#
        );
        assert!(serde_json::from_str::<LiveEvent>(r#"{"user":"u","item":"a","ts":5,"type":"like"}"#).is_err());
        assert_eq!(LiveEvent::play("", "a", 5).check().unwrap_err().0, "user");
        assert_eq!(LiveEvent::play("u", "a", -1).check().unwrap_err().0, "ts");
        let search = LiveEvent {
            kind: EventKind::Search,
            ..LiveEvent::play("u", "a", 5)
        };
        assert_eq!(search.check().unwrap_err().0, "query");
    }
}
