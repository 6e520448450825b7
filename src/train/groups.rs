//! Parameter groups by path, for transfer learning: which parameters stay frozen, and which
//! learn at a fraction of the base learning rate (fine-tuning a backbone at 0.1x its new head).
//!
//! Paths are the module's field paths, dot-separated (`conv1.weight`, `layer1.0.bn1.gamma`,
//! `fc.bias`): torchvision's state-dict keys for every zoo model (batch norms' `weight`/`bias`
//! are burn's `gamma`/`beta`). Patterns are globs over those paths: `*` matches any run of
//! characters (dots included), `?` one character; `layer1.*` is everything in `layer1`. A
//! pattern starting with `!` takes parameters out again: `*,!fc.*` is everything but the `fc`
//! head. A pattern that matches no parameter is an error, never a silent no-op.
//!
//! Freezing uses burn's `freeze_group`: frozen parameters get no gradient (the optimizer skips
//! them), and a batch norm frozen whole (its training flag included, as `layer1.*` or "all but
//! the head" freezes it) normalises with its running statistics and never updates them, as
//! `model.eval()` would do for that layer in PyTorch. The learning rates go through burn's
//! `ModuleLearningRate`, one rate per group.

use burn::module::{Module, ParamGroup, ParamId};
use burn::optim::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::weights::paths::{param_entries, ParamEntry};

/// A part of the model whose learning rate is the base rate times `factor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrGroup {
    /// Glob patterns of parameter paths (see the module doc).
    pub patterns: Vec<String>,
    /// Multiplies the base learning rate for these parameters.
    pub factor: f64,
}

/// Whether the glob `pattern` matches all of `path`.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|k| go(rest, &s[k..])),
            Some((b'?', rest)) => !s.is_empty() && go(rest, &s[1..]),
            Some((&c, rest)) => s.first() == Some(&c) && go(rest, &s[1..]),
        }
    }
    go(pattern.as_bytes(), path.as_bytes())
}

/// Whether `path` is selected by `patterns`: matched by a pattern without `!` and by none
/// with one.
pub fn selected(patterns: &[String], path: &str) -> bool {
    let (mut inc, mut exc) = (false, false);
    for p in patterns {
        match p.strip_prefix('!') {
            Some(neg) => exc |= glob_match(neg, path),
            None => inc |= glob_match(p, path),
        }
    }
    inc && !exc
}

/// The ids of the parameters of `entries` selected by `patterns`; each pattern must match at
/// least one tensor parameter, else an error naming `setting` and the pattern.
pub fn matching_ids(
    entries: &[ParamEntry],
    patterns: &[String],
    setting: &str,
) -> Result<Vec<ParamId>> {
    for p in patterns {
        let glob = p.strip_prefix('!').unwrap_or(p);
        if !entries.iter().any(|e| !e.flag && glob_match(glob, &e.path)) {
            let examples: Vec<&str> = entries
                .iter()
                .filter(|e| !e.flag)
                .map(|e| e.path.as_str())
                .take(4)
                .collect();
            return Err(Error::invalid(
                setting,
                format!(
                    "pattern '{p}' matches no parameter of the model (parameters are named like {})",
                    examples.join(", ")
                ),
            ));
        }
    }
    Ok(entries
        .iter()
        .filter(|e| selected(patterns, &e.path))
        .map(|e| e.id)
        .collect())
}

/// `model` with the parameters matched by `patterns` frozen (see the module doc).
pub fn freeze<M: Module>(model: M, patterns: &[String]) -> Result<M> {
    if patterns.is_empty() {
        return Ok(model);
    }
    let ids = matching_ids(&param_entries(&model), patterns, "freeze")?;
    Ok(model.freeze_group(ParamGroup::from_ids(ids)))
}

/// Resolves learning-rate groups against a model's parameters, once.
#[derive(Debug, Clone)]
pub struct LrPlan {
    groups: Vec<(ParamGroup, f64)>,
}

impl LrPlan {
    /// The plan of `groups` for `model` (every pattern must match).
    pub fn new<M: Module>(model: &M, groups: &[LrGroup]) -> Result<LrPlan> {
        let entries = param_entries(model);
        let groups = groups
            .iter()
            .map(|g| {
                if !(g.factor.is_finite() && g.factor >= 0.0) {
                    return Err(Error::invalid(
                        "lr_groups",
                        format!("factor {} is not a number >= 0", g.factor),
                    ));
                }
                let ids = matching_ids(&entries, &g.patterns, "lr_groups")?;
                Ok((ParamGroup::from_ids(ids), g.factor))
            })
            .collect::<Result<_>>()?;
        Ok(LrPlan { groups })
    }

    /// The learning rate of every parameter when the base rate is `lr` (a later group wins
    /// where groups overlap).
    pub fn at(&self, lr: f64) -> ModuleLearningRate {
        let mut s = ModuleLrScheduler::new(lr);
        for (group, factor) in &self.groups {
            s = s.with_group(group.clone(), lr * factor);
        }
        s.step()
    }
}

/// Trainable and frozen parameter counts of `model`, in values. Batch norms' running
/// statistics are buffers, not parameters (as in PyTorch): they are left out.
pub fn trainable_and_frozen(model: &impl Module) -> (usize, usize) {
    let mut trainable = 0;
    let mut frozen = 0;
    for e in param_entries(model) {
        if e.flag || e.path.ends_with("running_mean") || e.path.ends_with("running_var") {
            continue;
        }
        if e.trainable {
            trainable += e.numel;
        } else {
            frozen += e.numel;
        }
    }
    (trainable, frozen)
}

/// Trainable and frozen parameter counts (values) of a module with `entries` if `patterns`
/// were frozen, without building or initialising anything; an error for a pattern that
/// matches nothing.
pub fn counts_if_frozen(entries: &[ParamEntry], patterns: &[String]) -> Result<(usize, usize)> {
    matching_ids(entries, patterns, "freeze")?;
    let mut counts = (0, 0);
    for e in entries {
        if e.flag || e.path.ends_with("running_mean") || e.path.ends_with("running_var") {
            continue;
        }
        if !patterns.is_empty() && selected(patterns, &e.path) {
            counts.1 += e.numel;
        } else {
            counts.0 += e.numel;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_paths() {
        assert!(glob_match("layer1.*", "layer1.0.conv1.weight"));
        assert!(glob_match("conv1.*", "conv1.weight"));
        assert!(!glob_match("conv1.*", "layer1.0.conv1.weight"));
        assert!(glob_match("*conv1*", "layer1.0.conv1.weight"));
        assert!(glob_match("fc.?ias", "fc.bias"));
        assert!(!glob_match("fc", "fc.bias"));
        let all_but_head = ["*".to_string(), "!fc.*".to_string()];
        assert!(selected(&all_but_head, "layer1.0.bn1.training"));
        assert!(!selected(&all_but_head, "fc.weight"));
    }
}
