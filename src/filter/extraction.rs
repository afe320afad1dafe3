//! Pulling answers out of generated text: lm-eval's `regex`, `multi_choice_regex` and
//! `regex_pos` filters (`lm_eval/filters/extraction.py`) and a `boxed` extractor for math
//! answers.

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

/// `multi_choice_regex` (`MultiChoiceRegexFilter`): the `regex` match, mapped nowhere; else
/// the first choice text (`doc["choices"]`, cleaned by `regexes_to_ignore`, `ignore_case`,
/// `ignore_punctuation`; longest alternatives first) found in the cleaned response, as its
/// letter `(A)`; else `: A`-style letters as `(A)`; else `fallback`.
#[derive(Debug, Clone)]
pub struct MultiChoiceRegex {
    base: Regex,
    ignore_case: bool,
    ignore_punctuation: bool,
    regexes_to_ignore: Vec<re::PyRegex>,
}

impl MultiChoiceRegex {
    pub fn new(args: &Map<String, Value>) -> Result<MultiChoiceRegex, String> {
        let flag = |k: &str| crate::metric::spec::flag(args, k, false);
        let regexes_to_ignore =
            re::compile_list(args.get("regexes_to_ignore"), "regexes_to_ignore")?;
        Ok(MultiChoiceRegex {
            base: Regex::new(args)?,
            ignore_case: flag("ignore_case")?,
            ignore_punctuation: flag("ignore_punctuation")?,
            regexes_to_ignore,
        })
    }

    fn clean(&self, s: &str) -> String {
        let mut s = s.to_string();
        for r in &self.regexes_to_ignore {
            s = re::sub(r, "", &s, 0).unwrap_or(s);
        }
        if self.ignore_case {
            s = s.to_lowercase();
        }
        if self.ignore_punctuation {
            s = punctuation().replace_all(&s, "").into_owned();
        }
        s
    }

    pub fn extract(&self, text: &str, doc: &Map<String, Value>) -> Result<String, String> {
        let choices: Vec<String> = match doc.get("choices") {
            Some(Value::Array(a)) => a.iter().map(crate::py::str).collect(),
            _ => return Err("multi_choice_regex needs the doc's `choices` list".into()),
        };
        let mut alternatives = Vec::new();
        let mut to_letter = std::collections::HashMap::new();
        let mut letters = Vec::new();
        let mut letter_target = std::collections::HashMap::new();
        for (i, c) in choices.iter().enumerate() {
            let letter = char::from_u32('A' as u32 + i as u32)
                .unwrap_or('?')
                .to_string();
            let m = self.clean(c.trim());
            alternatives.push(regex::escape(&m));
            to_letter.insert(m, format!("({letter})"));
            letters.push(letter.clone());
            letter_target.insert(letter.clone(), format!("({letter})"));
        }
        // Python's sorted(key=len, reverse=True) is stable: equal lengths keep their order
        alternatives.sort_by_key(|a| std::cmp::Reverse(a.chars().count()));
        let choice_re = re::compile(&alternatives.join("|")).map_err(|e| e.to_string())?;
        let letter_re =
            re::compile(&format!(r":[\s]*({})", letters.join("|"))).map_err(|e| e.to_string())?;
        let g = self.base.group_select;
        let mut m = find_match(&self.base.re, g, text, &Default::default());
        if m.is_empty() {
            m = find_match(&choice_re, g, &self.clean(text), &to_letter);
            if m.is_empty() {
                m = find_match(&letter_re, g, text, &letter_target);
            }
        }
        Ok(if m.is_empty() {
            self.base.fallback.clone()
        } else {
            m
        })
    }
}

/// `find_match` of `MultiChoiceRegexFilter`: the selected match (first non-empty group),
/// stripped and converted; empty when nothing matches.
fn find_match(
    r: &re::PyRegex,
    group_select: i64,
    text: &str,
    convert: &std::collections::HashMap<String, String>,
) -> String {
    let Ok(matches) = re::findall(r, text) else {
        return String::new();
    };
    let n = matches.len() as i64;
    let i = if group_select < 0 {
        n + group_select
    } else {
        group_select
    };
    if i < 0 || i >= n {
        return String::new();
    }
    let m = match &matches[i as usize] {
        Found::One(s) => s.trim().to_string(),
        Found::Groups(g) => match g.iter().find(|s| !s.is_empty()) {
            Some(s) => s.trim().to_string(),
            None => return String::new(),
        },
    };
    match convert.get(&m) {
        Some(c) if !m.is_empty() => c.clone(),
        _ => m,
    }
}

/// Unicode punctuation (categories P*), what `ignore_punctuation` removes.
fn punctuation() -> &'static regex::Regex {
    static P: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    P.get_or_init(|| regex::Regex::new(r"\p{P}").expect("valid"))
}

/// `regex_pos` (`POSFilter`): the part-of-speech tags of `('token', 'TAG')` pairs written in
/// the response, or `fallback` (default `["invalid"]`).
#[derive(Debug, Clone)]
pub struct Pos {
    fallback: Value,
}

impl Pos {
    pub fn new(args: &Map<String, Value>) -> Pos {
        Pos {
            fallback: match args.get("fallback") {
                None | Some(Value::Null) => Value::Array(vec![Value::String("invalid".into())]),
                Some(v) => v.clone(),
            },
        }
    }

    pub fn extract(&self, text: &str) -> Value {
        static PAIR: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let pair =
            PAIR.get_or_init(|| regex::Regex::new(r"\('([^']*)', '([^']*)'\)").expect("valid"));
        let tags: Vec<Value> = pair
            .captures_iter(text)
            .map(|c| Value::String(c[2].to_string()))
            .collect();
        if tags.is_empty() {
            self.fallback.clone()
        } else {
            Value::Array(tags)
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
