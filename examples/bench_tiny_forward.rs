//! Many forward passes of a two-token prompt (fixed per-request cost).
use rubric::model::LanguageModel;
use std::collections::BTreeMap;
use std::time::Instant;
fn main() {
    let dir = std::env::args().nth(1).expect("MODEL_DIR");
    let mut args = BTreeMap::new();
    args.insert("pretrained".to_string(), dir);
    args.insert(
        "batch_size".to_string(),
        std::env::args().nth(2).unwrap_or("1".into()),
    );
    let m = rubric::model::load("mistralrs", &args).unwrap();
    let reqs: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                format!(
                    "{} {}",
                    ["a", "b", "c", "d"][i % 4],
                    ["dog", "cat", "sun", "sea", "car", "red", "one", "two", "yes", "red"][i / 4]
                ),
                " x".to_string(),
            )
        })
        .collect();
    let t = Instant::now();
    m.loglikelihood(&reqs, &mut |_, _| Ok(())).unwrap();
    eprintln!(
        "{:.1} ms per request",
        t.elapsed().as_secs_f64() * 1000.0 / 40.0
    );
}
