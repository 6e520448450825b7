//! Image grids: many small pictures (filters, feature maps) tiled into one PNG.

use std::path::Path;

use image::{GrayImage, Luma, Rgb, RgbImage};

use crate::error::{Error, Result};

fn save(
    img: impl FnOnce() -> std::result::Result<(), image::ImageError>,
    path: &Path,
) -> Result<()> {
    img().map_err(|e| Error::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Cells per row for `n` tiles: about square.
fn columns(n: usize) -> usize {
    ((n as f64).sqrt().ceil() as usize).max(1)
}

/// Draws the filters `v` (shape `dims` = `[out, in, kh, kw]`) as a grid, each scaled to its own min..max (one
/// input channel: grey; three: colour; otherwise the mean over input channels), each weight a
/// `zoom`×`zoom` block, and writes it to `path` (PNG).
pub fn filter_grid(v: &[f32], dims: [usize; 4], zoom: u32, path: &Path) -> Result<()> {
    let [o, c, kh, kw] = dims;
    let (cols, gap) = (columns(o), 2u32);
    let rows = o.div_ceil(cols);
    let cell = |k: usize| k as u32 * zoom + gap;
    let mut img = RgbImage::from_pixel(
        cols as u32 * cell(kw) + gap,
        rows as u32 * cell(kh) + gap,
        Rgb([255, 255, 255]),
    );
    for f in 0..o {
        let w = &v[f * c * kh * kw..(f + 1) * c * kh * kw];
        let (lo, hi) = w
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        let scale = |x: f32| ((x - lo) / (hi - lo).max(1e-12) * 255.0).round() as u8;
        let (x0, y0) = (
            gap + (f % cols) as u32 * cell(kw),
            gap + (f / cols) as u32 * cell(kh),
        );
        for y in 0..kh {
            for x in 0..kw {
                let at = |ch: usize| w[(ch * kh + y) * kw + x];
                let px = if c == 3 {
                    Rgb([scale(at(0)), scale(at(1)), scale(at(2))])
                } else {
                    let g = scale((0..c).map(at).sum::<f32>() / c as f32);
                    Rgb([g, g, g])
                };
                for dy in 0..zoom {
                    for dx in 0..zoom {
                        img.put_pixel(x0 + x as u32 * zoom + dx, y0 + y as u32 * zoom + dy, px);
                    }
                }
            }
        }
    }
    save(|| img.save(path), path)
}

/// Draws the first `max_maps` channels of one image's feature maps `v` (shape `dims` =
/// `[1, C, H, W]`) as a grey grid,
/// each map scaled to its own min..max and enlarged to at least 48 pixels, and writes it to
/// `path` (PNG).
pub fn feature_map_grid(v: &[f32], dims: [usize; 4], max_maps: usize, path: &Path) -> Result<()> {
    let [_, c, h, w] = dims;
    let n = c.min(max_maps).max(1);
    let zoom = (48usize.div_ceil(h.max(w).max(1))).max(1) as u32;
    let (cols, gap) = (columns(n), 2u32);
    let rows = n.div_ceil(cols);
    let (cw, ch) = (w as u32 * zoom + gap, h as u32 * zoom + gap);
    let mut img =
        GrayImage::from_pixel(cols as u32 * cw + gap, rows as u32 * ch + gap, Luma([255]));
    for m in 0..n.min(c) {
        let map = &v[m * h * w..(m + 1) * h * w];
        let (lo, hi) = map
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        let (x0, y0) = (gap + (m % cols) as u32 * cw, gap + (m / cols) as u32 * ch);
        for y in 0..h {
            for x in 0..w {
                let g = ((map[y * w + x] - lo) / (hi - lo).max(1e-12) * 255.0).round() as u8;
                for dy in 0..zoom {
                    for dx in 0..zoom {
                        img.put_pixel(
                            x0 + x as u32 * zoom + dx,
                            y0 + y as u32 * zoom + dy,
                            Luma([g]),
                        );
                    }
                }
            }
        }
    }
    save(|| img.save(path), path)
}
