//! Run directories: what `deepnet train`, `eval` and `predict` do, as library calls.
//!
//! A run directory is self-describing: `config.json` ([`RunConfig`]), `metrics.jsonl`,
//! `checkpoint.safetensors` + `optimizer-eNNNN.bpk`, and `report/` (`training_curve.png`,
//! `confusion_matrix.png`, `test_report.json`). `eval`, `predict` and `--resume` need nothing
//! else.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::Serialize;

use super::checkpoint::{
    load_weights, read_checkpoint_meta, resolve_checkpoint, write_atomic, CheckpointMeta,
    CHECKPOINT_FILE,
};
use super::config::{DataSource, RunConfig, TrainConfig};
use super::metrics::{evaluate, EvalReport};
use super::report::{plot_confusion_matrix, plot_training_curve};
use super::trainer::{read_metrics, train, EpochMetrics, Observer, TrainData};
use crate::data::image_file::load_grey_image;
use crate::data::{load_dataset_pair, DatasetKind, ImageBatcher, ImageDataset, Split};
use crate::error::{Error, Result};
use crate::vision::{spec, visit_model, ImageClassifier, ModelSpec, ZooVisitor};

/// File name of the run configuration.
pub const CONFIG_FILE: &str = "config.json";

/// What `deepnet train` asks for.
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
    /// Every epoch's metrics.
    pub history: Vec<EpochMetrics>,
    /// The trained model on the test split.
    pub test: EvalReport,
}

/// Reads `config.json` of the run directory `dir`.
pub fn read_run_config(dir: &Path) -> Result<RunConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::bad_data(&path, format!("not a deepnet run config: {e}")))
}

fn check_input(spec: &ModelSpec, data: &ImageDataset) -> Result<()> {
    if [1, data.rows, data.cols] != spec.input {
        return Err(Error::invalid(
            "data",
            format!(
                "model {} takes {}x{}x{} images, the data set has 1x{}x{}",
                spec.name, spec.input[0], spec.input[1], spec.input[2], data.rows, data.cols
            ),
        ));
    }
    Ok(())
}

struct TrainVisitor<'a> {
    run: &'a RunConfig,
    train: &'a ImageDataset,
    val: &'a ImageDataset,
    test: &'a ImageDataset,
    dir: &'a Path,
    resume: Option<&'a CheckpointMeta>,
    device: &'a Device,
    observer: &'a mut dyn Observer,
}

impl ZooVisitor for TrainVisitor<'_> {
    type Output = Result<RunOutcome>;
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Result<RunOutcome> {
        check_input(spec, self.train)?;
        let (model, history) = train(
            model,
            self.run,
            TrainData {
                train: self.train,
                val: self.val,
            },
            self.dir,
            self.resume,
            self.device,
            self.observer,
        )?;
        let batcher = ImageBatcher::new(
            self.device.clone().without_autodiff(),
            self.run.data.normalization,
        );
        self.observer.validation_start(self.test.len());
        let test = evaluate(&model, self.test, &batcher, 1000, |_| {});
        write_report(self.dir, &history, &test)?;
        Ok(RunOutcome {
            dir: self.dir.to_path_buf(),
            history,
            test,
        })
    }
}

/// Loads train (minus the validation split), validation and test sets as `run` describes.
fn load_run_data(run: &RunConfig) -> Result<(ImageDataset, ImageDataset, ImageDataset)> {
    let (full_train, test) = load_dataset_pair(Path::new(&run.data.dir), run.data.kind)?;
    let full_train = if run.data.limit_train > 0 && run.data.limit_train < full_train.len() {
        let idx: Vec<usize> = (0..run.data.limit_train).collect();
        full_train.subset(&idx)
    } else {
        full_train
    };
    if run.train.val_size >= full_train.len() {
        return Err(Error::invalid(
            "--val-size",
            format!(
                "{} validation images leave none of the {} training images to train on",
                run.train.val_size,
                full_train.len()
            ),
        ));
    }
    let (train, val) =
        crate::data::train_val_split(&full_train, run.train.val_size, run.train.seed);
    Ok((train, val, test))
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
    // A directory with a config but no checkpoint is a run stopped before its first epoch
    // ended: nothing in it is worth keeping, so it may be started again.
    if req.out.join(CHECKPOINT_FILE).exists() {
        return Err(Error::invalid(
            "--out",
            format!(
                "{} already holds a run; pass another --out, or continue it with --resume {}",
                req.out.display(),
                req.out.display()
            ),
        ));
    }
    let run = RunConfig {
        model: req.model.clone(),
        num_classes: req.dataset.class_names().len(),
        train: req.train.clone(),
        data: DataSource {
            dir: req.data_dir.display().to_string(),
            kind: req.dataset,
            normalization: req.dataset.normalization(),
            class_names: req.dataset.class_names(),
            limit_train: req.limit_train,
        },
        deepnet_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    // Load (and validate) the data before creating anything on disk.
    let (train_set, val, test) = load_run_data(&run)?;
    std::fs::create_dir_all(&req.out).map_err(|e| Error::io(&req.out, e))?;
    let json = serde_json::to_string_pretty(&run).expect("config serializes");
    write_atomic(&req.out.join(CONFIG_FILE), json.as_bytes())?;
    let device = device.clone().autodiff();
    device.seed(run.train.seed);
    visit_model(
        &run.model,
        run.num_classes,
        &device,
        TrainVisitor {
            run: &run,
            train: &train_set,
            val: &val,
            test: &test,
            dir: &req.out,
            resume: None,
            device: &device,
            observer,
        },
    )?
}

/// Continues the run in `dir` from its last checkpoint, up to `epochs` epochs in all (default:
/// the run's own count), with the same schedule, data order and optimizer state.
pub fn resume_run(
    dir: &Path,
    epochs: Option<usize>,
    model: Option<&str>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<RunOutcome> {
    let mut run = read_run_config(dir)?;
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
    if meta.run.model != run.model {
        return Err(Error::checkpoint(
            &ckpt,
            format!(
                "holds {} weights but config.json says {}",
                meta.run.model, run.model
            ),
        ));
    }
    if let Some(e) = epochs {
        run.train.epochs = e;
    }
    if meta.state.epoch >= run.train.epochs {
        return Err(Error::invalid(
            "--epochs",
            format!(
                "the run already finished {} of {} epochs; pass --epochs N with N > {} to train further",
                meta.state.epoch, run.train.epochs, meta.state.epoch
            ),
        ));
    }
    let (train_set, val, test) = load_run_data(&run)?;
    let json = serde_json::to_string_pretty(&run).expect("config serializes");
    write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())?;
    let device = device.clone().autodiff();
    device.seed(run.train.seed);
    visit_model(
        &run.model,
        run.num_classes,
        &device,
        TrainVisitor {
            run: &run,
            train: &train_set,
            val: &val,
            test: &test,
            dir,
            resume: Some(&meta),
            device: &device,
            observer,
        },
    )?
}

/// A model loaded from a checkpoint, with what is needed to feed it.
struct Loaded {
    meta: CheckpointMeta,
    path: PathBuf,
}

fn load_meta(path: &Path, model: Option<&str>) -> Result<Loaded> {
    let file = resolve_checkpoint(path)?;
    let meta = read_checkpoint_meta(&file)?;
    if let Some(m) = model {
        spec(m)?;
        if m != meta.run.model {
            return Err(Error::checkpoint(
                &file,
                format!("is a checkpoint of {}, not of {m}", meta.run.model),
            ));
        }
    }
    Ok(Loaded { meta, path: file })
}

struct EvalVisitor<'a> {
    loaded: &'a Loaded,
    test: &'a ImageDataset,
    device: &'a Device,
}

impl ZooVisitor for EvalVisitor<'_> {
    type Output = Result<EvalReport>;
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Result<EvalReport> {
        check_input(spec, self.test)?;
        let model = load_weights(model, &self.loaded.path)?;
        let batcher =
            ImageBatcher::new(self.device.clone(), self.loaded.meta.run.data.normalization);
        Ok(evaluate(&model, self.test, &batcher, 1000, |_| {}))
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
    let run = &loaded.meta.run;
    let dir = data_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(&run.data.dir));
    let test = crate::data::mnist::load_split(&dir, Split::Test, run.data.kind)?;
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
        let history = read_metrics(path).unwrap_or_default();
        write_report(path, &history, &report)?;
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
        let data = ImageDataset {
            labels: vec![0; pixels.len()],
            images: pixels.concat(),
            rows,
            cols,
            class_names: self.loaded.meta.run.data.class_names.clone(),
        };
        let batcher =
            ImageBatcher::new(self.device.clone(), self.loaded.meta.run.data.normalization);
        let order: Vec<usize> = (0..data.len()).collect();
        let batch = batcher.batch(&data, &order);
        let logits = model.forward(batch.images);
        top_k(logits, self.images, self.k, |c| data.class_names[c].clone())
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
        return Err(Error::invalid("IMAGE", "give at least one image file"));
    }
    let loaded = load_meta(path, model)?;
    let run = &loaded.meta.run;
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

/// Writes `report/`: the training curve, the confusion matrix and the test report as JSON.
pub fn write_report(dir: &Path, history: &[EpochMetrics], test: &EvalReport) -> Result<()> {
    let report = dir.join("report");
    std::fs::create_dir_all(&report).map_err(|e| Error::io(&report, e))?;
    if !history.is_empty() {
        plot_training_curve(history, &report.join("training_curve.png"))?;
    }
    plot_confusion_matrix(test, &report.join("confusion_matrix.png"))?;
    let json = serde_json::to_string_pretty(test).expect("report serializes");
    write_atomic(&report.join("test_report.json"), json.as_bytes())
}

/// Where a visualisation goes by default: the run's `report/` when `path` is a run directory,
/// else the current directory.
fn default_out_dir(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("report")
    } else {
        PathBuf::from(".")
    }
}

struct FiltersVisitor<'a> {
    loaded: &'a Loaded,
    out: &'a Path,
}

impl ZooVisitor for FiltersVisitor<'_> {
    type Output = Result<PathBuf>;
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Result<PathBuf> {
        let model = load_weights(model, &self.loaded.path)?;
        let w = crate::vision::visualize::first_conv_weights(&model).ok_or_else(|| {
            Error::invalid("model", format!("{} has no convolution to draw", spec.name))
        })?;
        let k = w.dims()[2].max(w.dims()[3]);
        let zoom = (64 / k.max(1)).clamp(4, 16) as u32;
        crate::vision::visualize::filter_grid(w, zoom, self.out)?;
        Ok(self.out.to_path_buf())
    }
}

/// Draws the first convolution's filters of the checkpoint at `path` (a run directory or a
/// checkpoint file) as a PNG grid at `out` (default: `report/filters.png` of the run, or
/// `filters.png`). Returns the file written.
pub fn visualize_filters(path: &Path, out: Option<&Path>) -> Result<PathBuf> {
    let loaded = load_meta(path, None)?;
    let out = match out {
        Some(o) => o.to_path_buf(),
        None => default_out_dir(path).join("filters.png"),
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let run = &loaded.meta.run;
    visit_model(
        &run.model,
        run.num_classes,
        &Device::flex(),
        FiltersVisitor {
            loaded: &loaded,
            out: &out,
        },
    )?
}

struct ActivationsVisitor<'a> {
    loaded: &'a Loaded,
    image: &'a Path,
    out_dir: &'a Path,
}

impl ZooVisitor for ActivationsVisitor<'_> {
    type Output = Result<Vec<PathBuf>>;
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Result<Vec<PathBuf>> {
        let [_, rows, cols] = spec.input;
        let pixels = load_grey_image(self.image, rows, cols)?;
        let model = load_weights(model, &self.loaded.path)?;
        let data = ImageDataset {
            labels: vec![0],
            images: pixels,
            rows,
            cols,
            class_names: self.loaded.meta.run.data.class_names.clone(),
        };
        let batcher = ImageBatcher::new(Device::flex(), self.loaded.meta.run.data.normalization);
        let batch = batcher.batch(&data, &[0]);
        let mut trace = crate::vision::Trace::capturing();
        let _ = model.forward_traced(batch.images, &mut trace);
        let mut written = Vec::new();
        for (i, (name, maps)) in crate::vision::visualize::stages(trace.into_captures())
            .into_iter()
            .enumerate()
        {
            let [_, c, h, w] = maps.dims();
            let file = self.out_dir.join(format!(
                "activations-{}-{}-{c}x{h}x{w}.png",
                i + 1,
                name.replace('.', "_")
            ));
            crate::vision::visualize::feature_map_grid(maps, 64, &file)?;
            written.push(file);
        }
        Ok(written)
    }
}

/// Runs `image` through the checkpoint at `path` and draws, for each stage (each spatial size
/// the network reaches), the feature maps of its last convolution or pooling as a PNG grid in
/// `out_dir` (default: the run's `report/`, or the current directory). Returns the files.
pub fn visualize_activations(
    path: &Path,
    image: &Path,
    out_dir: Option<&Path>,
) -> Result<Vec<PathBuf>> {
    let loaded = load_meta(path, None)?;
    let out_dir = out_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_out_dir(path));
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let run = &loaded.meta.run;
    visit_model(
        &run.model,
        run.num_classes,
        &Device::flex(),
        ActivationsVisitor {
            loaded: &loaded,
            image,
            out_dir: &out_dir,
        },
    )?
}

struct ImageNetPredict<'a> {
    dict: &'a crate::weights::StateDict,
    images: &'a [PathBuf],
    k: usize,
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
                    "{} reads grey images: use `deepnet predict RUN IMAGE...`",
                    spec.name
                ),
            ));
        }
        // Decode every image first: a bad file fails the command before any work.
        let mut pixels = Vec::with_capacity(self.images.len());
        for path in self.images {
            pixels.extend(crate::data::image_file::load_imagenet_image(
                path, 256, 224,
            )?);
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
            &Device::flex(),
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
/// mean/std); for 1000-class models the names are ImageNet's. Returns the top `k`.
pub fn predict_imagenet(
    model: &str,
    weights: &Path,
    images: &[PathBuf],
    k: usize,
    num_classes: Option<usize>,
) -> Result<Vec<Prediction>> {
    if images.is_empty() {
        return Err(Error::invalid("IMAGE", "give at least one image file"));
    }
    let spec = spec(model)?;
    let dict = crate::weights::StateDict::read(weights)?;
    visit_model(
        model,
        num_classes.unwrap_or(spec.classes),
        &Device::flex(),
        ImageNetPredict {
            dict: &dict,
            images,
            k: k.max(1),
        },
    )?
}
