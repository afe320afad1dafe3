//! Forward-pass cost by prompt length: `cargo run --release --example bench_forward -- MODEL_DIR`.
use rubric::model::LanguageModel;
use std::collections::BTreeMap;
use std::time::Instant;
fn main() {
    let dir = std::env::args().nth(1).expect("MODEL_DIR");
    let mut args = BTreeMap::new();
    args.insert("pretrained".to_string(), dir);
    args.insert("batch_size".to_string(), "1".to_string());
    if let Some(m) = std::env::args().nth(2) {
        args.insert("max_length".to_string(), m);
    }
    let m = rubric::model::load("mistralrs", &args).unwrap();
    for words in [1usize, 8, 25, 100, 300] {
        let ctx = vec!["word"; words].join(" ");
        let reqs: Vec<(String, String)> = (0..6)
            .map(|i| (format!("{ctx} {i}"), " x".to_string()))
            .collect();
        let t = Instant::now();
        m.loglikelihood(&reqs, &mut |_, _| Ok(())).unwrap();
        let one = t.elapsed().as_secs_f64() / 6.0;
        let reqs2: Vec<(String, String)> = (0..6)
            .map(|i| (format!("{ctx} {i}"), " x y".to_string()))
            .collect();
        let t = Instant::now();
        m.loglikelihood(&reqs2, &mut |_, _| Ok(())).unwrap();
        let raw = t.elapsed().as_secs_f64() / 6.0;
        eprintln!(
            "{words:4} words: last-position {:.1} ms, raw logits {:.1} ms",
            one * 1000.0,
            raw * 1000.0
        );
    }
}
