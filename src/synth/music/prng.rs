//! PRNG: xoshiro256** seeded by the crate's SplitMix64, so output never
//! depends on a crate. (xoshiro, not SplitMix64 itself, because the committed
//! demo data is this generator's output byte for byte.)

pub(super) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Independent streams per generation phase keep one phase's changes from
    /// reshuffling the others.
    pub(super) fn new(seed: u64, stream: u64) -> Rng {
        let mut st = crate::rng::SplitMix64::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let s = [st.next_u64(), st.next_u64(), st.next_u64(), st.next_u64()];
        Rng { s }
    }
    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }
    /// Uniform in [0, 1).
    pub(super) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in [0, n); 0 when n == 0 so callers need no special case.
    pub(super) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
    /// Uniform in [lo, hi] (inclusive); lo when hi < lo.
    pub(super) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as usize) as u64
    }
    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    pub(super) fn pick<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        if xs.is_empty() {
            None
        } else {
            xs.get(self.below(xs.len()))
        }
    }
    /// Pareto-like heavy tail `xm * u^-0.75` computed with sqrt only.
    pub(super) fn heavy(&mut self, xm: f64) -> f64 {
        let u = 1.0 - self.f64(); // (0, 1]
        let s = u.sqrt();
        xm / (s * s.sqrt())
    }
    /// Index drawn proportionally to `weights` (uniform if all are zero).
    pub(super) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        if total.is_nan() || total <= 0.0 {
            return self.below(weights.len());
        }
        let mut r = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if r < *w {
                return i;
            }
            r -= w;
        }
        weights.len().saturating_sub(1)
    }
}

/// Zipf weight with exponent 0.75, built from sqrt so it is bit-exact everywhere.
pub(super) fn zipf075(rank: usize) -> f64 {
    let r = (rank + 1) as f64;
    let s = r.sqrt();
    1.0 / (s * s.sqrt())
}

/// Items with cumulative weights for O(log n) popularity-weighted draws.
#[derive(Default)]
pub(super) struct Cum {
    pub(super) items: Vec<u32>,
    cum: Vec<f64>,
}

impl Cum {
    pub(super) fn push(&mut self, item: u32, w: f64) {
        let last = self.cum.last().copied().unwrap_or(0.0);
        self.items.push(item);
        self.cum.push(last + w.max(0.0));
    }
    pub(super) fn sample(&self, rng: &mut Rng) -> Option<u32> {
        let total = *self.cum.last()?;
        if total.is_nan() || total <= 0.0 {
            return rng.pick(&self.items).copied();
        }
        let r = rng.f64() * total;
        let i = self.cum.partition_point(|c| *c <= r).min(self.items.len() - 1);
        self.items.get(i).copied()
    }
}
