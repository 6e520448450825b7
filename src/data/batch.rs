//! Seeded shuffling, train/validation split and batching of [`ImageDataset`]s into tensors.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::augment::Augment;
use super::mnist::{ImageDataset, Normalization};

/// A batch ready for a model: images `[batch, 1, rows, cols]` and labels `[batch]`.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// Normalized pixels, `[batch, 1, rows, cols]`.
    pub images: Tensor<4>,
    /// Class indices, `[batch]`.
    pub labels: Tensor<1, Int>,
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

/// Turns dataset items into tensors on one device.
#[derive(Debug, Clone)]
pub struct ImageBatcher {
    device: Device,
    norm: Normalization,
}

impl ImageBatcher {
    /// A batcher that normalizes with `norm` and puts tensors on `device`.
    pub fn new(device: Device, norm: Normalization) -> Self {
        Self { device, norm }
    }

    /// The batch of images `indices` of `data`.
    pub fn batch(&self, data: &ImageDataset, indices: &[usize]) -> ImageBatch {
        self.batch_augmented(data, indices, Augment::None, &mut rng(0))
    }

    /// The batch of images `indices` of `data`, each augmented by `augment` with draws from
    /// `rng` (in the order of `indices`).
    pub fn batch_augmented(
        &self,
        data: &ImageDataset,
        indices: &[usize],
        augment: Augment,
        rng: &mut StdRng,
    ) -> ImageBatch {
        let (rows, cols) = (data.rows, data.cols);
        let mut pixels = Vec::with_capacity(indices.len() * rows * cols);
        let mut labels = Vec::with_capacity(indices.len());
        let mut scratch = vec![0u8; rows * cols];
        for &i in indices {
            let image = if augment == Augment::None {
                data.image(i)
            } else {
                augment.apply(data.image(i), rows, cols, rng, &mut scratch);
                &scratch
            };
            pixels.extend(image.iter().map(|&p| self.norm.apply(p)));
            labels.push(data.labels[i] as i64);
        }
        let b = indices.len();
        // [batch, 1, rows, cols]
        let images = Tensor::from_data(TensorData::new(pixels, [b, 1, rows, cols]), &self.device);
        let labels = Tensor::from_data(TensorData::new(labels, [b]), &self.device);
        ImageBatch { images, labels }
    }

    /// The batches of `data` in the order `order`, `batch_size` at a time (the last may be
    /// smaller). Tensors are built lazily, one batch per `next()`.
    pub fn iter<'a>(
        &'a self,
        data: &'a ImageDataset,
        order: &'a [usize],
        batch_size: usize,
    ) -> impl Iterator<Item = ImageBatch> + 'a {
        self.iter_augmented(data, order, batch_size, Augment::None, 0)
    }

    /// [`iter`](Self::iter) with every image augmented by `augment`, from an RNG seeded with
    /// `seed` (one seed per epoch gives every epoch its own, reproducible, variations).
    pub fn iter_augmented<'a>(
        &'a self,
        data: &'a ImageDataset,
        order: &'a [usize],
        batch_size: usize,
        augment: Augment,
        seed: u64,
    ) -> impl Iterator<Item = ImageBatch> + 'a {
        let mut rng = rng(seed);
        order
            .chunks(batch_size.max(1))
            .map(move |chunk| self.batch_augmented(data, chunk, augment, &mut rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
