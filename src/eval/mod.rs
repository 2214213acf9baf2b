//! Offline evaluation: metrics, baselines, the evaluation protocols, and the
//! comparison of systems on them.
//!
//! ```text
//! cargo run --release --features harness --example evaluate -- --dataset music
//! cargo run --release --features harness --example evaluate -- --dataset movielens --path data/movielens/ml-100k
//! cargo run --release --features harness --example evaluate_search -- --data data/music --model models/all-MiniLM-L6-v2
//! ```

pub mod compare;
pub mod ease;
pub mod itemknn;
/// Ranking metrics at a cut-off (HR, Recall, MRR, NDCG), the same code the
/// ranker's validation uses (it lives below the ranker, in the library proper).
pub mod metrics {
    pub use crate::metrics::{Metrics, MetricsMean};
}
pub mod peers;
pub mod search;
pub mod splits;

pub use crate::ranking::dataset::Target;
pub use compare::{compare, Prepared, Report};
pub use metrics::{Metrics, MetricsMean};
pub use search::{load_graded_queries, load_similar, search_quality, similar_quality, GradedQuery, Peers, SimilarItems};

use crate::request::{Request, Retriever};

/// `req` with every retriever but `r` asked for no candidates: a retriever
/// alone, through the same path as the full system.
pub(crate) fn only(req: &Request, r: Retriever) -> Request {
    let mut req = req.clone();
    for other in Retriever::ALL {
        if other != r {
            req.candidates.set(other, 0);
        }
    }
    req
}
