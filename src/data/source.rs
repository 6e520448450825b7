//! Labelled images as a classification task reads them: by index, as normalised floats,
//! augmented or not. MNIST-format sets held in memory implement it here; image folders read
//! from disk implement it too.

use rand::rngs::StdRng;

use super::augment::Augment;
use super::batch::SampleSeeds;
use super::mnist::{ImageDataset, Normalization};
use crate::error::Result;

/// Labelled images, read one at a time into a caller's buffer. `Sync`: batches are built in
/// other threads than the training step.
pub trait ImageSource: Sync {
    /// Number of images.
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[channels, height, width]` of every image [`load`](Self::load) writes.
    fn shape(&self) -> [usize; 3];

    /// Class names in label order.
    fn class_names(&self) -> &[String];

    /// The label of image `i`.
    fn label(&self, i: usize) -> usize;

    /// Writes image `i`, normalised, channel-major, into `out` (`C·H·W` values). With `rng`
    /// the training transform (augmentation) draws from it; without, the evaluation
    /// transform is applied.
    fn load(&self, i: usize, rng: Option<&mut StdRng>, out: &mut [f32]) -> Result<()>;

    /// Files that could not be decoded and were replaced by another image (sources that can
    /// skip bad files; others never do).
    fn skipped(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }

    /// Writes the images `indices` one after the other into `out`; with `seeds`, image `i` is
    /// augmented with draws from `seeds.rng(i)`. Sources whose images are costly to decode
    /// override this to decode in parallel.
    fn load_batch(
        &self,
        indices: &[usize],
        seeds: Option<SampleSeeds>,
        out: &mut [f32],
    ) -> Result<()> {
        let n = self.shape().iter().product::<usize>().max(1);
        for (&i, dst) in indices.iter().zip(out.chunks_mut(n)) {
            match seeds {
                Some(s) => self.load(i, Some(&mut s.rng(i)), dst)?,
                None => self.load(i, None, dst)?,
            }
        }
        Ok(())
    }
}

/// An MNIST-format set in memory as an [`ImageSource`]: bytes normalised with `norm`, training
/// images augmented with `augment`.
#[derive(Debug, Clone)]
pub struct InMemoryImages {
    /// The images.
    pub data: ImageDataset,
    /// Normalisation of every pixel.
    pub norm: Normalization,
    /// Augmentation of training images.
    pub augment: Augment,
}

impl ImageSource for InMemoryImages {
    fn len(&self) -> usize {
        self.data.len()
    }

    fn shape(&self) -> [usize; 3] {
        [1, self.data.rows, self.data.cols]
    }

    fn class_names(&self) -> &[String] {
        &self.data.class_names
    }

    fn label(&self, i: usize) -> usize {
        self.data.labels[i] as usize
    }

    fn load(&self, i: usize, rng: Option<&mut StdRng>, out: &mut [f32]) -> Result<()> {
        let src = self.data.image(i);
        match rng {
            Some(rng) if self.augment != Augment::None => {
                let mut scratch = vec![0u8; src.len()];
                self.augment
                    .apply(src, self.data.rows, self.data.cols, rng, &mut scratch);
                for (o, &p) in out.iter_mut().zip(&scratch) {
                    *o = self.norm.apply(p);
                }
            }
            _ => {
                for (o, &p) in out.iter_mut().zip(src) {
                    *o = self.norm.apply(p);
                }
            }
        }
        Ok(())
    }
}
