//! The character language model on the English part of the committed fortunes extract
//! (`tests/data/fortunes-extract`, about 3,400 training characters): a short run, its report
//! against the Kneser-Ney baseline, reproducible generation, and every bad input of
//! `deepnet generate` as one error line.

mod common;

use common::{assert_fails_cleanly, deepnet, stderr, stdout};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn extract() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fortunes-extract")
}

/// One small run shared by the tests of this file.
fn trained() -> PathBuf {
    static RUN: OnceLock<tempfile::TempDir> = OnceLock::new();
    RUN.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let o = deepnet(&[
            "lm-train",
            "--fortunes",
            extract().to_str().unwrap(),
            "--out",
            tmp.path().join("run").to_str().unwrap(),
            "--epochs",
            "3",
            "--hidden-size",
            "32",
            "--embed-size",
            "16",
            "--streams",
            "4",
            "--bptt",
            "25",
            "--min-char-count",
            "2",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("Kneser-Ney 5-gram"), "{out}");
        tmp
    })
    .path()
    .join("run")
}

#[test]
fn the_report_compares_with_kneser_ney_on_the_same_text() {
    let run = trained();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report/lm_test.json")).unwrap()).unwrap();
    let v = report["vocab_size"].as_f64().unwrap();
    for key in [
        "rnn_valid_bpc",
        "rnn_test_bpc",
        "kn_valid_bpc",
        "kn_test_bpc",
    ] {
        let bpc = report[key].as_f64().unwrap();
        // Finite, positive, and below a uniform guess over the vocabulary (plus a margin for
        // a 3-epoch network).
        assert!(bpc > 0.0 && bpc < v.log2() + 0.5, "{key} = {bpc}");
    }
    // The 5-gram model beats the uniform guess outright.
    assert!(report["kn_test_bpc"].as_f64().unwrap() < v.log2() - 1.0);
    let sample = std::fs::read_to_string(run.join("report/sample.txt")).unwrap();
    assert!(
        sample.starts_with("The ") && sample.chars().count() == 404,
        "{sample}"
    );
    // Three epochs, each with a validation figure in bits per character.
    let lines = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);
    assert!(lines.contains("bits_per_char"));
}

#[test]
fn generation_is_reproducible_with_the_seed_and_takes_unseen_characters() {
    let run = trained();
    let run = run.to_str().unwrap();
    let gen = |seed: &str| {
        let o = deepnet(&[
            "generate",
            run,
            "--prompt",
            "Zażółć ☃ the",
            "--length",
            "80",
            "--seed",
            seed,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let a = gen("5");
    assert_eq!(a, gen("5"));
    assert_ne!(a, gen("6"));
    assert!(a.starts_with("Zażółć ☃ the"));
    assert_eq!(
        a.trim_end_matches('\n').chars().count(),
        "Zażółć ☃ the".chars().count() + 80
    );
    // An empty prompt starts a new entry.
    let o = deepnet(&["generate", run, "--length", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_generation_requests_fail_with_one_line() {
    let run = trained();
    let run = run.to_str().unwrap();
    assert_fails_cleanly(
        &deepnet(&["generate", run, "--temperature", "0"]),
        "--temperature",
    );
    assert_fails_cleanly(
        &deepnet(&["generate", run, "--temperature", "-1"]),
        "--temperature",
    );
    assert_fails_cleanly(
        &deepnet(&["generate", run, "--temperature", "nan"]),
        "--temperature",
    );
    assert_fails_cleanly(&deepnet(&["generate", run, "--length", "0"]), "--length");
    let huge = "x".repeat(70_000);
    assert_fails_cleanly(&deepnet(&["generate", run, "--prompt", &huge]), "64 KiB");
    assert_fails_cleanly(&deepnet(&["generate", "/nonexistent/run"]), "nonexistent");
    // A language too few characters for the streams, a language not in the corpus.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let fortunes = extract();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "lm-train",
            "--fortunes",
            fortunes.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        deepnet(&args)
    };
    assert_fails_cleanly(&train(&["--language", "xx"]), "not in the corpus");
    assert_fails_cleanly(&train(&["--streams", "100000"]), "too few");
    assert_fails_cleanly(&train(&["--bptt", "0"]), "--bptt");
}

#[test]
fn an_image_run_cannot_generate() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("img");
    let o = common::train_image_run(&run);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_fails_cleanly(
        &deepnet(&["generate", run.to_str().unwrap()]),
        "not a character language model",
    );
}
