//! Times one training step (forward + backward + SGD update) of a one-layer LSTM or GRU on
//! random data, for bench/rnn_train.py. Prints one JSON line: the median milliseconds per step.
//!
//! cargo run --release --example rnn_step -- CELL IMPL HIDDEN [STEPS] [SEQ BATCH INPUT]
//! CELL: lstm | gru; IMPL: fused (deepnet's layer on its kernel) | reference (deepnet's layer,
//! step by step with burn ops) | burn (burn::nn::Lstm / Gru).

use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Distribution, Tensor};
use deepnet::recurrent::{GruConfig, Implementation, LstmConfig};

fn arg(args: &[String], i: usize, default: usize) -> usize {
    args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn time_steps<M, F>(mut model: M, steps: usize, mut loss_of: F) -> f64
where
    M: Module,
    F: FnMut(&M) -> Tensor<1>,
{
    let mut optim: ModuleOptimizer = SgdConfig::new().init();
    let mut times = Vec::new();
    for i in 0..steps + 2 {
        let start = Instant::now();
        let loss = loss_of(&model);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.01, model, grads);
        if i >= 2 {
            // The first two steps warm up allocators and caches.
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    deepnet::ops::tune_allocator();
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: rnn_step CELL(lstm|gru) IMPL(fused|reference|burn) HIDDEN [STEPS] [SEQ BATCH INPUT]";
    let (cell, imp) = match (args.get(1), args.get(2)) {
        (Some(c), Some(i)) => (c.as_str(), i.as_str()),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let hidden = arg(&args, 3, 256);
    let steps = arg(&args, 4, 10);
    let (seq, batch, input) = (arg(&args, 5, 100), arg(&args, 6, 32), arg(&args, 7, 64));
    let device = Device::flex().autodiff();
    let x = Tensor::<3>::random([seq, batch, input], Distribution::Default, &device); // [T, B, I]
    let x_bf = x.clone().swap_dims(0, 1); // [B, T, I] for burn's batch-first layers
    let implementation = if imp == "reference" {
        Implementation::Reference
    } else {
        Implementation::Auto
    };
    let ms = match (cell, imp) {
        ("lstm", "fused" | "reference") => {
            let m = LstmConfig::new(input, hidden).init(&device);
            time_steps(m, steps, |m| {
                let (out, _) = m
                    .forward_with(x.clone(), None, None, implementation)
                    .expect("forward");
                out.powf_scalar(2.0).mean()
            })
        }
        ("gru", "fused" | "reference") => {
            let m = GruConfig::new(input, hidden).init(&device);
            time_steps(m, steps, |m| {
                let (out, _) = m
                    .forward_with(x.clone(), None, None, implementation)
                    .expect("forward");
                out.powf_scalar(2.0).mean()
            })
        }
        ("lstm", "burn") => {
            let m = burn::nn::LstmConfig::new(input, hidden, true).init(&device);
            time_steps(m, steps, |m| {
                m.forward(x_bf.clone(), None).0.powf_scalar(2.0).mean()
            })
        }
        ("gru", "burn") => {
            let m = burn::nn::GruConfig::new(input, hidden, true).init(&device);
            time_steps(m, steps, |m| {
                m.forward(x_bf.clone(), None).powf_scalar(2.0).mean()
            })
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    println!(
        "{{\"cell\": \"{cell}\", \"impl\": \"{imp}\", \"hidden\": {hidden}, \"seq\": {seq}, \"batch\": {batch}, \"input\": {input}, \"ms_per_step\": {ms:.3}}}"
    );
}
