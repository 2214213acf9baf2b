//! The first stage: fast, coarse candidate retrieval, and fusion of the
//! retrievers' lists.

pub mod ann;
pub(crate) mod covisit;
pub(crate) mod fusion;
pub(crate) mod lexical;
pub(crate) mod linear;
pub(crate) mod popular;

pub use covisit::CovisitParams;
pub use linear::LinearParams;
