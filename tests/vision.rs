//! Parity of deepnet's CNNs with torchvision: with every parameter and buffer set by the same
//! deterministic rule on both sides (scripts/make_vision_fixtures.py), the logits on a fixed
//! 64x64 input equal torchvision's in eval mode to 1e-4 of the largest logit.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use deepnet::vision::{visit_model, ImageClassifier, ModelSpec, ZooVisitor};
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
