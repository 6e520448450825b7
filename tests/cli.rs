//! The `deepnet` binary: summaries, a short training run, eval and predict, and every error path
//! exits non-zero with a message and without a panic.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

fn deepnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepnet"))
        .args(args)
        .output()
        .expect("deepnet runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean failure: non-zero exit, a message containing `needle`, no panic.
fn assert_fails_with(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
}

/// A run directory trained once for all the tests of this file (1 epoch on 600 images).
fn trained_run() -> &'static Path {
    static RUN: OnceLock<tempfile::TempDir> = OnceLock::new();
    RUN.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let o = deepnet(&[
            "train",
            "lenet5",
            "--data",
            common::fixture_dir().to_str().unwrap(),
            "--epochs",
            "1",
            "--limit-train",
            "600",
            "--val-size",
            "100",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "train failed: {}", stderr(&o));
        assert!(stdout(&o).contains("test: 500 images"), "{}", stdout(&o));
        tmp
    })
    .path()
}

fn run_dir() -> std::path::PathBuf {
    trained_run().join("run")
}

#[test]
fn summary_reports_the_reference_parameter_counts() {
    let o = deepnet(&["summary", "lenet5"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("parameters used by the forward pass: 61,706"),
        "{out}"
    );
    assert!(out.contains("conv1") && out.contains("6x28x28"), "{out}");
    let o = deepnet(&["summary", "lenet5-1998"]);
    let out = stdout(&o);
    assert!(out.contains("parameters of the model: 60,000"), "{out}");
    assert!(out.contains("16x10x10"), "{out}");
}

/// Multiply-adds at 224x224 within 1% of torchvision's GFLOPS figures (REFERENCE.md), and the
/// parameter counts with and without GoogLeNet's auxiliary heads.
#[test]
fn summary_mult_adds_match_torchvision() {
    for (model, gmacs, params) in [
        ("vgg16", 15.47, "138,357,544"),
        ("resnet18", 1.81, "11,689,512"),
        ("googlenet", 1.50, "13,004,888"),
    ] {
        let o = deepnet(&["summary", model]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        let line = out
            .lines()
            .find(|l| l.starts_with("total mult-adds:"))
            .expect("a total line");
        let macs: f64 = line
            .split_whitespace()
            .nth(2)
            .unwrap()
            .replace(',', "")
            .parse()
            .unwrap();
        let rel = (macs / 1e9 - gmacs).abs() / gmacs;
        assert!(
            rel < 0.01,
            "{model}: {macs} mult-adds vs torchvision's {gmacs} G"
        );
        assert!(
            out.contains(&format!("parameters of the model: {params}")),
            "{out}"
        );
    }
    let out = stdout(&deepnet(&["summary", "googlenet"]));
    assert!(
        out.contains("parameters used by the forward pass: 6,624,904"),
        "{out}"
    );
}

#[test]
fn summary_takes_another_input_size() {
    let o = deepnet(&[
        "summary",
        "resnet18",
        "--input",
        "3x64x64",
        "--num-classes",
        "10",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("input: 3x64x64") && out.contains("512x2x2"),
        "{out}"
    );
    assert_fails_with(
        &deepnet(&["summary", "resnet18", "--input", "3x64"]),
        "not CxHxW",
    );
    assert_fails_with(
        &deepnet(&["summary", "resnet18", "--input", "1x64x64"]),
        "takes 3 input channels",
    );
}

#[test]
fn unknown_model_is_refused() {
    assert_fails_with(&deepnet(&["summary", "lenet6"]), "unknown model 'lenet6'");
}

#[test]
fn eval_prints_accuracy_and_confusion_matrix() {
    let o = deepnet(&["eval", run_dir().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("accuracy") && out.contains("confusion matrix"),
        "{out}"
    );
    assert!(out.contains("Ankle boot"), "{out}");
}

#[test]
fn predict_converts_colour_and_size() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("shoe.png");
    // A 40x30 colour picture: predict must convert it to 28x28 grey.
    let pic = image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])
    });
    pic.save(&img).unwrap();
    let o = deepnet(&[
        "predict",
        run_dir().to_str().unwrap(),
        img.to_str().unwrap(),
        "-k",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().filter(|l| l.contains('%')).count(), 2, "{out}");
}

#[test]
fn text_file_as_image_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let txt = tmp.path().join("notes.png");
    std::fs::write(&txt, "just some text").unwrap();
    let o = deepnet(&[
        "predict",
        run_dir().to_str().unwrap(),
        txt.to_str().unwrap(),
    ]);
    assert_fails_with(&o, "not a readable image");
    assert_fails_with(&o, "notes.png");
}

#[test]
fn truncated_idx_is_a_clear_error() {
    let raw = common::raw_copy_of_fixture();
    let path = raw.path().join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..5000]).unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = deepnet(&[
        "train",
        "lenet5",
        "--data",
        raw.path().to_str().unwrap(),
        "--out",
        out.path().join("r").to_str().unwrap(),
    ]);
    assert_fails_with(&o, "truncated");
    assert_fails_with(&o, "train-images-idx3-ubyte");
    assert!(
        !out.path().join("r").exists(),
        "nothing is created for bad data"
    );
}

#[test]
fn missing_data_directory_is_a_clear_error() {
    let o = deepnet(&[
        "train",
        "lenet5",
        "--data",
        "/no/such/data",
        "--out",
        "/tmp/never",
    ]);
    assert_fails_with(&o, "/no/such/data: data directory does not exist");
}

#[test]
fn checkpoint_of_another_model_is_refused_and_nothing_is_overwritten() {
    let dir = run_dir();
    let ckpt = dir.join("checkpoint.safetensors");
    let before = std::fs::read(&ckpt).unwrap();
    let d = dir.to_str().unwrap();
    assert_fails_with(
        &deepnet(&["eval", d, "--model", "lenet5-1998"]),
        "not of lenet5-1998",
    );
    assert_fails_with(
        &deepnet(&["train", "lenet5-1998", "--resume", d, "--epochs", "2"]),
        "holds a run of lenet5, not lenet5-1998",
    );
    // Training into an existing run directory is refused too.
    assert_fails_with(
        &deepnet(&[
            "train",
            "lenet5",
            "--data",
            common::fixture_dir().to_str().unwrap(),
            "--out",
            d,
        ]),
        "already holds a run",
    );
    assert_eq!(
        before,
        std::fs::read(&ckpt).unwrap(),
        "checkpoint must be untouched"
    );
}

#[test]
fn weights_that_do_not_fit_name_the_tensor() {
    // A checkpoint file whose tensors belong to another architecture: take the lenet5 weights
    // and relabel the metadata as lenet5-1998.
    let tmp = tempfile::tempdir().unwrap();
    let src = run_dir().join("checkpoint.safetensors");
    let bytes = std::fs::read(&src).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    let header = header.replace(r#"\"model\":\"lenet5\""#, r#"\"model\":\"lenet5-1998\""#);
    assert!(header.contains("lenet5-1998"), "metadata rewritten");
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    let forged = tmp.path().join("forged.safetensors");
    std::fs::write(&forged, out).unwrap();
    let o = deepnet(&[
        "eval",
        forged.to_str().unwrap(),
        "--data",
        common::fixture_dir().to_str().unwrap(),
    ]);
    assert_fails_with(&o, "do not fit this model");
}

/// A build without the `cuda` feature says how to get it; a device that is not one is refused
/// by the argument parser.
#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_device_explains_itself() {
    let o = deepnet(&["eval", run_dir().to_str().unwrap(), "--device", "cuda:1"]);
    assert_fails_with(
        &o,
        "built without CUDA; build it with scripts/cuda_build.sh",
    );
    let o = deepnet(&["eval", run_dir().to_str().unwrap(), "--device", "gpu"]);
    assert_fails_with(&o, "use cpu, wgpu, cuda or cuda:N");
}

#[test]
fn bad_arguments_are_refused() {
    let d = common::fixture_dir();
    let o = deepnet(&[
        "train",
        "lenet5",
        "--data",
        d.to_str().unwrap(),
        "--epochs",
        "0",
        "--out",
        "/tmp/x",
    ]);
    assert_fails_with(&o, "--epochs");
    let o = deepnet(&["train", "lenet5", "--epochs", "abc"]);
    assert!(!o.status.success());
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn gradients_writes_table_csv_and_picture() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g");
    let o = deepnet(&[
        "gradients",
        "--steps",
        "20",
        "--hidden",
        "8",
        "--batch",
        "2",
        "--curve",
        "rnn:normal:0.5",
        "--curve",
        "lstm:orthogonal:1:3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(table.contains("rnn h normal x0.5"), "{table}");
    assert!(table.contains("lstm c orth x1 fb3"), "{table}");
    let csv = std::fs::read_to_string(out.join("gradients.csv")).unwrap();
    assert_eq!(csv.lines().count(), 21, "header + one row per step");
    // Radius 0.5: the RNN's gradient at t = 1 is far below the one at t = T.
    let first: f64 = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let last: f64 = csv
        .lines()
        .nth(20)
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(first < last * 1e-3, "first {first}, last {last}");
    assert!(std::fs::metadata(out.join("gradients.png")).unwrap().len() > 1000);
    assert!(out.join("gradients.json").exists());
}

#[test]
fn gradients_refuses_a_bad_curve_spec() {
    let o = deepnet(&["gradients", "--curve", "lstm:sideways:1"]);
    assert_fails_with(&o, "unknown init");
    let o = deepnet(&["gradients", "--steps", "1"]);
    assert_fails_with(&o, "at least 2 steps");
}

/// Theoretical receptive fields: ResNet-18's last convolution sees 435 pixels, VGG-16's 196,
/// AlexNet's conv5 163, LeNet-5's conv3 the whole 32x32 padded input (each (k - 1)·jump added
/// along the longest path).
#[test]
fn summary_reports_receptive_fields() {
    for (model, layer, rf) in [
        ("resnet18", "layer4.1.conv2", 435),
        ("vgg16", "features.12", 196),
        ("alexnet", "features.10", 163),
        ("lenet5", "conv3", 32),
    ] {
        let out = stdout(&deepnet(&["summary", model]));
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(layer))
            .unwrap_or_else(|| panic!("{model} has no {layer}: {out}"));
        let got: usize = line.split_whitespace().last().unwrap().parse().unwrap();
        assert_eq!(got, rf, "{model} {layer}: {line}");
    }
}

#[test]
fn visualize_draws_filters_and_feature_maps() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_dir();
    let filters = tmp.path().join("f.png");
    let o = deepnet(&[
        "visualize",
        "filters",
        run.to_str().unwrap(),
        "--out",
        filters.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // conv1: 6 filters of 5x5, 3 per row, each weight 12x12 pixels, 2-pixel gaps.
    let img = image::open(&filters).unwrap();
    assert_eq!((img.width(), img.height()), (3 * 62 + 2, 2 * 62 + 2));
    let pic = tmp.path().join("x.png");
    image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * y) % 256) as u8]))
        .save(&pic)
        .unwrap();
    let out_dir = tmp.path().join("acts");
    let o = deepnet(&[
        "visualize",
        "activations",
        run.to_str().unwrap(),
        pic.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // LeNet-5's stages: 28x28, 14x14, 10x10, 5x5, 1x1.
    let files: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(files.len(), 5, "{files:?}");
    assert!(
        files[0].ends_with("6x28x28.png") && files[4].ends_with("120x1x1.png"),
        "{files:?}"
    );
    for f in &files {
        assert!(image::open(f).is_ok(), "{f}");
    }
    let bad = tmp.path().join("bad.png");
    std::fs::write(&bad, b"not a picture").unwrap();
    let o = deepnet(&[
        "visualize",
        "activations",
        run.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_fails_with(&o, "not a readable image");
}
