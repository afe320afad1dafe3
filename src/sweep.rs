//! Checkpoint sweeps: `pretrained=` or `adapter=` naming many checkpoints (a glob such as
//! `ckpts/epoch_*`, or a `;`-separated list), in natural order (epoch_5 before epoch_10), and
//! the training step a checkpoint's name says (`epoch_5`, `global_step_100`, `checkpoint-500`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;

/// The model argument keys that may name several checkpoints.
pub const SWEPT_KEYS: [&str; 2] = ["pretrained", "adapter"];

/// One checkpoint of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The model args with the swept key set to this checkpoint.
    pub args: BTreeMap<String, String>,
    /// The swept key and this checkpoint's value (None when nothing is swept).
    pub swept: Option<(String, String)>,
    /// The results folder's name: the checkpoint's last path component (the sanitized path
    /// when two checkpoints share it).
    pub label: String,
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The checkpoints model args name: one when nothing is swept.
pub fn expand(args: &BTreeMap<String, String>) -> Result<Vec<Checkpoint>, String> {
    let swept: Vec<&str> = SWEPT_KEYS
        .iter()
        .copied()
        .filter(|k| args.get(*k).is_some_and(|v| v.contains(';') || is_glob(v)))
        .collect();
    let key = match swept.as_slice() {
        [] => {
            return Ok(vec![Checkpoint {
                args: args.clone(),
                swept: None,
                label: String::new(),
            }])
        }
        [k] => *k,
        _ => return Err("sweep one of pretrained= and adapter= at a time".into()),
    };
    let spec = &args[key];
    let mut values: Vec<String> = Vec::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        if is_glob(part) {
            let paths = glob::glob(part).map_err(|e| format!("{key}={part}: {e}"))?;
            let mut found: Vec<String> = paths
                .filter_map(Result::ok)
                .filter(|p| p.is_dir() || p.is_file())
                .map(|p| p.display().to_string())
                .collect();
            if found.is_empty() {
                return Err(format!("{key}={part}: no checkpoint matches"));
            }
            found.sort_by(|a, b| natural_cmp(a, b));
            values.extend(found);
        } else {
            values.push(part.to_string());
        }
    }
    if values.is_empty() {
        return Err(format!("{key}={spec}: names no checkpoint"));
    }
    values.sort_by(|a, b| natural_cmp(a, b));
    values.dedup();
    let last = |v: &str| {
        Path::new(v.trim_end_matches('/'))
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| v.to_string())
    };
    let unique = {
        let names: Vec<String> = values.iter().map(|v| last(v)).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        sorted.len() == names.len()
    };
    Ok(values
        .into_iter()
        .map(|v| {
            let mut a = args.clone();
            a.insert(key.to_string(), v.clone());
            Checkpoint {
                label: if unique {
                    last(&v)
                } else {
                    crate::output::sanitize_model_name(&v)
                },
                args: a,
                swept: Some((key.to_string(), v)),
            }
        })
        .collect())
}

/// Compare names as people order them: runs of digits by their number.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut digit: Option<bool> = None;
        for (i, c) in s.char_indices() {
            let d = c.is_ascii_digit();
            if digit.is_some_and(|x| x != d) {
                out.push((digit.unwrap_or(false), &s[start..i]));
                start = i;
            }
            digit = Some(d);
        }
        if start < s.len() {
            out.push((digit.unwrap_or(false), &s[start..]));
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let o = match (x, y) {
            ((true, p), (true, q)) => {
                let (p, q) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                p.len().cmp(&q.len()).then_with(|| p.cmp(q))
            }
            ((_, p), (_, q)) => p.cmp(q),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// The training step a checkpoint's name gives: with a regex, its first group (or whole
/// match); else the number after `step`, `checkpoint`, `epoch`, `iter` or `ckpt` in the last
/// path component that has one, else that component's last number.
pub fn step_of(name: &str, regex: Option<&regex::Regex>) -> Option<f64> {
    if let Some(re) = regex {
        let c = re.captures(name)?;
        let m = c.get(1).or_else(|| c.get(0))?;
        return m.as_str().parse().ok();
    }
    let known = regex::Regex::new(r"(?i)(?:step|checkpoint|epoch|iter|ckpt)[-_ ]?(\d+(?:\.\d+)?)")
        .expect("a valid pattern");
    let last_number = regex::Regex::new(r"(\d+(?:\.\d+)?)\D*$").expect("a valid pattern");
    let parts: Vec<&str> = name.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    for p in parts.iter().rev() {
        if let Some(c) = known.captures_iter(p).last() {
            return c[1].parse().ok();
        }
    }
    parts
        .iter()
        .rev()
        .find_map(|p| last_number.captures(p).and_then(|c| c[1].parse().ok()))
}

/// The step each checkpoint of a sweep is logged at by the experiment trackers: the training
/// step its label gives when every label gives a distinct whole one, increasing in the sweep's
/// order (true); else its position, 1, 2, ... (false).
pub fn tracker_steps(labels: &[&str]) -> (Vec<i64>, bool) {
    let named: Option<Vec<i64>> = (labels.iter())
        .map(|l| step_of(l, None).filter(|s| s.fract() == 0.0 && *s >= 0.0 && *s < 9.0e15))
        .map(|s| s.map(|s| s as i64))
        .collect();
    match named {
        Some(v) if v.windows(2).all(|w| w[0] < w[1]) => (v, true),
        _ => ((1..=labels.len() as i64).collect(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["epoch_10", "epoch_5", "epoch_30", "epoch_15", "epoch_05b"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            ["epoch_5", "epoch_05b", "epoch_10", "epoch_15", "epoch_30"]
        );
        let mut v = vec!["checkpoint-1000", "checkpoint-500", "global_step_20"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["checkpoint-500", "checkpoint-1000", "global_step_20"]);
    }

    #[test]
    fn steps_from_names() {
        assert_eq!(step_of("runs/a/epoch_15", None), Some(15.0));
        assert_eq!(step_of("out/global_step_1200/actor", None), Some(1200.0));
        assert_eq!(step_of("checkpoint-500", None), Some(500.0));
        assert_eq!(step_of("lora_r8", None), Some(8.0));
        assert_eq!(step_of("base", None), None);
        let re = regex::Regex::new(r"r(\d+)").unwrap();
        assert_eq!(step_of("lora_r16_v2", Some(&re)), Some(16.0));
    }

    #[test]
    fn tracker_steps_from_names_or_positions() {
        let l = ["checkpoint-500", "checkpoint-1000"];
        assert_eq!(tracker_steps(&l), (vec![500, 1000], true));
        // a name without a step, a fractional or repeated step: positions
        assert_eq!(tracker_steps(&["base", "epoch_2"]), (vec![1, 2], false));
        assert_eq!(
            tracker_steps(&["epoch_1.5", "epoch_2"]),
            (vec![1, 2], false)
        );
        assert_eq!(
            tracker_steps(&["a/step_5", "b/step_5"]),
            (vec![1, 2], false)
        );
        assert_eq!(tracker_steps(&["x"]), (vec![1], false));
    }

    #[test]
    fn expands_globs_and_lists_in_natural_order() {
        let dir = tempfile::tempdir().unwrap();
        for e in [5, 10, 15] {
            std::fs::create_dir(dir.path().join(format!("epoch_{e}"))).unwrap();
        }
        let mut args = BTreeMap::new();
        args.insert(
            "pretrained".to_string(),
            format!("{}/epoch_*", dir.path().display()),
        );
        let c = expand(&args).unwrap();
        let labels: Vec<&str> = c.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["epoch_5", "epoch_10", "epoch_15"]);
        args.insert("pretrained".into(), "b/x;a/x".into());
        let c = expand(&args).unwrap();
        assert_eq!(c[0].args["pretrained"], "a/x");
        assert_eq!(c[0].label, "a__x", "same last component: the whole path");
        args.insert(
            "pretrained".into(),
            format!("{}/none_*", dir.path().display()),
        );
        assert!(expand(&args).unwrap_err().contains("no checkpoint matches"));
        args.insert("pretrained".into(), "a;b".into());
        args.insert("adapter".into(), "x;y".into());
        assert!(expand(&args).is_err());
    }
}
