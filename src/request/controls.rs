//! The request's controls beside its context: candidate counts, filters on
//! tags and number ranges, and what happens after the ranker (group caps,
//! maximal marginal relevance, boosts, recency and pins).

use serde::{Deserialize, Serialize};

use super::Retriever;

/// A tag condition: `field` (e.g. `genre`) has `value` (e.g. `jazz`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagFilter {
    /// The tag field.
    pub field: String,
    /// The value, compared exactly.
    pub value: String,
}

/// A condition on a number attribute (`year`, `duration_s`): every
/// returned item has a value there within the bounds set. At least one
/// bound; at most one of `gte`/`gt` and one of `lte`/`lt`; finite. An item
/// without the attribute (or with text there) never passes. Applied inside
/// every retriever, not after it: where the filter lets through few items,
/// the vector retrievers scan exactly those instead of walking their graph,
/// so recall holds at any selectivity.
///
/// ```
/// use twostage::{Context, RangeFilter, Request};
/// let req = Request::new(Context::search("ambient")).range(RangeFilter::new("year").gte(2000.0).lt(2010.0));
/// let json = r#"{"context":{"search":{"text":"ambient"}},"range":[{"attr":"year","gte":2000,"lt":2010}]}"#;
/// assert_eq!(serde_json::from_str::<Request>(json).unwrap(), req);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeFilter {
    /// The number attribute.
    pub attr: String,
    /// Value ≥ this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    /// Value > this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    /// Value ≤ this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
    /// Value < this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
}

impl RangeFilter {
    /// A condition on `attr` with no bound yet (add one: a range without
    /// any is refused).
    pub fn new(attr: impl Into<String>) -> RangeFilter {
        RangeFilter {
            attr: attr.into(),
            gte: None,
            gt: None,
            lte: None,
            lt: None,
        }
    }

    /// Value ≥ `v`.
    pub fn gte(mut self, v: f64) -> RangeFilter {
        self.gte = Some(v);
        self
    }

    /// Value > `v`.
    pub fn gt(mut self, v: f64) -> RangeFilter {
        self.gt = Some(v);
        self
    }

    /// Value ≤ `v`.
    pub fn lte(mut self, v: f64) -> RangeFilter {
        self.lte = Some(v);
        self
    }

    /// Value < `v`.
    pub fn lt(mut self, v: f64) -> RangeFilter {
        self.lt = Some(v);
        self
    }
}

/// At most `max` returned items per value of `key`: an attribute (`artist`,
/// `album`) or a tag field (`genre`; an item counts once against each of its
/// values), whether or not the build declared it a group key. Applied after
/// ranking, before the cut to `k`, filling `k` from further down the ranking.
/// In JSON: `"group_cap": {"key": "artist", "max": 1}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCap {
    /// The attribute or tag field whose values are capped.
    pub key: String,
    /// Items per value; at least 1.
    pub max: usize,
}

/// Maximal marginal relevance (Carbonell and Goldstein, 1998): the list is
/// picked greedily, each next item maximising `lambda · relevance − (1 −
/// lambda) · its highest similarity to the items already picked`, where
/// relevance is the served score scaled to [0, 1] over the candidates and
/// similarity the cosine of the items' vectors in the learned space (0 for
/// items without one). `lambda = 1` is the plain ranking; lower trades
/// relevance for variety. In JSON: `"mmr": {"lambda": 0.7}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mmr {
    /// Weight of relevance against novelty, in [0, 1].
    pub lambda: f32,
}

/// A rule after the ranker: raise (`weight` > 0) or lower (< 0) the items
/// whose tag field or attribute `field` holds `value`. Where a request has
/// boosts or [`Recency`], each candidate's served score is scaled to [0, 1]
/// over the candidates and the rules' terms are added to it, so a weight of
/// 0.5 is half the list's score range whatever the ranker's scale. In JSON:
/// `"boosts": [{"field": "genre", "value": "jazz", "weight": 0.3}]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boost {
    /// A tag field or attribute.
    pub field: String,
    /// The value, compared exactly (a number attribute as written, `1999`).
    pub value: String,
    /// Added to the scaled score of a matching item; finite.
    pub weight: f32,
}

/// A rule after the ranker: favour recent items by a number attribute (a
/// release year or date), adding `weight · 2^(−age / half_life)` to the
/// scaled score (see [`Boost`]), where `age = now − value` in the
/// attribute's units and `now` defaults to the newest value in the index.
/// Items without the attribute get nothing. In JSON:
/// `"recency": {"attr": "year", "half_life": 5, "weight": 0.5}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recency {
    /// The number attribute.
    pub attr: String,
    /// Age at which the term halves; positive.
    pub half_life: f64,
    /// The term for an item of age 0; finite.
    pub weight: f32,
    /// The reference point; the newest value in the index when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<f64>,
}

/// A rule after everything else: item `id` at 0-based `position` of the
/// list (or last, if the list is shorter). The item joins the candidates
/// even if no retriever found it, but only if it passes the request's
/// filters (else a warning says it was not pinned). In JSON:
/// `"pins": [{"id": "trk-00042", "position": 0}]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The item's external id.
    pub id: String,
    /// Its 0-based position; below `k`.
    pub position: usize,
}

/// How many candidates each retriever is asked for. In JSON every count is
/// optional: a missing one keeps its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CandidateCounts {
    /// ANN neighbours. Default 200.
    pub ann: usize,
    /// BM25 hits. Default 100.
    pub lexical: usize,
    /// Co-visited items. Default 200.
    pub covisit: usize,
    /// Popular items. Default 50 (only for contexts with items, as cold-start cover).
    pub popular: usize,
    /// Content-space neighbours. Default 100 (only for indexes with a content space).
    pub content: usize,
    /// Linear item-item (EASE) items. Default 200 (only for history and listening contexts).
    pub linear: usize,
}

impl Default for CandidateCounts {
    fn default() -> Self {
        CandidateCounts {
            ann: 200,
            lexical: 100,
            covisit: 200,
            popular: 50,
            content: 100,
            linear: 200,
        }
    }
}

impl CandidateCounts {
    /// The count for one retriever.
    pub fn get(&self, r: Retriever) -> usize {
        match r {
            Retriever::Ann => self.ann,
            Retriever::Lexical => self.lexical,
            Retriever::Covisit => self.covisit,
            Retriever::Popular => self.popular,
            Retriever::Content => self.content,
            Retriever::Linear => self.linear,
        }
    }

    /// Sets the count for one retriever.
    pub fn set(&mut self, r: Retriever, n: usize) {
        match r {
            Retriever::Ann => self.ann = n,
            Retriever::Lexical => self.lexical = n,
            Retriever::Covisit => self.covisit = n,
            Retriever::Popular => self.popular = n,
            Retriever::Content => self.content = n,
            Retriever::Linear => self.linear = n,
        }
    }
}
