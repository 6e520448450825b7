//! Image classification: any zoo model ([`ImageClassifier`]) on labelled images (an
//! MNIST-format directory or an image folder), trained with cross-entropy by the one loop from
//! scratch or from a pretrained backbone (transfer learning), reported as loss, accuracy,
//! per-class accuracy and the confusion matrix. `deepnet train`, `transfer`, `eval` and
//! `predict` are the functions of this file.
//!
//! The task: a batch is images `[B, C, H, W]` and labels `[B]`; the loss is the mean
//! cross-entropy of the logits (plus GoogLeNet's auxiliary classifiers, each weighted 0.3);
//! the statistics are the summed loss, the hits and the count.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::folder::decode;
use crate::data::image_file::{load_grey_image, load_imagenet_image};
use crate::data::image_set::mnist_class_names;
use crate::data::{
    load_images, Augment, DatasetKind, FolderAugment, FolderData, FolderImages, ImageBatch,
    ImageData, ImageFolder, ImageSource, ImageTransform, LoadedImages, MnistData, SampleSeeds,
    Split,
};
use crate::error::{Error, Result};
use crate::io::pth::{write_state, PthTensor, PthValues};
use crate::io::write_atomic;
use crate::models::vision::{
    check_input_side, spec, visit_model_with, ImageClassifier, ModelOptions, ModelSpec, ZooVisitor,
};
use crate::plot::confusion_matrix;
use crate::train::checkpoint::{load_weights, read_checkpoint_meta, resolve_checkpoint};
use crate::train::groups::trainable_and_frozen;
use crate::train::run::{
    create_run_dir, extend_epochs, read_config, refuse_existing_run, task_of, write_config,
    DEFAULT_TASK,
};
use crate::train::{
    fit, read_history, CheckpointMeta, EpochRecord, LrGroup, Observer, Stats, Task, TrainConfig,
    TrainOutput,
};
use crate::weights::torchvision::{export_state_dict, load_backbone};
use crate::weights::StateDict;

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

/// How a run's model was initialised from another network (transfer learning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferRecord {
    /// The weights file (torchvision `.pth`/`.safetensors`) or deepnet run directory the
    /// backbone came from.
    pub source: String,
    /// `features` (everything but the head frozen) or `finetune` (all layers train).
    pub mode: TransferMode,
    /// Module paths of the new classifier head (randomly initialised).
    pub head: Vec<String>,
}

/// The lecture's two ways of reusing a pretrained network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferMode {
    /// The backbone as a fixed feature extractor (DeCAF): only the new head trains, batch norms
    /// keep their running statistics.
    Features,
    /// Every layer trains, the backbone at a fraction of the head's learning rate.
    Finetune,
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
    /// Build options (GoogLeNet's `transform_input`, auxiliary heads).
    #[serde(default)]
    pub model_options: ModelOptions,
    /// Training settings (with what was frozen and the learning-rate groups).
    pub train: TrainConfig,
    /// The images, their class-to-index map and the evaluation transform.
    pub data: ImageData,
    /// Where the initial weights came from, for a transferred model.
    #[serde(default)]
    pub transfer: Option<TransferRecord>,
    /// deepnet version that wrote the run.
    pub deepnet_version: String,
}

impl RunConfig {
    /// Reads a run configuration from JSON, including those written by deepnet 0.1 (no
    /// `task`; an MNIST directory without a `format`; the validation size and augmentation
    /// among the training settings).
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
                data.entry("format").or_insert_with(|| "mnist".into());
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
        let names = run.data.class_names().len();
        if names != run.num_classes {
            return Err(Error::bad_data(
                origin,
                format!(
                    "names {names} classes but its model has {} outputs: the run config is damaged",
                    run.num_classes
                ),
            ));
        }
        Ok(run)
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("RunConfig serializes")
    }

    /// The image file at `path` as this run's model input (`[C, H, W]` values): the run's
    /// evaluation transform for an image-folder run; grey, resized to the model's size and
    /// normalised for an MNIST-format run.
    pub fn input_of_image(&self, path: &Path, spec: &ModelSpec) -> Result<Vec<f32>> {
        match &self.data {
            ImageData::Mnist(m) => {
                let [_, rows, cols] = spec.input;
                Ok(load_grey_image(path, rows, cols)?
                    .into_iter()
                    .map(|p| m.normalization.apply(p))
                    .collect())
            }
            ImageData::Folder(f) => {
                let eval = ImageTransform {
                    augment: FolderAugment::None,
                    ..f.transform.clone()
                };
                let mut out = vec![0f32; eval.len()];
                eval.apply(&decode(path)?, None, &mut out);
                Ok(out)
            }
        }
    }

    /// `[C, H, W]` of this run's inputs.
    pub fn input_shape(&self, spec: &ModelSpec) -> [usize; 3] {
        match &self.data {
            ImageData::Mnist(_) => spec.input,
            ImageData::Folder(f) => [f.transform.channels, f.transform.size, f.transform.size],
        }
    }
}

/// How the run's inputs are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    /// ImageNet's mean and standard deviation (what torchvision's weights expect).
    ImageNet,
    /// The training images' own per-channel mean and standard deviation (from up to 1,000 of
    /// them).
    Data,
}

/// Which images a new run trains on.
#[derive(Debug, Clone)]
pub enum DataRequest {
    /// An MNIST-format directory.
    Mnist {
        /// The directory.
        dir: PathBuf,
        /// Which data set it holds (class names, normalization).
        dataset: DatasetKind,
        /// Validation images carved from the training set; `None`: a tenth, at most 5,000.
        val_size: Option<usize>,
        /// Augmentation of the training images.
        augment: Augment,
        /// Use only the first N training images (0 = all).
        limit_train: usize,
        /// Keep only these labels (empty: all).
        classes: Vec<usize>,
        /// Train on only this many images per class, drawn with `sample_seed`.
        per_class: Option<usize>,
        /// Seed of the `per_class` draw.
        sample_seed: u64,
    },
    /// An image folder (one sub-folder per class).
    Folder {
        /// The training folder.
        dir: PathBuf,
        /// A validation folder with the same classes (else carved from `dir`).
        val_dir: Option<PathBuf>,
        /// A test folder with the same classes.
        test_dir: Option<PathBuf>,
        /// Validation images carved from `dir`; `None`: a tenth, at most 5,000.
        val_size: Option<usize>,
        /// Side of the square input; `None`: the model's.
        image_size: Option<usize>,
        /// Augmentation of the training images.
        augment: FolderAugment,
        /// Normalisation.
        normalize: Normalize,
        /// Replace unreadable files instead of failing.
        skip_bad: bool,
    },
}

/// What starting a classification run asks for.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// Registry name of the model.
    pub model: String,
    /// The images.
    pub data: DataRequest,
    /// Training settings.
    pub train: TrainConfig,
    /// Build options of the model.
    pub model_options: ModelOptions,
    /// The run directory to create.
    pub out: PathBuf,
}

/// Where a transferred model's backbone comes from.
#[derive(Debug, Clone)]
pub enum Backbone {
    /// A torchvision state dict (`.pth` or `.safetensors`) for the zoo model.
    Weights(PathBuf),
    /// A deepnet run (directory or checkpoint file) of the same zoo model.
    Run(PathBuf),
}

/// What `deepnet transfer` asks for on top of a [`TrainRequest`].
#[derive(Debug, Clone)]
pub struct TransferRequest {
    /// The pretrained network.
    pub backbone: Backbone,
    /// Features (frozen backbone) or fine-tuning.
    pub mode: TransferMode,
    /// Fine-tuning: the backbone's learning rate as a fraction of the head's.
    pub backbone_lr_factor: f64,
}

/// What a finished training run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
    /// The trained model on the test split (on the validation images when the run has no
    /// test split: see `report_split`).
    pub test: EvalReport,
    /// Which images `test` is about: `test` or `validation`.
    pub report_split: String,
    /// Files left out or replaced because they could not be read (with `skip_bad`).
    pub skipped: Vec<PathBuf>,
    /// Trainable and frozen parameter counts.
    pub params: (usize, usize),
}

/// The validation size when none is given: a tenth of `n` training images, at most 5,000.
pub fn default_val_size(n: usize) -> usize {
    (n / 10).min(5000)
}

/// Every epoch ends with a validation: a run needs at least one validation image.
fn check_val_size(val_size: usize) -> Result<()> {
    if val_size == 0 {
        return Err(Error::invalid(
            "val-size",
            "must be at least 1: the run is validated after every epoch (too few training images, or --val-size 0)",
        ));
    }
    Ok(())
}

/// Training images of an MNIST-format directory with the given labels kept (from the labels
/// file, which is small).
fn count_mnist(dir: &Path, classes: &[usize]) -> Result<usize> {
    if classes.is_empty() {
        return crate::data::mnist::count_split(dir, Split::Train);
    }
    let labels = crate::data::mnist::load_split_labels(dir, Split::Train)?;
    Ok(labels
        .iter()
        .filter(|&&l| classes.contains(&(l as usize)))
        .count())
}

/// The run's [`ImageData`] for `req`, with every default resolved, checked against `spec`.
fn resolve_data(req: &DataRequest, spec: &ModelSpec) -> Result<ImageData> {
    match req {
        DataRequest::Mnist {
            dir,
            dataset,
            val_size,
            augment,
            limit_train,
            classes,
            per_class,
            sample_seed,
        } => {
            if spec.input[0] != 1 {
                return Err(Error::invalid(
                    "data",
                    format!(
                        "model {} reads {}-channel images and MNIST-format data is grey: train it on an image folder (one sub-folder per class)",
                        spec.name, spec.input[0]
                    ),
                ));
            }
            check_input_side(spec, 28)?;
            let class_names = mnist_class_names(*dataset, classes)?;
            let val_size = match val_size {
                Some(v) => *v,
                None => {
                    let n = count_mnist(dir, classes)?;
                    let n = if *limit_train > 0 {
                        n.min(*limit_train)
                    } else {
                        n
                    };
                    default_val_size(n)
                }
            };
            check_val_size(val_size)?;
            Ok(ImageData::Mnist(MnistData {
                dir: dir.display().to_string(),
                kind: *dataset,
                normalization: dataset.normalization(),
                class_names,
                limit_train: *limit_train,
                val_size,
                augment: *augment,
                classes: classes.clone(),
                per_class: *per_class,
                sample_seed: *sample_seed,
            }))
        }
        DataRequest::Folder {
            dir,
            val_dir,
            test_dir,
            val_size,
            image_size,
            augment,
            normalize,
            skip_bad,
        } => {
            let size = image_size.unwrap_or(spec.input[1]);
            if size == 0 {
                return Err(Error::invalid("image_size", "must be at least 1"));
            }
            check_input_side(spec, size)?;
            let folder = ImageFolder::scan(dir)?;
            let n = folder.items.len();
            let val_size = match (val_dir, val_size) {
                (Some(_), _) => 0,
                (None, Some(v)) => *v,
                (None, None) => default_val_size(n).max(usize::from(n >= 2)),
            };
            if val_dir.is_none() {
                check_val_size(val_size)?;
            }
            let mut transform = ImageTransform::imagenet(spec.input[0], size);
            transform.augment = *augment;
            if *normalize == Normalize::Data {
                let plain = FolderImages::new(folder.clone(), transform.clone(), *skip_bad);
                let (mean, std) = plain.channel_stats(1000)?;
                transform.mean = mean;
                transform.std = std;
            }
            Ok(ImageData::Folder(FolderData {
                dir: dir.display().to_string(),
                val_dir: val_dir.as_ref().map(|d| d.display().to_string()),
                test_dir: test_dir.as_ref().map(|d| d.display().to_string()),
                class_names: folder.class_names,
                val_size,
                transform,
                skip_bad: *skip_bad,
            }))
        }
    }
}

/// What the registry says of a model before any training: its head and its parameters.
struct ModelFacts {
    head: Vec<String>,
    entries: Vec<crate::weights::paths::ParamEntry>,
}

struct Facts;

impl ZooVisitor for Facts {
    type Output = ModelFacts;
    fn visit<M: ImageClassifier>(self, model: M, _spec: &'static ModelSpec) -> ModelFacts {
        ModelFacts {
            head: model.head(),
            entries: crate::weights::paths::param_entries(&model),
        }
    }
}

/// The backbone's tensors under torchvision's names, from a weights file or a deepnet run.
fn backbone_dict(backbone: &Backbone, model: &str) -> Result<StateDict> {
    match backbone {
        Backbone::Weights(path) => StateDict::read(path),
        Backbone::Run(path) => {
            let loaded = load_meta(path, Some(model))?;
            struct Export<'a>(&'a Path);
            impl ZooVisitor for Export<'_> {
                type Output = Result<StateDict>;
                fn visit<M: ImageClassifier>(
                    self,
                    model: M,
                    _spec: &'static ModelSpec,
                ) -> Result<StateDict> {
                    let model = load_weights(model, self.0)?;
                    let mut dict = export_state_dict(&model, &|p| model.torch_key(p));
                    dict.source = self.0.display().to_string();
                    Ok(dict)
                }
            }
            visit_model_with(
                &loaded.run.model,
                loaded.run.num_classes,
                loaded.run.model_options,
                &Device::flex(),
                Export(&loaded.path),
            )?
        }
    }
}

struct TrainVisitor<'a> {
    run: &'a RunConfig,
    data: &'a LoadedImages,
    backbone: Option<&'a StateDict>,
    dir: &'a Path,
    resume: Option<&'a CheckpointMeta>,
    device: &'a Device,
    observer: &'a mut dyn Observer,
}

impl ZooVisitor for TrainVisitor<'_> {
    type Output = Result<RunOutcome>;
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Result<RunOutcome> {
        let shape = self.data.train.shape();
        if shape[0] != spec.input[0] {
            return Err(Error::invalid(
                "data",
                format!(
                    "model {} takes {}-channel images, the data has {}",
                    spec.name, spec.input[0], shape[0]
                ),
            ));
        }
        check_input_side(spec, shape[1])?;
        let model = match (self.backbone, &self.run.transfer) {
            (Some(dict), Some(t)) if self.resume.is_none() => {
                let namer = model.clone();
                load_backbone(model, &|p| namer.torch_key(p), dict, &t.head)?
            }
            _ => model,
        };
        let task = Classification::<M>::new(&*self.data.train, &*self.data.val);
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
        let (report_split, report_on) = match &self.data.test {
            Some(t) => ("test", &**t),
            None => ("validation", &*self.data.val),
        };
        let batch = self
            .run
            .train
            .val_batch_size
            .unwrap_or_else(|| default_eval_batch_size(shape, self.run.train.batch_size));
        self.observer.validation_start(report_on.len());
        let test = evaluate(
            &fitted.model,
            report_on,
            batch,
            &self.device.clone().without_autodiff(),
        )?;
        write_report(self.dir, &test)?;
        Ok(RunOutcome {
            dir: self.dir.to_path_buf(),
            history: fitted.history,
            test,
            report_split: report_split.into(),
            skipped: Vec::new(),
            params: trainable_and_frozen(&fitted.model),
        })
    }
}

fn train_in(
    run: &RunConfig,
    data: &LoadedImages,
    backbone: Option<&StateDict>,
    dir: &Path,
    resume: Option<&CheckpointMeta>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<RunOutcome> {
    let device = device.clone().autodiff();
    // The initial weights come from the seed (the loop re-seeds before every batch).
    device.seed(run.train.seed);
    let mut outcome = visit_model_with(
        &run.model,
        run.num_classes,
        run.model_options,
        &device,
        TrainVisitor {
            run,
            data,
            backbone,
            dir,
            resume,
            device: &device,
            observer,
        },
    )??;
    outcome.skipped = data.skipped.iter().map(|(p, _)| p.clone()).collect();
    for source in [Some(&data.train), Some(&data.val), data.test.as_ref()]
        .into_iter()
        .flatten()
    {
        outcome.skipped.extend(source.skipped());
    }
    outcome.skipped.sort();
    outcome.skipped.dedup();
    Ok(outcome)
}

/// Creates the run directory of `req`, trains (from `transfer`'s backbone, when given),
/// evaluates on the test split and writes the report. Refuses a directory that already holds
/// a run (nothing is overwritten: use [`resume_run`] to continue one). Everything that can be
/// checked — model, data, freeze patterns, weights — is checked before anything is written.
pub fn start_run(
    req: &TrainRequest,
    transfer: Option<&TransferRequest>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<RunOutcome> {
    let spec = spec(&req.model)?;
    req.train.validate()?;
    if req.train.tbptt.is_some() {
        return Err(Error::invalid(
            "tbptt",
            "image classification has no time axis to truncate backpropagation along",
        ));
    }
    refuse_existing_run(&req.out)?;
    let data = resolve_data(&req.data, spec)?;
    let num_classes = data.class_names().len();
    let mut train = req.train.clone();
    let mut model_options = req.model_options;
    let mut record = None;
    let backbone = match transfer {
        None => None,
        Some(t) => {
            if req.model == "lenet5-1998" {
                return Err(Error::invalid(
                    "model",
                    "lenet5-1998's output layer is a fixed RBF code per class: there is no head to replace",
                ));
            }
            let dict = backbone_dict(&t.backbone, &req.model)?;
            if req.model.starts_with("googlenet")
                && !dict.tensors.keys().any(|k| k.starts_with("aux1."))
            {
                // torchvision's released GoogLeNet weights have no auxiliary classifiers.
                model_options.no_aux = true;
            }
            let facts = visit_model_with(
                &req.model,
                num_classes,
                model_options,
                &Device::flex(),
                Facts,
            )?;
            let backbone_patterns: Vec<String> = std::iter::once("*".to_string())
                .chain(facts.head.iter().map(|h| format!("!{h}.*")))
                .collect();
            match t.mode {
                TransferMode::Features => {
                    train.freeze.extend(backbone_patterns);
                }
                TransferMode::Finetune => {
                    if !(t.backbone_lr_factor.is_finite() && t.backbone_lr_factor >= 0.0) {
                        return Err(Error::invalid(
                            "backbone_lr_factor",
                            "must be a number >= 0",
                        ));
                    }
                    train.lr_groups.push(LrGroup {
                        patterns: backbone_patterns,
                        factor: t.backbone_lr_factor,
                    });
                }
            }
            // Patterns that match nothing are refused here, before anything is written.
            crate::train::groups::matching_ids(&facts.entries, &train.freeze, "freeze")?;
            for g in &train.lr_groups {
                crate::train::groups::matching_ids(&facts.entries, &g.patterns, "lr_groups")?;
            }
            // The weights must fit the backbone: checked on a model built now.
            struct Fits<'a>(&'a StateDict, &'a [String]);
            impl ZooVisitor for Fits<'_> {
                type Output = Result<()>;
                fn visit<M: ImageClassifier>(self, model: M, _: &'static ModelSpec) -> Result<()> {
                    let namer = model.clone();
                    load_backbone(model, &|p| namer.torch_key(p), self.0, self.1).map(|_| ())
                }
            }
            visit_model_with(
                &req.model,
                num_classes,
                model_options,
                &Device::flex(),
                Fits(&dict, &facts.head),
            )??;
            record = Some(TransferRecord {
                source: match &t.backbone {
                    Backbone::Weights(p) | Backbone::Run(p) => p.display().to_string(),
                },
                mode: t.mode,
                head: facts.head,
            });
            Some(dict)
        }
    };
    if transfer.is_none() && !train.freeze.is_empty() {
        // Transfer runs checked their patterns above.
        let facts = visit_model_with(
            &req.model,
            num_classes,
            model_options,
            &Device::flex(),
            Facts,
        )?;
        crate::train::groups::matching_ids(&facts.entries, &train.freeze, "freeze")?;
    }
    let run = RunConfig {
        task: TASK.into(),
        model: req.model.clone(),
        num_classes,
        model_options,
        train,
        data,
        transfer: record,
        deepnet_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    // Load (and validate) the data before creating anything on disk.
    let images = load_images(&run.data, run.train.seed)?;
    create_run_dir(&req.out)?;
    write_config(&req.out, &run.to_json())?;
    train_in(
        &run,
        &images,
        backbone.as_ref(),
        &req.out,
        None,
        device,
        observer,
    )
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
    // Before anything in the run is read for training or written.
    crate::train::run::lock_run_dir(dir)?;
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
    extend_epochs(&mut run.train, epochs, meta.state.epoch)?;
    let images = load_images(&run.data, run.train.seed)?;
    write_config(dir, &run.to_json())?;
    train_in(&run, &images, None, dir, Some(&meta), device, observer)
}

/// A checkpoint's path and what its metadata says, as a classification run.
pub struct Loaded {
    /// The run's configuration.
    pub run: RunConfig,
    /// The checkpoint file.
    pub path: PathBuf,
}

/// The checkpoint at `path` (a run directory or the file) and its run's configuration;
/// `model`, when given, must be the run's model.
pub fn load_meta(path: &Path, model: Option<&str>) -> Result<Loaded> {
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
    test: &'a dyn ImageSource,
    device: &'a Device,
}

impl ZooVisitor for EvalVisitor<'_> {
    type Output = Result<EvalReport>;
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Result<EvalReport> {
        let expected = self.loaded.run.input_shape(spec);
        let shape = self.test.shape();
        if shape != expected {
            return Err(Error::invalid(
                "data",
                format!(
                    "the test images are {}x{}x{} and the model was trained on {}x{}x{}",
                    shape[0], shape[1], shape[2], expected[0], expected[1], expected[2]
                ),
            ));
        }
        let model = load_weights(model, &self.loaded.path)?;
        let train = &self.loaded.run.train;
        let batch = train
            .val_batch_size
            .unwrap_or_else(|| default_eval_batch_size(self.test.shape(), train.batch_size));
        evaluate(&model, self.test, batch, self.device)
    }
}

/// The images to evaluate a run on: the test split of its MNIST-format directory (or of
/// `data_dir`), or its test folder (or `data_dir`, a folder with the run's classes).
fn eval_images(run: &RunConfig, data_dir: Option<&Path>) -> Result<Box<dyn ImageSource>> {
    match &run.data {
        ImageData::Mnist(m) => {
            let mut m = m.clone();
            if let Some(d) = data_dir {
                m.dir = d.display().to_string();
            }
            crate::data::image_set::load_mnist_test(&m)
        }
        ImageData::Folder(f) => {
            let dir = match (data_dir, &f.test_dir) {
                (Some(d), _) => d.to_path_buf(),
                (None, Some(t)) => PathBuf::from(t),
                (None, None) => {
                    return Err(Error::invalid(
                        "data",
                        "this run has no test folder: give a folder of test images with the run's classes",
                    ))
                }
            };
            let folder = ImageFolder::scan_classes(&dir, &f.class_names)?;
            let eval = ImageTransform {
                augment: FolderAugment::None,
                ..f.transform.clone()
            };
            Ok(Box::new(FolderImages::new(folder, eval, f.skip_bad)))
        }
    }
}

/// Where `eval` of a run directory `dir` writes its report: the run's own `report/` for its own
/// test images; for other images (`data_dir`), `eval-<their folder's name>/`, so that the
/// run's report is never replaced by one about other data.
pub fn eval_report_dir(dir: &Path, data_dir: Option<&Path>) -> PathBuf {
    match data_dir {
        None => dir.join("report"),
        Some(d) => {
            let name: String = d
                .canonicalize()
                .unwrap_or_else(|_| d.to_path_buf())
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "data".into())
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            dir.join(format!("eval-{name}"))
        }
    }
}

/// Evaluates the checkpoint at `path` (a run directory or a checkpoint file) on the test split
/// of its data set, or on `data_dir` when given. When `path` is a run directory the report
/// (confusion matrix, JSON) is written in [`eval_report_dir`]. No test images is an error.
pub fn eval_checkpoint(
    path: &Path,
    data_dir: Option<&Path>,
    model: Option<&str>,
    device: &Device,
) -> Result<EvalReport> {
    let loaded = load_meta(path, model)?;
    let run = &loaded.run;
    let test = eval_images(run, data_dir)?;
    if test.is_empty() {
        return Err(Error::invalid(
            "data",
            "there are no test images to evaluate on",
        ));
    }
    let device = device.clone().without_autodiff();
    let report = visit_model_with(
        &run.model,
        run.num_classes,
        run.model_options,
        &device,
        EvalVisitor {
            loaded: &loaded,
            test: &*test,
            device: &device,
        },
    )??;
    if path.is_dir() && data_dir.is_some() {
        write_report_to(&eval_report_dir(path, data_dir), &report)?;
    } else if path.is_dir() {
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
        let run = &self.loaded.run;
        let [c, h, w] = run.input_shape(spec);
        // Decode every image first: a bad file fails the command before any work.
        let mut pixels = Vec::with_capacity(self.images.len() * c * h * w);
        for path in self.images {
            pixels.extend(run.input_of_image(path, spec)?);
        }
        let model = load_weights(model, &self.loaded.path)?;
        let class_names = run.data.class_names().to_vec();
        let x = Tensor::<4>::from_data(
            TensorData::new(pixels, [self.images.len(), c, h, w]),
            self.device,
        );
        let logits = model.forward(x);
        top_k(logits, self.images, self.k, |c| class_names[c].clone())
    }
}

/// Classifies each image in `images` with the checkpoint at `path`, returning the top `k`,
/// after the run's own evaluation transform (for MNIST-format runs: grey, resized to the
/// model's input).
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
    visit_model_with(
        &run.model,
        run.num_classes,
        run.model_options,
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
    write_report_to(&dir.join("report"), test)
}

/// Writes `confusion_matrix.png` and `test_report.json` of `test` into the folder `report`.
pub fn write_report_to(report: &Path, test: &EvalReport) -> Result<()> {
    let report = report.to_path_buf();
    std::fs::create_dir_all(&report).map_err(|e| Error::io(&report, e))?;
    confusion_matrix(
        &test.class_names,
        &test.confusion,
        test.accuracy,
        "images",
        &report.join("confusion_matrix.png"),
    )?;
    let json = serde_json::to_string_pretty(test).expect("report serializes");
    write_atomic(&report.join("test_report.json"), json.as_bytes())
}

struct ImageNetPredict<'a> {
    dict: &'a StateDict,
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

/// The build options for zoo model `model` that fit the state dict `dict`: a GoogLeNet dict
/// without auxiliary classifiers (torchvision's released weights) builds the model without
/// them; `transform_input` as given.
pub fn options_for_dict(model: &str, dict: &StateDict, transform_input: bool) -> ModelOptions {
    ModelOptions {
        transform_input,
        no_aux: model.starts_with("googlenet")
            && !dict.tensors.keys().any(|k| k.starts_with("aux1.")),
    }
}

/// Classifies `images` with zoo model `model` and torchvision weights at `weights` (`.pth` or
/// `.safetensors`), after torchvision's ImageNet transform (shorter side 256, centre crop 224,
/// mean/std), on `device`; for 1000-class models the names are ImageNet's. Returns the top `k`.
/// `transform_input`: GoogLeNet's option (torchvision's ImageNet GoogLeNet weights need it).
pub fn predict_imagenet(
    model: &str,
    weights: &Path,
    images: &[PathBuf],
    k: usize,
    num_classes: Option<usize>,
    transform_input: bool,
    device: &Device,
) -> Result<Vec<Prediction>> {
    if images.is_empty() {
        return Err(Error::invalid("images", "give at least one image file"));
    }
    let spec = spec(model)?;
    let dict = StateDict::read(weights)?;
    let device = device.clone().without_autodiff();
    visit_model_with(
        model,
        num_classes.unwrap_or(spec.classes),
        options_for_dict(model, &dict, transform_input),
        &device,
        ImageNetPredict {
            dict: &dict,
            images,
            k: k.max(1),
            device: &device,
        },
    )?
}

/// A torchvision state dict as torch saves it: the float parameters and buffers of `dict`,
/// and beside every batch norm its int64 `num_batches_tracked` counter (0; deepnet does not
/// count), so `load_state_dict(strict=True)` finds every key it expects.
pub fn torch_state(dict: &StateDict) -> Vec<PthTensor> {
    let mut out = Vec::new();
    for (name, t) in &dict.tensors {
        out.push(PthTensor {
            name: name.clone(),
            shape: t.shape.clone(),
            values: PthValues::F32(t.data.clone()),
        });
        if let Some(prefix) = name.strip_suffix("running_var") {
            out.push(PthTensor {
                name: format!("{prefix}num_batches_tracked"),
                shape: Vec::new(),
                values: PthValues::I64(vec![0]),
            });
        }
    }
    out
}

struct ExportVisitor<'a> {
    checkpoint: Option<&'a Path>,
    weights: Option<&'a StateDict>,
}

impl ZooVisitor for ExportVisitor<'_> {
    type Output = Result<StateDict>;
    fn visit<M: ImageClassifier>(self, model: M, _spec: &'static ModelSpec) -> Result<StateDict> {
        let model = match (self.checkpoint, self.weights) {
            (Some(ckpt), _) => load_weights(model, ckpt)?,
            (None, Some(dict)) => {
                let namer = model.clone();
                crate::weights::torchvision::load_state_dict(model, &|p| namer.torch_key(p), dict)?
            }
            (None, None) => model,
        };
        Ok(export_state_dict(&model, &|p| model.torch_key(p)))
    }
}

/// Writes the weights of the run (directory or checkpoint) at `path` to `to` (`.pth` or
/// `.safetensors`) under torchvision's names, so the model goes back to PyTorch:
/// `model.load_state_dict(torch.load(to, weights_only=True), strict=True)` with torchvision's
/// model of the same name and class count. Returns the number of tensors written.
pub fn export_run(path: &Path, to: &Path) -> Result<usize> {
    let loaded = load_meta(path, None)?;
    let run = &loaded.run;
    let dict = visit_model_with(
        &run.model,
        run.num_classes,
        run.model_options,
        &Device::flex(),
        ExportVisitor {
            checkpoint: Some(&loaded.path),
            weights: None,
        },
    )??;
    let tensors = torch_state(&dict);
    write_state(to, &tensors)?;
    Ok(tensors.len())
}

/// Reads torchvision weights for zoo model `model` with `num_classes` outputs (checking every
/// key and shape, as loading does) and writes them to `to` in the format its extension names.
/// Returns the number of tensors written.
pub fn export_weights(
    model: &str,
    num_classes: Option<usize>,
    weights: &Path,
    to: &Path,
) -> Result<usize> {
    let spec = spec(model)?;
    let dict = StateDict::read(weights)?;
    let out = visit_model_with(
        model,
        num_classes.unwrap_or(spec.classes),
        options_for_dict(model, &dict, false),
        &Device::flex(),
        ExportVisitor {
            checkpoint: None,
            weights: Some(&dict),
        },
    )??;
    let tensors = torch_state(&out);
    write_state(to, &tensors)?;
    Ok(tensors.len())
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
                     "class_names": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"],
                     "limit_train": 0},
            "deepnet_version": "0.1.0"
        });
        let run = RunConfig::from_json(old, Path::new("config.json")).unwrap();
        assert_eq!(run.task, "classification");
        let ImageData::Mnist(m) = &run.data else {
            panic!("an MNIST run")
        };
        assert_eq!(m.val_size, 500);
        assert_eq!(m.augment, Augment::FlipShift);
        assert!(m.classes.is_empty());
        assert_eq!(run.train.val_batch_size, None);
        assert_eq!(run.model_options, ModelOptions::default());
    }
}
