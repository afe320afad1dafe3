//! sacrebleu 2.x tokenizers: `13a` (BLEU's default, mteval-v13a) and the TER normaliser
//! with its defaults (lowercase, whitespace tokens).
//!
//! `13a` (`tokenizer_13a.py` + `tokenizer_re.py`) is reproduced without regexes, step by step:
//! drop `<skipped>`, join `-\n`, newlines to spaces, unescape `&quot; &amp; &lt; &gt;`, pad with
//! spaces, then the four substitutions of `TokenizerRegexp` in order (each left to right,
//! non-overlapping, as `re.sub`), then collapse whitespace.

use super::py_split;

/// ASCII punctuation that `13a`'s first rule surrounds with spaces:
/// `[\{-\~\[-\` -\&\(-\+\:-\@\/]`.
fn is_13a_punct(c: char) -> bool {
    matches!(c as u32, 0x7B..=0x7E | 0x5B..=0x60 | 0x20..=0x26 | 0x28..=0x2B | 0x3A..=0x40 | 0x2F)
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

/// sacrebleu's `Tokenizer13a()(line)`.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    }
    // rule 1: ' \1 ' around punctuation (the padding spaces are themselves in the class)
    let mut s1: Vec<char> = Vec::with_capacity(line.len() * 2 + 8);
    for c in std::iter::once(' ').chain(line.chars()).chain(std::iter::once(' ')) {
        if is_13a_punct(c) {
            s1.push(' ');
            s1.push(c);
            s1.push(' ');
        } else {
            s1.push(c);
        }
    }
    // rule 2: ([^0-9])([\.,]) -> '\1 \2 '
    let mut s2 = Vec::with_capacity(s1.len() + 16);
    let mut i = 0;
    while i < s1.len() {
        if i + 1 < s1.len() && !is_digit(s1[i]) && matches!(s1[i + 1], '.' | ',') {
            s2.extend([s1[i], ' ', s1[i + 1], ' ']);
            i += 2;
        } else {
            s2.push(s1[i]);
            i += 1;
        }
    }
    // rule 3: ([\.,])([^0-9]) -> ' \1 \2'
    let mut s3 = Vec::with_capacity(s2.len() + 16);
    let mut i = 0;
    while i < s2.len() {
        if i + 1 < s2.len() && matches!(s2[i], '.' | ',') && !is_digit(s2[i + 1]) {
            s3.extend([' ', s2[i], ' ', s2[i + 1]]);
            i += 2;
        } else {
            s3.push(s2[i]);
            i += 1;
        }
    }
    // rule 4: ([0-9])(-) -> '\1 \2 '
    let mut s4 = String::with_capacity(s3.len() + 16);
    let mut i = 0;
    while i < s3.len() {
        if i + 1 < s3.len() && is_digit(s3[i]) && s3[i + 1] == '-' {
            s4.push(s3[i]);
            s4.push(' ');
            s4.push('-');
            s4.push(' ');
            i += 2;
        } else {
            s4.push(s3[i]);
            i += 1;
        }
    }
    let mut out = String::with_capacity(s4.len());
    for (k, tok) in py_split(&s4).enumerate() {
        if k > 0 {
            out.push(' ');
        }
        out.push_str(tok);
    }
    out
}

/// TER's default tokenizer (`TercomTokenizer(normalized=False, no_punct=False,
/// case_sensitive=False)`): lowercase, then whitespace tokens.
pub fn tokenize_ter(sent: &str) -> Vec<String> {
    if sent.is_empty() {
        return vec![];
    }
    let lower = sent.to_lowercase();
    py_split(&lower).map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // python3: from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a; Tokenizer13a()(s)
    #[test]
    fn thirteen_a() {
        assert_eq!(tokenize_13a("Hello, world! It's 3.5-4 km."), "Hello , world ! It's 3.5 - 4 km .");
        assert_eq!(tokenize_13a("a&amp;b \"q\" x-y 1,000 end."), "a & b \" q \" x-y 1,000 end .");
        assert_eq!(tokenize_13a(""), "");
    }
}
