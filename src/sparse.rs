//! A compressed sparse row matrix of `f32`, the shape of every per-item list
//! (co-visitation neighbours, co-occurrence counts).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Rows `0..n`, each a list of (column, value).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Csr {
    offsets: Vec<u64>,
    cols: Vec<u32>,
    vals: Vec<f32>,
}

impl Csr {
    /// Sums duplicate (row, col) triplets; rows end up sorted by column.
    /// Triplets with `row >= n` or `col >= n_cols` are dropped (callers pass
    /// ids they produced, so this never triggers; it keeps the invariant).
    pub fn from_triplets(n: usize, n_cols: usize, mut t: Vec<(u32, u32, f32)>) -> Csr {
        t.retain(|&(r, c, _)| (r as usize) < n && (c as usize) < n_cols);
        t.par_sort_unstable_by_key(|&(r, c, _)| (r, c));
        let mut offsets = vec![0u64; n + 1];
        let mut cols = Vec::with_capacity(t.len());
        let mut vals: Vec<f32> = Vec::with_capacity(t.len());
        let mut last: Option<(u32, u32)> = None;
        for (r, c, v) in t {
            if last == Some((r, c)) {
                if let Some(x) = vals.last_mut() {
                    *x += v;
                }
                continue;
            }
            last = Some((r, c));
            cols.push(c);
            vals.push(v);
            offsets[r as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        Csr { offsets, cols, vals }
    }

    /// Builds from rows given whole (each row's entries in the order wanted).
    pub fn from_rows(rows: Vec<Vec<(u32, f32)>>) -> Csr {
        let mut offsets = Vec::with_capacity(rows.len() + 1);
        offsets.push(0u64);
        let total = rows.iter().map(Vec::len).sum();
        let mut cols = Vec::with_capacity(total);
        let mut vals = Vec::with_capacity(total);
        for row in rows {
            for (c, v) in row {
                cols.push(c);
                vals.push(v);
            }
            offsets.push(cols.len() as u64);
        }
        Csr { offsets, cols, vals }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Stored entries.
    pub fn nnz(&self) -> usize {
        self.cols.len()
    }

    /// Row `i` as parallel slices; empty for an out-of-range row.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (Some(&a), Some(&b)) = (self.offsets.get(i), self.offsets.get(i + 1)) else {
            return (&[], &[]);
        };
        let (a, b) = (a as usize, b as usize);
        match (self.cols.get(a..b), self.vals.get(a..b)) {
            (Some(c), Some(v)) => (c, v),
            _ => (&[], &[]),
        }
    }

    /// Sums `weight × row` over `(row, weight)` pairs into one value per
    /// column reached (the shape of every per-item list lookup).
    pub fn weighted_sum(&self, rows: &[(u32, f32)]) -> std::collections::HashMap<u32, f32> {
        let mut out = std::collections::HashMap::with_capacity(rows.len() * 64);
        for &(row, w) in rows {
            let (cols, vals) = self.row(row as usize);
            for (&c, &v) in cols.iter().zip(vals) {
                *out.entry(c).or_insert(0.0) += w * v;
            }
        }
        out
    }

    /// Sum of each row's values.
    pub fn row_sums(&self) -> Vec<f32> {
        (0..self.rows()).map(|i| self.row(i).1.iter().sum()).collect()
    }

    /// Applies `f(row, col, value)` to every value in place.
    pub fn map_values(&mut self, f: impl Fn(usize, u32, f32) -> f32 + Sync) {
        let offsets = &self.offsets;
        let cols = &self.cols;
        // Row-major walk; rows are independent, values are disjoint.
        let mut row = 0usize;
        for (k, v) in self.vals.iter_mut().enumerate() {
            while offsets.get(row + 1).is_some_and(|&end| end as usize <= k) {
                row += 1;
            }
            *v = f(row, cols[k], *v);
        }
    }

    /// Checks the invariants after decoding untrusted bytes: `rows` rows,
    /// monotone offsets ending at the entry count, columns below `n_cols`,
    /// finite values.
    pub fn validate(&self, rows: usize, n_cols: usize) -> Result<(), String> {
        if self.offsets.len() != rows + 1 {
            return Err(format!("{} row offsets for {rows} rows", self.offsets.len()));
        }
        if self.cols.len() != self.vals.len() {
            return Err("column and value arrays differ in length".into());
        }
        if self.offsets.first() != Some(&0) || self.offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err("row offsets are not monotone from 0".into());
        }
        if self.offsets.last().copied() != Some(self.cols.len() as u64) {
            return Err("row offsets do not end at the entry count".into());
        }
        if self.cols.iter().any(|&c| c as usize >= n_cols) {
            return Err("column id out of range".into());
        }
        if self.vals.iter().any(|v| !v.is_finite()) {
            return Err("non-finite value".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triplets_are_summed_and_sorted() {
        let m = Csr::from_triplets(3, 3, vec![(2, 1, 1.0), (0, 2, 1.0), (2, 1, 2.0), (2, 0, 5.0), (9, 0, 1.0)]);
        assert_eq!(m.rows(), 3);
        assert_eq!(m.row(0), (&[2u32][..], &[1.0f32][..]));
        assert_eq!(m.row(1), (&[][..], &[][..]));
        assert_eq!(m.row(2), (&[0u32, 1][..], &[5.0f32, 3.0][..]));
        assert_eq!(m.row(7), (&[][..], &[][..]));
        assert!(m.validate(3, 3).is_ok());
        assert!(m.validate(3, 2).is_err());
        assert!(m.validate(4, 3).is_err());
    }

    #[test]
    fn map_values_sees_the_right_row() {
        let mut m = Csr::from_triplets(3, 3, vec![(0, 1, 1.0), (2, 0, 1.0), (2, 2, 1.0)]);
        m.map_values(|r, c, v| v + 10.0 * r as f32 + c as f32);
        assert_eq!(m.row(0).1, &[2.0]);
        assert_eq!(m.row(2).1, &[21.0, 23.0]);
    }
}
