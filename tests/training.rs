//! End-to-end training on the committed Fashion-MNIST subset: the loss falls, accuracy beats
//! chance by a wide margin, checkpoints round-trip exactly, and a resumed run equals an
//! uninterrupted one.

mod common;

use std::path::Path;

use burn::prelude::*;
use deepnet::data::{Augment, DatasetKind, FashionMnist, ImageBatcher, Split};
use deepnet::train::checkpoint::{load_weights, resolve_checkpoint};
use deepnet::train::run::{resume_run, start_run, TrainRequest};
use deepnet::train::{
    read_checkpoint_meta, Observer, OptimizerKind, Schedule, Silent, TrainConfig,
};
use deepnet::vision::Lenet5Config;

/// Stops a run after its first checkpoint, as a crash or Ctrl-C would.
struct StopAfterFirstEpoch;

impl Observer for StopAfterFirstEpoch {
    fn keep_going(&mut self) -> bool {
        false
    }
}

fn request(out: &Path, epochs: usize) -> TrainRequest {
    TrainRequest {
        model: "lenet5".into(),
        data_dir: common::fixture_dir(),
        dataset: DatasetKind::FashionMnist,
        train: TrainConfig {
            epochs,
            batch_size: 32,
            lr: 2e-3,
            optimizer: OptimizerKind::Adam,
            momentum: 0.9,
            weight_decay: 0.0,
            schedule: Schedule::Cosine { min_lr: 1e-4 },
            clip_norm: Some(5.0),
            seed: 7,
            val_size: 200,
            // Augmented, so the resume tests also show that augmentation is reproducible.
            augment: Augment::FlipShift,
        },
        limit_train: 0,
        out: out.to_path_buf(),
    }
}

/// Logits of the checkpoint in `dir` on the first 64 test images.
fn logits_of(dir: &Path) -> Vec<f32> {
    let device = Device::flex();
    let test = FashionMnist::load(common::fixture_dir(), Split::Test).unwrap();
    let model = load_weights(
        Lenet5Config::new().init(&device),
        &resolve_checkpoint(dir).unwrap(),
    )
    .unwrap();
    let batcher = ImageBatcher::new(device, DatasetKind::FashionMnist.normalization());
    let idx: Vec<usize> = (0..64).collect();
    let batch = batcher.batch(&test, &idx);
    model
        .forward(batch.images)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn lenet5_learns_checkpoints_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let outcome = start_run(&request(&full, 3), &Device::flex(), &mut Silent).unwrap();

    // Learns: loss falls epoch over epoch, accuracy far above the 10% of chance.
    let h = &outcome.history;
    assert_eq!(h.len(), 3);
    assert!(h[2].train_loss < h[0].train_loss * 0.8, "{h:?}");
    assert!(
        outcome.test.accuracy > 0.6,
        "test accuracy {}",
        outcome.test.accuracy
    );
    assert_eq!(outcome.test.count, 500);

    // The run directory is complete and self-describing.
    for f in [
        "config.json",
        "metrics.jsonl",
        "checkpoint.safetensors",
        "optimizer-e0003.bpk",
        "report/training_curve.png",
        "report/confusion_matrix.png",
        "report/test_report.json",
    ] {
        assert!(full.join(f).is_file(), "{f} missing");
    }
    let meta = read_checkpoint_meta(&full.join("checkpoint.safetensors")).unwrap();
    assert_eq!(meta.state.epoch, 3);
    assert_eq!(meta.run.model, "lenet5");

    // Checkpoint round trip: the evaluation of the reloaded weights matches the run's own.
    let again = deepnet::train::run::eval_checkpoint(&full, None, None, &Device::flex()).unwrap();
    assert_eq!(again.confusion, outcome.test.confusion);

    // Resume: a 3-epoch run stopped after epoch 1 and continued equals 3 epochs straight
    // (same data order, same schedule, same optimizer state).
    let split = tmp.path().join("split");
    let stopped = start_run(
        &request(&split, 3),
        &Device::flex(),
        &mut StopAfterFirstEpoch,
    )
    .unwrap();
    assert_eq!(stopped.history.len(), 1);
    let resumed = resume_run(&split, None, Some("lenet5"), &Device::flex(), &mut Silent).unwrap();
    assert_eq!(resumed.history.len(), 3);
    let a = logits_of(&full);
    let b = logits_of(&split);
    let max_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_diff < 1e-4,
        "resumed run differs from the straight one by {max_diff}"
    );
}

#[test]
fn lenet5_1998_trains_on_the_subset() {
    let tmp = tempfile::tempdir().unwrap();
    let mut req = request(&tmp.path().join("classic"), 2);
    req.model = "lenet5-1998".into();
    let outcome = start_run(&req, &Device::flex(), &mut Silent).unwrap();
    assert!(
        outcome.test.accuracy > 0.5,
        "test accuracy {}",
        outcome.test.accuracy
    );
    assert!(outcome.history[1].train_loss < outcome.history[0].train_loss);
}

#[test]
fn refuses_to_overwrite_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut req = request(&dir, 1);
    req.limit_train = 300;
    start_run(&req, &Device::flex(), &mut Silent).unwrap();
    let before = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    let err = start_run(&req, &Device::flex(), &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already holds a run"), "{err}");
    assert_eq!(
        before,
        std::fs::read(dir.join("checkpoint.safetensors")).unwrap()
    );
}

#[test]
fn divergence_stops_with_a_clear_error_and_keeps_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut req = request(&dir, 2);
    req.limit_train = 400;
    // Epoch 1 trains normally; from epoch 2 the step schedule multiplies the rate by 1e12,
    // which blows the weights up within a few steps.
    req.train.schedule = Schedule::Step {
        step_size: 1,
        gamma: 1e12,
    };
    req.train.clip_norm = None;
    let err = start_run(&req, &Device::flex(), &mut Silent);
    match err {
        Err(deepnet::Error::Diverged { epoch, .. }) => assert_eq!(epoch, 2),
        Err(other) => panic!("expected divergence, got: {other}"),
        Ok(_) => panic!("a learning rate of 2e9 must diverge"),
    }
    // The epoch-1 checkpoint is intact and loads.
    let meta = read_checkpoint_meta(&dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(meta.state.epoch, 1);
    assert!(logits_of(&dir).iter().all(|v| v.is_finite()));
}
