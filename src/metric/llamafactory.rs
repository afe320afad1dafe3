//! `bleu-4`, `rouge-1`, `rouge-2`, `rouge-l`: LLaMA-Factory's predict metrics
//! (`src/llamafactory/train/sft/metric.py: ComputeSimilarity`), 0-100.
//!
//! Per sample: `bleu-4` is NLTK's `sentence_bleu([list(label)], list(pred),
//! smoothing_function=method3)` over *characters* (weights 0.25 x 4, NIST geometric
//! smoothing of zero precisions, `math.fsum` of the weighted logs); the ROUGE scores are
//! rouge_chinese 1.0.3's F on jieba tokens (`Rouge().get_scores(" ".join(jieba.cut(pred)),
//! " ".join(jieba.cut(label)))`): sentences cut at `。！？?`, `......`, `……`, whitespace
//! collapsed, words from `split(" ")`; ROUGE-1/2 on *sets* of n-grams, ROUGE-L the LCS of the
//! flattened word lists; F = 2PR/(P+R+1e-8). Both sides empty after tokenization: 0. Each
//! per-sample value is x100 and rounded to 4 places (Python's `round`); the corpus value is
//! the plain mean. Tokenization uses jieba-rs (the same dictionary and HMM as Python jieba).

use super::spec::{first_ref, not_for, DocInput, MetricSpec};
use super::Item;

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::py::re;

fn jieba() -> &'static jieba_rs::Jieba {
    static J: OnceLock<jieba_rs::Jieba> = OnceLock::new();
    J.get_or_init(jieba_rs::Jieba::new)
}

/// Python jieba 0.42.1's `re_han_default` character class.
fn is_han_default(c: char) -> bool {
    ('\u{4E00}'..='\u{9FD5}').contains(&c)
        || c.is_ascii_alphanumeric()
        || matches!(c, '+' | '#' | '&' | '.' | '_' | '%' | '-')
}

/// The ASCII-only words of jieba's dictionary (`dict.txt`), which the DAG prefers.
const ASCII_DICT: &[&str] = &["AT&T", "c++", "C++", "c#", "C#"];

/// finalseg's split of a non-Han buffer: `re.split(r"([a-zA-Z0-9]+(?:\.\d+)?%?)", buf)`.
fn finalseg_skip_split(buf: &str, out: &mut Vec<String>) {
    let chars: Vec<char> = buf.chars().collect();
    let mut i = 0;
    let mut other = String::new();
    while i < chars.len() {
        if chars[i].is_ascii_alphanumeric() {
            if !other.is_empty() {
                out.push(std::mem::take(&mut other));
            }
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < chars.len() && chars[i] == '%' {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            other.push(chars[i]);
            i += 1;
        }
    }
    if !other.is_empty() {
        out.push(other);
    }
}

/// `jieba.cut(text)` (accurate mode, HMM on) as Python jieba 0.42.1 segments it.
///
/// Blocks are split with jieba's own character classes. Blocks holding Han characters go to
/// jieba-rs (same dictionary and HMM). Blocks without Han characters are segmented here,
/// because jieba-rs differs from Python there (its HMM skip pattern has an unescaped `.`, so
/// `10-20` stays whole where Python yields `10`, `-`, `20`): dictionary words (`C++`, `AT&T`,
/// ...) are kept, the rest goes through finalseg's `[a-zA-Z0-9]+(\.\d+)?%?` split.
pub(crate) fn jieba_cut(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_han_default(chars[i]) {
            let start = i;
            while i < chars.len() && is_han_default(chars[i]) {
                i += 1;
            }
            let block: String = chars[start..i].iter().collect();
            if block
                .chars()
                .any(|c| ('\u{4E00}'..='\u{9FD5}').contains(&c))
            {
                out.extend(jieba().cut(&block, true).into_iter().map(String::from));
            } else {
                let mut rest = block.as_str();
                let mut buf = String::new();
                while !rest.is_empty() {
                    if let Some(w) = ASCII_DICT.iter().find(|w| rest.starts_with(**w)) {
                        match buf.chars().count() {
                            0 => {}
                            1 => out.push(std::mem::take(&mut buf)),
                            _ => finalseg_skip_split(&std::mem::take(&mut buf), &mut out),
                        }
                        out.push(w.to_string());
                        rest = &rest[w.len()..];
                    } else {
                        let c = rest.chars().next().expect("non-empty");
                        buf.push(c);
                        rest = &rest[c.len_utf8()..];
                    }
                }
                match buf.chars().count() {
                    0 => {}
                    1 => out.push(buf),
                    _ => finalseg_skip_split(&buf, &mut out),
                }
            }
        } else {
            // re_skip_default: "\r\n" or one whitespace character; anything else char by char
            if chars[i] == '\r' && chars.get(i + 1) == Some(&'\n') {
                out.push("\r\n".into());
                i += 2;
            } else {
                out.push(chars[i].to_string());
                i += 1;
            }
        }
    }
    out
}

/// `round(x, ndigits)` as Python rounds floats (correctly rounded, half to even on the
/// exact binary value).
pub(crate) fn py_round(x: f64, ndigits: usize) -> f64 {
    format!("{x:.ndigits$}").parse().unwrap_or(x)
}

/// `math.fsum`: the correctly rounded sum (Shewchuk's partials).
pub(crate) fn fsum(xs: impl IntoIterator<Item = f64>) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for mut x in xs {
        let mut i = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        partials.truncate(i);
        partials.push(x);
    }
    // sum the partials from the top, with the half-way correction CPython applies
    let mut n = partials.len();
    if n == 0 {
        return 0.0;
    }
    n -= 1;
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        let yr = x - hi;
        if y == yr {
            hi = x;
        }
    }
    hi
}

/// NLTK `sentence_bleu` with one reference, default weights and `method3` smoothing, on
/// sequences of items (characters here).
pub(crate) fn sentence_bleu_method3<T: Eq + std::hash::Hash>(
    reference: &[T],
    hypothesis: &[T],
) -> f64 {
    use std::collections::HashMap;
    let mut nums = [0u64; 4];
    let mut dens = [0u64; 4];
    for n in 1..=4 {
        let mut counts: HashMap<&[T], u64> = HashMap::new();
        if hypothesis.len() >= n {
            for w in hypothesis.windows(n) {
                *counts.entry(w).or_insert(0) += 1;
            }
        }
        let mut ref_counts: HashMap<&[T], u64> = HashMap::new();
        if reference.len() >= n {
            for w in reference.windows(n) {
                *ref_counts.entry(w).or_insert(0) += 1;
            }
        }
        nums[n - 1] = counts
            .iter()
            .map(|(g, c)| (*c).min(*ref_counts.get(g).unwrap_or(&0)))
            .sum();
        dens[n - 1] = counts.values().sum::<u64>().max(1);
    }
    if nums[0] == 0 {
        return 0.0;
    }
    let (hyp_len, ref_len) = (hypothesis.len() as f64, reference.len() as f64);
    let bp = if hyp_len > ref_len {
        1.0
    } else if hyp_len == 0.0 {
        0.0
    } else {
        (1.0 - ref_len / hyp_len).exp()
    };
    let mut incvnt = 1;
    let mut p = [0.0f64; 4];
    for i in 0..4 {
        p[i] = if nums[i] == 0 {
            let v = 1.0 / (2f64.powi(incvnt) * dens[i] as f64);
            incvnt += 1;
            v
        } else {
            nums[i] as f64 / dens[i] as f64
        };
    }
    bp * fsum(p.iter().filter(|&&x| x > 0.0).map(|x| 0.25 * x.ln())).exp()
}

/// rouge_chinese's `Rouge.cut_sent`.
fn cut_sent(para: &str) -> Vec<String> {
    static RES: OnceLock<Vec<re::PyRegex>> = OnceLock::new();
    let res = RES.get_or_init(|| {
        [
            r"([。！？\?])([^”’])",
            r"(\.{6})([^”’])",
            r"(\…{2})([^”’])",
            r"([。！？\?][”’])([^，。！？\?])",
        ]
        .iter()
        .map(|p| re::compile(p).expect("fixed patterns compile"))
        .collect()
    });
    let mut s = para.to_string();
    for re in res {
        s = re::sub(re, "\\1\n\\2", &s, 0).unwrap_or(s);
    }
    crate::text::py_rstrip(&s)
        .split('\n')
        .map(String::from)
        .collect()
}

/// Words of a text as rouge_chinese sees them (sentences cut, whitespace collapsed,
/// `split(" ")`, flattened).
fn words(text: &str) -> Vec<String> {
    cut_sent(text)
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| crate::text::py_split(&s).collect::<Vec<_>>().join(" "))
        .flat_map(|s| s.split(' ').map(String::from).collect::<Vec<_>>())
        .collect()
}

fn f_with_eps(p: f64, r: f64) -> f64 {
    2.0 * ((p * r) / (p + r + 1e-8))
}

fn rouge_n(hyp: &[String], reference: &[String], n: usize) -> f64 {
    let grams = |w: &[String]| -> HashSet<Vec<String>> {
        if w.len() < n {
            return HashSet::new();
        }
        w.windows(n).map(|g| g.to_vec()).collect()
    };
    let (h, r) = (grams(hyp), grams(reference));
    let overlap = h.intersection(&r).count() as f64;
    let p = if h.is_empty() {
        0.0
    } else {
        overlap / h.len() as f64
    };
    let rc = if r.is_empty() {
        0.0
    } else {
        overlap / r.len() as f64
    };
    f_with_eps(p, rc)
}

fn rouge_l(hyp: &[String], reference: &[String]) -> f64 {
    let mut prev = vec![0usize; hyp.len() + 1];
    let mut cur = vec![0usize; hyp.len() + 1];
    for x in reference {
        for (j, y) in hyp.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let llcs = prev[hyp.len()] as f64;
    let r = llcs / reference.len() as f64;
    let p = llcs / hyp.len() as f64;
    f_with_eps(p, r)
}

/// The four per-sample scores (x100, rounded to 4 places): bleu-4, rouge-1, rouge-2, rouge-l.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub bleu4: f64,
    pub rouge1: f64,
    pub rouge2: f64,
    pub rougel: f64,
}

/// Score one prediction against its label.
pub fn score(pred: &str, label: &str) -> Scores {
    let hyp_text = jieba_cut(pred).join(" ");
    let ref_text = jieba_cut(label).join(" ");
    let empty = |s: &str| crate::text::py_split(s).next().is_none();
    let (r1, r2, rl) = if empty(&hyp_text) || empty(&ref_text) {
        (0.0, 0.0, 0.0)
    } else {
        let (h, r) = (words(&hyp_text), words(&ref_text));
        (rouge_n(&h, &r, 1), rouge_n(&h, &r, 2), rouge_l(&h, &r))
    };
    let pc: Vec<char> = pred.chars().collect();
    let lc: Vec<char> = label.chars().collect();
    let bleu = sentence_bleu_method3(&lc, &pc);
    Scores {
        bleu4: py_round(bleu * 100.0, 4),
        rouge1: py_round(r1 * 100.0, 4),
        rouge2: py_round(r2 * 100.0, 4),
        rougel: py_round(rl * 100.0, 4),
    }
}

/// One of LLaMA-Factory's four predict scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LlamaFactoryMetric {
    Bleu4,
    Rouge1,
    Rouge2,
    RougeL,
}

pub fn build(name: &str, _opts: &super::Options) -> Result<Box<dyn MetricSpec>, String> {
    Ok(Box::new(match name {
        "bleu-4" => LlamaFactoryMetric::Bleu4,
        "rouge-1" => LlamaFactoryMetric::Rouge1,
        "rouge-2" => LlamaFactoryMetric::Rouge2,
        _ => LlamaFactoryMetric::RougeL,
    }))
}

impl MetricSpec for LlamaFactoryMetric {
    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        let DocInput::Prediction(p) = input else {
            return Err(not_for(input));
        };
        let s = score(p.text, &first_ref(p.refs));
        Ok(vec![Item::Score(match self {
            LlamaFactoryMetric::Bleu4 => s.bleu4,
            LlamaFactoryMetric::Rouge1 => s.rouge1,
            LlamaFactoryMetric::Rouge2 => s.rouge2,
            LlamaFactoryMetric::RougeL => s.rougel,
        })])
    }

    fn check_size(&self, refs: &[String], pred: &str) -> Result<(), String> {
        match self {
            // the character LCS of rouge-l
            LlamaFactoryMetric::RougeL => {
                super::check_pair_cells(refs, pred, |s| s.chars().count(), "characters")
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsum_is_exact() {
        assert_eq!(fsum([0.1; 10]), 1.0);
        assert_eq!(fsum([1e100, 1.0, -1e100, 1e-100]), 1.0);
    }

    #[test]
    fn python_round() {
        assert_eq!(py_round(2.675, 2), 2.67); // 2.675 is 2.67499999... in binary
        assert_eq!(py_round(0.125, 2), 0.12); // half to even
    }
}
