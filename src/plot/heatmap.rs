//! Attention pictures: heatmaps (one matrix per panel, rows labelled by outputs, columns by
//! inputs, a cell's darkness its weight in [0, 1]) and attention over an image (one panel per
//! output word, the weights of a grid of cells in red over the grey image).

use std::path::Path;

use plotters::prelude::*;

use super::{plot_err, register_font};
use crate::error::Result;

/// One heatmap: `values[row][col]` in [0, 1] under the labels `rows` and `cols`.
#[derive(Debug, Clone)]
pub struct Heatmap {
    /// Caption above the matrix.
    pub title: String,
    /// Row labels (top to bottom).
    pub rows: Vec<String>,
    /// Column labels (left to right).
    pub cols: Vec<String>,
    /// The weights, `rows.len()` rows of `cols.len()` values.
    pub values: Vec<Vec<f32>>,
}

const CELL: i32 = 30;
const LABEL: i32 = 60;
const TITLE: i32 = 36;
const GAP: i32 = 30;

/// Draws `maps` side by side into the PNG `path`.
pub fn heatmaps(maps: &[Heatmap], path: &Path) -> Result<()> {
    register_font();
    let width = |m: &Heatmap| (LABEL + CELL * m.cols.len() as i32).max(200);
    let total_w: i32 = maps.iter().map(|m| width(m) + GAP).sum::<i32>() + GAP;
    let total_h = maps
        .iter()
        .map(|m| TITLE + CELL * (m.rows.len() as i32 + 1))
        .max()
        .unwrap_or(100)
        + 2 * GAP;
    let root =
        BitMapBackend::new(path, (total_w.max(100) as u32, total_h as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let font = ("sans-serif", 16).into_font();
    let mut x0 = GAP;
    for m in maps {
        root.draw(&Text::new(m.title.clone(), (x0, GAP / 2), font.clone()))
            .map_err(|e| plot_err(path, e))?;
        let top = GAP / 2 + TITLE;
        for (c, label) in m.cols.iter().enumerate() {
            let x = x0 + LABEL + c as i32 * CELL + CELL / 3;
            root.draw(&Text::new(label.clone(), (x, top), font.clone()))
                .map_err(|e| plot_err(path, e))?;
        }
        for (r, label) in m.rows.iter().enumerate() {
            let y = top + CELL * (r as i32 + 1);
            root.draw(&Text::new(label.clone(), (x0, y + CELL / 4), font.clone()))
                .map_err(|e| plot_err(path, e))?;
            for c in 0..m.cols.len() {
                let w = m.values[r].get(c).copied().unwrap_or(0.0).clamp(0.0, 1.0);
                let shade = (255.0 * (1.0 - w)) as u8;
                let x = x0 + LABEL + c as i32 * CELL;
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL - 1, y + CELL - 1)],
                    RGBColor(shade, shade, shade).filled(),
                ))
                .map_err(|e| plot_err(path, e))?;
            }
        }
        x0 += width(m) + GAP;
    }
    root.present().map_err(|e| plot_err(path, e))
}

/// Draws the grey square image `pixels` (`side` x `side`) as its first panel, then one panel
/// per label with `weights[k]` (a `grid` x `grid` attention, row-major, scaled to its
/// maximum) in red over it, each panel captioned, into the PNG `path`.
pub fn attention_over_image(
    pixels: &[u8],
    side: usize,
    labels: &[String],
    weights: &[Vec<f32>],
    grid: usize,
    path: &Path,
) -> Result<()> {
    register_font();
    let zoom = 3usize;
    let panel = side * zoom;
    let gap = 6usize;
    let caption = 26usize;
    let panels = labels.len().min(weights.len()) + 1;
    let (w, h) = (panels * (panel + gap), panel + caption);
    let mut buf = vec![255u8; w * h * 3];
    for k in 0..panels {
        let att = (k > 0).then(|| &weights[k - 1]);
        let max = att.map_or(1.0, |a| a.iter().cloned().fold(1e-9f32, f32::max));
        let x0 = k * (panel + gap);
        for y in 0..panel {
            for x in 0..panel {
                let (sx, sy) = (x / zoom, y / zoom);
                let p = pixels[sy * side + sx] as f32;
                let rgb = match att {
                    None => [p as u8; 3],
                    Some(a) => {
                        let cell = (sy * grid / side) * grid + sx * grid / side;
                        let v = a.get(cell).copied().unwrap_or(0.0) / max;
                        let g = p * (1.0 - 0.6 * v);
                        [(g + 153.0 * v).min(255.0) as u8, g as u8, g as u8]
                    }
                };
                let at = (y * w + x0 + x) * 3;
                buf[at..at + 3].copy_from_slice(&rgb);
            }
        }
    }
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)).into_drawing_area();
        let font = ("sans-serif", 18).into_font();
        for k in 0..panels {
            let text = if k == 0 {
                "image".to_string()
            } else {
                labels[k - 1].clone()
            };
            let x = (k * (panel + gap) + 4) as i32;
            root.draw(&Text::new(text, (x, (panel + 4) as i32), font.clone()))
                .map_err(|e| plot_err(path, e))?;
        }
        root.present().map_err(|e| plot_err(path, e))?;
    }
    image::RgbImage::from_raw(w as u32, h as u32, buf)
        .expect("buffer of the image's size")
        .save(path)
        .map_err(|e| plot_err(path, e))
}
