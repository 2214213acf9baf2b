//! Deterministic synthetic datasets: the shipped demo data and the scaled-up
//! catalogs the benchmarks use. The data are made up; nothing here is real
//! listening behaviour.

pub mod music;
