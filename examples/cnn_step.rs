//! Times ResNet inference or a training step on random data, for bench/cnn_bench.py. Prints one
//! JSON line: the median milliseconds per batch, and the fastest batch (`min_ms`, steadier on a
//! busy machine).
//!
//! cargo run --release --example cnn_step -- MODEL (infer|train) BATCH [STEPS] [DEVICE]
//! (inference at 3x224x224 for ImageNet models, training at the model's own input size with SGD,
//! momentum 0.9, cross-entropy on random labels). DEVICE is `cpu` (default), `wgpu` or `cuda`
//! (with the cargo feature of that name); on a GPU each timed batch ends with `Device::sync`, so
//! the time is the device's work, not the time to queue it.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use deepnet::models::vision::{visit_model, ImageClassifier, ModelSpec, ZooVisitor};

struct Bench {
    train: bool,
    batch: usize,
    steps: usize,
    device: Device,
}

impl ZooVisitor for Bench {
    type Output = (f64, f64);
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> (f64, f64) {
        let [c, h, w] = spec.input;
        let device = self.device.clone();
        let x = Tensor::<4>::random([self.batch, c, h, w], Distribution::Default, &device);
        let mut times = Vec::new();
        if self.train {
            let labels: Vec<i64> = (0..self.batch).map(|i| (i % spec.classes) as i64).collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [self.batch]), &device);
            let loss_fn = CrossEntropyLossConfig::new().init(&device);
            let mut optim: ModuleOptimizer = SgdConfig::new()
                .with_momentum(Some(MomentumConfig {
                    momentum: 0.9,
                    dampening: 0.0,
                    nesterov: false,
                }))
                .init();
            let mut model = model;
            for i in 0..self.steps + 2 {
                let t = Instant::now();
                let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(0.1, model, grads);
                device.sync().expect("device sync");
                if i >= 2 {
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
        } else {
            for i in 0..self.steps + 2 {
                let t = Instant::now();
                let logits = model.forward(x.clone());
                let _ = logits.into_data();
                if i >= 2 {
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        times.sort_by(f64::total_cmp);
        (times[times.len() / 2], times[0])
    }
}

/// The device named on the command line. Training runs on its autodiff wrapper; the model is
/// built there so its parameters track gradients.
fn device(name: &str, train: bool) -> Device {
    let device = match name {
        "cpu" => Device::flex(),
        #[cfg(feature = "wgpu")]
        "wgpu" => Device::wgpu(Default::default()),
        #[cfg(feature = "cuda")]
        "cuda" => Device::cuda(0),
        other => {
            eprintln!("device {other} is not built in (cpu, or wgpu/cuda with their features)");
            std::process::exit(2)
        }
    };
    if train {
        device.autodiff()
    } else {
        device
    }
}

fn main() {
    deepnet::ops::tune_allocator();
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: cnn_step MODEL (infer|train) BATCH [STEPS] [cpu|wgpu|cuda]";
    let (Some(model), Some(mode), Some(batch)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let batch: usize = batch.parse().unwrap_or(1);
    let steps: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(5);
    let device = device(args.get(5).map_or("cpu", String::as_str), mode == "train");
    let bench = Bench {
        train: mode == "train",
        batch,
        steps,
        device: device.clone(),
    };
    let spec = deepnet::models::vision::spec(model).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let (ms, min_ms) = visit_model(model, spec.classes, &device, bench).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    println!(
        "{{\"model\": \"{model}\", \"mode\": \"{mode}\", \"batch\": {batch}, \"ms\": {ms:.3}, \"min_ms\": {min_ms:.3}}}"
    );
}
