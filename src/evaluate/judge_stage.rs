//! The judge stage, between filtering and the per-doc metrics of a task graded by a judge
//! (`metric::judge`): every doc's filtered response (as its metrics read it) is put in the
//! judge's prompt with the doc and target, the judge is asked for all docs of the task and
//! filter at once (through its response cache), and each answer is read into the doc's
//! verdict. The counts (verdicts, unparsed, cached) go to the judge's report for the results
//! and the summary.

use serde_json::json;

use super::per_doc::{self, DocRequests};
use super::{EvalError, Prepared};
use crate::filter::Pipeline;
use crate::judge::{Judge, JudgeError};

/// Attach the judge's verdicts to `docs` when the task has a `judge` metric.
pub(super) fn judge(
    p: &Prepared,
    pipeline: &Pipeline,
    docs: &mut [DocRequests],
    judge: Option<&Judge>,
) -> Result<(), EvalError> {
    let Some(spec) = p.scoring.metrics.iter().find_map(|m| m.spec.judge()) else {
        return Ok(());
    };
    let task = &p.task.name;
    let judge = judge.ok_or_else(|| {
        JudgeError::Args(format!(
            "task `{task}` is graded by a judge: give --judge-args base_url=URL,model=NAME"
        ))
    })?;
    let mut conversations = Vec::with_capacity(docs.len());
    for d in docs.iter() {
        let err = |message: String| EvalError::Scoring {
            task: task.clone(),
            doc_id: d.doc_id,
            message,
        };
        let (text, target) = per_doc::judged_text(p.task, pipeline, d).map_err(err)?;
        let messages = (spec.single(d.doc, &target, &text))
            .map_err(|m| err(format!("the judge's prompt: {m}")))?;
        conversations.push(messages);
    }
    let label = format!("judge {task}");
    let answers = judge.ask(&label, &conversations)?;
    let (mut unparsed, mut cached, mut truncated) = (0, 0, 0);
    for (d, a) in docs.iter_mut().zip(&answers) {
        let v = spec.read(&a.text);
        unparsed += usize::from(v.score.is_none());
        cached += usize::from(a.cached);
        truncated += usize::from(a.truncated);
        d.judged = Some(v);
    }
    let (prompt_sha, system_sha) = spec.hashes();
    judge.record(
        task,
        &pipeline.name,
        json!({
            "prompt_sha256": prompt_sha, "system_sha256": system_sha,
            "verdicts": answers.len(), "unparsed": unparsed,
            "from_cache": cached, "hit_max_tokens": truncated,
        }),
    );
    Ok(())
}
