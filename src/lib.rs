//! rubric: an evaluation harness for language-model checkpoints that reads lm-eval's task
//! YAMLs, reproduces its prompts and metrics exactly, and writes its output formats.
//!
//! Data flows one way: `task` (config -> docs -> requests) -> `model` (responses) -> `filter`
//! -> `metric` (per-doc values -> aggregates) -> `output` (files); `evaluate` joins the chain.

pub mod cache;
pub mod check;
pub mod cli;
pub mod compare;
pub mod env;
pub mod evaluate;
pub mod filter;
pub mod hooks;
pub mod hub;
pub mod judge;
pub mod metric;
pub mod model;
pub mod output;
pub mod progress;
pub mod py;
pub mod report;
pub mod request;
pub mod results;
pub mod sandbox;
pub mod serve;
pub mod shard;
pub mod sweep;
pub mod task;
pub mod text;
pub mod usage;
