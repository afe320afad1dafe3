//! `rouge1`, `rouge2`, `rougeL`, `rougeLsum`: ROUGE as Google's rouge_score 0.1.2 computes it
//! with `RougeScorer([...], use_stemmer=True)`; per doc F-measure (precision or recall with
//! the option `measure`), averaged over docs; 0-1.
//!
//! Tokenizer (`rouge_score/tokenize.py`): lowercase, every run of characters outside `[a-z0-9]`
//! becomes a space, split, Porter-stem (NLTK) tokens longer than 3 characters, drop empty
//! tokens. ROUGE-N: clipped n-gram overlap; ROUGE-L: LCS; ROUGE-Lsum: summary-level LCS over
//! sentences split on newlines (union LCS per reference sentence, each token counted at most
//! as often as it occurs on both sides). With several references, `score_multi` keeps the
//! reference with the best F-measure per type. Empty text on either side scores 0.
//! lm-eval's `cnn_dailymail` collapses whitespace first (`collapse_whitespace: true`).

use super::spec::{flag, not_for, DocInput, MetricSpec};
use super::Item;

use std::collections::HashMap;

use crate::text::porter;

/// ROUGE variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RougeType {
    N(usize),
    L,
    Lsum,
}

impl RougeType {
    pub fn parse(name: &str) -> Option<RougeType> {
        match name {
            "rougeL" => Some(RougeType::L),
            "rougeLsum" => Some(RougeType::Lsum),
            _ => {
                let n: usize = name.strip_prefix("rouge")?.parse().ok()?;
                (1..=9).contains(&n).then_some(RougeType::N(n))
            }
        }
    }
}

/// Precision, recall and F-measure.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Score {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

fn fmeasure(p: f64, r: f64) -> f64 {
    if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    }
}

/// The Porter stem of a token, memoised per thread (corpora repeat their words).
fn stem_cached(tok: String) -> String {
    thread_local! {
        static CACHE: std::cell::RefCell<HashMap<String, String>> = std::cell::RefCell::new(HashMap::new());
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(s) = c.get(&tok) {
            return s.clone();
        }
        let s = porter::stem(&tok);
        if c.len() < 1_000_000 {
            c.insert(tok, s.clone());
        }
        s
    })
}

/// rouge_score's `tokenize(text, PorterStemmer())`.
pub(crate) fn tokenize(text: &str, stem: bool) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            let tok = std::mem::take(cur);
            out.push(if stem && tok.len() > 3 {
                stem_cached(tok)
            } else {
                tok
            });
        }
    };
    for c in lower.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            cur.push(c);
        } else {
            flush(&mut cur, &mut out);
        }
    }
    flush(&mut cur, &mut out);
    // the final check keeps only [a-z0-9]+ tokens, which a stem always is
    out.retain(|t| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    out
}

/// A token list as ids (equal tokens, equal ids), per pair of texts.
struct Interner<'a> {
    ids: HashMap<&'a str, u32>,
}

impl<'a> Interner<'a> {
    fn new() -> Self {
        Interner {
            ids: HashMap::new(),
        }
    }

    fn ids(&mut self, tokens: &'a [String]) -> Vec<u32> {
        tokens
            .iter()
            .map(|t| {
                let n = self.ids.len() as u32;
                *self.ids.entry(t.as_str()).or_insert(n)
            })
            .collect()
    }
}

fn ngram_counts(tokens: &[u32], n: usize) -> HashMap<&[u32], u64> {
    let mut m = HashMap::with_capacity(tokens.len());
    if tokens.len() >= n {
        for w in tokens.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

fn score_ngrams(target: &[u32], prediction: &[u32], n: usize) -> Score {
    let t = ngram_counts(target, n);
    let p = ngram_counts(prediction, n);
    let inter: u64 = t
        .iter()
        .map(|(g, c)| (*c).min(*p.get(g).unwrap_or(&0)))
        .sum();
    let tc: u64 = t.values().sum();
    let pc: u64 = p.values().sum();
    let precision = inter as f64 / pc.max(1) as f64;
    let recall = inter as f64 / tc.max(1) as f64;
    Score {
        precision,
        recall,
        fmeasure: fmeasure(precision, recall),
    }
}

/// LCS length with two rows (the table itself is only needed for backtracking).
fn lcs_len(a: &[u32], b: &[u32]) -> usize {
    let mut prev = vec![0u32; b.len() + 1];
    let mut cur = vec![0u32; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()] as usize
}

fn score_lcs(target: &[u32], prediction: &[u32]) -> Score {
    if target.is_empty() || prediction.is_empty() {
        return Score::default();
    }
    let l = lcs_len(target, prediction) as f64;
    let precision = l / prediction.len() as f64;
    let recall = l / target.len() as f64;
    Score {
        precision,
        recall,
        fmeasure: fmeasure(precision, recall),
    }
}

/// Indices into `r` of one LCS with `c`, as rouge_score's `_backtrack_norec` picks it.
fn lcs_indices(r: &[u32], c: &[u32], out: &mut Vec<usize>) {
    let (rows, cols) = (r.len(), c.len());
    let w = cols + 1;
    let mut t = vec![0u32; (rows + 1) * w];
    for i in 1..=rows {
        for j in 1..=cols {
            t[i * w + j] = if r[i - 1] == c[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let (mut i, mut j) = (rows, cols);
    while i > 0 && j > 0 {
        if r[i - 1] == c[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if t[i * w + j - 1] > t[(i - 1) * w + j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
}

fn summary_lcs(refs: &[Vec<u32>], cands: &[Vec<u32>]) -> Score {
    if refs.is_empty() || cands.is_empty() {
        return Score::default();
    }
    let m: usize = refs.iter().map(Vec::len).sum();
    let n: usize = cands.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return Score::default();
    }
    let mut cnt_r: HashMap<u32, i64> = HashMap::new();
    let mut cnt_c: HashMap<u32, i64> = HashMap::new();
    for t in refs.iter().flatten() {
        *cnt_r.entry(*t).or_insert(0) += 1;
    }
    for t in cands.iter().flatten() {
        *cnt_c.entry(*t).or_insert(0) += 1;
    }
    let mut hits = 0usize;
    let mut union = Vec::new();
    for r in refs {
        union.clear();
        for c in cands {
            lcs_indices(r, c, &mut union);
        }
        union.sort_unstable();
        union.dedup();
        for &i in &union {
            let t = r[i];
            let (cc, cr) = (
                cnt_c.get(&t).copied().unwrap_or(0),
                cnt_r.get(&t).copied().unwrap_or(0),
            );
            if cc > 0 && cr > 0 {
                hits += 1;
                *cnt_c.get_mut(&t).expect("present") -= 1;
                *cnt_r.get_mut(&t).expect("present") -= 1;
            }
        }
    }
    let recall = hits as f64 / m as f64;
    let precision = hits as f64 / n as f64;
    Score {
        precision,
        recall,
        fmeasure: fmeasure(precision, recall),
    }
}

/// Tokens of each non-empty line (rougeLsum's sentences) and of the whole text (the
/// concatenation: a newline only ever separates tokens).
fn line_tokens(text: &str, stem: bool) -> (Vec<Vec<String>>, Vec<String>) {
    let lines: Vec<Vec<String>> = text
        .split('\n')
        .filter(|s| !s.is_empty())
        .map(|s| tokenize(s, stem))
        .collect();
    let all = lines.iter().flatten().cloned().collect();
    (lines, all)
}

/// One reference and one prediction (`RougeScorer.score(target, prediction)`).
pub fn score(kind: RougeType, target: &str, prediction: &str, stem: bool) -> Score {
    score_all(&[kind], target, prediction, stem)[0]
}

/// Several references: the one with the best F-measure (`score_multi`; first on ties).
pub fn score_multi(kind: RougeType, targets: &[String], prediction: &str, stem: bool) -> Score {
    let mut best: Option<Score> = None;
    for t in targets {
        let s = score(kind, t, prediction, stem);
        if best.is_none_or(|b| s.fmeasure > b.fmeasure) {
            best = Some(s);
        }
    }
    best.unwrap_or_default()
}

/// Tokenize once and score several ROUGE types of one pair (the corpus fast path).
pub(crate) fn score_all(
    kinds: &[RougeType],
    target: &str,
    prediction: &str,
    stem: bool,
) -> Vec<Score> {
    let (t_lines, t_all) = line_tokens(target, stem);
    let (p_lines, p_all) = line_tokens(prediction, stem);
    let mut interner = Interner::new();
    let t = interner.ids(&t_all);
    let p = interner.ids(&p_all);
    let t_sents: Vec<Vec<u32>> = t_lines.iter().map(|l| interner.ids(l)).collect();
    let p_sents: Vec<Vec<u32>> = p_lines.iter().map(|l| interner.ids(l)).collect();
    kinds
        .iter()
        .map(|k| match k {
            RougeType::N(n) => score_ngrams(&t, &p, *n),
            RougeType::L => score_lcs(&t, &p),
            RougeType::Lsum => summary_lcs(&t_sents, &p_sents),
        })
        .collect()
}

/// Several references and several types: per type, the reference with the best F-measure.
pub(crate) fn score_all_multi(
    kinds: &[RougeType],
    targets: &[String],
    prediction: &str,
    stem: bool,
) -> Vec<Score> {
    let mut best: Vec<Option<Score>> = vec![None; kinds.len()];
    for t in targets {
        for (b, s) in best.iter_mut().zip(score_all(kinds, t, prediction, stem)) {
            if b.is_none_or(|x| s.fmeasure > x.fmeasure) {
                *b = Some(s);
            }
        }
    }
    best.into_iter().map(Option::unwrap_or_default).collect()
}

/// Which ROUGE statistic a `rouge*` metric reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Precision,
    Recall,
    Fmeasure,
}

/// A `rouge1` / `rouge2` / `rougeL` / `rougeLsum` metric with its options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RougeMetric {
    pub kind: RougeType,
    pub measure: Measure,
    pub stem: bool,
    /// lm-eval's own-summaries style: whitespace runs collapsed before scoring.
    pub collapse_whitespace: bool,
}

pub fn build(name: &str, opts: &super::Options) -> Result<Box<dyn MetricSpec>, String> {
    Ok(Box::new(RougeMetric {
        kind: RougeType::parse(name).ok_or_else(|| format!("not a ROUGE type: {name}"))?,
        measure: match opts.get("measure").and_then(serde_json::Value::as_str) {
            None | Some("fmeasure") | Some("f") => Measure::Fmeasure,
            Some("precision") | Some("p") => Measure::Precision,
            Some("recall") | Some("r") => Measure::Recall,
            Some(other) => {
                return Err(format!(
                    "option `measure` must be fmeasure, precision or recall, got `{other}`"
                ))
            }
        },
        stem: flag(opts, "use_stemmer", true)?,
        collapse_whitespace: flag(opts, "collapse_whitespace", false)?,
    }))
}

impl RougeMetric {
    /// The reported statistic of a score.
    pub(crate) fn pick(&self, s: Score) -> f64 {
        match self.measure {
            Measure::Fmeasure => s.fmeasure,
            Measure::Precision => s.precision,
            Measure::Recall => s.recall,
        }
    }

    fn clean(&self, s: &str) -> String {
        if self.collapse_whitespace {
            crate::text::py_split(s).collect::<Vec<_>>().join(" ")
        } else {
            s.to_string()
        }
    }
}

impl MetricSpec for RougeMetric {
    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        match input {
            DocInput::Prediction(p) => {
                let refs: Vec<String> = p.refs.iter().map(|r| self.clean(r)).collect();
                let s = score_multi(self.kind, &refs, &self.clean(p.text), self.stem);
                Ok(vec![Item::Score(self.pick(s))])
            }
            other => Err(not_for(other)),
        }
    }

    fn check_size(&self, refs: &[String], pred: &str) -> Result<(), String> {
        match self.kind {
            RougeType::L | RougeType::Lsum => {
                super::check_pair_cells(refs, pred, |s| s.split_whitespace().count(), "words")
            }
            RougeType::N(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // python3: from rouge_score import rouge_scorer
    // s = rouge_scorer.RougeScorer(["rouge1","rouge2","rougeL","rougeLsum"], use_stemmer=True)
    // s.score("The cats were running.\nDogs bark.", "the cat runs fast\ndogs barked loudly")
    #[test]
    fn matches_rouge_score() {
        let t = "The cats were running.\nDogs bark.";
        let p = "the cat runs fast\ndogs barked loudly";
        let f = |k| score(k, t, p, true).fmeasure;
        assert!(
            (f(RougeType::N(1)) - 0.7692307692307692).abs() < 1e-12,
            "{}",
            f(RougeType::N(1))
        );
        assert!(
            (f(RougeType::N(2)) - 0.3636363636363636).abs() < 1e-12,
            "{}",
            f(RougeType::N(2))
        );
        assert!(
            (f(RougeType::L) - 0.7692307692307692).abs() < 1e-12,
            "{}",
            f(RougeType::L)
        );
        assert!(
            (f(RougeType::Lsum) - 0.7692307692307692).abs() < 1e-12,
            "{}",
            f(RougeType::Lsum)
        );
    }
}
