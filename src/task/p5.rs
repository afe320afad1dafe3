//! P5-format recommendation data as docs (`process_docs: {name: p5_sequential, ...}`).
//!
//! Input: the lines of `sequential_data.txt` (read with `dataset_path: text`, one doc per line
//! in column `text`): `user_id item_id item_id ...` in chronological order. Optionally
//! `datamaps.json` beside it (`id2user`, `id2item`) for user names and the item catalog.
//!
//! Each user becomes one doc, split leave-one-out as P5 does: `split: test` (default) holds out
//! the last item (history = all before it), `split: validation` the second to last. Fields:
//! `user_id`, `user_name` (the reviewer id from datamaps, else `user_<id>`), `history` (list),
//! `purchase_history` (joined with `history_separator`, default `" , "`), `target`,
//! `candidates` (the target plus `negatives` items the user never interacted with, default 99,
//! sampled from the catalog and shuffled), `candidate_items` (joined with `" , "`) and
//! `target_index` (the target's position in `candidates`).
//!
//! Sampling is seeded per user (`seed`, default 2022, combined with the line number), so a doc's
//! candidates do not depend on `--limit` or on which other users are evaluated.

use std::collections::HashSet;
use std::path::Path;

use serde_json::{Map, Value};

use crate::py::random::PyRandom;
use crate::request::Doc;

/// Options of the `p5_sequential` processor.
pub(crate) struct P5Options {
    pub validation: bool,
    pub negatives: usize,
    pub seed: i64,
    pub separator: String,
    pub datamaps: Option<String>,
}

impl P5Options {
    pub fn parse(args: &Map<String, Value>) -> Result<P5Options, String> {
        let validation = match args.get("split").and_then(Value::as_str) {
            None | Some("test") => false,
            Some("validation") => true,
            Some(other) => {
                return Err(format!(
                    "p5_sequential `split` must be test or validation, got `{other}`"
                ))
            }
        };
        let int = |k: &str, d: i64| -> Result<i64, String> {
            match args.get(k) {
                None => Ok(d),
                Some(v) => v
                    .as_i64()
                    .ok_or_else(|| format!("p5_sequential `{k}` must be an integer")),
            }
        };
        let negatives = int("negatives", 99)?;
        if negatives < 0 {
            return Err("p5_sequential `negatives` must not be negative".into());
        }
        Ok(P5Options {
            validation,
            negatives: negatives as usize,
            seed: int("seed", 2022)?,
            separator: args
                .get("history_separator")
                .and_then(Value::as_str)
                .unwrap_or(" , ")
                .to_string(),
            datamaps: args
                .get("datamaps")
                .and_then(Value::as_str)
                .map(String::from),
        })
    }
}

/// `id2user` and the item catalog from datamaps.json.
fn read_datamaps(path: &Path) -> Result<(Map<String, Value>, Vec<String>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let users = v
        .get("id2user")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| format!("{}: no `id2user` mapping", path.display()))?;
    let mut items: Vec<String> = v
        .get("id2item")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    items.sort_by(|a, b| natural(a, b));
    Ok((users, items))
}

/// Numeric ids in numeric order, others after them as text.
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => a.cmp(b),
    }
}

pub(crate) fn sequential(
    docs: &[Doc],
    opts: &P5Options,
    base: Option<&Path>,
) -> Result<Vec<Doc>, String> {
    let lines: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            d.get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .collect();
    let (users, mut catalog) = match &opts.datamaps {
        Some(name) => {
            let path = base
                .map(|b| b.join(name))
                .unwrap_or_else(|| Path::new(name).to_path_buf());
            read_datamaps(&path)?
        }
        None => (Map::new(), Vec::new()),
    };
    if catalog.is_empty() {
        let mut seen = HashSet::new();
        for l in &lines {
            for i in l.iter().skip(1) {
                if seen.insert(i.clone()) {
                    catalog.push(i.clone());
                }
            }
        }
        catalog.sort_by(|a, b| natural(a, b));
    }
    let held_out = if opts.validation { 2 } else { 1 };
    let mut out = Vec::with_capacity(lines.len());
    for (line_no, l) in lines.iter().enumerate() {
        if l.is_empty() {
            continue;
        }
        let user = &l[0];
        let items = &l[1..];
        if items.len() <= held_out {
            return Err(format!(
                "line {}: user {user} has {} items; leave-one-out needs at least {}",
                line_no + 1,
                items.len(),
                held_out + 1
            ));
        }
        let target = items[items.len() - held_out].clone();
        let history: Vec<String> = items[..items.len() - held_out].to_vec();
        let interacted: HashSet<&String> = items.iter().collect();
        let pool = catalog.len() - catalog.iter().filter(|i| interacted.contains(i)).count();
        if pool < opts.negatives {
            return Err(format!("line {}: only {pool} items the user {user} never interacted with; {} negatives asked", line_no + 1, opts.negatives));
        }
        let mut rng = PyRandom::new(
            opts.seed
                .wrapping_mul(1_000_003)
                .wrapping_add(line_no as i64),
        );
        let mut chosen: Vec<String> = Vec::with_capacity(opts.negatives + 1);
        let mut taken: HashSet<usize> = HashSet::new();
        while chosen.len() < opts.negatives {
            let k = rng.randbelow(catalog.len());
            if !interacted.contains(&catalog[k]) && taken.insert(k) {
                chosen.push(catalog[k].clone());
            }
        }
        chosen.push(target.clone());
        rng.shuffle(&mut chosen);
        let target_index = chosen
            .iter()
            .position(|c| *c == target)
            .expect("the target is a candidate");
        let mut d = Map::new();
        d.insert("user_id".into(), Value::from(user.clone()));
        let name = users
            .get(user)
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| format!("user_{user}"));
        d.insert("user_name".into(), Value::from(name));
        d.insert(
            "purchase_history".into(),
            Value::from(history.join(&opts.separator)),
        );
        d.insert("history".into(), Value::from(history));
        d.insert("target".into(), Value::from(target));
        d.insert("candidate_items".into(), Value::from(chosen.join(" , ")));
        d.insert("candidates".into(), Value::from(chosen));
        d.insert("target_index".into(), Value::from(target_index));
        out.push(d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<Doc> {
        text.lines()
            .map(|l| {
                let mut d = Map::new();
                d.insert("text".into(), Value::from(l));
                d
            })
            .collect()
    }

    #[test]
    fn leave_one_out_with_seeded_negatives() {
        let docs = lines("1 1 2 3 4\n2 5 6 7\n3 8 9 10 11 12");
        let opts = P5Options::parse(&serde_json::from_str(r#"{"negatives": 3}"#).unwrap()).unwrap();
        let out = sequential(&docs, &opts, None).unwrap();
        assert_eq!(out[0]["history"], serde_json::json!(["1", "2", "3"]));
        assert_eq!(out[0]["target"], "4");
        assert_eq!(out[0]["purchase_history"], "1 , 2 , 3");
        let c: Vec<&str> = out[0]["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(c.len(), 4);
        assert_eq!(c[out[0]["target_index"].as_u64().unwrap() as usize], "4");
        assert!(
            c.iter()
                .filter(|x| **x != "4")
                .all(|x| !["1", "2", "3"].contains(x)),
            "negatives were never interacted with"
        );
        assert_eq!(sequential(&docs, &opts, None).unwrap(), out, "seeded");
        let val = sequential(
            &docs,
            &P5Options::parse(
                &serde_json::from_str(r#"{"negatives": 3, "split": "validation"}"#).unwrap(),
            )
            .unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(val[0]["target"], "3");
    }
}
