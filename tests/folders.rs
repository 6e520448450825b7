//! Image folders and transfer learning through the `deepnet` binary, on a tiny folder of
//! colour PNGs of mixed sizes made here from the committed Fashion-MNIST subset: ResNet-18 is
//! trained from scratch, exported to `.pth`, and transferred from that file in both modes; a
//! frozen backbone (batch norms included) comes out unchanged, a fine-tuned one does not; eval
//! and predict apply the run's transform; every bad input of the issue gets one clear line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use deepnet::data::FashionMnist;
use deepnet::data::Split;
use deepnet::weights::StateDict;

fn deepnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepnet"))
        .args(args)
        .output()
        .expect("deepnet runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn assert_ok(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// Non-zero exit, one error line naming `needle`, no panic.
fn assert_fails_with(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    let errors = err.lines().filter(|l| l.starts_with("error")).count();
    assert_eq!(errors, 1, "one error line: {err}");
}

/// Colour PNGs of 3 Fashion-MNIST classes (sneaker, bag, trouser), `per_class` each, sizes
/// 30-70 pixels, the garment tinted on a coloured background.
fn make_folder(dir: &Path, per_class: usize, offset: usize) {
    let data = FashionMnist::load(common::fixture_dir(), Split::Train).unwrap();
    for (class, label) in [("sneaker", 7u8), ("bag", 8), ("trouser", 1)] {
        let folder = dir.join(class);
        std::fs::create_dir_all(&folder).unwrap();
        let picks = (0..data.len())
            .filter(|&i| data.labels[i] == label)
            .skip(offset)
            .take(per_class);
        for (k, i) in picks.enumerate() {
            let src = data.image(i);
            let (w, h) = (30 + (k * 7) % 41, 30 + (k * 11) % 37);
            let tint = [
                (k * 50 % 200) as f32 + 55.0,
                200.0,
                (k * 90 % 200) as f32 + 55.0,
            ];
            let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let v = src[(y as usize * 28 / h) * 28 + x as usize * 28 / w] as f32 / 255.0;
                image::Rgb(tint.map(|t| (20.0 * (1.0 - v) + t * v) as u8))
            });
            img.save(folder.join(format!("{k}.png"))).unwrap();
        }
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    train: PathBuf,
    test: PathBuf,
    scratch_run: PathBuf,
    pth: PathBuf,
}

/// The folders, a ResNet-18 trained on them from scratch (32x32 inputs, 1 epoch) and its
/// weights exported to `.pth`: shared by the tests of this file.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // A static is never dropped, so its temporary directory would outlive every run
        // (170 MB each): it lives under cargo's target directory instead, and each run removes
        // the previous run's before making its own.
        let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("folders-fixture");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let tmp = tempfile::tempdir_in(&root).unwrap();
        let train = tmp.path().join("train");
        let test = tmp.path().join("test");
        make_folder(&train, 16, 0);
        make_folder(&test, 6, 16);
        let scratch_run = tmp.path().join("scratch");
        let o = deepnet(&[
            "train",
            "resnet18",
            "--data",
            train.to_str().unwrap(),
            "--test-data",
            test.to_str().unwrap(),
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--augment",
            "crop-flip",
            "--out",
            scratch_run.to_str().unwrap(),
        ]);
        assert_ok(&o);
        assert!(stdout(&o).contains("test: 18 images"), "{}", stdout(&o));
        let pth = tmp.path().join("resnet18.pth");
        assert_ok(&deepnet(&[
            "export",
            scratch_run.to_str().unwrap(),
            "--to",
            pth.to_str().unwrap(),
        ]));
        Fixture {
            _tmp: tmp,
            train,
            test,
            scratch_run,
            pth,
        }
    })
}

fn transfer(out: &Path, mode: &str, extra: &[&str]) -> Output {
    let f = fixture();
    let mut args = vec![
        "transfer",
        "resnet18",
        "--weights",
        f.pth.to_str().unwrap(),
        "--mode",
        mode,
        "--data",
        f.train.to_str().unwrap(),
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    deepnet(&args)
}

/// The run's weights under torchvision's names.
fn exported(run: &Path, dir: &Path) -> StateDict {
    let file = dir.join(format!(
        "{}.safetensors",
        run.file_name().unwrap().to_string_lossy()
    ));
    assert_ok(&deepnet(&[
        "export",
        run.to_str().unwrap(),
        "--to",
        file.to_str().unwrap(),
    ]));
    StateDict::read(&file).unwrap()
}

#[test]
fn exported_pth_reads_back_with_torchvision_keys_and_counters() {
    let f = fixture();
    let dict = StateDict::read(&f.pth).unwrap();
    // torchvision's resnet18 state dict: 62 parameters and 40 running statistics under these
    // names, and a num_batches_tracked counter per batch norm (20).
    assert!(dict.tensors.contains_key("layer4.1.bn2.running_var"));
    assert_eq!(dict.tensors["fc.weight"].shape, vec![3, 512]);
    assert_eq!(dict.tensors["conv1.weight"].shape, vec![64, 3, 7, 7]);
    let tmp = tempfile::tempdir().unwrap();
    let again = exported(&f.scratch_run, tmp.path());
    assert_eq!(
        dict.tensors, again.tensors,
        ".pth and .safetensors exports agree"
    );
}

#[test]
fn features_mode_keeps_the_backbone_and_finetune_moves_it() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let before = StateDict::read(&f.pth).unwrap();

    let features = tmp.path().join("features");
    let o = transfer(&features, "features", &[]);
    assert_ok(&o);
    // 512*3 + 3 head values train; the 11,176,512 of the backbone are frozen.
    assert!(
        stdout(&o).contains("parameters: 1539 trainable, 11176512 frozen"),
        "{}",
        stdout(&o)
    );
    let after = exported(&features, tmp.path());
    for (k, t) in &before.tensors {
        if k.starts_with("fc.") {
            continue;
        }
        // Frozen weights and the running statistics of frozen batch norms are untouched.
        assert_eq!(&after.tensors[k], t, "{k} changed in features mode");
    }

    let finetune = tmp.path().join("finetune");
    assert_ok(&transfer(
        &finetune,
        "finetune",
        &["--backbone-lr-factor", "0.1"],
    ));
    let tuned = exported(&finetune, tmp.path());
    assert_ne!(
        tuned.tensors["layer1.0.conv1.weight"], before.tensors["layer1.0.conv1.weight"],
        "fine-tuning trains the backbone"
    );
    assert_ne!(
        tuned.tensors["bn1.running_mean"], before.tensors["bn1.running_mean"],
        "and its batch norms' statistics"
    );

    // The run records the transfer; eval and predict use its classes and transform.
    let config = std::fs::read_to_string(features.join("config.json")).unwrap();
    for needle in [
        r#""mode": "features""#,
        r#""!fc.*""#,
        r#""sneaker""#,
        r#""size": 32"#,
    ] {
        assert!(config.contains(needle), "{needle} not in {config}");
    }
    let o = deepnet(&[
        "eval",
        features.to_str().unwrap(),
        "--data",
        f.test.to_str().unwrap(),
    ]);
    assert_ok(&o);
    assert!(stdout(&o).contains("test: 18 images"), "{}", stdout(&o));
    let picture = f.test.join("bag").join("0.png");
    let o = deepnet(&[
        "predict",
        features.to_str().unwrap(),
        picture.to_str().unwrap(),
    ]);
    assert_ok(&o);
    for class in ["bag", "sneaker", "trouser"] {
        assert!(stdout(&o).contains(class), "{}", stdout(&o));
    }
}

#[test]
fn transfer_from_a_run_and_freezing_by_pattern() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("from-run");
    let o = deepnet(&[
        "transfer",
        "resnet18",
        "--from",
        f.scratch_run.to_str().unwrap(),
        "--mode",
        "finetune",
        "--freeze",
        "conv1.*,bn1.*,layer1.*",
        "--data",
        f.train.to_str().unwrap(),
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ok(&o);
    // conv1 (9,408) + bn1 (128) + layer1 (147,968) frozen.
    assert!(
        stdout(&o).contains("frozen") && stdout(&o).contains("157504 frozen"),
        "{}",
        stdout(&o)
    );
    let summary = deepnet(&["summary", "resnet18", "--freeze", "conv1.*,bn1.*,layer1.*"]);
    assert!(
        stdout(&summary).contains("trainable parameters: 11,532,008, frozen: 157,504"),
        "{}",
        stdout(&summary)
    );
}

#[test]
fn bad_inputs_get_one_clear_line() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let t = |p: &Path| p.to_str().unwrap().to_string();
    let out = t(&tmp.path().join("out"));
    let train = |data: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "resnet18",
            "--data",
            data,
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        deepnet(&args)
    };

    // A folder without class folders, and an empty class.
    let flat = tmp.path().join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    std::fs::copy(f.train.join("bag/0.png"), flat.join("a.png")).unwrap();
    assert_fails_with(&train(&t(&flat), &[]), "no class folders");
    let empty = tmp.path().join("empty");
    make_folder(&empty, 2, 0);
    std::fs::create_dir_all(empty.join("coat")).unwrap();
    assert_fails_with(&train(&t(&empty), &[]), "holds no images");

    // A text file named .png, a PNG claiming 100,000 x 100,000 pixels, a corrupt JPEG.
    let bad = tmp.path().join("bad");
    make_folder(&bad, 3, 0);
    std::fs::write(bad.join("bag/notes.png"), "not an image").unwrap();
    assert_fails_with(&train(&t(&bad), &[]), "notes.png");
    std::fs::remove_file(bad.join("bag/notes.png")).unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(&100_000u32.to_be_bytes());
    png.extend_from_slice(&100_000u32.to_be_bytes());
    png.extend_from_slice(&[8, 2, 0, 0, 0]);
    let crc = crc_png(&png[12..]);
    png.extend_from_slice(&crc.to_be_bytes());
    std::fs::write(bad.join("bag/huge.png"), &png).unwrap();
    assert_fails_with(&train(&t(&bad), &[]), "huge.png");
    std::fs::remove_file(bad.join("bag/huge.png")).unwrap();
    let jpeg = bad.join("sneaker/broken.jpg");
    image::open(bad.join("sneaker/0.png"))
        .unwrap()
        .save(&jpeg)
        .unwrap();
    let bytes = std::fs::read(&jpeg).unwrap();
    std::fs::write(&jpeg, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails_with(&train(&t(&bad), &["--val-size", "1"]), "broken.jpg");
    assert!(
        !tmp.path().join("out/checkpoint.safetensors").exists(),
        "no run from bad data"
    );
    // With --skip-bad the run goes on and names the file.
    let o = train(&t(&bad), &["--val-size", "1", "--skip-bad"]);
    assert_ok(&o);
    assert!(stderr(&o).contains("broken.jpg"), "{}", stderr(&o));

    // An output directory that holds a run.
    assert_fails_with(&train(&t(&f.train), &[]), "already holds a run");

    // Weights of another architecture; a freeze pattern that matches nothing.
    let other = tmp.path().join("other");
    let o = deepnet(&[
        "transfer",
        "resnet34",
        "--weights",
        &t(&f.pth),
        "--data",
        &t(&f.train),
        "--image-size",
        "32",
        "--out",
        &t(&other),
    ]);
    assert_fails_with(&o, "layer1.2.conv1.weight");
    let o = deepnet(&[
        "transfer",
        "resnet18",
        "--weights",
        &t(&f.pth),
        "--data",
        &t(&f.train),
        "--image-size",
        "32",
        "--freeze",
        "layer9.*",
        "--out",
        &t(&other),
    ]);
    assert_fails_with(&o, "layer9.*");
    assert!(!other.exists(), "nothing written for a bad request");

    // A head size that disagrees with the weights.
    let o = deepnet(&[
        "export",
        "--model",
        "resnet18",
        "--num-classes",
        "10",
        "--weights",
        &t(&f.pth),
        "--to",
        &t(&tmp.path().join("x.pth")),
    ]);
    assert_fails_with(&o, "fc.weight");

    // Each family at its smallest input and one pixel below.
    for (model, min) in [("alexnet", 63), ("vgg11", 32)] {
        let below = (min - 1).to_string();
        let o = deepnet(&[
            "train",
            model,
            "--data",
            &t(&f.train),
            "--image-size",
            &below,
            "--out",
            &t(&other),
        ]);
        assert_fails_with(&o, &format!("between {min} and 2048 pixels"));
    }
    let o = deepnet(&[
        "train",
        "lenet5",
        "--data",
        &t(&f.train),
        "--image-size",
        "32",
        "--out",
        &t(&other),
    ]);
    assert_fails_with(&o, "between 28 and 31 pixels");
}

/// PNG's CRC-32 of a chunk's type and data.
fn crc_png(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
