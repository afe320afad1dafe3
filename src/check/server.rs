//! `rubric check-model PATH --server URL`: does a server's loglikelihood agree with rubric's
//! exact pass on the same weights, and if not, how is it wrong?
//!
//! The probe prompts go to the server as token ids with `echo` + `logprobs` + `max_tokens: 1`
//! (what lm-eval's local-completions sends) and through rubric's own pass locally. Per token:
//! the server's entry i should be log P(token i | tokens before it). Named disagreements:
//! - shifted by one: entry i holds the log-probability of token i+1 (llama-cpp-python 0.3.x);
//! - missing entries: fewer entries than prompt tokens + 1 (the generated token's is absent, so
//!   lm-eval's `token_logprobs[ctxlen:-1]` drops a continuation token);
//! - wrong base: log2 or log10 instead of natural logarithms.
//!
//! The server may serve other precision (a GGUF quantization of the same model): the verdict
//! then compares how well each reading fits, not exact equality. The probes' summed
//! loglikelihoods and greedy generations also go through rubric's local-completions client.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Diff, Probes};
use crate::model::api::openai::{CompletionRequest, CompletionResponse, Prompt};
use crate::model::{LanguageModel, ModelError};

/// How the server's per-token log-probabilities relate to rubric's.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Agrees,
    ShiftedByOne,
    Base2,
    Base10,
    /// No reading fits: different weights, or another error.
    Differs,
}

impl Reading {
    pub fn describe(&self) -> &'static str {
        match self {
            Reading::Agrees => "agree with rubric's",
            Reading::ShiftedByOne => "are SHIFTED BY ONE: each prompt token is scored under the distribution of the position after it",
            Reading::Base2 => "are in base 2, not natural logarithms",
            Reading::Base10 => "are in base 10, not natural logarithms",
            Reading::Differs => "DIFFER from rubric's and fit no known mistake (other weights or precision?)",
        }
    }
}

pub struct ServerReport {
    pub url: String,
    /// The server refused token-id prompts; text was sent.
    pub text_prompts: bool,
    /// Text prompts the server split into another number of tokens (left out).
    pub mistokenized: usize,
    pub prompts: usize,
    pub tokens: usize,
    /// Prompts whose answer lacked entries (fewer than tokens + 1).
    pub missing_entries: usize,
    /// (reading, mean |diff| under it) for each reading tried, best first.
    pub fits: Vec<(Reading, f64)>,
    pub max_abs_diff: f64,
    pub reading: Reading,
    /// The probes through rubric's local-completions client vs rubric in-process.
    pub client: Option<Diff>,
    pub client_error: Option<String>,
    pub tolerance: f64,
}

impl ServerReport {
    pub fn passes(&self) -> bool {
        self.reading == Reading::Agrees
            && self.missing_entries == 0
            && self
                .client
                .as_ref()
                .is_some_and(|d| d.passes(self.tolerance))
    }

    pub fn render(&self) -> String {
        let mut m = format!(
            "server {}: per-token log-probabilities of {} probe prompts ({} tokens)\n",
            self.url, self.prompts, self.tokens
        );
        if self.text_prompts {
            m.push_str(&format!(
                "  (the server refused token-id prompts: text was sent{})\n",
                if self.mistokenized > 0 {
                    format!(
                        "; {} prompts it tokenized differently were left out",
                        self.mistokenized
                    )
                } else {
                    String::new()
                }
            ));
        }
        m.push_str(&format!(
            "  they {} (largest |server - rubric| at the same position: {:.3e})\n",
            self.reading.describe(),
            self.max_abs_diff
        ));
        for (r, mean) in &self.fits {
            m.push_str(&format!("    read as {r:?}: mean |diff| {mean:.3e}\n"));
        }
        if self.missing_entries > 0 {
            m.push_str(&format!(
                "  MISSING ENTRIES: {} of {} answers lack the generated token's entry, so lm-eval's sum(token_logprobs[ctxlen:-1]) drops each continuation's last token\n",
                self.missing_entries, self.prompts
            ));
        }
        match (&self.client, &self.client_error) {
            (Some(d), _) => m.push_str(&format!(
                "  through rubric's local-completions client: loglikelihoods max diff {:.3e} ({} probes), rolling max relative diff {:.3e}, {} is_greedy flags and {} of {} greedy generations differ\n",
                d.max_ll, d.requests.0, d.max_rolling, d.greedy_flags, d.generations, d.requests.2
            )),
            (None, Some(e)) => m.push_str(&format!("  through rubric's local-completions client: failed: {e}\n")),
            _ => {}
        }
        if self.text_prompts {
            m.push_str(
                "  lm-eval's local-completions needs tokenized_requests=False for this server\n",
            );
        }
        m.push_str(if self.passes() {
            "verdict: the server computes what rubric computes\n"
        } else {
            "verdict: do NOT score loglikelihood tasks through this server\n"
        });
        m
    }
}

fn mean_abs(pairs: &[(f64, f64)]) -> f64 {
    if pairs.is_empty() {
        return f64::INFINITY;
    }
    pairs.iter().map(|(a, b)| (a - b).abs()).sum::<f64>() / pairs.len() as f64
}

/// One probe: the server's `token_logprobs` and rubric's per token (log P(i | before i),
/// log P(i) under the distribution after i).
type ProbeRow = (Vec<Option<f64>>, Vec<(f64, f64)>);

/// Compare `server[i]` (entry i of token_logprobs, i >= 1) with rubric's `local[i]`.
fn classify(rows: &[ProbeRow], tolerance: f64) -> (Reading, Vec<(Reading, f64)>, f64) {
    let mut same = Vec::new();
    let mut shifted = Vec::new();
    let mut b2 = Vec::new();
    let mut b10 = Vec::new();
    for (server, local) in rows {
        for (i, &(right, next_row)) in local.iter().enumerate().skip(1) {
            let Some(s) = server.get(i).copied().flatten() else {
                continue;
            };
            same.push((s, right));
            b2.push((s, right / std::f64::consts::LN_2));
            b10.push((s, right / std::f64::consts::LN_10));
            shifted.push((s, next_row));
        }
    }
    let max = same.iter().map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let mut fits = vec![
        (Reading::Agrees, mean_abs(&same)),
        (Reading::ShiftedByOne, mean_abs(&shifted)),
        (Reading::Base2, mean_abs(&b2)),
        (Reading::Base10, mean_abs(&b10)),
    ];
    fits.sort_by(|a, b| a.1.total_cmp(&b.1));
    let reading = if max <= tolerance && !same.is_empty() {
        Reading::Agrees
    } else if fits[0].0 != Reading::Agrees && fits[0].1 * 3.0 < mean_abs(&same) {
        // another reading fits clearly better than the plain one
        fits[0].0.clone()
    } else {
        Reading::Differs
    };
    (reading, fits, max)
}

pub fn check_server(
    args: &BTreeMap<String, String>,
    url: &str,
    tolerance: f64,
) -> Result<ServerReport, ModelError> {
    let mut local_args = args.clone();
    local_args.remove("model");
    // `tokenized_requests=False`: text prompts from the start, as lm-eval's client sends them
    // to servers that take no token ids (llama-cpp-python)
    let text_only = match local_args.remove("tokenized_requests") {
        Some(v) => !crate::model::args::parse_bool("tokenized_requests", &v)?,
        None => false,
    };
    let local = crate::model::load_native(&local_args)?;
    let hf = local.hf();
    let probes = Probes::builtin();
    // the probe prompts: each context + continuation, as token ids (no empty context)
    let mut seqs: Vec<Vec<u32>> = Vec::new();
    for (c, x) in probes.loglikelihood.iter().filter(|(c, _)| !c.is_empty()) {
        let ids = hf
            .prep
            .tok_encode(&*hf.tokenizer, &format!("{c}{x}"), None)?;
        if ids.len() >= 2 && !seqs.contains(&ids) {
            seqs.push(ids);
        }
    }
    seqs.truncate(12);
    let local_by_ids: std::collections::HashMap<Vec<u32>, Vec<(f64, f64)>> = seqs
        .iter()
        .cloned()
        .zip(local_logprobs(&local, &seqs)?)
        .collect();
    let server = Served::fetch(url, args.get("model"), &local, &seqs, text_only)?;
    let rows: Vec<ProbeRow> = (server.rows.into_iter())
        .map(|(lps, ids)| (lps, local_by_ids[&ids].clone()))
        .collect();
    let (reading, fits, max_abs_diff) = classify(&rows, tolerance);
    let through = through_client(url, args, &local, &probes, server.as_text);
    let reference = super::answers("rubric in-process", &local as &dyn LanguageModel, &probes)?;
    let (client, client_error) = match through {
        Ok(a) => (Some(Diff::of(&a, &reference)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(ServerReport {
        url: url.into(),
        text_prompts: server.as_text,
        mistokenized: server.mistokenized,
        prompts: rows.len(),
        tokens: seqs.iter().map(Vec::len).sum(),
        missing_entries: server.missing,
        fits,
        max_abs_diff,
        reading,
        client,
        client_error,
        tolerance,
    })
}

/// Per probe sequence and token i: (log P(i | before i), log P(i) under position i's own
/// distribution), from rubric's own pass.
fn local_logprobs(
    local: &crate::model::native::NativeModel,
    seqs: &[Vec<u32>],
) -> Result<Vec<Vec<(f64, f64)>>, ModelError> {
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let stats = local.token_stats(&refs, &vec![true; seqs.len()], 1)?;
    Ok(stats
        .iter()
        .map(|st| {
            (0..st.len())
                .map(|i| {
                    let right = match i {
                        0 => 0.0,
                        _ => st[i - 1].next.map(|(v, _)| v).unwrap_or(0.0),
                    };
                    (right, st[i].here)
                })
                .collect()
        })
        .collect())
}

/// What the server answered for the probe sequences.
struct Served {
    /// Per answered prompt: the server's `token_logprobs` and the prompt's tokens.
    rows: Vec<(Vec<Option<f64>>, Vec<u32>)>,
    /// Prompts whose answer lacked entries (fewer than tokens + 1).
    missing: usize,
    /// Text prompts the server split into another number of tokens (left out).
    mistokenized: usize,
    /// Whether the prompts went as text.
    as_text: bool,
}

impl Served {
    /// Token-id prompts, as lm-eval sends them; text when the server takes only text (or
    /// `text_only`), then checked to tokenize to as many tokens.
    fn fetch(
        url: &str,
        model: Option<&String>,
        local: &crate::model::native::NativeModel,
        seqs: &[Vec<u32>],
        text_only: bool,
    ) -> Result<Served, ModelError> {
        let hf = local.hf();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ModelError::Load(e.to_string()))?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| ModelError::Load(e.to_string()))?;
        let mut out = Served {
            rows: Vec::new(),
            missing: 0,
            mistokenized: 0,
            as_text: text_only,
        };
        for ids in seqs {
            let send = |prompt: Prompt| {
                let body = CompletionRequest {
                    model: model.cloned(),
                    prompt: Some(prompt),
                    max_tokens: Some(1),
                    temperature: Some(0.0),
                    logprobs: Some(1),
                    echo: true,
                    seed: Some(1234),
                    ..Default::default()
                };
                // once more when the connection broke without an answer (a server may close a
                // kept-alive connection after an error response)
                let once = || {
                    rt.block_on(async {
                        let r = client.post(url).json(&body).send().await?;
                        let r = r.error_for_status()?;
                        r.json::<CompletionResponse>().await
                    })
                };
                match once() {
                    Err(e) if e.status().is_none() && e.is_request() => once(),
                    r => r,
                }
            };
            let text = || {
                hf.tokenizer
                    .decode(ids, false)
                    .map(Prompt::Text)
                    .map_err(|e| ModelError::Request(e.to_string()))
            };
            let resp = if out.as_text {
                send(text()?)
            } else {
                // a server that refuses token ids may answer with an error status or drop the
                // connection: try text once either way
                match send(Prompt::Ids(ids.clone())) {
                    Err(ids_err) => match send(text()?) {
                        Ok(r) => {
                            out.as_text = true;
                            Ok(r)
                        }
                        Err(text_err) => {
                            return Err(ModelError::Request(format!(
                                "{url}: token-id prompt: {ids_err}; as text: {text_err}"
                            )))
                        }
                    },
                    r => r,
                }
            }
            .map_err(|e| ModelError::Request(format!("{url}: {e}")))?;
            let lp = (resp.choices.into_iter().next())
                .and_then(|c| c.logprobs)
                .ok_or_else(|| {
                    ModelError::Request(format!(
                        "{url}: no logprobs in the answer (echo with logprobs unsupported?)"
                    ))
                })?;
            if out.as_text && lp.tokens.len() != ids.len() && lp.tokens.len() != ids.len() + 1 {
                out.mistokenized += 1;
                continue;
            }
            if lp.token_logprobs.len() < ids.len() + 1 {
                out.missing += 1;
            }
            out.rows.push((lp.token_logprobs, ids.clone()));
        }
        Ok(out)
    }
}

/// The probes' sums and generations through rubric's own local-completions client against
/// the server.
fn through_client(
    url: &str,
    args: &BTreeMap<String, String>,
    local: &crate::model::native::NativeModel,
    probes: &Probes,
    as_text: bool,
) -> Result<super::Answers, ModelError> {
    let hf = local.hf();
    let mut api_args: BTreeMap<String, String> = BTreeMap::new();
    api_args.insert("base_url".into(), url.into());
    api_args.insert("tokenizer".into(), hf.tok_dir.display().to_string());
    api_args.insert(
        "model".into(),
        args.get("model").cloned().unwrap_or_default(),
    );
    api_args.insert("max_length".into(), (hf.prep.max_length + 1).to_string());
    // the API client adds no special tokens unless told; the HF rules add the tokenizer's
    let adds_special = hf.prep.tok_encode(&*hf.tokenizer, "a", None)?.len()
        > hf.tokenizer
            .encode("a", false)
            .map(|e| e.len())
            .unwrap_or(0);
    api_args.insert("add_bos_token".into(), adds_special.to_string());
    if as_text {
        api_args.insert("tokenized_requests".into(), "False".into());
    }
    let m = crate::model::api::ApiModel::load("local-completions", &api_args)?;
    super::answers("local-completions", &m, probes)
}

/// The report as JSON.
pub fn to_json(r: &ServerReport) -> Value {
    serde_json::json!({
        "server": r.url,
        "prompts": r.prompts,
        "tokens": r.tokens,
        "reading": format!("{:?}", r.reading),
        "max_abs_diff_same_position": r.max_abs_diff,
        "fits": r.fits.iter().map(|(k, v)| serde_json::json!({"reading": format!("{k:?}"), "mean_abs_diff": v})).collect::<Vec<_>>(),
        "missing_entries": r.missing_entries,
        "client": r.client.as_ref().map(|d| serde_json::json!({
            "max_loglikelihood_diff": d.max_ll, "max_rolling_diff": d.max_rolling,
            "greedy_flags_differ": d.greedy_flags, "generations_differ": d.generations})),
        "client_error": r.client_error,
        "passes": r.passes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_told_apart() {
        let right = [0.0, -1.0, -0.3, -2.5, -0.7, -4.0];
        let wrong_row = [-9.0, -12.0, -8.5, -11.0, -10.0, -7.0];
        let local: Vec<(f64, f64)> = right.iter().copied().zip(wrong_row).collect();
        let same: Vec<Option<f64>> = std::iter::once(None)
            .chain(right[1..].iter().map(|&x| Some(x)))
            .collect();
        assert_eq!(
            classify(&[(same.clone(), local.clone())], 1e-4).0,
            Reading::Agrees
        );
        // llama-cpp-python: each token scored under the distribution after it, no last entry
        let shifted: Vec<Option<f64>> = std::iter::once(None)
            .chain(wrong_row[1..5].iter().map(|&x| Some(x + 0.1)))
            .collect();
        assert_eq!(
            classify(&[(shifted, local.clone())], 1e-4).0,
            Reading::ShiftedByOne
        );
        let b2: Vec<Option<f64>> = same
            .iter()
            .map(|x| x.map(|v| v / std::f64::consts::LN_2))
            .collect();
        assert_eq!(classify(&[(b2, local.clone())], 1e-4).0, Reading::Base2);
        let noise: Vec<Option<f64>> = same.iter().map(|x| x.map(|v| v + 0.05)).collect();
        assert_eq!(classify(&[(noise, local)], 1e-4).0, Reading::Differs);
    }
}
