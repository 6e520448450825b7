//! Times deepnet's packed-B matrix product on the shapes of the recurrent time loop (one
//! thread's 16 batch rows against the recurrent weights), best of 9 runs: this machine is noisy.
//!
//! cargo run --release --example packed_gemm_speed

use deepnet::ops::packed_gemm::{gemm_packed, PackedB};

fn main() {
    for (m, k, n) in [
        (16, 256, 1024),
        (16, 1024, 256),
        (16, 64, 256),
        (16, 256, 64),
    ] {
        let a = vec![0.5f32; m * k];
        let w = vec![0.25f32; n * k];
        let b = PackedB::from_transposed(&w, n, k, k);
        let mut c = vec![0f32; m * n];
        let reps = 500;
        let best = (0..9)
            .map(|_| {
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    gemm_packed(m, &a, k, &b, &mut c, n, false);
                }
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min);
        let gflops = 2.0 * (m * k * n * reps) as f64 / best / 1e9;
        println!("{m}x{k}x{n} (C = A·Wᵀ): {gflops:.1} GFLOP/s on one thread");
    }
}
