//! Python `re` semantics over `fancy_regex`, for the patterns task YAMLs carry.
//!
//! lm-eval's filters and metrics call `re.findall`, `re.sub` and `re.search` with patterns
//! written for Python. The differences that change results are handled here:
//! - `$` (without `(?m)`) also matches before a final `\n` in Python: it becomes `(?=\n?\z)`;
//!   `\Z` becomes `\z`; `(?P=name)` becomes `\k<name>`;
//! - a `{` that does not start a `{m,n}` quantifier is a literal in Python: it is escaped;
//! - `findall` returns the whole match, the single group, or a tuple of all groups (`""` for
//!   a group that did not take part), and empty matches right after a match are kept, as in
//!   Python 3.7+;
//! - `sub` replacements use `\1`, `\g<1>`, `\g<name>` and backslash escapes.

use fancy_regex::{Captures, Regex};

/// A compiled Python pattern.
pub(crate) type PyRegex = Regex;

/// Translate a Python pattern to fancy_regex syntax and compile it.
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(&translate(pattern)).map_err(|e| e.to_string())
}

/// An option holding a pattern or a list of them (`regexes_to_ignore`); none when absent.
pub(crate) fn compile_list(v: Option<&serde_json::Value>, key: &str) -> Result<Vec<Regex>, String> {
    use serde_json::Value;
    let one = |p: &str| compile(p).map_err(|e| format!("bad regex in {key} {p:?}: {e}"));
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(p)) => Ok(vec![one(p)?]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| one(p.as_str().ok_or(format!("{key} must be strings"))?))
            .collect(),
        Some(_) => Err(format!("{key} must be a list of patterns")),
    }
}

fn translate(p: &str) -> String {
    let multiline = p.contains("(?m") || p.contains("(?sm") || p.contains("(?im");
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let n = chars[i + 1];
                if !in_class && n == 'Z' {
                    out.push_str("\\z");
                } else {
                    out.push(c);
                    out.push(n);
                }
                i += 2;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // a ']' right after '[' or '[^' is a literal in Python
                if i + 1 < chars.len() && chars[i + 1] == '^' {
                    out.push('^');
                    i += 1;
                }
                if i + 1 < chars.len() && chars[i + 1] == ']' {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            '[' if in_class => out.push_str("\\["),
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '$' if !in_class && !multiline => out.push_str("(?=\\n?\\z)"),
            '{' if !in_class && !is_quantifier(&chars[i..]) => out.push_str("\\{"),
            '}' if !in_class && !closes_quantifier(&chars[..i]) => out.push_str("\\}"),
            '(' if !in_class && chars[i..].starts_with(&['(', '?', 'P', '=']) => {
                let end = chars[i..].iter().position(|&ch| ch == ')').map(|e| e + i);
                if let Some(end) = end {
                    let name: String = chars[i + 4..end].iter().collect();
                    out.push_str(&format!("\\k<{name}>"));
                    i = end + 1;
                    continue;
                }
                out.push(c);
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// Whether the text at `s` (starting with `{`) is a `{m}`, `{m,}`, `{m,n}` or `{,n}` quantifier.
fn is_quantifier(s: &[char]) -> bool {
    let Some(end) = s.iter().position(|&c| c == '}') else {
        return false;
    };
    let inner: String = s[1..end].iter().collect();
    let mut parts = inner.splitn(2, ',');
    let a = parts.next().unwrap_or("");
    let b = parts.next();
    let digits = |x: &str| x.chars().all(|c| c.is_ascii_digit());
    match b {
        None => !a.is_empty() && digits(a),
        Some(b) => digits(a) && digits(b) && !(a.is_empty() && b.is_empty()),
    }
}

fn closes_quantifier(before: &[char]) -> bool {
    let Some(open) = before.iter().rposition(|&c| c == '{') else {
        return false;
    };
    if open > 0 && before[open - 1] == '\\' {
        return false;
    }
    is_quantifier(
        &before[open..]
            .iter()
            .copied()
            .chain(std::iter::once('}'))
            .collect::<Vec<_>>(),
    )
}

/// One `re.findall` result: the match or group, or the tuple of groups.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Found {
    One(String),
    Groups(Vec<String>),
}

/// Non-overlapping matches, Python 3.7+ style (an empty match may follow a non-empty one).
pub(crate) fn find_iter<'t>(re: &Regex, text: &'t str) -> Result<Vec<Captures<'t>>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut last_empty_at: Option<usize> = None;
    while pos <= text.len() {
        let Some(caps) = re.captures_from_pos(text, pos).map_err(|e| e.to_string())? else {
            break;
        };
        let m = caps.get(0).expect("group 0 always exists");
        if m.start() == m.end() && last_empty_at == Some(m.start()) {
            // the same empty match again: step over one character
            match text[pos..].chars().next() {
                Some(ch) => {
                    pos += ch.len_utf8();
                    continue;
                }
                None => break,
            }
        }
        if m.start() == m.end() {
            last_empty_at = Some(m.end());
        } else {
            last_empty_at = None;
        }
        pos = m.end();
        out.push(caps);
    }
    Ok(out)
}

/// `re.findall(pattern, text)`.
pub(crate) fn findall(re: &Regex, text: &str) -> Result<Vec<Found>, String> {
    let groups = re.captures_len() - 1;
    Ok(find_iter(re, text)?
        .into_iter()
        .map(|caps| {
            let group = |i: usize| {
                caps.get(i)
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default()
            };
            match groups {
                0 => Found::One(group(0)),
                1 => Found::One(group(1)),
                n => Found::Groups((1..=n).map(group).collect()),
            }
        })
        .collect())
}

/// `re.sub(pattern, repl, text, count)` with Python's replacement syntax.
pub fn sub(re: &Regex, repl: &str, text: &str, count: usize) -> Result<String, String> {
    let template = parse_repl(repl, re)?;
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (n, caps) in find_iter(re, text)?.into_iter().enumerate() {
        if count > 0 && n >= count {
            break;
        }
        let m = caps.get(0).expect("group 0 always exists");
        out.push_str(&text[last..m.start()]);
        for piece in &template {
            match piece {
                ReplPiece::Lit(s) => out.push_str(s),
                ReplPiece::Group(g) => out.push_str(caps.get(*g).map(|m| m.as_str()).unwrap_or("")),
            }
        }
        last = m.end();
    }
    out.push_str(&text[last..]);
    Ok(out)
}

enum ReplPiece {
    Lit(String),
    Group(usize),
}

fn parse_repl(repl: &str, re: &Regex) -> Result<Vec<ReplPiece>, String> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let chars: Vec<char> = repl.chars().collect();
    let mut i = 0;
    let names: Vec<Option<&str>> = re.capture_names().collect();
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' || i + 1 == chars.len() {
            lit.push(c);
            i += 1;
            continue;
        }
        let n = chars[i + 1];
        let mut group = None;
        match n {
            'n' => lit.push('\n'),
            't' => lit.push('\t'),
            'r' => lit.push('\r'),
            'f' => lit.push('\u{0c}'),
            'v' => lit.push('\u{0b}'),
            'a' => lit.push('\u{07}'),
            '\\' => lit.push('\\'),
            'g' => {
                let rest: String = chars[i + 2..].iter().collect();
                let close = rest
                    .find('>')
                    .filter(|_| rest.starts_with('<'))
                    .ok_or("bad \\g<...> in replacement")?;
                let name = &rest[1..close];
                let idx = match name.parse::<usize>() {
                    Ok(i) => i,
                    Err(_) => names
                        .iter()
                        .position(|n| *n == Some(name))
                        .ok_or_else(|| format!("unknown group name {name:?} in replacement"))?,
                };
                i += 2 + close + 1;
                pieces.push(ReplPiece::Lit(std::mem::take(&mut lit)));
                pieces.push(ReplPiece::Group(idx));
                continue;
            }
            d if d.is_ascii_digit() => {
                let mut num = d.to_digit(10).unwrap_or(0) as usize;
                let mut len = 2;
                if let Some(d2) = chars.get(i + 2).and_then(|c| c.to_digit(10)) {
                    num = num * 10 + d2 as usize;
                    len = 3;
                }
                group = Some(num);
                i += len;
            }
            other if other.is_ascii_alphabetic() => {
                return Err(format!("bad escape \\{other} in replacement"))
            }
            other => {
                lit.push('\\');
                lit.push(other);
            }
        }
        if let Some(g) = group {
            if g >= names.len() {
                return Err(format!("invalid group reference {g} in replacement"));
            }
            pieces.push(ReplPiece::Lit(std::mem::take(&mut lit)));
            pieces.push(ReplPiece::Group(g));
        } else {
            i += 2;
        }
    }
    pieces.push(ReplPiece::Lit(lit));
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    // python3: re.findall(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", "I have 3 apples and $1,200.")
    #[test]
    fn findall_groups() {
        let re = compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)").unwrap();
        assert_eq!(
            findall(&re, "I have 3 apples and $1,200.").unwrap(),
            vec![
                Found::Groups(vec!["".into(), "3".into()]),
                Found::Groups(vec!["$1,200.".into(), "".into()])
            ]
        );
        let re = compile(r"#### (\-?[0-9\.\,]+)").unwrap();
        assert_eq!(
            findall(&re, "x\n#### 1,234").unwrap(),
            vec![Found::One("1,234".into())]
        );
    }

    // python3: re.sub(r"\.$", "", "72.\n"), re.sub("x*", "-", "abxd"), re.sub(r"(?s).*#### ", "", "a\n#### 5")
    #[test]
    fn sub_as_python() {
        assert_eq!(
            sub(&compile(r"\.$").unwrap(), "", "72.\n", 0).unwrap(),
            "72\n"
        );
        assert_eq!(
            sub(&compile("x*").unwrap(), "-", "abxd", 0).unwrap(),
            "-a-b--d-"
        );
        assert_eq!(
            sub(&compile(r"(?s).*#### ").unwrap(), "", "a\n#### 5", 0).unwrap(),
            "5"
        );
        assert_eq!(
            sub(
                &compile(r"(\w+) (\w+)").unwrap(),
                r"\2 \g<1>",
                "hello world",
                0
            )
            .unwrap(),
            "world hello"
        );
    }

    #[test]
    fn literal_braces() {
        let re = compile(r"\\boxed{(.*)}").unwrap();
        assert_eq!(
            findall(&re, r"so \boxed{42}").unwrap(),
            vec![Found::One("42".into())]
        );
        assert!(compile(r"a{2}").unwrap().is_match("aa").unwrap());
    }
}
