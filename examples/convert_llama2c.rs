//! Convert a llama2.c checkpoint folder (model .bin + tokenizer .bin) into an HF folder:
//! `cargo run --release --example convert_llama2c -- ../shared/data/models/stories260K OUT`.

fn main() {
    let mut args = std::env::args().skip(1);
    let (src, out) = (
        args.next().expect("usage: convert_llama2c SRC OUT"),
        args.next().expect("usage: convert_llama2c SRC OUT"),
    );
    let src = std::path::Path::new(&src);
    let find = |suffix: &str| {
        std::fs::read_dir(src)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .expect("file in SRC")
    };
    let (model, tok) = (find("K.bin"), find("tok512.bin"));
    rubric::model::llama2c::convert(&model, &tok, std::path::Path::new(&out)).expect("conversion");
    println!("wrote {out}");
}
