//! Times one training step of the character language model of `deepnet lm-train` (embedding,
//! stacked LSTM or GRU, linear over the vocabulary, cross-entropy, global-norm clipping at 1,
//! Adam) on random ids, for bench/char_lm_train.py. Prints one JSON line: the median
//! milliseconds per step and characters per second.
//!
//! cargo run --release --example char_lm_step -- CELL [STEPS] [BATCH BPTT VOCAB EMBED HIDDEN LAYERS]

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use deepnet::models::{CellType, CharLmConfig};
use deepnet::train::clip_grad_norm;

fn arg(args: &[String], i: usize, default: usize) -> usize {
    args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    deepnet::ops::tune_allocator();
    let args: Vec<String> = std::env::args().collect();
    let cell = match args.get(1).map(String::as_str) {
        Some("lstm") => CellType::Lstm,
        Some("gru") => CellType::Gru,
        _ => {
            eprintln!(
                "usage: char_lm_step CELL(lstm|gru) [STEPS] [BATCH BPTT VOCAB EMBED HIDDEN LAYERS]"
            );
            std::process::exit(2);
        }
    };
    let steps = arg(&args, 2, 10);
    let (batch, bptt, vocab) = (arg(&args, 3, 32), arg(&args, 4, 100), arg(&args, 5, 100));
    let (embed, hidden, layers) = (arg(&args, 6, 64), arg(&args, 7, 256), arg(&args, 8, 2));
    let device = Device::flex().autodiff();
    device.seed(0);
    let mut model = CharLmConfig::new(vocab)
        .with_embed_size(embed)
        .with_hidden_size(hidden)
        .with_num_layers(layers)
        .with_cell(cell)
        .init(&device);
    // Ids drawn from a fixed LCG: the same data in every process.
    let mut x = 12345u64;
    let ids: Vec<i64> = (0..batch * (bptt + 1))
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) % vocab as u64) as i64
        })
        .collect();
    let window = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, bptt + 1]), &device);
    let mut optim: ModuleOptimizer = AdamConfig::new().with_epsilon(1e-8).init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut times = Vec::new();
    let mut state = None;
    for i in 0..steps + 2 {
        let start = Instant::now();
        let inputs = window.clone().narrow(1, 0, bptt); // [B, T]
        let targets = window.clone().narrow(1, 1, bptt).reshape([batch * bptt]); // [B·T]
        let (logits, s) = model.forward(inputs, state).expect("forward"); // [B, T, V]
        let loss = loss_fn.forward(logits.reshape([batch * bptt, vocab]), targets);
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        clip_grad_norm(&model, &mut grads, 1.0);
        model = optim.step(2e-3, model, grads);
        // The state carried into the next window, cut from the graph (truncated BPTT).
        state = Some(deepnet::recurrent::tbptt::Detach::detach(s));
        if i >= 2 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let ms = times[times.len() / 2];
    println!(
        "{{\"cell\": \"{}\", \"batch\": {batch}, \"bptt\": {bptt}, \"vocab\": {vocab}, \"embed\": {embed}, \"hidden\": {hidden}, \"layers\": {layers}, \"ms_per_step\": {ms:.3}, \"chars_per_s\": {:.1}}}",
        args[1],
        (batch * bptt) as f64 / (ms / 1e3)
    );
}
