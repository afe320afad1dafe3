//! Jinja templates with lm-eval's semantics (`lm_eval/utils.py: apply_template`).
//!
//! lm-eval renders `doc_to_*` strings with `jinja2.Environment(undefined=StrictUndefined,
//! keep_trailing_newline=True)` plus a `regex_replace` filter. rubric uses minijinja with:
//! strict undefined (a missing key is an error naming it), trailing newlines kept,
//! minijinja-contrib's `pycompat` methods (`.split()`, `.strip()`, `.endswith()`, ...), a
//! `regex_replace(pattern, repl, count=0)` filter with Python's `re.sub` semantics, and a
//! formatter that prints non-string values as Python's `str()` does (`['a', 'b']`, `True`,
//! `None`, `2.0`), so rendered lists parse with `ast.literal_eval` exactly as in lm-eval.

use minijinja::value::Value as JValue;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value};

use crate::py::re;

/// A set of compiled templates for one task, addressed by the field they came from.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

/// Why a template failed: at compile time (syntax) or for one doc.
#[derive(Debug, Clone)]
pub enum TemplateError {
    Syntax {
        field: String,
        message: String,
    },
    /// A name the template uses is not a field of the doc.
    Undefined {
        field: String,
        keys: Vec<String>,
        message: String,
    },
    Render {
        field: String,
        message: String,
    },
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Syntax { field, message } => {
                write!(f, "`{field}` is not a valid Jinja template: {message}")
            }
            TemplateError::Undefined {
                field,
                keys,
                message,
            } if keys.is_empty() => {
                write!(f, "`{field}` uses an undefined value: {message}")
            }
            TemplateError::Undefined { field, keys, .. } => {
                let keys: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
                write!(
                    f,
                    "`{field}` references {}, which the doc does not have",
                    keys.join(", ")
                )
            }
            TemplateError::Render { field, message } => {
                write!(f, "rendering `{field}` failed: {message}")
            }
        }
    }
}

/// Python methods templates call: pycompat's, plus `list.index` and `list.count` (lm-eval's
/// arc writes `{{choices.label.index(answerKey)}}`); `index` of a missing item is an error, as
/// Python's ValueError.
fn python_methods(
    state: &minijinja::State,
    value: &minijinja::Value,
    method: &str,
    args: &[minijinja::Value],
) -> Result<minijinja::Value, minijinja::Error> {
    use minijinja::value::ValueKind;
    if value.kind() == ValueKind::Seq && matches!(method, "index" | "count") {
        let [needle] = args else {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("list.{method}() takes exactly one argument"),
            ));
        };
        let items: Vec<minijinja::Value> = value.try_iter()?.collect();
        if method == "count" {
            return Ok(minijinja::Value::from(
                items.iter().filter(|v| *v == needle).count(),
            ));
        }
        return match items.iter().position(|v| v == needle) {
            Some(i) => Ok(minijinja::Value::from(i)),
            None => Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("{needle} is not in list"),
            )),
        };
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

fn new_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_recursion_limit(200);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_unknown_method_callback(python_methods);
    env.add_filter("regex_replace", regex_replace);
    // lm-eval 0.5's filters (`lm_eval/config/templates.py`)
    env.add_filter("letter_choices", letter_choices);
    env.add_filter("answer_key_to_index", answer_key_to_index);
    // a template that loops without end stops with an error instead of running out of memory
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_formatter(|out, _state, value| {
        if value.is_undefined() {
            return Err(minijinja::Error::new(
                ErrorKind::UndefinedError,
                "undefined value printed",
            ));
        }
        // Python raises ZeroDivisionError where minijinja gives inf or nan (`1 / 0`)
        if value.kind() == minijinja::value::ValueKind::Number {
            if let Ok(f) = f64::try_from(value.clone()) {
                if !f.is_finite() {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        format!("the value {f} is not a finite number (a division by zero?)"),
                    ));
                }
            }
        }
        if let Some(s) = value.as_str() {
            out.write_str(s)
                .map_err(|_| minijinja::Error::new(ErrorKind::WriteFailure, "write failed"))?;
            return Ok(());
        }
        let json = serde_json::to_value(value).unwrap_or(Value::Null);
        out.write_str(&crate::py::str(&json))
            .map_err(|_| minijinja::Error::new(ErrorKind::WriteFailure, "write failed"))
    });
    env
}

/// Template instructions one render may execute (a runaway loop is an error, not an abort):
/// lm-eval's prompts take a few hundred.
pub(crate) const TEMPLATE_FUEL: u64 = 5_000_000;

/// `regex_replace(s, pattern, repl, count=0)`: Python's `re.sub`.
fn regex_replace(
    s: String,
    pattern: String,
    repl: String,
    count: Option<usize>,
) -> Result<String, minijinja::Error> {
    let re = re::compile(&pattern).map_err(|e| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("bad regex {pattern:?}: {e}"),
        )
    })?;
    re::sub(&re, &repl, &s, count.unwrap_or(0))
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

/// A value as Python's `str()` prints it.
fn py_text(v: &JValue) -> String {
    match v.as_str() {
        Some(s) => s.to_string(),
        None => crate::py::str(&serde_json::to_value(v).unwrap_or(Value::Null)),
    }
}

/// lm-eval 0.5's `letter_choices(choices, sep="\n", style=". ")`: `A. first\nB. second`.
fn letter_choices(
    choices: JValue,
    sep: Option<String>,
    style: Option<String>,
) -> Result<String, minijinja::Error> {
    let (sep, style) = (
        sep.as_deref().unwrap_or("\n"),
        style.as_deref().unwrap_or(". "),
    );
    let mut parts = Vec::new();
    for (i, c) in choices.try_iter()?.enumerate() {
        let letter = (b'A'..=b'Z').nth(i).ok_or_else(|| {
            minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "letter_choices: more than 26 choices (string index out of range)",
            )
        })? as char;
        parts.push(format!("{letter}{style}{}", py_text(&c)));
    }
    Ok(parts.join(sep))
}

/// lm-eval 0.5's `answer_key_to_index(key, labels=None)`: the key's position in `labels`, else
/// a letter's offset from `A`, else a 1-based number minus one.
fn answer_key_to_index(key: JValue, labels: Option<JValue>) -> Result<i64, minijinja::Error> {
    let bad = |m: String| minijinja::Error::new(ErrorKind::InvalidOperation, m);
    let key = py_text(&key).trim().to_string();
    if let Some(labels) = labels.filter(|l| !l.is_none()) {
        let items: Vec<JValue> = labels.try_iter()?.collect();
        return (items.iter().position(|l| l.as_str() == Some(key.as_str())))
            .map(|i| i as i64)
            .ok_or_else(|| bad(format!("answer_key_to_index: '{key}' is not in list")));
    }
    let mut chars = key.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if c.is_alphabetic() {
            let upper = c.to_uppercase().next().unwrap_or(c);
            return Ok(upper as i64 - 'A' as i64);
        }
    }
    key.parse::<i64>().map(|n| n - 1).map_err(|_| {
        bad(format!(
            "answer_key_to_index: invalid literal for int() with base 10: '{key}'"
        ))
    })
}

impl Templates {
    pub fn new() -> Self {
        Templates { env: new_env() }
    }

    /// Compile `source` under the name `field` (e.g. `doc_to_text`, `fewshot_config.doc_to_text`).
    pub fn add(&mut self, field: &str, source: &str) -> Result<(), TemplateError> {
        self.env
            .add_template_owned(field.to_string(), source.to_string())
            .map_err(|e| TemplateError::Syntax {
                field: field.to_string(),
                message: describe(&e),
            })
    }

    pub fn has(&self, field: &str) -> bool {
        self.env.get_template(field).is_ok()
    }

    /// Render the template stored as `field` with the doc's fields as variables.
    pub fn render(&self, field: &str, doc: &Map<String, Value>) -> Result<String, TemplateError> {
        let tmpl = self
            .env
            .get_template(field)
            .map_err(|e| TemplateError::Render {
                field: field.to_string(),
                message: describe(&e),
            })?;
        tmpl.render(JValue::from_serialize(doc)).map_err(|e| {
            if e.kind() == ErrorKind::UndefinedError {
                let mut keys: Vec<String> = tmpl
                    .undeclared_variables(false)
                    .into_iter()
                    .filter(|k| !doc.contains_key(k))
                    .collect();
                keys.sort();
                TemplateError::Undefined {
                    field: field.to_string(),
                    keys,
                    message: describe(&e),
                }
            } else {
                TemplateError::Render {
                    field: field.to_string(),
                    message: describe(&e),
                }
            }
        })
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

/// minijinja's error with its detail and line, on one line.
fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.kind().to_string();
    if let Some(detail) = e.detail() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (template line {line})"));
    }
    msg
}

/// Render a one-off template string on a doc (for `description`, `gen_prefix`, extras).
pub fn render_once(
    field: &str,
    source: &str,
    doc: &Map<String, Value>,
) -> Result<String, TemplateError> {
    let mut t = Templates::new();
    t.add(field, source)?;
    t.render(field, doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn render(src: &str, d: Value) -> Result<String, TemplateError> {
        render_once("t", src, &doc(d))
    }

    #[test]
    fn python_string_methods() {
        let d = json!({"answer": "so 3+4=7\n#### 7", "h": "It rains"});
        assert_eq!(
            render("{{answer.split('####')[-1].strip()}}", d.clone()).unwrap(),
            "7"
        );
        assert_eq!(
            render(
                "{{h.strip() if h.strip().endswith('.') else h.strip() + '.'}}",
                d.clone()
            )
            .unwrap(),
            "It rains."
        );
        assert_eq!(
            render("{{h.lower().replace('rains', 'snows')}}", d).unwrap(),
            "it snows"
        );
    }

    #[test]
    fn trailing_newline_kept_and_values_print_as_python() {
        let d = json!({"xs": ["a", "b's"], "f": 2.0, "b": true, "n": null, "i": 3});
        assert_eq!(render("{{xs}}\n", d.clone()).unwrap(), "['a', \"b's\"]\n");
        assert_eq!(
            render("{{f}} {{b}} {{n}} {{i}}", d).unwrap(),
            "2.0 True None 3"
        );
    }

    #[test]
    fn undefined_names_the_key() {
        let err = render("Q: {{question}} {{missing}}", json!({"question": "q"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`t` references `missing`, which the doc does not have"
        );
    }

    #[test]
    fn regex_replace_is_re_sub() {
        let d = json!({"s": "a1b22c"});
        assert_eq!(
            render("{{s | regex_replace('[0-9]+', '#')}}", d.clone()).unwrap(),
            "a#b#c"
        );
        assert_eq!(
            render(
                "{{s | regex_replace('([a-z])([0-9])', '\\\\2\\\\1', 1)}}",
                d
            )
            .unwrap(),
            "1ab22c"
        );
    }

    #[test]
    fn syntax_error_is_reported() {
        let mut t = Templates::new();
        let err = t.add("doc_to_text", "{{ question ").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`doc_to_text` is not a valid Jinja template"),
            "{err}"
        );
    }
}
