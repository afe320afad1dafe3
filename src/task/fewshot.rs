//! Few-shot example selection, identical to lm-eval's samplers (`lm_eval/api/samplers.py`).
//!
//! `default`: `random.Random(seed).sample(pool, n)`, one generator per task, advancing doc by
//! doc. When an eval doc is passed (lm-eval passes it when the few-shot split equals the test
//! split), `n + 1` are drawn and docs equal to the eval doc dropped; if that leaves fewer than
//! `n`, the pool without the eval doc is sampled again. `first_n`: the first `n` of the pool
//! (without the eval doc when one is passed). `fewshot_indices` narrows the pool first.

use crate::py::random::PyRandom;
use crate::request::Doc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    Default,
    FirstN,
}

impl SamplerKind {
    pub fn parse(name: &str) -> Option<SamplerKind> {
        match name {
            "default" => Some(SamplerKind::Default),
            "first_n" => Some(SamplerKind::FirstN),
            _ => None,
        }
    }
}

/// The few-shot pool of one task with its random generator.
pub(crate) struct Sampler {
    kind: SamplerKind,
    pool: Vec<Doc>,
    rnd: PyRandom,
}

impl Sampler {
    pub fn new(
        kind: SamplerKind,
        pool: Vec<Doc>,
        indices: Option<&[usize]>,
        seed: i64,
    ) -> Result<Sampler, String> {
        let pool = match indices {
            Some(idx) => idx
                .iter()
                .map(|&i| {
                    pool.get(i).cloned().ok_or_else(|| {
                        format!(
                            "fewshot_indices: index {i} is out of range (the pool has {} docs)",
                            pool.len()
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => pool,
        };
        Ok(Sampler {
            kind,
            pool,
            rnd: PyRandom::new(seed),
        })
    }

    /// `n` examples for one eval doc (`eval_doc` is excluded when given).
    pub fn sample(&mut self, n: usize, eval_doc: Option<&Doc>) -> Result<Vec<Doc>, String> {
        if n == 0 {
            return Ok(vec![]);
        }
        if self.pool.is_empty() {
            return Err(
                "no documents available for few-shot sampling (the few-shot pool is empty)".into(),
            );
        }
        match self.kind {
            SamplerKind::FirstN => {
                let pool: Vec<&Doc> = self.pool.iter().filter(|d| eval_doc != Some(*d)).collect();
                if n > pool.len() {
                    return Err(format!(
                        "{n} few-shot examples requested but only {} are available",
                        pool.len()
                    ));
                }
                Ok(pool[..n].iter().map(|d| (*d).clone()).collect())
            }
            SamplerKind::Default => {
                // lm-eval treats an empty eval doc as absent (`if not eval_doc`)
                let eval_doc = eval_doc.filter(|d| !d.is_empty());
                let draw = if eval_doc.is_some() { n + 1 } else { n };
                if draw > self.pool.len() {
                    return Err(format!(
                        "{draw} few-shot examples must be drawn but the pool has only {} docs (Python's random.sample would fail)",
                        self.pool.len()
                    ));
                }
                let picked = self.rnd.sample_indices(self.pool.len(), draw);
                let mut res: Vec<Doc> = picked
                    .iter()
                    .map(|&i| &self.pool[i])
                    .filter(|d| eval_doc != Some(*d))
                    .take(n)
                    .cloned()
                    .collect();
                if res.len() < n {
                    let rest: Vec<&Doc> =
                        self.pool.iter().filter(|d| eval_doc != Some(*d)).collect();
                    if n > rest.len() {
                        return Err(format!(
                            "{n} few-shot examples requested but only {} differ from the eval doc",
                            rest.len()
                        ));
                    }
                    res = self
                        .rnd
                        .sample_indices(rest.len(), n)
                        .into_iter()
                        .map(|i| rest[i].clone())
                        .collect();
                }
                Ok(res)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs(n: usize) -> Vec<Doc> {
        (0..n)
            .map(|i| json!({"i": i}).as_object().unwrap().clone())
            .collect()
    }

    // python3: r = random.Random(1234); [[d for d in r.sample(range(10), 3)] for _ in range(2)]
    #[test]
    fn generator_advances_doc_by_doc() {
        let mut s = Sampler::new(SamplerKind::Default, docs(10), None, 1234).unwrap();
        let a: Vec<_> = s
            .sample(3, None)
            .unwrap()
            .iter()
            .map(|d| d["i"].as_u64().unwrap())
            .collect();
        let b: Vec<_> = s
            .sample(3, None)
            .unwrap()
            .iter()
            .map(|d| d["i"].as_u64().unwrap())
            .collect();
        assert_eq!((a, b), (vec![7, 1, 0], vec![1, 0, 9]));
    }

    #[test]
    fn first_n_skips_the_eval_doc() {
        let pool = docs(5);
        let mut s = Sampler::new(SamplerKind::FirstN, pool.clone(), None, 1234).unwrap();
        let got: Vec<_> = s
            .sample(2, Some(&pool[0]))
            .unwrap()
            .iter()
            .map(|d| d["i"].as_u64().unwrap())
            .collect();
        assert_eq!(got, vec![1, 2]);
    }
}
