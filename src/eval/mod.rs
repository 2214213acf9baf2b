//! Offline evaluation: metrics, baselines, the evaluation protocols, and the
//! comparison of systems on them.
//!
//! ```text
//! cargo run --release --example evaluate -- --dataset music
//! cargo run --release --example evaluate -- --dataset movielens --path data/movielens/ml-100k
//! cargo run --release --example evaluate_search -- --data data/music --model models/all-MiniLM-L6-v2
//! ```

pub mod compare;
pub mod itemknn;
pub mod metrics;
pub mod search;
pub mod splits;

pub use compare::{compare, Prepared, Report};
pub use metrics::{Metrics, MetricsMean};
pub use search::{load_graded_queries, search_quality, GradedQuery};
