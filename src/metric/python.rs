//! A metric function from the task's Python (`metric: !function module.name`), called as
//! lm-eval's `ConfigurableTask.process_results` calls one for a generation task:
//! `fn(references=[gold], predictions=[result], **kwargs)` (else `fn([gold, result])`), once
//! per doc; with several targets, 1.0 if any target scores. The results key is the
//! function's `__name__`; its aggregation is the entry's (`mean` when unnamed).

use serde_json::{Map, Value};

use super::aggregate::Aggregation;
use super::spec::{aggregation_option, direction_option, not_for, DocInput, Metric, MetricSpec};
use super::{Item, MetricError, Options};
use crate::hooks::Hook;

#[derive(Debug)]
struct PythonMetric {
    hook: Hook,
    name: String,
    kwargs: Map<String, Value>,
    /// The values go to a Python aggregation unchanged.
    python_aggregation: bool,
}

/// Build the metric; imports the function to learn its name.
pub(crate) fn build(hook: Hook, opts: &Options) -> Result<Metric, MetricError> {
    let invalid = |message: String| MetricError::Invalid {
        metric: hook.to_string(),
        message,
    };
    let name = hook.resolve().map_err(|e| invalid(e.to_string()))?.name;
    let mut kwargs = opts.clone();
    let aggregation = aggregation_option(kwargs.remove("aggregation").as_ref(), Aggregation::Mean)
        .map_err(invalid)?;
    let higher_is_better =
        direction_option(kwargs.remove("higher_is_better").as_ref(), true).map_err(invalid)?;
    let spec = PythonMetric {
        hook,
        name: name.clone(),
        kwargs,
        python_aggregation: matches!(aggregation, Aggregation::Python(_)),
    };
    Ok(Metric {
        name,
        spec: std::sync::Arc::new(spec),
        aggregation,
        higher_is_better,
        reductions: Vec::new(),
        repeats: 1,
    })
}

impl MetricSpec for PythonMetric {
    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        let DocInput::Prediction(p) = input else {
            return Err(not_for(input));
        };
        let call = |gold: &str| -> Result<Value, String> {
            let item = Value::Array(vec![
                Value::String(gold.into()),
                Value::String(p.text.into()),
            ]);
            let mut out = self
                .hook
                .metric(vec![item], &self.kwargs)
                .map_err(|e| e.to_string())?;
            let v = out.pop().unwrap_or(Value::Null);
            // a metric returning a mapping (HF evaluate style) gives its own key
            Ok(match v {
                Value::Object(m) if !m.contains_key("__py__") => {
                    m.get(&self.name).cloned().ok_or_else(|| {
                        format!(
                            "`{}` returned a mapping without the key `{}`",
                            self.hook, self.name
                        )
                    })?
                }
                other => other,
            })
        };
        let value = if p.refs.len() > 1 {
            // lm-eval: 1.0 if any target scores
            let mut any = false;
            for r in p.refs {
                let v = call(r)?;
                any |=
                    crate::hooks::as_f64(&v).is_some_and(|x| x != 0.0) || v.as_bool() == Some(true);
            }
            Value::from(if any { 1.0 } else { 0.0 })
        } else {
            call(p.refs.first().map(String::as_str).unwrap_or(""))?
        };
        if self.python_aggregation {
            return Ok(vec![Item::Python(value)]);
        }
        let x = crate::hooks::as_f64(&value)
            .ok_or_else(|| format!("`{}` returned {value}, expected a number", self.hook))?;
        Ok(vec![Item::Score(x)])
    }
}
