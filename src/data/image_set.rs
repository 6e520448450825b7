//! Where a classification run's images come from, as a run records it, and loading it into
//! training, validation and test [`ImageSource`]s.
//!
//! Two formats: an MNIST-format directory (held in memory as bytes; optionally only some of its
//! classes, and only `k` training images per class, for few-shot experiments), and an image
//! folder (decoded on demand; validation carved from it or read from a second folder; an
//! optional test folder).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::augment::Augment;
use super::batch::{shuffled_indices, train_val_split};
use super::folder::{FolderImages, ImageFolder, ImageTransform};
use super::mnist::{load_dataset_pair, DatasetKind, ImageDataset, Normalization, Split};
use super::source::{ImageSource, InMemoryImages};
use crate::error::{Error, Result};

/// An MNIST-format directory as a run uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MnistData {
    /// The directory.
    pub dir: String,
    /// Which data set it is.
    pub kind: DatasetKind,
    /// Normalization applied to every pixel.
    pub normalization: Normalization,
    /// Class names in label order (of the classes kept).
    pub class_names: Vec<String>,
    /// Use only the first N training images (0 = all): quick runs and tests.
    #[serde(default)]
    pub limit_train: usize,
    /// Images carved from the training set (after `limit_train` and `classes`) for
    /// validation, a seeded random choice.
    pub val_size: usize,
    /// Augmentation of the training images.
    #[serde(default)]
    pub augment: Augment,
    /// Keep only these labels of the files, relabelled 0, 1, ... in this order (empty: all).
    #[serde(default)]
    pub classes: Vec<usize>,
    /// Train on only this many images of each class (after the validation split), drawn with
    /// `sample_seed`: few-shot experiments.
    #[serde(default)]
    pub per_class: Option<usize>,
    /// Seed of the `per_class` draw.
    #[serde(default)]
    pub sample_seed: u64,
}

/// An image folder as a run uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderData {
    /// The training folder (one sub-folder per class).
    pub dir: String,
    /// A separate validation folder with the same classes; `None`: `val_size` images carved
    /// from the training folder.
    pub val_dir: Option<String>,
    /// A test folder with the same classes, evaluated once at the end; `None`: the final
    /// report is on the validation images.
    pub test_dir: Option<String>,
    /// Class names (sub-folder names) in label order.
    pub class_names: Vec<String>,
    /// Images carved from the training folder for validation (without `val_dir`).
    pub val_size: usize,
    /// How files become inputs (and how training images are augmented).
    pub transform: ImageTransform,
    /// Replace unreadable files instead of failing (each counted and reported).
    #[serde(default)]
    pub skip_bad: bool,
}

/// The images of a classification run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "kebab-case")]
pub enum ImageData {
    /// An MNIST-format directory.
    Mnist(MnistData),
    /// An image folder.
    Folder(FolderData),
}

impl ImageData {
    /// Class names in label order.
    pub fn class_names(&self) -> &[String] {
        match self {
            ImageData::Mnist(m) => &m.class_names,
            ImageData::Folder(f) => &f.class_names,
        }
    }

    /// The directory the training images come from.
    pub fn dir(&self) -> &str {
        match self {
            ImageData::Mnist(m) => &m.dir,
            ImageData::Folder(f) => &f.dir,
        }
    }
}

/// The loaded images of a run.
pub struct LoadedImages {
    /// Training images (validation removed).
    pub train: Box<dyn ImageSource>,
    /// Validation images.
    pub val: Box<dyn ImageSource>,
    /// Test images, or `None` when the run has no test split.
    pub test: Option<Box<dyn ImageSource>>,
    /// Files refused by their header and left out (with `skip_bad`), with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// `data` with only the labels in `classes` (relabelled by their position), and the names.
fn keep_classes(data: ImageDataset, classes: &[usize], names: &[String]) -> ImageDataset {
    if classes.is_empty() {
        return data;
    }
    let idx: Vec<usize> = (0..data.len())
        .filter(|&i| classes.contains(&(data.labels[i] as usize)))
        .collect();
    let mut sub = data.subset(&idx);
    for l in sub.labels.iter_mut() {
        *l = classes
            .iter()
            .position(|&c| c == *l as usize)
            .expect("kept labels are in the list") as u8;
    }
    sub.class_names = names.to_vec();
    sub
}

/// The class names of `kind` restricted to `classes` (all when empty), checking the labels.
pub fn mnist_class_names(kind: DatasetKind, classes: &[usize]) -> Result<Vec<String>> {
    let all = kind.class_names();
    if classes.is_empty() {
        return Ok(all);
    }
    let mut seen = Vec::new();
    for &c in classes {
        if c >= all.len() || seen.contains(&c) {
            return Err(Error::invalid(
                "classes",
                format!(
                    "label {c} is {} (labels are 0 to {}, each once)",
                    if c >= all.len() {
                        "out of range"
                    } else {
                        "repeated"
                    },
                    all.len() - 1
                ),
            ));
        }
        seen.push(c);
    }
    Ok(classes.iter().map(|&c| all[c].clone()).collect())
}

/// `k` images of each class of `data`, drawn with `seed`, in file order.
fn per_class_sample(data: &ImageDataset, k: usize, seed: u64) -> Result<ImageDataset> {
    let classes = data.class_names.len();
    let mut taken = vec![0usize; classes];
    let mut idx: Vec<usize> = shuffled_indices(data.len(), seed)
        .into_iter()
        .filter(|&i| {
            let c = data.labels[i] as usize;
            taken[c] += 1;
            taken[c] <= k
        })
        .collect();
    if let Some(c) = taken.iter().position(|&n| n < k) {
        return Err(Error::invalid(
            "per_class",
            format!(
                "class {} has {} training images, fewer than {k}",
                data.class_names[c], taken[c]
            ),
        ));
    }
    idx.sort_unstable();
    Ok(data.subset(&idx))
}

/// Loads `data` for a run whose seed is `seed` (it fixes the validation split).
pub fn load_images(data: &ImageData, seed: u64) -> Result<LoadedImages> {
    match data {
        ImageData::Mnist(m) => load_mnist(m, seed),
        ImageData::Folder(f) => load_folder(f, seed),
    }
}

/// The test split alone of an MNIST-format run's data (what `eval` needs: the directory may
/// hold no training images at all).
pub fn load_mnist_test(m: &MnistData) -> Result<Box<dyn ImageSource>> {
    let dir = Path::new(&m.dir);
    let test = super::mnist::load_split(dir, Split::Test, m.kind)?;
    let test = keep_classes(test, &m.classes, &m.class_names);
    Ok(Box::new(InMemoryImages {
        data: test,
        norm: m.normalization,
        augment: Augment::None,
    }))
}

fn load_mnist(m: &MnistData, seed: u64) -> Result<LoadedImages> {
    let (full_train, test) = load_dataset_pair(Path::new(&m.dir), m.kind)?;
    let full_train = keep_classes(full_train, &m.classes, &m.class_names);
    let test = keep_classes(test, &m.classes, &m.class_names);
    let full_train = if m.limit_train > 0 && m.limit_train < full_train.len() {
        let idx: Vec<usize> = (0..m.limit_train).collect();
        full_train.subset(&idx)
    } else {
        full_train
    };
    if m.val_size >= full_train.len() {
        return Err(Error::invalid(
            "val_size",
            format!(
                "{} validation images leave none of the {} training images to train on",
                m.val_size,
                full_train.len()
            ),
        ));
    }
    let (train, val) = train_val_split(&full_train, m.val_size, seed);
    let train = match m.per_class {
        Some(k) => per_class_sample(&train, k, m.sample_seed)?,
        None => train,
    };
    let source = |data: ImageDataset, augment| -> Box<dyn ImageSource> {
        Box::new(InMemoryImages {
            data,
            norm: m.normalization,
            augment,
        })
    };
    Ok(LoadedImages {
        train: source(train, m.augment),
        val: source(val, Augment::None),
        test: Some(source(test, Augment::None)),
        skipped: Vec::new(),
    })
}

/// Drops the files whose header is bad (with `skip_bad`, recording them) or fails on the first.
fn checked(
    folder: ImageFolder,
    skip_bad: bool,
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<ImageFolder> {
    let bad = folder.check_headers();
    if bad.is_empty() {
        return Ok(folder);
    }
    if !skip_bad {
        let (_, first) = bad.into_iter().next().expect("not empty");
        return Err(first);
    }
    let bad_idx: Vec<usize> = bad.iter().map(|(i, _)| *i).collect();
    for (i, e) in bad {
        skipped.push((folder.items[i].0.clone(), e.to_string()));
    }
    let keep: Vec<usize> = (0..folder.items.len())
        .filter(|i| !bad_idx.contains(i))
        .collect();
    let folder = folder.subset(&keep);
    if folder.items.is_empty() {
        return Err(Error::bad_data(
            &folder.root,
            "no readable image in this folder",
        ));
    }
    Ok(folder)
}

fn load_folder(f: &FolderData, seed: u64) -> Result<LoadedImages> {
    let mut skipped = Vec::new();
    let all = ImageFolder::scan_classes(Path::new(&f.dir), &f.class_names)?;
    let all = checked(all, f.skip_bad, &mut skipped)?;
    let (train, val) = match &f.val_dir {
        Some(v) => {
            let val = ImageFolder::scan_classes(Path::new(v), &f.class_names)?;
            (all, checked(val, f.skip_bad, &mut skipped)?)
        }
        None => {
            if f.val_size >= all.items.len() {
                return Err(Error::invalid(
                    "val_size",
                    format!(
                        "{} validation images leave none of the {} training images to train on",
                        f.val_size,
                        all.items.len()
                    ),
                ));
            }
            let order = shuffled_indices(all.items.len(), seed);
            let (v, t) = order.split_at(f.val_size);
            let (mut v, mut t) = (v.to_vec(), t.to_vec());
            v.sort_unstable();
            t.sort_unstable();
            (all.subset(&t), all.subset(&v))
        }
    };
    let test = match &f.test_dir {
        Some(t) => {
            let test = ImageFolder::scan_classes(Path::new(t), &f.class_names)?;
            Some(checked(test, f.skip_bad, &mut skipped)?)
        }
        None => None,
    };
    let eval = ImageTransform {
        augment: super::folder::FolderAugment::None,
        ..f.transform.clone()
    };
    let source = |folder, transform| -> Box<dyn ImageSource> {
        Box::new(FolderImages::new(folder, transform, f.skip_bad))
    };
    Ok(LoadedImages {
        train: source(train, f.transform.clone()),
        val: source(val, eval.clone()),
        test: test.map(|t| source(t, eval)),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_lists_are_checked() {
        let names = mnist_class_names(DatasetKind::FashionMnist, &[5, 7]).unwrap();
        assert_eq!(names, vec!["Sandal", "Sneaker"]);
        let e = mnist_class_names(DatasetKind::Mnist, &[3, 3]).unwrap_err();
        assert!(e.to_string().contains("repeated"), "{e}");
        let e = mnist_class_names(DatasetKind::Mnist, &[10]).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }

    #[test]
    fn subsets_and_per_class_samples() {
        let data = ImageDataset {
            images: (0..40).map(|i| i as u8).collect(),
            labels: vec![0, 1, 2, 3, 0, 1, 2, 3, 0, 1],
            rows: 2,
            cols: 2,
            class_names: (0..4).map(|c| c.to_string()).collect(),
        };
        let kept = keep_classes(data, &[3, 1], &["three".into(), "one".into()]);
        assert_eq!(kept.labels, vec![1, 0, 1, 0, 1]);
        let k = per_class_sample(&kept, 2, 9).unwrap();
        let count = |c: u8| k.labels.iter().filter(|&&l| l == c).count();
        assert_eq!((count(0), count(1)), (2, 2));
        assert_eq!(per_class_sample(&kept, 2, 9).unwrap().images, k.images);
        let e = per_class_sample(&kept, 3, 9).unwrap_err().to_string();
        assert!(e.contains("three") && e.contains("fewer than 3"), "{e}");
    }
}
