//! How the loop trains, whatever the task: optimizer, schedule, clipping, seeds, batch sizes,
//! checkpoint frequency, truncated BPTT. A run's `config.json` records it beside the task's
//! own configuration, and a resumed run reads it back.
//!
//! Errors name the setting by its field name (`lr`, `batch_size`), never a command-line flag:
//! the library knows no command line.

use serde::{Deserialize, Serialize};

use super::groups::LrGroup;
use crate::error::{Error, Result};

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with (heavy-ball) momentum, as `torch.optim.SGD(momentum=...)`.
    Sgd,
    /// Adam (Kingma & Ba) with torch's defaults: β = (0.9, 0.999), ε = 1e-8.
    Adam,
}

/// How the learning rate changes over training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// `lr · gamma^⌊epoch / step_size⌋` (epochs counted from 0), as torch's `StepLR`.
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Factor applied at each decay.
        gamma: f64,
    },
    /// Cosine annealing from `lr` to `min_lr` over all training steps, updated every step.
    Cosine {
        /// Rate at the last step.
        min_lr: f64,
    },
}

impl Schedule {
    /// The learning rate at optimizer step `step` (0-based) of `total_steps`, in an epoch of
    /// `steps_per_epoch` steps, for base rate `lr`. A pure function of the step, so a resumed
    /// run continues the same schedule exactly.
    pub fn lr_at(&self, lr: f64, step: usize, steps_per_epoch: usize, total_steps: usize) -> f64 {
        match *self {
            Schedule::Constant => lr,
            Schedule::Step { step_size, gamma } => {
                let epoch = step / steps_per_epoch.max(1);
                lr * gamma.powi((epoch / step_size.max(1)) as i32)
            }
            Schedule::Cosine { min_lr } => {
                let t = step as f64 / total_steps.max(1) as f64;
                min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// Everything that decides how the loop trains a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Number of passes over the training set.
    pub epochs: usize,
    /// Items per batch (per optimizer step, or per truncated-BPTT window of steps).
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Momentum for SGD (ignored by Adam).
    pub momentum: f64,
    /// L2 weight decay added to the gradient (torch's `weight_decay`); 0 disables it.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Clip gradients to this global L2 norm (torch's `clip_grad_norm_`); `None` disables it.
    pub clip_norm: Option<f64>,
    /// Seed of the initialization, the data order of every epoch, the augmentation draws and
    /// the random layers (dropout): one seed makes the whole run reproducible.
    pub seed: u64,
    /// Items per validation (and test) batch; `None`: the task's memory-safe default.
    #[serde(default)]
    pub val_batch_size: Option<usize>,
    /// Also checkpoint every this many batches, not only at the end of each epoch; a resumed
    /// run continues from the middle of the epoch exactly. `None`: at epoch ends only.
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// Truncated backpropagation through time: cut every batch into windows of this many time
    /// steps, one optimizer step per window, the recurrent state carried across windows and
    /// cut from the graph. `None`: backpropagate through whole sequences. Only for tasks with
    /// a time axis.
    #[serde(default)]
    pub tbptt: Option<usize>,
    /// Glob patterns of parameter paths kept fixed (transfer learning; see
    /// [`super::groups`]). Empty: everything trains.
    #[serde(default)]
    pub freeze: Vec<String>,
    /// Parts of the model that learn at a multiple of the base rate (a fine-tuned backbone at
    /// 0.1x); later groups win where they overlap.
    #[serde(default)]
    pub lr_groups: Vec<LrGroup>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 64,
            lr: 2e-3,
            optimizer: OptimizerKind::Adam,
            momentum: 0.9,
            weight_decay: 0.0,
            schedule: Schedule::Cosine { min_lr: 0.0 },
            clip_norm: None,
            seed: 42,
            val_batch_size: None,
            checkpoint_every: None,
            tbptt: None,
            freeze: Vec::new(),
            lr_groups: Vec::new(),
        }
    }
}

impl TrainConfig {
    /// Checks every value, naming the first bad one by its field name.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", "must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(
                "lr",
                format!("{} is not a positive number", self.lr),
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::invalid("momentum", "must be in [0, 1)"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid("weight_decay", "must be a number >= 0"));
        }
        if let Some(c) = self.clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::invalid("clip_norm", "must be a positive number"));
            }
        }
        for (name, v) in [
            ("val_batch_size", self.val_batch_size),
            ("checkpoint_every", self.checkpoint_every),
            ("tbptt", self.tbptt),
        ] {
            if v == Some(0) {
                return Err(Error::invalid(name, "must be at least 1"));
            }
        }
        if let Schedule::Cosine { min_lr } = self.schedule {
            // A floor above the rate would make the "annealing" raise it.
            if !(min_lr.is_finite() && (0.0..=self.lr).contains(&min_lr)) {
                return Err(Error::invalid(
                    "min_lr",
                    format!(
                        "{min_lr} must be a number between 0 and the learning rate {}",
                        self.lr
                    ),
                ));
            }
        }
        if let Schedule::Step { step_size, gamma } = self.schedule {
            if step_size == 0 || !(gamma > 0.0 && gamma.is_finite()) {
                return Err(Error::invalid(
                    "schedule",
                    "step needs step_size >= 1 and gamma > 0",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_schedule_decays_every_step_size_epochs() {
        let s = Schedule::Step {
            step_size: 2,
            gamma: 0.1,
        };
        // 10 steps per epoch: epochs 0-1 at lr, 2-3 at lr/10, 4 at lr/100.
        assert_eq!(s.lr_at(1.0, 19, 10, 50), 1.0);
        assert!((s.lr_at(1.0, 20, 10, 50) - 0.1).abs() < 1e-12);
        assert!((s.lr_at(1.0, 45, 10, 50) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn cosine_schedule_goes_from_lr_to_min_lr() {
        let s = Schedule::Cosine { min_lr: 0.1 };
        assert!((s.lr_at(1.0, 0, 10, 100) - 1.0).abs() < 1e-12);
        assert!((s.lr_at(1.0, 50, 10, 100) - 0.55).abs() < 1e-12);
        assert!((s.lr_at(1.0, 100, 10, 100) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn validation_names_the_bad_value() {
        let c = TrainConfig {
            lr: -1.0,
            ..TrainConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("invalid lr"));
        let c = TrainConfig {
            clip_norm: Some(0.0),
            ..TrainConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("clip_norm"));
        let c = TrainConfig {
            checkpoint_every: Some(0),
            ..TrainConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("checkpoint_every"));
    }
}
