//! Truncated BPTT is a mode of the one training loop: a sequence task (an LSTM that outputs the
//! running sum of its inputs) trained by `fit` with `tbptt = 4` ends with exactly the weights
//! of a hand-written truncated-BPTT loop (windows of 4 steps, the state carried and detached,
//! one Adam step per window), and with other weights than full backpropagation through time.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use deepnet::recurrent::{Lstm, LstmConfig, LstmState};
use deepnet::train::trainer::{build_optimizer, epoch_seed, materialize};
use deepnet::train::{
    fit, OptimizerKind, SampleSeeds, Schedule, Silent, Stats, Task, TrainConfig, TrainOutput,
};
use deepnet::Result;

#[derive(Module, Debug)]
struct RunningSum {
    lstm: Lstm,
    head: Linear,
}

impl RunningSum {
    fn new(device: &Device) -> Self {
        RunningSum {
            lstm: LstmConfig::new(1, 8).init(device),
            head: LinearConfig::new(8, 1).init(device),
        }
    }

    /// Predictions `[T, B, 1]` and the state after the last step.
    fn forward(&self, x: Tensor<3>, state: Option<LstmState>) -> Result<(Tensor<3>, LstmState)> {
        let (out, state) = self.lstm.forward(x, state)?; // [T, B, 8]
        Ok((self.head.forward(out), state))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SumStats {
    loss_sum: f64,
    steps: usize,
}

impl Stats for SumStats {
    fn merge(&mut self, o: &Self) {
        self.loss_sum += o.loss_sum;
        self.steps += o.steps;
    }
    fn items(&self) -> usize {
        self.steps
    }
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        vec![("loss", self.loss_sum / self.steps.max(1) as f64)]
    }
}

/// 24 sequences of 10 steps: inputs from a fixed pseudo-random rule, targets their running sum.
struct SumTask {
    x: Vec<f32>,
}

const T: usize = 10;
const N: usize = 24;

impl SumTask {
    fn new() -> Self {
        let x = (0..N * T)
            .map(|i| (((i * 7919) % 101) as f32 / 50.0 - 1.0) * 0.5)
            .collect();
        SumTask { x }
    }

    /// `([T, B, 1] inputs, [T, B, 1] running sums)` of sequences `indices`.
    fn batch(&self, indices: &[usize], device: &Device) -> (Tensor<3>, Tensor<3>) {
        let b = indices.len();
        let (mut x, mut y) = (vec![0f32; T * b], vec![0f32; T * b]);
        for (j, &i) in indices.iter().enumerate() {
            let mut sum = 0.0;
            for t in 0..T {
                let v = self.x[i * T + t];
                sum += v;
                x[t * b + j] = v;
                y[t * b + j] = sum;
            }
        }
        let tensor = |v| Tensor::<3>::from_data(TensorData::new(v, [T, b, 1]), device);
        (tensor(x), tensor(y))
    }
}

fn mse(pred: Tensor<3>, y: Tensor<3>) -> Tensor<1> {
    (pred - y).powf_scalar(2.0).mean()
}

impl Task for SumTask {
    type Model = RunningSum;
    type Batch = (Tensor<3>, Tensor<3>);
    type Stats = SumStats;
    type Carry = Option<LstmState>;

    fn unit(&self) -> &'static str {
        "steps"
    }
    fn train_len(&self) -> usize {
        N
    }
    fn valid_len(&self) -> usize {
        8
    }
    fn train_batch(&self, idx: &[usize], _: SampleSeeds, device: &Device) -> Result<Self::Batch> {
        Ok(self.batch(idx, device))
    }
    fn valid_batch(&self, idx: &[usize], device: &Device) -> Result<Self::Batch> {
        Ok(self.batch(idx, device))
    }
    fn train_step(
        &self,
        model: &RunningSum,
        (x, y): Self::Batch,
        carry: Option<LstmState>,
    ) -> Result<TrainOutput<SumStats, Option<LstmState>>> {
        let steps = x.dims()[0] * x.dims()[1];
        let (pred, state) = model.forward(x, carry)?;
        let loss = mse(pred, y);
        Ok(TrainOutput {
            stats: SumStats {
                loss_sum: loss.clone().into_scalar::<f32>() as f64 * steps as f64,
                steps,
            },
            loss,
            carry: Some(state),
        })
    }
    fn valid_step(&self, model: &RunningSum, (x, y): Self::Batch) -> Result<SumStats> {
        let steps = x.dims()[0] * x.dims()[1];
        let loss = mse(model.forward(x, None)?.0, y);
        Ok(SumStats {
            loss_sum: loss.into_scalar::<f32>() as f64 * steps as f64,
            steps,
        })
    }
    fn has_time_axis(&self) -> bool {
        true
    }
    fn split_time(&self, (x, y): Self::Batch, steps: usize) -> Result<Vec<Self::Batch>> {
        let t = x.dims()[0];
        Ok((0..t)
            .step_by(steps)
            .map(|s| {
                let len = steps.min(t - s);
                (x.clone().narrow(0, s, len), y.clone().narrow(0, s, len)) // [len, B, 1]
            })
            .collect())
    }
}

fn config(tbptt: Option<usize>) -> TrainConfig {
    TrainConfig {
        epochs: 2,
        batch_size: 8,
        lr: 1e-2,
        optimizer: OptimizerKind::Adam,
        schedule: Schedule::Constant,
        seed: 5,
        tbptt,
        ..TrainConfig::default()
    }
}

fn values(m: &RunningSum) -> Vec<f32> {
    let x = Tensor::<3>::from_data(
        TensorData::new(vec![0.3f32, -0.2, 0.5], [3, 1, 1]),
        &Device::flex(),
    );
    m.valid()
        .forward(x, None)
        .unwrap()
        .0
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn the_loop_in_tbptt_mode_equals_a_hand_written_truncated_bptt() {
    let device = Device::flex().autodiff();
    device.seed(1);
    let model = RunningSum::new(&device);
    materialize(&model);
    let task = SumTask::new();
    let tmp = tempfile::tempdir().unwrap();

    let cfg = config(Some(4));
    let fitted = fit(
        &task,
        model.clone(),
        &cfg,
        &serde_json::Value::Null,
        tmp.path(),
        None,
        &device,
        &mut Silent,
    )
    .unwrap();
    // 3 batches of 8 per epoch; each 10-step batch is 3 windows (4, 4, 2 steps).
    assert_eq!(fitted.history.len(), 2);
    assert_eq!(fitted.history[1].global_step, 6);

    // By hand: the same batches, windows of 4 steps, state carried and detached.
    let mut optim = build_optimizer(&cfg);
    let mut by_hand = model.clone();
    for epoch in 1..=cfg.epochs {
        for idx in task.epoch_batches(epoch_seed(cfg.seed, epoch), cfg.batch_size) {
            let (x, y) = task.batch(&idx, &device);
            let mut state: Option<LstmState> = None;
            for start in (0..T).step_by(4) {
                let len = 4.min(T - start);
                let (pred, next) = by_hand
                    .forward(x.clone().narrow(0, start, len), state.take())
                    .unwrap();
                let loss = mse(pred, y.clone().narrow(0, start, len));
                let grads = GradientsParams::from_grads(loss.backward(), &by_hand);
                by_hand = optim.step(cfg.lr, by_hand, grads);
                state = Some(next.detach());
            }
        }
    }
    assert_eq!(values(&fitted.model), values(&by_hand));

    // Full backpropagation through time is another training.
    let full = fit(
        &task,
        model,
        &config(None),
        &serde_json::Value::Null,
        &tmp.path().join("full"),
        None,
        &device,
        &mut Silent,
    )
    .unwrap();
    assert_ne!(values(&full.model), values(&fitted.model));
    // The loss fell in both.
    for h in [&fitted.history, &full.history] {
        assert!(h[1].val.get("loss").unwrap() < h[0].train.get("loss").unwrap());
    }
}
