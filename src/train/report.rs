//! The pictures of a run: the training curve and the confusion matrix, as PNGs drawn with
//! plotters. Text uses DejaVu Sans, embedded in the binary so no system font is needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::metrics::EvalReport;
use super::trainer::EpochMetrics;
use crate::error::{Error, Result};

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

pub(crate) fn register_font() {
    REGISTER.call_once(|| {
        // The font is a compile-time constant known to parse.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

pub(crate) fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Draws loss (left) and accuracy (right) per epoch, training and validation, into `path`.
pub fn plot_training_curve(history: &[EpochMetrics], path: &Path) -> Result<()> {
    register_font();
    let root = BitMapBackend::new(path, (1200, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let (left, right) = root.split_horizontally(600);
    let epochs = history.len().max(1) as f64;
    let x_range = 0.5..epochs + 0.5;

    let max_loss = history
        .iter()
        .flat_map(|m| [m.train_loss, m.val_loss])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption("Loss (cross-entropy)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(x_range.clone(), 0.0..max_loss.max(1e-3))
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss")
        .draw()
        .map_err(|e| plot_err(path, e))?;
    draw_series(&mut chart, history, |m| m.train_loss, &BLUE, "train", path)?;
    draw_series(
        &mut chart,
        history,
        |m| m.val_loss,
        &RED,
        "validation",
        path,
    )?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))?;

    let min_acc = history
        .iter()
        .flat_map(|m| [m.train_accuracy, m.val_accuracy])
        .fold(1.0f64, f64::min);
    let lo = ((min_acc * 100.0 - 2.0) / 5.0).floor().max(0.0) * 5.0;
    let mut chart = ChartBuilder::on(&right)
        .caption("Accuracy (%)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(x_range, lo..100.0)
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("accuracy %")
        .draw()
        .map_err(|e| plot_err(path, e))?;
    draw_series(
        &mut chart,
        history,
        |m| m.train_accuracy * 100.0,
        &BLUE,
        "train",
        path,
    )?;
    draw_series(
        &mut chart,
        history,
        |m| m.val_accuracy * 100.0,
        &RED,
        "validation",
        path,
    )?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))
}

fn draw_series<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    history: &[EpochMetrics],
    value: impl Fn(&EpochMetrics) -> f64,
    color: &'static RGBColor,
    label: &str,
    path: &Path,
) -> Result<()> {
    let points: Vec<(f64, f64)> = history.iter().map(|m| (m.epoch as f64, value(m))).collect();
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
        .map_err(|e| plot_err(path, e))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart
        .draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )
        .map_err(|e| plot_err(path, e))?;
    Ok(())
}

/// Draws the confusion matrix of `report` as a heat map with counts, rows = true class.
pub fn plot_confusion_matrix(report: &EvalReport, path: &Path) -> Result<()> {
    register_font();
    let n = report.class_names.len();
    let cell = 64i32;
    let (left, top) = (150i32, 70i32);
    let size = (
        left as u32 + (n as u32) * cell as u32 + 30,
        top as u32 + (n as u32) * cell as u32 + 130,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let title = format!(
        "Confusion matrix: {} images, accuracy {:.2}%",
        report.count,
        report.accuracy * 100.0
    );
    root.draw(&Text::new(
        title,
        (left, 20),
        ("sans-serif", 22).into_font(),
    ))
    .map_err(|e| plot_err(path, e))?;
    for (t, row) in report.confusion.iter().enumerate() {
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
            report.class_names[t].clone(),
            (8, top + t as i32 * cell + cell / 2 - 8),
            ("sans-serif", 15).into_font(),
        ))
        .map_err(|e| plot_err(path, e))?;
    }
    for (p, name) in report.class_names.iter().enumerate() {
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
