//! `ast.literal_eval` for the literals lm-eval templates render: lists and tuples of strings
//! and numbers (`['a', "b"]`, JSON's `["a", "b"]`), dicts, `True`/`False`/`None`.
//!
//! lm-eval passes a rendered `doc_to_choice` through `ast.literal_eval`, and a rendered
//! `doc_to_target` that looks like `[...]` too. minijinja prints a list with double quotes where
//! Jinja2 prints single ones, so both quotings are accepted.

use serde_json::{Map, Number, Value};

/// Parse a Python literal; the error says what was expected and at which character.
pub(crate) fn literal_eval(src: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: src.as_bytes(),
        src,
        pos: 0,
    };
    p.skip_ws();
    let v = p.value()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(format!(
            "unexpected text at character {}: {:?}",
            p.pos,
            &src[p.pos..]
        ));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("expected {what} at character {}", self.pos))
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'[') => self.sequence(b']'),
            Some(b'(') => self.sequence(b')'),
            Some(b'{') => self.dict(),
            Some(b'\'') | Some(b'"') => self.string().map(Value::String),
            Some(c) if c == b'-' || c == b'+' || c == b'.' || c.is_ascii_digit() => self.number(),
            Some(_) => self.word(),
            None => self.err("a value"),
        }
    }

    fn sequence(&mut self, close: u8) -> Result<Value, String> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(Value::Array(items));
            }
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => return self.err(&format!("',' or '{}'", close as char)),
            }
        }
    }

    fn dict(&mut self) -> Result<Value, String> {
        self.pos += 1;
        let mut map = Map::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Value::Object(map));
            }
            let key = match self.value()? {
                Value::String(s) => s,
                other => super::str(&other),
            };
            self.skip_ws();
            if self.peek() != Some(b':') {
                return self.err("':'");
            }
            self.pos += 1;
            self.skip_ws();
            let v = self.value()?;
            map.insert(key, v);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return self.err("',' or '}'"),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self.s[self.pos];
        self.pos += 1;
        let mut out = String::new();
        let rest = &self.src[self.pos..];
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            if c as u32 == quote as u32 {
                self.pos += i + 1;
                // Adjacent literals concatenate, as in Python ('a' 'b' == 'ab').
                self.skip_ws();
                if matches!(self.peek(), Some(b'\'') | Some(b'"')) {
                    out.push_str(&self.string()?);
                }
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((_, e)) = chars.next() else { break };
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                'a' => out.push('\u{07}'),
                'b' => out.push('\u{08}'),
                'f' => out.push('\u{0c}'),
                'v' => out.push('\u{0b}'),
                '\n' => {}
                'x' | 'u' | 'U' => {
                    let len = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = (0..len)
                        .filter_map(|_| chars.next().map(|(_, h)| h))
                        .collect();
                    let code = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("bad \\{e} escape {hex:?} in string literal"))?;
                    out.push(code);
                }
                '\\' | '\'' | '"' => out.push(e),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
        Err("unterminated string literal".into())
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'_') {
                // a sign is only part of a number at the start or after an exponent marker
                if matches!(c, b'-' | b'+')
                    && self.pos > start
                    && !matches!(self.s[self.pos - 1], b'e' | b'E')
                {
                    break;
                }
                self.pos += 1;
            } else {
                break;
            }
        }
        let text: String = self.src[start..self.pos]
            .chars()
            .filter(|c| *c != '_')
            .collect();
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        match text.parse::<f64>() {
            Ok(f) if text.contains(['.', 'e', 'E']) => Ok(Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            _ => Err(format!("bad number {text:?} at character {start}")),
        }
    }

    fn word(&mut self) -> Result<Value, String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.pos += 1;
        }
        match &self.src[start..self.pos] {
            "True" | "true" => Ok(Value::Bool(true)),
            "False" | "false" => Ok(Value::Bool(false)),
            "None" | "null" => Ok(Value::Null),
            "" => self.err("a value"),
            w => Err(format!("`{w}` is not a literal (at character {start})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_in_both_quotings() {
        assert_eq!(literal_eval("['a', 'b']").unwrap(), json!(["a", "b"]));
        assert_eq!(
            literal_eval(r#"["a", "it's"]"#).unwrap(),
            json!(["a", "it's"])
        );
        assert_eq!(
            literal_eval(r#"['x\'y', "\n"]"#).unwrap(),
            json!(["x'y", "\n"])
        );
        assert_eq!(
            literal_eval("[1, -2.5, True, None, (3,)]").unwrap(),
            json!([1, -2.5, true, null, [3]])
        );
        assert_eq!(literal_eval("{'a': [1]}").unwrap(), json!({"a": [1]}));
    }

    #[test]
    fn errors_name_the_position() {
        assert!(literal_eval("[1, 2").unwrap_err().contains("character"));
        assert!(literal_eval("[foo]").unwrap_err().contains("`foo`"));
        assert!(literal_eval("'abc").unwrap_err().contains("unterminated"));
    }
}
