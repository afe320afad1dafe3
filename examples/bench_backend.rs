//! Time the mistralrs backend on raw requests: `cargo run --release --example bench_backend -- MODEL_DIR N`.

use std::collections::BTreeMap;
use std::time::Instant;

use rubric::model::LanguageModel;

fn main() {
    let mut a = std::env::args().skip(1);
    let dir = a.next().expect("MODEL_DIR");
    let n: usize = a.next().and_then(|x| x.parse().ok()).unwrap_or(20);
    let mut args = BTreeMap::new();
    args.insert("pretrained".to_string(), dir);
    let t = Instant::now();
    let m = rubric::model::load("mistralrs", &args).unwrap();
    eprintln!("load {:.2}s", t.elapsed().as_secs_f64());
    let ctx = "it 's a charming and often affecting journey . \nQuestion: Is this sentence positive or negative?\nAnswer:";
    let mut reqs = Vec::new();
    for i in 0..n {
        let c = format!("{} {ctx}", (b'a' + (i % 26) as u8) as char);
        reqs.push((c.clone(), " negative".to_string()));
        reqs.push((c, " positive".to_string()));
    }
    let t = Instant::now();
    m.loglikelihood(&reqs, &mut |_, _| Ok(())).unwrap();
    let s = t.elapsed().as_secs_f64();
    eprintln!(
        "{} loglikelihood requests in {s:.2}s = {:.4} s/request",
        reqs.len(),
        s / reqs.len() as f64
    );
}
