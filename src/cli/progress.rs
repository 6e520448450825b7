//! Training progress on the terminal with indicatif: one bar per epoch with the batch loss, the
//! task's running metrics and the throughput, then a line of epoch metrics.
//!
//! Also the crash test's hook: with `DEEPNET_TEST_KILL_AT=POINT:STEP` in the environment the
//! process sends itself SIGKILL when the loop reaches that point at that global step (`step`,
//! `checkpoint-write`, `epoch-recorded`, `checkpoint-saved`: see
//! [`deepnet::train::LoopPoint`]). A real `kill -9` at a deterministic moment, so the test can
//! show that a resumed run loses nothing.

use deepnet::train::{EpochRecord, LoopPoint, Metrics, Observer, StepProgress};
use indicatif::{ProgressBar, ProgressStyle};

/// Draws a bar per epoch on stderr.
pub struct ProgressBars {
    bar: Option<ProgressBar>,
    kill_at: Option<(String, usize)>,
}

impl ProgressBars {
    /// No bar yet; one appears at the first epoch.
    pub fn new() -> Self {
        let kill_at = std::env::var("DEEPNET_TEST_KILL_AT").ok().and_then(|v| {
            let (point, step) = v.split_once(':')?;
            Some((point.to_string(), step.parse().ok()?))
        });
        Self { bar: None, kill_at }
    }
}

/// `accuracy 87.20%` for fractions named like accuracies, `loss 0.4123` otherwise.
fn show(name: &str, v: f64) -> String {
    if name.contains("accuracy") {
        format!("{name} {:.2}%", v * 100.0)
    } else {
        format!("{name} {v:.4}")
    }
}

fn show_all(m: &Metrics) -> String {
    m.0.iter()
        .map(|(n, v)| show(n, *v))
        .collect::<Vec<_>>()
        .join(" ")
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
            bar.inc(1);
            if p.batch.is_multiple_of(10) || p.batch == p.batches {
                let running: Vec<String> = p
                    .running
                    .iter()
                    .filter(|(n, _)| *n != "loss")
                    .map(|(n, v)| show(n, *v))
                    .collect();
                bar.set_message(format!(
                    "loss {:.4} {} {:.0} {}/s",
                    p.loss,
                    running.join(" "),
                    p.throughput,
                    p.unit
                ));
            }
        }
    }

    fn window(&mut self, window: usize, windows: usize, loss: f32) {
        if let Some(bar) = &self.bar {
            if window.is_multiple_of(10) || window == windows {
                bar.set_message(format!("window {window}/{windows} loss {loss:.4}"));
            }
        }
    }

    fn validation_start(&mut self, count: usize) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("evaluating {count} items..."));
        }
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "epoch {:>3}: train {} | val {} | lr {:.2e} | {:.1}s, {:.0} {}",
            r.epoch,
            show_all(&r.train),
            show_all(&r.val),
            r.lr,
            r.train_seconds,
            r.throughput,
            r.throughput_unit
        );
    }

    fn reached(&mut self, point: LoopPoint) {
        let Some((name, step)) = &self.kill_at else {
            return;
        };
        let (here, at) = match point {
            LoopPoint::StepDone { global_step } => ("step", global_step),
            LoopPoint::CheckpointStaged { global_step } => ("checkpoint-write", global_step),
            LoopPoint::EpochRecorded { global_step } => ("epoch-recorded", global_step),
            LoopPoint::CheckpointSaved { global_step } => ("checkpoint-saved", global_step),
        };
        if here == name && at == *step {
            // SAFETY: kill(2) on our own pid with a valid signal number; nothing to uphold.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

/// A line on stderr every tenth of a pass over many items (`decoding test: 640/6246`), for
/// work outside the training loop: a report's decoding, an encoder's pass over the data.
pub fn pass_lines(verb: &'static str) -> impl FnMut(&str, usize, usize) {
    let mut last = (String::new(), 0usize);
    move |what: &str, done: usize, total: usize| {
        let tenth = done * 10 / total.max(1);
        if what != last.0 || tenth > last.1 {
            eprintln!("{verb} {what}: {done}/{total}");
            last = (what.to_string(), tenth);
        }
    }
}
