//! The task YAML schema, with lm-eval's keys verbatim (`TaskConfig`, `FewshotConfig`,
//! `GroupConfig` of lm-eval 0.4.13), as serde types.
//!
//! These mirror what is on disk; `task::resolve` turns a `TaskConfig` into a runnable
//! `Task`, filling in lm-eval's implicit defaults there. Unknown keys are rejected with a
//! "did you mean" hint before serde sees the mapping (see `check_keys`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The four request-producing output types of lm-eval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    GenerateUntil,
    Loglikelihood,
    LoglikelihoodRolling,
    MultipleChoice,
}

impl OutputType {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputType::GenerateUntil => "generate_until",
            OutputType::Loglikelihood => "loglikelihood",
            OutputType::LoglikelihoodRolling => "loglikelihood_rolling",
            OutputType::MultipleChoice => "multiple_choice",
        }
    }
}

/// One task YAML after `include:` merging (`lm_eval/config/task.py: TaskConfig`).
/// Field order is lm-eval's dataclass order, which is also the order of `configs` in results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_alias: Option<String>,
    /// lm-eval 0.5's prompt formats (see `task::formats`), as written; the templates they
    /// give are in `doc_to_*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formats: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<OneOrMany>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_kwargs: Option<Map<String, Value>>,
    /// A hook returning the dataset's splits (called with metadata and dataset_kwargs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_dataset: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_split: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_split: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_split: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fewshot_split: Option<String>,
    /// rubric: a built-in document processor (`name` or `{name: .., args..}`), in place of
    /// lm-eval's `!function utils.process_docs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_docs: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_to_text: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_to_target: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsafe_code: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_to_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_results: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_delimiter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fewshot_delimiter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fewshot_config: Option<FewshotConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_fewshot: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_list: Option<Vec<MetricConfig>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_type: Option<OutputType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_kwargs: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeats: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_list: Option<Vec<FilterPipelineConfig>>,
    /// lm-eval 0.5's `scorer:` (see `task::formats`), as written; the filters and metrics it
    /// gives are in `filter_list` and `metric_list`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scorer: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub should_decontaminate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_to_decontamination_query: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gen_prefix: Option<String>,
    /// rubric: extra requests issued per doc beside the main ones (see `task::extra`), e.g.
    /// SQuAD v2's loglikelihood of " unanswerable" next to its generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_requests: Option<Vec<ExtraRequestConfig>>,
    /// rubric: where this task's splits are under `--data-dir` when the local copy is not laid
    /// out as the hub's, `{split: path relative to the data dir}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir_files: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// Keys lm-eval accepts that rubric knows but cannot honour, with the reason.
pub(crate) const UNSUPPORTED_KEYS: &[(&str, &str)] = &[
    (
        "use_prompt",
        "promptsource prompts are not available; write doc_to_text/doc_to_target",
    ),
    ("doc_to_image", "multimodal tasks are not supported"),
    ("doc_to_audio", "multimodal tasks are not supported"),
    (
        "class",
        "Python task classes cannot be loaded; write the task as YAML",
    ),
];

/// Structural keys allowed beside the task fields (consumed by the loader).
pub(crate) const STRUCTURAL_KEYS: &[&str] = &[
    "include",
    "group",
    "task_list",
    super::formats::SELECTION_KEY,
];

/// Every field name of `TaskConfig`, for unknown-key checks and "did you mean" hints.
pub(crate) const TASK_KEYS: &[&str] = &[
    "task",
    "task_alias",
    "formats",
    "tag",
    "dataset_path",
    "dataset_name",
    "dataset_kwargs",
    "custom_dataset",
    "training_split",
    "validation_split",
    "test_split",
    "fewshot_split",
    "process_docs",
    "doc_to_text",
    "doc_to_target",
    "unsafe_code",
    "doc_to_choice",
    "process_results",
    "description",
    "target_delimiter",
    "fewshot_delimiter",
    "fewshot_config",
    "num_fewshot",
    "metric_list",
    "output_type",
    "generation_kwargs",
    "repeats",
    "filter_list",
    "scorer",
    "should_decontaminate",
    "doc_to_decontamination_query",
    "gen_prefix",
    "extra_requests",
    "data_dir_files",
    "metadata",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `fewshot_config` (`lm_eval/config/task.py: FewshotConfig`); unset fields inherit the task's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewshotConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampler: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_docs: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fewshot_indices: Option<Vec<usize>>,
    /// The few-shot docs, or a hook returning them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_to_text: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_to_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_to_target: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gen_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fewshot_delimiter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_delimiter: Option<String>,
}

/// One `metric_list` entry: any key besides these five is a keyword argument of the metric.
/// `metric` and `aggregation` are names, or Python hooks (`!function`, see `crate::hooks`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricConfig {
    pub metric: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub higher_is_better: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hf_evaluate: Option<bool>,
    /// lm-eval 0.5's: how a doc's repeats reduce (`take_first`, `mean`, `pass@k`; rubric adds
    /// `avg@k`, `maj@k`), a name or a list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reduction: Option<Value>,
    #[serde(flatten)]
    pub kwargs: Map<String, Value>,
}

/// One `filter_list` entry: a named pipeline of filter functions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterPipelineConfig {
    pub name: String,
    pub filter: Vec<FilterStepConfig>,
}

/// One step of a filter pipeline: `function` (a name, or a Python filter class as
/// `!function module.Class`) plus its keyword arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilterStepConfig {
    pub function: Value,
    #[serde(flatten)]
    pub kwargs: Map<String, Value>,
}

/// rubric's `extra_requests` entry: one more request per doc, its response stored under `name`
/// for the metrics that ask for it (`output_type` loglikelihood or generate_until).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraRequestConfig {
    pub name: String,
    pub output_type: OutputType,
    /// Jinja template for the continuation (loglikelihood) on the doc.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
    /// Generation kwargs (generate_until); defaults as for the task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_kwargs: Option<Map<String, Value>>,
}

/// A group YAML (`lm_eval/config/group.py: GroupConfig`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_alias: Option<String>,
    #[serde(default)]
    pub task: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate_metric_list: Option<Vec<AggMetricConfig>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// What lm-eval accepts here but is read differently from how it is written (a function
    /// as the aggregation), for `tasks validate` and `run` to say.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

pub(crate) const GROUP_KEYS: &[&str] = &[
    "group",
    "group_alias",
    "task",
    "aggregate_metric_list",
    "metadata",
];

/// `aggregate_metric_list` entry of a group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggMetricConfig {
    pub metric: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_list: Option<OneOrMany>,
    #[serde(default = "default_mean")]
    pub aggregation: String,
    #[serde(default = "default_true")]
    pub weight_by_size: bool,
}

fn default_mean() -> String {
    "mean".into()
}

fn default_true() -> bool {
    true
}
