//! Request validation and id resolution: a [`Request`] becomes a
//! [`Resolved`] context (analysed terms, weighted internal ids, one compiled
//! filter) or a caller error naming what is wrong.

use std::collections::HashMap;
use std::sync::Arc;

use super::Engine;
use crate::error::{Error, Result};
use crate::request::{Context, Request, Retriever, TagFilter, MAX_CANDIDATES, MAX_FIELDS, MAX_HISTORY, MAX_K};
use crate::retrieval::lexical;

use super::ranges::{Bounds, Span};
use crate::overlay::Overlay;

/// Largest rank depth a request may ask for.
const MAX_RANK_DEPTH: usize = 10_000;

/// The filter every retriever applies: deleted items, excluded ids, context items, tag and range conditions.
pub(crate) type Filter = Arc<dyn Fn(u32) -> bool + Send + Sync>;

/// A request with every id resolved and every filter compiled.
#[derive(Clone)]
pub(crate) struct Resolved {
    /// The search's words as written (the ranker's match features).
    pub terms: Vec<String>,
    /// The search's terms through the text index's analyzers (BM25F).
    pub search_terms: Vec<String>,
    /// Catalog-wide BM25 statistics to score the search with, checked
    /// against `search_terms`.
    pub text_statistics: Option<crate::request::TextStatistics>,
    /// Context items with recency weights, most recent first (weight 1).
    pub items: Vec<(u32, f32)>,
    /// The request's negatives this index holds, most recent first, once each.
    pub negatives: Vec<u32>,
    pub filter: Filter,
    pub has_text: bool,
    /// The request gave its learned-space context vector: nothing derives one.
    pub vector_given: bool,
    /// A `listening` context (one item, more like it).
    pub listening: bool,
    /// What limits the answer without being an error (see `Recommendations::warnings`).
    pub warnings: Vec<String>,
    /// Play and skip counts, with the events recorded live up to the
    /// request's start.
    pub popularity: Arc<crate::retrieval::popular::Popularity>,
    /// Co-visitation counted from live plays, added to the built lists.
    pub live_covisit: Arc<crate::live::covisit::LiveCovisit>,
    /// No built item can pass the filter (it asks for a tag or a range only
    /// live records have): the vector retrievers scan the live records
    /// alone rather than walk a graph none of whose rows pass.
    pub no_built: bool,
    /// The catalog as of the request's start: the built store under the
    /// live records.
    pub catalog: crate::overlay::Items,
    /// The text index as of the request's start.
    pub text: crate::retrieval::lexical::TextSnapshot,
    /// Where the request has range filters, the items inside the narrowest
    /// one (a superset of those the filter passes): the rows the vector
    /// retrievers scan exactly when there are few.
    pub narrowest: Option<Span>,
}

/// `k` must ask for at least one item: `k = 0` is a caller's mistake (an
/// unset or mis-parsed count) that an empty list would hide.
pub(super) fn check_k(k: usize) -> Result<()> {
    match k {
        0 => Err(Error::InvalidRequest("k = 0 asks for no items (k must be at least 1)".into())),
        k if k > MAX_K => Err(Error::InvalidRequest(format!("k = {k} is above the limit of {MAX_K}"))),
        _ => Ok(()),
    }
}

impl Engine {
    /// The internal id of `id`, built or added live by the writes in `o`.
    pub(super) fn resolve_id(&self, o: &Overlay, id: &str) -> Result<u32> {
        self.id_of(o, id).ok_or_else(|| Error::UnknownItem(id.to_string()))
    }

    pub(super) fn resolve(&self, req: &Request) -> Result<Resolved> {
        check_k(req.k)?;
        // The live writes as of now: the request keeps this view throughout.
        let view = self.live.view();
        let overlay = &view.overlay;
        if Retriever::ALL.iter().any(|&r| req.candidates.get(r) > MAX_CANDIDATES) || req.rank_depth > MAX_RANK_DEPTH {
            return Err(Error::InvalidRequest(format!(
                "candidate counts are limited to {MAX_CANDIDATES} per retriever and rank_depth to {MAX_RANK_DEPTH}"
            )));
        }
        if let Some(v) = &req.context_vector {
            let dim = self.ann.dim();
            if v.len() != dim {
                return Err(Error::InvalidRequest(format!(
                    "context_vector has {} dimensions; the index's learned space has {dim}",
                    v.len()
                )));
            }
            // Its squared norm finite too: in an inner-product space the
            // vector is used as given, and a huge one overflows every score.
            let norm: f32 = v.iter().map(|x| x * x).sum();
            if !norm.is_finite() || v.iter().all(|&x| x == 0.0) {
                return Err(Error::InvalidRequest("context_vector must be finite and not all zero".into()));
            }
        }
        if req.fields.len() > MAX_FIELDS {
            return Err(Error::InvalidRequest(format!(
                "{} fields asked for; at most {MAX_FIELDS}",
                req.fields.len()
            )));
        }
        if let Some(unknown) = req.fields.iter().find(|f| !self.field_names.knows(f, &overlay.fields)) {
            return Err(Error::InvalidRequest(format!(
                "no item of this index has a field `{unknown}` (fields: {})",
                self.field_names.list(&overlay.fields)
            )));
        }
        super::diversity::check(self, req)?;
        super::rules::check(self, overlay, req)?;
        super::variants::choose(req)?;
        let session_items: Vec<String>;
        let (text, history): (Option<&str>, &[String]) = match &req.context {
            Context::Search { text } => (Some(text), &[]),
            Context::Listening { item } => (None, std::slice::from_ref(item)),
            Context::History { items } => (None, items),
            Context::PersonalizedSearch { text, history } => (Some(text), history),
            Context::Session { text, playing, history } => {
                if text.is_none() && playing.is_none() && history.is_empty() {
                    return Err(Error::InvalidRequest(
                        "a session context needs a text, a playing item or a history".into(),
                    ));
                }
                // The playing item is the most recent context item.
                session_items = history.iter().chain(playing).cloned().collect();
                (text.as_deref(), &session_items[..])
            }
        };
        if matches!(req.context, Context::History { .. }) && history.is_empty() {
            return Err(Error::InvalidRequest("a history context needs at least one item".into()));
        }
        if !(req.history_decay > 0.0 && req.history_decay <= 1.0) {
            return Err(Error::InvalidRequest(format!(
                "history_decay = {} is not in (0, 1]",
                req.history_decay
            )));
        }
        if history.len() > MAX_HISTORY {
            return Err(Error::InvalidRequest(format!(
                "history of {} items is above the limit of {MAX_HISTORY}",
                history.len()
            )));
        }
        if req.negatives.len() > MAX_HISTORY {
            return Err(Error::InvalidRequest(format!(
                "{} negatives; at most {MAX_HISTORY}",
                req.negatives.len()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        let negatives: Vec<u32> = req
            .negatives
            .iter()
            .rev()
            .filter_map(|id| self.id_of(overlay, id))
            .filter(|&item| seen.insert(item))
            .collect();
        let (terms, search_terms) = match text {
            Some(t) if t.trim().is_empty() => return Err(Error::InvalidRequest("the search text is empty".into())),
            Some(t) => (lexical::analyze(t), self.text.query_terms(t)),
            None => (Vec::new(), Vec::new()),
        };
        // Checked against this index's own statistics of the same terms, and
        // cut to them: a request may carry any number of terms.
        let text_statistics = match &req.text_statistics {
            None => None,
            Some(_) if text.is_none() => {
                return Err(Error::InvalidRequest(
                    "text_statistics score a search; this request has none".into(),
                ));
            }
            Some(s) => Some(
                s.checked_against(&self.text.statistics(&view.text, &search_terms)?, overlay.documents())
                    .map_err(Error::InvalidRequest)?,
            ),
        };
        // Most recent last: weight decays towards the past; a repeated item
        // keeps its most recent weight and place.
        let mut last: HashMap<u32, (usize, f32)> = HashMap::new();
        let len = history.len();
        for (pos, id) in history.iter().enumerate() {
            let item = self.resolve_id(overlay, id)?;
            let w = req.history_decay.powi(i32::try_from(len - 1 - pos).unwrap_or(i32::MAX));
            last.insert(item, (pos, w));
        }
        // Most recent first, also when the weights tie (a decay of 1): the
        // features compare candidates with the most recent items.
        let mut items: Vec<(usize, u32, f32)> = last.into_iter().map(|(item, (pos, w))| (pos, item, w)).collect();
        items.sort_unstable_by_key(|x| std::cmp::Reverse(x.0));
        let items: Vec<(u32, f32)> = items.into_iter().map(|(_, item, w)| (item, w)).collect();

        let mut excluded: Vec<u32> = req.exclude.iter().filter_map(|id| self.id_of(overlay, id)).collect();
        excluded.extend(items.iter().map(|&(i, _)| i));
        excluded.extend(&negatives);
        excluded.sort_unstable();
        excluded.dedup();
        // A tag as the built tag table knows it (none if no built item has
        // it), and by value for the live records.
        let tag = |f: &TagFilter| -> Result<(Option<u32>, String, String)> {
            if !self.manifest.schema.tag_fields.contains(&f.field) {
                return Err(Error::InvalidRequest(format!(
                    "`{}` is not a tag field of this index (tag fields: {})",
                    f.field,
                    self.manifest.schema.tag_fields.join(", ")
                )));
            }
            Ok((self.store.tags.id(&f.field, &f.value), f.field.clone(), f.value.clone()))
        };
        let mut warnings = Vec::new();
        if req.k > req.rank_depth {
            warnings.push(format!(
                "k = {} is above rank_depth = {}: at most {} items come back (raise rank_depth for more)",
                req.k, req.rank_depth, req.rank_depth
            ));
        }
        let mut require = Vec::new();
        let mut impossible = false;
        let mut no_built = false;
        for f in &req.require_tags {
            let t = tag(f)?;
            no_built |= t.0.is_none();
            if t.0.is_none() && !overlay.records().any(|(_, r)| r.has_tag(&t.1, &t.2)) {
                // No item has that tag: nothing can pass.
                impossible = true;
                warnings.push(format!(
                    "no item has the tag {} = `{}`: nothing can pass require_tags",
                    f.field, f.value
                ));
            }
            require.push(t);
        }
        let forbid: Vec<(Option<u32>, String, String)> = req.exclude_tags.iter().map(tag).collect::<Result<_>>()?;
        if req.range.len() > MAX_FIELDS {
            return Err(Error::InvalidRequest(format!(
                "{} range filters; at most {MAX_FIELDS}",
                req.range.len()
            )));
        }
        let ranges: Vec<(Bounds, String)> = req
            .range
            .iter()
            .map(|f| Ok((self.numbers.bounds(f)?, f.attr.clone())))
            .collect::<Result<_>>()?;
        let narrowest = ranges.iter().map(|(b, _)| self.numbers.span(b)).min_by_key(Span::len);
        let live_in_range = || {
            overlay
                .records()
                .any(|(_, r)| ranges.iter().all(|(b, attr)| r.number(attr).is_some_and(|v| b.admits(v))))
        };
        no_built |= narrowest.is_some_and(|s| s.len() == 0);
        if narrowest.is_some_and(|s| s.len() == 0) && !live_in_range() {
            impossible = true;
            warnings.push("no item lies within the range filters: nothing can pass".into());
        }
        let store = Arc::clone(&self.store);
        let numbers = Arc::clone(&self.numbers);
        let deleted = Arc::clone(&view.deleted);
        let live = Arc::clone(&view.overlay);
        let filter: Filter = Arc::new(move |item: u32| {
            if impossible || deleted.contains(item) || excluded.binary_search(&item).is_ok() {
                return false;
            }
            match live.record(item) {
                // A live record is checked by value: its tags and numbers
                // are not in the built tables.
                Some(r) => {
                    require.iter().all(|(_, f, v)| r.has_tag(f, v))
                        && !forbid.iter().any(|(_, f, v)| r.has_tag(f, v))
                        && ranges.iter().all(|(b, attr)| r.number(attr).is_some_and(|v| b.admits(v)))
                }
                None => {
                    (item as usize) < store.len()
                        && require.iter().all(|(t, ..)| t.is_some_and(|t| store.tags.has(item, t)))
                        && !forbid.iter().any(|(t, ..)| t.is_some_and(|t| store.tags.has(item, t)))
                        && ranges.iter().all(|(b, _)| numbers.admits(b, item))
                }
            }
        });
        Ok(Resolved {
            terms,
            search_terms,
            text_statistics,
            items,
            negatives,
            filter,
            has_text: text.is_some(),
            vector_given: req.context_vector.is_some(),
            // More like the item playing now, where there is no text.
            listening: match &req.context {
                Context::Listening { .. } => true,
                Context::Session { text, playing, .. } => text.is_none() && playing.is_some(),
                _ => false,
            },
            warnings,
            narrowest,
            popularity: Arc::clone(&view.popularity),
            live_covisit: Arc::clone(&view.covisit),
            no_built,
            catalog: self.items_now(&view),
            text: view.text.clone(),
        })
    }
}
