//! The wgpu path gives the CPU's numbers: LeNet-5 training steps, a ResNet-18 forward and a
//! stacked bidirectional LSTM forward (with per-row lengths) on `Device::wgpu` against the same
//! weights and inputs on the CPU.
//!
//! On the CPU these run deepnet's own kernels (src/ops: convolution, max pooling, batch norm;
//! the fused recurrent kernel); on any other device those ops fall back to burn's, so each
//! comparison here also checks that fallback path against the kernels.
//!
//! Built only with `--features wgpu`. Without a GPU, scripts/test.sh (what `.ci/run` runs)
//! installs Mesa's lavapipe, a CPU Vulkan driver, so these run; where it cannot, it leaves them
//! out (`--skip wgpu_`) and says SKIPPED. Here a missing adapter is a failure, never a pass.
//! bench/gpu.sh runs this file on a real GPU too.
#![cfg(feature = "wgpu")]

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use deepnet::models::vision::{visit_model, ImageClassifier, ModelSpec, ZooVisitor};
use deepnet::recurrent::{Implementation, LstmConfig};
use deepnet::weights::torchvision::{export_state_dict, load_state_dict};
use deepnet::weights::StateDict;

fn gpu() -> Device {
    Device::wgpu(Default::default())
}

/// `n` numbers in [-1, 1) from a fixed linear congruential generator: the same on both sides.
fn numbers(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// The largest |a - b| over `scale` = max(1, max |b|).
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1f32, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
        / scale
}

fn identity(p: &str) -> String {
    p.to_string()
}

/// Three SGD steps (momentum 0.9) of a zoo model on a fixed batch, starting from `weights` (or
/// the model's own initialisation, which is then returned as the weights): the losses and the
/// final weights.
struct TrainSteps {
    weights: Option<StateDict>,
    device: Device,
}

struct Trained {
    start: StateDict,
    losses: Vec<f32>,
    end: StateDict,
}

impl ZooVisitor for TrainSteps {
    type Output = Trained;
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Trained {
        let model = match &self.weights {
            Some(w) => load_state_dict(model, &identity, w).unwrap(),
            None => model,
        };
        let start = export_state_dict(&model, &identity);
        let [c, h, w] = spec.input;
        let batch = 16;
        let x = Tensor::<4>::from_data(
            TensorData::new(numbers(batch * c * h * w, 1), [batch, c, h, w]),
            &self.device,
        );
        let labels: Vec<i64> = (0..batch as i64).map(|i| (i * 7) % 10).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &self.device);
        let loss_fn = CrossEntropyLossConfig::new().init(&self.device);
        let mut optim: ModuleOptimizer = SgdConfig::new()
            .with_momentum(Some(MomentumConfig {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: false,
            }))
            .init();
        let mut model = model;
        let mut losses = Vec::new();
        for _ in 0..3 {
            let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
            losses.push(values(loss.clone())[0]);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(0.05, model, grads);
        }
        Trained {
            start,
            losses,
            end: export_state_dict(&model, &identity),
        }
    }
}

#[test]
fn wgpu_lenet5_training_steps_match_the_cpu() {
    let cpu = visit_model(
        "lenet5",
        10,
        &Device::flex().autodiff(),
        TrainSteps {
            weights: None,
            device: Device::flex().autodiff(),
        },
    )
    .unwrap();
    let gpu = visit_model(
        "lenet5",
        10,
        &gpu().autodiff(),
        TrainSteps {
            weights: Some(cpu.start.clone()),
            device: gpu().autodiff(),
        },
    )
    .unwrap();
    eprintln!("losses cpu {:?} wgpu {:?}", cpu.losses, gpu.losses);
    assert!(
        cpu.losses[2] < cpu.losses[0] - 1e-3,
        "the steps must train: losses {:?}",
        cpu.losses
    );
    assert!(
        rel_diff(&gpu.losses, &cpu.losses) < 1e-4,
        "losses: wgpu {:?}, cpu {:?}",
        gpu.losses,
        cpu.losses
    );
    let mut moved = 0f32;
    for (name, want) in &cpu.end.tensors {
        let got = &gpu.end.tensors[name];
        let d = rel_diff(&got.data, &want.data);
        assert!(d < 1e-4, "{name}: wgpu and cpu weights differ by {d}");
        moved = moved.max(rel_diff(&want.data, &cpu.start.tensors[name].data));
    }
    assert!(moved > 1e-3, "the weights must have moved ({moved})");
}

/// Logits of a zoo model for a fixed batch of two different images of side `side`.
struct Forward {
    weights: Option<StateDict>,
    device: Device,
    side: usize,
}

impl ZooVisitor for Forward {
    type Output = (StateDict, Vec<f32>);
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Self::Output {
        let model = match &self.weights {
            Some(w) => load_state_dict(model, &identity, w).unwrap(),
            None => model,
        };
        let (c, h, w) = (spec.input[0], self.side, self.side);
        let x = Tensor::<4>::from_data(
            TensorData::new(numbers(2 * c * h * w, 2), [2, c, h, w]),
            &self.device,
        );
        (
            export_state_dict(&model, &identity),
            values(model.forward(x)),
        )
    }
}

/// At 64x64 (ResNet-18 takes any side; 224 would cost lavapipe minutes).
#[test]
fn wgpu_resnet18_forward_matches_the_cpu() {
    let forward = |weights, device: Device| Forward {
        weights,
        device,
        side: 64,
    };
    let (weights, cpu) = visit_model(
        "resnet18",
        1000,
        &Device::flex(),
        forward(None, Device::flex()),
    )
    .unwrap();
    let (_, gpu) = visit_model("resnet18", 1000, &gpu(), forward(Some(weights), gpu())).unwrap();
    let d = rel_diff(&gpu, &cpu);
    assert!(d < 1e-4, "resnet18 logits: wgpu and cpu differ by {d}");
    // Random-init ResNet-18's logits depend only weakly on the input (batch norm at its initial
    // running statistics, a global average pool): the check above alone could pass for logits
    // that ignore the image. So the difference between the two images' logits must itself
    // match, relative to its own size, and that size must be far above the error.
    let difference = |l: &[f32]| -> Vec<f32> {
        let (first, second) = l.split_at(1000);
        first.iter().zip(second).map(|(a, b)| a - b).collect()
    };
    let (diff_cpu, diff_gpu) = (difference(&cpu), difference(&gpu));
    let size = diff_cpu.iter().fold(0f32, |m, x| m.max(x.abs()));
    let error = diff_gpu
        .iter()
        .zip(&diff_cpu)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("between-image difference {size}, its wgpu-vs-cpu error {error}");
    assert!(size > 1e-4, "the two images' logits differ by only {size}");
    assert!(
        error < 0.02 * size,
        "the between-image difference: wgpu and cpu differ by {error} of {size}"
    );
}

#[test]
fn wgpu_lstm_forward_matches_the_cpu() {
    let config = LstmConfig::new(8, 16)
        .with_num_layers(2)
        .with_bidirectional(true);
    let cpu_layer = config.init(&Device::flex());
    let weights = cpu_layer.torch_state_dict();
    let gpu_layer = config.init(&gpu()).load_torch(&weights).unwrap();
    let (t, b, i) = (12, 3, 8);
    let input = numbers(t * b * i, 3);
    let lengths = [12, 7, 1];
    let run = |layer: &deepnet::recurrent::Lstm, device: &Device| {
        let x = Tensor::<3>::from_data(TensorData::new(input.clone(), [t, b, i]), device);
        let (out, state) = layer
            .forward_with(x, Some(&lengths), None, Implementation::Auto)
            .unwrap();
        (values(out), values(state.h), values(state.c))
    };
    let (out_cpu, h_cpu, c_cpu) = run(&cpu_layer, &Device::flex());
    let (out_gpu, h_gpu, c_gpu) = run(&gpu_layer, &gpu());
    for (what, a, b) in [
        ("output", &out_gpu, &out_cpu),
        ("h", &h_gpu, &h_cpu),
        ("c", &c_gpu, &c_cpu),
    ] {
        let d = rel_diff(a, b);
        assert!(d < 1e-5, "lstm {what}: wgpu and cpu differ by {d}");
    }
    // The output depends on the input: row 0 and row 1 differ at the first step.
    let row = 2 * 16;
    let between = rel_diff(&out_cpu[..row], &out_cpu[row..2 * row]);
    assert!(between > 1e-3, "rows differ by only {between}");
}
