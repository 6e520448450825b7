//! Seeded shuffling, train/validation split, per-item seeds, and batches of images as tensors.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::mnist::ImageDataset;
use super::source::ImageSource;
use crate::error::Result;

/// A batch ready for a model: images `[batch, channels, rows, cols]` and labels `[batch]`.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// Normalized pixels, `[batch, channels, rows, cols]`.
    pub images: Tensor<4>,
    /// Class indices, `[batch]`.
    pub labels: Tensor<1, Int>,
}

/// Seeds of the random draws of one epoch's items: every item gets its own seed, a function
/// of the run seed, the epoch and the item's index only. Augmentation drawn from it does not
/// depend on which thread builds the batch, on the batch size, or on whether the run was
/// resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleSeeds {
    /// The run's seed.
    pub run: u64,
    /// The epoch, from 1.
    pub epoch: usize,
}

impl SampleSeeds {
    /// The seed of item `index` (splitmix64 of the three, so neighbouring items get unrelated
    /// streams).
    pub fn of(&self, index: usize) -> u64 {
        let mut z = self
            .run
            .wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(self.epoch as u64 + 1))
            .wrapping_add((index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The generator of item `index`.
    pub fn rng(&self, index: usize) -> StdRng {
        rng(self.of(index))
    }
}

/// The seeded RNG deepnet uses for anything data-related.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Indices `0..n` in an order fixed by `seed`.
pub fn shuffled_indices(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rng(seed));
    idx
}

/// Carves a validation set of `val_size` images from `train` (a seeded random choice); the rest
/// is the new training set. Returns `(train, validation)`.
pub fn train_val_split(
    train: &ImageDataset,
    val_size: usize,
    seed: u64,
) -> (ImageDataset, ImageDataset) {
    let idx = shuffled_indices(train.len(), seed);
    let val_size = val_size.min(train.len());
    let (val_idx, train_idx) = idx.split_at(val_size);
    let mut train_idx = train_idx.to_vec();
    let mut val_idx = val_idx.to_vec();
    // Keep the file order inside each part: the split is random, the content is not reordered.
    train_idx.sort_unstable();
    val_idx.sort_unstable();
    (train.subset(&train_idx), train.subset(&val_idx))
}

impl ImageBatch {
    /// The images `indices` of `source` as one batch on `device`; with `seeds`, each image `i`
    /// augmented with draws seeded by `seeds.of(i)`.
    pub fn from_source(
        source: &dyn ImageSource,
        indices: &[usize],
        seeds: Option<SampleSeeds>,
        device: &Device,
    ) -> Result<ImageBatch> {
        let [c, h, w] = source.shape();
        let b = indices.len();
        let mut pixels = vec![0f32; b * c * h * w];
        source.load_batch(indices, seeds, &mut pixels)?;
        let labels: Vec<i64> = indices.iter().map(|&i| source.label(i) as i64).collect();
        // [batch, channels, height, width]
        let images = Tensor::from_data(TensorData::new(pixels, [b, c, h, w]), device);
        let labels = Tensor::from_data(TensorData::new(labels, [b]), device);
        Ok(ImageBatch { images, labels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_seeds_differ_by_item_epoch_and_run() {
        let s = SampleSeeds { run: 7, epoch: 1 };
        let mut seen: Vec<u64> = (0..1000).map(|i| s.of(i)).collect();
        seen.push(SampleSeeds { run: 7, epoch: 2 }.of(0));
        seen.push(SampleSeeds { run: 8, epoch: 1 }.of(0));
        let n = seen.len();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), n);
        assert_eq!(s.of(5), SampleSeeds { run: 7, epoch: 1 }.of(5));
    }

    #[test]
    fn shuffle_is_seeded_and_a_permutation() {
        let a = shuffled_indices(100, 7);
        let b = shuffled_indices(100, 7);
        let c = shuffled_indices(100, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }
}
