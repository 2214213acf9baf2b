//! Training the ranker (feature `train`): a listwise softmax cross-entropy
//! over each request's candidates (ListNet with one-hot or graded targets),
//! AdamW, mini-batches, early stopping on validation NDCG@10, a fixed seed;
//! and an ensemble of such models trained from different seeds, served as
//! one model whose score is their mean.

use std::collections::{BTreeMap, HashMap};

use candle_core::{Device, Tensor, Var, D};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};

use crate::error::{Error, Result};
use crate::metrics::{Metrics, MetricsMean};
use crate::ranking::features::NUM_FEATURES;
use crate::ranking::model::{candle_error, Ranker, RankerInfo};
use crate::ranking::train::{EpochReport, ListExample, ModelKind, TrainParams};
use crate::rng::SplitMix64;

/// NDCG@10 of `ranker` over lists with at least one relevant candidate.
pub(crate) fn list_ndcg(ranker: &Ranker, lists: &[ListExample]) -> Result<f64> {
    let mut mean = MetricsMean::default();
    for ex in lists.iter().filter(|e| e.has_positive()) {
        let scores = ranker.score(&ex.features, ex.len())?;
        let mut order: Vec<usize> = (0..ex.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let relevant: HashMap<usize, u32> = ex.grades.iter().enumerate().filter(|(_, &g)| g > 0).map(|(i, &g)| (i, g)).collect();
        mean.add(Metrics::at_k(&order, &relevant, 10));
    }
    Ok(mean.mean().ndcg)
}

/// One model's layers: `(weight [fan_in × fan_out] row-major, bias)`.
type Layers = Vec<(Vec<f32>, Vec<f32>)>;

/// The layers of one network whose output is the mean of `members`' outputs
/// (all of one shape, `widths`): the first layer's units side by side over
/// the shared input, each later hidden layer block-diagonal, the output
/// layer their average. Exact, since each block sees only its own member's
/// units.
fn side_by_side(members: &[Layers], widths: &[usize]) -> Layers {
    let n = members.len();
    let last = widths.len() - 2;
    (0..=last)
        .map(|l| {
            let (fan_in, fan_out) = (widths[l], widths[l + 1]);
            let rows = if l == 0 { fan_in } else { n * fan_in };
            let cols = if l == last { fan_out } else { n * fan_out };
            let scale = if l == last { 1.0 / n as f32 } else { 1.0 };
            let (mut weight, mut bias) = (vec![0f32; rows * cols], vec![0f32; cols]);
            for (m, layers) in members.iter().enumerate() {
                let (w, b) = &layers[l];
                let row0 = if l == 0 { 0 } else { m * fan_in };
                let col0 = if l == last { 0 } else { m * fan_out };
                for i in 0..fan_in {
                    for o in 0..fan_out {
                        weight[(row0 + i) * cols + col0 + o] += w[i * fan_out + o] * scale;
                    }
                }
                for o in 0..fan_out {
                    bias[col0 + o] += b[o] * scale;
                }
            }
            (weight, bias)
        })
        .collect()
}

struct Params {
    vars: Vec<(Var, Var)>,
}

impl Params {
    fn init(widths: &[usize], rng: &mut SplitMix64, dev: &Device) -> Result<Params> {
        let mut vars = Vec::new();
        for w in widths.windows(2) {
            let (fan_in, fan_out) = (w[0], w[1]);
            // Glorot-uniform; a linear model starts at zero (a convex problem needs no symmetry breaking).
            let limit = if widths.len() == 2 {
                0.0
            } else {
                (6.0 / (fan_in + fan_out) as f64).sqrt()
            };
            let weight: Vec<f32> = (0..fan_in * fan_out)
                .map(|_| ((rng.next_f64() * 2.0 - 1.0) * limit) as f32)
                .collect();
            let weight =
                Var::from_tensor(&Tensor::from_vec(weight, (fan_in, fan_out), dev).map_err(candle_error)?).map_err(candle_error)?;
            let bias = Var::from_tensor(&Tensor::zeros((1, fan_out), candle_core::DType::F32, dev).map_err(candle_error)?)
                .map_err(candle_error)?;
            vars.push((weight, bias));
        }
        Ok(Params { vars })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (i, (w, b)) in self.vars.iter().enumerate() {
            h = h.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
            if i + 1 < self.vars.len() {
                h = h.relu()?;
            }
        }
        Ok(h)
    }

    fn snapshot(&self) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        self.vars
            .iter()
            .map(|(w, b)| {
                let w = w.as_tensor().flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(candle_error)?;
                let b = b.as_tensor().flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(candle_error)?;
                Ok((w, b))
            })
            .collect()
    }
}

/// The relevant candidates of `ex` and a seeded uniform sample of the
/// others, `size` in all: a softmax over a uniform sample of negatives
/// estimates the full list's gradient at a fraction of the cost.
fn sample_list(ex: &ListExample, size: usize, rng: &mut SplitMix64) -> ListExample {
    if ex.len() <= size {
        return ex.clone();
    }
    let (mut keep, mut others): (Vec<usize>, Vec<usize>) = (0..ex.len()).partition(|&i| ex.grades[i] > 0);
    for i in (1..others.len()).rev() {
        others.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    keep.extend(others.into_iter().take(size.saturating_sub(keep.len())));
    keep.sort_unstable();
    ListExample {
        features: keep
            .iter()
            .flat_map(|&i| ex.features[i * NUM_FEATURES..(i + 1) * NUM_FEATURES].iter().copied())
            .collect(),
        grades: keep.iter().map(|&i| ex.grades[i]).collect(),
    }
}

/// Per-feature mean and 1/std over every candidate row of `lists`.
/// Constant features get 1/std = 0, so they cannot blow up.
fn standardisation(lists: &[&ListExample]) -> (Vec<f32>, Vec<f32>) {
    let mut sum = [0f64; NUM_FEATURES];
    let mut sq = [0f64; NUM_FEATURES];
    let mut n = 0f64;
    for ex in lists {
        for row in ex.features.chunks_exact(NUM_FEATURES) {
            for (j, &v) in row.iter().enumerate() {
                sum[j] += v as f64;
                sq[j] += (v as f64) * (v as f64);
            }
            n += 1.0;
        }
    }
    let n = n.max(1.0);
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let inv_std = sum
        .iter()
        .zip(&sq)
        .map(|(s, q)| {
            let var = (q / n - (s / n).powi(2)).max(0.0);
            if var > 1e-12 {
                (1.0 / var.sqrt()) as f32
            } else {
                0.0
            }
        })
        .collect();
    (mean, inv_std)
}

/// Trains a ranker on `train` lists, stopping early on `valid` NDCG@10.
/// Lists without a relevant candidate carry no listwise signal and are
/// skipped (the caller reports them as retrieval misses).
pub(crate) fn train(
    train: &[ListExample],
    valid: &[ListExample],
    params: &TrainParams,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Ranker> {
    params.check()?;
    let bad = |m: &str| Err(Error::InvalidConfig(m.to_string()));
    let hidden = match &params.model {
        ModelKind::Linear => Vec::new(),
        ModelKind::Mlp { hidden } if hidden.is_empty() || hidden.len() > 8 || hidden.iter().any(|&h| h == 0 || h > 4096) => {
            return bad("an MLP needs 1 to 8 hidden layers of width 1..=4096")
        }
        ModelKind::Mlp { hidden } => hidden.clone(),
    };
    let train: Vec<&ListExample> = train
        .iter()
        .filter(|e| e.has_positive() && e.features.len() == e.len() * NUM_FEATURES)
        .collect();
    let _span = tracing::info_span!("train", lists = train.len(), max_epochs = params.max_epochs).entered();
    if train.is_empty() {
        return bad("no training list has a relevant candidate");
    }
    // One standardisation for every member (over all candidates, before
    // sampling), so their layers can be put side by side.
    let (mean, inv_std) = standardisation(&train);
    let widths: Vec<usize> = std::iter::once(NUM_FEATURES)
        .chain(hidden.iter().copied())
        .chain(std::iter::once(1))
        .collect();
    let mut members = Vec::with_capacity(params.ensemble);
    let mut best_epochs = Vec::with_capacity(params.ensemble);
    for member in 0..params.ensemble {
        let (layers, epoch) = train_member(&train, valid, params, &widths, (&mean, &inv_std), member, on_epoch)?;
        members.push(layers);
        best_epochs.push(epoch);
    }
    let merged_hidden: Vec<usize> = hidden.iter().map(|h| h * params.ensemble).collect();
    let mut merged = Ranker::from_parts(
        RankerInfo::trained(merged_hidden),
        &mean,
        &inv_std,
        &side_by_side(&members, &widths),
    )?;
    let ndcg = list_ndcg(&merged, valid)?;
    let validation = BTreeMap::from([
        ("ndcg@10".to_string(), ndcg),
        (
            "best_epoch".to_string(),
            best_epochs.iter().sum::<usize>() as f64 / best_epochs.len() as f64,
        ),
        ("ensemble".to_string(), params.ensemble as f64),
        ("train_lists".to_string(), train.len() as f64),
        ("valid_lists".to_string(), valid.iter().filter(|e| e.has_positive()).count() as f64),
    ]);
    merged.set_validation(validation);
    Ok(merged)
}

/// Trains ensemble member `member` (a model of `widths`, from seed
/// `params.seed + member`); its layers at the epoch of best validation
/// NDCG@10, and that epoch.
fn train_member(
    train: &[&ListExample],
    valid: &[ListExample],
    params: &TrainParams,
    widths: &[usize],
    (mean, inv_std): (&[f32], &[f32]),
    member: usize,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<(Layers, usize)> {
    let dev = Device::Cpu;
    let mut rng = SplitMix64::new(params.seed.wrapping_add(member as u64));
    let mut owned: Vec<ListExample> = train.iter().map(|e| sample_list(e, params.list_size.max(2), &mut rng)).collect();
    let standardise = |ex: &ListExample| -> Vec<f32> {
        ex.features
            .chunks_exact(NUM_FEATURES)
            .flat_map(|row| row.iter().zip(mean).zip(inv_std).map(|((v, m), s)| (v - m) * s))
            .collect()
    };
    let mut train_std: Vec<Vec<f32>> = owned.iter().map(standardise).collect();
    let model = Params::init(widths, &mut rng, &dev)?;
    let all_vars: Vec<Var> = model.vars.iter().flat_map(|(w, b)| [w.clone(), b.clone()]).collect();
    let mut opt = AdamW::new(
        all_vars,
        ParamsAdamW {
            lr: params.learning_rate,
            weight_decay: params.weight_decay,
            ..Default::default()
        },
    )
    .map_err(candle_error)?;

    let hidden = widths[1..widths.len() - 1].to_vec();
    let to_ranker = |layers: &[(Vec<f32>, Vec<f32>)]| Ranker::from_parts(RankerInfo::trained(hidden.clone()), mean, inv_std, layers);

    let mut best: Option<(f64, Layers, usize)> = None;
    let mut order: Vec<usize> = (0..owned.len()).collect();
    let mut stale = 0;
    for epoch in 1..=params.max_epochs {
        // Fresh negatives every epoch: over the epochs the model sees many
        // more of each list's candidates than one list_size sample holds.
        if epoch > 1 {
            owned = train.iter().map(|e| sample_list(e, params.list_size.max(2), &mut rng)).collect();
            train_std = owned.iter().map(standardise).collect();
        }
        // Fisher–Yates with the seeded generator: reproducible batches.
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let mut loss_sum = 0.0;
        let mut batches = 0usize;
        for chunk in order.chunks(params.batch_size) {
            let b = chunk.len();
            let lmax = chunk.iter().map(|&i| owned[i].len()).max().unwrap_or(0);
            if lmax == 0 {
                continue;
            }
            let mut x = vec![0f32; b * lmax * NUM_FEATURES];
            let mut mask = vec![-1e4f32; b * lmax];
            let mut target = vec![0f32; b * lmax];
            for (r, &i) in chunk.iter().enumerate() {
                let ex = &owned[i];
                let start = r * lmax * NUM_FEATURES;
                x[start..start + train_std[i].len()].copy_from_slice(&train_std[i]);
                let gains: Vec<f32> = ex.grades.iter().map(|&g| 2f32.powi(g.min(20) as i32) - 1.0).collect();
                let total: f32 = gains.iter().sum();
                for (j, g) in gains.iter().enumerate() {
                    mask[r * lmax + j] = 0.0;
                    target[r * lmax + j] = g / total;
                }
            }
            let mut step = || -> candle_core::Result<f64> {
                let xt = Tensor::from_vec(x.clone(), (b * lmax, NUM_FEATURES), &dev)?;
                let scores = model.forward(&xt)?.reshape((b, lmax))?;
                let masked = scores.add(&Tensor::from_vec(mask.clone(), (b, lmax), &dev)?)?;
                let logp = candle_nn::ops::log_softmax(&masked, D::Minus1)?;
                let t = Tensor::from_vec(target.clone(), (b, lmax), &dev)?;
                let loss = (t.mul(&logp)?.sum_all()?.neg()? / b as f64)?;
                opt.backward_step(&loss)?;
                loss.to_scalar::<f32>().map(f64::from)
            };
            loss_sum += step().map_err(candle_error)?;
            batches += 1;
        }
        let layers = model.snapshot()?;
        let ndcg = list_ndcg(&to_ranker(&layers)?, valid)?;
        let improved = best.as_ref().is_none_or(|(b, _, _)| ndcg > *b + 1e-6);
        if improved {
            best = Some((ndcg, layers, epoch));
            stale = 0;
        } else {
            stale += 1;
        }
        let report = EpochReport {
            member,
            epoch,
            train_loss: loss_sum / batches.max(1) as f64,
            valid_ndcg: ndcg,
            best: improved,
        };
        tracing::info!(
            member,
            epoch,
            max_epochs = params.max_epochs,
            train_loss = report.train_loss,
            valid_ndcg = report.valid_ndcg,
            best = report.best,
            "epoch"
        );
        on_epoch(&report);
        if stale >= params.patience {
            break;
        }
    }
    let Some((_, layers, epoch)) = best else {
        return Err(Error::internal("train", "no epoch ran"));
    };
    Ok((layers, epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists where the relevant candidate is the one with the largest
    /// feature 5 (and feature 3 is noise): both models must learn that.
    fn synthetic(n: usize, seed: u64) -> Vec<ListExample> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let len = 5 + (rng.next_u64() % 20) as usize;
                let mut features = vec![0f32; len * NUM_FEATURES];
                for row in features.chunks_exact_mut(NUM_FEATURES) {
                    row[5] = rng.next_f64() as f32;
                    row[3] = rng.next_f64() as f32;
                }
                let best = (0..len)
                    .max_by(|&a, &b| features[a * NUM_FEATURES + 5].total_cmp(&features[b * NUM_FEATURES + 5]))
                    .unwrap();
                let mut grades = vec![0; len];
                grades[best] = 1;
                ListExample { features, grades }
            })
            .collect()
    }

    #[test]
    fn linear_and_mlp_learn_a_planted_signal_reproducibly() {
        let (tr, va) = (synthetic(300, 1), synthetic(100, 2));
        for params in [
            TrainParams {
                max_epochs: 15,
                ..TrainParams::linear()
            },
            TrainParams {
                max_epochs: 15,
                ..TrainParams::default()
            },
        ] {
            let r = train(&tr, &va, &params, &mut |_| {}).unwrap();
            let ndcg = list_ndcg(&r, &va).unwrap();
            assert!(ndcg > 0.9, "{:?}: {ndcg}", params.model);
            let again = train(&tr, &va, &params, &mut |_| {}).unwrap();
            assert_eq!(list_ndcg(&again, &va).unwrap(), ndcg, "same seed, same model");
            assert_eq!(r.info().validation.get("ndcg@10").copied(), Some(ndcg));
        }
    }

    #[test]
    fn an_ensemble_side_by_side_scores_the_mean_of_its_members() {
        let mut rng = SplitMix64::new(3);
        let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| (rng.next_f64() * 2.0 - 1.0) as f32).collect() };
        let (mean, inv_std) = (random(NUM_FEATURES), vec![0.5; NUM_FEATURES]);
        let rows = 7;
        let x = random(rows * NUM_FEATURES);
        for widths in [vec![NUM_FEATURES, 1], vec![NUM_FEATURES, 5, 3, 1]] {
            let members: Vec<Layers> = (0..3)
                .map(|_| widths.windows(2).map(|w| (random(w[0] * w[1]), random(w[1]))).collect())
                .collect();
            let hidden = widths[1..widths.len() - 1].to_vec();
            let mut expected = vec![0f32; rows];
            for m in &members {
                let one = Ranker::from_parts(RankerInfo::trained(hidden.clone()), &mean, &inv_std, m).unwrap();
                for (e, s) in expected.iter_mut().zip(one.score(&x, rows).unwrap()) {
                    *e += s / 3.0;
                }
            }
            let wide = hidden.iter().map(|h| h * 3).collect();
            let merged = Ranker::from_parts(RankerInfo::trained(wide), &mean, &inv_std, &side_by_side(&members, &widths)).unwrap();
            for (got, want) in merged.score(&x, rows).unwrap().iter().zip(&expected) {
                assert!((got - want).abs() < 1e-4, "{widths:?}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn an_ensemble_is_reproducible_and_reports_every_member() {
        let (tr, va) = (synthetic(120, 5), synthetic(40, 6));
        let params = TrainParams::default().ensemble(3).max_epochs(3).patience(10);
        let mut seen = Vec::new();
        let r = train(&tr, &va, &params, &mut |e| seen.push((e.member, e.epoch))).unwrap();
        assert_eq!(seen, [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]);
        assert_eq!(r.info().hidden, [96, 48], "three 32-16 members side by side");
        let again = train(&tr, &va, &params, &mut |_| {}).unwrap();
        assert_eq!(
            r.score(&va[0].features, va[0].len()).unwrap(),
            again.score(&va[0].features, va[0].len()).unwrap()
        );
    }

    #[test]
    fn refuses_impossible_settings() {
        let tr = synthetic(10, 1);
        assert!(train(
            &tr,
            &tr,
            &TrainParams {
                batch_size: 0,
                ..TrainParams::default()
            },
            &mut |_| {}
        )
        .is_err());
        assert!(train(&[], &tr, &TrainParams::default(), &mut |_| {}).is_err());
        for n in [0, 17] {
            assert!(train(&tr, &tr, &TrainParams::default().ensemble(n), &mut |_| {}).is_err());
        }
        for n in [0, 7] {
            assert!(train(&tr, &tr, &TrainParams::default().windows(n), &mut |_| {}).is_err());
        }
        let no_pos = vec![ListExample {
            features: vec![0.0; NUM_FEATURES],
            grades: vec![0],
        }];
        assert!(train(&no_pos, &tr, &TrainParams::default(), &mut |_| {}).is_err());
    }

    #[test]
    fn on_epoch_sees_every_epoch() {
        // The matching `train` span and `epoch` events are checked in
        // tests/tracing.rs, a binary of its own: tracing's global callsite
        // interest cache races with other tests of this binary.
        let (tr, va) = (synthetic(60, 3), synthetic(20, 4));
        let mut seen = Vec::new();
        train(
            &tr,
            &va,
            &TrainParams {
                max_epochs: 3,
                patience: 10,
                ..TrainParams::linear()
            },
            &mut |r| seen.push(r.epoch),
        )
        .unwrap();
        assert_eq!(seen, [1, 2, 3]);
    }
}
