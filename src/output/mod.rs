//! Output files, in lm-eval's formats: results JSON (`results`), per-task samples JSON Lines
//! (`samples`), and the results table as Markdown (printed and written), CSV and LaTeX
//! (`tables`). Every key written is documented in the module that writes it.

pub mod results;
pub mod samples;
pub mod tables;

/// lm-eval's `sanitize_model_name`: runs of `"<>:/|\?*[]` become `__`.
pub fn sanitize_model_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(
            c,
            '"' | '<' | '>' | ':' | '/' | '|' | '\\' | '?' | '*' | '[' | ']'
        ) {
            if !in_run {
                out.push_str("__");
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    out
}

/// lm-eval's timestamp: `datetime.now().isoformat()` with `:` replaced by `-`.
pub fn file_timestamp(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}.{:06}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times() {
        assert_eq!(
            sanitize_model_name("EleutherAI/pythia-160m"),
            "EleutherAI__pythia-160m"
        );
        assert_eq!(sanitize_model_name("./models//x:y"), ".__models__x__y");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_795_340_283_624_298);
        assert_eq!(file_timestamp(t), "2026-11-22T09-38-03.624298");
    }
}
