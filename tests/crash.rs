//! `kill -9` at the worst moments: real `deepnet train` processes send themselves SIGKILL at
//! deterministic points of the loop (the test hook `DEEPNET_TEST_KILL_AT`), are resumed with
//! `--resume`, and must end with the same weights, bit for bit, as a run that never stopped,
//! and with exactly one `metrics.jsonl` line per finished epoch.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use deepnet::io::tfevents::{read_events, EventKind};

/// 600 images, 100 of them for validation: 10 batches of 50 per epoch, 2 epochs, a
/// checkpoint every 4 batches (at steps 4, 8, 10 (epoch end), 12, 16, 20 (epoch end)).
fn train(out: &Path, kill_at: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deepnet"));
    cmd.args(["train", "lenet5", "--data"])
        .arg(common::fixture_dir())
        .args([
            "--epochs",
            "2",
            "--limit-train",
            "600",
            "--val-size",
            "100",
            "--batch-size",
            "50",
            "--checkpoint-every",
            "4",
            "--augment",
            "flip-shift",
            "--seed",
            "3",
            "--out",
        ])
        .arg(out);
    if let Some(point) = kill_at {
        cmd.env("DEEPNET_TEST_KILL_AT", point);
    }
    cmd.output().expect("deepnet runs")
}

fn resume(out: &Path, kill_at: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deepnet"));
    cmd.args(["train", "lenet5", "--resume"]).arg(out);
    if let Some(point) = kill_at {
        cmd.env("DEEPNET_TEST_KILL_AT", point);
    }
    cmd.output().expect("deepnet runs")
}

fn assert_killed(o: &Output, point: &str) {
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGKILL),
        "expected SIGKILL at {point}, got {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

fn assert_ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `(epoch, train metrics, validation metrics)` of every line of `metrics.jsonl`.
fn records(dir: &Path) -> Vec<(u64, String, String)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["epoch"].as_u64().unwrap(),
                v["train"].to_string(),
                v["val"].to_string(),
            )
        })
        .collect()
}

/// `(step, loss)` of every `step/loss` scalar TensorBoard keeps: files in name order, and a
/// restart at step `s` drops what came before it at steps `>= s` (TensorBoard's purge).
fn board_losses(dir: &Path) -> Vec<(i64, f32)> {
    let folder = dir.join("tensorboard").join("train");
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut kept: Vec<(i64, f32)> = Vec::new();
    for f in files {
        for e in read_events(&f).unwrap() {
            match e.kind {
                EventKind::SessionStart => kept.retain(|(s, _)| *s < e.step),
                EventKind::Scalars(v) => kept.extend(
                    v.iter()
                        .filter(|(t, _)| t == "step/loss")
                        .map(|(_, x)| (e.step, *x)),
                ),
                EventKind::FileVersion(_) => {}
            }
        }
    }
    kept
}

#[test]
fn killed_runs_resume_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    assert_ok(&train(&reference, None));
    let want_weights = common::checkpoint_tensors(&reference);
    let want_records = records(&reference);
    assert_eq!(want_records.len(), 2);

    // Each scenario: where the first process dies, then where each resumed process dies.
    let scenarios: &[&[&str]] = &[
        // mid-epoch, two batches after the checkpoint at step 4
        &["step:6"],
        // inside the mid-epoch checkpoint write at step 8 (weights staged, not renamed)
        &["checkpoint-write:8"],
        // epoch 1 recorded in metrics.jsonl and TensorBoard, its checkpoint not written
        &["epoch-recorded:10"],
        // right after the epoch-1 checkpoint
        &["checkpoint-saved:10"],
        // inside the very last checkpoint write
        &["checkpoint-write:20"],
        // before the first checkpoint (started again), then again after each resume
        &["step:2", "step:5", "step:9", "epoch-recorded:20"],
    ];
    // A run killed before its first checkpoint has nothing to resume: it is started again
    // (which the run directory allows); otherwise it is resumed.
    let go_on = |dir: &Path, kill_at: Option<&str>| {
        if dir.join("checkpoint.safetensors").exists() {
            resume(dir, kill_at)
        } else {
            train(dir, kill_at)
        }
    };
    for (n, kills) in scenarios.iter().enumerate() {
        let dir = tmp.path().join(format!("run{n}"));
        for point in kills.iter() {
            assert_killed(&go_on(&dir, Some(point)), point);
        }
        assert_ok(&go_on(&dir, None));
        assert!(
            common::checkpoint_tensors(&dir) == want_weights,
            "scenario {kills:?}: weights differ"
        );
        assert_eq!(records(&dir), want_records, "scenario {kills:?}");
        // TensorBoard, reading the files in name order and honouring the restarts, sees the
        // reference run's per-batch losses, each step once.
        assert_eq!(
            board_losses(&dir),
            board_losses(&reference),
            "scenario {kills:?}"
        );
        // No temporary files are left behind, and one optimizer file, the checkpoint's.
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.contains(".tmp-")),
            "{kills:?}: {names:?}"
        );
        assert_eq!(
            names.iter().filter(|n| n.ends_with(".bpk")).count(),
            1,
            "{kills:?}: {names:?}"
        );
    }
}
