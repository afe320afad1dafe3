//! `hit@k`, `ndcg@k`, `mrr@k`, `map@k`: ranking metrics for recommendation, per doc, averaged
//! over docs; and LaikaLLM's variants where its code differs (`ndcg_laika@k`, `map_laika@k`).
//!
//! A doc has a ranked list of predicted items and a set of relevant items (P5's leave-one-out
//! protocol has exactly one). Standard definitions, with rel_j = 1 if the j-th item is
//! relevant (j from 0), cut at k:
//! - hit@k = 1 if any of the top k is relevant;
//! - mrr@k = 1/(j+1) for the first relevant j < k, else 0;
//! - ndcg@k = sum rel_j/log2(j+2) / IDCG, IDCG = sum_{j < min(|relevant|, k)} 1/log2(j+2);
//! - map@k = sum_j rel_j * precision@(j+1) / min(|relevant|, k).
//! LaikaLLM (`swapUniba/LaikaLLM` metrics): `ndcg_laika@k` takes IDCG from the top-k relevance
//! vector sorted (the ideal reordering of the hits found), `map_laika@k` divides by the number
//! of hits found; with one relevant item both equal the standard ones.
//! Relevance is exact string equality, as LaikaLLM matches generated item ids.

use super::spec::{not_for, DocInput, MetricSpec, PredictionKind};
use super::Item;

/// Which ranking metric, with its cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    Hit(usize),
    Ndcg(usize),
    Mrr(usize),
    Map(usize),
    NdcgLaika(usize),
    MapLaika(usize),
}

impl Ranking {
    /// `hit@10`, `ndcg@5`, `mrr@10`, `map@5`, `ndcg_laika@10`, `map_laika@5` (case-insensitive).
    pub fn parse(name: &str) -> Option<Ranking> {
        let lower = name.to_lowercase();
        let (base, k) = lower.split_once('@')?;
        let k: usize = k.parse().ok().filter(|k| *k > 0)?;
        Some(match base {
            "hit" | "hr" => Ranking::Hit(k),
            "ndcg" => Ranking::Ndcg(k),
            "mrr" => Ranking::Mrr(k),
            "map" => Ranking::Map(k),
            "ndcg_laika" => Ranking::NdcgLaika(k),
            "map_laika" => Ranking::MapLaika(k),
            _ => return None,
        })
    }

    /// The score of one ranked list against the relevant items.
    pub fn score<S: AsRef<str>>(&self, ranked: &[S], relevant: &[S]) -> f64 {
        let rel: Vec<f64> = ranked
            .iter()
            .map(|p| f64::from(u8::from(relevant.iter().any(|r| r.as_ref() == p.as_ref()))))
            .collect();
        self.score_relevance(&rel, relevant.len())
    }

    /// The score from a relevance vector (in rank order) and the number of relevant items.
    pub(crate) fn score_relevance(&self, rel: &[f64], n_relevant: usize) -> f64 {
        let top = |k: usize| &rel[..k.min(rel.len())];
        let dcg = |r: &[f64]| {
            r.iter()
                .enumerate()
                .map(|(j, x)| x / ((j + 2) as f64).log2())
                .sum::<f64>()
        };
        match *self {
            Ranking::Hit(k) => f64::from(u8::from(top(k).iter().any(|&x| x > 0.0))),
            Ranking::Mrr(k) => top(k)
                .iter()
                .position(|&x| x > 0.0)
                .map(|j| 1.0 / (j + 1) as f64)
                .unwrap_or(0.0),
            Ranking::Ndcg(k) => {
                let ideal: f64 = (0..n_relevant.min(k))
                    .map(|j| 1.0 / ((j + 2) as f64).log2())
                    .sum();
                if ideal == 0.0 {
                    0.0
                } else {
                    dcg(top(k)) / ideal
                }
            }
            Ranking::NdcgLaika(k) => {
                let mut sorted = top(k).to_vec();
                sorted.sort_by(|a, b| b.total_cmp(a));
                let ideal = dcg(&sorted);
                if ideal == 0.0 {
                    0.0
                } else {
                    dcg(top(k)) / ideal
                }
            }
            Ranking::Map(k) | Ranking::MapLaika(k) => {
                let t = top(k);
                let mut hits = 0.0;
                let mut sum = 0.0;
                for (j, &x) in t.iter().enumerate() {
                    if x > 0.0 {
                        hits += 1.0;
                        sum += hits / (j + 1) as f64;
                    }
                }
                let denom = match self {
                    Ranking::Map(_) => n_relevant.min(k) as f64,
                    _ => hits,
                };
                if denom == 0.0 {
                    0.0
                } else {
                    sum / denom
                }
            }
        }
    }
}

/// The rank (0 = best) of choice `gold` when choices are ordered by descending score; ties
/// keep choice order (a stable sort), so an earlier choice ranks first.
pub(crate) fn rank_of(scores: &[f64], gold: usize) -> usize {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.iter().position(|&i| i == gold).unwrap_or(usize::MAX)
}

pub fn build(name: &str, _opts: &super::Options) -> Result<Box<dyn MetricSpec>, String> {
    Ok(Box::new(Ranking::parse(name).ok_or_else(|| {
        "expected NAME@K with K a positive integer".to_string()
    })?))
}

impl MetricSpec for Ranking {
    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        Ok(vec![Item::Score(match input {
            // candidates ranked by loglikelihood, the gold one relevant
            DocInput::MultipleChoice(c) => {
                let n = c.lls.len();
                let rank = rank_of(&c.lls, c.gold.first().max(0) as usize);
                let mut rel = vec![0.0; n];
                if rank < n {
                    rel[rank] = 1.0;
                }
                self.score_relevance(&rel, 1)
            }
            DocInput::Prediction(p) => match p.ranked {
                Some(list) => self.score(list, p.refs),
                None => {
                    let ranked: Vec<String> = p
                        .text
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                    self.score(&ranked, p.refs)
                }
            },
            other => return Err(not_for(other)),
        })])
    }

    fn prediction_kind(&self) -> PredictionKind {
        PredictionKind::Ranked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_relevant_item() {
        let ranked = ["a", "b", "c", "d"];
        let rel = ["c"];
        assert_eq!(Ranking::Hit(2).score(&ranked, &rel), 0.0);
        assert_eq!(Ranking::Hit(3).score(&ranked, &rel), 1.0);
        assert!((Ranking::Ndcg(5).score(&ranked, &rel) - 0.5).abs() < 1e-12);
        assert!((Ranking::Mrr(5).score(&ranked, &rel) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            Ranking::NdcgLaika(5).score(&ranked, &rel),
            Ranking::Ndcg(5).score(&ranked, &rel)
        );
    }

    #[test]
    fn laika_differs_with_several_relevant() {
        let ranked = ["x", "a", "y", "z"];
        let rel = ["a", "b"];
        // standard IDCG = 1 + 1/log2(3); LaikaLLM's IDCG = 1 (one hit, moved to the top)
        assert!((Ranking::NdcgLaika(4).score(&ranked, &rel) - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert!(Ranking::Ndcg(4).score(&ranked, &rel) < Ranking::NdcgLaika(4).score(&ranked, &rel));
        assert!((Ranking::MapLaika(4).score(&ranked, &rel) - 0.5).abs() < 1e-12);
        assert!((Ranking::Map(4).score(&ranked, &rel) - 0.25).abs() < 1e-12);
        assert_eq!(rank_of(&[-1.0, -0.5, -0.5], 2), 1);
    }
}
