//! The second stage: features for every candidate, and the model that
//! scores them in one batched forward pass.

pub mod features;
pub(crate) mod model;

pub use model::{RankerInfo, FIXED_DEFAULT_WEIGHTS};
