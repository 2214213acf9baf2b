//! Diversity after ranking: per-group caps and maximal marginal relevance
//! pick the `k` returned items from the ranked candidates, filling `k` from
//! further down the ranking where the best ones are too alike.

use std::collections::HashMap;

use super::Engine;
use crate::catalog::{Attribute, Item};
use crate::error::{Error, Result};
use crate::ranking::Candidates;
use crate::request::{GroupCap, Mmr, Request};

/// One picked item: its candidate index and, under MMR, its scaled
/// relevance and its highest similarity to the items picked before it
/// (shown by `explain`).
pub(super) struct Picked {
    pub index: usize,
    pub mmr: Option<(f32, f32)>,
}

/// Checks a request's diversity controls against the index.
pub(super) fn check(engine: &Engine, req: &Request) -> Result<()> {
    if let Some(GroupCap { key, max }) = &req.group_cap {
        if *max == 0 {
            return Err(Error::InvalidRequest(format!("group_cap on `{key}`: max must be at least 1")));
        }
        let names = &engine.field_names;
        let view = engine.live.view();
        let live = &view.overlay.fields;
        let known_here =
            |n: &str| names.attributes.contains(n) || names.tags.contains(n) || live.attributes.contains(n) || live.tags.contains(n);
        if !known_here(key) {
            let mut known: Vec<&str> = names
                .attributes
                .iter()
                .chain(&names.tags)
                .chain(&live.attributes)
                .chain(&live.tags)
                .map(String::as_str)
                .collect();
            known.sort_unstable();
            known.dedup();
            return Err(Error::InvalidRequest(format!(
                "group_cap: no item of this index has an attribute or tag field `{key}` (they have: {})",
                known.join(", ")
            )));
        }
    }
    if let Some(Mmr { lambda }) = req.mmr {
        if !(0.0..=1.0).contains(&lambda) {
            return Err(Error::InvalidRequest(format!("mmr: lambda = {lambda} is not in [0, 1]")));
        }
    }
    Ok(())
}

/// The values of `key` an item counts against: its attribute's value, or
/// each of its tags in that field.
fn group_values(item: &Item, key: &str) -> Vec<String> {
    match item.attributes.get(key) {
        Some(Attribute::Text(s)) => vec![s.clone()],
        Some(Attribute::Number(n)) => vec![n.to_string()],
        None => item.tags.get(key).cloned().unwrap_or_default(),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na > 0.0 && nb > 0.0 {
        dot / (na.sqrt() * nb.sqrt())
    } else {
        0.0
    }
}

impl Engine {
    /// The `k` items returned, in order, from candidates `ranked` (best
    /// first, by `scores`): the first `k` without diversity controls; else
    /// picked greedily, skipping items whose group is full and, under MMR,
    /// taking the best trade of relevance against likeness to those
    /// already picked. MMR costs `k × candidates` vector comparisons.
    pub(super) fn pick(&self, req: &Request, candidates: &Candidates, scores: &[f32], ranked: &[usize]) -> Vec<Picked> {
        if req.group_cap.is_none() && req.mmr.is_none() {
            return ranked.iter().take(req.k).map(|&index| Picked { index, mmr: None }).collect();
        }
        let groups: Vec<Vec<String>> = match &req.group_cap {
            Some(cap) => ranked
                .iter()
                .map(|&i| candidates.item(i).map(|item| group_values(item, &cap.key)).unwrap_or_default())
                .collect(),
            None => vec![Vec::new(); ranked.len()],
        };
        let max = req.group_cap.as_ref().map_or(usize::MAX, |c| c.max);
        let mut used: HashMap<&str, usize> = HashMap::new();
        let (lo, hi) = ranked
            .iter()
            .filter_map(|&i| scores.get(i))
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        let relevance = |i: usize| {
            let s = scores.get(i).copied().unwrap_or(lo);
            if hi > lo {
                (s - lo) / (hi - lo)
            } else {
                1.0
            }
        };
        let vectors: Vec<Option<&[f32]>> = match req.mmr {
            Some(_) => ranked
                .iter()
                .map(|&i| {
                    candidates
                        .list
                        .get(i)
                        .and_then(|c| self.vector_of(&candidates.items.overlay, c.item))
                })
                .collect(),
            None => Vec::new(),
        };
        // Per position in `ranked`: the highest similarity to a picked item.
        let mut likeness = vec![0.0f32; ranked.len()];
        let mut taken = vec![false; ranked.len()];
        let mut picked = Vec::with_capacity(req.k.min(ranked.len()));
        while picked.len() < req.k {
            let eligible = |p: usize| !taken[p] && groups[p].iter().all(|g| used.get(g.as_str()).copied().unwrap_or(0) < max);
            let next = match req.mmr {
                // Without MMR the first eligible item in ranked order.
                None => (0..ranked.len()).find(|&p| eligible(p)),
                Some(Mmr { lambda }) => (0..ranked.len())
                    .filter(|&p| eligible(p))
                    .map(|p| (p, lambda * relevance(ranked[p]) - (1.0 - lambda) * likeness[p]))
                    // The earlier in ranked order wins a tie.
                    .fold(None, |best: Option<(usize, f32)>, (p, v)| match best {
                        Some((_, b)) if b >= v => best,
                        _ => Some((p, v)),
                    })
                    .map(|(p, _)| p),
            };
            let Some(p) = next else { break };
            taken[p] = true;
            for g in &groups[p] {
                *used.entry(g.as_str()).or_insert(0) += 1;
            }
            picked.push(Picked {
                index: ranked[p],
                mmr: req.mmr.map(|_| (relevance(ranked[p]), likeness[p])),
            });
            if let (Some(_), Some(Some(v))) = (req.mmr, vectors.get(p)) {
                for (q, w) in vectors.iter().enumerate() {
                    if let (false, Some(w)) = (taken[q], w) {
                        likeness[q] = likeness[q].max(cosine(v, w));
                    }
                }
            }
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_counts_against_its_attribute_or_each_of_its_tags() {
        let mut item = Item::new("a", "t");
        item.attributes.insert("artist".into(), Attribute::Text("X".into()));
        item.attributes.insert("year".into(), Attribute::Number(1999.0));
        item.tags.insert("genre".into(), vec!["jazz".into(), "soul".into()]);
        assert_eq!(group_values(&item, "artist"), ["X"]);
        assert_eq!(group_values(&item, "year"), ["1999"]);
        assert_eq!(group_values(&item, "genre"), ["jazz", "soul"]);
        assert!(group_values(&item, "album").is_empty());
    }

    #[test]
    fn cosine_of_parallel_orthogonal_and_zero_vectors() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}
