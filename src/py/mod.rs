//! Python's spellings of values, where lm-eval's outputs depend on them.
//!
//! lm-eval hashes documents with `json.dumps(doc, indent=2, ensure_ascii=False)`, stringifies
//! targets with `str()`, renders Jinja values with Python's `str()`/`repr()` and parses rendered
//! lists with `ast.literal_eval`. These functions reproduce those spellings for JSON-shaped
//! values (`serde_json::Value`, with integers and floats kept apart as Python keeps them).

pub mod literal;
pub mod random;
pub mod re;

use serde_json::Value;

/// `float.__repr__`: the shortest round-trip digits, in fixed notation for exponents in
/// -4..16 (always with a fractional part), scientific (`1e-05`, `1.5e+16`) otherwise.
pub(crate) fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{:e}", x);
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1; // position of the decimal point within the digits
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

fn number_repr(n: &serde_json::Number) -> String {
    if n.is_f64() {
        float_repr(n.as_f64().unwrap_or(f64::NAN))
    } else {
        n.to_string()
    }
}

/// Python's `bool(x)` for JSON-shaped values.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// Python's `str(x)`: strings as they are, everything else as `repr`.
pub fn str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// Python's `repr(x)` for JSON-shaped values (`None`, `True`, `'text'`, `[1, 'a']`, `{'k': 2.0}`).
pub(crate) fn repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(v, &mut out);
    out
}

fn write_repr(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Number(n) => out.push_str(&number_repr(n)),
        Value::String(s) => out.push_str(&str_repr(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&str_repr(k));
                out.push_str(": ");
                write_repr(item, out);
            }
            out.push('}');
        }
    }
}

/// Characters `str.isprintable()` rejects: controls, separators other than the space, format
/// characters. (A close approximation of the Unicode categories CPython checks.)
fn is_unprintable(c: char) -> bool {
    let u = c as u32;
    u < 0x20
        || (0x7f..=0xa0).contains(&u)
        || u == 0xad
        || u == 0x1680
        || (0x2000..=0x200f).contains(&u)
        || (0x2028..=0x202f).contains(&u)
        || (0x205f..=0x206f).contains(&u)
        || u == 0x3000
        || u == 0xfeff
        || (0xfff9..=0xfffb).contains(&u)
}

/// `repr(str)`: single quotes unless the text has a `'` and no `"`.
pub(crate) fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_unprintable(c) => {
                let u = c as u32;
                if u <= 0xff {
                    out.push_str(&format!("\\x{u:02x}"));
                } else {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `json.dumps(v, ensure_ascii=False)` with `indent=None` (`", "` and `": "` separators) or
/// `indent=Some(n)` (newlines, `","` and `": "`), as Python writes it.
pub fn json_dumps(v: &Value, indent: Option<usize>) -> String {
    let mut out = String::new();
    write_json(v, indent, 0, &mut out);
    out
}

fn write_json(v: &Value, indent: Option<usize>, level: usize, out: &mut String) {
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                let x = n.as_f64().unwrap_or(f64::NAN);
                out.push_str(&if x.is_nan() {
                    "NaN".into()
                } else if x.is_infinite() {
                    if x > 0.0 {
                        "Infinity".into()
                    } else {
                        "-Infinity".into()
                    }
                } else {
                    float_repr(x)
                });
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => json_string(s, out),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, level + 1);
                write_json(item, indent, level + 1, out);
            }
            newline(out, level);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, level + 1);
                json_string(k, out);
                out.push_str(": ");
                write_json(item, indent, level + 1, out);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `json.loads` of what Python's `json.dumps` writes: standard JSON plus the bare tokens `NaN`,
/// `Infinity` and `-Infinity`, which become the strings `"NaN"`, `"Infinity"` and `"-Infinity"`
/// (a `Value` cannot hold them; readers of numbers accept those strings).
pub fn json_loads(text: &str) -> Result<Value, serde_json::Error> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(e) if !(text.contains("NaN") || text.contains("Infinity")) => Err(e),
        Err(_) => serde_json::from_str(&quote_non_finite(text)),
    }
}

pub(crate) fn quote_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if let Some(token) = ["NaN", "Infinity", "-Infinity"]
            .into_iter()
            .find(|t| rest.starts_with(t))
        {
            out.push('"');
            out.push_str(token);
            out.push('"');
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The first 8 bytes of `sha256(s)` as a big-endian integer (`int(sha256(s).hexdigest()[:16],
/// 16)` in Python).
pub fn sha256_u64(s: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(s.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

/// Lowercase hex sha256 of a string's UTF-8 bytes (lm-eval's `hash_string`).
pub fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn loads_python_non_finite_numbers() {
        let v = json_loads(r#"{"a": NaN, "b": [-Infinity, Infinity], "c": "NaN \" Infinity"}"#)
            .unwrap();
        assert_eq!(
            v,
            json!({"a": "NaN", "b": ["-Infinity", "Infinity"], "c": "NaN \" Infinity"})
        );
        assert!(json_loads("{\"a\": nan}").is_err());
    }

    // python3 -c "print([repr(x) for x in [1.0, 0.1, 1e-05, 0.0001, 1e16, 123456789.0, -2.5e-07, 1/3, 1e22]])"
    #[test]
    fn floats_as_python() {
        let got: Vec<String> = [
            1.0,
            0.1,
            1e-05,
            0.0001,
            1e16,
            123456789.0,
            -2.5e-07,
            1.0 / 3.0,
            1e22,
        ]
        .iter()
        .map(|x| float_repr(*x))
        .collect();
        assert_eq!(
            got,
            [
                "1.0",
                "0.1",
                "1e-05",
                "0.0001",
                "1e+16",
                "123456789.0",
                "-2.5e-07",
                "0.3333333333333333",
                "1e+22"
            ]
        );
    }

    // python3 -c "print(repr(['a', \"it's\", 'q\"', 1, 2.0, True, None, '\n\xa0']))"
    #[test]
    fn repr_as_python() {
        let v = json!(["a", "it's", "q\"", 1, 2.0, true, null, "\n\u{a0}"]);
        assert_eq!(
            repr(&v),
            r#"['a', "it's", 'q"', 1, 2.0, True, None, '\n\xa0']"#
        );
    }

    // python3 -c "import json; print(json.dumps({'a': [1, {'b': 'é\n'}], 'c': [], 'd': 0.5}, indent=2, ensure_ascii=False))"
    #[test]
    fn json_dumps_indented() {
        let v = json!({"a": [1, {"b": "é\n"}], "c": [], "d": 0.5});
        assert_eq!(
            json_dumps(&v, Some(2)),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"é\\n\"\n    }\n  ],\n  \"c\": [],\n  \"d\": 0.5\n}"
        );
        assert_eq!(
            json_dumps(&v, None),
            "{\"a\": [1, {\"b\": \"é\\n\"}], \"c\": [], \"d\": 0.5}"
        );
    }
}
