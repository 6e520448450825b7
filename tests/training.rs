//! End-to-end training on the committed Fashion-MNIST subset: the loss falls, accuracy beats
//! chance by a wide margin, checkpoints round-trip exactly, and a resumed run equals an
//! uninterrupted one.

mod common;

use std::path::Path;

use burn::prelude::*;
use deepnet::data::{Augment, DatasetKind, FashionMnist, ImageBatch, InMemoryImages, Split};
use deepnet::io::tfevents::{read_events, Event, EventKind};
use deepnet::models::vision::Lenet5Config;
use deepnet::models::vision::ModelOptions;
use deepnet::tasks::classification::{
    eval_checkpoint, resume_run, start_run, DataRequest, TrainRequest,
};
use deepnet::train::checkpoint::{load_weights, resolve_checkpoint};
use deepnet::train::{
    read_checkpoint_meta, EpochRecord, Observer, OptimizerKind, Schedule, Silent, TrainConfig,
};

/// burn's random generator is one per process: tests that train at the same time in this
/// process would draw each other's initial weights and dropout masks. Each test holds this
/// lock while it trains.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops a run after its first checkpoint, as a crash or Ctrl-C would.
struct StopAfterFirstEpoch;

impl Observer for StopAfterFirstEpoch {
    fn keep_going(&mut self) -> bool {
        false
    }
}

/// The subset's images: all 2,000 (or the first `limit_train`), `val_size` for validation.
fn mnist(limit_train: usize, val_size: usize) -> DataRequest {
    DataRequest::Mnist {
        dir: common::fixture_dir(),
        dataset: DatasetKind::FashionMnist,
        val_size: Some(val_size),
        // Augmented, so the resume tests also show that augmentation is reproducible.
        augment: Augment::FlipShift,
        limit_train,
        classes: Vec::new(),
        per_class: None,
        sample_seed: 0,
    }
}

fn request(out: &Path, epochs: usize) -> TrainRequest {
    TrainRequest {
        model: "lenet5".into(),
        data: mnist(0, 200),
        model_options: ModelOptions::default(),
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
            ..TrainConfig::default()
        },
        out: out.to_path_buf(),
    }
}

fn loss(r: &EpochRecord) -> f64 {
    r.train.get("loss").unwrap()
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
    let source = InMemoryImages {
        data: test,
        norm: DatasetKind::FashionMnist.normalization(),
        augment: Augment::None,
    };
    let idx: Vec<usize> = (0..64).collect();
    let batch = ImageBatch::from_source(&source, &idx, None, &device).unwrap();
    model
        .forward(batch.images)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn lenet5_learns_checkpoints_and_resumes_exactly() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let outcome = start_run(&request(&full, 3), None, &Device::flex(), &mut Silent).unwrap();

    // Learns: loss falls epoch over epoch, accuracy far above the 10% of chance.
    let h = &outcome.history;
    assert_eq!(h.len(), 3);
    assert!(loss(&h[2]) < loss(&h[0]) * 0.8, "{h:?}");
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
    // TensorBoard: a loss and a learning rate per batch, the epoch metrics in both folders.
    let events = |sub: &str| {
        let dir = full.join("tensorboard").join(sub);
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "{sub}");
        read_events(&files[0].path()).unwrap()
    };
    let scalars = |events: &[Event], tag: &str| -> Vec<(i64, f32)> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Scalars(v) => {
                    v.iter().find(|(t, _)| t == tag).map(|(_, x)| (e.step, *x))
                }
                _ => None,
            })
            .collect()
    };
    let train_events = events("train");
    let steps_per_epoch = (1800usize).div_ceil(32) as i64;
    let losses = scalars(&train_events, "step/loss");
    assert_eq!(losses.len() as i64, 3 * steps_per_epoch);
    assert_eq!(losses[0].0, 1);
    let val_acc = scalars(&events("validation"), "epoch/accuracy");
    assert_eq!(
        val_acc.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![steps_per_epoch, 2 * steps_per_epoch, 3 * steps_per_epoch]
    );
    assert_eq!(val_acc[2].1, h[2].val.get("accuracy").unwrap() as f32);
    let meta = read_checkpoint_meta(&full.join("checkpoint.safetensors")).unwrap();
    assert_eq!(meta.state.epoch, 3);
    assert_eq!(meta.run["model"], "lenet5");

    // Checkpoint round trip: the evaluation of the reloaded weights matches the run's own.
    let again = eval_checkpoint(&full, None, None, &Device::flex()).unwrap();
    assert_eq!(again.confusion, outcome.test.confusion);

    // Resume: a 3-epoch run stopped after epoch 1 and continued equals 3 epochs straight
    // (same data order, same schedule, same optimizer state).
    let split = tmp.path().join("split");
    let stopped = start_run(
        &request(&split, 3),
        None,
        &Device::flex(),
        &mut StopAfterFirstEpoch,
    )
    .unwrap();
    assert_eq!(stopped.history.len(), 1);
    let resumed = resume_run(&split, None, Some("lenet5"), &Device::flex(), &mut Silent).unwrap();
    assert_eq!(resumed.history.len(), 3);
    assert!(
        common::checkpoint_tensors(&full) == common::checkpoint_tensors(&split),
        "the resumed run must end with the same weights, bit for bit"
    );
    assert_eq!(logits_of(&full), logits_of(&split));
    // The resumed run's records equal the straight run's (timings aside).
    for (a, b) in h.iter().zip(&resumed.history) {
        assert_eq!((a.epoch, &a.train, &a.val), (b.epoch, &b.train, &b.val));
    }
}

#[test]
fn lenet5_1998_trains_on_the_subset() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut req = request(&tmp.path().join("classic"), 2);
    req.model = "lenet5-1998".into();
    let outcome = start_run(&req, None, &Device::flex(), &mut Silent).unwrap();
    assert!(
        outcome.test.accuracy > 0.5,
        "test accuracy {}",
        outcome.test.accuracy
    );
    assert!(loss(&outcome.history[1]) < loss(&outcome.history[0]));
}

#[test]
fn refuses_to_overwrite_a_run() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut req = request(&dir, 1);
    req.data = mnist(300, 200);
    start_run(&req, None, &Device::flex(), &mut Silent).unwrap();
    let before = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    let err = start_run(&req, None, &Device::flex(), &mut Silent)
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
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut req = request(&dir, 2);
    req.data = mnist(400, 200);
    // Epoch 1 trains normally; from epoch 2 the step schedule multiplies the rate by 1e12,
    // which blows the weights up within a few steps.
    req.train.schedule = Schedule::Step {
        step_size: 1,
        gamma: 1e12,
    };
    req.train.clip_norm = None;
    let err = start_run(&req, None, &Device::flex(), &mut Silent);
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

/// Stops at the first checkpoint it is asked about, mid-epoch or not.
struct StopAtFirstCheckpoint;

impl Observer for StopAtFirstCheckpoint {
    fn keep_going(&mut self) -> bool {
        false
    }
}

/// A model with dropout (vgg-small: dropout 0.5 before its last layer) stopped in the middle
/// of an epoch, twice, and resumed ends with the same weights, bit for bit, as a run that never
/// stopped: the order, the augmentation and the dropout masks of the batches after the resume
/// are those of the uninterrupted run.
#[test]
fn dropout_model_resumed_mid_epoch_is_bit_identical() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let req = |out: &Path| {
        let mut r = request(out, 2);
        r.model = "vgg-small".into();
        r.data = mnist(300, 60);
        r.train.checkpoint_every = Some(3);
        r.train.optimizer = OptimizerKind::Sgd;
        r.train.lr = 0.05;
        r
    };
    let full = tmp.path().join("full");
    let straight = start_run(&req(&full), None, &Device::flex(), &mut Silent).unwrap();
    assert_eq!(straight.history.len(), 2);

    let split = tmp.path().join("split");
    // 240 training images in batches of 32: 8 per epoch, checkpoints at steps 3 and 6 of
    // epoch 1. The first stop is at step 3, the second (after a resume) at step 6.
    let first = start_run(
        &req(&split),
        None,
        &Device::flex(),
        &mut StopAtFirstCheckpoint,
    )
    .unwrap();
    assert!(first.history.is_empty());
    let meta = read_checkpoint_meta(&split.join("checkpoint.safetensors")).unwrap();
    assert_eq!((meta.state.epoch, meta.state.global_step), (0, 3));
    assert_eq!(meta.state.partial.as_ref().unwrap().batches_done, 3);
    resume_run(
        &split,
        None,
        None,
        &Device::flex(),
        &mut StopAtFirstCheckpoint,
    )
    .unwrap();
    let meta = read_checkpoint_meta(&split.join("checkpoint.safetensors")).unwrap();
    assert_eq!(meta.state.global_step, 6);
    let done = resume_run(&split, None, None, &Device::flex(), &mut Silent).unwrap();

    assert!(
        common::checkpoint_tensors(&full) == common::checkpoint_tensors(&split),
        "the resumed run must end with the same weights, bit for bit"
    );
    for (a, b) in straight.history.iter().zip(&done.history) {
        assert_eq!((a.epoch, &a.train, &a.val), (b.epoch, &b.train, &b.val));
    }
    // Exactly one metrics line per finished epoch.
    let lines = std::fs::read_to_string(split.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2);
}
