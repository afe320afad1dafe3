//! The judge's prompts and verdicts, for the `judge` metric (`judge.rs` documents them) and
//! `rubric compare`'s pairwise grading: options parsed and templates compiled once, the chat
//! messages of a doc rendered, and the judge's answers read into scores or choices.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::py::re::{self, PyRegex};
use crate::task::template::Templates;

const OPTIONS: &[&str] = &[
    "prompt",
    "system",
    "regex",
    "json_key",
    "labels",
    "min",
    "max",
    "pairwise_prompt",
    "pairwise_system",
    "pairwise_regex",
];

/// How a judge's answer becomes a number.
#[derive(Debug)]
enum Reading {
    /// MT-Bench's `[[rating]]`, else `[rating]`.
    Rating,
    Regex(PyRegex),
    Json(String),
}

/// A pairwise verdict: which position the judge preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    A,
    B,
    Tie,
}

/// What the judge said of one response, and the score read from it (None: unreadable, with
/// why).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub text: String,
    pub score: Option<f64>,
    pub error: Option<String>,
}

impl Verdict {
    /// As a samples line logs it under `judge_verdict`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"answer": self.text, "score": self.score, "unparsed": self.error})
    }
}

/// A task's judge: its prompts, compiled, and how its answers are read.
#[derive(Debug)]
pub struct Spec {
    templates: Templates,
    prompt: String,
    system: Option<String>,
    reading: Reading,
    labels: Option<BTreeMap<String, f64>>,
    min: Option<f64>,
    max: Option<f64>,
    pairwise: Option<(String, Option<String>)>,
    pairwise_regex: Option<PyRegex>,
}

fn text_option(opts: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match opts.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("option `{key}` must be text, got {other}")),
    }
}

fn number_option(opts: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match opts.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("option `{key}` must be a number, got {v}")),
    }
}

fn regex_option(opts: &Map<String, Value>, key: &str) -> Result<Option<PyRegex>, String> {
    text_option(opts, key)?
        .map(|p| re::compile(&p).map_err(|e| format!("option `{key}`: bad regex {p:?}: {e}")))
        .transpose()
}

impl Spec {
    /// The judge of a `metric_list` entry's options.
    pub fn from_options(opts: &Map<String, Value>) -> Result<Spec, String> {
        if let Some(k) = opts.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
            let hint = crate::text::did_you_mean(k, OPTIONS.iter().copied())
                .map(|h| format!(" (did you mean `{h}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "unknown option `{k}`{hint}; a judge takes {}",
                OPTIONS.join(", ")
            ));
        }
        let prompt = text_option(opts, "prompt")?.ok_or(
            "needs `prompt`: the grading prompt, a Jinja template over the doc's fields, `response` and `target`",
        )?;
        let mut templates = Templates::new();
        templates
            .add("prompt", &prompt)
            .map_err(|e| e.to_string())?;
        let system = text_option(opts, "system")?;
        if let Some(s) = &system {
            templates.add("system", s).map_err(|e| e.to_string())?;
        }
        let reading = match (regex_option(opts, "regex")?, text_option(opts, "json_key")?) {
            (Some(_), Some(_)) => return Err("give `regex` or `json_key`, not both".into()),
            (Some(r), None) => Reading::Regex(r),
            (None, Some(k)) => Reading::Json(k),
            (None, None) => Reading::Rating,
        };
        let labels = match opts.get("labels") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(
                m.iter()
                    .map(|(k, v)| {
                        v.as_f64().map(|x| (k.clone(), x)).ok_or_else(|| {
                            format!("option `labels`: `{k}` must map to a number, got {v}")
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(other) => {
                return Err(format!(
                    "option `labels` must map texts to numbers, got {other}"
                ))
            }
        };
        if labels.is_some() && matches!(reading, Reading::Rating) {
            return Err("`labels` reads a `regex` group or a `json_key` value: give one".into());
        }
        let pairwise = text_option(opts, "pairwise_prompt")?;
        let pairwise_system = text_option(opts, "pairwise_system")?;
        if let Some(p) = &pairwise {
            templates
                .add("pairwise_prompt", p)
                .map_err(|e| e.to_string())?;
        }
        if let Some(s) = &pairwise_system {
            if pairwise.is_none() {
                return Err("`pairwise_system` needs `pairwise_prompt`".into());
            }
            templates
                .add("pairwise_system", s)
                .map_err(|e| e.to_string())?;
        }
        Ok(Spec {
            templates,
            prompt,
            system,
            reading,
            labels,
            min: number_option(opts, "min")?,
            max: number_option(opts, "max")?,
            pairwise: pairwise.map(|p| (p, pairwise_system)),
            pairwise_regex: regex_option(opts, "pairwise_regex")?,
        })
    }

    /// sha256 of the grading prompt as written, and of the system message (results record
    /// both, so that runs graded with other prompts are told apart).
    pub fn hashes(&self) -> (String, Option<String>) {
        let h = crate::py::sha256_hex;
        (h(&self.prompt), self.system.as_deref().map(h))
    }

    /// sha256 of the pairwise prompt and its system message.
    pub fn pairwise_hashes(&self) -> Option<(String, Option<String>)> {
        let h = crate::py::sha256_hex;
        (self.pairwise.as_ref()).map(|(p, s)| (h(p), s.as_deref().map(h)))
    }

    pub fn has_pairwise(&self) -> bool {
        self.pairwise.is_some()
    }

    fn messages(
        &self,
        prompt: &str,
        system: &str,
        vars: &Map<String, Value>,
    ) -> Result<Value, String> {
        let mut out = Vec::new();
        if self.templates.has(system) {
            let s = self
                .templates
                .render(system, vars)
                .map_err(|e| e.to_string())?;
            out.push(serde_json::json!({"role": "system", "content": s}));
        }
        let u = self
            .templates
            .render(prompt, vars)
            .map_err(|e| e.to_string())?;
        out.push(serde_json::json!({"role": "user", "content": u}));
        Ok(Value::Array(out))
    }

    /// The chat messages grading `response` for a doc with its target.
    pub fn single(
        &self,
        doc: &Map<String, Value>,
        target: &Value,
        response: &str,
    ) -> Result<Value, String> {
        let vars = variables(doc, target, &[("response", response)]);
        self.messages("prompt", "system", &vars)
    }

    /// The chat messages comparing `a` (shown first) with `b`.
    pub fn pair(
        &self,
        doc: &Map<String, Value>,
        target: &Value,
        a: &str,
        b: &str,
    ) -> Result<Value, String> {
        let vars = variables(doc, target, &[("response_a", a), ("response_b", b)]);
        self.messages("pairwise_prompt", "pairwise_system", &vars)
    }

    /// Read a single-answer verdict.
    pub fn read(&self, text: &str) -> Verdict {
        let (score, error) = match self.score(text) {
            Ok(x) => (Some(x), None),
            Err(e) => (None, Some(e)),
        };
        Verdict {
            text: text.to_string(),
            score,
            error,
        }
    }

    fn score(&self, text: &str) -> Result<f64, String> {
        let x = match &self.reading {
            Reading::Rating => rating(text)?,
            Reading::Regex(r) => {
                let caps = re::find_iter(r, text)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| format!("no match for the regex {:?}", r.as_str()))?;
                let m = caps.get(1).or_else(|| caps.get(0)).map(|m| m.as_str());
                self.value(&Value::String(m.unwrap_or_default().to_string()))?
            }
            Reading::Json(key) => {
                let obj = json_object(text).ok_or("no JSON object in the answer")?;
                let v = obj
                    .get(key)
                    .filter(|v| !v.is_null())
                    .ok_or_else(|| format!("the JSON object has no `{key}`"))?;
                self.value(v)?
            }
        };
        if self.min.is_some_and(|m| x < m) || self.max.is_some_and(|m| x > m) {
            let b = |x: Option<f64>| x.map_or("..".to_string(), |x| x.to_string());
            return Err(format!("{x} is outside [{}, {}]", b(self.min), b(self.max)));
        }
        Ok(x)
    }

    /// A captured value as a number: a label's, a JSON number or boolean, or text that is one.
    fn value(&self, v: &Value) -> Result<f64, String> {
        let text = match v {
            Value::Number(n) if self.labels.is_none() => {
                return n.as_f64().ok_or("not a number".into())
            }
            Value::Bool(b) if self.labels.is_none() => return Ok(f64::from(u8::from(*b))),
            Value::String(s) => s.trim().to_string(),
            other => crate::py::str(other),
        };
        if let Some(labels) = &self.labels {
            return labels.get(&text).copied().ok_or_else(|| {
                let names: Vec<&str> = labels.keys().map(String::as_str).collect();
                format!("`{text}` is not one of the labels ({})", names.join(", "))
            });
        }
        text.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("`{text}` is not a number"))
    }

    /// Read a pairwise verdict.
    pub fn read_pair(&self, text: &str) -> Result<Choice, String> {
        let Some(r) = &self.pairwise_regex else {
            // FastChat's order: [[A]], then [[B]], then [[C]]
            return if text.contains("[[A]]") {
                Ok(Choice::A)
            } else if text.contains("[[B]]") {
                Ok(Choice::B)
            } else if text.contains("[[C]]") {
                Ok(Choice::Tie)
            } else {
                Err("no [[A]], [[B]] or [[C]] in the answer".into())
            };
        };
        let caps = re::find_iter(r, text)?
            .into_iter()
            .next()
            .ok_or_else(|| format!("no match for the regex {:?}", r.as_str()))?;
        let m = caps
            .get(1)
            .or_else(|| caps.get(0))
            .map_or("", |m| m.as_str());
        match m.trim() {
            "A" => Ok(Choice::A),
            "B" => Ok(Choice::B),
            t if t == "C" || t.eq_ignore_ascii_case("tie") => Ok(Choice::Tie),
            t => Err(format!("`{t}` is not A, B, C or tie")),
        }
    }
}

/// The template's variables: the doc's fields, then `doc`, `target` and the responses.
fn variables(
    doc: &Map<String, Value>,
    target: &Value,
    responses: &[(&str, &str)],
) -> Map<String, Value> {
    let mut vars = doc.clone();
    vars.insert("doc".into(), Value::Object(doc.clone()));
    vars.insert("target".into(), target.clone());
    for (k, v) in responses {
        vars.insert(k.to_string(), Value::String(v.to_string()));
    }
    vars
}

/// MT-Bench's rating: the number in the first `[[x]]`, else in the first `[x]`.
fn rating(text: &str) -> Result<f64, String> {
    for pattern in [r"\[\[(\d+\.?\d*)\]\]", r"\[(\d+\.?\d*)\]"] {
        let r = re::compile(pattern).expect("a valid pattern");
        if let Some(c) = re::find_iter(&r, text)?.into_iter().next() {
            let g = c.get(1).map_or("", |m| m.as_str());
            return g
                .parse::<f64>()
                .map_err(|_| format!("`{g}` is not a number"));
        }
    }
    Err("no [[rating]] in the answer".into())
}

/// The JSON object an answer holds: all of it, else its last ```json block, else the text from
/// its first `{` to its last `}`.
fn json_object(text: &str) -> Option<Map<String, Value>> {
    let parse = |s: &str| {
        serde_json::from_str::<Value>(s.trim())
            .ok()
            .and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
    };
    if let Some(m) = parse(text) {
        return Some(m);
    }
    if let Some(start) = text.rfind("```json") {
        let body = &text[start + 7..];
        if let Some(m) = parse(body.split("```").next().unwrap_or(body)) {
            return Some(m);
        }
    }
    let (a, b) = (text.find('{')?, text.rfind('}')?);
    (a < b).then(|| parse(&text[a..=b])).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> Result<Spec, String> {
        Spec::from_options(v.as_object().unwrap())
    }

    #[test]
    fn mt_bench_ratings_as_fastchat_reads_them() {
        let s = spec(json!({"prompt": "{{response}}"})).unwrap();
        let score = |t: &str| s.read(t).score;
        assert_eq!(score("Good. Rating: [[7]]"), Some(7.0));
        assert_eq!(score("[[8.5]] then [[2]]"), Some(8.5));
        // the backup pattern, only without a double-bracketed one
        assert_eq!(score("Rating: [6]"), Some(6.0));
        assert_eq!(score("[3] but [[9]]"), Some(9.0));
        assert_eq!(score("[[5.]]"), Some(5.0));
        let v = s.read("Rating: 7/10");
        assert_eq!(
            (v.score, v.error.as_deref()),
            (None, Some("no [[rating]] in the answer"))
        );
        assert_eq!(s.read("[[-3]]").score, None);
    }

    #[test]
    fn regex_json_labels_and_ranges() {
        let s = spec(json!({"prompt": "x", "regex": "GRADE: (CORRECT|INCORRECT)", "labels": {"CORRECT": 1, "INCORRECT": 0}})).unwrap();
        assert_eq!(s.read("... GRADE: INCORRECT").score, Some(0.0));
        assert_eq!(s.read("GRADE: CORRECT").score, Some(1.0));
        assert!(s.read("grade: correct").error.unwrap().contains("no match"));
        let s = spec(json!({"prompt": "x", "json_key": "score", "min": 1, "max": 5})).unwrap();
        assert_eq!(s.read(r#"{"score": 4, "why": "ok"}"#).score, Some(4.0));
        assert_eq!(
            s.read("Sure:\n```json\n{\"score\": \"2\"}\n```").score,
            Some(2.0)
        );
        assert_eq!(s.read(r#"I think {"score": 3} fits"#).score, Some(3.0));
        assert_eq!(
            s.read(r#"{"score": 9}"#).error.as_deref(),
            Some("9 is outside [1, 5]")
        );
        assert!(s
            .read(r#"{"grade": 3}"#)
            .error
            .unwrap()
            .contains("no `score`"));
        assert!(s.read("no json").error.is_some());
        let s = spec(json!({"prompt": "x", "json_key": "ok"})).unwrap();
        assert_eq!(s.read(r#"{"ok": true}"#).score, Some(1.0));
        let s = spec(json!({"prompt": "x", "regex": "score=(\\S+)"})).unwrap();
        assert_eq!(s.read("score=0.25").score, Some(0.25));
        assert!(s.read("score=high").error.unwrap().contains("not a number"));
    }

    #[test]
    fn pairwise_verdicts_and_prompts() {
        let s = spec(json!({"prompt": "{{response}}", "pairwise_prompt": "Q: {{question}}\nA: {{response_a}}\nB: {{response_b}}", "pairwise_system": "Be fair."})).unwrap();
        assert_eq!(s.read_pair("so [[B]]"), Ok(Choice::B));
        assert_eq!(s.read_pair("[[B]] no, [[A]]"), Ok(Choice::A));
        assert_eq!(s.read_pair("[[C]]"), Ok(Choice::Tie));
        assert!(s.read_pair("A is better").is_err());
        let doc = json!({"question": "2+2?"}).as_object().unwrap().clone();
        let m = s.pair(&doc, &json!("4"), "four", "5").unwrap();
        assert_eq!(
            m,
            json!([{"role": "system", "content": "Be fair."}, {"role": "user", "content": "Q: 2+2?\nA: four\nB: 5"}])
        );
        let s = spec(
            json!({"prompt": "x", "pairwise_prompt": "y", "pairwise_regex": "Winner: (\\w+)"}),
        )
        .unwrap();
        assert_eq!(s.read_pair("Winner: tie"), Ok(Choice::Tie));
        assert!(s.read_pair("Winner: both").is_err());
    }

    #[test]
    fn prompts_see_doc_target_and_response() {
        let s = spec(json!({"prompt": "{{question}}|{{doc.response}}|{{response}}|{{target}}"}))
            .unwrap();
        let doc = json!({"question": "q", "response": "field"})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            s.single(&doc, &json!(7), "r").unwrap(),
            json!([{"role": "user", "content": "q|field|r|7"}])
        );
        let e = s
            .single(&json!({}).as_object().unwrap().clone(), &json!(7), "r")
            .unwrap_err();
        assert!(e.contains("question"), "{e}");
    }

    #[test]
    fn bad_options_are_named() {
        let err = |v: Value| spec(v).unwrap_err();
        assert!(err(json!({})).contains("needs `prompt`"));
        assert!(err(json!({"prompt": "x", "promt_system": "y"}))
            .contains("unknown option `promt_system`"));
        assert!(err(json!({"prompt": "{{ x"})).contains("not a valid Jinja template"));
        assert!(err(json!({"prompt": "x", "regex": "("})).contains("bad regex"));
        assert!(err(json!({"prompt": "x", "regex": "a", "json_key": "b"})).contains("not both"));
        assert!(err(json!({"prompt": "x", "labels": {"a": 1}})).contains("`labels` reads"));
        assert!(
            err(json!({"prompt": "x", "pairwise_system": "s"})).contains("needs `pairwise_prompt`")
        );
    }
}
