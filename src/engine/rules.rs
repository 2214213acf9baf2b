//! Rules after the learned ranker: boosts and burials by tag or attribute,
//! recency by a number attribute, and pins. Boosts and recency add their
//! terms to the served score scaled to [0, 1] over the candidates, so their
//! weights mean the same whatever the ranker's scale; pins place items last.

use std::collections::HashSet;

use super::retrievers::Signals;
use super::Engine;
use crate::catalog::{Attribute, Item};
use crate::error::{Error, Result};
use crate::ranking::Candidates;
use crate::request::{Boost, Pin, Recency, Request, Retriever, MAX_FIELDS, MAX_K};
use crate::retrieval::fusion::Candidate;

/// A candidate's score after the rules, with its terms (shown by `explain`).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Terms {
    /// The served score scaled to [0, 1] over the candidates.
    pub relevance: f32,
    /// The sum of the matching boosts' weights.
    pub boost: f32,
    /// The recency term.
    pub recency: f32,
}

impl Terms {
    pub fn total(&self) -> f32 {
        self.relevance + self.boost + self.recency
    }
}

/// Checks a request's rules against the index.
pub(super) fn check(engine: &Engine, overlay: &crate::overlay::Overlay, req: &Request) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidRequest(m));
    if req.boosts.len() > MAX_FIELDS {
        return bad(format!("{} boosts; at most {MAX_FIELDS}", req.boosts.len()));
    }
    for Boost { field, weight, .. } in &req.boosts {
        let names = &engine.field_names;
        if !names.attributes.contains(field) && !names.tags.contains(field) {
            return bad(format!("boosts: no item of this index has an attribute or tag field `{field}`"));
        }
        if !weight.is_finite() {
            return bad(format!("boosts on `{field}`: the weight {weight} is not finite"));
        }
    }
    if let Some(Recency {
        attr,
        half_life,
        weight,
        now,
    }) = &req.recency
    {
        if engine.numbers.column(attr).is_none() {
            return bad(format!(
                "recency: `{attr}` is not a number attribute of this index (number attributes: {})",
                engine.numbers.names()
            ));
        }
        let valid = half_life.is_finite() && *half_life > 0.0 && weight.is_finite() && now.is_none_or(f64::is_finite);
        if !valid {
            return bad(format!("recency on `{attr}`: half_life must be positive and weight and now finite"));
        }
    }
    let mut ids = HashSet::new();
    let mut positions = HashSet::new();
    for Pin { id, position } in &req.pins {
        if *position >= MAX_K {
            return bad(format!("pins: position {position} of `{id}` is above the limit of {MAX_K}"));
        }
        if !ids.insert(id.as_str()) || !positions.insert(*position) {
            return bad(format!("pins: `{id}` or position {position} is pinned twice"));
        }
        engine.resolve_id(overlay, id)?;
    }
    Ok(())
}

/// Whether `item`'s tag field or attribute `field` holds `value`.
fn matches(item: &Item, field: &str, value: &str) -> bool {
    match item.attributes.get(field) {
        Some(Attribute::Text(s)) => s == value,
        Some(Attribute::Number(n)) => value.parse::<f64>().is_ok_and(|v| v == *n),
        None => item.tags.get(field).is_some_and(|vs| vs.iter().any(|v| v == value)),
    }
}

impl Engine {
    /// Every candidate's terms under the request's boosts and recency;
    /// `None` where it has neither (the served scores stand).
    pub(super) fn apply_rules(&self, req: &Request, candidates: &Candidates, scores: &[f32]) -> Option<Vec<Terms>> {
        if req.boosts.is_empty() && req.recency.is_none() {
            return None;
        }
        let (lo, hi) = scores
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        let recency = req.recency.as_ref().and_then(|r| {
            let column = self.numbers.column(&r.attr)?;
            // The newest value, built or live.
            let live = candidates.items.overlay.records().filter_map(|(_, rec)| rec.number(&r.attr));
            let newest = self.numbers.newest(column).into_iter().chain(live).reduce(f64::max);
            let now = r.now.or(newest)?;
            Some((now, r))
        });
        Some(
            (0..scores.len())
                .map(|i| {
                    let relevance = if hi > lo { (scores[i] - lo) / (hi - lo) } else { 1.0 };
                    let Some(item) = candidates.item(i) else {
                        return Terms {
                            relevance,
                            ..Terms::default()
                        };
                    };
                    let boost = req
                        .boosts
                        .iter()
                        .filter(|b| matches(item, &b.field, &b.value))
                        .map(|b| b.weight)
                        .sum();
                    let recency = recency
                        .and_then(|(now, r)| {
                            let value = item.attributes.get(&r.attr)?.as_number().filter(|v| v.is_finite())?;
                            Some(r.weight * (-(now - value) / r.half_life).exp2() as f32)
                        })
                        .filter(|t| t.is_finite())
                        .unwrap_or(0.0);
                    Terms { relevance, boost, recency }
                })
                .collect(),
        )
    }

    /// Pinned items that pass the request's filters join the candidates
    /// (with no retriever's hit) where no retriever found them; one that
    /// does not pass is reported in the warnings and not pinned.
    pub(super) fn add_pinned(&self, req: &Request, signals: &mut Signals, candidates: &mut Vec<Candidate>) -> Result<()> {
        for pin in &req.pins {
            let item = self.resolve_id(&signals.ctx.catalog.overlay, &pin.id)?;
            if candidates.iter().any(|c| c.item == item) {
                continue;
            }
            if (signals.ctx.filter)(item) {
                candidates.push(Candidate {
                    item,
                    hits: [None; Retriever::ALL.len()],
                    rrf: 0.0,
                });
            } else {
                signals.ctx.warnings.push(format!(
                    "pinned item `{}` does not pass the request's filters (or is in its context): not pinned",
                    pin.id
                ));
            }
        }
        Ok(())
    }

    /// `picked` (candidate indices in list order) with the request's pinned
    /// candidates moved to their positions, cut to `k`.
    pub(super) fn place_pins(&self, req: &Request, candidates: &Candidates, mut picked: Vec<usize>) -> Vec<usize> {
        if req.pins.is_empty() {
            picked.truncate(req.k);
            return picked;
        }
        let index_of = |id: &str| (0..candidates.len()).find(|&i| candidates.item(i).is_some_and(|it| it.id == id));
        let mut pins: Vec<(usize, usize)> = req.pins.iter().filter_map(|p| Some((p.position, index_of(&p.id)?))).collect();
        pins.sort_unstable();
        picked.retain(|i| !pins.iter().any(|(_, p)| p == i));
        for (position, i) in pins {
            picked.insert(position.min(picked.len()), i);
        }
        picked.truncate(req.k);
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boost_matches_a_text_or_number_attribute_or_any_tag() {
        let mut item = Item::new("a", "t");
        item.attributes.insert("artist".into(), Attribute::Text("X".into()));
        item.attributes.insert("year".into(), Attribute::Number(1999.0));
        item.tags.insert("genre".into(), vec!["jazz".into(), "soul".into()]);
        assert!(matches(&item, "artist", "X") && !matches(&item, "artist", "x"));
        assert!(matches(&item, "year", "1999") && matches(&item, "year", "1999.0") && !matches(&item, "year", "2000"));
        assert!(matches(&item, "genre", "soul") && !matches(&item, "genre", "rock"));
        assert!(!matches(&item, "album", "X"));
    }
}
