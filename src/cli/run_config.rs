//! `rubric run --config run.yaml`: lm-eval 0.5's run config (`EvaluatorConfig.from_cli`), a
//! YAML mapping of the run's settings by their flag names (`model`, `model_args`, `tasks`,
//! `num_fewshot`, `limit`, `output_path`, `log_samples`, `gen_kwargs`, `seed`, ...; rubric's
//! own flags such as `data_dir` too, snake_case or kebab-case). Flags given on the command line
//! win over the file, as in lm-eval 0.5 ("CLI args > YAML config > built-in defaults").
//!
//! The file becomes flags in front of the command line's (before clap parses it): a mapping
//! value becomes `key=value,...` (`model_args` as one JSON object, `samples` as JSON), a list
//! a comma-separated list, `true` the bare flag, `false` and `null` nothing. A key that names
//! no flag is refused with the file and key; lm-eval 0.5 keys with no rubric flag are refused
//! unless they hold their default.

use std::ffi::OsString;
use std::path::Path;

use serde_json::Value;

/// lm-eval 0.5 `EvaluatorConfig` fields rubric has no flag for, accepted at these defaults.
const DEFAULT_ONLY: &[(&str, &str)] = &[
    ("include_defaults", "true"),
    ("check_integrity", "false"),
    ("repeats", "null"),
    ("metadata", "{}"),
    ("wandb_config_args", "{}"),
    ("hf_hub_log_args", "{}"),
    ("cache_requests", "{}"),
    ("max_batch_size", "null"),
    ("write_out", "false"),
    ("show_config", "false"),
    ("trust_remote_code", "false"),
    ("use_cache", "null"),
    ("verbosity", "null"),
    ("wandb_args", "{}"),
];

/// The command line with `rubric run`'s `--config FILE` replaced by the file's settings (in
/// front, so the command line's own flags override them). Other command lines are returned
/// as they are.
pub fn expand_argv(argv: Vec<OsString>) -> Result<Vec<OsString>, String> {
    if argv.get(1).and_then(|a| a.to_str()) != Some("run") {
        return Ok(argv);
    }
    let mut rest: Vec<OsString> = Vec::new();
    let mut file: Option<OsString> = None;
    let mut it = argv[2..].iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--config") => {
                let v = it
                    .next()
                    .ok_or("--config needs a file (a run config YAML)")?;
                file = Some(v.clone());
            }
            Some(s) if s.starts_with("--config=") => file = Some(s["--config=".len()..].into()),
            _ => rest.push(a.clone()),
        }
    }
    let Some(file) = file else {
        return Ok(argv);
    };
    let given = flags_given(&rest);
    let mut out: Vec<OsString> = argv[..2].to_vec();
    for (flag, tokens) in from_file(Path::new(&file))? {
        if !given.iter().any(|g| flag.names.contains(g)) {
            out.extend(tokens.into_iter().map(OsString::from));
        }
    }
    out.extend(rest);
    Ok(out)
}

/// A flag of `rubric run` and every name it answers to (`--long`, aliases, `-s`).
struct Flag {
    long: String,
    names: Vec<String>,
    takes_value: bool,
    /// Given more than once, each value adds (`--include-path`).
    repeats: bool,
}

fn run_flags() -> Vec<Flag> {
    use clap::CommandFactory;
    let cli = super::Cli::command();
    let Some(run) = cli.find_subcommand("run") else {
        return vec![];
    };
    run.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?.to_string();
            let mut names = vec![format!("--{long}")];
            names.extend(
                a.get_all_aliases()
                    .into_iter()
                    .flatten()
                    .map(|x| format!("--{x}")),
            );
            names.extend(a.get_short().map(|c| format!("-{c}")));
            let takes_value = a.get_action().takes_values();
            let repeats = matches!(a.get_action(), clap::ArgAction::Append);
            Some(Flag {
                long,
                names,
                takes_value,
                repeats,
            })
        })
        .collect()
}

/// The flags the command line gives (their names as written, `--x=v` as `--x`).
fn flags_given(args: &[OsString]) -> Vec<String> {
    (args.iter().filter_map(|a| a.to_str()))
        .filter(|a| a.starts_with('-'))
        .map(|a| a.split('=').next().unwrap_or(a).to_string())
        .map(|a| match a.strip_prefix('-') {
            // `-fVALUE`: a short flag with its value attached
            Some(short) if !short.starts_with('-') && short.len() > 1 => a[..2].to_string(),
            _ => a,
        })
        .collect()
}

/// The file's settings as flags with their command-line tokens, in the file's order.
fn from_file(path: &Path) -> Result<Vec<(Flag, Vec<String>)>, String> {
    let at = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--config {at}: cannot read the run config: {e}"))?;
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("--config {at}: malformed YAML: {e}"))?;
    let Ok(Value::Object(map)) = serde_json::to_value(&yaml) else {
        return Err(format!(
            "--config {at}: expected a mapping of run settings (model, model_args, tasks, ...) at the top level"
        ));
    };
    let mut flags = run_flags();
    let mut out = Vec::new();
    for (key, value) in map {
        let kebab = key.replace('_', "-");
        let found = flags.iter().position(|f| {
            f.names
                .iter()
                .any(|n| *n == format!("--{key}") || *n == format!("--{kebab}"))
        });
        let found = found.filter(|_| key != "config");
        let Some(i) = found else {
            if let Some((_, default)) = DEFAULT_ONLY.iter().find(|(k, _)| *k == key) {
                if is_default(&value, default) {
                    continue;
                }
                return Err(format!(
                    "--config {at}: `{key}: {value}` is an lm-eval setting rubric has no flag for (only its default, {default}, is accepted)"
                ));
            }
            let names: Vec<String> = flags.iter().map(|f| f.long.replace('-', "_")).collect();
            let hint = crate::text::did_you_mean(&key, names.iter().map(String::as_str))
                .map(|h| format!(" (did you mean `{h}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "--config {at}: `{key}` is not a setting of `rubric run`{hint}"
            ));
        };
        let flag = flags.swap_remove(i);
        let name = format!("--{}", flag.long);
        let values: Vec<&Value> = match &value {
            Value::Array(items) if flag.repeats => items.iter().collect(),
            one => vec![one],
        };
        let mut tokens = Vec::new();
        for v in values {
            match flag_value(&key, v, flag.takes_value)
                .map_err(|e| format!("--config {at}: `{key}`: {e}"))?
            {
                Some(Some(text)) => tokens.extend([name.clone(), text]),
                Some(None) => tokens.push(name.clone()),
                None => {}
            }
        }
        if !tokens.is_empty() {
            out.push((flag, tokens));
        }
    }
    Ok(out)
}

fn is_default(value: &Value, default: &str) -> bool {
    match (value, default) {
        (Value::Null, _) => true,
        (Value::Bool(b), d) => b.to_string() == d,
        (Value::Object(m), "{}") => m.is_empty(),
        _ => false,
    }
}

/// The flag's value on the command line: `Some(None)` for a bare flag, `None` for no flag.
fn flag_value(
    key: &str,
    value: &Value,
    takes_value: bool,
) -> Result<Option<Option<String>>, String> {
    if !takes_value {
        return match value {
            Value::Bool(true) => Ok(Some(None)),
            Value::Bool(false) | Value::Null => Ok(None),
            other => Err(format!("expected true or false, found {other}")),
        };
    }
    let text = match value {
        Value::Null => return Ok(None),
        Value::Object(m) if m.is_empty() => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Null => Ok("None".to_string()),
                other => Err(format!(
                    "a list of names or numbers is expected, found {other}"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        Value::Object(m) if key == "model_args" || key == "samples" => {
            serde_json::to_string(m).map_err(|e| e.to_string())?
        }
        Value::Object(m) => {
            let mut parts = Vec::new();
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if v.contains(',') {
                    return Err(format!(
                        "`{k}`'s value `{v}` holds a comma, which `key=value,...` cannot carry"
                    ));
                }
                parts.push(format!("{k}={v}"));
            }
            parts.join(",")
        }
    };
    Ok(Some(Some(text)))
}
