//! Captioning: deepnet's corpus BLEU against sacrebleu (fixture from
//! scripts/make_bleu_fixture.py), and `deepnet caption-train` / `deepnet caption` on scenes
//! made of the committed Fashion-MNIST subset, bad input included.

mod common;

use std::path::Path;

use common::{assert_fails_cleanly, deepnet, fixture_dir, stdout};
use deepnet::train::bleu::corpus_bleu;

#[test]
fn corpus_bleu_matches_sacrebleu() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bleu/bleu.json");
    let d: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let hyps = strings(&d["hypotheses"]);
    let refs: Vec<Vec<String>> = d["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(strings)
        .collect();
    let b = corpus_bleu(&hyps, &refs);
    for n in 0..4 {
        let want = d["bleu"][n].as_f64().unwrap();
        assert!(
            (b.bleu[n] - want).abs() < 1e-9,
            "BLEU-{}: {} vs {want}",
            n + 1,
            b.bleu[n]
        );
        let p = d["precisions"][n].as_f64().unwrap();
        assert!((b.precisions[n] - p).abs() < 1e-9);
    }
    assert!((b.brevity_penalty - d["brevity_penalty"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(
        b.hypothesis_length as u64,
        d["hypothesis_length"].as_u64().unwrap()
    );
    assert_eq!(
        b.reference_length as u64,
        d["reference_length"].as_u64().unwrap()
    );
    // The fixture exercises the brevity penalty.
    assert!(b.brevity_penalty < 1.0);
}

#[test]
fn caption_train_and_caption_on_generated_scenes() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture_dir();
    let data = data.to_str().unwrap();
    let enc = dir.path().join("enc");
    let o = deepnet(&[
        "train",
        "resnet20",
        "--data",
        data,
        "--limit-train",
        "256",
        "--epochs",
        "1",
        "--out",
        enc.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let run = dir.path().join("cap");
    let run_s = run.to_str().unwrap();
    let o = deepnet(&[
        "caption-train",
        "--encoder",
        enc.to_str().unwrap(),
        "--data",
        data,
        "--train-scenes",
        "120",
        "--valid-scenes",
        "20",
        "--test-scenes",
        "30",
        "--epochs",
        "1",
        "--hidden-size",
        "32",
        "--embed-size",
        "16",
        "--attention-size",
        "16",
        "--out",
        run_s,
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("most frequent caption") && out.contains("soft attention"),
        "{out}"
    );
    assert!(out.contains("annotation grid 8x8"), "{out}");
    for f in [
        "report/caption_test.json",
        "report/attention-1.png",
        "report/scenes/test-0.png",
        "report/scenes/test-0-class.png",
        "report/scenes/test-0-instance.png",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let scene = run.join("report/scenes/test-0.png");
    let att = dir.path().join("att");
    let o = deepnet(&[
        "caption",
        run_s,
        scene.to_str().unwrap(),
        "--attention-dir",
        att.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(stdout(&o).contains("test-0.png: "));
    assert!(att.join("test-0-attention.png").exists());

    // Bad input: one clear line, non-zero exit, no panic.
    let small = dir.path().join("small.png");
    image::GrayImage::new(28, 28).save(&small).unwrap();
    assert_fails_cleanly(
        &deepnet(&["caption", run_s, small.to_str().unwrap()]),
        "64x64",
    );
    let colour = dir.path().join("colour.png");
    image::RgbImage::from_pixel(64, 64, image::Rgb([200, 10, 10]))
        .save(&colour)
        .unwrap();
    assert_fails_cleanly(
        &deepnet(&["caption", run_s, colour.to_str().unwrap()]),
        "colour",
    );
    assert_fails_cleanly(
        &deepnet(&["caption", enc.to_str().unwrap(), scene.to_str().unwrap()]),
        "not a captioning",
    );
    // LeNet-5 takes 28-31 pixels: it cannot read a 64x64 scene.
    let lenet = dir.path().join("lenet");
    assert!(common::train_image_run(&lenet).status.success());
    assert_fails_cleanly(
        &deepnet(&[
            "caption-train",
            "--encoder",
            lenet.to_str().unwrap(),
            "--data",
            data,
            "--out",
            dir.path().join("x").to_str().unwrap(),
        ]),
        "64",
    );
}
