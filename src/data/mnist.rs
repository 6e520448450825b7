//! MNIST-format image classification data sets: Fashion-MNIST and MNIST.
//!
//! A directory holds four IDX files, `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each raw or gzipped (`.gz`). Loading reads
//! and validates all of a split up front: rank, image size, label range, and that images and
//! labels have the same count.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::idx::read_idx;

/// Where Debian's `dataset-fashion-mnist` package installs Fashion-MNIST.
pub const DEFAULT_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The ten Fashion-MNIST classes, in label order (Zalando's README).
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The ten MNIST classes: the digits.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Which half of an MNIST-format directory to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// `train-*` files (60,000 images in the full sets).
    Train,
    /// `t10k-*` files (10,000 images in the full sets).
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Which MNIST-format data set a directory holds: decides class names and normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Zalando's Fashion-MNIST (clothing, 10 classes).
    FashionMnist,
    /// LeCun's MNIST digits.
    Mnist,
}

impl DatasetKind {
    /// Class names in label order.
    pub fn class_names(self) -> Vec<String> {
        let names: &[&str] = match self {
            DatasetKind::FashionMnist => &FASHION_MNIST_CLASSES,
            DatasetKind::Mnist => &MNIST_CLASSES,
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Per-pixel mean and standard deviation of the training images, on the [0, 1] scale
    /// (the values torchvision tutorials use).
    pub fn normalization(self) -> Normalization {
        match self {
            DatasetKind::FashionMnist => Normalization {
                mean: 0.2860,
                std: 0.3530,
            },
            DatasetKind::Mnist => Normalization {
                mean: 0.1307,
                std: 0.3081,
            },
        }
    }

    /// Command-line name (`fashion-mnist`, `mnist`).
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Mnist => "mnist",
        }
    }
}

/// Maps a byte pixel `p` to `(p / 255 - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean on the [0, 1] scale.
    pub mean: f32,
    /// Standard deviation on the [0, 1] scale.
    pub std: f32,
}

impl Normalization {
    /// Normalizes one byte pixel.
    #[inline]
    pub fn apply(&self, p: u8) -> f32 {
        (p as f32 / 255.0 - self.mean) / self.std
    }
}

/// A split of an MNIST-format data set held in memory as bytes (60,000 images = 47 MB).
#[derive(Debug, Clone)]
pub struct ImageDataset {
    /// `len * rows * cols` pixels, image after image, row-major.
    pub images: Vec<u8>,
    /// One label per image, each below `class_names.len()`.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Class names in label order.
    pub class_names: Vec<String>,
}

impl ImageDataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.images[i * n..(i + 1) * n]
    }

    /// A new data set holding the images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageDataset {
        let mut images = Vec::with_capacity(indices.len() * self.rows * self.cols);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        ImageDataset {
            images,
            labels,
            rows: self.rows,
            cols: self.cols,
            class_names: self.class_names.clone(),
        }
    }
}

/// Finds `name` or `name.gz` in `dir`.
fn find_file(dir: &Path, name: &str) -> Result<PathBuf> {
    for candidate in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::bad_data(
        dir,
        format!("neither {name} nor {name}.gz is in this directory (an MNIST-format directory holds train-/t10k- images-idx3-ubyte and labels-idx1-ubyte files)"),
    ))
}

/// Number of images in one split of the MNIST-format directory `dir` (from its label file,
/// which is small).
pub fn count_split(dir: &Path, split: Split) -> Result<usize> {
    check_dir(dir)?;
    let labels_path = find_file(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
    Ok(read_idx(&labels_path)?.dims.first().copied().unwrap_or(0))
}

/// The labels of one split of the MNIST-format directory `dir` (the small file only).
pub fn load_split_labels(dir: &Path, split: Split) -> Result<Vec<u8>> {
    check_dir(dir)?;
    let labels_path = find_file(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
    Ok(read_idx(&labels_path)?.data)
}

fn check_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        let hint = if dir == Path::new(DEFAULT_FASHION_MNIST_DIR) {
            " (install it with `apt-get install dataset-fashion-mnist`, or give another data directory)"
        } else {
            ""
        };
        return Err(Error::bad_data(
            dir,
            format!("data directory does not exist{hint}"),
        ));
    }
    Ok(())
}

/// Loads one split of the MNIST-format directory `dir`, labelled as `kind`.
pub fn load_split(dir: &Path, split: Split, kind: DatasetKind) -> Result<ImageDataset> {
    check_dir(dir)?;
    let images_path = find_file(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
    let labels_path = find_file(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
    let images = read_idx(&images_path)?;
    let labels = read_idx(&labels_path)?;
    if images.dims.len() != 3 {
        return Err(Error::bad_data(
            &images_path,
            format!(
                "an image file must have 3 dimensions [count, rows, cols], this one has {:?}",
                images.dims
            ),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(Error::bad_data(
            &labels_path,
            format!(
                "a label file must have 1 dimension [count], this one has {:?}",
                labels.dims
            ),
        ));
    }
    if images.dims[0] != labels.dims[0] {
        return Err(Error::bad_data(
            &labels_path,
            format!(
                "{} labels but {} holds {} images",
                labels.dims[0],
                images_path.display(),
                images.dims[0]
            ),
        ));
    }
    if images.dims[1] == 0 || images.dims[2] == 0 {
        return Err(Error::bad_data(&images_path, "images have zero size"));
    }
    let class_names = kind.class_names();
    if let Some(pos) = labels
        .data
        .iter()
        .position(|&l| l as usize >= class_names.len())
    {
        return Err(Error::bad_data(
            &labels_path,
            format!(
                "label {} at index {pos} is out of range (there are {} classes)",
                labels.data[pos],
                class_names.len()
            ),
        ));
    }
    Ok(ImageDataset {
        images: images.data,
        labels: labels.data,
        rows: images.dims[1],
        cols: images.dims[2],
        class_names,
    })
}

/// Fashion-MNIST (Zalando): 28x28 grey images of clothing in 10 classes.
pub struct FashionMnist;

impl FashionMnist {
    /// Loads `split` from `dir`, e.g. [`DEFAULT_FASHION_MNIST_DIR`].
    pub fn load(dir: impl AsRef<Path>, split: Split) -> Result<ImageDataset> {
        load_split(dir.as_ref(), split, DatasetKind::FashionMnist)
    }
}

/// MNIST: 28x28 grey images of handwritten digits.
pub struct Mnist;

impl Mnist {
    /// Loads `split` from the MNIST-format directory `dir`.
    pub fn load(dir: impl AsRef<Path>, split: Split) -> Result<ImageDataset> {
        load_split(dir.as_ref(), split, DatasetKind::Mnist)
    }
}

/// Loads the train and test splits of `dir` as `kind`.
pub fn load_dataset_pair(dir: &Path, kind: DatasetKind) -> Result<(ImageDataset, ImageDataset)> {
    let train = load_split(dir, Split::Train, kind)?;
    let test = load_split(dir, Split::Test, kind)?;
    for (set, name) in [(&train, "training"), (&test, "test")] {
        if set.is_empty() {
            return Err(Error::bad_data(
                dir,
                format!("the {name} split holds no images"),
            ));
        }
    }
    // A model is built for one image size: test images of another would fail only after
    // training, deep inside the model.
    if (test.rows, test.cols) != (train.rows, train.cols) {
        return Err(Error::bad_data(
            dir,
            format!(
                "the test images are {}x{} and the training images {}x{}: both splits must have one size",
                test.rows, test.cols, train.rows, train.cols
            ),
        ));
    }
    Ok((train, test))
}
