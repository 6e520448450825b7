//! The model registry: `name -> builder`. `deepnet summary NAME`, `train NAME` and the loaders of
//! checkpoints all go through [`visit_model`], so adding a model is one file plus one line in
//! [`MODELS`] and one arm in [`visit_model`].

use burn::module::Module;
use burn::prelude::*;

use super::alexnet::{AlexNet, AlexNetConfig};
use super::googlenet::{GoogLeNet, GoogLeNetConfig};
use super::lenet::{Lenet5, Lenet5Classic, Lenet5ClassicConfig, Lenet5Config};
use super::resnet::{BasicBlock, Bottleneck, ResNet, ResNetConfig};
use super::summary::Trace;
use super::vgg::{Vgg, VggConfig, POOL};
use crate::error::{Error, Result};

/// A model that maps images `[batch, channels, height, width]` to class logits `[batch, classes]`.
pub trait ImageClassifier: Module + Clone + Send + 'static {
    /// Logits `[batch, classes]`.
    fn forward(&self, images: Tensor<4>) -> Tensor<2>;
    /// Logits, recording each layer into `trace` (see [`Trace`]).
    fn forward_traced(&self, images: Tensor<4>, trace: &mut Trace) -> Tensor<2>;
    /// The torchvision state-dict key of the parameter or buffer at burn path `path`.
    fn torch_key(&self, path: &str) -> String {
        crate::weights::torchvision::default_torch_key(path)
    }
    /// The training forward: the logits, and auxiliary logits with the weight of their loss
    /// (GoogLeNet's two side classifiers, 0.3 each as in torchvision's reference training;
    /// none for the other models). The training loop adds the weighted losses.
    fn forward_train(&self, images: Tensor<4>) -> (Tensor<2>, Vec<(Tensor<2>, f32)>) {
        (self.forward(images), Vec::new())
    }
    /// The module paths of the classifier head: the layers that map features to classes,
    /// which transfer learning replaces. Default: the layer of the last 2-D weight (the last
    /// Linear).
    fn head(&self) -> Vec<String> {
        crate::weights::paths::param_entries(self)
            .iter()
            .rev()
            .find(|e| e.shape.len() == 2)
            .map(|e| vec![e.path.trim_end_matches(".weight").to_string()])
            .unwrap_or_default()
    }
}

impl ImageClassifier for Lenet5 {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        Lenet5::forward(self, images)
    }
    fn forward_traced(&self, images: Tensor<4>, trace: &mut Trace) -> Tensor<2> {
        Lenet5::forward_traced(self, images, trace)
    }
}

impl ImageClassifier for Lenet5Classic {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        Lenet5Classic::forward(self, images)
    }
    fn forward_traced(&self, images: Tensor<4>, trace: &mut Trace) -> Tensor<2> {
        Lenet5Classic::forward_traced(self, images, trace)
    }
}

/// [`ImageClassifier`] for model types whose inherent `forward`/`forward_traced` have the
/// trait's signatures.
macro_rules! classifier {
    ($($t:ty),*) => {$(
        impl ImageClassifier for $t {
            fn forward(&self, images: Tensor<4>) -> Tensor<2> {
                <$t>::forward(self, images)
            }
            fn forward_traced(&self, images: Tensor<4>, trace: &mut Trace) -> Tensor<2> {
                <$t>::forward_traced(self, images, trace)
            }
            fn torch_key(&self, path: &str) -> String {
                <$t>::torch_key(self, path)
            }
        }
    )*};
}

classifier!(AlexNet, Vgg, ResNet<BasicBlock>, ResNet<Bottleneck>);

impl ImageClassifier for GoogLeNet {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        GoogLeNet::forward(self, images)
    }
    fn forward_traced(&self, images: Tensor<4>, trace: &mut Trace) -> Tensor<2> {
        GoogLeNet::forward_traced(self, images, trace)
    }
    fn torch_key(&self, path: &str) -> String {
        GoogLeNet::torch_key(self, path)
    }
    fn head(&self) -> Vec<String> {
        let mut head = vec!["fc".to_string()];
        if self.aux1.is_some() {
            head.extend(["aux1.fc2".to_string(), "aux2.fc2".to_string()]);
        }
        head
    }
    fn forward_train(&self, images: Tensor<4>) -> (Tensor<2>, Vec<(Tensor<2>, f32)>) {
        let (logits, aux1, aux2) = self.forward_aux(images);
        let aux = [aux1, aux2]
            .into_iter()
            .flatten()
            .map(|a| (a, 0.3))
            .collect();
        (logits, aux)
    }
}

/// What the registry knows of a model before building it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// Registry name (`lenet5`).
    pub name: &'static str,
    /// One line for `deepnet --help` and summaries.
    pub description: &'static str,
    /// Input `[channels, height, width]` the model is built for.
    pub input: [usize; 3],
    /// Classes of the output layer unless told otherwise (1000 for the ImageNet models).
    pub classes: usize,
}

const IMAGENET: [usize; 3] = [3, 224, 224];
const MNIST: [usize; 3] = [1, 28, 28];

macro_rules! spec {
    ($name:expr, $input:expr, $classes:expr, $description:expr) => {
        ModelSpec {
            name: $name,
            description: $description,
            input: $input,
            classes: $classes,
        }
    };
}

/// Every model deepnet can build, by name.
pub const MODELS: &[ModelSpec] = &[
    spec!("lenet5", MNIST, 10, "LeNet-5, modern form: ReLU, max pool, full C3, linear output (61,706 parameters)"),
    spec!("lenet5-1998", MNIST, 10, "LeNet-5 as published in 1998: scaled tanh, trainable subsampling, sparse C3, RBF output (60,000 parameters)"),
    spec!("alexnet", IMAGENET, 1000, "AlexNet, torchvision's single-tower form (61,100,840 parameters)"),
    spec!("vgg11", IMAGENET, 1000, "VGG-11 (configuration A)"),
    spec!("vgg11_bn", IMAGENET, 1000, "VGG-11 with batch norm"),
    spec!("vgg13", IMAGENET, 1000, "VGG-13 (configuration B)"),
    spec!("vgg13_bn", IMAGENET, 1000, "VGG-13 with batch norm"),
    spec!("vgg16", IMAGENET, 1000, "VGG-16 (configuration D)"),
    spec!("vgg16_bn", IMAGENET, 1000, "VGG-16 with batch norm"),
    spec!("vgg19", IMAGENET, 1000, "VGG-19 (configuration E)"),
    spec!("vgg19_bn", IMAGENET, 1000, "VGG-19 with batch norm"),
    spec!("resnet18", IMAGENET, 1000, "ResNet-18, basic blocks [2, 2, 2, 2]"),
    spec!("resnet34", IMAGENET, 1000, "ResNet-34, basic blocks [3, 4, 6, 3]"),
    spec!("resnet50", IMAGENET, 1000, "ResNet-50, bottlenecks [3, 4, 6, 3], stride on the 3x3 (V1.5)"),
    spec!("resnet101", IMAGENET, 1000, "ResNet-101, bottlenecks [3, 4, 23, 3]"),
    spec!("resnet152", IMAGENET, 1000, "ResNet-152, bottlenecks [3, 8, 36, 3]"),
    spec!("googlenet", IMAGENET, 1000, "GoogLeNet (Inception v1), batch norm, auxiliary heads for training"),
    spec!("googlenet-naive", IMAGENET, 1000, "GoogLeNet with the naive Inception module (1x1, 3x3, 5x5, pool; no reductions)"),
    spec!("resnet20", MNIST, 10, "CIFAR-style ResNet-20 (He et al. 2016, 4.2): 3 stages of 16/32/64, option-A shortcuts"),
    spec!("resnet32", MNIST, 10, "CIFAR-style ResNet-32"),
    spec!("resnet56", MNIST, 10, "CIFAR-style ResNet-56"),
    spec!("vgg-small", MNIST, 10, "Small VGG-style net for 28x28: 3x3 convs 32,32,M,64,64,M,128,128,M with batch norm, FC 256"),
];

/// The square input sides model `name` accepts, `(smallest, largest)`: every layer's output
/// keeps at least one pixel and the logits are finite (found by running each family at every
/// side up to 79; the `input_sides_are_the_valid_ones` test checks each bound and the side
/// beyond it). LeNet-5's fully connected tail fixes its input to 28-31 pixels; the networks
/// with adaptive pooling take any larger size.
pub fn input_sides(name: &str) -> (usize, Option<usize>) {
    match name {
        "alexnet" => (63, None),
        n if n.starts_with("vgg") && n != "vgg-small" => (32, None),
        "vgg-small" => (8, None),
        "lenet5" | "lenet5-1998" => (28, Some(31)),
        _ => (1, None),
    }
}

/// The most classes a model may output (ImageNet-21k has 21,841): the head of a VGG with
/// more would outweigh the rest of the network many times over.
pub const MAX_CLASSES: usize = 100_000;

/// The largest input side any model takes (a VGG's first activations at 2048² are 1 GiB).
pub const MAX_INPUT_SIDE: usize = 2048;

/// Checks that model `spec` can take square images of side `side`, with a message naming the
/// bounds (at most [`MAX_INPUT_SIDE`] for every model).
pub fn check_input_side(spec: &ModelSpec, side: usize) -> Result<()> {
    check_side(spec, side, "image_size")
}

/// [`check_input_side`], the error naming the setting `what`.
fn check_side(spec: &ModelSpec, side: usize, what: &str) -> Result<()> {
    let (min, max) = input_sides(spec.name);
    let max = max.unwrap_or(MAX_INPUT_SIDE).min(MAX_INPUT_SIDE);
    if !(min..=max).contains(&side) {
        return Err(Error::invalid(
            what,
            format!(
                "{} takes images of between {min} and {max} pixels a side, not {side}",
                spec.name
            ),
        ));
    }
    Ok(())
}

/// Checks an input `[C, H, W]` against model `spec`: its channels, and each side as
/// [`check_input_side`] does; done before any tensor is built, so a wrong shape is one line,
/// not a failed assertion deep inside the model.
pub fn check_input(spec: &ModelSpec, [c, h, w]: [usize; 3]) -> Result<()> {
    if c != spec.input[0] {
        return Err(Error::invalid(
            "input",
            format!(
                "{} takes {} input channels, not {c}",
                spec.name, spec.input[0]
            ),
        ));
    }
    check_side(spec, h, "input")?;
    check_side(spec, w, "input")
}

/// The spec of `name`, or an error listing the known names.
pub fn spec(name: &str) -> Result<&'static ModelSpec> {
    MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        let names: Vec<_> = MODELS.iter().map(|m| m.name).collect();
        Error::invalid(
            "model",
            format!("unknown model '{name}'; known models: {}", names.join(", ")),
        )
    })
}

/// Code that runs on a freshly built model of any type: the registry calls `visit` with the
/// concrete model, so training and evaluation are written once, generically.
pub trait ZooVisitor {
    /// What the visit returns.
    type Output;
    /// Called with the model built by [`visit_model`].
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Self::Output;
}

/// How a zoo model is built, beyond its name and class count (GoogLeNet's options; the other
/// models have none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelOptions {
    /// GoogLeNet: torchvision's `transform_input`, which maps ImageNet-normalised input back to
    /// the `(x - 0.5) / 0.5` scale of the original Inception weights. torchvision's ImageNet
    /// GoogLeNet weights need it on (torchvision turns it on when it loads them).
    #[serde(default)]
    pub transform_input: bool,
    /// GoogLeNet: build without the two auxiliary classifiers (torchvision's released ImageNet
    /// weights have none; training then uses the main loss only).
    #[serde(default)]
    pub no_aux: bool,
}

/// Builds model `name` with `num_classes` outputs on `device` and hands it to `visitor`.
pub fn visit_model<V: ZooVisitor>(
    name: &str,
    num_classes: usize,
    device: &Device,
    visitor: V,
) -> Result<V::Output> {
    visit_model_with(name, num_classes, ModelOptions::default(), device, visitor)
}

/// [`visit_model`] with build options.
pub fn visit_model_with<V: ZooVisitor>(
    name: &str,
    num_classes: usize,
    options: ModelOptions,
    device: &Device,
    visitor: V,
) -> Result<V::Output> {
    let spec = spec(name)?;
    if num_classes == 0 || num_classes > MAX_CLASSES {
        return Err(Error::invalid(
            "num_classes",
            format!("{num_classes}: must be between 1 and {MAX_CLASSES}"),
        ));
    }
    let in_channels = spec.input[0];
    let c = num_classes;
    let vgg = |depth: usize, bn: bool| {
        VggConfig::depth(depth, bn, c)
            .expect("11, 13, 16 and 19 are VGG depths")
            .init(device)
    };
    let resnet = |depth: usize| ResNetConfig::imagenet(depth, c).expect("a ResNet depth");
    let cifar = |depth: usize| {
        ResNetConfig::cifar(depth, c, in_channels)
            .expect("6n + 2")
            .init::<BasicBlock>(device)
    };
    Ok(match name {
        "lenet5" => visitor.visit(
            Lenet5Config::new()
                .with_num_classes(num_classes)
                .init(device),
            spec,
        ),
        "lenet5-1998" => visitor.visit(
            Lenet5ClassicConfig::new()
                .with_num_classes(num_classes)
                .init(device),
            spec,
        ),
        "alexnet" => visitor.visit(AlexNetConfig::new().with_num_classes(c).init(device), spec),
        "vgg11" => visitor.visit(vgg(11, false), spec),
        "vgg11_bn" => visitor.visit(vgg(11, true), spec),
        "vgg13" => visitor.visit(vgg(13, false), spec),
        "vgg13_bn" => visitor.visit(vgg(13, true), spec),
        "vgg16" => visitor.visit(vgg(16, false), spec),
        "vgg16_bn" => visitor.visit(vgg(16, true), spec),
        "vgg19" => visitor.visit(vgg(19, false), spec),
        "vgg19_bn" => visitor.visit(vgg(19, true), spec),
        "resnet18" => visitor.visit(resnet(18).init::<BasicBlock>(device), spec),
        "resnet34" => visitor.visit(resnet(34).init::<BasicBlock>(device), spec),
        "resnet50" => visitor.visit(resnet(50).init::<Bottleneck>(device), spec),
        "resnet101" => visitor.visit(resnet(101).init::<Bottleneck>(device), spec),
        "resnet152" => visitor.visit(resnet(152).init::<Bottleneck>(device), spec),
        "googlenet" => visitor.visit(
            GoogLeNetConfig::new()
                .with_num_classes(c)
                .with_transform_input(options.transform_input)
                .with_aux_logits(!options.no_aux)
                .init(device),
            spec,
        ),
        "googlenet-naive" => visitor.visit(
            GoogLeNetConfig::new()
                .with_num_classes(c)
                .with_naive(true)
                .with_transform_input(options.transform_input)
                .with_aux_logits(!options.no_aux)
                .init(device),
            spec,
        ),
        "resnet20" => visitor.visit(cifar(20), spec),
        "resnet32" => visitor.visit(cifar(32), spec),
        "resnet56" => visitor.visit(cifar(56), spec),
        "vgg-small" => visitor.visit(
            VggConfig::new(vec![32, 32, POOL, 64, 64, POOL, 128, 128, POOL])
                .with_batch_norm(true)
                .with_in_channels(in_channels)
                .with_num_classes(c)
                .with_pool_size(3)
                .with_hidden(vec![256])
                .init(device),
            spec,
        ),
        _ => unreachable!("every name in MODELS has a builder arm"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::vision::summary::trainable_params;

    struct Count;
    impl ZooVisitor for Count {
        type Output = usize;
        fn visit<M: ImageClassifier>(self, model: M, _spec: &'static ModelSpec) -> usize {
            trainable_params(&model)
        }
    }

    /// torchvision's parameter counts (REFERENCE.md), 1000 classes, GoogLeNet with its
    /// auxiliary heads. Weights are initialised lazily, so nothing is allocated.
    #[test]
    fn parameter_counts_equal_torchvision() {
        let device = Device::flex();
        for (name, want) in [
            ("alexnet", 61_100_840),
            ("vgg11", 132_863_336),
            ("vgg11_bn", 132_868_840),
            ("vgg13", 133_047_848),
            ("vgg13_bn", 133_053_736),
            ("vgg16", 138_357_544),
            ("vgg16_bn", 138_365_992),
            ("vgg19", 143_667_240),
            ("vgg19_bn", 143_678_248),
            ("resnet18", 11_689_512),
            ("resnet34", 21_797_672),
            ("resnet50", 25_557_032),
            ("resnet101", 44_549_160),
            ("resnet152", 60_192_808),
            ("googlenet", 13_004_888),
        ] {
            let got = visit_model(name, 1000, &device, Count).unwrap();
            assert_eq!(got, want, "{name}");
        }
        // He et al. 2016, table 6: 0.27M for ResNet-20 on 3-channel CIFAR-10; ours reads
        // 1-channel images (288 weights fewer in the stem).
        assert_eq!(
            visit_model("resnet20", 10, &device, Count).unwrap(),
            269_722 - 288
        );
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    struct Valid(usize);
    impl ZooVisitor for Valid {
        type Output = bool;
        fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> bool {
            let side = self.0;
            // Below the bound burn may panic or return empty maps: both count as invalid.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let input = [spec.input[0], side, side];
                let layers = crate::models::vision::summarize(&model, input, &Device::flex());
                let x = Tensor::<4>::ones([1, spec.input[0], side, side], &Device::flex());
                let logits: Vec<f32> = model.forward(x).into_data().try_to_vec().unwrap();
                layers.iter().all(|l| l.output_shape.iter().all(|&d| d > 0))
                    && logits.iter().all(|v| v.is_finite())
            }))
            .unwrap_or(false)
        }
    }

    /// Each family at its smallest side runs with no empty feature map; one pixel less (and
    /// one more than LeNet's largest) would not, and `check_input_side` refuses it.
    #[test]
    fn input_sides_are_the_valid_ones() {
        for name in [
            "alexnet",
            "vgg11",
            "vgg-small",
            "googlenet-naive",
            "lenet5",
            "resnet18",
        ] {
            let s = spec(name).unwrap();
            let (min, max) = input_sides(name);
            assert!(
                visit_model(name, 10, &Device::flex(), Valid(min)).unwrap(),
                "{name} at {min}"
            );
            assert!(check_input_side(s, min).is_ok());
            let e = check_input_side(s, min - 1).unwrap_err().to_string();
            assert!(e.contains(&format!("between {min} and ")), "{e}");
            if min > 1 {
                assert!(
                    !visit_model(name, 10, &Device::flex(), Valid(min - 1)).unwrap(),
                    "{name} at {}",
                    min - 1
                );
            }
            if let Some(max) = max {
                assert!(check_input_side(s, max + 1).is_err());
            }
        }
    }
}

#[cfg(test)]
mod aux_tests {
    use super::*;

    /// GoogLeNet trains with its two side classifiers, weighted 0.3; the other models have none.
    #[test]
    fn googlenet_training_forward_has_weighted_aux_logits() {
        let device = Device::flex();
        let g = GoogLeNetConfig::new().with_num_classes(10).init(&device);
        let x = Tensor::<4>::zeros([1, 3, 64, 64], &device);
        let (logits, aux) = g.forward_train(x.clone());
        assert_eq!(logits.dims(), [1, 10]);
        assert_eq!(aux.len(), 2);
        for (a, w) in aux {
            assert_eq!(a.dims(), [1, 10]);
            assert_eq!(w, 0.3);
        }
        let r = ResNetConfig::cifar(20, 10, 3)
            .unwrap()
            .init::<BasicBlock>(&device);
        assert!(r
            .forward_train(Tensor::zeros([1, 3, 28, 28], &device))
            .1
            .is_empty());
    }
}
