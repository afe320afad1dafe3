//! Text helpers shared by filters and metrics.

pub mod pyre;
