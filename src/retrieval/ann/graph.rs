//! The serialised form of an index: the vectors and the HNSW layers as CSR
//! adjacency, and the validation that every deserialised graph goes through.

use serde::{Deserialize, Serialize};

use super::{AnnError, Metric};
use crate::vector::norm_squared_f64;

/// Most layers a graph may have, layer 0 included (also the number the graph
/// builder is configured with, see `build.rs`).
pub(super) const MAX_LAYERS: usize = 16;

/// Upper bound on a vector's squared norm. With `|a|^2, |b|^2 <= MAX/4`, both
/// `|a - b|^2 <= 2|a|^2 + 2|b|^2` and `|a.b|` stay finite in `f32`, so no
/// distance can become `inf`/`NaN` (which would break heap ordering and trip
/// the graph builder's `dist >= 0` assertions).
pub(super) const MAX_NORM_SQUARED: f64 = (f32::MAX as f64) / 4.0;

/// One layer's adjacency in CSR form.
///
/// Layer 0 is dense (`nodes` is empty and node `i` is row `i`); upper layers
/// are sparse and list their member rows in `nodes`, strictly increasing, so a
/// row's slot is found by binary search. Upper layers are only walked a few
/// steps per query, so the lookup cost is irrelevant, while dense offsets for
/// every layer would cost `4 * n` bytes per layer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Csr {
    /// Member rows of a sparse (upper) layer; empty for layer 0.
    pub(super) nodes: Vec<u32>,
    /// `offsets[i]..offsets[i + 1]` indexes `neighbours` for slot `i`.
    pub(super) offsets: Vec<u32>,
    /// Neighbour rows, concatenated.
    pub(super) neighbours: Vec<u32>,
}

impl Csr {
    /// Neighbours of slot `i`; empty if out of range (never panics).
    #[inline(always)]
    pub(super) fn slot(&self, i: usize) -> &[u32] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&s), Some(&e)) => self.neighbours.get(s as usize..e as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Neighbours of `row` in a sparse layer; empty if `row` is not a member.
    #[inline]
    pub(super) fn sparse(&self, row: u32) -> &[u32] {
        match self.nodes.binary_search(&row) {
            Ok(i) => self.slot(i),
            Err(_) => &[],
        }
    }

    /// Builds a CSR from per-slot lists.
    pub(super) fn from_lists(nodes: Vec<u32>, lists: &[Vec<u32>]) -> Result<Csr, AnnError> {
        let total: usize = lists.iter().map(Vec::len).sum();
        if u32::try_from(total).is_err() {
            return Err(AnnError::InvalidInput("graph has more than u32::MAX edges".into()));
        }
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        let mut neighbours = Vec::with_capacity(total);
        offsets.push(0u32);
        for l in lists {
            neighbours.extend_from_slice(l);
            // Cannot truncate: total fits in u32 (checked above).
            offsets.push(neighbours.len() as u32);
        }
        Ok(Csr {
            nodes,
            offsets,
            neighbours,
        })
    }
}

/// Everything that is serialised. Kept separate from [`AnnIndex`] so that
/// deserialisation goes through [`AnnIndex::validate`] before an index exists.
///
/// [`AnnIndex`]: super::AnnIndex
/// [`AnnIndex::validate`]: super::AnnIndex::validate
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Graph {
    pub(super) dim: usize,
    pub(super) metric: Metric,
    pub(super) n: usize,
    /// `n * dim` values, row-major, row = internal id (normalised for Cosine).
    pub(super) vectors: Vec<f32>,
    /// Layer 0, dense.
    pub(super) base: Csr,
    /// Layers `1..=max_level`, sparse; `upper[l - 1]` is layer `l`.
    pub(super) upper: Vec<Csr>,
    /// Entry row; a member of the top layer. Meaningless when `n == 0`.
    pub(super) entry: u32,
}

impl Graph {
    /// The graph of an index with no rows.
    pub(super) fn empty(dim: usize, metric: Metric) -> Graph {
        let base = Csr {
            nodes: vec![],
            offsets: vec![0],
            neighbours: vec![],
        };
        Graph {
            dim,
            metric,
            n: 0,
            vectors: vec![],
            base,
            upper: vec![],
            entry: 0,
        }
    }

    /// Vector of `row`; empty for an out-of-range row (impossible after
    /// validate, and harmless: it just yields a meaningless distance).
    #[inline(always)]
    pub(super) fn row_vec(&self, row: u32) -> &[f32] {
        let start = row as usize * self.dim;
        self.vectors.get(start..start + self.dim).unwrap_or(&[])
    }

    /// Edges over all layers (for the `Debug` summary).
    pub(super) fn edges(&self) -> usize {
        self.base.neighbours.len() + self.upper.iter().map(|c| c.neighbours.len()).sum::<usize>()
    }

    /// The checks behind [`AnnIndex::validate`] (see there for the list).
    ///
    /// [`AnnIndex::validate`]: super::AnnIndex::validate
    pub(super) fn validate(&self) -> Result<(), AnnError> {
        let g = self;
        let bad = |m: String| Err(AnnError::Corrupt(m));
        if g.dim == 0 {
            return bad("dim is 0".into());
        }
        if g.n > i32::MAX as usize {
            return bad(format!("n = {} too large", g.n));
        }
        match g.n.checked_mul(g.dim) {
            Some(len) if len == g.vectors.len() => {}
            _ => return bad(format!("vectors.len() = {} != n * dim", g.vectors.len())),
        }
        for (row, v) in g.vectors.chunks_exact(g.dim).enumerate() {
            if v.iter().any(|x| !x.is_finite()) {
                return bad(format!("row {row} has a non-finite value"));
            }
            let n2 = norm_squared_f64(v);
            if n2 > MAX_NORM_SQUARED {
                return bad(format!("row {row} has a too large norm"));
            }
            if g.metric == Metric::Cosine && (n2 - 1.0).abs() > 1e-3 {
                return bad(format!("row {row} is not unit length under Cosine"));
            }
        }

        // level[row] = highest layer the row belongs to.
        let mut level = vec![0u8; g.n];
        check_csr(&g.base, g.n, g.n, "layer 0")?;
        if !g.base.nodes.is_empty() {
            return bad("layer 0 must be dense".into());
        }
        if g.upper.len() >= MAX_LAYERS {
            return bad(format!("{} upper layers", g.upper.len()));
        }
        for (i, layer) in g.upper.iter().enumerate() {
            let l = i + 1;
            let name = format!("layer {l}");
            check_csr(layer, layer.nodes.len(), g.n, &name)?;
            if layer.nodes.is_empty() {
                return bad(format!("{name} is empty"));
            }
            if layer.nodes.windows(2).any(|w| w[0] >= w[1]) {
                return bad(format!("{name} nodes not strictly increasing"));
            }
            for &r in &layer.nodes {
                // Nested layers: a member of layer l must be in layer l - 1.
                match level.get_mut(r as usize) {
                    Some(lv) if *lv as usize == l - 1 => *lv = l as u8,
                    Some(_) => return bad(format!("{name}: row {r} missing below")),
                    None => return bad(format!("{name}: node {r} >= n")),
                }
            }
        }
        // Neighbours must live in the layer they are listed in, otherwise
        // the descent could step onto a node with no list there.
        for (i, layer) in g.upper.iter().enumerate() {
            let l = i + 1;
            if layer
                .neighbours
                .iter()
                .any(|&r| level.get(r as usize).is_none_or(|&lv| (lv as usize) < l))
            {
                return bad(format!("layer {l} lists a neighbour outside the layer"));
            }
        }
        if g.n > 0 {
            match level.get(g.entry as usize) {
                Some(&lv) if lv as usize == g.upper.len() => {}
                _ => return bad(format!("entry point {} is not in the top layer", g.entry)),
            }
        } else if !g.upper.is_empty() {
            return bad("empty index with upper layers".into());
        }
        Ok(())
    }
}

/// Checks one CSR's shape: `slots + 1` offsets starting at 0, monotone,
/// ending at `neighbours.len()`, neighbour ids `< n`.
fn check_csr(c: &Csr, slots: usize, n: usize, name: &str) -> Result<(), AnnError> {
    let bad = |m: &str| Err(AnnError::Corrupt(format!("{name}: {m}")));
    if c.offsets.len() != slots + 1 {
        return bad("wrong number of offsets");
    }
    if c.offsets.first() != Some(&0) {
        return bad("offsets do not start at 0");
    }
    if c.offsets.windows(2).any(|w| w[0] > w[1]) {
        return bad("offsets not monotone");
    }
    if c.offsets.last().map(|&e| e as usize) != Some(c.neighbours.len()) {
        return bad("last offset != neighbour count");
    }
    if c.neighbours.iter().any(|&r| r as usize >= n) {
        return bad("neighbour id out of range");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::ann::tests::{build, clustered};
    use crate::retrieval::ann::AnnIndex;

    #[test]
    fn serde_round_trip_and_validate() {
        let idx = build(Metric::Dot);
        let json = serde_json::to_string(&idx).unwrap();
        let back: AnnIndex = serde_json::from_str(&json).unwrap();
        let q = clustered(1, 7);
        assert_eq!(
            idx.search(&q, 10, 50, |_| true).unwrap(),
            back.search(&q, 10, 50, |_| true).unwrap()
        );
        assert!(!idx.g.upper.is_empty(), "2000 points should give upper layers");

        let corrupt = |f: &dyn Fn(&mut Graph)| {
            let mut bad = idx.clone();
            f(&mut bad.g);
            let e = bad.validate();
            assert!(matches!(e, Err(AnnError::Corrupt(_))), "{e:?}");
            // Deserialising the same bytes must fail as well.
            let json = serde_json::to_string(&bad).unwrap();
            assert!(serde_json::from_str::<AnnIndex>(&json).is_err());
        };
        corrupt(&|g| g.base.neighbours[10] = 2000);
        corrupt(&|g| g.base.offsets.swap(5, 6));
        corrupt(&|g| {
            *g.base.offsets.last_mut().unwrap() += 1;
        });
        corrupt(&|g| {
            g.base.offsets.pop();
        });
        corrupt(&|g| {
            g.vectors.pop();
        });
        corrupt(&|g| g.vectors[3] = f32::NAN);
        corrupt(&|g| g.n += 1);
        corrupt(&|g| g.dim = 0);
        corrupt(&|g| g.entry = 2000);
        corrupt(&|g| {
            // An entry that exists but is not in the top layer.
            let top = &g.upper[g.upper.len() - 1].nodes;
            g.entry = (0..2000).find(|r| !top.contains(r)).unwrap();
        });
        corrupt(&|g| g.upper[0].nodes.reverse());
        corrupt(&|g| g.upper[0].neighbours[0] = 2000);
        corrupt(&|g| {
            // Neighbour on layer 1 that is not a layer-1 node.
            let nodes = g.upper[0].nodes.clone();
            g.upper[0].neighbours[0] = (0..2000).find(|r| !nodes.contains(r)).unwrap();
        });
        corrupt(&|g| {
            // Upper layer not nested in the one below.
            let last = g.upper.len() - 1;
            let below: Vec<u32> = if last == 0 { vec![] } else { g.upper[last - 1].nodes.clone() };
            let stray = (0..2000).find(|r| !below.contains(r) && !g.upper[last].nodes.contains(r)).unwrap();
            if last == 0 {
                // Only one upper layer: add an empty layer 2 instead.
                g.upper.push(Csr {
                    nodes: vec![],
                    offsets: vec![0],
                    neighbours: vec![],
                });
            } else {
                g.upper[last].nodes.push(stray);
                g.upper[last].nodes.sort_unstable();
                let end = *g.upper[last].offsets.last().unwrap();
                g.upper[last].offsets.push(end);
            }
        });
        assert!(format!("{idx:?}").len() < 200, "Debug must not dump vectors");
        let mut cos = build(Metric::Cosine);
        cos.g.vectors[0] *= 3.0;
        assert!(cos.validate().is_err());
    }
}
