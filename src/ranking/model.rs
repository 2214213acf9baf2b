//! The ranking model: scores a whole `[candidates × features]` matrix in one
//! candle forward pass.
//!
//! Weights live in `ranker.safetensors` under fixed tensor names with their
//! feature standardisation; loading checks every tensor's presence and
//! shape and names the one that is wrong.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ranking::features::{FEATURES, NUM_FEATURES};

/// Which model a ranker file holds and where its weights came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankerInfo {
    /// Model family: `linear`.
    pub kind: String,
    /// `fixed-default` for the hand-set placeholder weights; `trained` otherwise.
    pub origin: String,
    /// Feature names in column order, as the model expects them.
    pub features: Vec<String>,
}

/// The hand-set weights of [`Ranker::fixed_default`], by feature name.
///
/// This is an honest placeholder until a ranker is trained on logs: a linear
/// blend of normalised retrieval signals (similarity, BM25, co-visitation,
/// fusion rank) with a small popularity prior and a skip penalty.
pub const FIXED_DEFAULT_WEIGHTS: [(&str, f32); 17] = [
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
];

/// A linear scorer `((x - mean) / std) · w + b` over the feature schema.
pub(crate) struct Ranker {
    info: RankerInfo,
    mean: Tensor,
    inv_std: Tensor,
    weight: Tensor,
    bias: Tensor,
}

fn candle_error(e: candle_core::Error) -> Error {
    Error::internal("rank", e)
}

impl Ranker {
    /// The documented placeholder: [`FIXED_DEFAULT_WEIGHTS`], no standardisation.
    pub fn fixed_default() -> Result<Ranker> {
        let mut w = [0.0f32; NUM_FEATURES];
        for (name, value) in FIXED_DEFAULT_WEIGHTS {
            if let Some(i) = FEATURES.iter().position(|f| *f == name) {
                w[i] = value;
            }
        }
        let dev = Device::Cpu;
        let t = |v: &[f32], shape: (usize, usize)| Tensor::from_slice(v, shape, &dev).map_err(candle_error);
        Ok(Ranker {
            info: RankerInfo {
                kind: "linear".into(),
                origin: "fixed-default".into(),
                features: FEATURES.iter().map(|s| s.to_string()).collect(),
            },
            mean: t(&[0.0; NUM_FEATURES], (1, NUM_FEATURES))?,
            inv_std: t(&[1.0; NUM_FEATURES], (1, NUM_FEATURES))?,
            weight: t(&w, (NUM_FEATURES, 1))?,
            bias: t(&[0.0], (1, 1))?,
        })
    }

    /// What this model is.
    pub fn info(&self) -> &RankerInfo {
        &self.info
    }

    /// Writes the weights as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: HashMap<String, Tensor> = [
            ("norm.mean", &self.mean),
            ("norm.inv_std", &self.inv_std),
            ("linear.weight", &self.weight),
            ("linear.bias", &self.bias),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
        candle_core::safetensors::save(&tensors, path).map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
    }

    /// Loads weights written by [`Ranker::save`] from verified bytes, checking
    /// the feature schema and every tensor's shape and dtype.
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
        if info.kind != "linear" {
            return Err(Error::corrupt(source, format!("unknown ranker kind `{}`", info.kind)));
        }
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| Error::corrupt(source, e))?;
        let get = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let t = tensors.get(name).ok_or_else(|| Error::corrupt(source, format!("tensor `{name}` is missing")))?;
            if t.dims() != shape || t.dtype() != DType::F32 {
                return Err(Error::corrupt(
                    source,
                    format!("tensor `{name}` is {:?} {:?}, expected F32 {shape:?}", t.dtype(), t.dims()),
                ));
            }
            let values = t.flatten_all().and_then(|f| f.to_vec1::<f32>()).map_err(candle_error)?;
            if values.iter().any(|v| !v.is_finite()) {
                return Err(Error::corrupt(source, format!("tensor `{name}` holds non-finite values")));
            }
            Ok(t.clone())
        };
        Ok(Ranker {
            mean: get("norm.mean", &[1, NUM_FEATURES])?,
            inv_std: get("norm.inv_std", &[1, NUM_FEATURES])?,
            weight: get("linear.weight", &[NUM_FEATURES, 1])?,
            bias: get("linear.bias", &[1, 1])?,
            info,
        })
    }

    /// Scores a row-major `[rows × NUM_FEATURES]` matrix in one forward pass.
    pub fn score(&self, features: &[f32], rows: usize) -> Result<Vec<f32>> {
        if rows == 0 {
            return Ok(Vec::new());
        }
        if features.len() != rows * NUM_FEATURES {
            return Err(Error::internal("rank", format!("{} feature values for {rows} rows", features.len())));
        }
        let x = Tensor::from_slice(features, (rows, NUM_FEATURES), &Device::Cpu).map_err(candle_error)?;
        let scores = x
            .broadcast_sub(&self.mean)
            .and_then(|x| x.broadcast_mul(&self.inv_std))
            .and_then(|x| x.matmul(&self.weight))
            .and_then(|x| x.broadcast_add(&self.bias))
            .and_then(|x| x.flatten_all())
            .and_then(|x| x.to_vec1::<f32>())
            .map_err(candle_error)?;
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn save_load_round_trip_and_schema_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ranker.safetensors");
        let r = Ranker::fixed_default().unwrap();
        r.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let back = Ranker::from_bytes(&bytes, r.info().clone(), &path).unwrap();
        let x: Vec<f32> = (0..NUM_FEATURES).map(|i| i as f32 / 10.0).collect();
        assert_eq!(back.score(&x, 1).unwrap(), r.score(&x, 1).unwrap());
        let mut other = r.info().clone();
        other.features.swap(0, 1);
        let e = Ranker::from_bytes(&bytes, other, &path).err().unwrap().to_string();
        assert!(e.contains("retrain"), "{e}");
        assert!(Ranker::from_bytes(&bytes[..bytes.len() / 2], r.info().clone(), &path).is_err());
    }
}
