//! Write the test-built Llama model (`rubric::model::tiny`) into a folder, for the Python
//! golden-file generators: `cargo run --release --example make_tiny_model -- DIR`.

fn main() {
    let dir = std::env::args().nth(1).expect("usage: make_tiny_model DIR");
    rubric::model::tiny::write(
        std::path::Path::new(&dir),
        rubric::model::tiny::TinySpec::default(),
    )
    .expect("writing the model");
    println!("wrote {dir}");
}
