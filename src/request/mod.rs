//! What a caller asks for ([`Request`], [`Context`]) and what comes back
//! ([`Recommendations`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::FieldValue;

mod controls;
mod statistics;

pub use controls::{Boost, CandidateCounts, GroupCap, Mmr, Pin, RangeFilter, Recency, TagFilter};
pub use statistics::TextStatistics;

/// Largest `k` a request may ask for.
pub const MAX_K: usize = 10_000;
/// Largest candidate count per retriever.
pub const MAX_CANDIDATES: usize = 10_000;
/// Longest history a request may carry; older items are the caller's to drop.
pub const MAX_HISTORY: usize = 1_000;
/// Most stored fields a request may ask for, and most range filters or
/// boosts it may carry.
pub const MAX_FIELDS: usize = 64;

/// The situation a request is made in.
///
/// ```
/// use twostage::Context;
/// let search = Context::search("late night jazz");
/// let playing = Context::listening("trk-00042");
/// let profile = Context::history(["trk-00001", "trk-00002"]); // most recent last
/// let both = Context::personalized_search("late night jazz", ["trk-00001"]);
/// assert_eq!(both.text(), Some("late night jazz"));
/// assert_eq!(playing.text(), None);
/// // In the service's JSON, the context is an object named by its kind:
/// let json = r#"{"history":{"items":["trk-00001","trk-00002"]}}"#;
/// assert_eq!(serde_json::from_str::<Context>(json).unwrap(), profile);
/// # let _ = search;
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Context {
    /// A search-box query.
    Search {
        /// The text typed. It is analysed into terms, never run as query syntax.
        text: String,
    },
    /// "Currently listening/viewing": recommend items to follow or sit beside `item`.
    Listening {
        /// External id of the current item.
        item: String,
    },
    /// A user's recent items, most recent last.
    History {
        /// External ids, oldest first.
        items: Vec<String>,
    },
    /// A search personalised by the user's recent items.
    PersonalizedSearch {
        /// The text typed.
        text: String,
        /// External ids, oldest first.
        history: Vec<String>,
    },
    /// Every signal at once: a search text, the item playing now and the
    /// user's history before it, each optional (at least one given). The
    /// playing item is the most recent context item (weight 1), the history
    /// decays from there; without a text, a rarely played playing item also
    /// gets more-like-this from its own text, as `listening` does. Served
    /// by the plan of the kind it amounts to: a personalised search with a
    /// text and items, a search with a text alone, listening with a playing
    /// item alone, history otherwise.
    Session {
        /// The text typed, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// External id of the item playing now, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        playing: Option<String>,
        /// External ids played before it, oldest first.
        #[serde(default)]
        history: Vec<String>,
    },
}

impl Context {
    /// A search-box query.
    pub fn search(text: impl Into<String>) -> Context {
        Context::Search { text: text.into() }
    }

    /// The item currently being listened to or viewed.
    pub fn listening(item: impl Into<String>) -> Context {
        Context::Listening { item: item.into() }
    }

    /// A user's recent items, most recent last.
    pub fn history<I, S>(items: I) -> Context
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Context::History {
            items: items.into_iter().map(Into::into).collect(),
        }
    }

    /// A search personalised by a history (most recent last).
    pub fn personalized_search<I, S>(text: impl Into<String>, history: I) -> Context
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Context::PersonalizedSearch {
            text: text.into(),
            history: history.into_iter().map(Into::into).collect(),
        }
    }

    /// A search text, the item playing now and the history before it
    /// (most recent last), together: see [`Context::Session`].
    ///
    /// ```
    /// use twostage::Context;
    /// let now = Context::session(Some("late night jazz"), Some("trk-00042"), ["trk-00001", "trk-00002"]);
    /// assert_eq!(now.text(), Some("late night jazz"));
    /// let json = r#"{"session":{"text":"late night jazz","playing":"trk-00042","history":["trk-00001","trk-00002"]}}"#;
    /// assert_eq!(serde_json::from_str::<Context>(json).unwrap(), now);
    /// ```
    pub fn session<I, S>(text: Option<&str>, playing: Option<&str>, history: I) -> Context
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Context::Session {
            text: text.map(str::to_string),
            playing: playing.map(str::to_string),
            history: history.into_iter().map(Into::into).collect(),
        }
    }

    /// The search text, for the contexts that have one.
    pub fn text(&self) -> Option<&str> {
        match self {
            Context::Search { text } | Context::PersonalizedSearch { text, .. } => Some(text),
            Context::Session { text, .. } => text.as_deref(),
            Context::Listening { .. } | Context::History { .. } => None,
        }
    }
}

/// The candidate retrievers of the first stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Retriever {
    /// Approximate nearest neighbours of the context vector (HNSW).
    Ann,
    /// BM25 over the text fields.
    Lexical,
    /// Items co-visited with the context items in sessions.
    Covisit,
    /// Most played items (the cold-start fallback).
    Popular,
    /// Nearest neighbours in the content space: item text embedded by the
    /// sentence encoder (indexes built with one). A search's encoded query,
    /// or the context items' content vectors, find items by what they are
    /// about, played or not.
    Content,
    /// The linear item-item model (EASE): items the context items' plays
    /// predict, with weights fitted on every user's whole profile.
    Linear,
}

impl Retriever {
    /// Every retriever, in the order used for feature columns and provenance.
    pub const ALL: [Retriever; 6] = [
        Retriever::Ann,
        Retriever::Lexical,
        Retriever::Covisit,
        Retriever::Popular,
        Retriever::Content,
        Retriever::Linear,
    ];

    /// Stable lower-case name (`ann`, `lexical`, `covisit`, `popular`, `content`, `linear`).
    pub fn name(self) -> &'static str {
        match self {
            Retriever::Ann => "ann",
            Retriever::Lexical => "lexical",
            Retriever::Covisit => "covisit",
            Retriever::Popular => "popular",
            Retriever::Content => "content",
            Retriever::Linear => "linear",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One recommendation call: a context plus how many, which filters, and how
/// deep each retriever digs.
///
/// ```
/// use twostage::{Context, Request};
/// let req = Request::new(Context::personalized_search("late night jazz", ["trk-00042"]))
///     .k(20)
///     .require_tag("genre", "jazz")
///     .exclude(["trk-00007"])
///     .fields(["title", "artist"]);
/// // The service takes the same request as JSON; unknown keys are refused.
/// let json = r#"{"context":{"personalized_search":{"text":"late night jazz","history":["trk-00042"]}},
///   "k":20,"require_tags":[{"field":"genre","value":"jazz"}],"exclude":["trk-00007"],"fields":["title","artist"]}"#;
/// assert_eq!(serde_json::from_str::<Request>(json).unwrap(), req);
/// assert!(serde_json::from_str::<Request>(r#"{"context":{"search":{"text":"x"}},"limit":3}"#).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The situation.
    pub context: Context,
    /// Number of items wanted. Default 10; at least 1 and at most [`MAX_K`].
    #[serde(default = "default_k")]
    pub k: usize,
    /// External ids that must not be returned.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Items the user disliked or skipped (external ids), most recent last:
    /// never returned; the vector retrievers' context moves away from them
    /// (the negative term of Rocchio's feedback); the ranker sees each
    /// candidate's closeness to them. Ids the index does not hold are
    /// ignored, as in `exclude` (a skipped item may have been taken down).
    /// At most [`MAX_HISTORY`].
    #[serde(default)]
    pub negatives: Vec<String>,
    /// Every returned item must carry all of these tags.
    #[serde(default)]
    pub require_tags: Vec<TagFilter>,
    /// No returned item may carry any of these tags.
    #[serde(default)]
    pub exclude_tags: Vec<TagFilter>,
    /// Every returned item must lie within all of these ranges.
    #[serde(default)]
    pub range: Vec<RangeFilter>,
    /// At most so many items per artist, album, genre… (see [`GroupCap`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_cap: Option<GroupCap>,
    /// Diversify the list by maximal marginal relevance (see [`Mmr`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mmr: Option<Mmr>,
    /// Raise or lower items by tag or attribute after the ranker (see
    /// [`Boost`]). At most [`MAX_FIELDS`].
    #[serde(default)]
    pub boosts: Vec<Boost>,
    /// Favour recent items after the ranker (see [`Recency`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recency: Option<Recency>,
    /// Items put at fixed positions, after everything else (see [`Pin`]).
    #[serde(default)]
    pub pins: Vec<Pin>,
    /// Candidates asked of each retriever; `None` keeps the engine default.
    #[serde(default)]
    pub candidates: CandidateCounts,
    /// Largest number of fused candidates passed to the ranker. Default 200.
    #[serde(default = "default_rank_depth")]
    pub rank_depth: usize,
    /// Weight of each history item relative to the one after it: the most
    /// recent weighs 1, the one before `decay`, then `decay²`... Default
    /// 0.85 (a session's recent turn matters most); 1.0 weighs a long-term
    /// profile evenly. Must be in (0, 1].
    #[serde(default = "default_history_decay")]
    pub history_decay: f32,
    /// A latency budget in milliseconds: the engine shares it out over the
    /// stages by what each has cost on recent requests of the same kind,
    /// and where the request would run over, it narrows the vector
    /// retrievers' beams, skips the slowest retrievers and scores fewer
    /// candidates, in that order; [`Recommendations::budget`] says what each
    /// stage was given and what was cut. Positive, at most 60,000. `None`
    /// (the default) runs every stage in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_ms: Option<f64>,
    /// The ranking variant to serve, for experiments: `served` (the build's
    /// plan), `ranker` (the learned ranker everywhere) or `fusion` (the
    /// weighted fusion everywhere); see [`VARIANTS`](crate::VARIANTS). The
    /// answer says which served it ([`Recommendations::variant`]). A
    /// [`Scorer`](crate::Scorer) given to [`Engine::rank`](crate::Engine::rank)
    /// ranks whatever the variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The user's id, for experiments: without `variant`, it is hashed
    /// deterministically into one of the variants, so a user keeps theirs
    /// across requests, replicas and restarts. Nothing else reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The learned-space context vector, given instead of the one the
    /// engine derives (a history's recency-weighted mean, or a search's
    /// pseudo-relevance vector from its best lexical hits): for a
    /// coordinator that computed it once over every shard of a catalog, or
    /// a user vector from the caller's own model. The ANN retriever
    /// searches with it and the `context_sim` feature compares with it;
    /// the request's negatives do not move it. It must have the dimension
    /// of the index's learned space ([`Engine::item_vector`](crate::Engine::item_vector)'s),
    /// finite values (with a finite squared norm), not all zero. The
    /// context itself is still required and still feeds every other
    /// retriever and feature. Default `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_vector: Option<Vec<f32>>,
    /// BM25 statistics to score a search with instead of this index's own:
    /// the sum over every shard of a catalog, so that each shard scores as
    /// the whole catalog would (see [`TextStatistics`]). They must hold
    /// every term of the search as this index analyses it, and at least
    /// this index's items; a request without a search may not carry them.
    /// Default `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_statistics: Option<TextStatistics>,
    /// Attach the feature values the ranker saw to every returned item.
    #[serde(default)]
    pub explain: bool,
    /// Stored fields to return with every item (`"fields": ["title",
    /// "artist"]`), named as [`Item::field`](crate::Item::field) takes them;
    /// a name no item of the index has is a caller error. None by default,
    /// at no cost. At most [`MAX_FIELDS`].
    #[serde(default)]
    pub fields: Vec<String>,
}

fn default_k() -> usize {
    10
}

fn default_rank_depth() -> usize {
    200
}

fn default_history_decay() -> f32 {
    0.85
}

impl Request {
    /// A request for the default 10 items in `context`.
    pub fn new(context: Context) -> Request {
        Request {
            context,
            k: default_k(),
            exclude: Vec::new(),
            negatives: Vec::new(),
            require_tags: Vec::new(),
            exclude_tags: Vec::new(),
            range: Vec::new(),
            group_cap: None,
            mmr: None,
            boosts: Vec::new(),
            recency: None,
            pins: Vec::new(),
            candidates: CandidateCounts::default(),
            rank_depth: default_rank_depth(),
            history_decay: default_history_decay(),
            budget_ms: None,
            variant: None,
            user: None,
            context_vector: None,
            text_statistics: None,
            explain: false,
            fields: Vec::new(),
        }
    }

    /// Number of items wanted (default 10). `k = 0` is refused
    /// ([`Error::InvalidRequest`](crate::Error::InvalidRequest)), not an empty list.
    pub fn k(mut self, k: usize) -> Request {
        self.k = k;
        self
    }

    /// Never return these external ids.
    pub fn exclude<I, S>(mut self, ids: I) -> Request
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exclude.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Only return items whose tag `field` holds `value`.
    pub fn require_tag(mut self, field: impl Into<String>, value: impl Into<String>) -> Request {
        self.require_tags.push(TagFilter {
            field: field.into(),
            value: value.into(),
        });
        self
    }

    /// Items the user disliked or skipped, most recent last (see
    /// [`Request::negatives`](Request#structfield.negatives)).
    pub fn negatives<I, S>(mut self, ids: I) -> Request
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.negatives.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Never return items whose tag `field` holds `value`.
    pub fn exclude_tag(mut self, field: impl Into<String>, value: impl Into<String>) -> Request {
        self.exclude_tags.push(TagFilter {
            field: field.into(),
            value: value.into(),
        });
        self
    }

    /// Only return items within `filter`'s bounds (see [`RangeFilter`]).
    pub fn range(mut self, filter: RangeFilter) -> Request {
        self.range.push(filter);
        self
    }

    /// At most `max` items per value of the attribute or tag field `key`
    /// (see [`GroupCap`]).
    pub fn group_cap(mut self, key: impl Into<String>, max: usize) -> Request {
        self.group_cap = Some(GroupCap { key: key.into(), max });
        self
    }

    /// Diversify by maximal marginal relevance with `lambda` in [0, 1]
    /// (see [`Mmr`]).
    pub fn mmr(mut self, lambda: f32) -> Request {
        self.mmr = Some(Mmr { lambda });
        self
    }

    /// Add `weight` to the scaled score of items whose tag field or
    /// attribute `field` holds `value` (see [`Boost`]).
    pub fn boost(mut self, field: impl Into<String>, value: impl Into<String>, weight: f32) -> Request {
        self.boosts.push(Boost {
            field: field.into(),
            value: value.into(),
            weight,
        });
        self
    }

    /// Favour recent items by the number attribute `attr` (see [`Recency`]).
    pub fn recency(mut self, attr: impl Into<String>, half_life: f64, weight: f32) -> Request {
        self.recency = Some(Recency {
            attr: attr.into(),
            half_life,
            weight,
            now: None,
        });
        self
    }

    /// Put item `id` at 0-based `position` (see [`Pin`]).
    pub fn pin(mut self, id: impl Into<String>, position: usize) -> Request {
        self.pins.push(Pin { id: id.into(), position });
        self
    }

    /// Ask retriever `r` for `n` candidates (0 turns it off).
    pub fn candidates(mut self, r: Retriever, n: usize) -> Request {
        self.candidates.set(r, n);
        self
    }

    /// Pass at most `n` fused candidates to the ranker (default 200).
    pub fn rank_depth(mut self, n: usize) -> Request {
        self.rank_depth = n;
        self
    }

    /// Recency decay of history items (default 0.85; 1.0 = all equal).
    pub fn history_decay(mut self, decay: f32) -> Request {
        self.history_decay = decay;
        self
    }

    /// Search the learned space with this context vector instead of the
    /// one the engine would derive (see [`Request::context_vector`]).
    pub fn context_vector(mut self, vector: Vec<f32>) -> Request {
        self.context_vector = Some(vector);
        self
    }

    /// Score the search with these catalog-wide BM25 statistics (see
    /// [`Request::text_statistics`]).
    pub fn text_statistics(mut self, statistics: TextStatistics) -> Request {
        self.text_statistics = Some(statistics);
        self
    }

    /// Attach the ranker's feature values to each result.
    pub fn explain(mut self, on: bool) -> Request {
        self.explain = on;
        self
    }

    /// Answer within about `ms` milliseconds, cutting work where needed (see
    /// [`Request::budget_ms`](Request#structfield.budget_ms)).
    pub fn budget_ms(mut self, ms: f64) -> Request {
        self.budget_ms = Some(ms);
        self
    }

    /// Serve this ranking variant (see [`Request::variant`](Request#structfield.variant)).
    pub fn variant(mut self, name: impl Into<String>) -> Request {
        self.variant = Some(name.into());
        self
    }

    /// The user's id, hashed into a variant when none is named (see
    /// [`Request::user`](Request#structfield.user)).
    pub fn user(mut self, id: impl Into<String>) -> Request {
        self.user = Some(id.into());
        self
    }

    /// Return these stored fields with every item (see [`Request::fields`](Request#structfield.fields)).
    pub fn fields<I, S>(mut self, names: I) -> Request
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fields.extend(names.into_iter().map(Into::into));
        self
    }
}

/// Where a candidate came from: one retriever's rank (0-based) and raw score.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The retriever.
    pub retriever: Retriever,
    /// Position in that retriever's list, 0 = first.
    pub rank: u32,
    /// The retriever's own score (similarity, BM25, co-visitation weight, play count).
    pub score: f32,
}

/// One recommended item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// External item id.
    pub id: String,
    /// The ranker's final score; the list is sorted by it, highest first.
    pub score: f32,
    /// Every retriever that found the item.
    pub sources: Vec<Provenance>,
    /// The features the ranker saw, by name, when the request asked to explain.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub features: Option<Vec<(String, f32)>>,
    /// The stored fields the request asked for ([`Request::fields`]), those
    /// this item has; `None` when none were asked for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fields: Option<BTreeMap<String, FieldValue>>,
}

/// Wall time spent in each stage of one request. Retrievers that did not
/// run report zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Resolving ids and building the context vectors, including the
    /// sentence encoder's pass over a search text.
    pub encode: Duration,
    /// ANN search.
    pub ann: Duration,
    /// BM25 search.
    pub lexical: Duration,
    /// Co-visitation lookup.
    pub covisit: Duration,
    /// Popularity lookup.
    pub popular: Duration,
    /// Content-space ANN search.
    pub content: Duration,
    /// Linear item-item lookup.
    pub linear: Duration,
    /// Merging, de-duplicating and filtering candidates.
    pub fusion: Duration,
    /// Assembling the feature matrix.
    pub features: Duration,
    /// The ranker's forward pass, sort and cut to k.
    pub rank: Duration,
    /// The whole call.
    pub total: Duration,
}

impl Timings {
    /// Number of entries of [`Timings::stages`], for arrays kept per stage.
    pub const STAGES: usize = 11;

    /// The slot of one retriever's stage.
    pub(crate) fn retriever_mut(&mut self, r: Retriever) -> &mut Duration {
        match r {
            Retriever::Ann => &mut self.ann,
            Retriever::Lexical => &mut self.lexical,
            Retriever::Covisit => &mut self.covisit,
            Retriever::Popular => &mut self.popular,
            Retriever::Content => &mut self.content,
            Retriever::Linear => &mut self.linear,
        }
    }

    /// (stage name, duration) pairs in pipeline order, total last.
    pub fn stages(&self) -> [(&'static str, Duration); Timings::STAGES] {
        [
            ("encode", self.encode),
            ("ann", self.ann),
            ("lexical", self.lexical),
            ("covisit", self.covisit),
            ("popular", self.popular),
            ("content", self.content),
            ("linear", self.linear),
            ("fusion", self.fusion),
            ("features", self.features),
            ("rank", self.rank),
            ("total", self.total),
        ]
    }
}

/// The answer to a [`Request`]: items best first, with where each came from,
/// and what the request cost.
///
/// ```no_run
/// # fn main() -> twostage::Result<()> {
/// use twostage::{Context, Engine, Request};
/// let engine = Engine::open("index")?;
/// let recs = engine.recommend(&Request::new(Context::listening("trk-00042")).fields(["title"]))?;
/// for r in &recs.items {
///     let found_by: Vec<&str> = r.sources.iter().map(|s| s.retriever.name()).collect();
///     println!("{} {:?} {:.3} {found_by:?}", r.id, r.fields, r.score);
/// }
/// for w in &recs.warnings {
///     eprintln!("warning: {w}"); // e.g. a tag filter no item passes
/// }
/// println!("{} candidates, {:?} in all; as JSON: {}", recs.candidates, recs.timings.total, recs.to_json());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Recommendations {
    /// Items, best first, at most `k`.
    pub items: Vec<Recommendation>,
    /// Candidates that reached the ranker (after fusion and filters).
    pub candidates: usize,
    /// Per-stage latency.
    pub timings: Timings,
    /// What in the request limited the answer without being an error: `k`
    /// above `rank_depth`, a required tag no item carries. Empty for most
    /// requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// How a request's latency budget was shared out and kept; `None`
    /// without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetReport>,
    /// The variant that ranked this answer, where the request named one or
    /// a user (see [`Request::variant`](Request#structfield.variant)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// How a latency budget ([`Request::budget_ms`](Request#structfield.budget_ms))
/// was shared out over the stages and what was cut to keep it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetReport {
    /// The budget.
    pub budget: Duration,
    /// Each stage's share of it (zero for a stage that did not run), from
    /// what the stage has cost on recent requests of the same kind; `total`
    /// is the budget. Compare with [`Recommendations::timings`].
    pub allotted: Timings,
    /// What was cut, in the order it was cut: narrowed beams, skipped
    /// retrievers, fewer candidates scored. Empty when nothing was.
    pub cut: Vec<String>,
    /// Whether the call returned within the budget.
    pub met: bool,
}

impl Recommendations {
    /// The compact JSON a service returns for this answer:
    /// `{"items":[{"id":..,"score":..,"sources":{"ann":{"rank":0,"score":0.93},..}},..],"candidates":..,"timings_us":{"encode":..,..,"total":..}}`.
    ///
    /// Sources are keyed by retriever name, timings are whole microseconds
    /// per stage, and an item carries `"features":{name: value}` when the
    /// request asked to explain. (The derived `Serialize` keeps the Rust
    /// shapes — lists of provenance structs, `Duration`s — which suit
    /// round-tripping, not a wire format for other languages.)
    pub fn to_json(&self) -> String {
        use serde_json::{json, Map, Value};
        let items: Vec<Value> = self
            .items
            .iter()
            .map(|r| {
                let sources: Map<String, Value> = r
                    .sources
                    .iter()
                    .map(|s| (s.retriever.name().to_string(), json!({"rank": s.rank, "score": s.score})))
                    .collect();
                let mut item = json!({"id": r.id, "score": r.score, "sources": sources});
                if let Some(f) = &r.features {
                    item["features"] = f.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<Map<_, _>>().into();
                }
                if let Some(f) = &r.fields {
                    item["fields"] = json!(f);
                }
                item
            })
            .collect();
        let micros = |d: &Duration| json!(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let per_stage = |t: &Timings| -> Map<String, Value> { t.stages().iter().map(|(n, d)| (n.to_string(), micros(d))).collect() };
        let mut out = json!({"items": items, "candidates": self.candidates, "timings_us": per_stage(&self.timings)});
        if !self.warnings.is_empty() {
            out["warnings"] = json!(self.warnings);
        }
        if let Some(v) = &self.variant {
            out["variant"] = json!(v);
        }
        if let Some(b) = &self.budget {
            out["budget"] = json!({"budget_us": micros(&b.budget), "allotted_us": per_stage(&b.allotted), "cut": b.cut, "met": b.met});
        }
        out.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_fields_and_defaults_hold() {
        let r = Request::new(Context::listening("x"))
            .k(5)
            .exclude(["a"])
            .require_tag("genre", "jazz")
            .candidates(Retriever::Popular, 0);
        assert_eq!(r.k, 5);
        assert_eq!(r.exclude, vec!["a"]);
        assert_eq!(r.candidates.popular, 0);
        assert_eq!(r.candidates.ann, CandidateCounts::default().ann);
    }

    #[test]
    fn requests_round_trip_through_json_and_reject_unknown_fields() {
        let r = Request::new(Context::history(["a", "b"])).k(3);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), r);
        let minimal: Request = serde_json::from_str(r#"{"context":{"search":{"text":"jazz"}}}"#).unwrap();
        assert_eq!(minimal.k, 10);
        assert!(serde_json::from_str::<Request>(r#"{"context":{"search":{"text":"x"}},"kk":3}"#).is_err());
    }

    #[test]
    fn nested_objects_refuse_misspelt_fields_and_partial_counts_keep_defaults() {
        // A misspelt field anywhere in the request is an error naming it, not silently ignored.
        for (bad, field) in [
            (r#"{"context":{"search":{"text":"x","txet":"y"}}}"#, "txet"),
            (r#"{"context":{"history":{"items":["a"],"decay":0.5}}}"#, "decay"),
            (
                r#"{"context":{"personalized_search":{"text":"x","history":[],"histroy":["a"]}}}"#,
                "histroy",
            ),
            (r#"{"context":{"listening":{"item":"a","itme":"b"}}}"#, "itme"),
            (
                r#"{"context":{"search":{"text":"x"}},"require_tags":[{"field":"genre","value":"jazz","op":"not"}]}"#,
                "op",
            ),
            (
                r#"{"context":{"search":{"text":"x"}},"exclude_tags":[{"feild":"genre","value":"jazz"}]}"#,
                "feild",
            ),
            (r#"{"context":{"search":{"text":"x"}},"candidates":{"lexcal":5}}"#, "lexcal"),
            (r#"{"context":{"search":{"text":"x"}},"rank_dpth":5}"#, "rank_dpth"),
        ] {
            let err = serde_json::from_str::<Request>(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("unknown field `{field}`")), "{bad}: {err}");
        }
        // Every count left out keeps its documented default.
        let partial: Request = serde_json::from_str(r#"{"context":{"search":{"text":"x"}},"candidates":{"lexical":5}}"#).unwrap();
        assert_eq!(
            partial.candidates,
            CandidateCounts {
                lexical: 5,
                ..CandidateCounts::default()
            }
        );
        let documented = CandidateCounts {
            ann: 200,
            lexical: 100,
            covisit: 200,
            popular: 50,
            content: 100,
            linear: 200,
        };
        assert_eq!(serde_json::from_str::<CandidateCounts>("{}").unwrap(), documented);
    }

    #[test]
    fn to_json_keys_sources_by_retriever_and_timings_in_microseconds() {
        let recs = Recommendations {
            items: vec![Recommendation {
                id: "t2".into(),
                score: 0.5,
                sources: vec![Provenance {
                    retriever: Retriever::Covisit,
                    rank: 3,
                    score: 2.0,
                }],
                features: Some(vec![("bias".into(), 1.0)]),
                fields: Some(BTreeMap::from([
                    ("title".to_string(), FieldValue::Text("Giant Steps".into())),
                    ("year".to_string(), FieldValue::Number(1960.0)),
                    ("genre".to_string(), FieldValue::List(vec!["jazz".into()])),
                ])),
            }],
            candidates: 7,
            timings: Timings {
                ann: Duration::from_micros(42),
                total: Duration::from_micros(100),
                ..Timings::default()
            },
            warnings: vec!["k = 300 is above rank_depth = 200".into()],
            budget: Some(BudgetReport {
                budget: Duration::from_micros(2000),
                allotted: Timings {
                    ann: Duration::from_micros(300),
                    ..Timings::default()
                },
                cut: vec!["skipped the covisit retriever".into()],
                met: true,
            }),
            variant: Some("fusion".into()),
        };
        let v: serde_json::Value = serde_json::from_str(&recs.to_json()).unwrap();
        assert_eq!(v["items"][0]["id"], "t2");
        assert_eq!(v["items"][0]["sources"]["covisit"]["rank"], 3);
        assert_eq!(v["items"][0]["features"]["bias"], 1.0);
        assert_eq!(
            v["items"][0]["fields"],
            serde_json::json!({"title": "Giant Steps", "year": 1960.0, "genre": ["jazz"]})
        );
        assert_eq!(v["candidates"], 7);
        assert_eq!(v["warnings"][0], "k = 300 is above rank_depth = 200");
        assert_eq!(v["timings_us"]["ann"], 42);
        assert_eq!(v["timings_us"]["total"], 100);
        assert_eq!(v["timings_us"].as_object().unwrap().len(), Timings::STAGES);
        assert_eq!(v["budget"]["budget_us"], 2000);
        assert_eq!(v["budget"]["allotted_us"]["ann"], 300);
        assert_eq!(v["budget"]["cut"][0], "skipped the covisit retriever");
        assert_eq!(v["budget"]["met"], true);
        assert_eq!(v["variant"], "fusion");
    }
}
