//! Tasks: the YAML schema (`config`), loading and the index (`load`), templates (`template`),
//! few-shot sampling (`fewshot`), data (`dataset`, `hub`, `process`), and the step that turns
//! a config into a runnable [`Task`] (`resolve`) and a task's docs into requests (`prompt`).

pub mod builtin;
pub mod config;
pub mod dataset;
pub mod fewshot;
pub mod formats;
pub mod load;
pub mod p5;
pub mod process;
pub mod prompt;
pub mod resolve;
pub mod select;
pub mod template;
pub mod yaml;

use std::path::PathBuf;

pub use config::{OutputType, TaskConfig};
pub use dataset::{DataCache, DataOptions};
pub use resolve::{FieldSpec, Task};

/// Everything that can go wrong between a task name and its requests. Each message names the
/// file (and line where known), the task, the field and, for per-doc errors, the doc index.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{}: cannot read task file: {err}", path.display())]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{}: malformed YAML: {message}", path.display())]
    Yaml { path: PathBuf, message: String },
    #[error("{}: expected a mapping of task fields at the top level, found {found}", path.display())]
    NotAMapping { path: PathBuf, found: String },
    #[error("{}: task `{task}`, `{field}`: {err}", path.display())]
    Hook {
        path: PathBuf,
        task: String,
        field: String,
        err: Box<crate::hooks::HookError>,
    },
    #[error("{}:{line}: unknown field `{key}` in `{task}`{hint}", path.display())]
    UnknownKey {
        path: PathBuf,
        line: usize,
        task: String,
        key: String,
        hint: String,
    },
    #[error("{}:{line}: field `{key}` of task `{task}` is not supported: {why}", path.display())]
    Unsupported {
        path: PathBuf,
        line: usize,
        task: String,
        key: String,
        why: String,
    },
    #[error("{}: field `{field}` of `{task}`: {message}", path.display())]
    BadField {
        path: PathBuf,
        task: String,
        field: String,
        message: String,
    },
    #[error("{}: include cycle: {chain}", path.display())]
    IncludeCycle { path: PathBuf, chain: String },
    #[error("{}:{line}: included file {} does not exist", path.display(), include.display())]
    MissingInclude {
        path: PathBuf,
        line: usize,
        include: PathBuf,
    },
    #[error("--include-path {} does not exist", path.display())]
    MissingIncludePath { path: PathBuf },
    #[error("{message}")]
    Builtin { message: String },
    #[error(
        "unknown task, group or tag `{name}`{hint}{skipped}; `rubric tasks list` shows what exists"
    )]
    UnknownTask {
        name: String,
        hint: String,
        skipped: String,
    },
    #[error("{}: task `{task}`: {message}", path.display())]
    Template {
        path: PathBuf,
        task: String,
        message: String,
    },
    #[error("task `{task}`, doc {doc_id}: {message}")]
    Doc {
        task: String,
        doc_id: usize,
        message: String,
    },
    #[error("{}: task `{task}`: reading its data (dataset_path / dataset_kwargs): {err}", path.display())]
    Dataset {
        path: PathBuf,
        task: String,
        err: dataset::DatasetError,
    },
    #[error("{}: task `{task}`: {message}", path.display())]
    Invalid {
        path: PathBuf,
        task: String,
        message: String,
    },
}
