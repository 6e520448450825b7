//! The hostile-but-realistic inputs of the hardening issue, one test each: every one is answered
//! with one `error:` line and a non-zero exit, never a panic, an abort or a runaway allocation.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_fails_cleanly, deepnet, fixture_dir, stderr, train_image_run};
use deepnet::io::idx::encode_idx;

/// Writes an MNIST-format directory: `n_train` training and `n_test` test images of the given
/// sides, labels cycling over the ten classes.
fn mnist_dir(dir: &Path, n_train: usize, train_side: usize, n_test: usize, test_side: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n, side) in [("train", n_train, train_side), ("t10k", n_test, test_side)] {
        let pixels: Vec<u8> = (0..n * side * side).map(|i| (i * 7 % 251) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            encode_idx(&[n, side, side], &pixels),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            encode_idx(&[n], &labels),
        )
        .unwrap();
    }
}

/// A one-epoch LeNet-5 run on the fixture, in a temporary directory (kept alive by the first).
fn trained_run() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    assert!(train_image_run(&run).status.success());
    (tmp, run)
}

fn train_on(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "lenet5",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    deepnet(&args)
}

#[test]
fn test_images_of_another_size_than_the_training_images_are_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    mnist_dir(&data, 40, 28, 10, 32);
    let o = train_on(&data, &tmp.path().join("run"), &[]);
    assert_fails_cleanly(
        &o,
        "the test images are 32x32 and the training images 28x28",
    );
    assert!(!tmp.path().join("run/checkpoint.safetensors").exists());
}

#[test]
fn empty_splits_and_no_validation_images_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    mnist_dir(&data, 40, 28, 0, 28);
    let o = train_on(&data, &tmp.path().join("run"), &[]);
    assert_fails_cleanly(&o, "the test split holds no images");
    let o = train_on(
        &fixture_dir(),
        &tmp.path().join("run0"),
        &["--val-size", "0"],
    );
    assert_fails_cleanly(&o, "--val-size");
}

#[test]
fn a_gzip_bomb_behind_a_valid_header_is_refused() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    mnist_dir(&data, 600, 28, 10, 28);
    // The valid 600-image file followed by 256 MiB of zeros: 256 KiB gzipped.
    let path = data.join("train-images-idx3-ubyte");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.resize(bytes.len() + (256 << 20), 0);
    std::fs::remove_file(&path).unwrap();
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(data.join("train-images-idx3-ubyte.gz")).unwrap(),
        flate2::Compression::best(),
    );
    enc.write_all(&bytes).unwrap();
    enc.finish().unwrap();
    drop(bytes);
    let o = train_on(&data, &tmp.path().join("run"), &[]);
    assert_fails_cleanly(
        &o,
        "holds more data than the 470400 bytes its header declares",
    );
}

#[test]
fn devices_are_not_read_as_inputs() {
    let (tmp, run) = trained_run();
    let o = deepnet(&["predict", run.to_str().unwrap(), "/dev/zero"]);
    assert_fails_cleanly(&o, "not a regular file");
    let o = deepnet(&[
        "infer",
        "--model",
        "lenet5",
        "--weights",
        run.join("checkpoint.safetensors").to_str().unwrap(),
        "--input",
        "/dev/zero",
        "--output",
        tmp.path().join("out.npy").to_str().unwrap(),
    ]);
    assert_fails_cleanly(&o, "not a regular file");
}

#[test]
fn a_npy_whose_shape_overflows_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let npy = tmp.path().join("huge.npy");
    let mut header =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2305843009213693952, 3, 32, 32), }"
            .to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    std::fs::write(&npy, bytes).unwrap();
    let run = tmp.path().join("run");
    assert!(train_image_run(&run).status.success());
    let o = deepnet(&[
        "infer",
        "--model",
        "lenet5",
        "--weights",
        run.join("checkpoint.safetensors").to_str().unwrap(),
        "--input",
        npy.to_str().unwrap(),
        "--output",
        tmp.path().join("out.npy").to_str().unwrap(),
    ]);
    assert_fails_cleanly(&o, "too large");
}

#[test]
fn summary_checks_the_input_and_the_classes_against_the_model() {
    for (model, input, needle) in [
        ("lenet5", "1x32x32", "between 28 and 31"),
        ("lenet5", "1x27x27", "between 28 and 31"),
        ("lenet5", "3x28x28", "1 input channels, not 3"),
        ("resnet18", "3x100000x100000", "between 1 and 2048"),
        ("resnet18", "3x4294967295x4294967295", "between 1 and 2048"),
        (
            "resnet18",
            "3x18446744073709551615x18446744073709551615",
            "between 1 and 2048",
        ),
    ] {
        let o = deepnet(&["summary", model, "--input", input]);
        assert_fails_cleanly(&o, needle);
    }
    let o = deepnet(&["summary", "resnet18", "--num-classes", "4000000000"]);
    assert_fails_cleanly(&o, "between 1 and 100000");
    // The bounds let the valid shapes through.
    let o = deepnet(&["summary", "lenet5", "--input", "1x31x31"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn gradients_refuse_scales_that_only_overflow() {
    for curve in ["rnn:normal:1e40", "rnn:normal:nan", "lstm:orthogonal:1:inf"] {
        let o = deepnet(&["gradients", "--curve", curve, "--steps", "5"]);
        assert_fails_cleanly(&o, "must be between");
    }
    let o = deepnet(&["gradients", "--input-std", "NaN", "--steps", "5"]);
    assert_fails_cleanly(&o, "input-std");
    // A bad --curve is named as the curve it came from.
    let o = deepnet(&["gradients", "--curve", "rnn:normal:1e40"]);
    assert_fails_cleanly(
        &o,
        "--curve: 'rnn:normal:1e40': scale must be between 0 and 1000",
    );
    // Sizes that would take gigabytes are refused before any work.
    let o = deepnet(&["gradients", "--steps", "1000000"]);
    assert_fails_cleanly(&o, "--steps");
    let o = deepnet(&[
        "gradients",
        "--steps",
        "5000",
        "--hidden",
        "4096",
        "--batch",
        "64",
    ]);
    assert_fails_cleanly(&o, "more than 2^28 state values");
}

#[test]
fn a_run_directory_in_use_by_another_process_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    // This test process plays the other deepnet: it holds the directory's lock.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(run.join(".lock"))
        .unwrap();
    lock.try_lock().unwrap();
    std::fs::write(run.join(".lock"), "4242\n").unwrap();
    let o = train_on(&fixture_dir(), &run, &[]);
    assert_fails_cleanly(&o, "in use by another deepnet process (pid 4242)");
    assert!(!run.join("config.json").exists());
    // Released (as when the holder dies, however it dies): the run goes ahead.
    lock.unlock().unwrap();
    let o = train_on(&fixture_dir(), &run, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn eval_on_other_data_keeps_the_runs_own_report() {
    let (tmp, run) = trained_run();
    let report = std::fs::read(run.join("report/test_report.json")).unwrap();
    let other = tmp.path().join("other-set");
    mnist_dir(&other, 40, 28, 20, 28);
    let o = deepnet(&[
        "eval",
        run.to_str().unwrap(),
        "--data",
        other.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(common::stdout(&o).contains("eval-other-set"));
    assert_eq!(
        std::fs::read(run.join("report/test_report.json")).unwrap(),
        report
    );
    let theirs: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.join("eval-other-set/test_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(theirs["count"], 20);
    // Other data of another size, or none, is refused.
    let small = tmp.path().join("small");
    mnist_dir(&small, 40, 20, 20, 20);
    let o = deepnet(&[
        "eval",
        run.to_str().unwrap(),
        "--data",
        small.to_str().unwrap(),
    ]);
    assert_fails_cleanly(
        &o,
        "the test images are 1x20x20 and the model was trained on 1x28x28",
    );
}

#[test]
fn resuming_refuses_flags_it_would_ignore() {
    let (_tmp, run) = trained_run();
    let r = run.to_str().unwrap();
    let o = deepnet(&[
        "train",
        "lenet5",
        "--resume",
        r,
        "--epochs",
        "2",
        "--lr",
        "0.5",
        "--batch-size",
        "7",
    ]);
    assert_fails_cleanly(&o, "--batch-size, --lr cannot change a resumed run");
    let o = deepnet(&["lm-train", "--resume", r, "--hidden-size", "8"]);
    assert_fails_cleanly(&o, "--hidden-size cannot change a resumed run");
}

#[test]
fn nonsense_float_settings_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = train_on(&fixture_dir(), &out, &["--lr", "0.01", "--min-lr", "0.1"]);
    assert_fails_cleanly(&o, "--min-lr");
    let o = train_on(&fixture_dir(), &out, &["--min-lr", "NaN"]);
    assert_fails_cleanly(&o, "--min-lr");
    let o = deepnet(&["gradients", "--forget-bias", "NaN", "--steps", "5"]);
    assert_fails_cleanly(&o, "forget-bias");
    let o = deepnet(&[
        "langid-train",
        "--test-fraction",
        "NaN",
        "--out",
        "/nonexistent/x",
    ]);
    assert_fails_cleanly(&o, "--test-fraction");
}

#[test]
fn a_run_config_naming_fewer_classes_than_its_model_has_is_refused() {
    let (tmp, run) = trained_run();
    // The run's config travels in the checkpoint's metadata; damage the copy in config.json
    // and in the checkpoint alike by rewriting the checkpoint's metadata.
    let ckpt = run.join("checkpoint.safetensors");
    let bytes = std::fs::read(&ckpt).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    let damaged = header.replacen("\\\"T-shirt/top\\\",", "", 1);
    assert_ne!(damaged, header, "the class name is in the metadata");
    let mut out = (damaged.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(damaged.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&ckpt, out).unwrap();
    let img = tmp.path().join("img.png");
    image::GrayImage::new(28, 28).save(&img).unwrap();
    let o = deepnet(&["predict", run.to_str().unwrap(), img.to_str().unwrap()]);
    assert_fails_cleanly(&o, "names 9 classes but its model has 10 outputs");
}

#[test]
fn a_damaged_checkpoint_is_detected_by_its_checksum() {
    let (_tmp, run) = trained_run();
    let r = run.to_str().unwrap();
    assert!(deepnet(&["eval", r]).status.success());
    // One flipped bit in the middle of the tensor data: still a valid safetensors file, with
    // every shape right, so only the checksum can tell.
    let ckpt = run.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&ckpt).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let at = 8 + n + (bytes.len() - 8 - n) / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&ckpt, &bytes).unwrap();
    assert!(safetensors::SafeTensors::deserialize(&bytes).is_ok());
    assert_fails_cleanly(&deepnet(&["eval", r]), "is damaged");
    assert_fails_cleanly(
        &deepnet(&["train", "lenet5", "--resume", r, "--epochs", "2"]),
        "is damaged",
    );
}
