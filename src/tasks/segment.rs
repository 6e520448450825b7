//! Semantic segmentation of generated scenes ([`crate::data::scenes`], overlap layout: 1-4
//! Fashion-MNIST items anywhere on a 64x64 canvas, later items occluding earlier ones) with the
//! fully convolutional networks of Long et al. 2015 ([`crate::models::vision::fcn`]). `deepnet
//! segment-train` and `deepnet segment` are the functions of this file.
//!
//! **Classes.** 11: background and the ten Fashion-MNIST classes. Pixels marked 255 in a mask
//! (an item's faint edge) count for nothing, in the loss and in the scores.
//!
//! **Loss.** Per-pixel cross-entropy `−log softmax(s)_y` averaged over the pixels that count.
//!
//! **Stage by stage**, as the paper: FCN-32s is trained first; an FCN-16s run starts from a
//! 32s run (`init_from`), an FCN-8s run from a 16s run ([`Fcn::grown_from`]).
//!
//! **Scores** (the paper's, from the confusion matrix `n_ij` of pixels of class `i` predicted
//! `j`, `t_i = Σ_j n_ij`): pixel accuracy `Σ_i n_ii / Σ_i t_i`, per-class IoU
//! `n_ii / (t_i + Σ_j n_ji − n_ii)` and mean IoU over the classes that occur.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use crate::data::mnist::ImageDataset;
use crate::data::scenes::{generate, Layout, Scene, SceneOptions, IGNORE, SCENE_SIDE};
use crate::data::{FashionMnist, SampleSeeds, Split};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::models::vision::fcn::{Fcn, FcnConfig, FcnVariant};
use crate::train::checkpoint::{load_weights, read_checkpoint_meta, resolve_checkpoint};
use crate::train::run::{create_run_dir_with_config, refuse_existing_run, resume_config};
use crate::train::{fit, EpochRecord, Observer, Stats, Task, TrainConfig, TrainOutput};

/// The name of this task in `config.json`.
pub const TASK: &str = "segment";

/// Classes: background and the ten Fashion-MNIST classes.
pub const NUM_CLASSES: usize = 11;

/// Pixels of a scene.
const PIXELS: usize = SCENE_SIDE * SCENE_SIDE;

/// Test scenes drawn in the report.
const PICTURES: usize = 6;

/// The class names, index = mask value.
pub fn class_names() -> Vec<String> {
    std::iter::once("background".to_string())
        .chain(crate::data::DatasetKind::FashionMnist.class_names())
        .collect()
}

/// Colours of the classes in mask pictures (background black).
pub const PALETTE: [[u8; 3]; NUM_CLASSES] = [
    [0, 0, 0],
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [250, 190, 212],
];

/// Where the scenes come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentData {
    /// The Fashion-MNIST directory (training split: training and validation scenes; test
    /// split: test scenes).
    pub fashion_mnist: PathBuf,
    /// Scenes: training, validation, test.
    pub scenes: [usize; 3],
    /// Seed of the training scenes; validation and test seeds are derived from it.
    pub seed: u64,
    /// Items per scene, fewest and most (1-4).
    pub items: [usize; 2],
}

impl SegmentData {
    fn seeds(&self) -> [u64; 3] {
        [
            self.seed,
            self.seed ^ 0x7661_6c69_6400,
            self.seed ^ 0x7465_7374_0000,
        ]
    }

    fn options(&self) -> SceneOptions {
        SceneOptions {
            layout: Layout::Overlap,
            min_items: self.items[0],
            max_items: self.items[1],
        }
    }
}

/// The contents of `config.json` of a segmentation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRun {
    /// The task (`segment`).
    pub task: String,
    /// The network.
    pub model: FcnConfig,
    /// The scenes.
    pub data: SegmentData,
    /// The coarser run this one was grown from (16s from 32s, 8s from 16s).
    pub init_from: Option<PathBuf>,
    /// Training settings.
    pub train: TrainConfig,
    /// deepnet version that wrote the run.
    pub deepnet_version: String,
}

impl SegmentRun {
    fn from_json(v: serde_json::Value, origin: &Path) -> Result<SegmentRun> {
        crate::train::run::task_config(v, origin, TASK, "segmentation")
    }
}

/// The items the scenes are made of.
pub struct SceneSets {
    train_items: ImageDataset,
    test_items: ImageDataset,
    data: SegmentData,
}

impl SceneSets {
    /// Reads Fashion-MNIST for `data`.
    pub fn load(data: &SegmentData) -> Result<SceneSets> {
        data.options().validate()?;
        if data.scenes.contains(&0) || data.scenes.iter().any(|&n| n > 10_000_000) {
            return Err(Error::invalid(
                "scenes",
                format!("{:?}: each split needs 1 to 10,000,000 scenes", data.scenes),
            ));
        }
        Ok(SceneSets {
            train_items: FashionMnist::load(&data.fashion_mnist, Split::Train)?,
            test_items: FashionMnist::load(&data.fashion_mnist, Split::Test)?,
            data: data.clone(),
        })
    }

    /// Scene `i` of split `split` (0 training, 1 validation, 2 test).
    pub fn scene(&self, split: usize, i: usize) -> Result<Scene> {
        let source = if split == 2 {
            &self.test_items
        } else {
            &self.train_items
        };
        generate(source, &self.data.options(), self.data.seeds()[split], i)
    }

    /// Whether a later item of `scene` (of split `split`) hides part of an earlier one's ink:
    /// a scene "with overlap".
    pub fn has_overlap(&self, split: usize, scene: &Scene) -> bool {
        let source = if split == 2 {
            &self.test_items
        } else {
            &self.train_items
        };
        scene.items.iter().enumerate().any(|(k, item)| {
            let ink = source
                .image(item.source_index)
                .iter()
                .filter(|&&p| p > crate::data::scenes::INK_THRESHOLD)
                .count();
            let visible = scene
                .instance_mask
                .iter()
                .filter(|&&m| m as usize == k + 1)
                .count();
            visible < ink
        })
    }

    /// The scenes' configuration.
    pub fn data(&self) -> &SegmentData {
        &self.data
    }

    fn batch(&self, split: usize, rows: &[usize], device: &Device) -> Result<MaskBatch> {
        let scenes = rows
            .iter()
            .map(|&i| self.scene(split, i))
            .collect::<Result<Vec<_>>>()?;
        let images: Vec<&[u8]> = scenes.iter().map(|s| s.image.as_slice()).collect();
        let masks: Vec<&[u8]> = scenes.iter().map(|s| s.class_mask.as_slice()).collect();
        Ok(MaskBatch::new(&images, &masks, device))
    }
}

/// Images and their class masks.
pub struct MaskBatch {
    /// `[B, 1, 64, 64]`, intensities in [0, 1].
    pub images: Tensor<4>,
    /// One-hot targets `[B, classes, 64, 64]`, all zero at ignored pixels.
    pub one_hot: Tensor<4>,
    /// The masks, row-major, scene after scene.
    pub labels: Vec<u8>,
}

impl MaskBatch {
    /// The batch of grey 64x64 `images` with index `masks` (255 = ignore).
    pub fn new(images: &[&[u8]], masks: &[&[u8]], device: &Device) -> MaskBatch {
        let b = images.len();
        let pixels: Vec<f32> = images
            .iter()
            .flat_map(|im| im.iter().map(|&p| p as f32 / 255.0))
            .collect();
        let mut one_hot = vec![0f32; b * NUM_CLASSES * PIXELS];
        let mut labels = Vec::with_capacity(b * PIXELS);
        for (k, m) in masks.iter().enumerate() {
            for (p, &c) in m.iter().enumerate() {
                if (c as usize) < NUM_CLASSES {
                    one_hot[(k * NUM_CLASSES + c as usize) * PIXELS + p] = 1.0;
                }
            }
            labels.extend_from_slice(m);
        }
        let s = SCENE_SIDE;
        MaskBatch {
            images: Tensor::from_data(TensorData::new(pixels, [b, 1, s, s]), device),
            one_hot: Tensor::from_data(TensorData::new(one_hot, [b, NUM_CLASSES, s, s]), device),
            labels,
        }
    }
}

/// Summed statistics of segmented pixels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PixelStats {
    /// Scenes.
    pub scenes: usize,
    /// Summed cross-entropy of the pixels that count.
    pub loss: f64,
    /// Confusion matrix `[true][predicted]`, row-major, `NUM_CLASSES²` (empty: nothing yet).
    pub confusion: Vec<u64>,
}

impl PixelStats {
    fn add(&mut self, truth: &[u8], predicted: &[u8]) {
        if self.confusion.is_empty() {
            self.confusion = vec![0; NUM_CLASSES * NUM_CLASSES];
        }
        for (&t, &p) in truth.iter().zip(predicted) {
            if (t as usize) < NUM_CLASSES {
                self.confusion[t as usize * NUM_CLASSES + p as usize] += 1;
            }
        }
    }

    /// Pixels that count (not ignored).
    pub fn pixels(&self) -> u64 {
        self.confusion.iter().sum()
    }

    /// `Σ_i n_ii / Σ_i t_i`.
    pub fn pixel_accuracy(&self) -> f64 {
        let right: u64 = (0..NUM_CLASSES)
            .filter_map(|i| self.confusion.get(i * NUM_CLASSES + i))
            .sum();
        right as f64 / self.pixels().max(1) as f64
    }

    /// IoU of each class; `None` for a class neither present nor predicted.
    pub fn class_iou(&self) -> Vec<Option<f64>> {
        if self.confusion.is_empty() {
            return vec![None; NUM_CLASSES];
        }
        let n = |i: usize, j: usize| self.confusion[i * NUM_CLASSES + j] as f64;
        (0..NUM_CLASSES)
            .map(|i| {
                let t: f64 = (0..NUM_CLASSES).map(|j| n(i, j)).sum();
                let predicted: f64 = (0..NUM_CLASSES).map(|j| n(j, i)).sum();
                let union = t + predicted - n(i, i);
                (union > 0.0).then(|| n(i, i) / union)
            })
            .collect()
    }

    /// Mean of [`class_iou`](Self::class_iou) over the classes that occur.
    pub fn mean_iou(&self) -> f64 {
        let v: Vec<f64> = self.class_iou().into_iter().flatten().collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    }
}

impl Stats for PixelStats {
    fn merge(&mut self, o: &Self) {
        self.scenes += o.scenes;
        self.loss += o.loss;
        if self.confusion.is_empty() {
            self.confusion = o.confusion.clone();
        } else {
            for (a, b) in self.confusion.iter_mut().zip(&o.confusion) {
                *a += b;
            }
        }
    }
    fn items(&self) -> usize {
        self.scenes
    }
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("loss", self.loss / self.pixels().max(1) as f64),
            ("pixel_accuracy", self.pixel_accuracy()),
            ("mean_iou", self.mean_iou()),
        ]
    }
}

/// The most likely class of every pixel of scores `[B, classes, H, W]`, row-major.
fn argmax_classes(scores: Tensor<4>) -> Result<Vec<u8>> {
    let v = scores
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .map_err(|e| Error::invalid("scores", format!("{e:?}")))?;
    Ok(v.into_iter().map(|c| c as u8).collect())
}

fn pixel_loss(model: &Fcn, batch: MaskBatch) -> Result<(Tensor<1>, PixelStats)> {
    let b = batch.images.dims()[0];
    let scores = model.forward(batch.images)?; // [B, classes, 64, 64]
    let predicted = argmax_classes(scores.clone().detach())?;
    let mut stats = PixelStats {
        scenes: b,
        ..PixelStats::default()
    };
    stats.add(&batch.labels, &predicted);
    let counted = stats.pixels().max(1) as f64;
    let summed = -(log_softmax(scores, 1) * batch.one_hot).sum(); // [1]
    let total: f32 = summed.clone().detach().into_scalar();
    stats.loss = total as f64;
    Ok((summed / counted, stats))
}

/// Segmentation on [`SceneSets`].
pub struct SegmentTask<'a> {
    sets: &'a SceneSets,
}

impl Task for SegmentTask<'_> {
    type Model = Fcn;
    type Batch = MaskBatch;
    type Stats = PixelStats;
    type Carry = ();

    fn unit(&self) -> &'static str {
        "images"
    }
    fn train_len(&self) -> usize {
        self.sets.data.scenes[0]
    }
    fn valid_len(&self) -> usize {
        self.sets.data.scenes[1]
    }
    fn train_batch(
        &self,
        indices: &[usize],
        _seeds: SampleSeeds,
        device: &Device,
    ) -> Result<MaskBatch> {
        self.sets.batch(0, indices, device)
    }
    fn valid_batch(&self, indices: &[usize], device: &Device) -> Result<MaskBatch> {
        self.sets.batch(1, indices, device)
    }
    fn train_step(
        &self,
        model: &Fcn,
        batch: MaskBatch,
        _carry: (),
    ) -> Result<TrainOutput<PixelStats, ()>> {
        let (loss, stats) = pixel_loss(model, batch)?;
        Ok(TrainOutput::new(loss, stats))
    }
    fn valid_step(&self, model: &Fcn, batch: MaskBatch) -> Result<PixelStats> {
        Ok(pixel_loss(model, batch)?.1)
    }
    fn default_valid_batch_size(&self, train_batch_size: usize) -> usize {
        train_batch_size.clamp(1, 64)
    }
}

/// Scores of a network on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentScores {
    /// Pixels that count (not ignored).
    pub pixels: u64,
    /// Pixel accuracy.
    pub pixel_accuracy: f64,
    /// Mean IoU over the classes that occur.
    pub mean_iou: f64,
    /// Each class's IoU (`None`: absent and never predicted), with its name.
    pub class_iou: Vec<(String, Option<f64>)>,
}

impl SegmentScores {
    /// The scores of summed statistics.
    pub fn of(stats: &PixelStats) -> SegmentScores {
        SegmentScores {
            pixels: stats.pixels(),
            pixel_accuracy: stats.pixel_accuracy(),
            mean_iou: stats.mean_iou(),
            class_iou: class_names().into_iter().zip(stats.class_iou()).collect(),
        }
    }
}

/// What the test report holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentReport {
    /// FCN-32s, 16s or 8s.
    pub variant: FcnVariant,
    /// Scenes: train, validation, test.
    pub scenes: [usize; 3],
    /// On the test scenes.
    pub test: SegmentScores,
    /// On the validation scenes (what choices are made on).
    pub valid: SegmentScores,
    /// Trainable parameters.
    pub parameters: usize,
}

/// Predicted class masks of grey 64x64 scenes.
pub fn segment(model: &Fcn, images: &[&[u8]], device: &Device) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(64) {
        let none: Vec<&[u8]> = vec![&[]; chunk.len()];
        let batch = MaskBatch::new(chunk, &none, device);
        let classes = argmax_classes(model.forward(batch.images)?)?;
        out.extend(classes.chunks(PIXELS).map(<[u8]>::to_vec));
    }
    Ok(out)
}

fn score_split(
    model: &Fcn,
    sets: &SceneSets,
    split: usize,
    device: &Device,
    pictures: Option<&Path>,
) -> Result<SegmentScores> {
    let mut stats = PixelStats::default();
    let rows: Vec<usize> = (0..sets.data.scenes[split]).collect();
    for chunk in rows.chunks(64) {
        let scenes = chunk
            .iter()
            .map(|&i| sets.scene(split, i))
            .collect::<Result<Vec<_>>>()?;
        let images: Vec<&[u8]> = scenes.iter().map(|s| s.image.as_slice()).collect();
        let predicted = segment(model, &images, device)?;
        for ((scene, mask), &row) in scenes.iter().zip(&predicted).zip(chunk) {
            stats.add(&scene.class_mask, mask);
            if let Some(dir) = pictures {
                if row < PICTURES {
                    write_panels(
                        &scene.image,
                        &[&scene.class_mask, mask],
                        &dir.join(format!("test-{row}.png")),
                    )?;
                }
            }
        }
    }
    Ok(SegmentScores::of(&stats))
}

/// The RGB pixels of an index mask in [`PALETTE`] colours (255, ignore: white).
pub fn colour_mask(mask: &[u8]) -> Vec<u8> {
    mask.iter()
        .flat_map(|&c| PALETTE.get(c as usize).copied().unwrap_or([255, 255, 255]))
        .collect()
}

/// The RGB pixels of a grey image with a mask's colours laid over it, half and half (the
/// background left as it is).
pub fn overlay(image: &[u8], mask: &[u8]) -> Vec<u8> {
    image
        .iter()
        .zip(mask)
        .flat_map(|(&g, &c)| match PALETTE.get(c as usize) {
            Some(rgb) if c != 0 => rgb.map(|v| ((v as u16 + g as u16) / 2) as u8),
            _ => [g, g, g],
        })
        .collect()
}

/// One PNG: the grey scene, then each mask in colour, side by side.
pub fn write_panels(image: &[u8], masks: &[&[u8]], path: &Path) -> Result<()> {
    let (s, gap) = (SCENE_SIDE, 2);
    let n = 1 + masks.len();
    let w = n * (s + gap) - gap;
    let mut img = image::RgbImage::from_pixel(w as u32, s as u32, image::Rgb([128, 128, 128]));
    let grey: Vec<u8> = image.iter().flat_map(|&g| [g, g, g]).collect();
    let panels: Vec<Vec<u8>> = std::iter::once(grey)
        .chain(masks.iter().map(|m| colour_mask(m)))
        .collect();
    for (k, rgb) in panels.iter().enumerate() {
        for y in 0..s {
            for x in 0..s {
                let o = 3 * (y * s + x);
                img.put_pixel(
                    (k * (s + gap) + x) as u32,
                    y as u32,
                    image::Rgb([rgb[o], rgb[o + 1], rgb[o + 2]]),
                );
            }
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    img.save(path)
        .map_err(|e| Error::bad_data(path, format!("cannot write PNG: {e}")))
}

/// Scores `model` on the validation and test scenes; draws the first test scenes (scene, true
/// mask, predicted mask) into `report/`.
pub fn test_report(
    model: &Fcn,
    sets: &SceneSets,
    dir: &Path,
    device: &Device,
) -> Result<SegmentReport> {
    let valid = score_split(model, sets, 1, device, None)?;
    let test = score_split(model, sets, 2, device, Some(&dir.join("report")))?;
    Ok(SegmentReport {
        variant: model.variant(),
        scenes: sets.data.scenes,
        test,
        valid,
        parameters: model.num_params(),
    })
}

/// What starting a run asks for.
#[derive(Debug, Clone)]
pub struct SegmentRequest {
    /// The network.
    pub model: FcnConfig,
    /// The scenes.
    pub data: SegmentData,
    /// The coarser run to grow from.
    pub init_from: Option<PathBuf>,
    /// Training settings.
    pub train: TrainConfig,
    /// The run directory.
    pub out: PathBuf,
}

/// What a finished run reports.
#[derive(Debug)]
pub struct SegmentOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// The run's configuration.
    pub run: SegmentRun,
    /// Test report.
    pub report: SegmentReport,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
}

/// The network of the segmentation run (or checkpoint) at `path`, and its configuration.
pub fn load_run(path: &Path, device: &Device) -> Result<(SegmentRun, Fcn)> {
    let file = resolve_checkpoint(path)?;
    let meta = read_checkpoint_meta(&file)?;
    let run = SegmentRun::from_json(meta.run, &file)?;
    let model = load_weights(run.model.init(device), &file)?;
    Ok((run, model))
}

fn train_in(
    run: &SegmentRun,
    sets: &SceneSets,
    dir: &Path,
    resume: Option<&crate::train::CheckpointMeta>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<SegmentOutcome> {
    let ad = device.clone().autodiff();
    ad.seed(run.train.seed);
    let mut model = run.model.init(&ad);
    if let (Some(from), None) = (&run.init_from, resume) {
        let (_, coarser) = load_run(from, &ad)?;
        model = model.grown_from(coarser)?;
    }
    let task = SegmentTask { sets };
    let json = serde_json::to_value(run).expect("run serializes");
    let fitted = fit(&task, model, &run.train, &json, dir, resume, &ad, observer)?;
    let model = fitted.model.valid();
    let report = test_report(&model, sets, dir, device)?;
    let json = serde_json::to_string_pretty(&report).expect("report serializes");
    write_atomic(
        &dir.join("report").join("segment_test.json"),
        json.as_bytes(),
    )?;
    Ok(SegmentOutcome {
        dir: dir.to_path_buf(),
        run: run.clone(),
        report,
        history: fitted.history,
    })
}

/// Creates the run directory of `req`, trains (from the coarser run, when given), tests and
/// writes the report.
pub fn start_run(
    req: &SegmentRequest,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<SegmentOutcome> {
    req.train.validate()?;
    req.model.validate()?;
    if req.train.tbptt.is_some() {
        return Err(Error::invalid("tbptt", "segmentation has no time axis"));
    }
    if req.model.num_classes != NUM_CLASSES || req.model.in_channels != 1 {
        return Err(Error::invalid(
            "model",
            format!("scenes are grey with {NUM_CLASSES} classes (background and ten items)"),
        ));
    }
    match (&req.init_from, req.model.variant) {
        (None, FcnVariant::Fcn32s) | (Some(_), FcnVariant::Fcn16s | FcnVariant::Fcn8s) => {}
        (Some(_), FcnVariant::Fcn32s) => {
            return Err(Error::invalid(
                "init_from",
                "FCN-32s is the first stage: it starts from scratch",
            ))
        }
        (None, _) => {} // A finer variant from scratch: allowed, not the paper's recipe.
    }
    if let Some(from) = &req.init_from {
        // Checked before anything is created: a wrong run is one clear line.
        let (coarser, _) = load_run(from, device)?;
        req.model
            .init(device)
            .grown_from(coarser.model.init(device))?;
    }
    refuse_existing_run(&req.out)?;
    let sets = SceneSets::load(&req.data)?;
    let run = SegmentRun {
        task: TASK.into(),
        model: req.model.clone(),
        data: req.data.clone(),
        init_from: req.init_from.clone(),
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
) -> Result<SegmentOutcome> {
    let (run, meta) = resume_config(dir, TASK, "segmentation", epochs, |r: &mut SegmentRun| {
        &mut r.train
    })?;
    let sets = SceneSets::load(&run.data)?;
    train_in(&run, &sets, dir, Some(&meta), device, observer)
}

/// Reads a grey 64x64 PNG (a scene, or an index mask); another size or a colour image is an
/// error naming the file (scenes are not resized: the items' scale is what was learned).
pub fn read_grey_png(path: &Path, what: &str) -> Result<Vec<u8>> {
    let bytes = crate::io::read_file(path, crate::io::Limit::IMAGE)?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| Error::bad_data(path, format!("not a readable image: {e}")))?;
    if img.width() as usize != SCENE_SIDE || img.height() as usize != SCENE_SIDE {
        return Err(Error::bad_data(
            path,
            format!(
                "is {}x{}; a {what} is {SCENE_SIDE}x{SCENE_SIDE} (not resized: the items' scale is what the network learned)",
                img.width(),
                img.height()
            ),
        ));
    }
    if img.color().has_color() {
        return Err(Error::bad_data(
            path,
            format!("is a colour image; a {what} is grey (one index per pixel)"),
        ));
    }
    Ok(img.to_luma8().into_raw())
}

/// Checks a user's index mask: every value a class or 255.
pub fn check_mask(mask: &[u8], path: &Path) -> Result<()> {
    if let Some(&bad) = mask
        .iter()
        .find(|&&c| c as usize >= NUM_CLASSES && c != IGNORE)
    {
        return Err(Error::bad_data(
            path,
            format!(
                "holds the value {bad}; a mask's values are classes 0-{} or {IGNORE} (ignore)",
                NUM_CLASSES - 1
            ),
        ));
    }
    Ok(())
}

/// The scores of one predicted mask against a true one.
pub fn score_mask(truth: &[u8], predicted: &[u8]) -> SegmentScores {
    let mut s = PixelStats::default();
    s.add(truth, predicted);
    SegmentScores::of(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_the_papers_formulas() {
        // Truth: 4 background, 4 of class 1, 2 ignored. Prediction: one background pixel
        // called class 1, one class-1 pixel called class 2.
        let truth = [0, 0, 0, 0, 1, 1, 1, 1, IGNORE, IGNORE];
        let pred = [0, 0, 0, 1, 1, 1, 1, 2, 5, 5];
        let mut s = PixelStats::default();
        s.add(&truth, &pred);
        assert_eq!(s.pixels(), 8);
        assert!((s.pixel_accuracy() - 6.0 / 8.0).abs() < 1e-12);
        let iou = s.class_iou();
        // Background: 3 / (4 + 3 - 3); class 1: 3 / (4 + 4 - 3); class 2: 0 / (0 + 1 - 0).
        assert!((iou[0].unwrap() - 0.75).abs() < 1e-12);
        assert!((iou[1].unwrap() - 0.6).abs() < 1e-12);
        assert_eq!(iou[2], Some(0.0));
        assert_eq!(iou[3], None);
        assert!((s.mean_iou() - (0.75 + 0.6 + 0.0) / 3.0).abs() < 1e-12);
        // Merging two halves gives the whole.
        let (mut a, mut b) = (PixelStats::default(), PixelStats::default());
        a.add(&truth[..5], &pred[..5]);
        b.add(&truth[5..], &pred[5..]);
        a.merge(&b);
        assert_eq!(a.confusion, s.confusion);
    }

    #[test]
    fn one_hot_targets_skip_ignored_pixels() {
        let device = Device::flex();
        let image = vec![0u8; PIXELS];
        let mut mask = vec![0u8; PIXELS];
        mask[1] = 3;
        mask[2] = IGNORE;
        let b = MaskBatch::new(&[&image], &[&mask], &device);
        let v = b.one_hot.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(v[3 * PIXELS + 1], 1.0);
        assert_eq!(v[1], 0.0);
        assert!((0..NUM_CLASSES).all(|c| v[c * PIXELS + 2] == 0.0));
        assert_eq!(v.iter().sum::<f32>() as usize, PIXELS - 1);
    }

    #[test]
    fn masks_with_other_values_are_refused() {
        let p = Path::new("m.png");
        assert!(check_mask(&[0, 10, 255], p).is_ok());
        let e = check_mask(&[0, 11], p).unwrap_err().to_string();
        assert!(e.contains("11") && e.contains("m.png"), "{e}");
    }
}
