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

/// sacrebleu's `Tokenizer13a()(line)`.
///
/// Works on UTF-8 bytes: every pattern involves ASCII characters only, and a multi-byte
/// character's bytes are never ASCII, so "not a digit" holds for them byte by byte exactly as
/// it holds for the character. Each substitution pass copies the text between matches in bulk
/// and finds the next candidate with `memchr`; matches are leftmost and non-overlapping, as
/// `re.sub` makes them. Spaces are not padded by the first rule: padding a space with spaces
/// changes nothing once whitespace is collapsed.
pub(crate) fn tokenize_13a(line: &str) -> String {
    let mut owned;
    let mut text = line;
    if memchr::memchr3(b'<', b'\n', b'&', line.as_bytes()).is_some() {
        owned = line
            .replace("<skipped>", "")
            .replace("-\n", "")
            .replace('\n', " ");
        if owned.contains('&') {
            owned = owned
                .replace("&quot;", "\"")
                .replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">");
        }
        text = &owned;
    }
    let src = text.as_bytes();
    // rule 1: ' \1 ' around [\{-\~\[-\` -\&\(-\+\:-\@\/]
    let mut s1: Vec<u8> = Vec::with_capacity(src.len() + src.len() / 4 + 8);
    s1.push(b' ');
    let mut run = 0;
    for (i, &b) in src.iter().enumerate() {
        if b != b' ' && b < 0x80 && is_13a_punct(b as char) {
            s1.extend_from_slice(&src[run..i]);
            s1.extend_from_slice(&[b' ', b, b' ']);
            run = i + 1;
        }
    }
    s1.extend_from_slice(&src[run..]);
    s1.push(b' ');
    let digit = |b: u8| b.is_ascii_digit();
    // rule 2: ([^0-9])([\.,]) -> '\1 \2 '
    let mut s2 = Vec::with_capacity(s1.len() + 16);
    let mut p = 0;
    let mut from = 1;
    while from < s1.len() {
        let Some(off) = memchr::memchr2(b'.', b',', &s1[from..]) else {
            break;
        };
        let j = from + off;
        if !digit(s1[j - 1]) {
            s2.extend_from_slice(&s1[p..j - 1]);
            s2.extend_from_slice(&[s1[j - 1], b' ', s1[j], b' ']);
            p = j + 1;
            from = p + 1;
        } else {
            from = j + 1;
        }
    }
    s2.extend_from_slice(&s1[p..]);
    // rule 3: ([\.,])([^0-9]) -> ' \1 \2'
    let mut s3 = Vec::with_capacity(s2.len() + 16);
    let mut p = 0;
    let mut from = 0;
    while from < s2.len() {
        let Some(off) = memchr::memchr2(b'.', b',', &s2[from..]) else {
            break;
        };
        let i = from + off;
        if i + 1 < s2.len() && !digit(s2[i + 1]) {
            s3.extend_from_slice(&s2[p..i]);
            s3.extend_from_slice(&[b' ', s2[i], b' ', s2[i + 1]]);
            p = i + 2;
            from = p;
        } else {
            from = i + 1;
        }
    }
    s3.extend_from_slice(&s2[p..]);
    // rule 4: ([0-9])(-) -> '\1 \2 '
    let mut s4 = Vec::with_capacity(s3.len() + 16);
    let mut p = 0;
    let mut from = 1;
    while from < s3.len() {
        let Some(off) = memchr::memchr(b'-', &s3[from..]) else {
            break;
        };
        let j = from + off;
        if digit(s3[j - 1]) {
            s4.extend_from_slice(&s3[p..j - 1]);
            s4.extend_from_slice(&[s3[j - 1], b' ', b'-', b' ']);
            p = j + 1;
            from = p + 1;
        } else {
            from = j + 1;
        }
    }
    s4.extend_from_slice(&s3[p..]);
    // collapse whitespace: bytes when ASCII, Python's str.split() otherwise
    if s4.is_ascii() {
        let mut out = Vec::with_capacity(s4.len());
        for tok in s4
            .split(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1f))
            .filter(|t| !t.is_empty())
        {
            if !out.is_empty() {
                out.push(b' ');
            }
            out.extend_from_slice(tok);
        }
        return String::from_utf8(out).expect("ASCII");
    }
    let s4 = String::from_utf8(s4).expect("only ASCII bytes were inserted at character boundaries");
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
pub(crate) fn tokenize_ter(sent: &str) -> Vec<String> {
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
        assert_eq!(
            tokenize_13a("Hello, world! It's 3.5-4 km."),
            "Hello , world ! It's 3.5 - 4 km ."
        );
        assert_eq!(
            tokenize_13a("a&amp;b \"q\" x-y 1,000 end."),
            "a & b \" q \" x-y 1,000 end ."
        );
        assert_eq!(tokenize_13a(""), "");
    }
}
