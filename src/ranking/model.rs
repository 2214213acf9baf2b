//! The ranking model: scores a whole `[candidates × features]` matrix in one
//! forward pass of plain loops (no tensor library on the request path, so a
//! serving-only build needs no candle; training, feature `train`, uses it).
//!
//! A model is a stack of dense layers with ReLU between them: one layer is
//! the linear model, more make an MLP. Weights live in `ranker.safetensors`
//! as `layers.{i}.weight` (`[in, out]`) and `layers.{i}.bias` (`[1, out]`)
//! beside the feature standardisation `norm.mean` and `norm.inv_std`;
//! loading checks every tensor's presence, shape and values and names the
//! one that is wrong.

use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ranking::features::{FEATURES, NUM_FEATURES};

/// Which model a ranker file holds, where its weights came from, and how
/// well it did on validation data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankerInfo {
    /// Model family: `linear` or `mlp`.
    pub kind: String,
    /// `fixed-default` for the hand-set placeholder weights, `trained` for learned ones.
    pub origin: String,
    /// Feature names in column order, as the model expects them.
    pub features: Vec<String>,
    /// Widths of the hidden layers (empty for a linear model).
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Validation metrics recorded by training (name → value).
    #[serde(default)]
    pub validation: std::collections::BTreeMap<String, f64>,
}

impl RankerInfo {
    /// A trained model over the current [`FEATURES`] with these hidden
    /// layers (`linear` when none, else `mlp`), no validation recorded yet.
    pub(crate) fn trained(hidden: Vec<usize>) -> RankerInfo {
        RankerInfo {
            kind: if hidden.is_empty() { "linear" } else { "mlp" }.into(),
            origin: "trained".into(),
            features: FEATURES.iter().map(|s| s.to_string()).collect(),
            hidden,
            validation: Default::default(),
        }
    }
}

/// The hand-set weights of the placeholder ranker, by feature name.
///
/// Used until a ranker is trained on logs (an index built without events,
/// or with too few to learn from): a linear blend of normalised retrieval
/// signals (similarity, BM25, co-visitation, fusion rank, text match) with a
/// small popularity prior and a skip penalty.
pub const FIXED_DEFAULT_WEIGHTS: [(&str, f32); 22] = [
    ("ann_rank_rr", 0.5),
    ("ann_sim", 1.0),
    ("lexical_rank_rr", 1.0),
    ("lexical_score", 3.0),
    ("covisit_rank_rr", 1.0),
    ("covisit_score", 0.3),
    ("rrf", 1.0),
    ("context_sim", 1.0),
    ("covisit_context", 0.5),
    ("log_popularity", 0.3),
    ("recent_share", 0.1),
    ("skip_rate", -1.0),
    ("tag_overlap", 0.5),
    ("same_group", 0.3),
    ("title_match", 1.0),
    ("group_match", 1.0),
    ("exact_match", 1.0),
    ("content_rank_rr", 0.5),
    ("content_sim", 1.0),
    // Closeness to what the user disliked or skipped counts against.
    ("negative_sim", -0.5),
    ("negative_content_sim", -0.5),
    ("negative_tag_overlap", -0.5),
];

/// A dense layer `x · weight + bias`, scored by plain loops: the request
/// path's matrices are small (a few hundred rows, tens of columns), where a
/// tensor library's set-up costs more than the arithmetic. Each input row's
/// non-zero columns are one span, so an ensemble's block-diagonal layers
/// cost only their blocks.
#[derive(Clone)]
struct Dense {
    fan_out: usize,
    /// Row-major `[fan_in × fan_out]`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    /// Per input row, the columns `lo..hi` outside which its weights are 0.
    spans: Vec<(usize, usize)>,
}

impl Dense {
    fn new(weight: &[f32], bias: &[f32]) -> Dense {
        let fan_out = bias.len().max(1);
        let spans = weight
            .chunks_exact(fan_out)
            .map(|row| {
                let lo = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let hi = row.iter().rposition(|&w| w != 0.0).map_or(lo, |i| i + 1);
                (lo, hi)
            })
            .collect();
        Dense {
            fan_out,
            weight: weight.to_vec(),
            bias: bias.to_vec(),
            spans,
        }
    }

    /// `out = x · weight + bias`.
    fn apply(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(&self.bias);
        for ((&v, row), &(lo, hi)) in x.iter().zip(self.weight.chunks_exact(self.fan_out)).zip(&self.spans) {
            // ReLU leaves many inputs at exactly 0.
            if v == 0.0 {
                continue;
            }
            if let (Some(o), Some(w)) = (out.get_mut(lo..hi), row.get(lo..hi)) {
                o.iter_mut().zip(w).for_each(|(o, w)| *o += v * w);
            }
        }
    }
}

/// `relu(relu(z · W0 + b0) · W1 + b1) ... · Wn + bn` over standardised
/// features `z = (x - mean) · inv_std`.
#[derive(Clone)]
pub(crate) struct Ranker {
    info: RankerInfo,
    /// The standardisation: `mean` and `inv_std`, one per feature.
    norm: (Vec<f32>, Vec<f32>),
    layers: Vec<Dense>,
}

/// A candle failure during training, as the crate's error.
#[cfg(feature = "train")]
pub(crate) fn candle_error(e: candle_core::Error) -> Error {
    Error::internal_by("rank", e)
}

impl Ranker {
    /// Assembles a ranker from plain arrays: `layers` are `(weight [in × out]
    /// row-major, bias [out])`; widths must chain from `NUM_FEATURES` to 1.
    pub fn from_parts(info: RankerInfo, mean: &[f32], inv_std: &[f32], layers: &[(Vec<f32>, Vec<f32>)]) -> Result<Ranker> {
        if mean.len() != NUM_FEATURES || inv_std.len() != NUM_FEATURES || layers.is_empty() {
            return Err(Error::internal("rank", "standardisation or layers do not match the feature schema"));
        }
        let mut width = NUM_FEATURES;
        let mut out = Vec::with_capacity(layers.len());
        for (w, b) in layers {
            let next = b.len();
            if next == 0 || w.len() != width * next {
                return Err(Error::internal("rank", "layer shapes do not chain"));
            }
            out.push(Dense::new(w, b));
            width = next;
        }
        if width != 1 {
            return Err(Error::internal("rank", "the last layer must have one output"));
        }
        Ok(Ranker {
            info,
            norm: (mean.to_vec(), inv_std.to_vec()),
            layers: out,
        })
    }

    /// The documented placeholder: [`FIXED_DEFAULT_WEIGHTS`], no standardisation.
    pub fn fixed_default() -> Result<Ranker> {
        let mut w = vec![0.0f32; NUM_FEATURES];
        for (name, value) in FIXED_DEFAULT_WEIGHTS {
            if let Some(i) = FEATURES.iter().position(|f| *f == name) {
                w[i] = value;
            }
        }
        let info = RankerInfo {
            kind: "linear".into(),
            origin: "fixed-default".into(),
            features: FEATURES.iter().map(|s| s.to_string()).collect(),
            hidden: Vec::new(),
            validation: Default::default(),
        };
        Ranker::from_parts(info, &[0.0; NUM_FEATURES], &[1.0; NUM_FEATURES], &[(w, vec![0.0])])
    }

    /// What this model is.
    pub fn info(&self) -> &RankerInfo {
        &self.info
    }

    /// Replaces the recorded validation metrics.
    pub fn set_validation(&mut self, metrics: std::collections::BTreeMap<String, f64>) {
        self.info.validation = metrics;
    }

    /// Writes the weights as safetensors (`F32`, little-endian).
    pub fn save(&self, path: &Path) -> Result<()> {
        let le = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let (mean, inv_std) = &self.norm;
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = vec![
            ("norm.mean".into(), vec![1, NUM_FEATURES], le(mean)),
            ("norm.inv_std".into(), vec![1, NUM_FEATURES], le(inv_std)),
        ];
        for (i, l) in self.layers.iter().enumerate() {
            tensors.push((
                format!("layers.{i}.weight"),
                vec![l.weight.len() / l.fan_out, l.fan_out],
                le(&l.weight),
            ));
            tensors.push((format!("layers.{i}.bias"), vec![1, l.fan_out], le(&l.bias)));
        }
        let write_error = |e: safetensors::SafeTensorError| Error::io(path, std::io::Error::other(e.to_string()));
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| {
                Ok((
                    name.as_str(),
                    TensorView::new(Dtype::F32, shape.clone(), bytes).map_err(write_error)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let bytes = safetensors::serialize(views, None).map_err(write_error)?;
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
    }

    /// Loads weights written by [`Ranker::save`] from verified bytes, checking
    /// the feature schema and every tensor's shape, dtype and values.
    pub fn from_bytes(bytes: &[u8], info: RankerInfo, source: &Path) -> Result<Ranker> {
        if info.features.iter().map(String::as_str).ne(FEATURES.iter().copied()) {
            return Err(Error::corrupt(
                source,
                format!(
                    "the ranker was trained on features {:?}, this engine computes {:?}; retrain the ranker",
                    info.features, FEATURES
                ),
            ));
        }
        let expect_hidden = match info.kind.as_str() {
            "linear" => info.hidden.is_empty(),
            "mlp" => !info.hidden.is_empty(),
            other => return Err(Error::corrupt(source, format!("unknown ranker kind `{other}`"))),
        };
        if !expect_hidden || info.hidden.len() > 8 || info.hidden.iter().any(|&h| h == 0 || h > 4096) {
            return Err(Error::corrupt(
                source,
                format!("ranker kind `{}` with hidden layers {:?}", info.kind, info.hidden),
            ));
        }
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| Error::corrupt_by(source, e))?;
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = tensors
                .tensor(name)
                .map_err(|_| Error::corrupt(source, format!("tensor `{name}` is missing")))?;
            if t.shape() != shape || t.dtype() != Dtype::F32 {
                return Err(Error::corrupt(
                    source,
                    format!("tensor `{name}` is {:?} {:?}, expected F32 {shape:?}", t.dtype(), t.shape()),
                ));
            }
            // The header's offsets were checked against the shape on deserialize.
            let values: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if values.len() != shape.iter().product::<usize>() {
                return Err(Error::corrupt(
                    source,
                    format!("tensor `{name}` holds {} values for shape {shape:?}", values.len()),
                ));
            }
            if values.iter().any(|v| !v.is_finite()) {
                return Err(Error::corrupt(source, format!("tensor `{name}` holds non-finite values")));
            }
            Ok(values)
        };
        let widths: Vec<usize> = std::iter::once(NUM_FEATURES)
            .chain(info.hidden.iter().copied())
            .chain(std::iter::once(1))
            .collect();
        let mut layers = Vec::new();
        for (i, w) in widths.windows(2).enumerate() {
            layers.push((
                get(&format!("layers.{i}.weight"), &[w[0], w[1]])?,
                get(&format!("layers.{i}.bias"), &[1, w[1]])?,
            ));
        }
        if tensors.len() != 2 + 2 * layers.len() {
            return Err(Error::corrupt(source, "unexpected extra tensors"));
        }
        let mean = get("norm.mean", &[1, NUM_FEATURES])?;
        let inv_std = get("norm.inv_std", &[1, NUM_FEATURES])?;
        Ranker::from_parts(info, &mean, &inv_std, &layers).map_err(|e| Error::corrupt(source, e))
    }

    /// Scores a row-major `[rows × NUM_FEATURES]` matrix in one forward pass.
    pub fn score(&self, features: &[f32], rows: usize) -> Result<Vec<f32>> {
        if rows == 0 {
            return Ok(Vec::new());
        }
        if features.len() != rows * NUM_FEATURES {
            return Err(Error::internal(
                "rank",
                format!("{} feature values for {rows} rows", features.len()),
            ));
        }
        let (mean, inv_std) = &self.norm;
        let last = self.layers.len().saturating_sub(1);
        let (mut h, mut next) = (Vec::with_capacity(NUM_FEATURES), Vec::new());
        let scores = features
            .chunks_exact(NUM_FEATURES)
            .map(|row| {
                h.clear();
                h.extend(row.iter().zip(mean).zip(inv_std).map(|((x, m), s)| (x - m) * s));
                for (i, layer) in self.layers.iter().enumerate() {
                    layer.apply(&h, &mut next);
                    if i < last {
                        next.iter_mut().for_each(|v| *v = v.max(0.0));
                    }
                    std::mem::swap(&mut h, &mut next);
                }
                h.first().copied().unwrap_or(0.0)
            })
            .collect();
        Ok(scores)
    }

    /// The same scores through candle's tensors (the training path's
    /// arithmetic): the reference the plain loops are tested against.
    #[cfg(all(test, feature = "train"))]
    fn score_tensors(&self, features: &[f32], rows: usize) -> Result<Vec<f32>> {
        use candle_core::{Device, Tensor};
        let dev = Device::Cpu;
        let x = Tensor::from_slice(features, (rows, NUM_FEATURES), &dev).map_err(candle_error)?;
        let (mean, inv_std) = &self.norm;
        let mean = Tensor::from_slice(mean, (1, NUM_FEATURES), &dev).map_err(candle_error)?;
        let inv_std = Tensor::from_slice(inv_std, (1, NUM_FEATURES), &dev).map_err(candle_error)?;
        let mut h = x
            .broadcast_sub(&mean)
            .and_then(|x| x.broadcast_mul(&inv_std))
            .map_err(candle_error)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let weight = Tensor::from_slice(&layer.weight, (layer.weight.len() / layer.fan_out, layer.fan_out), &dev);
            let bias = Tensor::from_slice(&layer.bias, (1, layer.fan_out), &dev);
            h = weight
                .and_then(|w| h.matmul(&w))
                .and_then(|h| bias.and_then(|b| h.broadcast_add(&b)))
                .map_err(candle_error)?;
            if i + 1 < self.layers.len() {
                h = h.relu().map_err(candle_error)?;
            }
        }
        h.flatten_all().and_then(|x| x.to_vec1::<f32>()).map_err(candle_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "train")]
    fn plain_loops_score_as_candle_does() {
        let mut rng = crate::rng::SplitMix64::new(11);
        let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| (rng.next_f64() * 2.0 - 1.0) as f32).collect() };
        let rows = 37;
        let x = random(rows * NUM_FEATURES);
        let (mean, inv_std) = (random(NUM_FEATURES), random(NUM_FEATURES));
        // Dense layers, and one with zero blocks (as an ensemble's are).
        let mut blocky = random(8 * 6);
        for (k, w) in blocky.iter_mut().enumerate() {
            if (k / 6 < 4) != (k % 6 < 3) {
                *w = 0.0;
            }
        }
        for (hidden, layers) in [
            (vec![], vec![(random(NUM_FEATURES), random(1))]),
            (
                vec![8, 6],
                vec![(random(NUM_FEATURES * 8), random(8)), (blocky, random(6)), (random(6), random(1))],
            ),
        ] {
            let r = Ranker::from_parts(RankerInfo::trained(hidden), &mean, &inv_std, &layers).unwrap();
            let (a, b) = (r.score(&x, rows).unwrap(), r.score_tensors(&x, rows).unwrap());
            assert_eq!(a.len(), rows);
            for (a, b) in a.iter().zip(&b) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn fixed_default_scores_are_the_documented_dot_product() {
        let r = Ranker::fixed_default().unwrap();
        let mut x = vec![0.0f32; 2 * NUM_FEATURES];
        let sim = FEATURES.iter().position(|f| *f == "ann_sim").unwrap();
        let skip = FEATURES.iter().position(|f| *f == "skip_rate").unwrap();
        x[sim] = 0.5;
        x[NUM_FEATURES + skip] = 0.25;
        let s = r.score(&x, 2).unwrap();
        assert!((s[0] - 0.5).abs() < 1e-6 && (s[1] + 0.25).abs() < 1e-6, "{s:?}");
        assert!(r.score(&x, 3).is_err());
        assert!(r.score(&[], 0).unwrap().is_empty());
    }

    fn mlp() -> Ranker {
        let info = RankerInfo::trained(vec![3]);
        let w0: Vec<f32> = (0..NUM_FEATURES * 3).map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0).collect();
        Ranker::from_parts(
            info,
            &[0.1; NUM_FEATURES],
            &[2.0; NUM_FEATURES],
            &[(w0, vec![0.1, -0.2, 0.3]), (vec![1.0, -1.0, 0.5], vec![0.05])],
        )
        .unwrap()
    }

    #[test]
    fn mlp_forward_matches_a_hand_computation() {
        let r = mlp();
        let x: Vec<f32> = (0..NUM_FEATURES).map(|i| i as f32 / 10.0).collect();
        let z: Vec<f32> = x.iter().map(|v| (v - 0.1) * 2.0).collect();
        let mut h = [0.1f32, -0.2, 0.3];
        for (j, hj) in h.iter_mut().enumerate() {
            for (i, zi) in z.iter().enumerate() {
                *hj += zi * ((((i * 3 + j) * 7 % 11) as f32 - 5.0) / 10.0);
            }
            *hj = hj.max(0.0);
        }
        let want = h[0] - h[1] + 0.5 * h[2] + 0.05;
        let got = r.score(&x, 1).unwrap()[0];
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }

    #[test]
    fn save_load_round_trip_and_schema_check() {
        let dir = tempfile::tempdir().unwrap();
        for r in [Ranker::fixed_default().unwrap(), mlp()] {
            let path = dir.path().join("ranker.safetensors");
            r.save(&path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let back = Ranker::from_bytes(&bytes, r.info().clone(), &path).unwrap();
            let x: Vec<f32> = (0..NUM_FEATURES).map(|i| i as f32 / 10.0).collect();
            assert_eq!(back.score(&x, 1).unwrap(), r.score(&x, 1).unwrap());
            let mut other = r.info().clone();
            other.features.swap(0, 1);
            let e = Ranker::from_bytes(&bytes, other, &path).err().unwrap().to_string();
            assert!(e.contains("retrain"), "{e}");
            let mut wrong_kind = r.info().clone();
            wrong_kind.hidden = vec![5];
            wrong_kind.kind = "mlp".into();
            assert!(Ranker::from_bytes(&bytes, wrong_kind, &path).is_err());
            assert!(Ranker::from_bytes(&bytes[..bytes.len() / 2], r.info().clone(), &path).is_err());
        }
    }
}
