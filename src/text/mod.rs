//! Text helpers shared by filters and metrics: Python's whitespace rules, Python `re`
//! semantics (`pyre`), the Porter stemmer (`porter`), sacrebleu's tokenizers (`sacre`).

pub mod porter;
pub mod sacre;

/// `str.isspace()` for one character: Unicode whitespace plus the separators
/// U+001C..U+001F, which Python counts and Rust's `char::is_whitespace` does not.
pub(crate) fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str.split()` with no argument: runs of whitespace separate, ends are dropped.
pub(crate) fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(py_isspace).filter(|t| !t.is_empty())
}

/// `str.strip()` with no argument.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// `str.lstrip()` with no argument.
pub(crate) fn py_lstrip(s: &str) -> &str {
    s.trim_start_matches(py_isspace)
}

/// `str.rstrip()` with no argument.
pub(crate) fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(py_isspace)
}

/// `str.lower()`.
pub(crate) fn py_lower(s: &str) -> String {
    s.to_lowercase()
}

/// The closest known name to `key`, if one is close enough to suggest.
pub(crate) fn did_you_mean<'a>(
    key: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(key, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace() {
        let parts: Vec<&str> = py_split(" a\u{1f}b\u{a0}c\n").collect();
        assert_eq!(parts, vec!["a", "b", "c"]);
        assert_eq!(py_strip("\u{1c} x \u{3000}"), "x");
    }
}
