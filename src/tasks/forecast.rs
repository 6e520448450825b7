//! Video prediction on Moving Fashion-MNIST ([`crate::data::moving`]): read 10 frames, predict
//! the next 10, with the ConvLSTM encoder-forecaster of Shi et al. 2015 or its FC-LSTM
//! baseline ([`crate::models::forecaster`]), scored against "repeat the last frame".
//! `deepnet forecast-train` and `deepnet forecast` are the functions of this file.
//!
//! **Data.** Training and validation sequences are made of Fashion-MNIST training images,
//! test sequences of test images; each split's sequences are fixed by their seed (sequence `i`
//! is a function of the seed and `i`), generated when a batch needs them.
//!
//! **Loss.** Per-pixel binary cross-entropy between the predicted intensity `σ(z)` and the true
//! intensity `y ∈ [0, 1]`: `ℓ = −y log σ(z) − (1 − y) log(1 − σ(z)) = (1 − y) z − log σ(z)`,
//! averaged over pixels (the paper's cross-entropy, up to the constant factor of the sum).
//!
//! **Report.** For each of the 10 predicted frames, over the test sequences: the mean squared
//! error per pixel (intensities in [0, 1]) and the cross-entropy summed over the frame's 4096
//! pixels (each log clamped at −100, as PyTorch's `BCELoss`, so that the last-frame baseline's
//! certain 0s and 1s give a finite figure), for the network and for the last-frame baseline;
//! and PNG strips (input, truth, prediction) of the first test sequences.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, sigmoid};
use serde::{Deserialize, Serialize};

use crate::data::mnist::ImageDataset;
use crate::data::moving::{generate, Sequence, FRAMES_IN, FRAMES_OUT, FRAME_SIDE};
use crate::data::{FashionMnist, SampleSeeds, Split};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::models::forecaster::{Forecaster, ForecasterConfig, ForecasterKind};
use crate::train::checkpoint::{load_weights, read_checkpoint_meta, resolve_checkpoint};
use crate::train::run::{create_run_dir_with_config, refuse_existing_run, resume_config};
use crate::train::{fit, EpochRecord, Observer, Stats, Task, TrainConfig, TrainOutput};

/// The name of this task in `config.json`.
pub const TASK: &str = "forecast";

/// Pixels of a frame.
const PIXELS: usize = FRAME_SIDE * FRAME_SIDE;

/// Test sequences drawn as strips in the report.
const STRIPS: usize = 4;

/// Where the sequences come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovingData {
    /// The Fashion-MNIST directory (training split: training and validation sequences; test
    /// split: test sequences).
    pub fashion_mnist: PathBuf,
    /// Sequences: training, validation, test.
    pub sequences: [usize; 3],
    /// Seed of the training sequences; validation and test seeds are derived from it.
    pub seed: u64,
}

impl MovingData {
    fn seeds(&self) -> [u64; 3] {
        [
            self.seed,
            self.seed ^ 0x7661_6c69_6400,
            self.seed ^ 0x7465_7374_0000,
        ]
    }
}

/// The contents of `config.json` of a video-prediction run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastRun {
    /// The task (`forecast`).
    pub task: String,
    /// The network.
    pub model: ForecasterConfig,
    /// The sequences.
    pub data: MovingData,
    /// Training settings.
    pub train: TrainConfig,
    /// deepnet version that wrote the run.
    pub deepnet_version: String,
}

impl ForecastRun {
    fn from_json(v: serde_json::Value, origin: &Path) -> Result<ForecastRun> {
        crate::train::run::task_config(v, origin, TASK, "video prediction")
    }
}

/// The three splits' item sources and seeds.
pub struct MovingSets {
    train_items: ImageDataset,
    test_items: ImageDataset,
    data: MovingData,
}

impl MovingSets {
    /// Reads Fashion-MNIST for `data`.
    pub fn load(data: &MovingData) -> Result<MovingSets> {
        if data.sequences.contains(&0) || data.sequences.iter().any(|&n| n > 10_000_000) {
            return Err(Error::invalid(
                "sequences",
                format!(
                    "{:?}: each split needs 1 to 10,000,000 sequences",
                    data.sequences
                ),
            ));
        }
        Ok(MovingSets {
            train_items: FashionMnist::load(&data.fashion_mnist, Split::Train)?,
            test_items: FashionMnist::load(&data.fashion_mnist, Split::Test)?,
            data: data.clone(),
        })
    }

    /// Sequence `i` of split `split` (0 training, 1 validation, 2 test).
    pub fn sequence(&self, split: usize, i: usize) -> Result<Sequence> {
        let source = if split == 2 {
            &self.test_items
        } else {
            &self.train_items
        };
        generate(source, self.data.seeds()[split], i)
    }

    fn len(&self, split: usize) -> usize {
        self.data.sequences[split]
    }

    /// The batch of sequences `rows` of `split`.
    fn batch(&self, split: usize, rows: &[usize], device: &Device) -> Result<FrameBatch> {
        let mut input = Vec::with_capacity(rows.len() * FRAMES_IN * PIXELS);
        let mut target = Vec::with_capacity(rows.len() * FRAMES_OUT * PIXELS);
        for &i in rows {
            let s = self.sequence(split, i)?;
            let (a, b) = s.frames.split_at(FRAMES_IN * PIXELS);
            input.extend(a.iter().map(|&p| p as f32 / 255.0));
            target.extend(b.iter().map(|&p| p as f32 / 255.0));
        }
        Ok(FrameBatch::new(input, target, rows.len(), device))
    }
}

/// Input and target frames of some sequences.
pub struct FrameBatch {
    /// `[B, T_in, 64, 64]`, intensities in [0, 1].
    pub input: Tensor<4>,
    /// `[B, T_out, 64, 64]`.
    pub target: Tensor<4>,
}

impl FrameBatch {
    fn new(input: Vec<f32>, target: Vec<f32>, b: usize, device: &Device) -> FrameBatch {
        let s = FRAME_SIDE;
        FrameBatch {
            input: Tensor::from_data(TensorData::new(input, [b, FRAMES_IN, s, s]), device),
            target: Tensor::from_data(TensorData::new(target, [b, FRAMES_OUT, s, s]), device),
        }
    }
}

/// Summed statistics of some predicted frames.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameStats {
    /// Sequences.
    pub sequences: usize,
    /// Predicted pixels.
    pub pixels: usize,
    /// Summed per-pixel cross-entropy.
    pub bce: f64,
    /// Summed squared error of the intensities.
    pub squared_error: f64,
}

impl Stats for FrameStats {
    fn merge(&mut self, o: &Self) {
        self.sequences += o.sequences;
        self.pixels += o.pixels;
        self.bce += o.bce;
        self.squared_error += o.squared_error;
    }
    fn items(&self) -> usize {
        self.sequences
    }
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        let px = self.pixels.max(1) as f64;
        vec![
            ("loss", self.bce / px),
            ("mse", self.squared_error / px),
            ("bce_per_frame", self.bce / px * PIXELS as f64),
        ]
    }
}

/// Per-pixel cross-entropy of logits `z` against intensities `y`, `(1 − y) z − log σ(z)`.
fn cross_entropy(z: Tensor<4>, y: Tensor<4>) -> Tensor<4> {
    (y.ones_like() - y) * z.clone() - log_sigmoid(z)
}

fn frame_loss(model: &Forecaster, batch: FrameBatch) -> Result<(Tensor<1>, FrameStats)> {
    let b = batch.input.dims()[0];
    let z = model.forward(batch.input)?; // [B, T_out, 64, 64]
    let ce = cross_entropy(z.clone(), batch.target.clone());
    let pixels = ce.shape().num_elements();
    let loss = ce.clone().mean();
    let se = (sigmoid(z.detach()) - batch.target).powi_scalar(2).sum();
    let bce: f32 = ce.detach().sum().into_scalar();
    let squared_error: f32 = se.into_scalar();
    Ok((
        loss,
        FrameStats {
            sequences: b,
            pixels,
            bce: bce as f64,
            squared_error: squared_error as f64,
        },
    ))
}

/// Video prediction on [`MovingSets`].
pub struct ForecastTask<'a> {
    sets: &'a MovingSets,
}

impl Task for ForecastTask<'_> {
    type Model = Forecaster;
    type Batch = FrameBatch;
    type Stats = FrameStats;
    type Carry = ();

    fn unit(&self) -> &'static str {
        "sequences"
    }
    fn train_len(&self) -> usize {
        self.sets.len(0)
    }
    fn valid_len(&self) -> usize {
        self.sets.len(1)
    }
    fn train_batch(
        &self,
        indices: &[usize],
        _seeds: SampleSeeds,
        device: &Device,
    ) -> Result<FrameBatch> {
        self.sets.batch(0, indices, device)
    }
    fn valid_batch(&self, indices: &[usize], device: &Device) -> Result<FrameBatch> {
        self.sets.batch(1, indices, device)
    }
    fn train_step(
        &self,
        model: &Forecaster,
        batch: FrameBatch,
        _carry: (),
    ) -> Result<TrainOutput<FrameStats, ()>> {
        let (loss, stats) = frame_loss(model, batch)?;
        Ok(TrainOutput::new(loss, stats))
    }
    fn valid_step(&self, model: &Forecaster, batch: FrameBatch) -> Result<FrameStats> {
        Ok(frame_loss(model, batch)?.1)
    }
    fn default_valid_batch_size(&self, train_batch_size: usize) -> usize {
        train_batch_size.clamp(1, 64)
    }
}

/// Per-frame scores of one predictor on the test sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameScores {
    /// What predicted: `last frame`, `ConvLSTM`, `FC-LSTM`.
    pub method: String,
    /// Mean squared error per pixel of each predicted frame (intensities in [0, 1]).
    pub mse: Vec<f64>,
    /// Cross-entropy summed over each predicted frame's pixels.
    pub bce: Vec<f64>,
}

impl FrameScores {
    /// Mean over the predicted frames of the per-frame MSE.
    pub fn mean_mse(&self) -> f64 {
        self.mse.iter().sum::<f64>() / self.mse.len().max(1) as f64
    }
    /// Mean over the predicted frames of the per-frame cross-entropy.
    pub fn mean_bce(&self) -> f64 {
        self.bce.iter().sum::<f64>() / self.bce.len().max(1) as f64
    }
}

/// `log p` clamped at −100, as PyTorch's `BCELoss`.
fn clamped_ln(p: f64) -> f64 {
    p.ln().max(-100.0)
}

/// Accumulates per-frame squared error and cross-entropy of predicted intensities `p` against
/// `y` (both `[T_out, 64, 64]` of one sequence, in [0, 1]).
fn accumulate(p: &[f32], y: &[f32], mse: &mut [f64], bce: &mut [f64]) {
    for (t, (pf, yf)) in p.chunks(PIXELS).zip(y.chunks(PIXELS)).enumerate() {
        for (&p, &y) in pf.iter().zip(yf) {
            let (p, y) = (p as f64, y as f64);
            mse[t] += (p - y) * (p - y);
            bce[t] -= y * clamped_ln(p) + (1.0 - y) * clamped_ln(1.0 - p);
        }
    }
}

/// Predicted intensities (`σ(logits)`) of `model` for input frames `[B, T_in, 64, 64]`.
pub fn predict(model: &Forecaster, input: Tensor<4>) -> Result<Vec<f32>> {
    floats(sigmoid(model.forward(input)?))
}

fn floats(t: Tensor<4>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| Error::invalid("frames", format!("{e:?}")))
}

/// What the test report holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastReport {
    /// The network.
    pub model_kind: ForecasterKind,
    /// Sequences: train, validation, test.
    pub sequences: [usize; 3],
    /// "Repeat the last input frame".
    pub last_frame: FrameScores,
    /// The run's network.
    pub model: FrameScores,
    /// The network's validation scores (what runs are chosen on).
    pub valid: FrameScores,
    /// Trainable parameters of the network.
    pub parameters: usize,
}

/// Scores `model` and the last-frame baseline on split `split`.
fn score_split(
    model: &Forecaster,
    sets: &MovingSets,
    split: usize,
    device: &Device,
    strips: Option<&Path>,
) -> Result<(FrameScores, FrameScores)> {
    let n = sets.len(split);
    let label = model.kind().label().to_string();
    let mut net = FrameScores {
        method: label,
        mse: vec![0.0; FRAMES_OUT],
        bce: vec![0.0; FRAMES_OUT],
    };
    let mut last = FrameScores {
        method: "last frame".into(),
        ..net.clone()
    };
    let rows: Vec<usize> = (0..n).collect();
    for chunk in rows.chunks(64) {
        let batch = sets.batch(split, chunk, device)?;
        let y = floats(batch.target.clone())?;
        let x = floats(batch.input.clone())?;
        let p = predict(model, batch.input)?;
        for (k, &row) in chunk.iter().enumerate() {
            let ys = &y[k * FRAMES_OUT * PIXELS..(k + 1) * FRAMES_OUT * PIXELS];
            let ps = &p[k * FRAMES_OUT * PIXELS..(k + 1) * FRAMES_OUT * PIXELS];
            accumulate(ps, ys, &mut net.mse, &mut net.bce);
            let x_last = &x[((k + 1) * FRAMES_IN - 1) * PIXELS..(k + 1) * FRAMES_IN * PIXELS];
            let repeated: Vec<f32> = x_last.repeat(FRAMES_OUT);
            accumulate(&repeated, ys, &mut last.mse, &mut last.bce);
            if let Some(dir) = strips {
                if row < STRIPS {
                    let seq = sets.sequence(split, row)?;
                    let pred: Vec<u8> = ps.iter().map(|&v| (v * 255.0).round() as u8).collect();
                    write_strip(&seq, &pred, &dir.join(format!("test-{row}.png")))?;
                }
            }
        }
    }
    for s in [&mut net, &mut last] {
        s.mse.iter_mut().for_each(|v| *v /= (n * PIXELS) as f64);
        s.bce.iter_mut().for_each(|v| *v /= n as f64);
    }
    Ok((net, last))
}

/// Writes one PNG of three rows of frames: the input frames, the true next frames (after the
/// gap of one frame's width under the input's last), and the predicted ones under them.
pub fn write_strip(seq: &Sequence, prediction: &[u8], path: &Path) -> Result<()> {
    let (s, gap) = (FRAME_SIDE, 2);
    let cols = FRAMES_IN.max(FRAMES_OUT);
    let w = cols * (s + gap) - gap;
    let h = 3 * (s + gap) - gap;
    let mut img = image::GrayImage::from_pixel(w as u32, h as u32, image::Luma([96]));
    let mut put = |row: usize, col: usize, frame: &[u8]| {
        for y in 0..s {
            for x in 0..s {
                img.put_pixel(
                    (col * (s + gap) + x) as u32,
                    (row * (s + gap) + y) as u32,
                    image::Luma([frame[y * s + x]]),
                );
            }
        }
    };
    for t in 0..FRAMES_IN {
        put(0, t, seq.frame(t));
    }
    for t in 0..FRAMES_OUT {
        put(1, t, seq.frame(FRAMES_IN + t));
        put(2, t, &prediction[t * PIXELS..(t + 1) * PIXELS]);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    img.save(path)
        .map_err(|e| Error::bad_data(path, format!("cannot write PNG: {e}")))
}

/// Scores the network and the baseline on the test (and validation) sequences; draws strips of
/// the first test sequences into `report/strips/`.
pub fn test_report(
    model: &Forecaster,
    sets: &MovingSets,
    dir: &Path,
    device: &Device,
) -> Result<ForecastReport> {
    let (valid, _) = score_split(model, sets, 1, device, None)?;
    let strips = dir.join("report").join("strips");
    let (net, last) = score_split(model, sets, 2, device, Some(&strips))?;
    Ok(ForecastReport {
        model_kind: model.kind(),
        sequences: sets.data.sequences,
        last_frame: last,
        model: net,
        valid,
        parameters: model.num_params(),
    })
}

/// What starting a run asks for.
#[derive(Debug, Clone)]
pub struct ForecastRequest {
    /// The network.
    pub model: ForecasterConfig,
    /// The sequences.
    pub data: MovingData,
    /// Training settings.
    pub train: TrainConfig,
    /// The run directory.
    pub out: PathBuf,
}

/// What a finished run reports.
#[derive(Debug)]
pub struct ForecastOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// The run's configuration.
    pub run: ForecastRun,
    /// Test report.
    pub report: ForecastReport,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
}

fn train_in(
    run: &ForecastRun,
    sets: &MovingSets,
    dir: &Path,
    resume: Option<&crate::train::CheckpointMeta>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<ForecastOutcome> {
    let ad = device.clone().autodiff();
    ad.seed(run.train.seed);
    let model = run.model.init(&ad);
    let task = ForecastTask { sets };
    let json = serde_json::to_value(run).expect("run serializes");
    let fitted = fit(&task, model, &run.train, &json, dir, resume, &ad, observer)?;
    let model = fitted.model.valid();
    let report = test_report(&model, sets, dir, device)?;
    let json = serde_json::to_string_pretty(&report).expect("report serializes");
    write_atomic(
        &dir.join("report").join("forecast_test.json"),
        json.as_bytes(),
    )?;
    Ok(ForecastOutcome {
        dir: dir.to_path_buf(),
        run: run.clone(),
        report,
        history: fitted.history,
    })
}

/// Creates the run directory of `req`, trains, tests and writes the report.
pub fn start_run(
    req: &ForecastRequest,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<ForecastOutcome> {
    req.train.validate()?;
    req.model.validate()?;
    if req.train.tbptt.is_some() {
        return Err(Error::invalid(
            "tbptt",
            "a forecast is 20 frames: the whole sequence is one window",
        ));
    }
    if req.model.frame_side != FRAME_SIDE || req.model.frames_out != FRAMES_OUT {
        return Err(Error::invalid(
            "model",
            format!("Moving Fashion-MNIST has {FRAME_SIDE}x{FRAME_SIDE} frames and {FRAMES_OUT} to predict"),
        ));
    }
    refuse_existing_run(&req.out)?;
    let sets = MovingSets::load(&req.data)?;
    let run = ForecastRun {
        task: TASK.into(),
        model: req.model.clone(),
        data: req.data.clone(),
        train: req.train.clone(),
        deepnet_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    create_run_dir_with_config(&req.out, &run)?;
    train_in(&run, &sets, &req.out, None, device, observer)
}

/// Continues the run in `dir` from its last checkpoint, up to `epochs` in all.
pub fn resume_run(
    dir: &Path,
    epochs: Option<usize>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<ForecastOutcome> {
    let (run, meta) = resume_config(
        dir,
        TASK,
        "video prediction",
        epochs,
        |r: &mut ForecastRun| &mut r.train,
    )?;
    let sets = MovingSets::load(&run.data)?;
    train_in(&run, &sets, dir, Some(&meta), device, observer)
}

/// A trained video predictor, ready to use.
pub struct Predictor {
    /// The run's configuration.
    pub run: ForecastRun,
    model: Forecaster,
    device: Device,
}

impl Predictor {
    /// Loads the video-prediction run (or checkpoint) at `path` on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Predictor> {
        let file = resolve_checkpoint(path)?;
        let meta = read_checkpoint_meta(&file)?;
        let run = ForecastRun::from_json(meta.run, &file)?;
        let model = load_weights(run.model.init(device), &file)?;
        Ok(Predictor {
            run,
            model,
            device: device.clone(),
        })
    }

    /// The next frames (grey, 64x64, row-major, one `Vec` per frame) after the last
    /// [`FRAMES_IN`] of `frames`; fewer frames than that is an error.
    pub fn forecast(&self, frames: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        if frames.len() < FRAMES_IN {
            return Err(Error::invalid(
                "frames",
                format!(
                    "{} given; the model reads the last {FRAMES_IN} frames of a sequence",
                    frames.len()
                ),
            ));
        }
        let used = &frames[frames.len() - FRAMES_IN..];
        let mut input = Vec::with_capacity(FRAMES_IN * PIXELS);
        for f in used {
            if f.len() != PIXELS {
                return Err(Error::invalid(
                    "frames",
                    format!("a frame is {FRAME_SIDE}x{FRAME_SIDE} grey pixels"),
                ));
            }
            input.extend(f.iter().map(|&p| p as f32 / 255.0));
        }
        let x = Tensor::from_data(
            TensorData::new(input, [1, FRAMES_IN, FRAME_SIDE, FRAME_SIDE]),
            &self.device,
        );
        let p = predict(&self.model, x)?;
        Ok(p.chunks(PIXELS)
            .map(|f| f.iter().map(|&v| (v * 255.0).round() as u8).collect())
            .collect())
    }
}

/// Reads a frame PNG: 64x64 and grey, else an error naming what it is.
pub fn read_frame_png(path: &Path) -> Result<Vec<u8>> {
    let bytes = crate::io::read_file(path, crate::io::Limit::IMAGE)?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| Error::bad_data(path, format!("not a readable image: {e}")))?;
    if img.width() as usize != FRAME_SIDE || img.height() as usize != FRAME_SIDE {
        return Err(Error::bad_data(
            path,
            format!(
                "is {}x{}; a frame is {FRAME_SIDE}x{FRAME_SIDE} (no resizing: the motion would change scale)",
                img.width(),
                img.height()
            ),
        ));
    }
    if img.color().has_color() {
        return Err(Error::bad_data(path, "is a colour image; frames are grey"));
    }
    Ok(img.to_luma8().into_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_frame_scores_are_the_textbook_formulas() {
        // One pixel per "frame" would not do: use full frames with two values.
        let mut p = vec![0.5f32; 2 * PIXELS];
        let mut y = vec![1.0f32; 2 * PIXELS];
        p[PIXELS..].iter_mut().for_each(|v| *v = 0.0);
        y[PIXELS..].iter_mut().for_each(|v| *v = 0.0);
        let (mut mse, mut bce) = (vec![0.0; 2], vec![0.0; 2]);
        accumulate(&p, &y, &mut mse, &mut bce);
        // Frame 0: every pixel off by 0.5, cross-entropy ln 2 each.
        assert!((mse[0] / PIXELS as f64 - 0.25).abs() < 1e-12);
        assert!((bce[0] - PIXELS as f64 * std::f64::consts::LN_2).abs() < 1e-6);
        // Frame 1: exact; a certain 0 against 0 costs nothing.
        assert_eq!((mse[1], bce[1]), (0.0, 0.0));
        // A certain 0 against 1 costs the clamp, 100 a pixel.
        let (mut m, mut b) = (vec![0.0], vec![0.0]);
        accumulate(&[0.0; PIXELS], &[1.0; PIXELS], &mut m, &mut b);
        assert!((b[0] - 100.0 * PIXELS as f64).abs() < 1e-6);
    }

    #[test]
    fn the_loss_is_the_cross_entropy_of_the_sigmoid() {
        let device = Device::flex();
        let z = Tensor::<4>::from_data(
            TensorData::new(vec![-3.0f32, 0.0, 2.0, 40.0], [1, 1, 2, 2]),
            &device,
        );
        let y = Tensor::<4>::from_data(
            TensorData::new(vec![0.2f32, 1.0, 0.0, 0.7], [1, 1, 2, 2]),
            &device,
        );
        let got = cross_entropy(z, y).into_data().try_to_vec::<f32>().unwrap();
        for (k, (z, y)) in [(-3.0f64, 0.2), (0.0, 1.0), (2.0, 0.0), (40.0, 0.7)]
            .into_iter()
            .enumerate()
        {
            let p = 1.0 / (1.0 + (-z).exp());
            let want = -(y * p.ln() + (1.0 - y) * (1.0 - p).max(1e-30).ln());
            // z = 40: 1 - p underflows in f64 too; the stable form gives (1 - y)·z.
            let want = if z > 30.0 { (1.0 - y) * z } else { want };
            assert!(
                (got[k] as f64 - want).abs() < 1e-4,
                "z={z} y={y}: {} vs {want}",
                got[k]
            );
        }
    }
}
