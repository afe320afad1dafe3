//! Comparing runs: which differences between a base run and candidate runs are real (paired
//! tests on the per-doc values of samples files), a regression gate, and the tables people
//! read. See `rubric compare --help` and ../shared/reference/comparing-runs.md.
//!
//! runs (read files) -> analysis (pair docs, test each metric; bootstrap, stats) -> gate ->
//! render.

pub mod analysis;
pub mod bootstrap;
pub mod gate;
pub mod render;
pub mod runs;
pub mod stats;
