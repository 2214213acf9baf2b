//! Offline evaluation: metrics, and the protocols that compare systems on
//! held-out interactions.

pub mod metrics;

pub use metrics::{Metrics, MetricsMean};
