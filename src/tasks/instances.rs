//! Recurrent instance segmentation (Romera-Paredes & Torr 2016) of generated scenes
//! ([`crate::data::scenes`], overlap layout) with the [`InstanceSegmenter`]: one instance per
//! step, a confidence to stop. `deepnet instance-train` is the function of this file.
//!
//! **Instances.** Those of the scene's instance mask: every item with a visible pixel (an item
//! hidden entirely by later ones is not an instance). Pixels marked 255 count for nothing.
//!
//! **Loss** of a scene with `n` instances `Y_j`, mask probabilities `P_t = σ(m_t)`,
//! confidences `s_t` and attention `α_t` (over 4x4 cells): the first `n` steps are matched to
//! the instances by the assignment `π` that maximises `Σ_t IoU(P_t, Y_π(t)) + A_t,π(t)` (all
//! `n!` assignments are tried: `n ≤ 4`), with the soft IoU `IoU(P, Y) = Σ P·Y / Σ (P + Y −
//! P·Y)` and the attention mass on an instance `A_t,j = Σ_c α_t,c · Ȳ_j,c` (`Ȳ_j,c`: the
//! share of cell `c` the instance covers); then
//! `ℓ = (1/n) Σ_{t<n} (1 − IoU(P_t, Y_π(t)) − log A_t,π(t)) + (1/T) Σ_t BCE(σ(s_t), 1[t < n])`.
//! The paper's loss is this without the `A` terms. With them the step that looks at an item
//! is taught that item: without them the masks of every step stayed the union of all items
//! (docs/instances-scenes/, earlier version).
//!
//! **Inference.** Steps run while `σ(s_t) ≥ 0.5`; a pixel belongs to the accepted step whose
//! mask is most probable there, when that probability is above 0.5.
//!
//! **Scores** on the test scenes, for all of them and separately for scenes with and without
//! overlap ([`SceneSets::has_overlap`]): symmetric best dice (SBD: for each instance of one
//! labelling the best dice with an instance of the other, averaged, and the smaller of the two
//! directions), the mean of `|DiC|` (predicted count minus true count) and counting accuracy.
//! **Baseline**: connected components (8-neighbourhood) of the foreground an FCN run predicts,
//! components smaller than a size chosen on the validation scenes dropped.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, sigmoid};
use serde::{Deserialize, Serialize};

use super::segment::{load_run as load_fcn_run, segment, SceneSets, SegmentData, PALETTE};
use crate::data::scenes::{Scene, IGNORE, SCENE_SIDE};
use crate::data::SampleSeeds;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::models::instance_seg::{InstanceSegmenter, InstanceSegmenterConfig, InstanceSteps};
use crate::train::checkpoint::{load_weights, read_checkpoint_meta, resolve_checkpoint};
use crate::train::run::{create_run_dir_with_config, refuse_existing_run, resume_config};
use crate::train::{fit, EpochRecord, Observer, Stats, Task, TrainConfig, TrainOutput};

/// The name of this task in `config.json`.
pub const TASK: &str = "instances";

/// Pixels of a scene.
const PIXELS: usize = SCENE_SIDE * SCENE_SIDE;

/// Most instances of a scene.
const MAX_INSTANCES: usize = 4;

/// Test scenes drawn in the report.
const PICTURES: usize = 6;

/// Smallest component sizes the connected-components baseline may keep, chosen on validation.
const MIN_SIZES: [usize; 5] = [1, 8, 16, 32, 64];

/// The contents of `config.json` of an instance-segmentation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRun {
    /// The task (`instances`).
    pub task: String,
    /// The network.
    pub model: InstanceSegmenterConfig,
    /// The scenes.
    pub data: SegmentData,
    /// The FCN run whose foreground the connected-components baseline splits.
    pub baseline_fcn: Option<PathBuf>,
    /// Training settings.
    pub train: TrainConfig,
    /// deepnet version that wrote the run.
    pub deepnet_version: String,
}

impl InstanceRun {
    fn from_json(v: serde_json::Value, origin: &Path) -> Result<InstanceRun> {
        crate::train::run::task_config(v, origin, TASK, "instance segmentation")
    }
}

/// The instances of an instance mask: for each visible item, in drawing order, its pixels as 0/1.
pub fn instances_of(instance_mask: &[u8]) -> Vec<Vec<f32>> {
    let mut ids: Vec<u8> = instance_mask
        .iter()
        .copied()
        .filter(|&m| m != 0 && m != IGNORE)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.iter()
        .map(|&id| {
            instance_mask
                .iter()
                .map(|&m| if m == id { 1.0 } else { 0.0 })
                .collect()
        })
        .collect()
}

/// Images, their instances and the pixels that count.
pub struct InstanceBatch {
    /// `[B, 1, 64, 64]`, intensities in [0, 1].
    pub images: Tensor<4>,
    /// Instances `[B, 4, 4096]` (rows past a scene's count are zero).
    pub truth: Tensor<3>,
    /// 1 where a pixel counts, 0 where ignored, `[B, 4096]`.
    pub weight: Tensor<2>,
    /// Instances per scene.
    pub counts: Vec<usize>,
}

fn instance_batch(scenes: &[Scene], device: &Device) -> InstanceBatch {
    let b = scenes.len();
    let mut images = Vec::with_capacity(b * PIXELS);
    let mut truth = vec![0f32; b * MAX_INSTANCES * PIXELS];
    let mut weight = Vec::with_capacity(b * PIXELS);
    let mut counts = Vec::with_capacity(b);
    for (k, s) in scenes.iter().enumerate() {
        images.extend(s.image.iter().map(|&p| p as f32 / 255.0));
        weight.extend(
            s.instance_mask
                .iter()
                .map(|&m| if m == IGNORE { 0.0f32 } else { 1.0 }),
        );
        let inst = instances_of(&s.instance_mask);
        counts.push(inst.len());
        for (j, m) in inst.iter().enumerate().take(MAX_INSTANCES) {
            let o = (k * MAX_INSTANCES + j) * PIXELS;
            truth[o..o + PIXELS].copy_from_slice(m);
        }
    }
    InstanceBatch {
        images: Tensor::from_data(
            TensorData::new(images, [b, 1, SCENE_SIDE, SCENE_SIDE]),
            device,
        ),
        truth: Tensor::from_data(TensorData::new(truth, [b, MAX_INSTANCES, PIXELS]), device),
        weight: Tensor::from_data(TensorData::new(weight, [b, PIXELS]), device),
        counts,
    }
}

/// The assignment of instances `0..n` to steps `0..n` that maximises the summed IoU
/// (`iou[t][j]`): `π[t] = j`. All `n!` orders are tried.
pub fn best_assignment(iou: &[Vec<f32>], n: usize) -> Vec<usize> {
    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![Vec::new()];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for at in 0..n {
                let mut q = p.clone();
                q.insert(at, n - 1);
                out.push(q);
            }
        }
        out
    }
    permutations(n)
        .into_iter()
        .map(|p| {
            let total: f32 = p.iter().enumerate().map(|(t, &j)| iou[t][j]).sum();
            (p, total)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(p, _)| p)
        .unwrap_or_default()
}

/// Summed statistics of instance segmentation training.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceStats {
    /// Scenes.
    pub scenes: usize,
    /// Summed loss (per scene).
    pub loss: f64,
    /// Summed soft IoU of matched (step, instance) pairs.
    pub matched_iou: f64,
    /// Matched pairs.
    pub matched: usize,
    /// Scenes whose count the confidences get right.
    pub counted_right: usize,
}

impl Stats for InstanceStats {
    fn merge(&mut self, o: &Self) {
        self.scenes += o.scenes;
        self.loss += o.loss;
        self.matched_iou += o.matched_iou;
        self.matched += o.matched;
        self.counted_right += o.counted_right;
    }
    fn items(&self) -> usize {
        self.scenes
    }
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        let n = self.scenes.max(1) as f64;
        vec![
            ("loss", self.loss / n),
            ("matched_iou", self.matched_iou / self.matched.max(1) as f64),
            ("count_accuracy", self.counted_right as f64 / n),
        ]
    }
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| Error::invalid("tensor", format!("{e:?}")))
}

/// Steps accepted by the confidences of one scene: those before the first below 0.5.
fn accepted_steps(confidence_logits: &[f32]) -> usize {
    confidence_logits
        .iter()
        .position(|&s| s < 0.0)
        .unwrap_or(confidence_logits.len())
}

fn matching_loss(
    model: &InstanceSegmenter,
    batch: InstanceBatch,
) -> Result<(Tensor<1>, InstanceStats)> {
    let steps = model.forward(batch.images.clone())?;
    loss_of_steps(steps, batch)
}

/// The loss and statistics of a network's `steps` on `batch` (see the module documentation).
fn loss_of_steps(steps: InstanceSteps, batch: InstanceBatch) -> Result<(Tensor<1>, InstanceStats)> {
    let device = batch.images.device();
    let b = batch.counts.len();
    let (masks, conf) = (steps.masks, steps.confidence); // [B, T, 64, 64], [B, T]
    let t = masks.dims()[1];
    let p = sigmoid(masks).reshape([b, t, PIXELS]); // [B, T, 4096]
    let w = batch.weight.unsqueeze_dim::<3>(1); // [B, 1, 4096]
    let pw = p * w.clone(); // [B, T, 4096]
    let yw = batch.truth.clone() * w; // [B, J, 4096]
    let inter = pw.clone().matmul(batch.truth.clone().swap_dims(1, 2)); // [B, T, J]
    let sum_p = pw.sum_dim(2); // [B, T, 1]
    let sum_y = yw.sum_dim(2).swap_dims(1, 2); // [B, 1, J]
    let iou = inter.clone() / (sum_p + sum_y - inter + 1e-6); // [B, T, J]
                                                              // Attention on the matched instance: its share of each 4x4 block, [B, J, 256].
    let cells = (SCENE_SIDE / 4) * (SCENE_SIDE / 4);
    let truth_cells = batch
        .truth
        .reshape([b, MAX_INSTANCES, SCENE_SIDE / 4, 4, SCENE_SIDE / 4, 4])
        .mean_dim(5)
        .mean_dim(3)
        .reshape([b, MAX_INSTANCES, cells]);
    let mass = steps.attention.matmul(truth_cells.swap_dims(1, 2)); // [B, T, J]
    let iou_v = to_vec(iou.clone().detach())?;
    let mass_v = to_vec(mass.clone().detach())?;
    let conf_v = to_vec(conf.clone().detach())?;
    let mut select = vec![0f32; b * t * MAX_INSTANCES];
    let mut target = vec![0f32; b * t];
    let mut stats = InstanceStats {
        scenes: b,
        ..InstanceStats::default()
    };
    for k in 0..b {
        let n = batch.counts[k].min(t).min(MAX_INSTANCES);
        // Steps are matched on mask IoU plus attention mass: where masks are alike (early in
        // training, all of them the union of the items) the attention decides.
        let at = |v: &[f32], s: usize, j: usize| v[(k * t + s) * MAX_INSTANCES + j];
        let table: Vec<Vec<f32>> = (0..n)
            .map(|s| {
                (0..MAX_INSTANCES)
                    .map(|j| at(&iou_v, s, j) + at(&mass_v, s, j))
                    .collect()
            })
            .collect();
        for (s, j) in best_assignment(&table, n).into_iter().enumerate() {
            select[(k * t + s) * MAX_INSTANCES + j] = 1.0 / n as f32;
            stats.matched_iou += at(&iou_v, s, j) as f64;
            stats.matched += 1;
        }
        for s in 0..n {
            target[k * t + s] = 1.0;
        }
        if accepted_steps(&conf_v[k * t..(k + 1) * t]) == n {
            stats.counted_right += 1;
        }
    }
    let select = Tensor::<3>::from_data(TensorData::new(select, [b, t, MAX_INSTANCES]), &device);
    let target = Tensor::<2>::from_data(TensorData::new(target, [b, t]), &device);
    let attention_loss = (select.clone() * (mass + 1e-6).log().neg()).sum() / b as f64;
    let match_loss = (select * (iou.ones_like() - iou)).sum() / b as f64;
    let conf_loss = ((target.ones_like() - target) * conf.clone() - log_sigmoid(conf)).mean();
    let loss = match_loss + conf_loss + attention_loss;
    let total: f32 = loss.clone().detach().into_scalar();
    stats.loss = total as f64 * b as f64;
    Ok((loss, stats))
}

/// Instance segmentation on [`SceneSets`].
pub struct InstanceTask<'a> {
    sets: &'a SceneSets,
}

impl InstanceTask<'_> {
    fn batch(&self, split: usize, rows: &[usize], device: &Device) -> Result<InstanceBatch> {
        let scenes = rows
            .iter()
            .map(|&i| self.sets.scene(split, i))
            .collect::<Result<Vec<_>>>()?;
        Ok(instance_batch(&scenes, device))
    }
}

impl Task for InstanceTask<'_> {
    type Model = InstanceSegmenter;
    type Batch = InstanceBatch;
    type Stats = InstanceStats;
    type Carry = ();

    fn unit(&self) -> &'static str {
        "images"
    }
    fn train_len(&self) -> usize {
        self.sets.data().scenes[0]
    }
    fn valid_len(&self) -> usize {
        self.sets.data().scenes[1]
    }
    fn train_batch(
        &self,
        indices: &[usize],
        _seeds: SampleSeeds,
        device: &Device,
    ) -> Result<InstanceBatch> {
        self.batch(0, indices, device)
    }
    fn valid_batch(&self, indices: &[usize], device: &Device) -> Result<InstanceBatch> {
        self.batch(1, indices, device)
    }
    fn train_step(
        &self,
        model: &InstanceSegmenter,
        batch: InstanceBatch,
        _carry: (),
    ) -> Result<TrainOutput<InstanceStats, ()>> {
        let (loss, stats) = matching_loss(model, batch)?;
        Ok(TrainOutput::new(loss, stats))
    }
    fn valid_step(&self, model: &InstanceSegmenter, batch: InstanceBatch) -> Result<InstanceStats> {
        Ok(matching_loss(model, batch)?.1)
    }
    fn default_valid_batch_size(&self, train_batch_size: usize) -> usize {
        train_batch_size.clamp(1, 64)
    }
}

/// A labelling of a scene's pixels: 0 background, `k + 1` instance `k`.
pub type Labels = Vec<u8>;

/// What the network finds in one scene.
pub struct Found {
    /// The instances.
    pub labels: Labels,
    /// Each step's mask probabilities, `[T][4096]`.
    pub steps: Vec<Vec<f32>>,
    /// Steps accepted by the confidences.
    pub accepted: usize,
}

/// The network's instances of each scene.
pub fn predict_instances(
    model: &InstanceSegmenter,
    images: &[&[u8]],
    device: &Device,
) -> Result<Vec<Found>> {
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(64) {
        let b = chunk.len();
        let pixels: Vec<f32> = chunk
            .iter()
            .flat_map(|im| im.iter().map(|&p| p as f32 / 255.0))
            .collect();
        let x = Tensor::<4>::from_data(
            TensorData::new(pixels, [b, 1, SCENE_SIDE, SCENE_SIDE]),
            device,
        );
        let steps = model.forward(x)?;
        let (masks, conf) = (steps.masks, steps.confidence);
        let t = masks.dims()[1];
        let p = to_vec(sigmoid(masks))?;
        let c = to_vec(conf)?;
        for k in 0..b {
            let steps: Vec<Vec<f32>> = (0..t)
                .map(|s| p[(k * t + s) * PIXELS..(k * t + s + 1) * PIXELS].to_vec())
                .collect();
            let accepted = accepted_steps(&c[k * t..(k + 1) * t]);
            let mut labels = vec![0u8; PIXELS];
            for (i, l) in labels.iter_mut().enumerate() {
                let best = (0..accepted).max_by(|&a, &b| steps[a][i].total_cmp(&steps[b][i]));
                if let Some(s) = best {
                    if steps[s][i] > 0.5 {
                        *l = s as u8 + 1;
                    }
                }
            }
            out.push(Found {
                labels: relabel(&labels),
                steps,
                accepted,
            });
        }
    }
    Ok(out)
}

/// Renumbers the non-empty instances of `labels` 1, 2, ... in order of first appearance of
/// their number (empty ones vanish).
fn relabel(labels: &[u8]) -> Labels {
    let mut map = [0u8; 256];
    let mut ids: Vec<u8> = labels.iter().copied().filter(|&l| l != 0).collect();
    ids.sort_unstable();
    ids.dedup();
    for (k, &id) in ids.iter().enumerate() {
        map[id as usize] = k as u8 + 1;
    }
    labels.iter().map(|&l| map[l as usize]).collect()
}

/// Connected components (8-neighbourhood) of the pixels where `foreground` holds, smaller
/// ones than `min_size` dropped; labelled 1, 2, ... (at most 255).
pub fn connected_components(foreground: &[bool], side: usize, min_size: usize) -> Labels {
    let mut labels = vec![0u8; foreground.len()];
    let mut seen = vec![false; foreground.len()];
    let mut next = 1u16;
    for start in 0..foreground.len() {
        if !foreground[start] || seen[start] {
            continue;
        }
        let mut component = vec![start];
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(i) = stack.pop() {
            let (y, x) = ((i / side) as isize, (i % side) as isize);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (ny, nx) = (y + dy, x + dx);
                    if ny < 0 || nx < 0 || ny >= side as isize || nx >= side as isize {
                        continue;
                    }
                    let j = ny as usize * side + nx as usize;
                    if foreground[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                        component.push(j);
                    }
                }
            }
        }
        if component.len() >= min_size && next < 256 {
            for i in component {
                labels[i] = next as u8;
            }
            next += 1;
        }
    }
    labels
}

/// Dice `2|A∩B| / (|A| + |B|)` of instances `a` of `la` and `b` of `lb`, over pixels that count.
fn dice(la: &[u8], a: u8, lb: &[u8], b: u8, counts: &[bool]) -> f64 {
    let (mut both, mut na, mut nb) = (0usize, 0usize, 0usize);
    for i in 0..la.len() {
        if !counts[i] {
            continue;
        }
        let (ia, ib) = (la[i] == a, lb[i] == b);
        both += (ia && ib) as usize;
        na += ia as usize;
        nb += ib as usize;
    }
    if na + nb == 0 {
        0.0
    } else {
        2.0 * both as f64 / (na + nb) as f64
    }
}

fn instance_ids(l: &[u8], counts: &[bool]) -> Vec<u8> {
    let mut ids: Vec<u8> = l
        .iter()
        .zip(counts)
        .filter(|(&v, &c)| c && v != 0)
        .map(|(&v, _)| v)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Best dice of `la`'s instances in `lb`, averaged over `la`'s instances (1 when both are
/// empty, 0 when only `lb` is).
fn best_dice(la: &[u8], lb: &[u8], counts: &[bool]) -> f64 {
    let (ia, ib) = (instance_ids(la, counts), instance_ids(lb, counts));
    if ia.is_empty() {
        return if ib.is_empty() { 1.0 } else { 0.0 };
    }
    ia.iter()
        .map(|&a| {
            ib.iter()
                .map(|&b| dice(la, a, lb, b, counts))
                .fold(0.0, f64::max)
        })
        .sum::<f64>()
        / ia.len() as f64
}

/// Symmetric best dice, `DiC` of one scene: `(SBD, predicted count − true count)`. `truth` is
/// the scene's instance mask (255: ignored).
pub fn score_instances(truth: &[u8], predicted: &[u8]) -> (f64, i64) {
    let counts: Vec<bool> = truth.iter().map(|&m| m != IGNORE).collect();
    let sbd = best_dice(truth, predicted, &counts).min(best_dice(predicted, truth, &counts));
    let dic =
        instance_ids(predicted, &counts).len() as i64 - instance_ids(truth, &counts).len() as i64;
    (sbd, dic)
}

/// Averages of instance scores over some scenes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceScores {
    /// Scenes.
    pub scenes: usize,
    /// Mean symmetric best dice.
    pub sbd: f64,
    /// Mean `|DiC|`.
    pub abs_dic: f64,
    /// Share of scenes counted right.
    pub count_accuracy: f64,
}

/// Scores of one method on all test scenes and on those with and without overlap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodScores {
    /// The method.
    pub method: String,
    /// All test scenes.
    pub all: InstanceScores,
    /// Scenes where an item hides part of another.
    pub overlap: InstanceScores,
    /// Scenes where none does.
    pub no_overlap: InstanceScores,
}

#[derive(Default)]
struct Tally {
    n: [usize; 3],
    sbd: [f64; 3],
    dic: [f64; 3],
    right: [usize; 3],
}

impl Tally {
    fn add(&mut self, overlap: bool, (sbd, dic): (f64, i64)) {
        for g in [0, if overlap { 1 } else { 2 }] {
            self.n[g] += 1;
            self.sbd[g] += sbd;
            self.dic[g] += dic.unsigned_abs() as f64;
            self.right[g] += (dic == 0) as usize;
        }
    }
    fn scores(&self, method: &str) -> MethodScores {
        let s = |g: usize| {
            let n = self.n[g].max(1) as f64;
            InstanceScores {
                scenes: self.n[g],
                sbd: self.sbd[g] / n,
                abs_dic: self.dic[g] / n,
                count_accuracy: self.right[g] as f64 / n,
            }
        };
        MethodScores {
            method: method.into(),
            all: s(0),
            overlap: s(1),
            no_overlap: s(2),
        }
    }
}

/// What the test report holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceReport {
    /// Scenes: train, validation, test.
    pub scenes: [usize; 3],
    /// The recurrent network on the test scenes.
    pub model: MethodScores,
    /// On the validation scenes.
    pub valid: MethodScores,
    /// Connected components of the FCN's foreground, when a run was given.
    pub baseline: Option<MethodScores>,
    /// The baseline's smallest component size, chosen on validation SBD.
    pub baseline_min_size: Option<usize>,
    /// Trainable parameters.
    pub parameters: usize,
}

fn scenes_of(sets: &SceneSets, split: usize) -> Result<Vec<Scene>> {
    (0..sets.data().scenes[split])
        .map(|i| sets.scene(split, i))
        .collect()
}

fn score_model(
    model: &InstanceSegmenter,
    sets: &SceneSets,
    split: usize,
    device: &Device,
    pictures: Option<&Path>,
) -> Result<MethodScores> {
    let scenes = scenes_of(sets, split)?;
    let mut tally = Tally::default();
    for (c, chunk) in scenes.chunks(64).enumerate() {
        let images: Vec<&[u8]> = chunk.iter().map(|s| s.image.as_slice()).collect();
        for (
            k,
            Found {
                labels,
                steps,
                accepted,
            },
        ) in predict_instances(model, &images, device)?
            .into_iter()
            .enumerate()
        {
            let scene = &chunk[k];
            tally.add(
                sets.has_overlap(split, scene),
                score_instances(&scene.instance_mask, &labels),
            );
            let row = c * 64 + k;
            if let (Some(dir), true) = (pictures, row < PICTURES) {
                write_steps(
                    scene,
                    &labels,
                    &steps,
                    accepted,
                    &dir.join(format!("instances-{row}.png")),
                )?;
            }
        }
    }
    Ok(tally.scores("recurrent (ConvLSTM)"))
}

/// The connected-components baseline's scores on `split` for each of [`MIN_SIZES`].
fn score_components(
    fcn: &crate::models::vision::fcn::Fcn,
    sets: &SceneSets,
    split: usize,
    device: &Device,
) -> Result<Vec<MethodScores>> {
    let scenes = scenes_of(sets, split)?;
    let images: Vec<&[u8]> = scenes.iter().map(|s| s.image.as_slice()).collect();
    let classes = segment(fcn, &images, device)?;
    let mut tallies: Vec<Tally> = MIN_SIZES.iter().map(|_| Tally::default()).collect();
    for (scene, mask) in scenes.iter().zip(&classes) {
        let fg: Vec<bool> = mask.iter().map(|&c| c != 0).collect();
        let overlap = sets.has_overlap(split, scene);
        for (t, &min) in tallies.iter_mut().zip(&MIN_SIZES) {
            let labels = connected_components(&fg, SCENE_SIDE, min);
            t.add(overlap, score_instances(&scene.instance_mask, &labels));
        }
    }
    Ok(tallies
        .iter()
        .zip(&MIN_SIZES)
        .map(|(t, m)| t.scores(&format!("FCN foreground, connected components >= {m} px")))
        .collect())
}

fn instance_colour(l: u8) -> [u8; 3] {
    match l {
        0 => [0, 0, 0],
        IGNORE => [255, 255, 255],
        k => PALETTE[1 + (k as usize - 1) % (PALETTE.len() - 1)],
    }
}

/// One PNG: the scene, the true instances, the instances found, then each step's mask
/// probability (grey), steps past the stop darkened to a third.
pub fn write_steps(
    scene: &Scene,
    labels: &[u8],
    steps: &[Vec<f32>],
    accepted: usize,
    path: &Path,
) -> Result<()> {
    let (s, gap) = (SCENE_SIDE, 2);
    let n = 3 + steps.len();
    let mut img = image::RgbImage::from_pixel(
        (n * (s + gap) - gap) as u32,
        s as u32,
        image::Rgb([128, 128, 128]),
    );
    let mut panel = |k: usize, f: &dyn Fn(usize) -> [u8; 3]| {
        for i in 0..PIXELS {
            img.put_pixel(
                (k * (s + gap) + i % s) as u32,
                (i / s) as u32,
                image::Rgb(f(i)),
            );
        }
    };
    panel(0, &|i| [scene.image[i]; 3]);
    panel(1, &|i| instance_colour(scene.instance_mask[i]));
    panel(2, &|i| instance_colour(labels[i]));
    for (t, p) in steps.iter().enumerate() {
        let scale = if t < accepted { 255.0 } else { 85.0 };
        panel(3 + t, &|i| [(p[i] * scale) as u8; 3]);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    img.save(path)
        .map_err(|e| Error::bad_data(path, format!("cannot write PNG: {e}")))
}

/// Scores the network (and the baseline, with an FCN run) on the test scenes.
pub fn test_report(
    model: &InstanceSegmenter,
    run: &InstanceRun,
    sets: &SceneSets,
    dir: &Path,
    device: &Device,
) -> Result<InstanceReport> {
    let valid = score_model(model, sets, 1, device, None)?;
    let test = score_model(model, sets, 2, device, Some(&dir.join("report")))?;
    let (baseline, baseline_min_size) = match &run.baseline_fcn {
        Some(path) => {
            let (_, fcn) = load_fcn_run(path, device)?;
            let on_valid = score_components(&fcn, sets, 1, device)?;
            let best = (0..MIN_SIZES.len())
                .max_by(|&a, &b| on_valid[a].all.sbd.total_cmp(&on_valid[b].all.sbd))
                .unwrap_or(0);
            let on_test = score_components(&fcn, sets, 2, device)?;
            (Some(on_test[best].clone()), Some(MIN_SIZES[best]))
        }
        None => (None, None),
    };
    Ok(InstanceReport {
        scenes: sets.data().scenes,
        model: test,
        valid,
        baseline,
        baseline_min_size,
        parameters: model.num_params(),
    })
}

/// What starting a run asks for.
#[derive(Debug, Clone)]
pub struct InstanceRequest {
    /// The network.
    pub model: InstanceSegmenterConfig,
    /// The scenes.
    pub data: SegmentData,
    /// The FCN run of the baseline.
    pub baseline_fcn: Option<PathBuf>,
    /// Training settings.
    pub train: TrainConfig,
    /// The run directory.
    pub out: PathBuf,
}

/// What a finished run reports.
#[derive(Debug)]
pub struct InstanceOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// Test report.
    pub report: InstanceReport,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
}

fn train_in(
    run: &InstanceRun,
    sets: &SceneSets,
    dir: &Path,
    resume: Option<&crate::train::CheckpointMeta>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<InstanceOutcome> {
    let ad = device.clone().autodiff();
    ad.seed(run.train.seed);
    let model = run.model.init(&ad);
    let task = InstanceTask { sets };
    let json = serde_json::to_value(run).expect("run serializes");
    let fitted = fit(&task, model, &run.train, &json, dir, resume, &ad, observer)?;
    let model = fitted.model.valid();
    let report = test_report(&model, run, sets, dir, device)?;
    let json = serde_json::to_string_pretty(&report).expect("report serializes");
    write_atomic(
        &dir.join("report").join("instances_test.json"),
        json.as_bytes(),
    )?;
    Ok(InstanceOutcome {
        dir: dir.to_path_buf(),
        report,
        history: fitted.history,
    })
}

/// Creates the run directory of `req`, trains, tests and writes the report.
pub fn start_run(
    req: &InstanceRequest,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<InstanceOutcome> {
    req.train.validate()?;
    req.model.validate()?;
    if req.train.tbptt.is_some() {
        return Err(Error::invalid(
            "tbptt",
            "a scene's steps are few: the whole sequence is one window",
        ));
    }
    if req.model.max_steps <= req.data.items[1] {
        return Err(Error::invalid(
            "max_steps",
            format!(
                "{}: scenes hold up to {} items, and one more step is needed to say \"done\"",
                req.model.max_steps, req.data.items[1]
            ),
        ));
    }
    if let Some(path) = &req.baseline_fcn {
        load_fcn_run(path, device)?;
    }
    refuse_existing_run(&req.out)?;
    let sets = SceneSets::load(&req.data)?;
    let run = InstanceRun {
        task: TASK.into(),
        model: req.model.clone(),
        data: req.data.clone(),
        baseline_fcn: req.baseline_fcn.clone(),
        train: req.train.clone(),
        deepnet_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    create_run_dir_with_config(&req.out, &run)?;
    train_in(&run, &sets, &req.out, None, device, observer)
}

/// Continues the run in `dir` from its last checkpoint, up to `epochs` in all.
pub fn resume_run(
    dir: &Path,
    epochs: Option<usize>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<InstanceOutcome> {
    let (run, meta) = resume_config(
        dir,
        TASK,
        "instance segmentation",
        epochs,
        |r: &mut InstanceRun| &mut r.train,
    )?;
    let sets = SceneSets::load(&run.data)?;
    train_in(&run, &sets, dir, Some(&meta), device, observer)
}

/// The network of the instance run (or checkpoint) at `path`.
pub fn load_run(path: &Path, device: &Device) -> Result<(InstanceRun, InstanceSegmenter)> {
    let file = resolve_checkpoint(path)?;
    let meta = read_checkpoint_meta(&file)?;
    let run = InstanceRun::from_json(meta.run, &file)?;
    let model = load_weights(run.model.init(device), &file)?;
    Ok((run, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_assignment_is_found() {
        let iou = vec![
            vec![0.1, 0.9, 0.0, 0.0],
            vec![0.8, 0.7, 0.0, 0.0],
            vec![0.0, 0.0, 0.2, 0.3],
        ];
        // Greedy by step would give step 1 instance 0 anyway; the optimum is [1, 0, 2]
        // (0.9 + 0.8 + 0.2) for n = 3.
        assert_eq!(best_assignment(&iou, 3), vec![1, 0, 2]);
        assert_eq!(best_assignment(&iou, 0), Vec::<usize>::new());
        let iou = vec![vec![0.6, 0.5], vec![0.5, 0.0]];
        // Step 0 would greedily take instance 0 (0.6 + 0.0); the optimum swaps (0.5 + 0.5).
        assert_eq!(best_assignment(&iou, 2), vec![1, 0]);
    }

    #[test]
    fn components_and_dice() {
        // Two blobs touching diagonally are one 8-connected component; a lone pixel is
        // dropped at min size 2.
        let side = 4;
        let fg = [
            true, true, false, false, //
            true, false, false, false, //
            false, false, true, false, //
            false, false, false, false,
        ];
        // {(0,0), (0,1), (1,0)} and the lone (2,2).
        let l = connected_components(&fg, side, 1);
        assert_eq!(instance_ids(&l, &[true; 16]).len(), 2);
        let l2 = connected_components(&fg, side, 2);
        assert_eq!(instance_ids(&l2, &[true; 16]), vec![1]);
        let mut diag = fg;
        diag[5] = true; // (1,1) touches (2,2) diagonally
        assert_eq!(
            instance_ids(&connected_components(&diag, side, 1), &[true; 16]).len(),
            1
        );
        // SBD: perfect labelling scores 1, a merged one less, and DiC counts the difference.
        let truth = [1, 1, 0, 2, 2, 0, IGNORE, 0];
        assert_eq!(score_instances(&truth, &[1, 1, 0, 2, 2, 0, 0, 0]), (1.0, 0));
        let (sbd, dic) = score_instances(&truth, &[1, 1, 0, 1, 1, 0, 0, 0]);
        // Truth -> prediction: each instance's best dice 2·2/(2+4) = 2/3; the other way: the
        // one predicted instance's best is also 2/3.
        assert!((sbd - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(dic, -1);
        // Nothing found: SBD 0.
        assert_eq!(score_instances(&truth, &[0; 8]).0, 0.0);
    }

    #[test]
    fn the_matching_follows_the_attention_where_masks_are_alike() {
        let device = Device::flex();
        // Two items: A the top-left 32x32 quarter, B the top-right one.
        let mut truth = vec![0f32; MAX_INSTANCES * PIXELS];
        for i in 0..PIXELS {
            let (y, x) = (i / SCENE_SIDE, i % SCENE_SIDE);
            if y < 32 {
                truth[if x < 32 { i } else { PIXELS + i }] = 1.0;
            }
        }
        let batch = || InstanceBatch {
            images: Tensor::zeros([1, 1, SCENE_SIDE, SCENE_SIDE], &device),
            truth: Tensor::from_data(
                TensorData::new(truth.clone(), [1, MAX_INSTANCES, PIXELS]),
                &device,
            ),
            weight: Tensor::ones([1, PIXELS], &device),
            counts: vec![2],
        };
        // Every step's mask is the union of both items; steps 0 and 1 are confident.
        let union: Vec<f32> = (0..PIXELS)
            .map(|i| if i / SCENE_SIDE < 32 { 6.0 } else { -6.0 })
            .collect();
        let masks: Vec<f32> = (0..3).flat_map(|_| union.iter().copied()).collect();
        // Cells (16x16): row 2, column 2 lies in A, column 13 in B, row 12 in neither.
        let (in_a, in_b, outside) = (2 * 16 + 2, 2 * 16 + 13, 12 * 16 + 2);
        let steps = |looks: [usize; 3]| {
            let mut attention = vec![0f32; 3 * 256];
            for (t, &c) in looks.iter().enumerate() {
                attention[t * 256 + c] = 1.0;
            }
            InstanceSteps {
                masks: Tensor::from_data(TensorData::new(masks.clone(), [1, 3, 64, 64]), &device),
                confidence: Tensor::from_data(
                    TensorData::new(vec![6.0, 6.0, -6.0], [1, 3]),
                    &device,
                ),
                attention: Tensor::from_data(TensorData::new(attention, [1, 3, 256]), &device),
            }
        };
        let loss = |looks| -> f32 {
            loss_of_steps(steps(looks), batch())
                .unwrap()
                .0
                .into_scalar()
        };
        let (b_then_a, a_then_b) = (loss([in_b, in_a, outside]), loss([in_a, in_b, outside]));
        // Each step is matched to the item it looks at, so the order does not matter, and the
        // attention costs nothing: the loss is the union's (1 − IoU = 0.5) plus a small
        // confidence term.
        assert!(
            (b_then_a - a_then_b).abs() < 1e-5,
            "{b_then_a} vs {a_then_b}"
        );
        assert!((b_then_a - 0.5).abs() < 0.02, "{b_then_a}");
        // Looking at the same item twice, or at nothing, is punished.
        assert!(loss([in_a, in_a, outside]) > b_then_a + 5.0);
        assert!(loss([outside, in_b, outside]) > b_then_a + 5.0);
    }

    #[test]
    fn instances_are_the_visible_items() {
        let mask = [0, 1, 1, 3, IGNORE, 3];
        let inst = instances_of(&mask);
        assert_eq!(inst.len(), 2);
        assert_eq!(inst[1], vec![0.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(relabel(&[0, 4, 4, 2]), vec![0, 2, 2, 1]);
        assert_eq!(accepted_steps(&[1.0, 0.3, -0.1, 2.0]), 2);
    }
}
