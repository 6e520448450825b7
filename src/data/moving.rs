//! Moving Fashion-MNIST: Moving MNIST (Srivastava et al. 2015) made of Fashion-MNIST items, the
//! data of video prediction. Two 28x28 items from the matching Fashion-MNIST split (training
//! sequences from training images, test sequences from test images) move in straight lines in
//! a 64x64 frame and bounce off its edges; where they overlap the brighter pixel wins (the
//! original's `max`). A sequence is [`FRAMES_IN`] frames to read and [`FRAMES_OUT`] to predict.
//!
//! Sequence `i` of a generator is a function of `(seed, i)` alone: any sequence can be made
//! alone, in any order, and a test set is fixed by its seed and count.
//!
//! Motion, per item: a start position uniform over the frame (its box inside), a direction
//! uniform in [0, 2π) and a speed uniform in [2, 4) pixels a frame; the position is kept in
//! floating point and rounded when drawn; an edge reached reverses that axis's velocity and
//! reflects the overshoot.

use std::path::Path;

use rand::RngExt;

use super::batch::{rng, SampleSeeds};
use super::mnist::ImageDataset;
use crate::error::{Error, Result};

/// Side of a frame, in pixels.
pub const FRAME_SIDE: usize = 64;
/// Side of an item.
pub const ITEM_SIDE: usize = 28;
/// Frames the model reads.
pub const FRAMES_IN: usize = 10;
/// Frames the model predicts.
pub const FRAMES_OUT: usize = 10;
/// Items per sequence.
pub const ITEMS: usize = 2;

/// One sequence: `FRAMES_IN + FRAMES_OUT` grey frames of 64x64, row-major, frame after frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    /// The pixels, `20 * 64 * 64`.
    pub frames: Vec<u8>,
    /// The items' indices in the source split.
    pub items: [usize; ITEMS],
    /// Each item's top-left corner in each frame, `[frame][item]`.
    pub positions: Vec<[(usize, usize); ITEMS]>,
}

impl Sequence {
    /// Frames in the sequence.
    pub fn len(&self) -> usize {
        self.frames.len() / (FRAME_SIDE * FRAME_SIDE)
    }

    /// Whether it has no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The pixels of frame `t`.
    pub fn frame(&self, t: usize) -> &[u8] {
        let n = FRAME_SIDE * FRAME_SIDE;
        &self.frames[t * n..(t + 1) * n]
    }

    /// Writes the frames side by side as one grey PNG strip (2 pixels between frames).
    pub fn write_strip(&self, path: &Path) -> Result<()> {
        let gap = 2;
        let t = self.len();
        let w = t * FRAME_SIDE + (t.saturating_sub(1)) * gap;
        let mut img = image::GrayImage::from_pixel(w as u32, FRAME_SIDE as u32, image::Luma([128]));
        for k in 0..t {
            let f = self.frame(k);
            for y in 0..FRAME_SIDE {
                for x in 0..FRAME_SIDE {
                    img.put_pixel(
                        (k * (FRAME_SIDE + gap) + x) as u32,
                        y as u32,
                        image::Luma([f[y * FRAME_SIDE + x]]),
                    );
                }
            }
        }
        img.save(path)
            .map_err(|e| Error::bad_data(path, format!("cannot write PNG: {e}")))
    }
}

/// One coordinate moving in `[0, limit]` with velocity `v`, bouncing off both ends.
fn bounce(p: f64, v: f64, limit: f64) -> (f64, f64) {
    let mut p = p + v;
    let mut v = v;
    if p < 0.0 {
        p = -p;
        v = -v;
    }
    if p > limit {
        p = 2.0 * limit - p;
        v = -v;
    }
    (p.clamp(0.0, limit), v)
}

/// Sequence `index` of the generator seeded `seed`, with items from `source` (28x28 images).
pub fn generate(source: &ImageDataset, seed: u64, index: usize) -> Result<Sequence> {
    if source.is_empty() || source.rows != ITEM_SIDE || source.cols != ITEM_SIDE {
        return Err(Error::invalid(
            "sequence items",
            format!(
                "moving items are 28x28; the source holds {} images of {}x{}",
                source.len(),
                source.rows,
                source.cols
            ),
        ));
    }
    let mut r = rng(SampleSeeds {
        run: seed,
        epoch: 0,
    }
    .of(index));
    let limit = (FRAME_SIDE - ITEM_SIDE) as f64;
    let mut items = [0usize; ITEMS];
    let mut state = [(0f64, 0f64, 0f64, 0f64); ITEMS];
    for k in 0..ITEMS {
        items[k] = r.random_range(0..source.len());
        let angle = r.random::<f64>() * std::f64::consts::TAU;
        let speed = 2.0 + 2.0 * r.random::<f64>();
        state[k] = (
            r.random::<f64>() * limit,
            r.random::<f64>() * limit,
            speed * angle.cos(),
            speed * angle.sin(),
        );
    }
    let frames_n = FRAMES_IN + FRAMES_OUT;
    let size = FRAME_SIDE * FRAME_SIDE;
    let mut frames = vec![0u8; frames_n * size];
    let mut positions = Vec::with_capacity(frames_n);
    for t in 0..frames_n {
        let mut at = [(0usize, 0usize); ITEMS];
        for k in 0..ITEMS {
            let (x, y, _, _) = state[k];
            let (px, py) = (x.round() as usize, y.round() as usize);
            at[k] = (px, py);
            let pixels = source.image(items[k]);
            let frame = &mut frames[t * size..(t + 1) * size];
            for dy in 0..ITEM_SIDE {
                for dx in 0..ITEM_SIDE {
                    let o = (py + dy) * FRAME_SIDE + px + dx;
                    frame[o] = frame[o].max(pixels[dy * ITEM_SIDE + dx]);
                }
            }
            let (x, vx) = bounce(state[k].0, state[k].2, limit);
            let (y, vy) = bounce(state[k].1, state[k].3, limit);
            state[k] = (x, y, vx, vy);
        }
        positions.push(at);
    }
    Ok(Sequence {
        frames,
        items,
        positions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> ImageDataset {
        // Item k: a filled square of intensity 50 + 20k.
        let mut images = Vec::new();
        for k in 0..5u8 {
            for y in 0..ITEM_SIDE {
                for x in 0..ITEM_SIDE {
                    let inner = (6..22).contains(&x) && (6..22).contains(&y);
                    images.push(if inner { 50 + 20 * k } else { 0 });
                }
            }
        }
        ImageDataset {
            images,
            labels: (0..5).collect(),
            rows: ITEM_SIDE,
            cols: ITEM_SIDE,
            class_names: (0..5).map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn sequences_are_seeded_move_and_stay_inside() {
        let src = source();
        for i in 0..100 {
            let s = generate(&src, 5, i).unwrap();
            assert_eq!(s, generate(&src, 5, i).unwrap());
            assert_eq!(s.len(), FRAMES_IN + FRAMES_OUT);
            for w in s.positions.windows(2) {
                for (&a, &b) in w[0].iter().zip(&w[1]) {
                    // Speed 2-4 pixels a frame, rounded: at most 5 per axis.
                    assert!(a.0.abs_diff(b.0) <= 5 && a.1.abs_diff(b.1) <= 5);
                    assert!(b.0 + ITEM_SIDE <= FRAME_SIDE && b.1 + ITEM_SIDE <= FRAME_SIDE);
                }
            }
            // The items move: the first and last frames differ.
            assert_ne!(s.frame(0), s.frame(19));
            // Each frame shows both items' ink (max of overlapping pixels).
            for t in 0..s.len() {
                let bright = *s.frame(t).iter().max().unwrap();
                let want = s.items.iter().map(|&k| 50 + 20 * k as u8).max().unwrap();
                assert_eq!(bright, want);
            }
        }
        assert_ne!(generate(&src, 5, 0).unwrap(), generate(&src, 6, 0).unwrap());
    }

    #[test]
    fn bouncing_reflects_at_both_edges() {
        assert_eq!(bounce(1.0, -3.0, 36.0), (2.0, 3.0));
        assert_eq!(bounce(35.0, 3.0, 36.0), (34.0, -3.0));
        assert_eq!(bounce(10.0, 3.0, 36.0), (13.0, 3.0));
    }

    #[test]
    fn a_strip_is_written() {
        let s = generate(&source(), 1, 0).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("strip.png");
        s.write_strip(&p).unwrap();
        let img = image::open(&p).unwrap();
        assert_eq!(img.width() as usize, 20 * 64 + 19 * 2);
    }
}
