//! Image classification: any zoo model ([`ImageClassifier`]) on labelled images, trained with
//! cross-entropy by the one loop, reported as loss, accuracy, per-class accuracy and the
//! confusion matrix. `deepnet train`, `eval` and `predict` are the functions of this file.
//!
//! The task: a batch is images `[B, C, H, W]` and labels `[B]`; the loss is the mean
//! cross-entropy of the logits (plus GoogLeNet's auxiliary classifiers, each weighted 0.3);
//! the statistics are the summed loss, the hits and the count.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::image_file::{load_grey_image, load_imagenet_image};
use crate::data::{
    load_dataset_pair, train_val_split, Augment, DatasetKind, ImageBatch, ImageDataset,
    ImageSource, InMemoryImages, Normalization, SampleSeeds, Split,
};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::plot::confusion_matrix;
use crate::train::checkpoint::{load_weights, read_checkpoint_meta, resolve_checkpoint};
use crate::train::run::{create_run_dir, read_config, task_of, write_config, DEFAULT_TASK};
use crate::train::{
    fit, read_history, CheckpointMeta, EpochRecord, Observer, Stats, Task, TrainConfig, TrainOutput,
};
use crate::vision::{spec, visit_model, ImageClassifier, ModelSpec, ZooVisitor};

/// The name of this task in `config.json`.
pub const TASK: &str = DEFAULT_TASK;

/// Summed statistics of classified images.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    /// Sum over batches of (mean batch loss × batch size).
    pub loss_sum: f64,
    /// Images whose top class is the label.
    pub correct: usize,
    /// Images seen.
    pub count: usize,
}

impl Stats for ClassStats {
    fn merge(&mut self, other: &Self) {
        self.loss_sum += other.loss_sum;
        self.correct += other.correct;
        self.count += other.count;
    }
    fn items(&self) -> usize {
        self.count
    }
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        let n = self.count.max(1) as f64;
        vec![
            ("loss", self.loss_sum / n),
            ("accuracy", self.correct as f64 / n),
        ]
    }
}

/// Classification of the images of `train` (and `val`) by a model of type `M`.
pub struct Classification<'a, M> {
    train: &'a dyn ImageSource,
    val: &'a dyn ImageSource,
    model: PhantomData<fn() -> M>,
}

impl<'a, M> Classification<'a, M> {
    /// The task of fitting `train`, validated on `val`.
    pub fn new(train: &'a dyn ImageSource, val: &'a dyn ImageSource) -> Self {
        Classification {
            train,
            val,
            model: PhantomData,
        }
    }
}

/// At most this many input values in a validation batch by default (4 MiB of float32): a
/// thousand 28×28 images, six 3×224×224 ones. Evaluation needs far less memory than training,
/// so the training batch size is always allowed too.
const VALID_BATCH_VALUES: usize = 1 << 20;

/// The default evaluation batch for images of `shape` when training in batches of `train`.
pub fn default_eval_batch_size(shape: [usize; 3], train: usize) -> usize {
    let per_image = shape.iter().product::<usize>().max(1);
    train.max((VALID_BATCH_VALUES / per_image).clamp(1, 1000))
}

/// Hits of `logits` `[B, classes]` against `labels` `[B]`.
fn hits(logits: Tensor<2>, labels: Tensor<1, Int>) -> usize {
    logits
        .argmax(1)
        .flatten::<1>(0, 1)
        .equal(labels)
        .int()
        .sum()
        .into_scalar::<i64>() as usize
}

impl<M: ImageClassifier> Task for Classification<'_, M> {
    type Model = M;
    type Batch = ImageBatch;
    type Stats = ClassStats;
    type Carry = ();

    fn unit(&self) -> &'static str {
        "images"
    }
    fn train_len(&self) -> usize {
        self.train.len()
    }
    fn valid_len(&self) -> usize {
        self.val.len()
    }
    fn train_batch(
        &self,
        indices: &[usize],
        seeds: SampleSeeds,
        device: &Device,
    ) -> Result<ImageBatch> {
        ImageBatch::from_source(self.train, indices, Some(seeds), device)
    }
    fn valid_batch(&self, indices: &[usize], device: &Device) -> Result<ImageBatch> {
        ImageBatch::from_source(self.val, indices, None, device)
    }
    fn train_step(
        &self,
        model: &M,
        batch: ImageBatch,
        _carry: (),
    ) -> Result<TrainOutput<ClassStats, ()>> {
        let n = batch.labels.dims()[0];
        let loss_fn = CrossEntropyLossConfig::new().init(&batch.images.device());
        let (logits, aux) = model.forward_train(batch.images);
        let mut loss = loss_fn.forward(logits.clone(), batch.labels.clone());
        // Auxiliary classifiers (GoogLeNet): their weighted losses join the main one.
        for (aux_logits, weight) in aux {
            loss = loss
                + loss_fn
                    .forward(aux_logits, batch.labels.clone())
                    .mul_scalar(weight);
        }
        let loss_value = loss.clone().into_scalar::<f32>();
        Ok(TrainOutput {
            stats: ClassStats {
                loss_sum: loss_value as f64 * n as f64,
                correct: hits(logits, batch.labels),
                count: n,
            },
            loss,
            carry: (),
        })
    }
    fn valid_step(&self, model: &M, batch: ImageBatch) -> Result<ClassStats> {
        let n = batch.labels.dims()[0];
        let logits = model.forward(batch.images);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.labels.clone());
        Ok(ClassStats {
            loss_sum: loss.into_scalar::<f32>() as f64 * n as f64,
            correct: hits(logits, batch.labels),
            count: n,
        })
    }
    fn default_valid_batch_size(&self, train_batch_size: usize) -> usize {
        default_eval_batch_size(self.train.shape(), train_batch_size)
    }
}

/// Results of a model on a labelled data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Number of images.
    pub count: usize,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Accuracy per true class (recall); NaN-free: a class with no images gets 0.
    pub per_class_accuracy: Vec<f64>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Builds an [`EvalReport`] from a confusion matrix and a summed loss.
pub fn report_from_confusion(
    confusion: Vec<Vec<usize>>,
    loss_sum: f64,
    class_names: Vec<String>,
) -> EvalReport {
    let count: usize = confusion.iter().flatten().sum();
    let correct: usize = (0..confusion.len()).map(|i| confusion[i][i]).sum();
    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let n: usize = row.iter().sum();
            if n == 0 {
                0.0
            } else {
                row[i] as f64 / n as f64
            }
        })
        .collect();
    let per = |x: f64| if count == 0 { 0.0 } else { x / count as f64 };
    EvalReport {
        count,
        loss: per(loss_sum),
        accuracy: per(correct as f64),
        class_names,
        per_class_accuracy,
        confusion,
    }
}

/// Evaluates `model` (made an evaluation copy here) on all of `data`, in batches of
/// `batch_size`, on `device` (a device without autodiff).
pub fn evaluate<M: ImageClassifier>(
    model: &M,
    data: &dyn ImageSource,
    batch_size: usize,
    device: &Device,
) -> Result<EvalReport> {
    let model = model.valid();
    let classes = data.class_names().len();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut loss_sum = 0.0f64;
    let plan: Vec<Vec<usize>> = (0..data.len())
        .collect::<Vec<_>>()
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect();
    std::thread::scope(|scope| -> Result<()> {
        let batches = crate::train::trainer::prefetch(scope, &plan, |idx| {
            ImageBatch::from_source(data, idx, None, device)
        });
        for batch in batches {
            let batch = batch?;
            let n = batch.labels.dims()[0];
            let logits = model.forward(batch.images);
            let loss = CrossEntropyLossConfig::new()
                .init(&logits.device())
                .forward(logits.clone(), batch.labels.clone());
            loss_sum += loss.into_scalar::<f32>() as f64 * n as f64;
            let pred = ints(logits.argmax(1).flatten::<1>(0, 1))?;
            for (&t, &p) in ints(batch.labels)?.iter().zip(pred.iter()) {
                confusion[t as usize][p as usize] += 1;
            }
        }
        Ok(())
    })?;
    Ok(report_from_confusion(
        confusion,
        loss_sum,
        data.class_names().to_vec(),
    ))
}

fn ints(t: Tensor<1, Int>) -> Result<Vec<i64>> {
    t.into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .map_err(|e| Error::invalid("tensor", format!("{e:?}")))
}

/// Where the data of a classification run came from and how it is prepared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    /// MNIST-format directory.
    pub dir: String,
    /// Which data set it is.
    pub kind: DatasetKind,
    /// Normalization applied to every pixel.
    pub normalization: Normalization,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Use only the first N training images (0 = all): quick runs and tests.
    #[serde(default)]
    pub limit_train: usize,
    /// Images carved from the training set (after `limit_train`) for validation, a seeded
    /// random choice.
    pub val_size: usize,
    /// Augmentation of the training images.
    #[serde(default)]
    pub augment: Augment,
}

/// The contents of `config.json` of a classification run: enough to rebuild the model,
/// reload the data and continue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The task (`classification`).
    pub task: String,
    /// Registry name of the model.
    pub model: String,
    /// Number of classes the model outputs.
    pub num_classes: usize,
    /// Training settings.
    pub train: TrainConfig,
    /// Data set.
    pub data: DataSource,
    /// deepnet version that wrote the run.
    pub deepnet_version: String,
}

impl RunConfig {
    /// Reads a run configuration from JSON, including those written by deepnet 0.1 (no
    /// `task`; the validation size and augmentation among the training settings).
    pub fn from_json(mut v: serde_json::Value, origin: &Path) -> Result<RunConfig> {
        if let Some(obj) = v.as_object_mut() {
            obj.entry("task").or_insert_with(|| TASK.into());
            let moved: Vec<(String, serde_json::Value)> = ["val_size", "augment"]
                .iter()
                .filter_map(|k| {
                    let train = obj.get_mut("train")?.as_object_mut()?;
                    Some((k.to_string(), train.remove(*k)?))
                })
                .collect();
            if let Some(data) = obj.get_mut("data").and_then(|d| d.as_object_mut()) {
                for (k, val) in moved {
                    data.entry(k).or_insert(val);
                }
            }
        }
        let run: RunConfig = serde_json::from_value(v).map_err(|e| {
            Error::bad_data(origin, format!("not a classification run config: {e}"))
        })?;
        if run.task != TASK {
            return Err(Error::bad_data(
                origin,
                format!("holds a {} run, not a {TASK} run", run.task),
            ));
        }
        Ok(run)
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("RunConfig serializes")
    }
}

/// What starting a classification run asks for.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// Registry name of the model.
    pub model: String,
    /// MNIST-format data directory.
    pub data_dir: PathBuf,
    /// Which data set the directory holds.
    pub dataset: DatasetKind,
    /// Training settings.
    pub train: TrainConfig,
    /// Images carved from the training set for validation; `None`: a tenth of the training
    /// images, at most 5,000.
    pub val_size: Option<usize>,
    /// Augmentation of the training images.
    pub augment: Augment,
    /// Use only the first N training images (0 = all).
    pub limit_train: usize,
    /// The run directory to create.
    pub out: PathBuf,
}

/// What a finished training run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
    /// The trained model on the test split.
    pub test: EvalReport,
}

/// The validation size when none is given: a tenth of `n` training images, at most 5,000.
pub fn default_val_size(n: usize) -> usize {
    (n / 10).min(5000)
}

fn check_input(spec: &ModelSpec, shape: [usize; 3]) -> Result<()> {
    if shape != spec.input {
        return Err(Error::invalid(
            "data",
            format!(
                "model {} takes {}x{}x{} images, the data set has {}x{}x{}",
                spec.name,
                spec.input[0],
                spec.input[1],
                spec.input[2],
                shape[0],
                shape[1],
                shape[2]
            ),
        ));
    }
    Ok(())
}

/// Train (minus the validation split), validation and test sets of `run`.
struct RunData {
    train: InMemoryImages,
    val: InMemoryImages,
    test: InMemoryImages,
}

fn load_run_data(run: &RunConfig) -> Result<RunData> {
    let d = &run.data;
    let (full_train, test) = load_dataset_pair(Path::new(&d.dir), d.kind)?;
    let full_train = if d.limit_train > 0 && d.limit_train < full_train.len() {
        let idx: Vec<usize> = (0..d.limit_train).collect();
        full_train.subset(&idx)
    } else {
        full_train
    };
    if d.val_size >= full_train.len() {
        return Err(Error::invalid(
            "val_size",
            format!(
                "{} validation images leave none of the {} training images to train on",
                d.val_size,
                full_train.len()
            ),
        ));
    }
    let (train, val) = train_val_split(&full_train, d.val_size, run.train.seed);
    let source = |data: ImageDataset, augment| InMemoryImages {
        data,
        norm: d.normalization,
        augment,
    };
    Ok(RunData {
        train: source(train, d.augment),
        val: source(val, Augment::None),
        test: source(test, Augment::None),
    })
}

struct TrainVisitor<'a> {
    run: &'a RunConfig,
    data: &'a RunData,
    dir: &'a Path,
    resume: Option<&'a CheckpointMeta>,
    device: &'a Device,
    observer: &'a mut dyn Observer,
}

impl ZooVisitor for TrainVisitor<'_> {
    type Output = Result<RunOutcome>;
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Result<RunOutcome> {
        check_input(spec, self.data.train.shape())?;
        let task = Classification::<M>::new(&self.data.train, &self.data.val);
        let fitted = fit(
            &task,
            model,
            &self.run.train,
            &self.run.to_json(),
            self.dir,
            self.resume,
            self.device,
            self.observer,
        )?;
        let batch = self.run.train.val_batch_size.unwrap_or_else(|| {
            default_eval_batch_size(self.data.test.shape(), self.run.train.batch_size)
        });
        self.observer.validation_start(self.data.test.len());
        let test = evaluate(
            &fitted.model,
            &self.data.test,
            batch,
            &self.device.clone().without_autodiff(),
        )?;
        write_report(self.dir, &test)?;
        Ok(RunOutcome {
            dir: self.dir.to_path_buf(),
            history: fitted.history,
            test,
        })
    }
}

fn train_in(
    run: &RunConfig,
    data: &RunData,
    dir: &Path,
    resume: Option<&CheckpointMeta>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<RunOutcome> {
    let device = device.clone().autodiff();
    // The initial weights come from the seed (the loop re-seeds before every batch).
    device.seed(run.train.seed);
    visit_model(
        &run.model,
        run.num_classes,
        &device,
        TrainVisitor {
            run,
            data,
            dir,
            resume,
            device: &device,
            observer,
        },
    )?
}

/// Creates the run directory of `req`, trains, evaluates on the test split and writes the
/// report. Refuses a directory that already holds a run (nothing is overwritten: use
/// [`resume_run`] to continue one).
pub fn start_run(
    req: &TrainRequest,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<RunOutcome> {
    spec(&req.model)?;
    req.train.validate()?;
    if req.train.tbptt.is_some() {
        return Err(Error::invalid(
            "tbptt",
            "image classification has no time axis to truncate backpropagation along",
        ));
    }
    if req
        .out
        .join(crate::train::checkpoint::CHECKPOINT_FILE)
        .exists()
    {
        // Checked before the data is read; create_run_dir checks again.
        create_run_dir(&req.out)?;
    }
    let mut run = RunConfig {
        task: TASK.into(),
        model: req.model.clone(),
        num_classes: req.dataset.class_names().len(),
        train: req.train.clone(),
        data: DataSource {
            dir: req.data_dir.display().to_string(),
            kind: req.dataset,
            normalization: req.dataset.normalization(),
            class_names: req.dataset.class_names(),
            limit_train: req.limit_train,
            val_size: req.val_size.unwrap_or(0),
            augment: req.augment,
        },
        deepnet_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    if req.val_size.is_none() {
        // A tenth of the training images the run will see: count them from the file header.
        let n = crate::data::mnist::count_split(&req.data_dir, Split::Train)?;
        let n = if req.limit_train > 0 {
            n.min(req.limit_train)
        } else {
            n
        };
        run.data.val_size = default_val_size(n);
    }
    // Load (and validate) the data before creating anything on disk.
    let data = load_run_data(&run)?;
    create_run_dir(&req.out)?;
    write_config(&req.out, &run.to_json())?;
    train_in(&run, &data, &req.out, None, device, observer)
}

/// Continues the classification run in `dir` from its last checkpoint, up to `epochs` epochs
/// in all (default: the run's own count), with the same schedule, data order and optimizer
/// state. `model`, when given, must be the run's model.
pub fn resume_run(
    dir: &Path,
    epochs: Option<usize>,
    model: Option<&str>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<RunOutcome> {
    let config = read_config(dir)?;
    let config_path = dir.join(crate::train::run::CONFIG_FILE);
    if task_of(&config) != TASK {
        return Err(Error::bad_data(
            &config_path,
            format!("holds a {} run, not a {TASK} run", task_of(&config)),
        ));
    }
    let mut run = RunConfig::from_json(config, &config_path)?;
    let ckpt = resolve_checkpoint(dir)?;
    let meta = read_checkpoint_meta(&ckpt)?;
    if let Some(m) = model {
        if m != run.model {
            return Err(Error::invalid(
                "model",
                format!("{} holds a run of {}, not {m}", dir.display(), run.model),
            ));
        }
    }
    let ckpt_run = RunConfig::from_json(meta.run.clone(), &ckpt)?;
    if ckpt_run.model != run.model {
        return Err(Error::checkpoint(
            &ckpt,
            format!(
                "holds {} weights but config.json says {}",
                ckpt_run.model, run.model
            ),
        ));
    }
    if let Some(e) = epochs {
        run.train.epochs = e;
    }
    if meta.state.epoch >= run.train.epochs {
        return Err(Error::invalid(
            "epochs",
            format!(
                "the run already finished {} of {} epochs; ask for more than {} epochs in all to train further",
                meta.state.epoch, run.train.epochs, meta.state.epoch
            ),
        ));
    }
    let data = load_run_data(&run)?;
    write_config(dir, &run.to_json())?;
    train_in(&run, &data, dir, Some(&meta), device, observer)
}

/// A checkpoint's path and what its metadata says, as a classification run.
struct Loaded {
    run: RunConfig,
    path: PathBuf,
}

fn load_meta(path: &Path, model: Option<&str>) -> Result<Loaded> {
    let file = resolve_checkpoint(path)?;
    let meta = read_checkpoint_meta(&file)?;
    let run = RunConfig::from_json(meta.run, &file)?;
    if let Some(m) = model {
        spec(m)?;
        if m != run.model {
            return Err(Error::checkpoint(
                &file,
                format!("is a checkpoint of {}, not of {m}", run.model),
            ));
        }
    }
    Ok(Loaded { run, path: file })
}

struct EvalVisitor<'a> {
    loaded: &'a Loaded,
    test: &'a InMemoryImages,
    device: &'a Device,
}

impl ZooVisitor for EvalVisitor<'_> {
    type Output = Result<EvalReport>;
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Result<EvalReport> {
        check_input(spec, self.test.shape())?;
        let model = load_weights(model, &self.loaded.path)?;
        let train = &self.loaded.run.train;
        let batch = train
            .val_batch_size
            .unwrap_or_else(|| default_eval_batch_size(self.test.shape(), train.batch_size));
        evaluate(&model, self.test, batch, self.device)
    }
}

/// Evaluates the checkpoint at `path` (a run directory or a checkpoint file) on the test split
/// of its data set, or of `data_dir` when given. When `path` is a run directory the report
/// (confusion matrix, JSON) is rewritten in its `report/`.
pub fn eval_checkpoint(
    path: &Path,
    data_dir: Option<&Path>,
    model: Option<&str>,
    device: &Device,
) -> Result<EvalReport> {
    let loaded = load_meta(path, model)?;
    let run = &loaded.run;
    let dir = data_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(&run.data.dir));
    let test = InMemoryImages {
        data: crate::data::mnist::load_split(&dir, Split::Test, run.data.kind)?,
        norm: run.data.normalization,
        augment: Augment::None,
    };
    let device = device.clone().without_autodiff();
    let report = visit_model(
        &run.model,
        run.num_classes,
        &device,
        EvalVisitor {
            loaded: &loaded,
            test: &test,
            device: &device,
        },
    )??;
    if path.is_dir() {
        write_report(path, &report)?;
        let history = read_history(path).unwrap_or_default();
        if !history.is_empty() {
            crate::train::trainer::plot_history(
                &history,
                &path.join("report").join("training_curve.png"),
            )?;
        }
    }
    Ok(report)
}

/// One image's top-k classes.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The image file.
    pub image: PathBuf,
    /// `(class name, probability)`, most probable first.
    pub top: Vec<(String, f32)>,
}

/// The `k` most probable classes of each image, from logits `[images, classes]` (softmax),
/// named by `name`.
fn top_k(
    logits: Tensor<2>,
    images: &[PathBuf],
    k: usize,
    name: impl Fn(usize) -> String,
) -> Result<Vec<Prediction>> {
    let classes = logits.dims()[1];
    let probs = burn::tensor::activation::softmax(logits, 1)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| Error::invalid("logits", format!("{e:?}")))?;
    Ok(images
        .iter()
        .zip(probs.chunks(classes.max(1)))
        .map(|(image, row)| {
            let mut idx: Vec<usize> = (0..classes).collect();
            idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            Prediction {
                image: image.clone(),
                top: idx.into_iter().take(k).map(|c| (name(c), row[c])).collect(),
            }
        })
        .collect())
}

struct PredictVisitor<'a> {
    loaded: &'a Loaded,
    images: &'a [PathBuf],
    k: usize,
    device: &'a Device,
}

impl ZooVisitor for PredictVisitor<'_> {
    type Output = Result<Vec<Prediction>>;
    fn visit<M: ImageClassifier>(
        self,
        model: M,
        spec: &'static ModelSpec,
    ) -> Result<Vec<Prediction>> {
        let [_, rows, cols] = spec.input;
        // Decode every image first: a bad file fails the command before any work.
        let mut pixels = Vec::with_capacity(self.images.len());
        for path in self.images {
            pixels.push(load_grey_image(path, rows, cols)?);
        }
        let model = load_weights(model, &self.loaded.path)?;
        let class_names = self.loaded.run.data.class_names.clone();
        let source = InMemoryImages {
            data: ImageDataset {
                labels: vec![0; pixels.len()],
                images: pixels.concat(),
                rows,
                cols,
                class_names: class_names.clone(),
            },
            norm: self.loaded.run.data.normalization,
            augment: Augment::None,
        };
        let order: Vec<usize> = (0..source.len()).collect();
        let batch = ImageBatch::from_source(&source, &order, None, self.device)?;
        let logits = model.forward(batch.images);
        top_k(logits, self.images, self.k, |c| class_names[c].clone())
    }
}

/// Classifies each image in `images` with the checkpoint at `path`, returning the top `k`.
/// Images of another size are resized, colour is converted to grey.
pub fn predict(
    path: &Path,
    images: &[PathBuf],
    k: usize,
    model: Option<&str>,
    device: &Device,
) -> Result<Vec<Prediction>> {
    if images.is_empty() {
        return Err(Error::invalid("images", "give at least one image file"));
    }
    let loaded = load_meta(path, model)?;
    let run = &loaded.run;
    let device = device.clone().without_autodiff();
    visit_model(
        &run.model,
        run.num_classes,
        &device,
        PredictVisitor {
            loaded: &loaded,
            images,
            k: k.max(1),
            device: &device,
        },
    )?
}

/// Writes the test part of `report/`: the confusion matrix and the test report as JSON.
pub fn write_report(dir: &Path, test: &EvalReport) -> Result<()> {
    let report = dir.join("report");
    std::fs::create_dir_all(&report).map_err(|e| Error::io(&report, e))?;
    confusion_matrix(
        &test.class_names,
        &test.confusion,
        test.accuracy,
        &report.join("confusion_matrix.png"),
    )?;
    let json = serde_json::to_string_pretty(test).expect("report serializes");
    write_atomic(&report.join("test_report.json"), json.as_bytes())
}

struct ImageNetPredict<'a> {
    dict: &'a crate::weights::StateDict,
    images: &'a [PathBuf],
    k: usize,
    device: &'a Device,
}

impl ZooVisitor for ImageNetPredict<'_> {
    type Output = Result<Vec<Prediction>>;
    fn visit<M: ImageClassifier>(
        self,
        model: M,
        spec: &'static ModelSpec,
    ) -> Result<Vec<Prediction>> {
        if spec.input[0] != 3 {
            return Err(Error::invalid(
                "model",
                format!(
                    "{} reads grey images: predict with a run directory of it instead",
                    spec.name
                ),
            ));
        }
        // Decode every image first: a bad file fails the command before any work.
        let mut pixels = Vec::with_capacity(self.images.len());
        for path in self.images {
            pixels.extend(load_imagenet_image(path, 256, 224)?);
        }
        let namer = model.clone();
        let model = crate::weights::torchvision::load_state_dict(
            model,
            &|p| namer.torch_key(p),
            self.dict,
        )?;
        let n = self.images.len();
        let x = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(pixels, [n, 3, 224, 224]),
            self.device,
        );
        let logits = model.forward(x); // [n, classes]
        let classes = logits.dims()[1];
        let names = crate::data::image_file::imagenet_classes();
        top_k(logits, self.images, self.k, |c| {
            if classes == names.len() {
                names[c].to_string()
            } else {
                format!("class {c}")
            }
        })
    }
}

/// Classifies `images` with zoo model `model` and torchvision weights at `weights` (`.pth` or
/// `.safetensors`), after torchvision's ImageNet transform (shorter side 256, centre crop 224,
/// mean/std), on `device`; for 1000-class models the names are ImageNet's. Returns the top `k`.
pub fn predict_imagenet(
    model: &str,
    weights: &Path,
    images: &[PathBuf],
    k: usize,
    num_classes: Option<usize>,
    device: &Device,
) -> Result<Vec<Prediction>> {
    if images.is_empty() {
        return Err(Error::invalid("images", "give at least one image file"));
    }
    let spec = spec(model)?;
    let dict = crate::weights::StateDict::read(weights)?;
    let device = device.clone().without_autodiff();
    visit_model(
        model,
        num_classes.unwrap_or(spec.classes),
        &device,
        ImageNetPredict {
            dict: &dict,
            images,
            k: k.max(1),
            device: &device,
        },
    )?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_from_confusion() {
        let r = report_from_confusion(
            vec![vec![3, 1], vec![0, 4]],
            8.0,
            vec!["a".into(), "b".into()],
        );
        assert_eq!(r.count, 8);
        assert!((r.accuracy - 7.0 / 8.0).abs() < 1e-12);
        assert_eq!(r.per_class_accuracy, vec![0.75, 1.0]);
        assert!((r.loss - 1.0).abs() < 1e-12);
    }

    #[test]
    fn default_eval_batches_are_bounded_by_input_size() {
        assert_eq!(default_eval_batch_size([1, 28, 28], 64), 1000);
        assert_eq!(default_eval_batch_size([3, 224, 224], 4), 6);
        assert_eq!(default_eval_batch_size([3, 224, 224], 32), 32);
        assert_eq!(default_eval_batch_size([3, 2000, 2000], 1), 1);
    }

    #[test]
    fn reads_run_configs_of_deepnet_0_1() {
        let old = serde_json::json!({
            "model": "lenet5", "num_classes": 10,
            "train": {"epochs": 1, "batch_size": 64, "lr": 0.002, "optimizer": "adam",
                      "momentum": 0.9, "weight_decay": 0.0, "schedule": {"kind": "constant"},
                      "clip_norm": null, "seed": 42, "val_size": 500, "augment": "flip-shift"},
            "data": {"dir": "/d", "kind": "fashion-mnist",
                     "normalization": {"mean": 0.286, "std": 0.353},
                     "class_names": ["a"], "limit_train": 0},
            "deepnet_version": "0.1.0"
        });
        let run = RunConfig::from_json(old, Path::new("config.json")).unwrap();
        assert_eq!(run.task, "classification");
        assert_eq!(run.data.val_size, 500);
        assert_eq!(run.data.augment, Augment::FlipShift);
        assert_eq!(run.train.val_batch_size, None);
    }
}
