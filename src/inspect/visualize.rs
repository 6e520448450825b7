//! What the layers learned (Zeiler & Fergus 2014, the lecture's slide): the first layer's
//! filters as small images, and the feature maps a picture produces at each stage, as PNG grids.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::models::vision::{visit_model_with, ImageClassifier, ModelSpec, Trace, ZooVisitor};
use crate::plot::grid;
use crate::tasks::classification::{load_meta, RunConfig};
use crate::train::checkpoint::load_weights;

/// The first 4-D parameter of `model` in field order: the first convolution's weights
/// `[out, in, kh, kw]` for every zoo model. `None` for a model without convolutions.
pub fn first_conv_weights<M: Module>(model: &M) -> Option<Tensor<4>> {
    struct First(Option<Tensor<4>>);
    impl ModuleVisitor for First {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.0.is_none() && D == 4 {
                let t = param.val();
                let d = t.dims();
                self.0 = Some(t.reshape([d[0], d[1], d[2], d[3]]));
            }
        }
    }
    let mut v = First(None);
    model.visit(&mut v);
    v.0
}

fn values(t: Tensor<4>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| Error::invalid("tensor", format!("{e:?}")))
}

/// Draws the filters `[out, in, kh, kw]` as a grid (see [`grid::filter_grid`]).
pub fn filter_grid(weights: Tensor<4>, zoom: u32, path: &Path) -> Result<()> {
    let dims = weights.dims();
    grid::filter_grid(&values(weights)?, dims, zoom, path)
}

/// Draws one image's feature maps `[1, C, H, W]` as a grid (see [`grid::feature_map_grid`]).
pub fn feature_map_grid(maps: Tensor<4>, max_maps: usize, path: &Path) -> Result<()> {
    let dims = maps.dims();
    grid::feature_map_grid(&values(maps)?, dims, max_maps, path)
}

/// One feature map per stage: of the captured maps (in running order), the last one at each
/// spatial size, in order of first appearance.
pub fn stages(captures: Vec<(String, Tensor<4>)>) -> Vec<(String, Tensor<4>)> {
    let mut out: Vec<(String, Tensor<4>)> = Vec::new();
    for (name, t) in captures {
        let size = [t.dims()[2], t.dims()[3]];
        match out
            .iter_mut()
            .find(|(_, s)| [s.dims()[2], s.dims()[3]] == size)
        {
            Some(slot) => *slot = (name, t),
            None => out.push((name, t)),
        }
    }
    out
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

/// The checkpoint file at `path` (a run directory or the file) and its run's configuration.
fn load_run(path: &Path) -> Result<(PathBuf, RunConfig)> {
    let loaded = load_meta(path, None)?;
    Ok((loaded.path, loaded.run))
}

struct FiltersVisitor<'a> {
    checkpoint: &'a Path,
    out: &'a Path,
}

impl ZooVisitor for FiltersVisitor<'_> {
    type Output = Result<PathBuf>;
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Result<PathBuf> {
        let model = load_weights(model, self.checkpoint)?;
        let w = first_conv_weights(&model).ok_or_else(|| {
            Error::invalid("model", format!("{} has no convolution to draw", spec.name))
        })?;
        let k = w.dims()[2].max(w.dims()[3]);
        let zoom = (64 / k.max(1)).clamp(4, 16) as u32;
        filter_grid(w, zoom, self.out)?;
        Ok(self.out.to_path_buf())
    }
}

/// Draws the first convolution's filters of the checkpoint at `path` (a run directory or a
/// checkpoint file) as a PNG grid at `out` (default: `report/filters.png` of the run, or
/// `filters.png`), loading the model on `device`. Returns the file written.
pub fn visualize_filters(path: &Path, out: Option<&Path>, device: &Device) -> Result<PathBuf> {
    let (checkpoint, run) = load_run(path)?;
    let out = match out {
        Some(o) => o.to_path_buf(),
        None => default_out_dir(path).join("filters.png"),
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    visit_model_with(
        &run.model,
        run.num_classes,
        run.model_options,
        &device.clone().without_autodiff(),
        FiltersVisitor {
            checkpoint: &checkpoint,
            out: &out,
        },
    )?
}

struct ActivationsVisitor<'a> {
    checkpoint: &'a Path,
    run: &'a RunConfig,
    image: &'a Path,
    out_dir: &'a Path,
    device: &'a Device,
}

impl ZooVisitor for ActivationsVisitor<'_> {
    type Output = Result<Vec<PathBuf>>;
    fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Result<Vec<PathBuf>> {
        let [c, h, w] = self.run.input_shape(spec);
        let pixels = self.run.input_of_image(self.image, spec)?;
        let model = load_weights(model, self.checkpoint)?;
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [1, c, h, w]), self.device);
        let mut trace = Trace::capturing();
        let _ = model.forward_traced(x, &mut trace);
        let mut written = Vec::new();
        for (i, (name, maps)) in stages(trace.into_captures()).into_iter().enumerate() {
            let [_, c, h, w] = maps.dims();
            let file = self.out_dir.join(format!(
                "activations-{}-{}-{c}x{h}x{w}.png",
                i + 1,
                name.replace('.', "_")
            ));
            feature_map_grid(maps, 64, &file)?;
            written.push(file);
        }
        Ok(written)
    }
}

/// Runs `image` through the checkpoint at `path` on `device` and draws, for each stage (each
/// spatial size the network reaches), the feature maps of its last convolution or pooling as a
/// PNG grid in `out_dir` (default: the run's `report/`, or the current directory). Returns the
/// files.
pub fn visualize_activations(
    path: &Path,
    image: &Path,
    out_dir: Option<&Path>,
    device: &Device,
) -> Result<Vec<PathBuf>> {
    let (checkpoint, run) = load_run(path)?;
    let out_dir = out_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_out_dir(path));
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let device = device.clone().without_autodiff();
    visit_model_with(
        &run.model,
        run.num_classes,
        run.model_options,
        &device,
        ActivationsVisitor {
            checkpoint: &checkpoint,
            run: &run,
            image,
            out_dir: &out_dir,
            device: &device,
        },
    )?
}
