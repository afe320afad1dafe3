//! PEFT LoRA adapters, merged into the base weights offline (mistralrs 0.8.1 cannot load a
//! local adapter folder): `W += scaling * B @ A` on every target module, with `scaling =
//! lora_alpha / r` (`lora_alpha / sqrt(r)` with `use_rslora`), as PEFT's `merge_and_unload`.
//!
//! The merged model is written once to `<cache>/merged/<fingerprint of base and adapter>/`
//! (`RUBRIC_CACHE_DIR`, else `~/.cache/rubric`) and reused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::Value;

use super::ModelError;

fn err(m: impl std::fmt::Display) -> ModelError {
    ModelError::Load(m.to_string())
}

/// A tensor's values as f32.
pub fn to_f32(t: &TensorView) -> Result<Vec<f32>, ModelError> {
    let b = t.data();
    Ok(match t.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| super::hf::folder::half_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        other => {
            return Err(err(format!(
                "cannot merge a LoRA adapter into {other:?} weights"
            )))
        }
    })
}

/// The adapter's settings (`adapter_config.json`).
struct AdapterConfig {
    scaling: f32,
    targets: Vec<String>,
    /// GPT-2's Conv1D weights are stored (in, out): the update is transposed.
    fan_in_fan_out: bool,
}

fn adapter_config(dir: &Path) -> Result<AdapterConfig, ModelError> {
    let path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| err(format!("{}: cannot read: {e}", path.display())))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| err(format!("{}: malformed JSON: {e}", path.display())))?;
    let r = v
        .get("r")
        .and_then(Value::as_f64)
        .ok_or_else(|| err(format!("{}: needs `r`", path.display())))?;
    let alpha = v
        .get("lora_alpha")
        .and_then(Value::as_f64)
        .ok_or_else(|| err(format!("{}: needs `lora_alpha`", path.display())))?;
    let rslora = v
        .get("use_rslora")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let targets = match v.get("target_modules") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => return Err(err(format!("{}: needs `target_modules`", path.display()))),
    };
    if v.get("use_dora").and_then(Value::as_bool).unwrap_or(false) {
        return Err(err(format!(
            "{}: DoRA adapters are not supported",
            path.display()
        )));
    }
    Ok(AdapterConfig {
        scaling: (if rslora { alpha / r.sqrt() } else { alpha / r }) as f32,
        targets,
        fan_in_fan_out: v
            .get("fan_in_fan_out")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// The base weight name a LoRA key belongs to: `base_model.model.X.lora_A.weight` -> `X.weight`.
fn base_name(key: &str) -> Option<(String, bool)> {
    let k = key.strip_prefix("base_model.model.").unwrap_or(key);
    if let Some(m) = k.strip_suffix(".lora_A.weight") {
        return Some((format!("{m}.weight"), true));
    }
    k.strip_suffix(".lora_B.weight")
        .map(|m| (format!("{m}.weight"), false))
}

/// A tensor as the merged file holds it: name, shape, bytes, dtype.
type Merged = (String, Vec<usize>, Vec<u8>, Dtype);

/// Merge `adapter` into the model in `base` and return the merged folder. A sharded base
/// (`model-*-of-*.safetensors`) is merged shard by shard into shards of the same names, so no
/// more than one shard is in memory at a time.
pub(crate) fn merged_model(base: &Path, adapter: &Path) -> Result<PathBuf, ModelError> {
    let cfg = adapter_config(adapter)?;
    let adapter_file = adapter.join("adapter_model.safetensors");
    if !adapter_file.is_file() {
        return Err(err(format!(
            "{}: adapter_model.safetensors is missing",
            adapter.display()
        )));
    }
    super::hf::folder::check_safetensors(&adapter_file)?;
    let shards = super::hf::folder::weight_files(base)?;
    if shards.is_empty() {
        return Err(err(format!(
            "{}: no model.safetensors (or model-*-of-*.safetensors) to merge the adapter into",
            base.display()
        )));
    }
    let key = format!("{}-{}", fingerprint(base), fingerprint(adapter));
    let cache = crate::env::cache_root();
    let out = cache.join("merged").join(key);
    let name = |f: &PathBuf| f.file_name().expect("a weight file has a name").to_owned();
    if shards.iter().all(|f| out.join(name(f)).is_file()) {
        return Ok(out);
    }
    let adapter_bytes = std::fs::read(&adapter_file)
        .map_err(|e| err(format!("{}: {e}", adapter_file.display())))?;
    let lora = SafeTensors::deserialize(&adapter_bytes)
        .map_err(|e| err(format!("{}: {e}", adapter_file.display())))?;
    // (A, B) per base weight
    let mut pairs: HashMap<String, (Option<TensorView>, Option<TensorView>)> = HashMap::new();
    for (name, t) in lora.tensors() {
        if let Some((base_key, is_a)) = base_name(&name) {
            let e = pairs.entry(base_key).or_default();
            if is_a {
                e.0 = Some(t);
            } else {
                e.1 = Some(t);
            }
        }
    }
    // each merged shard is written under a temporary name before the next one is read; all are
    // renamed into place once the adapter is known to have matched
    write_side_files(base, &out)?;
    let mut written = Vec::new();
    let mut used = 0;
    for shard in &shards {
        let base_bytes =
            std::fs::read(shard).map_err(|e| err(format!("{}: {e}", shard.display())))?;
        let weights = SafeTensors::deserialize(&base_bytes)
            .map_err(|e| err(format!("{}: {e}", shard.display())))?;
        let (merged, n) = merge_file(&weights, &pairs, &cfg, &adapter_file)?;
        used += n;
        let tmp = out.join(format!(
            "{}.{}.partial",
            name(shard).to_string_lossy(),
            unique()
        ));
        write_tensors(&tmp, &merged)?;
        written.push((tmp, out.join(name(shard))));
    }
    if used == 0 {
        for (tmp, _) in &written {
            let _ = std::fs::remove_file(tmp);
        }
        return Err(err(format!(
            "{}: none of the adapter's weights match a target module of {} (targets: {})",
            adapter.display(),
            base.display(),
            cfg.targets.join(", ")
        )));
    }
    for (tmp, to) in &written {
        std::fs::rename(tmp, to).map_err(|e| err(format!("{}: {e}", to.display())))?;
    }
    Ok(out)
}

/// One weight file's tensors with the adapter's updates added to its target modules, and how
/// many it updated.
fn merge_file(
    weights: &SafeTensors,
    pairs: &HashMap<String, (Option<TensorView>, Option<TensorView>)>,
    cfg: &AdapterConfig,
    adapter_file: &Path,
) -> Result<(Vec<Merged>, usize), ModelError> {
    let mut merged: Vec<Merged> = Vec::new();
    let mut used = 0;
    for (name, t) in weights.tensors() {
        let target = pairs
            .get(&name)
            .filter(|_| cfg.targets.iter().any(|m| name.contains(&format!(".{m}."))));
        match target {
            Some((Some(a), Some(b))) => {
                let (out_dim, in_dim) = if cfg.fan_in_fan_out {
                    (t.shape()[1], t.shape()[0])
                } else {
                    (t.shape()[0], t.shape()[1])
                };
                let r = a.shape()[0];
                if a.shape() != [r, in_dim] || b.shape() != [out_dim, r] {
                    return Err(err(format!(
                        "{}: LoRA shapes for `{name}` ({:?} x {:?}) do not fit the weight {:?}",
                        adapter_file.display(),
                        b.shape(),
                        a.shape(),
                        t.shape()
                    )));
                }
                let mut w = to_f32(&t)?;
                add_delta(&mut w, &to_f32(a)?, &to_f32(b)?, cfg, out_dim, in_dim);
                used += 1;
                merged.push((
                    name,
                    t.shape().to_vec(),
                    w.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    Dtype::F32,
                ));
            }
            _ => merged.push((name, t.shape().to_vec(), t.data().to_vec(), t.dtype())),
        }
    }
    Ok((merged, used))
}

/// W += scaling · B·A, in place (W stored transposed when the adapter says fan_in_fan_out).
fn add_delta(
    w: &mut [f32],
    a: &[f32],
    b: &[f32],
    cfg: &AdapterConfig,
    out_dim: usize,
    in_dim: usize,
) {
    let r = a.len() / in_dim;
    for o in 0..out_dim {
        for k in 0..r {
            let s = cfg.scaling * b[o * r + k];
            if s == 0.0 {
                continue;
            }
            let row = &a[k * in_dim..(k + 1) * in_dim];
            if cfg.fan_in_fan_out {
                for (i, y) in row.iter().enumerate() {
                    w[i * out_dim + o] += s * y;
                }
            } else {
                for (x, y) in w[o * in_dim..(o + 1) * in_dim].iter_mut().zip(row) {
                    *x += s * y;
                }
            }
        }
    }
}

/// The merged folder's files besides the weights: the base's config, tokenizer files and
/// shard index (the merged shards keep the base's names), each renamed into place whole.
fn write_side_files(base: &Path, out: &Path) -> Result<(), ModelError> {
    std::fs::create_dir_all(out).map_err(|e| err(format!("{}: {e}", out.display())))?;
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "chat_template.jinja",
        "special_tokens_map.json",
        "model.safetensors.index.json",
    ] {
        if base.join(f).is_file() {
            let tmp = out.join(format!("{f}.{}.partial", unique()));
            std::fs::copy(base.join(f), &tmp)
                .and_then(|_| std::fs::rename(&tmp, out.join(f)))
                .map_err(|e| err(format!("{}: {e}", out.display())))?;
        }
    }
    Ok(())
}

/// Tensors into a safetensors file at `path` (a name of this process's own: two runs merging
/// the same adapter at once each rename whole files into place, never one half-written by the
/// other).
fn write_tensors(path: &Path, merged: &[Merged]) -> Result<(), ModelError> {
    let views: Vec<(String, TensorView)> = merged
        .iter()
        .map(|(n, s, d, t)| {
            (
                n.clone(),
                TensorView::new(*t, s.clone(), d).expect("shape matches data"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &None, path)
        .map_err(|e| err(format!("{}: {e}", path.display())))
}

/// A name part no other writer uses at the same time: the process and a counter.
fn unique() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn fingerprint(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for e in entries {
        if e.is_file() {
            h.update(
                e.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default()
                    .as_bytes(),
            );
            if let Ok(bytes) = std::fs::read(&e) {
                h.update(&bytes);
            }
        }
    }
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_key_names() {
        assert_eq!(
            base_name("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"),
            Some(("model.layers.0.self_attn.q_proj.weight".into(), true))
        );
        assert_eq!(
            base_name("model.layers.1.mlp.up_proj.lora_B.weight"),
            Some(("model.layers.1.mlp.up_proj.weight".into(), false))
        );
    }
}
