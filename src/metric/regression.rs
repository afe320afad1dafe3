//! `rmse`, `mae`: rating prediction errors (lower is better), and `invalid_rate`.
//!
//! A prediction is parsed as a number the way pandas' `to_numeric` reads a plain string
//! (surrounding whitespace allowed; `nan`/`inf` are not ratings). Standard behaviour: a
//! prediction that does not parse is counted (`invalid_rate` reports the fraction, and a
//! warning names the count) and left out of RMSE/MAE, which are computed over the rest.
//! LaikaLLM's behaviour (option `clip: true`): additionally clip valid predictions to
//! `[min, max]` of the valid truths before computing the errors.
//! RMSE = sqrt(mean(d^2)), MAE = mean(|d|); with no valid prediction both are NaN.

use super::spec::{first_ref, not_for, DocInput, MetricSpec, PredictionKind};
use super::{Aggregation, Item};

/// Parse a generated rating.
pub fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    let v: f64 = t.parse().ok()?;
    v.is_finite().then_some(v)
}

/// (rmse, mae, invalid count) over (prediction, truth) pairs.
pub fn errors(pairs: &[(Option<f64>, f64)], clip: bool) -> (f64, f64, usize) {
    let valid: Vec<(f64, f64)> = pairs
        .iter()
        .filter_map(|(p, t)| p.map(|p| (p, *t)))
        .collect();
    let invalid = pairs.len() - valid.len();
    if valid.is_empty() {
        return (f64::NAN, f64::NAN, invalid);
    }
    let (lo, hi) = valid
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, t)| {
            (lo.min(*t), hi.max(*t))
        });
    let d: Vec<f64> = valid
        .iter()
        .map(|(p, t)| if clip { p.clamp(lo, hi) - t } else { p - t })
        .collect();
    let n = d.len() as f64;
    let rmse = (d.iter().map(|x| x * x).sum::<f64>() / n).sqrt();
    let mae = d.iter().map(|x| x.abs()).sum::<f64>() / n;
    (rmse, mae, invalid)
}

/// `rmse`, `mae` (optionally clipped as LaikaLLM clips) and `invalid_rate` over numeric
/// predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RatingMetric {
    Rmse { clip: bool },
    Mae { clip: bool },
    InvalidRate,
}

pub fn build(name: &str, opts: &super::Options) -> Result<Box<dyn MetricSpec>, String> {
    let clip = super::spec::flag(opts, "clip", false)?;
    Ok(Box::new(match name {
        "rmse" => RatingMetric::Rmse { clip },
        "mae" => RatingMetric::Mae { clip },
        _ => RatingMetric::InvalidRate,
    }))
}

impl MetricSpec for RatingMetric {
    fn default_aggregation(&self) -> Aggregation {
        match *self {
            RatingMetric::Rmse { clip } => Aggregation::Rmse { clip },
            RatingMetric::Mae { clip } => Aggregation::Mae { clip },
            RatingMetric::InvalidRate => Aggregation::InvalidRate,
        }
    }

    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        let DocInput::Prediction(p) = input else {
            return Err(not_for(input));
        };
        let reference = first_ref(p.refs);
        let truth = parse_number(&reference)
            .ok_or_else(|| format!("the reference {reference:?} is not a number"))?;
        Ok(vec![Item::Rating(parse_number(p.text), truth)])
    }

    fn prediction_kind(&self) -> PredictionKind {
        PredictionKind::Number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_predictions_are_counted() {
        let pairs = [
            (parse_number(" 4"), 5.0),
            (parse_number("five"), 5.0),
            (parse_number("2.5"), 1.0),
        ];
        let (rmse, mae, invalid) = errors(&pairs, false);
        assert_eq!(invalid, 1);
        assert!((mae - 1.25).abs() < 1e-12);
        assert!((rmse - ((1.0 + 2.25) / 2.0f64).sqrt()).abs() < 1e-12);
        let (_, mae_clipped, _) = errors(&[(Some(9.0), 5.0), (Some(0.0), 1.0)], true);
        assert_eq!(mae_clipped, 0.0); // 9 is clipped to 5, 0 to 1: no error left
    }
}
