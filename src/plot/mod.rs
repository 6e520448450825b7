//! Charts as PNG files, drawn with plotters: line charts (training curves, gradient norms),
//! the confusion matrix and image grids. Text uses DejaVu Sans, embedded in the binary so no
//! system font is needed. Nothing here knows about models or training: callers pass numbers.

pub mod grid;
pub mod heatmap;

pub use heatmap::{attention_over_image, heatmaps, Heatmap};

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Makes the embedded font the one plotters calls "sans-serif" (once per process).
pub fn register_font() {
    REGISTER.call_once(|| {
        // The font is a compile-time constant known to parse.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// A drawing error on `path`.
pub fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// One line of a [`Panel`]: a label and its points `(x, y)`; non-finite values are skipped.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// The points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// One chart of a row of charts: a title, axis names and its lines.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Caption above the chart.
    pub title: String,
    /// Name of the x axis.
    pub x_label: String,
    /// Name of the y axis.
    pub y_label: String,
    /// The lines, drawn in the palette's order (blue, red, green, ...).
    pub series: Vec<Series>,
}

const COLORS: [RGBColor; 6] = [
    BLUE,
    RED,
    RGBColor(0, 150, 0),
    RGBColor(200, 120, 0),
    MAGENTA,
    RGBColor(0, 150, 150),
];

/// Draws `panels` side by side (600 pixels wide each) into the PNG `path`. Each y axis spans
/// its finite values with a margin; x axes show integers when every x is an integer.
pub fn line_panels(panels: &[Panel], path: &Path) -> Result<()> {
    register_font();
    let n = panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (600 * n, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let areas = root.split_evenly((1, n as usize));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let finite = || {
            panel
                .series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter(|(x, y)| x.is_finite() && y.is_finite())
        };
        let (x0, x1) = finite().fold((f64::MAX, f64::MIN), |(a, b), &(x, _)| (a.min(x), b.max(x)));
        let (y0, y1) = finite().fold((f64::MAX, f64::MIN), |(a, b), &(_, y)| (a.min(y), b.max(y)));
        let (x0, x1) = if x0 > x1 {
            (0.0, 1.0)
        } else {
            (x0 - 0.5, x1 + 0.5)
        };
        let (y0, y1) = if y0 > y1 {
            (0.0, 1.0)
        } else {
            let pad = ((y1 - y0) * 0.08).max(1e-3);
            (y0 - pad, y1 + pad)
        };
        let integer_x = finite().all(|(x, _)| x.fract() == 0.0);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| plot_err(path, e))?;
        let int_fmt = |v: &f64| format!("{v:.0}");
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(panel.x_label.as_str())
            .y_desc(panel.y_label.as_str());
        if integer_x {
            mesh.x_label_formatter(&int_fmt);
        }
        mesh.draw().map_err(|e| plot_err(path, e))?;
        for (k, s) in panel.series.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let points: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| plot_err(path, e))?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            if points.len() <= 60 {
                chart
                    .draw_series(
                        points
                            .into_iter()
                            .map(|p| Circle::new(p, 3, color.filled())),
                    )
                    .map_err(|e| plot_err(path, e))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_err(path, e))?;
    }
    root.present().map_err(|e| plot_err(path, e))
}

/// Draws `confusion[true][predicted]` as a heat map with counts (rows: true class, shaded by
/// the fraction of the row), titled with the count of `items` (`"images"`) and `accuracy`.
pub fn confusion_matrix(
    class_names: &[String],
    confusion: &[Vec<usize>],
    accuracy: f64,
    items: &str,
    path: &Path,
) -> Result<()> {
    register_font();
    let n = class_names.len();
    let count: usize = confusion.iter().flatten().sum();
    let cell = 64i32;
    let (left, top) = (150i32, 70i32);
    let size = (
        left as u32 + (n as u32) * cell as u32 + 30,
        top as u32 + (n as u32) * cell as u32 + 130,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let title = format!(
        "Confusion matrix: {} {items}, accuracy {:.2}%",
        count,
        accuracy * 100.0
    );
    root.draw(&Text::new(
        title,
        (left, 20),
        ("sans-serif", 22).into_font(),
    ))
    .map_err(|e| plot_err(path, e))?;
    for (t, row) in confusion.iter().enumerate() {
        let total: usize = row.iter().sum::<usize>().max(1);
        for (p, &count) in row.iter().enumerate() {
            let frac = count as f64 / total as f64;
            let shade = (255.0 * (1.0 - frac)) as u8;
            let (x0, y0) = (left + p as i32 * cell, top + t as i32 * cell);
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell, y0 + cell)],
                RGBColor(shade, shade, 255).filled(),
            ))
            .map_err(|e| plot_err(path, e))?;
            let color = if frac > 0.5 { WHITE } else { BLACK };
            root.draw(&Text::new(
                count.to_string(),
                (x0 + 8, y0 + cell / 2 - 8),
                ("sans-serif", 16).into_font().color(&color),
            ))
            .map_err(|e| plot_err(path, e))?;
        }
        root.draw(&Text::new(
            class_names[t].clone(),
            (8, top + t as i32 * cell + cell / 2 - 8),
            ("sans-serif", 15).into_font(),
        ))
        .map_err(|e| plot_err(path, e))?;
    }
    for (p, name) in class_names.iter().enumerate() {
        let x = left + p as i32 * cell + cell / 2 - 6;
        let y = top + n as i32 * cell + 8;
        root.draw(&Text::new(
            name.clone(),
            (x, y),
            ("sans-serif", 14)
                .into_font()
                .transform(FontTransform::Rotate90),
        ))
        .map_err(|e| plot_err(path, e))?;
    }
    root.draw(&Text::new(
        "rows: true class, columns: predicted".to_string(),
        (left, 45),
        ("sans-serif", 15).into_font(),
    ))
    .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))
}

/// One group of bars per category (x axis), one bar per series in each group, heights in
/// `[0, y_max]`, each labelled with its value (one decimal). A series' point `(x, y)` is the
/// bar of category `x` (0, 1, ...).
pub fn grouped_bars(
    title: &str,
    categories: &[String],
    series: &[Series],
    y_label: &str,
    y_max: f64,
    path: &Path,
) -> Result<()> {
    register_font();
    let root =
        BitMapBackend::new(path, (200 + 160 * categories.len() as u32, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let groups = categories.len().max(1);
    let per = series.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..groups as f64, 0.0..y_max)
        .map_err(|e| plot_err(path, e))?;
    let label = |x: &f64| {
        let i = x.floor() as usize;
        if (x - i as f64 - 0.5).abs() < 1e-6 {
            categories.get(i).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * groups + 1)
        .x_label_formatter(&label)
        .y_desc(y_label)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (k, s) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let bars = s
            .points
            .iter()
            .filter(|(_, y)| y.is_finite())
            .map(|&(x, y)| {
                let x0 = x.floor() + 0.1 + 0.8 * k as f64 / per;
                Rectangle::new([(x0, 0.0), (x0 + 0.8 / per, y)], color.filled())
            });
        chart
            .draw_series(bars)
            .map_err(|e| plot_err(path, e))?
            .label(s.label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
        let values = s
            .points
            .iter()
            .filter(|(_, y)| y.is_finite())
            .map(|&(x, y)| {
                let x0 = x.floor() + 0.1 + 0.8 * k as f64 / per;
                Text::new(
                    format!("{y:.1}"),
                    (x0, y + y_max * 0.01),
                    ("sans-serif", 13).into_font(),
                )
            });
        chart.draw_series(values).map_err(|e| plot_err(path, e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))
}
