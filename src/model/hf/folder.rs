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
pub fn check_safetensors(path: &Path) -> Result<(), ModelError> {
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
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
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

/// Check an HF model folder before anything loads it, naming the missing or bad file.
pub fn check_model_dir(dir: &Path) -> Result<(), ModelError> {
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
    if !dir.join("tokenizer.json").is_file() {
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

/// A hub id resolved through the Hugging Face cache (`models--owner--name/snapshots/...`).
pub fn resolve_pretrained(id: &str) -> Result<PathBuf, ModelError> {
    let p = PathBuf::from(id);
    if p.exists() {
        return Ok(p);
    }
    let folder = crate::task::hub::cache_dir().join(format!("models--{}", id.replace('/', "--")));
    if let Ok(commit) = std::fs::read_to_string(folder.join("refs/main")) {
        let snap = folder.join("snapshots").join(commit.trim());
        if snap.is_dir() {
            return Ok(snap);
        }
    }
    if crate::task::hub::offline() {
        return Err(load_err(format!(
            "`{id}` is neither a folder nor in the Hugging Face cache at {} (HF_HUB_OFFLINE is set)",
            crate::task::hub::cache_dir().display()
        )));
    }
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(crate::task::hub::cache_dir())
        .build()
        .map_err(load_err)?;
    let repo = api.model(id.to_string());
    let mut dir = None;
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "model.safetensors",
    ] {
        match repo.get(f) {
            Ok(p) => dir = p.parent().map(Path::to_path_buf),
            Err(e) if f == "config.json" || f == "model.safetensors" => {
                return Err(load_err(format!(
                    "cannot fetch `{f}` of `{id}` from the hub: {e}"
                )))
            }
            Err(_) => {}
        }
    }
    dir.ok_or_else(|| load_err(format!("cannot resolve `{id}`")))
}

/// Every tensor of a folder's safetensors files, as f32 on `device`.
pub fn load_tensors(
    dir: &Path,
    device: &candle_core::Device,
) -> Result<HashMap<String, candle_core::Tensor>, ModelError> {
    let mut out = HashMap::new();
    for f in weight_files(dir)? {
        for (name, t) in candle_core::safetensors::load(&f, device)
            .map_err(|e| load_err(format!("{}: {e}", f.display())))?
        {
            let t = t
                .to_dtype(candle_core::DType::F32)
                .map_err(|e| load_err(format!("{}: {name}: {e}", f.display())))?;
            out.insert(name, t);
        }
    }
    Ok(out)
}

/// A short, stable fingerprint of a model folder or file (names, sizes, modification times),
/// for cache keys: sha256, so it does not change between Rust releases.
pub fn fingerprint(path: &Path) -> String {
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
