//! The speed gate (issue 10): deepnet's ops must stay well ahead of burn's own on a LeNet-5
//! training slice, a ResNet-20 training step and an LSTM training step, measured as ratios in
//! one process (see `gate.rs`), and the gate must notice a re-introduced regression: with every
//! convolution forced onto the packed path (what made LeNet-5 2.6x slower in commit 744a392),
//! the LeNet-5 check has to fail.
//!
//! This target holds one test, so it never runs beside another (cargo runs test binaries one
//! after another); `.ci/run` runs it with the rest through `cargo test --release`. Timings mean
//! nothing in a debug build, where it returns at once; `DEEPNET_SKIP_SPEED_GATE=1` skips it
//! too (for test runs on a machine that is busy with something else).

mod gate;

use deepnet::ops::{set_conv_path, ConvPath};
use gate::Measurement;

/// Interleaved pairs per workload.
const PAIRS: usize = 7;

/// Measures `make()`'s workload; a failing check is measured once more (a burst of noise on a
/// shared machine can swing a few pairs), and the second measurement stands.
fn measure_checked(make: fn() -> gate::Workload, expect_pass: bool) -> Measurement {
    let first = gate::measure(&mut make(), PAIRS);
    if first.check().is_ok() == expect_pass {
        return first;
    }
    eprintln!("measuring again: {first}");
    gate::measure(&mut make(), PAIRS)
}

#[test]
fn deepnet_ops_stay_ahead_of_burns_and_the_gate_catches_the_packed_lenet_regression() {
    if cfg!(debug_assertions) {
        eprintln!("speed gate skipped: timings need a release build (cargo test --release)");
        return;
    }
    if std::env::var("DEEPNET_SKIP_SPEED_GATE").is_ok_and(|v| v == "1") {
        eprintln!("speed gate skipped: DEEPNET_SKIP_SPEED_GATE=1");
        return;
    }
    // SAFETY: this target holds this one test; the harness's main thread only waits for it, and
    // no worker thread has started yet.
    unsafe { deepnet::ops::tune_allocator_unchecked() };
    let (results, regression) = gate::on_gate_threads(|| {
        set_conv_path(ConvPath::Auto);
        let results: Vec<Measurement> = [gate::lenet5, gate::resnet20, gate::lstm]
            .into_iter()
            .map(|make| measure_checked(make, true))
            .collect();
        // The self-test: today's fix undone.
        set_conv_path(ConvPath::Packed);
        let regression = measure_checked(gate::lenet5, false);
        set_conv_path(ConvPath::Auto);
        (results, regression)
    });
    for m in &results {
        eprintln!("speed gate: {m}");
    }
    eprintln!("speed gate self-test (packed convolutions forced): {regression}");
    let failures: Vec<String> = results.iter().filter_map(|m| m.check().err()).collect();
    assert!(
        failures.is_empty(),
        "speed gate failed:\n{}",
        failures.join("\n")
    );
    assert!(
        regression.check().is_err(),
        "self-test: with the packed convolution path forced, LeNet-5 still passed the gate \
         ({regression}); the gate would not catch that regression"
    );
}
