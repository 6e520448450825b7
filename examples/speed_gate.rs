//! Prints the speed gate's ratios (deepnet's ops against burn's, see `tests/speed_gate/`) in
//! each configuration its thresholds were chosen from: as shipped, with the kernels capped at
//! AVX2, and with every convolution forced onto the packed path (the self-test's regression).
//!
//! cargo run --release --example speed_gate -- [PAIRS] [CONFIG...]
//! (CONFIG: auto | avx2 | packed | packed-avx2; default: all four). One JSON line per
//! configuration and workload; `bench/speed_gate.sh` turns them into a results file.

#[path = "../tests/speed_gate/gate.rs"]
mod gate;

use deepnet::ops::{set_conv_path, set_isa_limit, ConvPath, Isa};

fn main() {
    deepnet::ops::tune_allocator();
    let args: Vec<String> = std::env::args().collect();
    let isa = deepnet::ops::detected_isa();
    let pairs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(7);
    let mut configs: Vec<&str> = args.iter().skip(2).map(String::as_str).collect();
    if configs.is_empty() {
        configs = vec!["auto", "avx2", "packed", "packed-avx2"];
    }
    println!(
        "cpu isa {:?}, {} gate threads",
        deepnet::ops::detected_isa(),
        gate::THREADS
    );
    for config in configs {
        set_isa_limit(if config.ends_with("avx2") {
            Isa::Avx2
        } else {
            Isa::Avx512
        });
        set_conv_path(if config.starts_with("packed") {
            ConvPath::Packed
        } else {
            ConvPath::Auto
        });
        let results = gate::on_gate_threads(|| {
            let mut out = Vec::new();
            for make in [gate::lenet5, gate::resnet20, gate::lstm] {
                let mut w = make();
                out.push(gate::measure(&mut w, pairs));
            }
            out
        });
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for m in results {
            println!(
                "{{\"config\": \"{config}\", \"cpu_isa\": \"{isa:?}\", \"threads\": {}, \"workload\": \"{}\", \"passes\": {}, \"median_ratio\": {:.4}, \"min_ratio\": {}, \"ratios\": [{}], \"deepnet_ms\": [{}], \"burn_ms\": [{}]}}",
                gate::THREADS,
                m.name,
                m.check().is_ok(),
                m.median,
                m.min_ratio,
                list(&m.ratios),
                list(&m.ours_ms),
                list(&m.reference_ms)
            );
        }
    }
}
