//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The committed Fashion-MNIST subset (2,000 train / 500 test images, gzipped IDX).
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist-subset")
}

/// Copies the fixture into a fresh temporary directory, decompressed (raw IDX), so a test can
/// damage files without touching the committed ones.
pub fn raw_copy_of_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let bytes = deepnet::io::idx::read_maybe_gzip(&fixture_dir().join(format!("{name}.gz")))
            .expect("fixture readable");
        std::fs::write(dir.path().join(name), bytes).expect("write copy");
    }
    dir
}

/// The tensors of the checkpoint in the run directory `dir`, name by name, as raw bytes (the
/// metadata, which holds timings, left out): what "the same weights, bit for bit" compares.
pub fn checkpoint_tensors(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(dir.join("checkpoint.safetensors")).expect("checkpoint readable");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("a safetensors file");
    let mut out: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.data().to_vec()))
        .collect();
    out.sort();
    out
}

/// Runs the `deepnet` binary with `args`.
pub fn deepnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepnet"))
        .args(args)
        .output()
        .expect("deepnet runs")
}

/// What a run printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a run printed on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A clean failure: non-zero exit, exactly one `error:` line, containing `needle`, no panic.
pub fn assert_fails_cleanly(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
}

/// Trains LeNet-5 for one epoch on the fixture into `out` (a run of another task, for the
/// commands that must refuse it).
pub fn train_image_run(out: &Path) -> Output {
    deepnet(&[
        "train",
        "lenet5",
        "--data",
        fixture_dir().to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ])
}
