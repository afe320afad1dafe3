//! `math_equiv`: whether a (boxed) math answer equals the reference, 1.0 or 0.0.
//!
//! Two answers are equal when their normalised strings are equal, or when both read as
//! numbers within a relative tolerance of 1e-4 (absolute 1e-9 near zero). Normalisation:
//! trim; drop `$`, `\left`, `\right`, `\!`, `\,`, `\;`, `\ `, spaces, `^\circ`, `^{\circ}`, `\%`,
//! `%` and a trailing `.`; `\dfrac`/`\tfrac` -> `\frac`; unwrap `\text{..}`, `\textbf{..}`,
//! `\mathrm{..}`, `\mbox{..}`; `1,000` -> `1000`; lowercase. Numbers: decimals, `a/b`,
//! `\frac{a}{b}` and `\frac ab` with numeric parts, a leading sign.
//! Limits (documented, as in Reasoning360's simpler graders): no symbolic algebra
//! (`\frac{\sqrt{2}}{2}` and `\sqrt{2}/2` differ), no set or interval reordering, units other
//! than degrees and percent are not stripped, `50%` equals `50` but not `0.5`.

use super::spec::{not_for, DocInput, MetricSpec};
use super::Item;

fn unwrap_command(s: &str, cmd: &str) -> String {
    let mut out = s.to_string();
    while let Some(start) = out.find(cmd) {
        let open = start + cmd.len();
        if out[open..].starts_with('{') {
            let mut depth = 0;
            let mut end = None;
            for (i, c) in out[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(open + i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            match end {
                Some(e) => out = format!("{}{}{}", &out[..start], &out[open + 1..e], &out[e + 1..]),
                None => break,
            }
        } else {
            out = format!("{}{}", &out[..start], &out[open..]);
        }
    }
    out
}

/// The normalised form of an answer.
pub(crate) fn normalize(s: &str) -> String {
    let mut s = s.trim().to_string();
    for cmd in ["\\text", "\\textbf", "\\mathrm", "\\mbox"] {
        s = unwrap_command(&s, cmd);
    }
    for (from, to) in [
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("^{\\circ}", ""),
        ("^\\circ", ""),
        ("\\left", ""),
        ("\\right", ""),
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("\\ ", ""),
        ("\\%", ""),
        ("%", ""),
        ("$", ""),
    ] {
        s = s.replace(from, to);
    }
    s.retain(|c| !c.is_whitespace());
    while s.ends_with('.') {
        s.pop();
    }
    // thousands separators: 1,234,567(.89)
    let bytes = s.as_bytes();
    if bytes.contains(&b',') {
        let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
        let int_body = int.strip_prefix('-').unwrap_or(int);
        let groups: Vec<&str> = int_body.split(',').collect();
        let ok = groups.len() > 1
            && !groups[0].is_empty()
            && groups[0].len() <= 3
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
            && groups[1..].iter().all(|g| g.len() == 3)
            && frac.bytes().all(|b| b.is_ascii_digit());
        if ok {
            s = s.replace(',', "");
        }
    }
    s.to_lowercase()
}

/// The value of a normalised numeric answer.
pub(crate) fn to_number(s: &str) -> Option<f64> {
    let (sign, body) = match s.strip_prefix('-') {
        Some(b) => (-1.0, b),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    if let Ok(v) = body.parse::<f64>() {
        return v.is_finite().then_some(sign * v);
    }
    if let Some(rest) = body.strip_prefix("\\frac") {
        let (a, b) = if let Some(r) = rest.strip_prefix('{') {
            let (a, r) = r.split_once('}')?;
            let b = r.strip_prefix('{')?.strip_suffix('}')?;
            (a.to_string(), b.to_string())
        } else {
            let mut cs = rest.chars();
            (cs.next()?.to_string(), cs.collect::<String>())
        };
        let (a, b) = (to_number(&a)?, to_number(&b)?);
        return (b != 0.0).then(|| sign * a / b);
    }
    if let Some((a, b)) = body.split_once('/') {
        let (a, b) = (a.parse::<f64>().ok()?, b.parse::<f64>().ok()?);
        return (b != 0.0).then(|| sign * a / b);
    }
    None
}

/// 1.0 when the prediction is equivalent to the reference.
pub fn score(reference: &str, prediction: &str) -> f64 {
    let (r, p) = (normalize(reference), normalize(prediction));
    if !r.is_empty() && r == p {
        return 1.0;
    }
    match (to_number(&r), to_number(&p)) {
        (Some(a), Some(b)) => {
            let close = (a - b).abs() <= 1e-9_f64.max(1e-4 * a.abs().max(b.abs()));
            f64::from(u8::from(close))
        }
        _ => 0.0,
    }
}

/// `math_equiv`: the best match over the references.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MathEquiv;

pub fn build(_name: &str, _opts: &super::Options) -> Result<Box<dyn MetricSpec>, String> {
    Ok(Box::new(MathEquiv))
}

impl MetricSpec for MathEquiv {
    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        let DocInput::Prediction(p) = input else {
            return Err(not_for(input));
        };
        Ok(vec![Item::Score(
            p.refs.iter().map(|r| score(r, p.text)).fold(0.0, f64::max),
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalences() {
        assert_eq!(score("\\frac{1}{2}", "0.5"), 1.0);
        assert_eq!(score("\\dfrac12", "1/2"), 1.0);
        assert_eq!(score("1,000", "1000."), 1.0);
        assert_eq!(score("90^\\circ", "90"), 1.0);
        assert_eq!(score("\\text{(B)}", "(b)"), 1.0);
        assert_eq!(score("3.14159", "3.1416"), 1.0);
        assert_eq!(score("2", "3"), 0.0);
        assert_eq!(score("x+1", "1+x"), 0.0); // no algebra
        assert_eq!(score("", ""), 0.0);
    }
}
