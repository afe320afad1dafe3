//! Output files, in lm-eval's formats: results JSON (`results`), per-task samples JSON Lines
//! (`samples`), and the results table as Markdown (printed and written), CSV and LaTeX
//! (`tables`). Every key written is documented in the module that writes it. `trackers` sends
//! the results and samples to W&B, Trackio and TensorBoard, through their own Python packages.

pub mod files;
pub mod plan;
pub mod results;
pub mod samples;
pub mod tables;
pub mod trackers;

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

/// Seconds east of UTC of the local time zone at `secs` (0 where it cannot be told).
fn local_offset(secs: i64) -> i64 {
    #[cfg(unix)]
    {
        let t = secs as libc::time_t;
        // SAFETY: localtime_r writes into the tm we own
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        if unsafe { !libc::localtime_r(&t, &mut tm).is_null() } {
            return tm.tm_gmtoff as i64;
        }
    }
    let _ = secs;
    0
}

/// lm-eval's timestamp: `datetime.now().isoformat()` (local time) with `:` replaced by `-`.
pub(crate) fn file_timestamp(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    timestamp_at(t, local_offset(secs))
}

/// The timestamp of `t` shifted by `offset` seconds.
fn timestamp_at(t: std::time::SystemTime, offset: i64) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64 + offset;
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
        assert_eq!(timestamp_at(t, 0), "2026-11-22T09-38-03.624298");
        assert_eq!(timestamp_at(t, 3600), "2026-11-22T10-38-03.624298");
    }
}
