//! The second stage: features for every candidate, the model that scores
//! them in one batched forward pass, and its training from logs.

pub mod dataset;
pub mod features;
pub(crate) mod model;
pub mod train;

pub use model::{RankerInfo, FIXED_DEFAULT_WEIGHTS};
pub use train::{EpochReport, ModelKind, TrainParams};
