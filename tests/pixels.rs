//! Pixels and time: `deepnet forecast-train` / `deepnet forecast` (ConvLSTM and FC-LSTM video
//! prediction on Moving Fashion-MNIST) and `deepnet segment-train` / `deepnet segment` (FCN
//! 32s -> 16s -> 8s) and `deepnet instance-train` (recurrent instance segmentation), on sequences and scenes made of the committed Fashion-MNIST subset, bad
//! input included.

mod common;

use std::path::Path;

use common::{assert_fails_cleanly, deepnet, fixture_dir, stderr, stdout};
use deepnet::data::{FashionMnist, Split};

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn save_grey(path: &Path, side: u32, pixels: Vec<u8>) {
    image::GrayImage::from_raw(side, side, pixels)
        .unwrap()
        .save(path)
        .unwrap();
}

#[test]
fn forecast_train_and_forecast_on_moving_items() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture_dir();
    let data = data.to_str().unwrap();
    let run = dir.path().join("conv");
    let run_s = run.to_str().unwrap();
    let o = deepnet(&[
        "forecast-train",
        "--data",
        data,
        "--train-sequences",
        "48",
        "--valid-sequences",
        "8",
        "--test-sequences",
        "8",
        "--hidden",
        "4",
        "--layers",
        "1",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--out",
        run_s,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("last frame") && out.contains("ConvLSTM"),
        "{out}"
    );
    assert!(run.join("report/forecast_test.json").exists());
    assert!(run.join("report/strips/test-0.png").exists());
    let m = metrics(&run);
    assert_eq!(m.len(), 2);
    let loss = |k: usize| m[k]["train"]["loss"].as_f64().unwrap();
    assert!(loss(1) < loss(0), "training does not lower the loss: {m:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report/forecast_test.json")).unwrap())
            .unwrap();
    // The last-frame baseline's error grows as the items move away.
    let last = report["last_frame"]["mse"].as_array().unwrap();
    assert_eq!(last.len(), 10);
    assert!(last[9].as_f64().unwrap() > last[0].as_f64().unwrap());

    // Ten frames of a test sequence as PNGs, then `deepnet forecast`.
    let items = FashionMnist::load(fixture_dir(), Split::Test).unwrap();
    let seq = deepnet::data::moving::generate(&items, 7, 0).unwrap();
    let frames: Vec<String> = (0..10)
        .map(|t| {
            let p = dir.path().join(format!("f{t:02}.png"));
            save_grey(&p, 64, seq.frame(t).to_vec());
            p.to_str().unwrap().to_string()
        })
        .collect();
    let pred = dir.path().join("pred");
    let mut args = vec!["forecast", run_s];
    args.extend(frames.iter().map(String::as_str));
    args.extend(["--out", pred.to_str().unwrap()]);
    let o = deepnet(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(pred.join("next-10.png").exists() && pred.join("strip.png").exists());

    // FC-LSTM trains through the same command.
    let fc = dir.path().join("fc");
    let o = deepnet(&[
        "forecast-train",
        "--model",
        "fc-lstm",
        "--data",
        data,
        "--train-sequences",
        "16",
        "--valid-sequences",
        "4",
        "--test-sequences",
        "4",
        "--hidden",
        "8",
        "--epochs",
        "1",
        "--out",
        fc.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("FC-LSTM"));

    // Bad input: one clear line, non-zero exit, no panic.
    let mut short = vec!["forecast", run_s];
    short.extend(frames[..9].iter().map(String::as_str));
    assert_fails_cleanly(&deepnet(&short), "the last 10 frames");
    let small = dir.path().join("small.png");
    save_grey(&small, 28, vec![0; 28 * 28]);
    let mut wrong = vec!["forecast", run_s];
    wrong.extend(frames[..9].iter().map(String::as_str));
    wrong.push(small.to_str().unwrap());
    assert_fails_cleanly(&deepnet(&wrong), "64x64");
    let lenet = dir.path().join("lenet");
    assert!(common::train_image_run(&lenet).status.success());
    let mut other = vec!["forecast", lenet.to_str().unwrap()];
    other.extend(frames.iter().map(String::as_str));
    assert_fails_cleanly(&deepnet(&other), "not a video prediction");
    assert_fails_cleanly(
        &deepnet(&[
            "forecast-train",
            "--data",
            data,
            "--kernel-size",
            "4",
            "--out",
            dir.path().join("x").to_str().unwrap(),
        ]),
        "odd",
    );
}

#[test]
fn segment_train_grows_32s_to_8s_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture_dir();
    let data = data.to_str().unwrap();
    let common_args = [
        "--data",
        data,
        "--train-scenes",
        "64",
        "--valid-scenes",
        "16",
        "--test-scenes",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "16",
    ];
    let train = |variant: &str, from: Option<&Path>, out: &Path| {
        let mut args = vec!["segment-train", "--variant", variant];
        args.extend(common_args);
        if let Some(f) = from {
            args.extend(["--init-from", f.to_str().unwrap()]);
        }
        args.extend(["--out", out.to_str().unwrap()]);
        deepnet(&args)
    };
    let (r32, r16, r8) = (
        dir.path().join("fcn32s"),
        dir.path().join("fcn16s"),
        dir.path().join("fcn8s"),
    );
    let o = train("fcn32s", None, &r32);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("FCN-32s") && stdout(&o).contains("mean IoU"));
    let o = train("fcn16s", Some(&r32), &r16);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = train("fcn8s", Some(&r16), &r8);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("FCN-8s") && out.contains("Ankle boot"),
        "{out}"
    );
    assert!(r8.join("report/segment_test.json").exists());
    assert!(r8.join("report/test-0.png").exists());

    // `deepnet segment` on a test scene, scored against its mask.
    let items = FashionMnist::load(fixture_dir(), Split::Test).unwrap();
    let options = deepnet::data::scenes::SceneOptions {
        layout: deepnet::data::scenes::Layout::Overlap,
        min_items: 2,
        max_items: 2,
    };
    let scene = deepnet::data::scenes::generate(&items, &options, 3, 0).unwrap();
    let paths = scene.write_pngs(dir.path(), "scene").unwrap();
    let (img, mask) = (paths[0].to_str().unwrap(), paths[1].to_str().unwrap());
    let seg = dir.path().join("seg");
    let r8s = r8.to_str().unwrap();
    let o = deepnet(&[
        "segment",
        r8s,
        img,
        "--masks",
        mask,
        "--out",
        seg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("pixel accuracy"), "{}", stdout(&o));
    for f in ["scene-mask.png", "scene-colour.png", "scene-overlay.png"] {
        assert!(seg.join(f).exists(), "{f} missing");
    }

    // Bad input.
    let small = dir.path().join("small.png");
    save_grey(&small, 28, vec![0; 28 * 28]);
    assert_fails_cleanly(
        &deepnet(&["segment", r8s, img, "--masks", small.to_str().unwrap()]),
        "64x64",
    );
    let odd = dir.path().join("odd.png");
    save_grey(&odd, 64, vec![20; 64 * 64]);
    assert_fails_cleanly(
        &deepnet(&["segment", r8s, img, "--masks", odd.to_str().unwrap()]),
        "value 20",
    );
    assert_fails_cleanly(
        &deepnet(&["segment", r8s, img, img, "--masks", mask]),
        "2 images",
    );
    assert_fails_cleanly(
        &deepnet(&["segment", r8s, small.to_str().unwrap()]),
        "64x64",
    );
    assert_fails_cleanly(
        &train("fcn32s", Some(&r16), &dir.path().join("a")),
        "first stage",
    );
    assert_fails_cleanly(
        &train("fcn16s", Some(&r8), &dir.path().join("b")),
        "cannot grow",
    );
    let lenet = dir.path().join("lenet");
    assert!(common::train_image_run(&lenet).status.success());
    assert_fails_cleanly(
        &deepnet(&["segment", lenet.to_str().unwrap(), img]),
        "not a segmentation",
    );
    assert!(!dir.path().join("a").exists() && !dir.path().join("b").exists());

    // Recurrent instance segmentation, with the connected components of FCN-8s's foreground.
    let inst = dir.path().join("inst");
    let inst_args = |baseline: &Path, out: &Path| {
        deepnet(&[
            "instance-train",
            "--baseline-fcn",
            baseline.to_str().unwrap(),
            "--data",
            data,
            "--train-scenes",
            "64",
            "--valid-scenes",
            "16",
            "--test-scenes",
            "24",
            "--features",
            "16",
            "--hidden",
            "8",
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let o = inst_args(&r8, &inst);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("connected components") && out.contains("recurrent (ConvLSTM)"),
        "{out}"
    );
    assert!(inst.join("report/instances_test.json").exists());
    assert!(inst.join("report/instances-0.png").exists());
    // The baseline must be a segmentation run.
    assert_fails_cleanly(
        &inst_args(&lenet, &dir.path().join("c")),
        "not a segmentation",
    );
    assert!(!dir.path().join("c").exists());
}
