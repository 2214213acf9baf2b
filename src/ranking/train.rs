//! What ranker training is asked to do and what it reports: the model
//! family, the optimiser's settings, the ensemble, and one report per epoch.
//! The training itself (candle's autograd) is behind the default feature
//! `train`; without it an index is built with the fixed-weight ranker.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The model family to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelKind {
    /// A weighted sum of standardised features.
    Linear,
    /// Dense layers of these widths with ReLU, then one output.
    Mlp {
        /// Hidden layer widths, e.g. `[64, 32]`.
        hidden: Vec<usize>,
    },
}

/// Training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrainParams {
    /// Model family. Default: an MLP with hidden layers 32 and 16.
    pub model: ModelKind,
    /// Largest number of passes over the training lists. Default 30.
    pub max_epochs: usize,
    /// Lists per gradient step. Default 32.
    pub batch_size: usize,
    /// AdamW learning rate. Default 0.003.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay. Default 1e-4.
    pub weight_decay: f64,
    /// Epochs without a better validation NDCG@10 before stopping. Default 3.
    pub patience: usize,
    /// Seed for initial weights, negative sampling and shuffling. Default 42.
    pub seed: u64,
    /// Models trained, each from its own seed (`seed`, `seed + 1`, …) with
    /// its own early stopping, and served as one model scoring their mean
    /// (one forward pass: their layers side by side). Averaging removes
    /// most of what one seed's initialisation and sampling decide: a single
    /// MLP's MovieLens NDCG@10 moved by up to 0.015 with the seed, five
    /// averaged by 0.0007 over three builds. Each member costs its own
    /// training time. Default 5; 1 to 16.
    pub ensemble: usize,
    /// Most logged requests turned into lists (evenly subsampled), per
    /// window. Default 10,000.
    pub max_lists: usize,
    /// Windows of the log the training lists come from, newest first: the
    /// most recent 15% of the log against retrieval built on the rest
    /// (the later fifth of each window is held out for validation), then each older 15%
    /// against retrieval built on what precedes it. Each window costs one
    /// more build of the retrieval stage; on the music demo's next-track
    /// evaluation, three windows of training lists instead of one raised
    /// test NDCG@10 from 0.214–0.219 to about 0.24. Default 3; 1 to 6.
    pub windows: usize,
    /// Candidates kept per training list: the relevant ones plus a seeded
    /// random sample of the others (sampled softmax), drawn afresh every
    /// epoch. Default 64. Validation lists are never sampled.
    pub list_size: usize,
}

setters!(TrainParams {
    model: ModelKind,
    max_epochs: usize,
    batch_size: usize,
    learning_rate: f64,
    weight_decay: f64,
    patience: usize,
    seed: u64,
    ensemble: usize,
    max_lists: usize,
    windows: usize,
    list_size: usize
});

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            model: ModelKind::Mlp { hidden: vec![32, 16] },
            max_epochs: 30,
            batch_size: 32,
            learning_rate: 0.003,
            weight_decay: 1e-4,
            patience: 3,
            seed: 42,
            ensemble: 5,
            max_lists: 10_000,
            windows: 3,
            list_size: 64,
        }
    }
}

/// Most logged requests a window may keep ([`TrainParams::max_lists`]).
const MAX_LISTS: usize = 100_000_000;

impl TrainParams {
    /// Refuses settings no training can run with (before any work is done).
    pub(crate) fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidConfig(m.to_string()));
        if self.batch_size == 0 || self.max_epochs == 0 || !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("training needs batch_size ≥ 1, max_epochs ≥ 1 and a positive learning rate");
        }
        if !(1..=16).contains(&self.ensemble) {
            return bad("an ensemble has 1 to 16 members");
        }
        if !(1..=6).contains(&self.windows) {
            return bad("ranker training reads 1 to 6 windows of the log");
        }
        if self.max_lists > MAX_LISTS {
            return bad("max_lists is at most 100,000,000 requests per window");
        }
        Ok(())
    }

    /// Defaults with a linear model (which tolerates a larger step), and
    /// one model: its problem is convex, so other seeds find nearly the same one.
    pub fn linear() -> TrainParams {
        TrainParams {
            model: ModelKind::Linear,
            learning_rate: 0.02,
            ensemble: 1,
            ..TrainParams::default()
        }
    }
}

/// One request's candidates: a `[len × NUM_FEATURES]` matrix and a grade
/// per candidate (0 = not relevant).
#[derive(Clone, Debug, Default)]
pub(crate) struct ListExample {
    pub features: Vec<f32>,
    pub grades: Vec<u32>,
}

impl ListExample {
    pub fn len(&self) -> usize {
        self.grades.len()
    }

    pub fn has_positive(&self) -> bool {
        self.grades.iter().any(|&g| g > 0)
    }
}

/// What one epoch of one ensemble member did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochReport {
    /// 0-based ensemble member (see [`TrainParams::ensemble`]).
    pub member: usize,
    /// 1-based epoch of this member.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// NDCG@10 over the candidates of the early-stopping lists (a tenth of
    /// the training lists, kept out of fitting).
    pub valid_ndcg: f64,
    /// Whether this epoch is this member's best so far (its weights are kept).
    pub best: bool,
}

/// What ranker training did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrainSummary {
    /// `linear` or `mlp`.
    pub kind: String,
    /// One entry per epoch run.
    pub epochs: Vec<EpochReport>,
    /// The trained ranker's NDCG@10 (over candidates) on the held-out
    /// validation lists, which neither fitting nor early stopping saw.
    pub valid_ndcg: f64,
    /// Share of training targets whose item retrieval found.
    pub train_candidate_recall: f64,
    /// Share of validation targets whose item retrieval found.
    pub valid_candidate_recall: f64,
    /// Training lists with a relevant candidate.
    pub train_lists: usize,
    /// Validation lists with a relevant candidate.
    pub valid_lists: usize,
    /// Lists (training and validation) from searches generated from the
    /// catalog (item titles), topping up the logged ones to 2,000.
    pub generated_lists: usize,
    /// The serving plan chosen on the validation lists.
    pub serving: crate::ranking::plan::ServingPlan,
    /// At a compaction, the NDCG@10 of the ranker being replaced on the
    /// same held-out lists (`None` elsewhere, or when it reads other features).
    pub replaced_ndcg: Option<f64>,
    /// Whether that ranker scored higher and was kept (this summary then
    /// describes it; its epochs are those of the discarded new one).
    pub kept_incumbent: bool,
    /// Wall time, seconds.
    pub seconds: f64,
}
