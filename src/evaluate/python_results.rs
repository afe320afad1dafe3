//! `process_results: !function module.name`: the task's Python scores each doc, as lm-eval's
//! `ConfigurableTask.process_results` delegates to it. The hook gets `(doc, results)`, the
//! results being the doc's main requests' filtered values in request order (a string per
//! generation, a `(loglikelihood, is_greedy)` tuple per continuation), in batches; it returns a
//! mapping of metric values, which `metric_list`'s aggregations reduce (see `ResultMetric`).

use serde_json::Value;

use crate::filter::python::filtered_to_python;
use crate::metric::Item;
use crate::results::DocRecord;

/// Fill each record's items from the hook; an error names the doc.
pub(crate) fn score(
    scoring: &super::scoring::Scoring,
    records: &mut [DocRecord],
    mains: &[usize],
) -> Result<(), (usize, String)> {
    let Some(hook) = &scoring.process_results else {
        return Ok(());
    };
    let input: Vec<Value> = records
        .iter()
        .zip(mains)
        .map(|(r, &n)| {
            let results: Vec<Value> = r.filtered[..n.min(r.filtered.len())]
                .iter()
                .map(filtered_to_python)
                .collect();
            Value::Array(vec![Value::Object(r.doc.clone()), Value::Array(results)])
        })
        .collect();
    let out = hook.process_results(input).map_err(|e| match e.index() {
        Some(i) => {
            let doc_id = records.get(i).map(|r| r.doc_id).unwrap_or(i);
            (doc_id, e.at(doc_id, "doc").to_string())
        }
        None => (0, e.to_string()),
    })?;
    if out.len() != records.len() {
        return Err((
            0,
            format!(
                "`{hook}` gave {} results for {} docs",
                out.len(),
                records.len()
            ),
        ));
    }
    for (r, values) in records.iter_mut().zip(out) {
        let Value::Object(values) = values else {
            return Err((
                r.doc_id,
                format!("`{hook}` returned {values}, expected a dict of metric values"),
            ));
        };
        for (key, v) in values {
            let metric = scoring.result_metrics.iter().find(|m| m.name == key).ok_or_else(|| {
                (
                    r.doc_id,
                    format!(
                        "`{hook}` returned the metric `{key}`, which `metric_list` does not name (lm-eval fails on it too); add it with its aggregation"
                    ),
                )
            })?;
            let item = Item::from_python(&metric.aggregation, &v)
                .map_err(|m| (r.doc_id, format!("`{hook}`, metric `{key}`: {m}")))?;
            r.items.push((key, item));
        }
    }
    Ok(())
}
