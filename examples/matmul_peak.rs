//! This CPU's matrix-multiply peak through candle (the kernels rubric's pass uses), for
//! BENCHMARKS.md: f32 products of SmolLM2-135M's shapes (hidden 576, MLP 1536, vocabulary 49152)
//! with 16 to 2048 rows; prints GFLOP/s per shape and the best.
//! Run: cargo run --release --example matmul_peak

use candle_core::{Device, Tensor};

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let mut best = 0.0f64;
    println!("| rows | k | n | GFLOP/s |\n|---|---|---|---|");
    for &(k, n) in &[(576usize, 1536usize), (1536, 576), (576, 49152)] {
        let w = Tensor::randn(0f32, 1.0, (k, n), &dev)?;
        for &m in &[16usize, 64, 256, 1024, 2048] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
            x.matmul(&w)?; // warm-up
            let flop = 2.0 * (m * k * n) as f64;
            let reps = ((4e10 / flop) as usize).clamp(3, 2000);
            let t = std::time::Instant::now();
            for _ in 0..reps {
                std::hint::black_box(x.matmul(&w)?);
            }
            let gflops = flop * reps as f64 / t.elapsed().as_secs_f64() / 1e9;
            best = best.max(gflops);
            println!("| {m} | {k} | {n} | {gflops:.1} |");
        }
    }
    // gemm picks its kernels at run time (rubric enables its AVX-512 ones, Cargo.toml)
    #[cfg(target_arch = "x86_64")]
    let kernels = if std::arch::is_x86_feature_detected!("avx512f") {
        "AVX-512"
    } else if std::arch::is_x86_feature_detected!("fma") {
        "AVX2+FMA"
    } else {
        "scalar"
    };
    #[cfg(not(target_arch = "x86_64"))]
    let kernels = std::env::consts::ARCH;
    println!("\npeak: {best:.1} GFLOP/s ({kernels} kernels)");
    Ok(())
}
