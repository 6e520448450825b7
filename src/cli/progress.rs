//! Training progress on the terminal with indicatif: one bar per epoch with loss, accuracy and
//! images/s, then a line of epoch metrics.

use deepnet::train::{EpochMetrics, Observer, StepProgress};
use indicatif::{ProgressBar, ProgressStyle};

/// Draws a bar per epoch on stderr.
pub struct ProgressBars {
    bar: Option<ProgressBar>,
}

impl ProgressBars {
    /// No bar yet; one appears at the first epoch.
    pub fn new() -> Self {
        Self { bar: None }
    }
}

impl Observer for ProgressBars {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        self.bar = Some(bar);
    }

    fn step(&mut self, p: &StepProgress) {
        if let Some(bar) = &self.bar {
            bar.set_position(p.batch as u64);
            if p.batch.is_multiple_of(10) || p.batch == p.batches {
                bar.set_message(format!(
                    "loss {:.4} acc {:.2}% {:.0} img/s",
                    p.loss,
                    p.accuracy * 100.0,
                    p.images_per_second
                ));
            }
        }
    }

    fn validation_start(&mut self, count: usize) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("evaluating {count} images..."));
        }
    }

    fn epoch_end(&mut self, m: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "epoch {:>3}: train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}% | lr {:.2e} | {:.1}s, {:.0} img/s",
            m.epoch,
            m.train_loss,
            m.train_accuracy * 100.0,
            m.val_loss,
            m.val_accuracy * 100.0,
            m.lr,
            m.train_seconds,
            m.images_per_second
        );
    }
}
