//! Parity of deepnet's CNNs with torchvision: with every parameter and buffer set by the same
//! deterministic rule on both sides (scripts/make_vision_fixtures.py), the logits on a fixed
//! 64x64 input equal torchvision's in eval mode to 1e-4 of the largest logit.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use deepnet::models::vision::{visit_model, ImageClassifier, ModelSpec, ZooVisitor};
use deepnet::weights::torchvision::{fill, RuleSource};
use deepnet::weights::StateDict;

struct Parity {
    want: Vec<f32>,
}

impl ZooVisitor for Parity {
    type Output = (f32, f32);
    /// (max |difference|, max |logit|)
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> (f32, f32) {
        let namer = model.clone();
        let (model, used) = fill(model, &|p| namer.torch_key(p), &mut RuleSource)
            .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        assert!(!used.is_empty());
        let shape = [2, 3, 64, 64];
        let n: usize = shape.iter().product();
        let x: Vec<f32> = (0..n).map(|i| (0.1 * i as f64).sin() as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(x, shape), &Device::flex());
        let logits = model.forward(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(logits.len(), self.want.len(), "{}", spec.name);
        let diff = logits
            .iter()
            .zip(&self.want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let scale = self.want.iter().map(|v| v.abs()).fold(0f32, f32::max);
        (diff, scale)
    }
}

fn check(name: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vision")
        .join(format!("{name}.safetensors"));
    let dict = StateDict::read_safetensors(&path).unwrap();
    let want = dict.tensors["logits"].data.clone();
    let (diff, scale) = visit_model(name, 1000, &Device::flex(), Parity { want }).unwrap();
    assert!(
        diff <= 1e-4 * scale,
        "{name}: logits differ from torchvision's by {diff} (max |logit| {scale})"
    );
}

#[test]
fn alexnet_matches_torchvision() {
    check("alexnet");
}

#[test]
fn vgg16_matches_torchvision() {
    check("vgg16");
}

#[test]
fn vgg16_bn_matches_torchvision() {
    check("vgg16_bn");
}

#[test]
fn resnet18_matches_torchvision() {
    check("resnet18");
}

#[test]
fn resnet50_matches_torchvision() {
    check("resnet50");
}

#[test]
fn googlenet_matches_torchvision() {
    check("googlenet");
}

struct RoundTrip {
    dir: PathBuf,
}

impl ZooVisitor for RoundTrip {
    type Output = ();
    /// Export under torchvision's names to safetensors, load into a fresh model of the same
    /// architecture: identical logits.
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) {
        use deepnet::weights::torchvision::{export_state_dict, load_state_dict};
        let namer = model.clone();
        let (model, _) = fill(model, &|p| namer.torch_key(p), &mut RuleSource).unwrap();
        let path = self.dir.join(format!("{}.safetensors", spec.name));
        export_state_dict(&model, &|p| namer.torch_key(p))
            .write_safetensors(&path)
            .unwrap();
        let dict = StateDict::read_safetensors(&path).unwrap();
        let fresh = namer.clone();
        let loaded = load_state_dict(fresh, &|p| namer.torch_key(p), &dict).unwrap();
        let x = Tensor::<4>::ones([1, 3, 64, 64], &Device::flex());
        let a = model
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let b = loaded.forward(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(a, b, "{}", spec.name);
    }
}

#[test]
fn saved_and_loaded_weights_give_identical_logits() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["resnet18", "googlenet", "vgg11_bn"] {
        visit_model(
            name,
            1000,
            &Device::flex(),
            RoundTrip {
                dir: dir.path().into(),
            },
        )
        .unwrap();
    }
}

struct LoadInto {
    dict: StateDict,
}

impl ZooVisitor for LoadInto {
    type Output = String;
    fn visit<M: ImageClassifier>(self, model: M, _spec: &'static ModelSpec) -> String {
        let namer = model.clone();
        match deepnet::weights::torchvision::load_state_dict(
            model,
            &|p| namer.torch_key(p),
            &self.dict,
        ) {
            Ok(_) => "loaded".into(),
            Err(e) => e.to_string(),
        }
    }
}

struct Export;

impl ZooVisitor for Export {
    type Output = StateDict;
    fn visit<M: ImageClassifier>(self, model: M, _spec: &'static ModelSpec) -> StateDict {
        deepnet::weights::torchvision::export_state_dict(&model, &|p| model.torch_key(p))
    }
}

/// Weights of another architecture, a mis-shaped or a missing tensor: an error that names the
/// key (and both shapes).
#[test]
fn wrong_weights_are_clear_errors() {
    let device = Device::flex();
    let r34 = visit_model("resnet34", 1000, &device, Export).unwrap();
    let msg = visit_model("resnet18", 1000, &device, LoadInto { dict: r34 }).unwrap();
    assert!(
        msg.contains("layer1.2.conv1.weight") && msg.contains("no parameter"),
        "{msg}"
    );
    let mut r18 = visit_model("resnet18", 1000, &device, Export).unwrap();
    r18.tensors.remove("layer4.1.bn2.running_var");
    let msg = visit_model("resnet18", 1000, &device, LoadInto { dict: r18 }).unwrap();
    assert!(
        msg.contains("'layer4.1.bn2.running_var'") && msg.contains("missing"),
        "{msg}"
    );
    let r18_10 = visit_model("resnet18", 10, &device, Export).unwrap();
    let msg = visit_model("resnet18", 1000, &device, LoadInto { dict: r18_10 }).unwrap();
    assert!(
        msg.contains("'fc.weight' has shape [10, 512], the model expects [1000, 512]"),
        "{msg}"
    );
}

struct RuleExport;

impl ZooVisitor for RuleExport {
    type Output = StateDict;
    /// The rule-filled weights under torchvision's names (what the parity fixtures used).
    fn visit<M: ImageClassifier>(self, model: M, _spec: &'static ModelSpec) -> StateDict {
        let namer = model.clone();
        let (model, _) = fill(model, &|p| namer.torch_key(p), &mut RuleSource).unwrap();
        deepnet::weights::torchvision::export_state_dict(&model, &|p| namer.torch_key(p))
    }
}

/// Writes ResNet-18's rule-filled weights (those of the parity fixture) to `path`.
fn write_rule_resnet18(path: &str) {
    visit_model("resnet18", 1000, &Device::flex(), RuleExport)
        .unwrap()
        .write_safetensors(path)
        .unwrap();
}

fn deepnet(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_deepnet"))
        .args(args)
        .output()
        .expect("deepnet runs")
}

fn fails_with(o: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
}

/// `deepnet infer` end to end: torchvision-named weights and an .npy in, torchvision's logits
/// out; bad weights and bad arrays are clear errors.
#[test]
fn infer_gives_torchvision_logits_and_refuses_bad_input() {
    use deepnet::io::npy::{encode_npy, read_npy, NpyArray};
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    write_rule_resnet18(&p("r18.safetensors"));
    let shape = vec![2, 3, 64, 64];
    let n: usize = shape.iter().product();
    let x: Vec<f32> = (0..n).map(|i| (0.1 * i as f64).sin() as f32).collect();
    let input = NpyArray { shape, data: x };
    std::fs::write(p("x.npy"), encode_npy(&input)).unwrap();
    let o = deepnet(&[
        "infer",
        "--model",
        "resnet18",
        "--weights",
        &p("r18.safetensors"),
        "--input",
        &p("x.npy"),
        "--output",
        &p("y.npy"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let y = read_npy(p("y.npy")).unwrap();
    assert_eq!(y.shape, vec![2, 1000]);
    let want = StateDict::read_safetensors(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vision/resnet18.safetensors"),
    )
    .unwrap();
    let want = &want.tensors["logits"].data;
    let scale = want.iter().map(|v| v.abs()).fold(0f32, f32::max);
    let diff = y
        .data
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff <= 1e-4 * scale, "infer logits differ by {diff}");

    let infer = |model: &str, weights: &str, input: &str| {
        deepnet(&[
            "infer",
            "--model",
            model,
            "--weights",
            weights,
            "--input",
            input,
            "--output",
            &p("z.npy"),
        ])
    };
    // Weights of another architecture.
    fails_with(
        &infer("resnet34", &p("r18.safetensors"), &p("x.npy")),
        "layer1.2.conv1.weight",
    );
    // A truncated .pth.
    let pth = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recurrent/lstm.pth"),
    )
    .unwrap();
    std::fs::write(p("cut.pth"), &pth[..pth.len() / 2]).unwrap();
    fails_with(&infer("resnet18", &p("cut.pth"), &p("x.npy")), "cut.pth");
    // Wrong shape, wrong dtype.
    let gray = NpyArray {
        shape: vec![1, 1, 64, 64],
        data: vec![0.0; 4096],
    };
    std::fs::write(p("gray.npy"), encode_npy(&gray)).unwrap();
    fails_with(
        &infer("resnet18", &p("r18.safetensors"), &p("gray.npy")),
        "1 channels; resnet18 takes 3",
    );
    let flat = NpyArray {
        shape: vec![3, 64, 64],
        data: vec![0.0; 3 * 4096],
    };
    std::fs::write(p("flat.npy"), encode_npy(&flat)).unwrap();
    fails_with(
        &infer("resnet18", &p("r18.safetensors"), &p("flat.npy")),
        "not N×C×H×W",
    );
    let mut f8 = encode_npy(&input);
    let at = f8.windows(3).position(|w| w == b"<f4").unwrap();
    f8[at + 2] = b'8';
    std::fs::write(p("f8.npy"), f8).unwrap();
    fails_with(
        &infer("resnet18", &p("r18.safetensors"), &p("f8.npy")),
        "float32",
    );
    assert!(
        !std::path::Path::new(&p("z.npy")).exists(),
        "no output on failure"
    );
}

/// `deepnet predict --model --weights`: ImageNet transform, top-5 with ImageNet's class names.
#[test]
fn imagenet_predict_prints_top5_names() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    write_rule_resnet18(&p("r18.safetensors"));
    // A 300x200 colour picture: resized so the shorter side is 256, centre 224x224 cropped.
    image::RgbImage::from_fn(300, 200, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    })
    .save(p("pic.png"))
    .unwrap();
    let o = deepnet(&[
        "predict",
        "--model",
        "resnet18",
        "--weights",
        &p("r18.safetensors"),
        &p("pic.png"),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<&str> = out.lines().filter(|l| l.contains('%')).collect();
    assert_eq!(rows.len(), 5, "{out}");
    let names = deepnet::data::image_file::imagenet_classes();
    assert_eq!(names.len(), 1000);
    for r in &rows {
        let name = r.split('%').nth(1).unwrap().trim();
        assert!(names.contains(&name), "{name} is not an ImageNet class");
    }
    fails_with(
        &deepnet(&["predict", "--weights", &p("r18.safetensors"), &p("pic.png")]),
        "needs --model",
    );
    std::fs::write(p("bad.jpg"), b"garbage").unwrap();
    fails_with(
        &deepnet(&[
            "predict",
            "--model",
            "resnet18",
            "--weights",
            &p("r18.safetensors"),
            &p("bad.jpg"),
        ]),
        "not a readable image",
    );
}

/// torchvision's released GoogLeNet weights have no auxiliary classifiers: such a state dict
/// loads (the model is built without them) and gives the parity fixture's logits, which the
/// auxiliary heads never touch in evaluation; `--transform-input` changes them.
#[test]
fn googlenet_without_auxiliary_heads_loads() {
    use deepnet::io::npy::{encode_npy, read_npy, NpyArray};
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let mut dict = visit_model("googlenet", 1000, &Device::flex(), RuleExport).unwrap();
    let before = dict.tensors.len();
    dict.tensors.retain(|k, _| !k.starts_with("aux"));
    assert!(dict.tensors.len() < before);
    dict.write_safetensors(p("g.safetensors")).unwrap();
    let shape = vec![2, 3, 64, 64];
    let n: usize = shape.iter().product();
    let x: Vec<f32> = (0..n).map(|i| (0.1 * i as f64).sin() as f32).collect();
    std::fs::write(p("x.npy"), encode_npy(&NpyArray { shape, data: x })).unwrap();
    let (weights, input) = (p("g.safetensors"), p("x.npy"));
    let infer = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "infer",
            "--model",
            "googlenet",
            "--weights",
            &weights,
            "--input",
            &input,
            "--output",
            out,
        ];
        args.extend_from_slice(extra);
        let o = deepnet(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        read_npy(out).unwrap().data
    };
    let got = infer(&p("y.npy"), &[]);
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vision/googlenet.safetensors");
    let want = StateDict::read_safetensors(&fixture).unwrap().tensors["logits"]
        .data
        .clone();
    let scale = want.iter().map(|v| v.abs()).fold(0f32, f32::max);
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff <= 1e-4 * scale, "{diff} of {scale}");
    let transformed = infer(&p("t.npy"), &["--transform-input"]);
    let moved = got
        .iter()
        .zip(&transformed)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        moved > 1e-3 * scale,
        "transform_input changes the logits ({moved})"
    );
}

struct TorchKeys;

impl ZooVisitor for TorchKeys {
    type Output = Vec<(String, Vec<usize>, String)>;
    /// What `deepnet export` writes for this model: keys, shapes, dtypes.
    fn visit<M: ImageClassifier>(self, model: M, _spec: &'static ModelSpec) -> Self::Output {
        let dict =
            deepnet::weights::torchvision::export_state_dict(&model, &|p| model.torch_key(p));
        deepnet::tasks::classification::torch_state(&dict)
            .into_iter()
            .map(|t| {
                let dtype = match t.values {
                    deepnet::io::pth::PthValues::F32(_) => "float32",
                    deepnet::io::pth::PthValues::I64(_) => "int64",
                };
                (t.name, t.shape, dtype.to_string())
            })
            .collect()
    }
}

/// The export has exactly torchvision's state-dict keys, shapes and dtypes (what
/// `load_state_dict(strict=True)` demands), checked against the list
/// scripts/make_torchvision_keys.py wrote from torchvision itself.
#[test]
fn export_has_torchvision_keys_shapes_and_dtypes() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vision/torchvision_keys.json");
    let want: std::collections::BTreeMap<String, Vec<(String, Vec<usize>, String)>> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (name, keys) in want {
        let options = deepnet::models::vision::ModelOptions {
            no_aux: true,
            ..Default::default()
        };
        let mut got = deepnet::models::vision::visit_model_with(
            &name,
            1000,
            options,
            &Device::flex(),
            TorchKeys,
        )
        .unwrap();
        let mut keys = keys;
        got.sort();
        keys.sort();
        assert_eq!(got.len(), keys.len(), "{name}");
        for (g, w) in got.iter().zip(&keys) {
            assert_eq!(g, w, "{name}");
        }
    }
}
