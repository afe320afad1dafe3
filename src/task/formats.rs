//! lm-eval 0.5's prompt formats (`formats:` in a task YAML, `task@format` on the command line)
//! and its `scorer:` key, expanded into the 0.4 keys rubric resolves.
//!
//! As lm-eval 0.5.0.dev1 (`lm_eval/config/formats/`, `TaskConfig._resolve_formats`): a format
//! (`mcqa`, `cloze`, `generate`, `cot`) consumes the task's `doc_to_text` / `doc_to_choice` /
//! `doc_to_target` as field mappings and replaces them with Jinja templates that lay out the
//! instruction, question, labelled choices and answer prompt; it also sets `output_type`,
//! `target_delimiter`, `fewshot_delimiter`, `gen_prefix` and `scorer`. `formats:` is a format
//! name, `{type: name, field: value, ..}` (one format with overrides) or `{name: overrides, ..}`
//! (several; `task@name` picks one, the first is the default). A `@name` suffix on the YAML's
//! own `task:` selects too. The templates here are lm-eval's, character for character; rubric's
//! Jinja renders them. A YAML without `formats:` or `@` is untouched (0.4.13 semantics).
//!
//! `scorer:` (`first_token`, `regex`, `choice_match`; a name or `{type: name}`) gives the
//! filter pipeline and metrics a generation task uses when it writes none (lm-eval 0.5's
//! `scorers/extraction.py`): `first_token` strips whitespace, `regex` takes GSM8K's
//! `#### (number)`, `choice_match` takes the response as it is; all score `exact_match`
//! (ignoring case and punctuation).

use serde_json::{json, Map, Value};

/// The key a `task@format` selection travels under from the command line to the task's map
/// (lm-eval 0.5's own internal field name).
pub const SELECTION_KEY: &str = "_formats_selection";

/// The formats lm-eval 0.5.0.dev1 registers.
pub const FORMAT_NAMES: &[&str] = &["cloze", "cot", "generate", "mcqa"];

/// The scorers lm-eval 0.5.0.dev1 registers.
pub const SCORER_NAMES: &[&str] = &["choice_match", "first_token", "regex"];

/// A fault in `formats:` / `scorer:`: the field (as a path) and why.
#[derive(Debug)]
pub struct FormatError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> FormatError {
    FormatError {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Labels {
    Letters,
    Numbers,
    List(Vec<String>),
    None,
}

/// `FormatConfig` with its fields as lm-eval names them.
#[derive(Debug, Clone)]
struct Format {
    output_type: String,
    instruction: Option<String>,
    question_prefix: Option<String>,
    choice_labels: Labels,
    choice_delimiter: String,
    section_separator: String,
    answer_instruction: Option<String>,
    answer_prompt: String,
    gen_prefix: Option<String>,
    target_delimiter: String,
    fewshot_delimiter: String,
    scorer: Option<Value>,
}

const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn s(x: &str) -> String {
    x.to_string()
}

/// A registered format with its defaults (`_multiple_choice.py`, `_generation.py`).
fn builtin(name: &str) -> Option<Format> {
    let mcqa = Format {
        output_type: s("multiple_choice"),
        instruction: None,
        question_prefix: Some(s("Question: ")),
        choice_labels: Labels::Letters,
        choice_delimiter: s("\n"),
        section_separator: s("\n"),
        answer_instruction: None,
        answer_prompt: s("Answer:"),
        gen_prefix: None,
        target_delimiter: s(" "),
        fewshot_delimiter: s("\n\n"),
        scorer: None,
    };
    let generate = Format {
        output_type: s("generate_until"),
        instruction: Some(s("Given the following question and {{ _num_choices }} candidate answers ({{ _choice_list_and }}), choose the best answer.\n")),
        answer_prompt: s("Your response should end with \"The best answer is [answer_letter]\" where the [answer_letter] is one of {{ _choice_list_or }}."),
        gen_prefix: Some(s("The best answer is")),
        target_delimiter: s("\n"),
        scorer: Some(json!("first_token")),
        ..mcqa.clone()
    };
    Some(match name {
        "mcqa" => mcqa,
        "cloze" => Format {
            choice_labels: Labels::None,
            ..mcqa
        },
        "generate" => generate,
        "cot" => Format {
            instruction: Some(s(
                "Given the following problem, reason step by step to find the final answer.\n",
            )),
            question_prefix: Some(s("Problem: ")),
            choice_labels: Labels::None,
            answer_prompt: s("Your response should end with \"The final answer is [answer]\" where [answer] is the response to the problem."),
            gen_prefix: None,
            ..generate
        },
        _ => return None,
    })
}

fn unknown_format(field: &str, name: &str) -> FormatError {
    err(
        field,
        format!(
            "unknown format `{name}`; lm-eval 0.5 has {}",
            FORMAT_NAMES.join(", ")
        ),
    )
}

/// `FormatConfig.get(spec, selection=...)`.
fn get(spec: &Value, selection: Option<&str>) -> Result<Format, FormatError> {
    match spec {
        Value::String(name) => builtin(name).ok_or_else(|| unknown_format("formats", name)),
        Value::Object(map) if map.contains_key("type") => {
            let mut overrides = map.clone();
            let ty = overrides.remove("type").unwrap_or(Value::Null);
            let Value::String(ty) = ty else {
                return Err(err(
                    "formats.type",
                    format!("expected a format name, found {ty}"),
                ));
            };
            let base = builtin(&ty).ok_or_else(|| unknown_format("formats.type", &ty))?;
            with_overrides(base, &overrides, "formats")
        }
        Value::Object(map) => {
            let chosen = match selection {
                Some(sel) if map.contains_key(sel) => sel.to_string(),
                Some(sel) => {
                    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                    return Err(err(
                        "formats",
                        format!(
                            "format `{sel}` (from `@{sel}`) is not one of the task's formats: {}",
                            keys.join(", ")
                        ),
                    ));
                }
                None => match map.keys().next() {
                    Some(k) => k.clone(),
                    None => return Err(err("formats", "an empty mapping names no format")),
                },
            };
            let field = format!("formats.{chosen}");
            match &map[&chosen] {
                Value::Null => builtin(&chosen).ok_or_else(|| unknown_format(&field, &chosen)),
                // shorthand: `{mcqa: some_other_format}`
                Value::String(other) => builtin(other).ok_or_else(|| unknown_format(&field, other)),
                Value::Object(o) => {
                    let ty = match o.get("type") {
                        Some(Value::String(t)) => t.clone(),
                        _ => chosen.clone(),
                    };
                    let base = builtin(&ty).ok_or_else(|| unknown_format(&field, &ty))?;
                    let mut o = o.clone();
                    o.remove("type");
                    with_overrides(base, &o, &field)
                }
                other => Err(err(
                    &field,
                    format!("expected a mapping of format fields, a format name or nothing, found {other}"),
                )),
            }
        }
        other => Err(err(
            "formats",
            format!("expected a format name or a mapping, found {other}"),
        )),
    }
}

const FORMAT_FIELDS: &[&str] = &[
    "output_type",
    "instruction",
    "question_prefix",
    "choice_labels",
    "choice_delimiter",
    "section_separator",
    "answer_instruction",
    "answer_prompt",
    "gen_prefix",
    "target_delimiter",
    "fewshot_delimiter",
    "scorer",
];

fn with_overrides(
    mut f: Format,
    overrides: &Map<String, Value>,
    at: &str,
) -> Result<Format, FormatError> {
    for (k, v) in overrides {
        let field = format!("{at}.{k}");
        let text = |optional: bool| -> Result<Option<String>, FormatError> {
            match v {
                Value::String(t) => Ok(Some(t.clone())),
                Value::Null if optional => Ok(None),
                other => Err(err(
                    &field,
                    format!(
                        "expected a string{}, found {other}",
                        if optional { " or null" } else { "" }
                    ),
                )),
            }
        };
        match k.as_str() {
            "output_type" => {
                let t = text(false)?.unwrap_or_default();
                if ![
                    "generate_until",
                    "loglikelihood",
                    "loglikelihood_rolling",
                    "multiple_choice",
                ]
                .contains(&t.as_str())
                {
                    return Err(err(&field, format!("unknown output_type `{t}`")));
                }
                f.output_type = t;
            }
            "instruction" => f.instruction = text(true)?,
            "question_prefix" => f.question_prefix = text(true)?,
            "answer_instruction" => f.answer_instruction = text(true)?,
            "gen_prefix" => f.gen_prefix = text(true)?,
            "choice_delimiter" => f.choice_delimiter = text(false)?.unwrap_or_default(),
            "section_separator" => f.section_separator = text(false)?.unwrap_or_default(),
            "answer_prompt" => f.answer_prompt = text(false)?.unwrap_or_default(),
            "target_delimiter" => f.target_delimiter = text(false)?.unwrap_or_default(),
            "fewshot_delimiter" => f.fewshot_delimiter = text(false)?.unwrap_or_default(),
            "choice_labels" => f.choice_labels = labels(v, &field)?,
            "scorer" => f.scorer = (!v.is_null()).then(|| v.clone()),
            _ => {
                let hint = crate::text::did_you_mean(k, FORMAT_FIELDS.iter().copied())
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                return Err(err(
                    &field,
                    format!(
                        "not a format field{hint}; a format has {}",
                        FORMAT_FIELDS.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(f)
}

fn labels(v: &Value, field: &str) -> Result<Labels, FormatError> {
    match v {
        Value::Null => Ok(Labels::None),
        Value::String(t) if t == "letters" => Ok(Labels::Letters),
        Value::String(t) if t == "numbers" => Ok(Labels::Numbers),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .map(Labels::List)
            .ok_or_else(|| err(field, "a list of labels must hold strings")),
        other => Err(err(
            field,
            format!("expected `letters`, `numbers`, a list of labels or null, found {other}"),
        )),
    }
}

fn py_list(items: &[String]) -> String {
    crate::py::str(&Value::Array(
        items.iter().map(|i| Value::String(i.clone())).collect(),
    ))
}

/// `_label_at_index`.
fn label_at(labels: &Labels, index: &str) -> String {
    match labels {
        Labels::Letters => format!("'{LETTERS}'[{index}]"),
        Labels::Numbers => format!("{index} + 1"),
        Labels::List(l) => format!("{}[{index}]", py_list(l)),
        Labels::None => "''".into(),
    }
}

/// `_labels_up_to`.
fn labels_up_to(labels: &Labels, count: &str) -> String {
    match labels {
        Labels::Letters => format!("'{LETTERS}'[:{count}]|list"),
        Labels::Numbers => format!("range(1, {count} + 1)|list"),
        Labels::List(l) => format!("{}[:{count}]", py_list(l)),
        Labels::None => "''".into(),
    }
}

/// Python's `str.isidentifier` (ASCII and Unicode letters, digits after the first, `_`).
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// `FormatConfig._field_ref`.
fn field_ref(field: &str, for_output: bool) -> String {
    if field.contains("{{") {
        if for_output {
            return field.trim().to_string();
        }
        let inner = field.replace("{{", "").replace("}}", "");
        let inner = inner.trim();
        if !is_identifier(inner) {
            return format!("({inner})");
        }
        return inner.to_string();
    }
    if for_output {
        format!("{{{{{field}}}}}")
    } else {
        field.to_string()
    }
}

impl Format {
    fn preamble(&self, choice: Option<&str>) -> String {
        let Some(c) = choice.filter(|c| !c.is_empty()) else {
            return String::new();
        };
        if self.choice_labels == Labels::None {
            return String::new();
        }
        let c_ref = field_ref(c, false);
        format!(
            "{{% set _num_choices = {c_ref}|length %}}{{% set _choice_labels = {} %}}{{% set _choice_list_and = _choice_labels[:-1]|join(', ') ~ ' and ' ~ _choice_labels[-1]|string %}}{{% set _choice_list_or = _choice_labels[:-1]|join(', ') ~ ' or ' ~ _choice_labels[-1]|string %}}",
            labels_up_to(&self.choice_labels, "_num_choices")
        )
    }

    fn text(&self, text: &str, choice: Option<&str>) -> String {
        let mut t = String::new();
        if let Some(i) = self.instruction.as_deref().filter(|i| !i.is_empty()) {
            t.push_str(i);
        }
        if let Some(q) = self.question_prefix.as_deref().filter(|q| !q.is_empty()) {
            t.push_str(q);
        }
        t.push_str(&field_ref(text, true));
        if let Some(c) = choice.filter(|c| !c.is_empty() && self.choice_labels != Labels::None) {
            t.push_str(&self.section_separator);
            t.push_str(&format!(
                "{{% for choice in {} %}}{{{{ {} }}}}. {{{{ choice }}}}{{% if not loop.last %}}{}{{% endif %}}{{% endfor %}}",
                field_ref(c, false),
                label_at(&self.choice_labels, "loop.index0"),
                self.choice_delimiter
            ));
        }
        t.push_str(&self.section_separator);
        if let Some(a) = self.answer_instruction.as_deref().filter(|a| !a.is_empty()) {
            t.push_str(a);
        }
        t.push_str(&self.answer_prompt);
        let preamble = self.preamble(choice);
        let vars = [
            "_num_choices",
            "_choice_labels",
            "_choice_list_and",
            "_choice_list_or",
        ];
        if !preamble.is_empty() && vars.iter().any(|v| t.contains(v)) {
            t = preamble + &t;
        }
        t
    }

    fn target(&self, target: &str, choice: Option<&str>) -> Result<String, FormatError> {
        let (raw, out) = (field_ref(target, false), field_ref(target, true));
        let c_ref = choice
            .filter(|c| !c.is_empty())
            .map(|c| field_ref(c, false));
        match (self.output_type.as_str(), &c_ref, &self.choice_labels) {
            ("multiple_choice", None, _) => Err(err(
                "doc_to_choice",
                "the format's output_type is multiple_choice but the task has no doc_to_choice; set it (e.g. `doc_to_choice: choices`) so the format can build the target",
            )),
            ("multiple_choice", Some(c), _) => Ok(format!(
                "{{% if {raw} is number %}}{out}{{% else %}}{{{{ {c}.index({raw}) }}}}{{% endif %}}"
            )),
            ("generate_until", _, Labels::Letters | Labels::Numbers) => Ok(format!(
                "{{% if {raw} is number %}}{{{{ {} }}}}{{% else %}}{out}{{% endif %}}",
                label_at(&self.choice_labels, &raw)
            )),
            ("generate_until", Some(c), _) => Ok(format!(
                "{{% if {raw} is number %}}{{{{ {c}[{raw}] }}}}{{% else %}}{out}{{% endif %}}"
            )),
            _ => Ok(out),
        }
    }

    fn choice(&self, choice: Option<&str>) -> Option<String> {
        let c_ref = field_ref(choice.filter(|c| !c.is_empty())?, false);
        Some(match self.choice_labels {
            Labels::None => format!("{{{{ {c_ref} }}}}"),
            _ => format!(
                "{{{{ {} }}}}",
                labels_up_to(&self.choice_labels, &format!("{c_ref}|length"))
            ),
        })
    }
}

/// A `doc_to_*` value as the format reads it: a string, an int as `{{N}}`, a list as its
/// Python text; a function cannot be laid out.
fn mapping(
    map: &Map<String, Value>,
    key: &str,
    default: Option<&str>,
) -> Result<Option<String>, FormatError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(default.map(String::from)),
        Some(Value::String(t)) => Ok(Some(t.clone())),
        Some(Value::Number(n)) if key != "doc_to_choice" && n.is_i64() => Ok(Some(format!("{{{{{n}}}}}"))),
        Some(v @ Value::Array(_)) if key == "doc_to_choice" => Ok(Some(crate::py::str(v))),
        Some(v) if crate::hooks::Hook::from_value(v).is_some() => Err(err(
            key,
            "is a Python function; a format lays out a field name or a Jinja template, so write one (or drop `formats:`)",
        )),
        Some(other) => Err(err(
            key,
            format!("a format reads a field name or a Jinja template here, found {other}"),
        )),
    }
}

/// Expand `formats:` (and a `@format` selection) in a task's merged map, as
/// `TaskConfig._resolve_formats` does; then `scorer:`. A map with neither is left as it is.
pub fn expand(map: &mut Map<String, Value>) -> Result<(), FormatError> {
    let runtime = match map.remove(SELECTION_KEY) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let from_name = (map.get("task").and_then(Value::as_str))
        .and_then(|t| t.rsplit_once('@'))
        .map(|(_, sel)| sel.to_string());
    let selection = runtime.or(from_name);
    let spec = match map.get("formats") {
        Some(Value::Null) | None => selection.clone().map(Value::String),
        Some(v) => Some(v.clone()),
    };
    if let Some(spec) = spec {
        let format = get(&spec, selection.as_deref())?;
        apply(map, &format)?;
    }
    expand_scorer(map)
}

fn apply(map: &mut Map<String, Value>, f: &Format) -> Result<(), FormatError> {
    if f.output_type == "multiple_choice" && f.choice_labels == Labels::Numbers {
        // its choices render as the numbers themselves, ints, which lm-eval 0.5.0.dev1's
        // multiple_choice path refuses for every doc ("did not find any docs")
        return Err(err(
            "formats.choice_labels",
            "`numbers` labels with a multiple_choice format: lm-eval 0.5.0.dev1 scores the labels as the choices and skips every doc (its labels are ints); use letters or a list of label strings",
        ));
    }
    let text = mapping(map, "doc_to_text", Some("question"))?.unwrap_or_default();
    let target = mapping(map, "doc_to_target", Some("answer"))?.unwrap_or_default();
    let choice = mapping(map, "doc_to_choice", None)?;
    let choice = choice.as_deref();
    let new_target = f.target(&target, choice)?;
    map.insert("doc_to_text".into(), Value::String(f.text(&text, choice)));
    map.insert("doc_to_target".into(), Value::String(new_target));
    match f.choice(choice) {
        Some(c) => map.insert("doc_to_choice".into(), Value::String(c)),
        None => map.remove("doc_to_choice"),
    };
    map.insert("output_type".into(), Value::String(f.output_type.clone()));
    map.insert(
        "target_delimiter".into(),
        Value::String(f.target_delimiter.clone()),
    );
    map.insert(
        "fewshot_delimiter".into(),
        Value::String(f.fewshot_delimiter.clone()),
    );
    if let Some(g) = &f.gen_prefix {
        map.insert("gen_prefix".into(), Value::String(g.clone()));
    }
    if let Some(sc) = &f.scorer {
        map.insert("scorer".into(), sc.clone());
    }
    Ok(())
}

/// `scorer:`: the filters and metrics of `scorers/extraction.py`, for the pipelines and the
/// task that write none.
fn expand_scorer(map: &mut Map<String, Value>) -> Result<(), FormatError> {
    let name = match map.get("scorer") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(n)) => n.clone(),
        Some(Value::Object(o)) => {
            if let Some((k, _)) = o.iter().find(|(k, v)| {
                !(k.as_str() == "type" || (k.as_str() == "kwargs" && !crate::py::truthy(v)))
            }) {
                return Err(err(
                    &format!("scorer.{k}"),
                    "lm-eval 0.5's built-in scorers take no arguments (only `type`)",
                ));
            }
            match o.get("type") {
                Some(Value::String(n)) => n.clone(),
                _ => {
                    return Err(err(
                        "scorer.type",
                        "a scorer mapping needs `type: <scorer name>`",
                    ))
                }
            }
        }
        Some(other) => {
            return Err(err(
                "scorer",
                format!("expected a scorer name or `{{type: name}}`, found {other}"),
            ))
        }
    };
    let filter: Vec<Value> = match name.as_str() {
        "first_token" => vec![json!({"function": "remove_whitespace"})],
        "regex" => vec![
            json!({"function": "regex", "regex_pattern": "#### (\\-?[0-9\\.\\,]+)", "group_select": 0, "fallback": "[invalid]"}),
        ],
        "choice_match" => vec![],
        other => {
            return Err(err(
                "scorer",
                format!(
                    "unknown scorer `{other}`; lm-eval 0.5 has {}",
                    SCORER_NAMES.join(", ")
                ),
            ))
        }
    };
    let output = map
        .get("output_type")
        .and_then(Value::as_str)
        .unwrap_or("generate_until");
    if output != "generate_until" {
        return Err(err(
            "scorer",
            format!("scorer `{name}` scores generations; this task's output_type is `{output}`"),
        ));
    }
    // lm-eval 0.5 scores every repeat and reduces with the metric's `reduction` (default
    // `take_first`); without a `reduction` that is the first repeat, as a `take_first` filter
    // gives; with one, rubric's reductions need every repeat (see `metric::repeats`)
    let reduces = (map.get("metric_list").and_then(Value::as_array))
        .is_some_and(|l| l.iter().any(|m| m.get("reduction").is_some()));
    let mut steps = filter.clone();
    if !reduces {
        steps.push(json!({"function": "take_first"}));
    }
    match map.get_mut("filter_list") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for p in list.iter_mut() {
                if p.get("filter")
                    .is_some_and(|f| f.as_array().is_some_and(Vec::is_empty))
                {
                    p["filter"] = Value::Array(steps.clone());
                }
            }
        }
        _ => {
            map.insert(
                "filter_list".into(),
                json!([{"name": "none", "filter": steps}]),
            );
        }
    }
    let empty = match map.get("metric_list") {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    if empty {
        map.insert(
            "metric_list".into(),
            json!([{"metric": "exact_match", "aggregation": "mean", "higher_is_better": true,
                    "ignore_case": true, "ignore_punctuation": true}]),
        );
    }
    Ok(())
}
