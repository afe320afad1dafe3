//! Every metric family against values its reference tool computed on the same inputs
//! (tests/golden/<family>/cases.json, written by scripts/golden/metrics.py). Floats must agree
//! to 1e-9 (relative to the magnitude for 0-100 scores); integers and booleans exactly.

mod common;

use rubric::metric::aggregate::{self, Aggregation};
use rubric::metric::classification::{self, Average};
use rubric::metric::ranking::Ranking;
use rubric::metric::{
    bleu, choices, chrf, codexglue, exact_match, llamafactory, pass_at_k, regression, rouge, squad,
    ter, Item,
};
use serde_json::Value;

fn cases(family: &str) -> Value {
    let path = common::crate_root().join(format!("tests/golden/{family}/cases.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str::<Value>(&text).unwrap()["cases"].clone()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
fn close(got: f64, want: f64, what: &str) {
    let tol = 1e-9 * want.abs().max(1.0);
    assert!(
        (got - want).abs() <= tol || (got.is_nan() && want.is_nan()),
        "{what}: got {got}, want {want}"
    );
}

#[test]
fn sacrebleu_bleu_chrf_ter() {
    let all = cases("sacrebleu");
    let all = all.as_array().unwrap();
    assert!(all.len() >= 1000);
    let mut ter_checked = 0;
    for (i, c) in all.iter().enumerate() {
        let hyps = strs(&c["hyps"]);
        let refs: Vec<Vec<String>> = c["refs"].as_array().unwrap().iter().map(strs).collect();
        close(
            bleu::corpus_bleu(&hyps, &refs),
            c["bleu"].as_f64().unwrap(),
            &format!("case {i} bleu {hyps:?} {refs:?}"),
        );
        close(
            chrf::corpus_chrf(&hyps, &refs, 0),
            c["chrf"].as_f64().unwrap(),
            &format!("case {i} chrf {hyps:?} {refs:?}"),
        );
        close(
            chrf::corpus_chrf(&hyps, &refs, 2),
            c["chrf++"].as_f64().unwrap(),
            &format!("case {i} chrf++ {hyps:?} {refs:?}"),
        );
        if let Some(t) = c.get("ter") {
            close(
                ter::corpus_ter(&hyps, &refs),
                t.as_f64().unwrap(),
                &format!("case {i} ter {hyps:?} {refs:?}"),
            );
            ter_checked += 1;
        }
    }
    assert!(ter_checked >= 1000, "only {ter_checked} TER cases");
}

#[test]
fn rouge_score_with_stemming() {
    let all = cases("rouge");
    let all = all.as_array().unwrap();
    assert!(all.len() >= 1000);
    for (i, c) in all.iter().enumerate() {
        let pred = c["prediction"].as_str().unwrap();
        let refs = strs(&c["references"]);
        for (name, kind) in [
            ("rouge1", rouge::RougeType::N(1)),
            ("rouge2", rouge::RougeType::N(2)),
            ("rougeL", rouge::RougeType::L),
            ("rougeLsum", rouge::RougeType::Lsum),
        ] {
            let s = rouge::score_multi(kind, &refs, pred, true);
            let want = c[name].as_array().unwrap();
            let what = format!("case {i} {name} {pred:?} {refs:?}");
            close(s.precision, want[0].as_f64().unwrap(), &what);
            close(s.recall, want[1].as_f64().unwrap(), &what);
            close(s.fmeasure, want[2].as_f64().unwrap(), &what);
        }
    }
}

#[test]
fn lm_eval_exact_match() {
    let all = cases("exact_match");
    let all = all.as_array().unwrap();
    assert!(all.len() >= 1000);
    for (i, c) in all.iter().enumerate() {
        let opts = exact_match::Options::from_kwargs(c["options"].as_object().unwrap()).unwrap();
        let got = exact_match::score(
            &opts,
            &[c["reference"].as_str().unwrap().to_string()],
            c["prediction"].as_str().unwrap(),
        );
        assert_eq!(got, c["exact_match"].as_f64().unwrap(), "case {i}: {c}");
    }
}

#[test]
fn sklearn_f1_and_mcc() {
    let all = cases("classification");
    let all = all.as_array().unwrap();
    assert!(all.len() >= 1000);
    for (i, c) in all.iter().enumerate() {
        let pairs: Vec<(Value, Value)> = c["golds"]
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .zip(c["preds"].as_array().unwrap().iter().cloned())
            .collect();
        match c["f1_binary"].as_f64() {
            Some(want) => close(
                classification::f1(&pairs, Average::Binary).unwrap(),
                want,
                &format!("case {i} binary"),
            ),
            None => assert!(
                classification::f1(&pairs, Average::Binary).is_err(),
                "case {i}: sklearn raised, rubric did not"
            ),
        }
        close(
            classification::f1(&pairs, Average::Macro).unwrap(),
            c["f1_macro"].as_f64().unwrap(),
            &format!("case {i} macro"),
        );
        close(
            classification::f1(&pairs, Average::Micro).unwrap(),
            c["f1_micro"].as_f64().unwrap(),
            &format!("case {i} micro"),
        );
        close(
            classification::f1(&pairs, Average::Weighted).unwrap(),
            c["f1_weighted"].as_f64().unwrap(),
            &format!("case {i} weighted"),
        );
        close(
            classification::mcc(&pairs),
            c["mcc"].as_f64().unwrap(),
            &format!("case {i} mcc"),
        );
    }
}

#[test]
fn official_squad_scripts() {
    let all = cases("squad");
    let v1 = all["v1"].as_array().unwrap();
    let v2 = all["v2"].as_array().unwrap();
    assert!(v1.len() >= 1000 && v2.len() >= 1000);
    for (i, c) in v1.iter().enumerate() {
        let (e, f) = squad::score_v1(&strs(&c["answers"]), c["prediction"].as_str().unwrap());
        close(
            100.0 * e,
            c["exact_match"].as_f64().unwrap(),
            &format!("v1 case {i} exact"),
        );
        close(
            100.0 * f,
            c["f1"].as_f64().unwrap(),
            &format!("v1 case {i} f1 {c}"),
        );
    }
    for (i, c) in v2.iter().enumerate() {
        let qs: Vec<squad::Question> = serde_json::from_value(c["questions"].clone()).unwrap();
        let got = squad::evaluate_v2(&qs);
        let want = c["results"].as_object().unwrap();
        assert_eq!(
            got.len(),
            want.len(),
            "v2 case {i}: keys {got:?} vs {want:?}"
        );
        for (k, v) in got {
            close(v, want[k].as_f64().unwrap(), &format!("v2 case {i} {k}"));
        }
    }
}

#[test]
fn code_eval_pass_at_k() {
    let all = cases("pass_at_k");
    let all = all.as_array().unwrap();
    assert!(all.len() >= 1000);
    for (i, c) in all.iter().enumerate() {
        let n = c["n"].as_u64().unwrap() as usize;
        let k = c["k"].as_u64().unwrap() as usize;
        let per: Vec<f64> = c["correct"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| pass_at_k::estimate(n, x.as_u64().unwrap() as usize, k))
            .collect();
        for (j, (g, w)) in per
            .iter()
            .zip(c["per_problem"].as_array().unwrap())
            .enumerate()
        {
            close(*g, w.as_f64().unwrap(), &format!("case {i} problem {j}"));
        }
        close(
            aggregate::mean(&per),
            c["mean"].as_f64().unwrap(),
            &format!("case {i} mean"),
        );
    }
}

#[test]
fn llama_factory_bleu4_and_rouge() {
    let all = cases("llamafactory");
    let all = all.as_array().unwrap();
    assert!(all.len() >= 1000);
    for (i, c) in all.iter().enumerate() {
        let s = llamafactory::score(c["predict"].as_str().unwrap(), c["label"].as_str().unwrap());
        let what = format!("case {i}: {c}");
        close(s.bleu4, c["bleu-4"].as_f64().unwrap(), &what);
        close(s.rouge1, c["rouge-1"].as_f64().unwrap(), &what);
        close(s.rouge2, c["rouge-2"].as_f64().unwrap(), &what);
        close(s.rougel, c["rouge-l"].as_f64().unwrap(), &what);
    }
}

#[test]
fn ranking_metrics() {
    let all = cases("ranking");
    let all = all.as_array().unwrap();
    assert!(all.len() >= 1000);
    let mut sklearn_checked = 0;
    for (i, c) in all.iter().enumerate() {
        let ranked = strs(&c["ranked"]);
        let relevant = strs(&c["relevant"]);
        let k = c["k"].as_u64().unwrap() as usize;
        let what = format!("case {i}: {c}");
        close(
            Ranking::Hit(k).score(&ranked, &relevant),
            c["hit"].as_f64().unwrap(),
            &what,
        );
        close(
            Ranking::Mrr(k).score(&ranked, &relevant),
            c["mrr"].as_f64().unwrap(),
            &what,
        );
        close(
            Ranking::Map(k).score(&ranked, &relevant),
            c["map"].as_f64().unwrap(),
            &what,
        );
        close(
            Ranking::MapLaika(k).score(&ranked, &relevant),
            c["map_laika"].as_f64().unwrap(),
            &what,
        );
        close(
            Ranking::NdcgLaika(k).score(&ranked, &relevant),
            c["ndcg_laika"].as_f64().unwrap(),
            &what,
        );
        if let Some(want) = c["ndcg_sklearn"].as_f64() {
            close(Ranking::Ndcg(k).score(&ranked, &relevant), want, &what);
            sklearn_checked += 1;
        }
    }
    assert!(
        sklearn_checked >= 50,
        "only {sklearn_checked} NDCG cases against sklearn"
    );
}

#[test]
fn rmse_mae_with_invalid_predictions() {
    let all = cases("regression");
    let all = all.as_array().unwrap();
    assert!(all.len() >= 1000);
    for (i, c) in all.iter().enumerate() {
        let pairs: Vec<(Option<f64>, f64)> = strs(&c["predictions"])
            .iter()
            .zip(c["truths"].as_array().unwrap())
            .map(|(p, t)| (regression::parse_number(p), t.as_f64().unwrap()))
            .collect();
        let (rmse, mae, invalid) = regression::errors(&pairs, false);
        assert_eq!(invalid as u64, c["invalid"].as_u64().unwrap(), "case {i}");
        if let Some(want) = c.get("rmse") {
            close(rmse, want.as_f64().unwrap(), &format!("case {i} rmse"));
            close(mae, c["mae"].as_f64().unwrap(), &format!("case {i} mae"));
            let (rc, mc, _) = regression::errors(&pairs, true);
            close(
                rc,
                c["rmse_clip"].as_f64().unwrap(),
                &format!("case {i} rmse clip"),
            );
            close(
                mc,
                c["mae_clip"].as_f64().unwrap(),
                &format!("case {i} mae clip"),
            );
        }
    }
}

#[test]
fn lm_eval_multiple_choice_and_aggregations() {
    let all = cases("loglikelihood");
    let mc = all["multiple_choice"].as_array().unwrap();
    assert!(mc.len() >= 1000);
    for (i, c) in mc.iter().enumerate() {
        let choices = strs(&c["choices"]);
        let lls: Vec<f64> = c["lls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let greedy: Vec<bool> = c["is_greedy"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_bool().unwrap())
            .collect();
        let gold = choices::Gold::resolve(&c["gold"], &choices);
        let s = choices::multiple_choice(&lls, &greedy, &choices, &gold, None);
        let what = format!("case {i}: {c}");
        assert_eq!(s.acc, c["acc"].as_f64().unwrap(), "{what}");
        assert_eq!(s.acc_norm, c["acc_norm"].as_f64().unwrap(), "{what}");
        assert_eq!(s.acc_bytes, c["acc_bytes"].as_f64().unwrap(), "{what}");
        assert_eq!(s.exact_match, c["exact_match"].as_f64().unwrap(), "{what}");
        assert_eq!(s.pred as u64, c["pred"].as_u64().unwrap(), "{what}");
        if let Some(b) = c["brier"].as_f64() {
            close(choices::brier(gold.first() as usize, &s.probs), b, &what);
        }
    }
    for (i, c) in all["aggregations"].as_array().unwrap().iter().enumerate() {
        let lls: Vec<f64> = c["lls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let counts: Vec<f64> = c["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let scores: Vec<f64> = c["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let items = |xs: &[f64]| xs.iter().map(|x| Item::Score(*x)).collect::<Vec<_>>();
        let weighted: Vec<Item> = lls
            .iter()
            .zip(&counts)
            .map(|(a, b)| Item::Weighted(*a, *b))
            .collect();
        let what = format!("aggregation case {i}");
        close(
            Aggregation::Perplexity.compute(&items(&lls)).unwrap(),
            c["perplexity"].as_f64().unwrap(),
            &what,
        );
        close(
            Aggregation::WeightedPerplexity.compute(&weighted).unwrap(),
            c["weighted_perplexity"].as_f64().unwrap(),
            &what,
        );
        close(
            Aggregation::BitsPerByte.compute(&weighted).unwrap(),
            c["bits_per_byte"].as_f64().unwrap(),
            &what,
        );
        close(
            Aggregation::Mean.compute(&items(&scores)).unwrap(),
            c["mean"].as_f64().unwrap(),
            &what,
        );
        close(
            Aggregation::Mean
                .stderr(&items(&scores), 1, 0)
                .unwrap()
                .unwrap(),
            c["mean_stderr"].as_f64().unwrap(),
            &what,
        );
        close(
            Aggregation::Median.compute(&items(&lls)).unwrap(),
            c["median"].as_f64().unwrap(),
            &what,
        );
    }
}

#[test]
fn codexglue_smoothed_bleu_4() {
    let all = cases("codexglue");
    let all = all.as_array().unwrap();
    assert!(all.len() >= 1000);
    for (i, c) in all.iter().enumerate() {
        let (r, p) = (
            c["reference"].as_str().unwrap(),
            c["prediction"].as_str().unwrap(),
        );
        close(
            codexglue::smoothed_bleu_4(r, p),
            c["smoothed_bleu_4"].as_f64().unwrap(),
            &format!("case {i} {r:?} {p:?}"),
        );
    }
}
