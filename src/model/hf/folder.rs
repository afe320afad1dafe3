//! Hugging Face model folders: finding one (a path or a hub id in the HF cache), checking its
//! files before anything loads them (each problem named with its file), reading its tensors,
//! and a stable fingerprint of its contents for cache keys.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::model::ModelError;

pub(crate) fn load_err(m: impl std::fmt::Display) -> ModelError {
    ModelError::Load(m.to_string())
}

pub(crate) fn read_json(path: &Path) -> Result<Value, ModelError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| load_err(format!("{}: cannot read: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| load_err(format!("{}: malformed JSON: {e}", path.display())))
}

/// Check a safetensors file's header against its size, naming what is wrong.
pub(crate) fn check_safetensors(path: &Path) -> Result<(), ModelError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| load_err(format!("{}: cannot open: {e}", path.display())))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| {
        load_err(format!(
            "{}: truncated (shorter than the 8-byte header length)",
            path.display()
        ))
    })?;
    let n = u64::from_le_bytes(len);
    if n == 0 || 8 + n > size {
        return Err(load_err(format!(
            "{}: truncated or not safetensors (header of {n} bytes, file of {size})",
            path.display()
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| load_err(format!("{}: {e}", path.display())))?;
    let header: Value = serde_json::from_slice(&header)
        .map_err(|e| load_err(format!("{}: malformed header: {e}", path.display())))?;
    let end = header
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, t)| {
            t.get("data_offsets")
                .and_then(|o| o.get(1))
                .and_then(Value::as_u64)
        })
        .max()
        .unwrap_or(0);
    if 8 + n + end > size {
        return Err(load_err(format!(
            "{}: truncated: the tensors need {} bytes but the file has {size}; download it again",
            path.display(),
            8 + n + end
        )));
    }
    Ok(())
}

/// The weight files of a model folder (`model.safetensors` or `model-*-of-*.safetensors`).
pub(crate) fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let mut weights: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| load_err(format!("{}: {e}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            n == "model.safetensors" || (n.starts_with("model-") && n.ends_with(".safetensors"))
        })
        .collect();
    weights.sort();
    Ok(weights)
}

/// Check an HF model folder before anything loads it, naming the missing or bad file (its
/// tokenizer.json too, unless `tokenizer=` names one elsewhere).
pub(crate) fn check_model_dir(dir: &Path, own_tokenizer: bool) -> Result<(), ModelError> {
    if !dir.is_dir() {
        return Err(load_err(format!("{}: not a directory", dir.display())));
    }
    if !dir.join("config.json").is_file() {
        return Err(load_err(format!(
            "{}: config.json is missing",
            dir.display()
        )));
    }
    read_json(&dir.join("config.json"))?;
    if own_tokenizer && !dir.join("tokenizer.json").is_file() {
        return Err(load_err(format!(
            "{}: tokenizer.json is missing (pass tokenizer=PATH if it lives elsewhere)",
            dir.display()
        )));
    }
    let weights = weight_files(dir)?;
    if weights.is_empty() {
        return Err(load_err(format!(
            "{}: no model.safetensors (or model-*-of-*.safetensors) weights",
            dir.display()
        )));
    }
    for w in &weights {
        check_safetensors(w)?;
    }
    if dir.join("adapter_model.safetensors").exists() {
        return Err(load_err(format!(
            "{}: holds adapter_model.safetensors; keep adapters in their own folder and pass adapter=DIR",
            dir.display()
        )));
    }
    Ok(())
}

/// A model, adapter or tokenizer folder (or a GGUF file), and the hub commit it came from when
/// it was named by hub id.
pub(crate) struct Source {
    pub dir: PathBuf,
    pub commit: Option<String>,
}

/// What a hub id names, and so which of its repo's files are fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// A model: its config, weights (one file or the shards its index names), tokenizer and
    /// generation files.
    Model,
    /// A PEFT adapter: `adapter_config.json` and `adapter_model.safetensors`.
    Adapter,
    /// A tokenizer (`tokenizer=`): `tokenizer.json` and the files beside it that say its
    /// special tokens and chat template.
    Tokenizer,
}

impl Wanted {
    fn noun(self) -> &'static str {
        match self {
            Wanted::Model => "model",
            Wanted::Adapter => "adapter",
            Wanted::Tokenizer => "tokenizer",
        }
    }
}

/// Files a model folder may hold besides its weights (all that are in the repo are fetched).
const MODEL_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
];

/// A tokenizer's files (`tokenizer.json` required, the others fetched when the repo has them).
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
];

/// A path as given, else a hub id at `revision`: every file `wanted` needs fetched into the hub
/// cache (or found there), the snapshot's folder returned.
pub(crate) fn resolve_pretrained(
    id: &str,
    revision: Option<&str>,
    wanted: Wanted,
) -> Result<Source, ModelError> {
    let p = PathBuf::from(id);
    // (a tokenizer named by its file is a path, even when it is not there)
    let file_like = wanted == Wanted::Tokenizer && id.ends_with(".json");
    if p.exists() || file_like || !crate::hub::Repo::is_id(id) {
        return Ok(Source {
            dir: p,
            commit: None,
        });
    }
    let snap = open_model_repo(id, revision)?;
    let files = match wanted {
        Wanted::Tokenizer => {
            if !snap.has("tokenizer.json") {
                return Err(load_err(format!(
                    "tokenizer `{id}` at {} has no `tokenizer.json` (rubric reads tokenizers saved by `tokenizers` / transformers' fast tokenizers){}",
                    snap.commit,
                    crate::text::did_you_mean("tokenizer.json", snap.files.iter().map(String::as_str))
                        .map(|n| format!("; the repo has `{n}`"))
                        .unwrap_or_default()
                )));
            }
            TOKENIZER_FILES.iter().map(|f| f.to_string()).collect()
        }
        Wanted::Model | Wanted::Adapter => weights_wanted(&snap, id, wanted)?,
    };
    fetch_present(&snap, &files)?;
    Ok(Source {
        dir: snap.dir().to_path_buf(),
        commit: Some(snap.commit.clone()),
    })
}

fn hub_err(e: crate::hub::HubError) -> ModelError {
    load_err(e.message)
}

fn open_model_repo(id: &str, revision: Option<&str>) -> Result<crate::hub::Snapshot, ModelError> {
    crate::hub::Snapshot::open(&crate::hub::Repo::new(
        crate::hub::Kind::Model,
        id,
        revision,
    ))
    .map_err(hub_err)
}

/// Each of `files` the snapshot has, in the cache (fetched when not there yet).
fn fetch_present(snap: &crate::hub::Snapshot, files: &[String]) -> Result<(), ModelError> {
    for f in files {
        if snap.has(f) {
            snap.get(f).map_err(hub_err)?;
        }
    }
    Ok(())
}

/// The files of a model or adapter repo to fetch: its config, its weights (one file, or the
/// shards an index names) and, for a model, the files beside them. A repo with PyTorch `.bin`
/// weights only is refused with how to convert it.
fn weights_wanted(
    snap: &crate::hub::Snapshot,
    id: &str,
    wanted: Wanted,
) -> Result<Vec<String>, ModelError> {
    let adapter = wanted == Wanted::Adapter;
    let (config, weights, index, torch) = if adapter {
        (
            "adapter_config.json",
            "adapter_model.safetensors",
            None,
            "adapter_model.bin",
        )
    } else {
        (
            "config.json",
            "model.safetensors",
            Some("model.safetensors.index.json"),
            "pytorch_model.bin",
        )
    };
    let kind = wanted.noun();
    let mut files: Vec<String> = Vec::new();
    if !adapter {
        files.extend(MODEL_FILES.iter().map(|f| f.to_string()));
    }
    if snap.has(weights) {
        files.push(weights.to_string());
    } else if let Some(index) = index.filter(|i| snap.has(i)) {
        files.push(index.to_string());
        files.extend(index_shards(snap, index)?);
    } else if snap
        .files
        .iter()
        .any(|f| f == torch || (f.starts_with("pytorch_model-") && f.ends_with(".bin")))
    {
        return Err(load_err(format!(
            "{kind} `{id}` at {} has PyTorch `.bin` weights only; rubric reads safetensors. Convert them once (transformers: `AutoModelForCausalLM.from_pretrained(\"{id}\").save_pretrained(DIR)`; peft: `PeftModel.save_pretrained(DIR)`) and pass the folder, or use a revision with safetensors",
            snap.commit
        )));
    } else {
        return Err(load_err(format!(
            "{kind} `{id}` at {} has no `{weights}`{}",
            snap.commit,
            index.map(|i| format!(" and no `{i}`")).unwrap_or_default()
        )));
    }
    // the config is fetched even when the listing lacks it, so that its absence is named
    snap.get(config).map_err(hub_err)?;
    Ok(files)
}

/// The shards a sharded checkpoint's index names (its `weight_map`'s files, each once).
fn index_shards(snap: &crate::hub::Snapshot, index: &str) -> Result<Vec<String>, ModelError> {
    let index_path = snap.get(index).map_err(hub_err)?;
    let v = read_json(&index_path)?;
    let mut shards: Vec<String> = v
        .get("weight_map")
        .and_then(Value::as_object)
        .map(|m| {
            m.values()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    shards.sort();
    shards.dedup();
    if shards.is_empty() {
        return Err(load_err(format!(
            "{}: `weight_map` names no shard",
            index_path.display()
        )));
    }
    Ok(shards)
}

/// A GGUF file as given, else `owner/name/path/in/repo.gguf` on the hub at `revision`: the
/// file fetched into the hub cache with the tokenizer files beside it in the repo (which
/// `tokenizer=` may then leave out).
pub(crate) fn resolve_gguf(spec: &str, revision: Option<&str>) -> Result<Source, ModelError> {
    let path = PathBuf::from(spec);
    let parts: Vec<&str> = spec.splitn(3, '/').collect();
    let local = Ok(Source {
        dir: path.clone(),
        commit: None,
    });
    let [owner, name, file] = parts[..] else {
        return local;
    };
    let id = format!("{owner}/{name}");
    if path.exists() || file.is_empty() || !crate::hub::Repo::is_id(&id) {
        return local;
    }
    let snap = open_model_repo(&id, revision)?;
    let gguf = snap.get(file).map_err(hub_err)?;
    let folder = file
        .rsplit_once('/')
        .map(|(d, _)| format!("{d}/"))
        .unwrap_or_default();
    let beside: Vec<String> = TOKENIZER_FILES
        .iter()
        .map(|f| format!("{folder}{f}"))
        .collect();
    fetch_present(&snap, &beside)?;
    Ok(Source {
        dir: gguf,
        commit: Some(snap.commit.clone()),
    })
}

/// Every tensor of a folder's safetensors files on `device`: as f32, or with `as_stored` in the
/// file's own dtype (f32, bf16 or f16). Each tensor is read from the file straight into its own
/// buffer (no copy of the whole file in memory), so loading needs about the weights' size and
/// no more.
pub(crate) fn load_tensors(
    dir: &Path,
    device: &candle_core::Device,
    as_stored: bool,
) -> Result<HashMap<String, candle_core::Tensor>, ModelError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut out = HashMap::new();
    for f in weight_files(dir)? {
        let bad = |m: String| load_err(format!("{}: {m}", f.display()));
        let mut file = std::fs::File::open(&f).map_err(|e| bad(e.to_string()))?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(|e| bad(e.to_string()))?;
        let n = u64::from_le_bytes(len);
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header)
            .map_err(|e| bad(e.to_string()))?;
        let header: serde_json::Map<String, Value> =
            serde_json::from_slice(&header).map_err(|e| bad(format!("malformed header: {e}")))?;
        for (name, info) in header {
            if name == "__metadata__" {
                continue;
            }
            let dtype = info.get("dtype").and_then(Value::as_str).unwrap_or("");
            let shape: Vec<usize> = info
                .get("shape")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_u64)
                        .map(|x| x as usize)
                        .collect()
                })
                .unwrap_or_default();
            let offsets: Vec<u64> = info
                .get("data_offsets")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            let [start, end] = offsets[..] else {
                return Err(bad(format!("tensor `{name}` has no data_offsets")));
            };
            let count: usize = shape.iter().product();
            let width = match dtype {
                "F32" => 4,
                "BF16" | "F16" => 2,
                other => {
                    return Err(bad(format!(
                        "tensor `{name}` is {other}; rubric's pass reads F32, BF16 and F16 weights"
                    )))
                }
            };
            if end - start != (count * width) as u64 {
                return Err(bad(format!(
                    "tensor `{name}`: shape and data size disagree"
                )));
            }
            file.seek(SeekFrom::Start(8 + n + start))
                .map_err(|e| bad(e.to_string()))?;
            if as_stored && width == 2 {
                let mut raw = vec![0u8; count * 2];
                file.read_exact(&mut raw).map_err(|e| bad(e.to_string()))?;
                let bits = raw
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]));
                let t = if dtype == "BF16" {
                    let v: Vec<half::bf16> = bits.map(half::bf16::from_bits).collect();
                    candle_core::Tensor::from_vec(v, shape, device)
                } else {
                    let v: Vec<half::f16> = bits.map(half::f16::from_bits).collect();
                    candle_core::Tensor::from_vec(v, shape, device)
                };
                out.insert(name.clone(), t.map_err(|e| bad(format!("{name}: {e}")))?);
                continue;
            }
            let values: Vec<f32> = if width == 4 {
                let mut v = vec![0f32; count];
                // SAFETY: f32 has no invalid bit patterns; the slice covers the vector exactly
                let bytes =
                    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, count * 4) };
                file.read_exact(bytes).map_err(|e| bad(e.to_string()))?;
                if cfg!(target_endian = "big") {
                    v.iter_mut()
                        .for_each(|x| *x = f32::from_bits(x.to_bits().swap_bytes()));
                }
                v
            } else {
                let mut raw = vec![0u8; count * 2];
                file.read_exact(&mut raw).map_err(|e| bad(e.to_string()))?;
                raw.chunks_exact(2)
                    .map(|c| {
                        let bits = u16::from_le_bytes([c[0], c[1]]);
                        if dtype == "BF16" {
                            f32::from_bits(u32::from(bits) << 16)
                        } else {
                            half_to_f32(bits)
                        }
                    })
                    .collect()
            };
            let t = candle_core::Tensor::from_vec(values, shape, device)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            out.insert(name, t);
        }
    }
    Ok(out)
}

/// IEEE half precision to f32.
pub(crate) fn half_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exp = u32::from((bits >> 10) & 0x1f);
    let frac = u32::from(bits & 0x3ff);
    let v = if exp == 0 {
        if frac == 0 {
            sign
        } else {
            let mut e: i32 = 127 - 15 + 1;
            let mut f = frac;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (frac << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (frac << 13)
    };
    f32::from_bits(v)
}

/// A short, stable fingerprint of a model folder or file (names, sizes, modification times),
/// for cache keys: sha256, so it does not change between Rust releases.
pub(crate) fn fingerprint(path: &Path) -> String {
    let mut entries: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    entries.sort();
    let mut text = String::new();
    for e in entries {
        text.push_str(&e.file_name().unwrap_or_default().to_string_lossy());
        if let Ok(m) = std::fs::metadata(&e) {
            text.push_str(&format!("|{}", m.len()));
            if let Ok(t) = m.modified() {
                if let Ok(d) = t.duration_since(std::time::UNIX_EPOCH) {
                    text.push_str(&format!("|{}", d.as_nanos()));
                }
            }
        }
        text.push('\n');
    }
    crate::py::sha256_hex(&text)[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x0001), 5.960464477539063e-8);
    }

    #[test]
    fn tensors_are_read_as_written() {
        let dir = tempfile::tempdir().unwrap();
        crate::model::tiny::write_safetensors(
            &dir.path().join("model.safetensors"),
            &[(
                "a".into(),
                vec![2, 3],
                vec![1.0, -2.0, 3.5, 0.0, 1e-8, -7.25],
            )],
        )
        .unwrap();
        let t = load_tensors(dir.path(), &candle_core::Device::Cpu, false).unwrap();
        assert_eq!(
            t["a"].to_vec2::<f32>().unwrap(),
            vec![vec![1.0, -2.0, 3.5], vec![0.0, 1e-8, -7.25]]
        );
    }
}
