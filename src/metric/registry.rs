//! The table of metrics: every name a `metric_list` entry or `rubric score --metrics` may use,
//! the function that builds it (in its family's file), its direction and its documentation
//! (`rubric metrics explain`); and [`Metric`], a built metric with its aggregation.
//!
//! Adding a metric: its type and `build` function in a file of its own (see `spec.rs`), and
//! one row here.

use std::sync::Arc;

use serde_json::Value;

use super::aggregate::Aggregation;
use super::spec::{aggregation_option, direction_option, DocInput, Metric, MetricSpec, Prediction};
use super::{
    classification, codexglue, exact_match, judge, llamafactory, loglikelihood, math_equiv,
    pass_at_k, ranking, regression, rouge, spec, squad, translation, Item, MetricError, Options,
};

/// Builds a metric from its name and options.
pub(crate) type Build = fn(&str, &Options) -> Result<Box<dyn MetricSpec>, String>;

/// One row of the metric table.
pub struct MetricInfo {
    /// The name (a pattern with `@k` for ranking and pass@k).
    pub name: &'static str,
    pub build: Build,
    pub higher_is_better: bool,
    /// Where its values come from: `generate_until`, `multiple_choice`, `loglikelihood`, ...
    pub output: &'static str,
    pub summary: &'static str,
    /// The module whose `//!` docs `rubric metrics explain` prints.
    pub docs: &'static str,
    /// Golden file(s) checking it against the reference tool.
    pub golden: &'static str,
}

macro_rules! docs {
    ($file:literal) => {
        include_str!($file)
    };
}

/// Every metric, sorted by name.
pub(crate) static METRICS: &[MetricInfo] = &[
    MetricInfo { name: "acc", build: loglikelihood::build, higher_is_better: true, output: "multiple_choice, loglikelihood, generate_until", summary: "accuracy: argmax choice = gold (multiple choice), greedy continuation (loglikelihood), string equality (predictions)", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "acc_bytes", build: loglikelihood::build, higher_is_better: true, output: "multiple_choice", summary: "accuracy with loglikelihoods divided by the UTF-8 byte length of each choice", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "acc_mutual_info", build: loglikelihood::build, higher_is_better: true, output: "multiple_choice", summary: "accuracy of ll(choice|context) - ll(choice|empty context)", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "acc_norm", build: loglikelihood::build, higher_is_better: true, output: "multiple_choice", summary: "accuracy with loglikelihoods divided by the character length of each choice", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "bits_per_byte", build: loglikelihood::build, higher_is_better: false, output: "loglikelihood_rolling", summary: "-sum(ll) / sum(bytes) / ln 2", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "bleu", build: translation::build, higher_is_better: true, output: "generate_until", summary: "sacrebleu corpus BLEU (13a, exp smoothing), 0-100", docs: docs!("bleu.rs"), golden: "tests/golden/sacrebleu" },
    MetricInfo { name: "bleu-4", build: llamafactory::build, higher_is_better: true, output: "generate_until", summary: "LLaMA-Factory: NLTK sentence BLEU-4 over characters, method3, mean x100", docs: docs!("llamafactory.rs"), golden: "tests/golden/llamafactory" },
    MetricInfo { name: "brier_score", build: loglikelihood::build, higher_is_better: false, output: "multiple_choice", summary: "mean over docs of sum((softmax(lls) - onehot(gold))^2)", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "bypass", build: spec::build_bypass, higher_is_better: true, output: "any", summary: "no metric (--predict-only); reports 999 as lm-eval does", docs: "", golden: "" },
    MetricInfo { name: "byte_perplexity", build: loglikelihood::build, higher_is_better: false, output: "loglikelihood_rolling", summary: "exp(-sum(ll) / sum(bytes))", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "chrf", build: translation::build, higher_is_better: true, output: "generate_until", summary: "sacrebleu corpus chrF (char order 6, beta 2), 0-100", docs: docs!("chrf.rs"), golden: "tests/golden/sacrebleu" },
    MetricInfo { name: "chrf++", build: translation::build, higher_is_better: true, output: "generate_until", summary: "sacrebleu corpus chrF++ (char order 6, word order 2, beta 2), 0-100", docs: docs!("chrf.rs"), golden: "tests/golden/sacrebleu" },
    MetricInfo { name: "exact_match", build: exact_match::build, higher_is_better: true, output: "generate_until, multiple_choice", summary: "lm-eval exact match with regexes_to_ignore / ignore_case / ignore_punctuation / ignore_numbers", docs: docs!("exact_match.rs"), golden: "tests/golden/exact_match" },
    MetricInfo { name: "f1", build: classification::build, higher_is_better: true, output: "multiple_choice, generate_until", summary: "sklearn f1_score over (gold, prediction) labels; option average: binary|macro|micro", docs: docs!("classification.rs"), golden: "tests/golden/classification" },
    MetricInfo { name: "hit@k", build: ranking::build, higher_is_better: true, output: "multiple_choice (ranking), predictions", summary: "1 if a relevant item is in the top k", docs: docs!("ranking.rs"), golden: "tests/golden/ranking" },
    MetricInfo { name: "invalid_rate", build: regression::build, higher_is_better: false, output: "generate_until", summary: "fraction of rating predictions that are not numbers", docs: docs!("regression.rs"), golden: "tests/golden/regression" },
    MetricInfo { name: "judge", build: judge::build, higher_is_better: true, output: "generate_until", summary: "a judge model's score of each response (--judge-args; MT-Bench [[rating]], regex or JSON verdicts), unreadable verdicts left out and counted", docs: docs!("judge.rs"), golden: "tests/judge.rs" },
    MetricInfo { name: "likelihood", build: loglikelihood::build, higher_is_better: true, output: "multiple_choice", summary: "mean probability of the gold choice (exp of its loglikelihood)", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "mae", build: regression::build, higher_is_better: false, output: "generate_until", summary: "mean absolute error of numeric predictions; option clip (LaikaLLM)", docs: docs!("regression.rs"), golden: "tests/golden/regression" },
    MetricInfo { name: "map@k", build: ranking::build, higher_is_better: true, output: "multiple_choice (ranking), predictions", summary: "mean average precision at k (standard)", docs: docs!("ranking.rs"), golden: "tests/golden/ranking" },
    MetricInfo { name: "map_laika@k", build: ranking::build, higher_is_better: true, output: "multiple_choice (ranking), predictions", summary: "LaikaLLM's MAP@k (divides by the hits found)", docs: docs!("ranking.rs"), golden: "tests/golden/ranking" },
    MetricInfo { name: "math_equiv", build: math_equiv::build, higher_is_better: true, output: "generate_until", summary: "normalised string or numeric equality of math answers", docs: docs!("math_equiv.rs"), golden: "tests/golden/math_equiv" },
    MetricInfo { name: "mcc", build: classification::build, higher_is_better: true, output: "multiple_choice, generate_until", summary: "sklearn matthews_corrcoef over (gold, prediction) labels", docs: docs!("classification.rs"), golden: "tests/golden/classification" },
    MetricInfo { name: "mrr@k", build: ranking::build, higher_is_better: true, output: "multiple_choice (ranking), predictions", summary: "reciprocal rank of the first relevant item within the top k", docs: docs!("ranking.rs"), golden: "tests/golden/ranking" },
    MetricInfo { name: "ndcg@k", build: ranking::build, higher_is_better: true, output: "multiple_choice (ranking), predictions", summary: "normalised discounted cumulative gain at k (standard)", docs: docs!("ranking.rs"), golden: "tests/golden/ranking" },
    MetricInfo { name: "ndcg_laika@k", build: ranking::build, higher_is_better: true, output: "multiple_choice (ranking), predictions", summary: "LaikaLLM's NDCG@k (ideal DCG from the hits found)", docs: docs!("ranking.rs"), golden: "tests/golden/ranking" },
    MetricInfo { name: "pass@k", build: pass_at_k::build, higher_is_better: true, output: "generate_until (code)", summary: "HF code_eval unbiased pass@k over repeats (metric `pass_at_k` with `k: [..]`)", docs: docs!("pass_at_k.rs"), golden: "tests/golden/pass_at_k" },
    MetricInfo { name: "perplexity", build: loglikelihood::build, higher_is_better: false, output: "loglikelihood", summary: "exp(-mean(loglikelihood))", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "rmse", build: regression::build, higher_is_better: false, output: "generate_until", summary: "root mean squared error of numeric predictions; option clip (LaikaLLM)", docs: docs!("regression.rs"), golden: "tests/golden/regression" },
    MetricInfo { name: "rouge-1", build: llamafactory::build, higher_is_better: true, output: "generate_until", summary: "LLaMA-Factory: rouge_chinese ROUGE-1 F on jieba tokens, mean x100", docs: docs!("llamafactory.rs"), golden: "tests/golden/llamafactory" },
    MetricInfo { name: "rouge-2", build: llamafactory::build, higher_is_better: true, output: "generate_until", summary: "LLaMA-Factory: rouge_chinese ROUGE-2 F on jieba tokens, mean x100", docs: docs!("llamafactory.rs"), golden: "tests/golden/llamafactory" },
    MetricInfo { name: "rouge-l", build: llamafactory::build, higher_is_better: true, output: "generate_until", summary: "LLaMA-Factory: rouge_chinese ROUGE-L F on jieba tokens, mean x100", docs: docs!("llamafactory.rs"), golden: "tests/golden/llamafactory" },
    MetricInfo { name: "rouge1", build: rouge::build, higher_is_better: true, output: "generate_until", summary: "rouge_score ROUGE-1 F (Porter stemmer), mean over docs, 0-1", docs: docs!("rouge.rs"), golden: "tests/golden/rouge" },
    MetricInfo { name: "rouge2", build: rouge::build, higher_is_better: true, output: "generate_until", summary: "rouge_score ROUGE-2 F (Porter stemmer), mean over docs, 0-1", docs: docs!("rouge.rs"), golden: "tests/golden/rouge" },
    MetricInfo { name: "rougeL", build: rouge::build, higher_is_better: true, output: "generate_until", summary: "rouge_score ROUGE-L F (Porter stemmer), mean over docs, 0-1", docs: docs!("rouge.rs"), golden: "tests/golden/rouge" },
    MetricInfo { name: "rougeLsum", build: rouge::build, higher_is_better: true, output: "generate_until", summary: "rouge_score ROUGE-Lsum F (newline-split sentences), mean over docs, 0-1", docs: docs!("rouge.rs"), golden: "tests/golden/rouge" },
    MetricInfo { name: "smoothed_bleu_4", build: codexglue::build, higher_is_better: true, output: "generate_until", summary: "CodeXGLUE code-to-text smoothed sentence BLEU-4 (lm-eval's code_x_glue bleu.py), 0-100, mean over docs", docs: docs!("codexglue.rs"), golden: "tests/golden/codexglue" },
    MetricInfo { name: "squad", build: squad::build, higher_is_better: true, output: "generate_until", summary: "SQuAD v1.1 official script: keys exact_match, f1 (0-100)", docs: docs!("squad.rs"), golden: "tests/golden/squad" },
    MetricInfo { name: "squad_v2", build: squad::build, higher_is_better: true, output: "generate_until + loglikelihood", summary: "SQuAD v2 official script: exact, f1, HasAns_*, NoAns_*, best_exact, best_f1 (0-100)", docs: docs!("squad.rs"), golden: "tests/golden/squad" },
    MetricInfo { name: "ter", build: translation::build, higher_is_better: false, output: "generate_until", summary: "sacrebleu corpus TER (lower is better), 0-100", docs: docs!("ter.rs"), golden: "tests/golden/sacrebleu" },
    MetricInfo { name: "word_perplexity", build: loglikelihood::build, higher_is_better: false, output: "loglikelihood_rolling", summary: "exp(-sum(ll) / sum(words))", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
];

/// Look up a metric's row; `hit@10` finds `hit@k`.
pub fn info(name: &str) -> Option<&'static MetricInfo> {
    let pattern = match name.split_once('@') {
        Some((base, k)) if k.parse::<usize>().is_ok() => format!("{}@k", base.to_lowercase()),
        _ => name.to_string(),
    };
    let pattern = match pattern.as_str() {
        "hr@k" => "hit@k".to_string(),
        "pass_at_k" => "pass@k".to_string(),
        _ => pattern,
    };
    METRICS
        .iter()
        .find(|m| m.name == pattern || (m.name == "squad_v2" && name == "squadv2"))
}

/// Most cells of a quadratic table (LCS, edit distance) one text pair may need: 100 million,
/// well under a second and at most 1.6 GB (TER's table); CNN/DailyMail pairs need about 50,000.
pub(crate) const MAX_PAIR_CELLS: u64 = 100_000_000;

impl Metric {
    /// Build a metric from its name and options (a `metric_list` entry's extra keys; the
    /// entry's `aggregation` and `higher_is_better` may be among them).
    pub fn build(name: &str, opts: &Options) -> Result<Metric, MetricError> {
        let invalid = |message: String| MetricError::Invalid {
            metric: name.to_string(),
            message,
        };
        if name == "acc_all" {
            // registered in lm-eval 0.4.13, but no scoring path of it emits a value
            return Err(invalid(
                "lm-eval 0.4.13 registers `acc_all` but its scoring never computes it (a task naming it reports nothing), so rubric refuses it; use `acc`, or a `process_results` hook that returns `acc_all` with an aggregation".into(),
            ));
        }
        let row = info(name).ok_or_else(|| {
            let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
            let hint = crate::text::did_you_mean(name, names)
                .map(|h| format!(" (did you mean `{h}`?)"))
                .unwrap_or_default();
            MetricError::Unknown {
                name: name.to_string(),
                hint,
            }
        })?;
        let mut own = opts.clone();
        let aggregation = own.remove("aggregation");
        let higher = own.remove("higher_is_better");
        let spec = (row.build)(name, &own).map_err(invalid)?;
        let aggregation = aggregation_option(aggregation.as_ref(), spec.default_aggregation())
            .map_err(invalid)?;
        let higher_is_better =
            direction_option(higher.as_ref(), row.higher_is_better).map_err(invalid)?;
        Ok(Metric {
            name: name.to_string(),
            spec: Arc::from(spec),
            aggregation,
            higher_is_better,
            reductions: Vec::new(),
            repeats: 1,
        })
    }

    /// A task's `metric_list` entry; `metric` and `aggregation` may be Python hooks. Its
    /// `reduction` over repeats is checked against `repeats` (the task's).
    pub(crate) fn from_config(
        m: &crate::task::config::MetricConfig,
        repeats: usize,
    ) -> Result<Metric, MetricError> {
        let mut metric = Metric::from_config_alone(m)?;
        if let Some(r) = &m.reduction {
            if metric.spec.judge().is_some() {
                // the judge stage grades one response per doc (the first filtered one)
                return Err(MetricError::Invalid {
                    metric: metric.name.clone(),
                    message: "`reduction` over repeats is not supported for `judge`: the judge grades each doc's first filtered response only".into(),
                });
            }
            metric.reductions =
                super::repeats::parse(r).map_err(|message| MetricError::Invalid {
                    metric: metric.name.clone(),
                    message,
                })?;
        }
        metric.repeats = repeats.max(1);
        metric.check_repeats()?;
        Ok(metric)
    }

    fn from_config_alone(m: &crate::task::config::MetricConfig) -> Result<Metric, MetricError> {
        let mut opts = m.kwargs.clone();
        if let Some(a) = &m.aggregation {
            opts.insert("aggregation".into(), a.clone());
        }
        if let Some(h) = m.higher_is_better {
            opts.insert("higher_is_better".into(), Value::Bool(h));
        }
        match (crate::hooks::Hook::from_value(&m.metric), m.metric.as_str()) {
            (Some(hook), _) => super::python::build(hook, &opts),
            (None, Some(name)) => Metric::build(name, &opts),
            (None, None) => Err(MetricError::Invalid {
                metric: m.metric.to_string(),
                message: "`metric` must be a name or `!function module.name`".into(),
            }),
        }
    }

    /// The results keys this metric produces, with the aggregation of each (over repeats:
    /// the reductions' keys, `pass@1(exact_match)`).
    pub fn keys(&self) -> Vec<(String, Aggregation)> {
        if self.reductions.is_empty() {
            self.spec.keys(&self.name, &self.aggregation)
        } else {
            self.reduced_keys()
        }
    }

    /// Per-doc items of one answer, one per key of the metric itself (before any reduction
    /// over repeats): `(key, item)`.
    pub fn score(&self, input: &DocInput) -> Result<Vec<(String, Item)>, MetricError> {
        let items = self
            .spec
            .score(input)
            .map_err(|message| MetricError::Invalid {
                metric: self.name.clone(),
                message,
            })?;
        let keys = self.spec.keys(&self.name, &self.aggregation);
        Ok(keys.into_iter().map(|(k, _)| k).zip(items).collect())
    }

    /// Refuse texts too long for a quadratic metric.
    pub(crate) fn check_size(&self, refs: &[String], pred: &str) -> Result<(), MetricError> {
        self.spec
            .check_size(refs, pred)
            .map_err(|message| MetricError::Invalid {
                metric: self.name.clone(),
                message,
            })
    }

    /// Score one prediction text against its references (no doc around them).
    pub fn score_text(
        &self,
        refs: &[String],
        pred: &str,
    ) -> Result<Vec<(String, Item)>, MetricError> {
        self.check_size(refs, pred)?;
        let p = Prediction {
            text: pred,
            ranked: None,
            refs,
            target: &Value::Null,
            extras: &[],
            no_answer_probability: Some(0.0),
            code: None,
            judged: None,
        };
        self.score(&DocInput::Prediction(&p))
    }
}

/// A pair's quadratic table (cells = product of the lengths `count` gives) against the limit.
pub fn check_pair_cells(
    refs: &[String],
    pred: &str,
    count: impl Fn(&str) -> usize,
    unit: &str,
) -> Result<(), String> {
    let p = count(pred) as u64;
    for r in refs {
        let cells = p.saturating_mul(count(r) as u64);
        if cells > MAX_PAIR_CELLS {
            return Err(format!(
                "a prediction of {p} and a reference of {} {unit} need {cells} table cells, more than rubric's limit of {MAX_PAIR_CELLS}; the texts are far longer than any task's",
                count(r)
            ));
        }
    }
    Ok(())
}

/// The `//!` documentation of a metric's module, as text.
pub(crate) fn explain(name: &str) -> Option<String> {
    let row = info(name)?;
    let doc: Vec<&str> = row
        .docs
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            l.trim_start_matches("//!")
                .strip_prefix(' ')
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect();
    Some(format!(
        "{} ({}, {} is better)\n  {}\n  golden values: {}\n\n{}\n",
        row.name,
        row.output,
        if row.higher_is_better {
            "higher"
        } else {
            "lower"
        },
        row.summary,
        if row.golden.is_empty() {
            "-"
        } else {
            row.golden
        },
        doc.join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_documented() {
        let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "METRICS must stay sorted by name");
        for m in METRICS {
            if m.name != "bypass" {
                assert!(m.docs.starts_with("//!"), "{} has no module docs", m.name);
                assert!(!m.golden.is_empty(), "{} has no golden file", m.name);
            }
        }
    }

    #[test]
    fn judge_refuses_a_reduction_over_repeats() {
        let m: crate::task::config::MetricConfig = serde_json::from_value(serde_json::json!({
            "metric": "judge", "prompt": "{{response}}", "reduction": "avg@4"
        }))
        .unwrap();
        let e = Metric::from_config(&m, 4).unwrap_err().to_string();
        assert!(
            e.contains("`reduction` over repeats is not supported for `judge`"),
            "{e}"
        );
    }

    #[test]
    fn every_name_builds() {
        // a row's build function answers to its name
        for m in METRICS {
            let name = m.name.replace("@k", "@5");
            let mut opts = Options::new();
            if name == "pass@5" {
                opts.insert("k".into(), Value::from(5));
            }
            if name == "judge" {
                opts.insert("prompt".into(), Value::from("{{response}}"));
            }
            Metric::build(&name, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(matches!(
            Metric::build("rouge", &Options::new()),
            Err(MetricError::Unknown { .. })
        ));
    }
}
