//! The second stage: features for every candidate, the model that scores
//! them in one batched forward pass, and its training from logs.

mod candidates;
pub(crate) mod categories;
pub(crate) mod dataset;
pub mod features;
#[cfg(feature = "train")]
pub(crate) mod fit;
pub(crate) mod fold_in;
pub(crate) mod model;
pub mod plan;
pub mod train;

pub use candidates::{Candidates, Scorer};
pub use model::{RankerInfo, FIXED_DEFAULT_WEIGHTS};
pub use plan::{ContextKind, ContextPlan, Served, ServingPlan};
pub use train::{EpochReport, ModelKind, TrainParams, TrainSummary};
