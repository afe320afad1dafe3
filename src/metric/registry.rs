//! The table of metrics: every name a `metric_list` entry or `rubric score --metrics` may use,
//! its direction, its default aggregation and its documentation (`rubric metrics explain`).

use serde_json::Value;

use super::aggregate::Aggregation;
use super::classification::Average;
use super::ranking::Ranking;
use super::rouge::RougeType;
use super::{
    codexglue, exact_match, llamafactory, math_equiv, regression, rouge, squad, Item, MetricError,
    Options,
};

/// One row of the metric table.
pub struct MetricInfo {
    /// The name (a pattern with `@k` for ranking and pass@k).
    pub name: &'static str,
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
pub static METRICS: &[MetricInfo] = &[
    MetricInfo { name: "acc", higher_is_better: true, output: "multiple_choice, loglikelihood, generate_until", summary: "accuracy: argmax choice = gold (multiple choice), greedy continuation (loglikelihood), string equality (predictions)", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "acc_bytes", higher_is_better: true, output: "multiple_choice", summary: "accuracy with loglikelihoods divided by the UTF-8 byte length of each choice", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "acc_mutual_info", higher_is_better: true, output: "multiple_choice", summary: "accuracy of ll(choice|context) - ll(choice|empty context)", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "acc_norm", higher_is_better: true, output: "multiple_choice", summary: "accuracy with loglikelihoods divided by the character length of each choice", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "bits_per_byte", higher_is_better: false, output: "loglikelihood_rolling", summary: "-sum(ll) / sum(bytes) / ln 2", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "bleu", higher_is_better: true, output: "generate_until", summary: "sacrebleu corpus BLEU (13a, exp smoothing), 0-100", docs: docs!("bleu.rs"), golden: "tests/golden/sacrebleu" },
    MetricInfo { name: "bleu-4", higher_is_better: true, output: "generate_until", summary: "LLaMA-Factory: NLTK sentence BLEU-4 over characters, method3, mean x100", docs: docs!("llamafactory.rs"), golden: "tests/golden/llamafactory" },
    MetricInfo { name: "brier_score", higher_is_better: false, output: "multiple_choice", summary: "mean over docs of sum((softmax(lls) - onehot(gold))^2)", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "bypass", higher_is_better: true, output: "any", summary: "no metric (--predict-only); reports 999 as lm-eval does", docs: "", golden: "" },
    MetricInfo { name: "byte_perplexity", higher_is_better: false, output: "loglikelihood_rolling", summary: "exp(-sum(ll) / sum(bytes))", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "chrf", higher_is_better: true, output: "generate_until", summary: "sacrebleu corpus chrF (char order 6, beta 2), 0-100", docs: docs!("chrf.rs"), golden: "tests/golden/sacrebleu" },
    MetricInfo { name: "exact_match", higher_is_better: true, output: "generate_until, multiple_choice", summary: "lm-eval exact match with regexes_to_ignore / ignore_case / ignore_punctuation / ignore_numbers", docs: docs!("exact_match.rs"), golden: "tests/golden/exact_match" },
    MetricInfo { name: "f1", higher_is_better: true, output: "multiple_choice, generate_until", summary: "sklearn f1_score over (gold, prediction) labels; option average: binary|macro|micro", docs: docs!("classification.rs"), golden: "tests/golden/classification" },
    MetricInfo { name: "hit@k", higher_is_better: true, output: "multiple_choice (ranking), predictions", summary: "1 if a relevant item is in the top k", docs: docs!("ranking.rs"), golden: "tests/golden/ranking" },
    MetricInfo { name: "invalid_rate", higher_is_better: false, output: "generate_until", summary: "fraction of rating predictions that are not numbers", docs: docs!("regression.rs"), golden: "tests/golden/regression" },
    MetricInfo { name: "likelihood", higher_is_better: true, output: "multiple_choice", summary: "mean probability of the gold choice (exp of its loglikelihood)", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "mae", higher_is_better: false, output: "generate_until", summary: "mean absolute error of numeric predictions; option clip (LaikaLLM)", docs: docs!("regression.rs"), golden: "tests/golden/regression" },
    MetricInfo { name: "map@k", higher_is_better: true, output: "multiple_choice (ranking), predictions", summary: "mean average precision at k (standard)", docs: docs!("ranking.rs"), golden: "tests/golden/ranking" },
    MetricInfo { name: "map_laika@k", higher_is_better: true, output: "multiple_choice (ranking), predictions", summary: "LaikaLLM's MAP@k (divides by the hits found)", docs: docs!("ranking.rs"), golden: "tests/golden/ranking" },
    MetricInfo { name: "math_equiv", higher_is_better: true, output: "generate_until", summary: "normalised string or numeric equality of math answers", docs: docs!("math_equiv.rs"), golden: "tests/golden/math_equiv" },
    MetricInfo { name: "mcc", higher_is_better: true, output: "multiple_choice, generate_until", summary: "sklearn matthews_corrcoef over (gold, prediction) labels", docs: docs!("classification.rs"), golden: "tests/golden/classification" },
    MetricInfo { name: "mrr@k", higher_is_better: true, output: "multiple_choice (ranking), predictions", summary: "reciprocal rank of the first relevant item within the top k", docs: docs!("ranking.rs"), golden: "tests/golden/ranking" },
    MetricInfo { name: "ndcg@k", higher_is_better: true, output: "multiple_choice (ranking), predictions", summary: "normalised discounted cumulative gain at k (standard)", docs: docs!("ranking.rs"), golden: "tests/golden/ranking" },
    MetricInfo { name: "ndcg_laika@k", higher_is_better: true, output: "multiple_choice (ranking), predictions", summary: "LaikaLLM's NDCG@k (ideal DCG from the hits found)", docs: docs!("ranking.rs"), golden: "tests/golden/ranking" },
    MetricInfo { name: "pass@k", higher_is_better: true, output: "generate_until (code)", summary: "HF code_eval unbiased pass@k over repeats (metric `pass_at_k` with `k: [..]`)", docs: docs!("pass_at_k.rs"), golden: "tests/golden/pass_at_k" },
    MetricInfo { name: "perplexity", higher_is_better: false, output: "loglikelihood", summary: "exp(-mean(loglikelihood))", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
    MetricInfo { name: "rmse", higher_is_better: false, output: "generate_until", summary: "root mean squared error of numeric predictions; option clip (LaikaLLM)", docs: docs!("regression.rs"), golden: "tests/golden/regression" },
    MetricInfo { name: "rouge-1", higher_is_better: true, output: "generate_until", summary: "LLaMA-Factory: rouge_chinese ROUGE-1 F on jieba tokens, mean x100", docs: docs!("llamafactory.rs"), golden: "tests/golden/llamafactory" },
    MetricInfo { name: "rouge-2", higher_is_better: true, output: "generate_until", summary: "LLaMA-Factory: rouge_chinese ROUGE-2 F on jieba tokens, mean x100", docs: docs!("llamafactory.rs"), golden: "tests/golden/llamafactory" },
    MetricInfo { name: "rouge-l", higher_is_better: true, output: "generate_until", summary: "LLaMA-Factory: rouge_chinese ROUGE-L F on jieba tokens, mean x100", docs: docs!("llamafactory.rs"), golden: "tests/golden/llamafactory" },
    MetricInfo { name: "rouge1", higher_is_better: true, output: "generate_until", summary: "rouge_score ROUGE-1 F (Porter stemmer), mean over docs, 0-1", docs: docs!("rouge.rs"), golden: "tests/golden/rouge" },
    MetricInfo { name: "rouge2", higher_is_better: true, output: "generate_until", summary: "rouge_score ROUGE-2 F (Porter stemmer), mean over docs, 0-1", docs: docs!("rouge.rs"), golden: "tests/golden/rouge" },
    MetricInfo { name: "rougeL", higher_is_better: true, output: "generate_until", summary: "rouge_score ROUGE-L F (Porter stemmer), mean over docs, 0-1", docs: docs!("rouge.rs"), golden: "tests/golden/rouge" },
    MetricInfo { name: "rougeLsum", higher_is_better: true, output: "generate_until", summary: "rouge_score ROUGE-Lsum F (newline-split sentences), mean over docs, 0-1", docs: docs!("rouge.rs"), golden: "tests/golden/rouge" },
    MetricInfo { name: "smoothed_bleu_4", higher_is_better: true, output: "generate_until", summary: "CodeXGLUE code-to-text smoothed sentence BLEU-4 (lm-eval's code_x_glue bleu.py), 0-100, mean over docs", docs: docs!("codexglue.rs"), golden: "tests/golden/codexglue" },
    MetricInfo { name: "squad", higher_is_better: true, output: "generate_until", summary: "SQuAD v1.1 official script: keys exact_match, f1 (0-100)", docs: docs!("squad.rs"), golden: "tests/golden/squad" },
    MetricInfo { name: "squad_v2", higher_is_better: true, output: "generate_until + loglikelihood", summary: "SQuAD v2 official script: exact, f1, HasAns_*, NoAns_*, best_exact, best_f1 (0-100)", docs: docs!("squad.rs"), golden: "tests/golden/squad" },
    MetricInfo { name: "ter", higher_is_better: false, output: "generate_until", summary: "sacrebleu corpus TER (lower is better), 0-100", docs: docs!("ter.rs"), golden: "tests/golden/sacrebleu" },
    MetricInfo { name: "word_perplexity", higher_is_better: false, output: "loglikelihood_rolling", summary: "exp(-sum(ll) / sum(words))", docs: docs!("loglikelihood.rs"), golden: "tests/golden/loglikelihood" },
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
pub const MAX_PAIR_CELLS: u64 = 100_000_000;

/// What a metric computes, with its options resolved.
#[derive(Debug, Clone)]
pub enum Kind {
    ExactMatch(exact_match::Options),
    Bleu,
    Chrf,
    Ter,
    Rouge {
        kind: RougeType,
        measure: Measure,
        stem: bool,
        collapse_whitespace: bool,
    },
    Squad,
    SquadV2,
    PassAtK(Vec<usize>),
    LlamaFactory(LlamaFactoryKey),
    Ranking(Ranking),
    Rmse {
        clip: bool,
    },
    Mae {
        clip: bool,
    },
    InvalidRate,
    MathEquiv,
    SmoothedBleu4,
    F1(Average),
    Mcc,
    Acc,
    AccNorm,
    AccBytes,
    AccMutualInfo,
    Likelihood,
    BrierScore,
    Perplexity,
    WordPerplexity,
    BytePerplexity,
    BitsPerByte,
    Bypass,
}

/// Which of LLaMA-Factory's four scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlamaFactoryKey {
    Bleu4,
    Rouge1,
    Rouge2,
    RougeL,
}

/// Which ROUGE statistic a `rouge*` metric reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Precision,
    Recall,
    Fmeasure,
}

/// A metric ready to score: its results key(s), aggregation and direction.
#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub kind: Kind,
    pub aggregation: Aggregation,
    pub higher_is_better: bool,
    /// The entry's options as written (e.g. squad_v2's `no_answer_request`).
    pub options: Options,
}

fn flag(opts: &Options, key: &str, default: bool) -> Result<bool, String> {
    match opts.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("option `{key}` must be true or false, got {other}")),
    }
}

impl Metric {
    /// Build a metric from its name and options (a `metric_list` entry's extra keys).
    pub fn build(name: &str, opts: &Options) -> Result<Metric, MetricError> {
        let invalid = |message: String| MetricError::Invalid {
            metric: name.to_string(),
            message,
        };
        let row = info(name).ok_or_else(|| {
            let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
            let hint = crate::task::config::did_you_mean(name, names)
                .map(|h| format!(" (did you mean `{h}`?)"))
                .unwrap_or_default();
            MetricError::Unknown {
                name: name.to_string(),
                hint,
            }
        })?;
        let kind = match name {
            "exact_match" => {
                Kind::ExactMatch(exact_match::Options::from_kwargs(opts).map_err(invalid)?)
            }
            "bleu" => Kind::Bleu,
            "chrf" => Kind::Chrf,
            "ter" => Kind::Ter,
            "rouge1" | "rouge2" | "rougeL" | "rougeLsum" => Kind::Rouge {
                kind: RougeType::parse(name).expect("listed rouge types parse"),
                measure: match opts.get("measure").and_then(Value::as_str) {
                    None | Some("fmeasure") | Some("f") => Measure::Fmeasure,
                    Some("precision") | Some("p") => Measure::Precision,
                    Some("recall") | Some("r") => Measure::Recall,
                    Some(other) => {
                        return Err(invalid(format!(
                            "option `measure` must be fmeasure, precision or recall, got `{other}`"
                        )))
                    }
                },
                stem: flag(opts, "use_stemmer", true).map_err(invalid)?,
                collapse_whitespace: flag(opts, "collapse_whitespace", false).map_err(invalid)?,
            },
            "squad" => Kind::Squad,
            "squad_v2" | "squadv2" => Kind::SquadV2,
            "bleu-4" => Kind::LlamaFactory(LlamaFactoryKey::Bleu4),
            "rouge-1" => Kind::LlamaFactory(LlamaFactoryKey::Rouge1),
            "rouge-2" => Kind::LlamaFactory(LlamaFactoryKey::Rouge2),
            "rouge-l" => Kind::LlamaFactory(LlamaFactoryKey::RougeL),
            "rmse" => Kind::Rmse {
                clip: flag(opts, "clip", false).map_err(invalid)?,
            },
            "mae" => Kind::Mae {
                clip: flag(opts, "clip", false).map_err(invalid)?,
            },
            "invalid_rate" => Kind::InvalidRate,
            "math_equiv" => Kind::MathEquiv,
            "smoothed_bleu_4" => Kind::SmoothedBleu4,
            "f1" => Kind::F1(match opts.get("average").and_then(Value::as_str) {
                None => Average::Binary,
                Some(a) => Average::parse(a).ok_or_else(|| {
                    invalid(format!(
                        "option `average` must be binary, macro, micro or auto, got `{a}`"
                    ))
                })?,
            }),
            "mcc" => Kind::Mcc,
            "acc" => Kind::Acc,
            "acc_norm" => Kind::AccNorm,
            "acc_bytes" => Kind::AccBytes,
            "acc_mutual_info" => Kind::AccMutualInfo,
            "likelihood" => Kind::Likelihood,
            "brier_score" => Kind::BrierScore,
            "perplexity" => Kind::Perplexity,
            "word_perplexity" => Kind::WordPerplexity,
            "byte_perplexity" => Kind::BytePerplexity,
            "bits_per_byte" => Kind::BitsPerByte,
            "bypass" => Kind::Bypass,
            other if other.starts_with("pass@") || other == "pass_at_k" => {
                let ks = match opts.get("k") {
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| v.as_u64().map(|k| k as usize))
                        .collect::<Option<Vec<_>>>(),
                    Some(v) => v.as_u64().map(|k| vec![k as usize]),
                    None => other
                        .strip_prefix("pass@")
                        .and_then(|k| k.parse().ok())
                        .map(|k| vec![k]),
                };
                Kind::PassAtK(
                    ks.filter(|k| !k.is_empty() && k.iter().all(|x| *x > 0))
                        .ok_or_else(|| {
                            invalid("needs `k` (a positive integer or a list of them)".into())
                        })?,
                )
            }
            other => Kind::Ranking(
                Ranking::parse(other)
                    .ok_or_else(|| invalid("expected NAME@K with K a positive integer".into()))?,
            ),
        };
        let aggregation = match opts.get("aggregation").and_then(Value::as_str) {
            Some(a) => Aggregation::parse(a)
                .ok_or_else(|| invalid(format!("unknown aggregation `{a}`")))?,
            None => Aggregation::default_for(&kind),
        };
        let higher_is_better = match opts.get("higher_is_better") {
            Some(Value::Bool(b)) => *b,
            _ => row.higher_is_better,
        };
        Ok(Metric {
            name: name.to_string(),
            kind,
            aggregation,
            higher_is_better,
            options: opts.clone(),
        })
    }

    /// The results keys this metric produces, with the aggregation of each.
    pub fn keys(&self) -> Vec<(String, Aggregation)> {
        match &self.kind {
            Kind::Squad => vec![
                ("exact_match".into(), Aggregation::Mean),
                ("f1".into(), Aggregation::Mean),
            ],
            Kind::SquadV2 => [
                "exact",
                "f1",
                "HasAns_exact",
                "HasAns_f1",
                "NoAns_exact",
                "NoAns_f1",
                "best_exact",
                "best_f1",
            ]
            .iter()
            .map(|k| (k.to_string(), Aggregation::SquadV2(k)))
            .collect(),
            Kind::PassAtK(ks) => ks
                .iter()
                .map(|k| (format!("pass@{k}"), Aggregation::Mean))
                .collect(),
            _ => vec![(self.name.clone(), self.aggregation.clone())],
        }
    }

    /// Score one generated text against its references; one item per results key.
    /// (`PassAtK` needs executed samples and is scored by the code-execution step.)
    /// Refuse a prediction-reference pair whose quadratic table (the LCS of ROUGE-L and
    /// ROUGE-Lsum, TER's edit distance, LLaMA-Factory's character ROUGE-L) would exceed
    /// `MAX_PAIR_CELLS`: the reference tools would run for hours or exhaust memory on it, and
    /// rubric would abort.
    pub fn check_size(&self, refs: &[String], pred: &str) -> Result<(), MetricError> {
        let words = |s: &str| s.split_whitespace().count() as u64;
        let chars = |s: &str| s.chars().count() as u64;
        let count: Option<&dyn Fn(&str) -> u64> = match &self.kind {
            Kind::Rouge {
                kind: rouge::RougeType::L | rouge::RougeType::Lsum,
                ..
            }
            | Kind::Ter => Some(&words),
            Kind::LlamaFactory(LlamaFactoryKey::RougeL) => Some(&chars),
            _ => None,
        };
        let Some(count) = count else { return Ok(()) };
        let p = count(pred);
        for r in refs {
            let cells = p.saturating_mul(count(r));
            if cells > MAX_PAIR_CELLS {
                return Err(MetricError::Invalid {
                    metric: self.name.clone(),
                    message: format!(
                        "a prediction of {p} and a reference of {} {} need {cells} table cells, more than rubric's limit of {MAX_PAIR_CELLS}; the texts are far longer than any task's",
                        count(r),
                        if matches!(self.kind, Kind::LlamaFactory(_)) { "characters" } else { "words" }
                    ),
                });
            }
        }
        Ok(())
    }

    pub fn score_text(
        &self,
        refs: &[String],
        pred: &str,
    ) -> Result<Vec<(String, Item)>, MetricError> {
        self.check_size(refs, pred)?;
        let one = |item: Item| Ok(vec![(self.name.clone(), item)]);
        let first = refs.first().cloned().unwrap_or_default();
        match &self.kind {
            Kind::ExactMatch(o) => one(Item::Score(exact_match::score(o, refs, pred))),
            Kind::Bleu | Kind::Chrf | Kind::Ter => one(Item::Translation {
                refs: refs.to_vec(),
                hyp: pred.to_string(),
            }),
            Kind::Rouge {
                kind,
                measure,
                stem,
                collapse_whitespace,
            } => {
                let clean = |s: &str| {
                    if *collapse_whitespace {
                        crate::text::py_split(s).collect::<Vec<_>>().join(" ")
                    } else {
                        s.to_string()
                    }
                };
                let refs: Vec<String> = refs.iter().map(|r| clean(r)).collect();
                let s = rouge::score_multi(*kind, &refs, &clean(pred), *stem);
                one(Item::Score(match measure {
                    Measure::Fmeasure => s.fmeasure,
                    Measure::Precision => s.precision,
                    Measure::Recall => s.recall,
                }))
            }
            Kind::Squad => {
                let (e, f) = squad::score_v1(refs, pred);
                Ok(vec![
                    ("exact_match".into(), Item::Score(100.0 * e)),
                    ("f1".into(), Item::Score(100.0 * f)),
                ])
            }
            Kind::SquadV2 => {
                let q = squad::Question {
                    prediction: pred.to_string(),
                    no_answer_probability: 0.0,
                    answers: refs.to_vec(),
                };
                Ok(self
                    .keys()
                    .into_iter()
                    .map(|(k, _)| (k, Item::Squad(q.clone())))
                    .collect())
            }
            Kind::LlamaFactory(key) => {
                let s = llamafactory::score(pred, &first);
                one(Item::Score(match key {
                    LlamaFactoryKey::Bleu4 => s.bleu4,
                    LlamaFactoryKey::Rouge1 => s.rouge1,
                    LlamaFactoryKey::Rouge2 => s.rouge2,
                    LlamaFactoryKey::RougeL => s.rougel,
                }))
            }
            Kind::Ranking(r) => {
                let ranked: Vec<String> = pred
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                one(Item::Score(r.score(&ranked, refs)))
            }
            Kind::Rmse { .. } | Kind::Mae { .. } | Kind::InvalidRate => {
                let truth =
                    regression::parse_number(&first).ok_or_else(|| MetricError::Invalid {
                        metric: self.name.clone(),
                        message: format!("the reference {first:?} is not a number"),
                    })?;
                one(Item::Rating(regression::parse_number(pred), truth))
            }
            Kind::MathEquiv => one(Item::Score(
                refs.iter()
                    .map(|r| math_equiv::score(r, pred))
                    .fold(0.0, f64::max),
            )),
            Kind::SmoothedBleu4 => one(Item::Score(codexglue::smoothed_bleu_4(&first, pred))),
            Kind::F1(_) | Kind::Mcc => one(Item::Labels(
                Value::String(first),
                Value::String(pred.to_string()),
            )),
            Kind::Acc => one(Item::Score(f64::from(u8::from(
                refs.iter().any(|r| r == pred),
            )))),
            Kind::Bypass => one(Item::Score(f64::NAN)),
            Kind::PassAtK(_) => Err(MetricError::Invalid {
                metric: self.name.clone(),
                message: "pass@k needs code execution; use it in a code task".into(),
            }),
            _ => Err(MetricError::Invalid {
                metric: self.name.clone(),
                message: "this metric is computed from loglikelihoods, not from generated text"
                    .into(),
            }),
        }
    }
}

/// The `//!` documentation of a metric's module, as text.
pub fn explain(name: &str) -> Option<String> {
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
    fn every_name_builds() {
        for m in METRICS {
            let name = m.name.replace("@k", "@5");
            let mut opts = Options::new();
            if name == "pass@5" {
                opts.insert("k".into(), Value::from(5));
            }
            Metric::build(&name, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(matches!(
            Metric::build("rouge", &Options::new()),
            Err(MetricError::Unknown { .. })
        ));
    }
}
