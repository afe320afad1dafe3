//! Pulling answers out of generated text: lm-eval's `regex` filter and a `boxed` extractor
//! for math answers.

use serde_json::{Map, Value};

use crate::py::re::{self, Found};

/// `regex` (`RegexFilter`): `re.findall`, then `matches[group_select]` (negative indices
/// count from the end), the first non-empty group of a tuple, `.strip()`; `fallback` when
/// nothing matches (or the index is out of range, where lm-eval would crash).
#[derive(Debug, Clone)]
pub struct Regex {
    pub pattern: String,
    re: re::PyRegex,
    group_select: i64,
    fallback: String,
}

impl Regex {
    pub fn new(args: &Map<String, Value>) -> Result<Regex, String> {
        let pattern = match args.get("regex_pattern") {
            None => r"#### (\-?[0-9\.\,]+)".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("`regex_pattern` must be a string".into()),
        };
        let re =
            re::compile(&pattern).map_err(|e| format!("bad regex_pattern {pattern:?}: {e}"))?;
        let group_select = match args.get("group_select") {
            None => 0,
            Some(v) => v.as_i64().ok_or("`group_select` must be an integer")?,
        };
        let fallback = match args.get("fallback") {
            None => "[invalid]".to_string(),
            Some(v) => crate::py::str(v),
        };
        Ok(Regex {
            pattern,
            re,
            group_select,
            fallback,
        })
    }

    pub fn extract(&self, text: &str) -> String {
        let matches = match re::findall(&self.re, text) {
            Ok(m) => m,
            Err(_) => return self.fallback.clone(),
        };
        if matches.is_empty() {
            return self.fallback.clone();
        }
        let n = matches.len() as i64;
        let i = if self.group_select < 0 {
            n + self.group_select
        } else {
            self.group_select
        };
        if i < 0 || i >= n {
            return self.fallback.clone();
        }
        match &matches[i as usize] {
            Found::One(s) => s.trim().to_string(),
            Found::Groups(g) => match g.iter().find(|s| !s.is_empty()) {
                Some(s) => s.trim().to_string(),
                None => self.fallback.trim().to_string(),
            },
        }
    }
}

/// `boxed`: the content of the last `\boxed{...}` or `\fbox{...}` (braces matched, nested
/// braces kept) in the text after the last `</think>`; `\boxed 5` (no braces) gives `5`.
/// Without a box: `fallback` (default `[invalid]`).
#[derive(Debug, Clone)]
pub struct Boxed {
    fallback: String,
}

impl Boxed {
    pub fn new(args: &Map<String, Value>) -> Boxed {
        Boxed {
            fallback: args
                .get("fallback")
                .map(crate::py::str)
                .unwrap_or_else(|| "[invalid]".into()),
        }
    }

    pub fn extract(&self, text: &str) -> String {
        last_boxed(text).unwrap_or_else(|| self.fallback.clone())
    }
}

/// The last boxed answer in `text` (after the last `</think>`), if any.
pub(crate) fn last_boxed(text: &str) -> Option<String> {
    let text = match text.rfind("</think>") {
        Some(i) => &text[i + "</think>".len()..],
        None => text,
    };
    let start = [text.rfind("\\boxed"), text.rfind("\\fbox")]
        .into_iter()
        .flatten()
        .max()?;
    let rest = &text[start..];
    let after_cmd = rest.find(['{', ' ']).map(|i| (i, rest.as_bytes()[i]))?;
    if after_cmd.1 == b' ' && !rest[..after_cmd.0].contains('{') {
        // "\boxed 5": up to the next whitespace or '$'
        let body = &rest[after_cmd.0 + 1..];
        let end = body
            .find(|c: char| c.is_whitespace() || c == '$')
            .unwrap_or(body.len());
        return Some(body[..end].to_string());
    }
    let open = after_cmd.0;
    let mut depth = 0usize;
    for (i, c) in rest[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(rest[open + 1..open + i].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_answers() {
        assert_eq!(
            last_boxed(r"so \boxed{\frac{1}{2}} and then \boxed{42}."),
            Some("42".into())
        );
        assert_eq!(
            last_boxed(r"\boxed{\frac{1}{2}}"),
            Some(r"\frac{1}{2}".into())
        );
        assert_eq!(
            last_boxed(r"<think>\boxed{1}</think> final \fbox{7}"),
            Some("7".into())
        );
        assert_eq!(last_boxed(r"<think>\boxed{1}</think> none here"), None);
        assert_eq!(last_boxed(r"$\boxed 5$"), Some("5".into()));
        assert_eq!(last_boxed(r"\boxed{unclosed"), None);
    }

    #[test]
    fn group_select_negative_and_out_of_range() {
        let mut args = Map::new();
        args.insert("regex_pattern".into(), Value::String(r"(\d+)".into()));
        args.insert("group_select".into(), Value::from(-1));
        assert_eq!(Regex::new(&args).unwrap().extract("1 then 22"), "22");
        args.insert("group_select".into(), Value::from(5));
        assert_eq!(Regex::new(&args).unwrap().extract("1 then 22"), "[invalid]");
    }
}
