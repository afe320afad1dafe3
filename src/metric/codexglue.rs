//! `smoothed_bleu_4`: CodeXGLUE code-to-text's smoothed sentence BLEU-4, as lm-eval 0.4.13's
//! `code_x_glue/code-text/bleu.py` computes it per doc (`smoothed_bleu_4([gold], [pred])`).
//!
//! Both texts are stripped, lowercased and split into word runs and single punctuation marks
//! (`re.findall(r"[\w]+|[^\s\w]", ...)`, Python's Unicode `\w`), then put through the
//! MOSES/NIST `normalize` of that script (punctuation spaced out, periods and commas split
//! unless next to digits). BLEU-4 over one reference: n-gram precisions with add-one smoothing
//! for n >= 2 (and `sys.float_info.min` against log 0), brevity penalty
//! `min(0, 1 - (r + 1)/(c + 1))` in log space, times 100. The mean over docs is reported.

use super::spec::{first_ref, not_for, DocInput, MetricSpec};
use super::Item;

use std::collections::HashMap;

use crate::text::{py_isspace, py_split};

/// Python's `\w` for `str` patterns: alphanumeric (`str.isalnum`) or underscore.
fn py_word(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// `splitPuncts`: `" ".join(re.findall(r"[\w]+|[^\s\w]", line))`.
fn split_puncts(line: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in line.chars() {
        if py_word(c) {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !py_isspace(c) {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out.join(" ")
}

/// The script's `normalize` (nonorm = 0, preserve_case = False), as tokens.
fn normalize(s: &str) -> Vec<String> {
    let s = s
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    // xml.sax.saxutils.unescape with {"&quot;": '"'}: &lt; &gt; then &quot;, &amp; last
    let s = s
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let s = crate::text::py_lower(&format!(" {s} "));
    let chars: Vec<char> = s.chars().collect();
    // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 "
    let punct =
        |c: char| matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/');
    let mut a = String::with_capacity(s.len() * 2);
    for &c in &chars {
        if punct(c) {
            a.push(' ');
            a.push(c);
            a.push(' ');
        } else {
            a.push(c);
        }
    }
    let digit = |c: char| c.is_ascii_digit();
    let dotcomma = |c: char| c == '.' || c == ',';
    // ([^0-9])([\.,]) -> "\1 \2 ", left to right, non-overlapping
    let b = sub_pairs(
        &a,
        |x, y| !digit(x) && dotcomma(y),
        |x, y, o| {
            o.push(x);
            o.push(' ');
            o.push(y);
            o.push(' ');
        },
    );
    // ([\.,])([^0-9]) -> " \1 \2"
    let c = sub_pairs(
        &b,
        |x, y| dotcomma(x) && !digit(y),
        |x, y, o| {
            o.push(' ');
            o.push(x);
            o.push(' ');
            o.push(y);
        },
    );
    // ([0-9])(-) -> "\1 \2 "
    let d = sub_pairs(
        &c,
        |x, y| digit(x) && y == '-',
        |x, y, o| {
            o.push(x);
            o.push(' ');
            o.push(y);
            o.push(' ');
        },
    );
    py_split(&d).map(String::from).collect()
}

/// `re.sub` of a two-character pattern: scan left to right, replace each match and resume
/// after it.
fn sub_pairs(
    s: &str,
    is_match: impl Fn(char, char) -> bool,
    replace: impl Fn(char, char, &mut String),
) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 16);
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && is_match(chars[i], chars[i + 1]) {
            replace(chars[i], chars[i + 1], &mut out);
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn count_ngrams(words: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for k in 1..=n {
        for w in words.windows(k) {
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    counts
}

/// Smoothed BLEU-4 of one prediction against one reference, 0-100.
pub fn smoothed_bleu_4(reference: &str, prediction: &str) -> f64 {
    let prep = |s: &str| split_puncts(&crate::text::py_lower(crate::text::py_strip(s)));
    let reference = normalize(&prep(reference));
    let test = normalize(&prep(prediction));
    let n = 4;
    let ref_counts = count_ngrams(&reference, n);
    let mut correct = [0usize; 4];
    for (gram, count) in count_ngrams(&test, n) {
        correct[gram.len() - 1] += count.min(ref_counts.get(gram).copied().unwrap_or(0));
    }
    let guess: Vec<usize> = (1..=n)
        .map(|k| (test.len() + 1).saturating_sub(k))
        .collect();
    let tiny = f64::MIN_POSITIVE; // sys.float_info.min
    let mut logbleu = 0.0f64;
    for k in 0..n {
        let add = usize::from(k > 0);
        logbleu += ((correct[k] + add) as f64 + tiny).ln() - ((guess[k] + add) as f64 + tiny).ln();
    }
    logbleu /= n as f64;
    let brevity = (1.0 - (reference.len() + 1) as f64 / (test.len() + 1) as f64).min(0.0);
    (logbleu + brevity).exp() * 100.0 / 1.0
}

/// `smoothed_bleu_4` per doc, averaged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SmoothedBleu4;

pub fn build(_name: &str, _opts: &super::Options) -> Result<Box<dyn MetricSpec>, String> {
    Ok(Box::new(SmoothedBleu4))
}

impl MetricSpec for SmoothedBleu4 {
    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        let DocInput::Prediction(p) = input else {
            return Err(not_for(input));
        };
        Ok(vec![Item::Score(smoothed_bleu_4(
            &first_ref(p.refs),
            p.text,
        ))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_like_the_script() {
        assert_eq!(
            split_puncts("Returns the (first) item."),
            "Returns the ( first ) item ."
        );
        assert_eq!(
            normalize("returns 3.5, a.b"),
            vec!["returns", "3.5", ",", "a", ".", "b"]
        );
    }

    #[test]
    fn identical_texts_score_100() {
        assert!(
            (smoothed_bleu_4("Returns the first item", "returns the first item") - 100.0).abs()
                < 1e-9
        );
    }
}
