//! Image captioning with soft attention (Xu et al. 2015, "Show, Attend and Tell") on
//! generated scenes of Fashion-MNIST items ([`crate::data::scenes`], grid layout), and its
//! Show-and-Tell baseline (Vinyals et al. 2015: no attention). `deepnet caption-train` and
//! `deepnet caption` are the functions of this file.
//!
//! **Encoder.** A zoo CNN from a deepnet run trained on Fashion-MNIST (by default the
//! transfer workflow's backbone: `deepnet train resnet20` on all ten classes), frozen: its last
//! feature map on the 64x64 scene (for ResNet-20, the last block's output, 64 channels at
//! 16x16), average-pooled to at most 8x8, gives `L ≤ 64` annotation vectors `a_i`. They are
//! computed once per scene, before training, since nothing upstream of them trains.
//!
//! **Decoder.** The [`AttentionDecoder`] (LSTM): with attention, every word reads a context
//! `z_t = Σ_i α_ti a_i` and the first state is `h_0 = tanh(W mean_i a_i + b)` (Xu et al.);
//! without (Show and Tell), the image vector `mean_i a_i`, projected, is the decoder's input
//! at a step before the start token and reaches the words only through the state
//! ([`SummaryUse`](crate::nn::SummaryUse); the CLI picks it for `--attention none`).
//!
//! **Targets.** A scene's captions are every phrasing of its clauses
//! ([`crate::data::scenes::captions`]); each epoch, a training scene's target is one of them,
//! drawn with the scene's seed. Scores on the test scenes use all of them as references.
//!
//! **Report.** Corpus BLEU-1..4 ([`crate::train::bleu`]), exact match (the output is one of
//! the references), accuracy of the named classes and of the relations (clause by clause, as
//! [`parse_caption`] reads them), for the most frequent training caption, Show-and-Tell and
//! soft attention; and where attention looks: for each generated class word naming an item the
//! scene holds once, the attention mass inside that item's 28x28 box, against the box's share
//! of the annotation grid.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::data::mnist::{ImageDataset, Normalization};
use crate::data::scenes::{
    captions, clauses, generate, parse_caption, Layout, Scene, SceneOptions, CELL_SIDE,
    CLASS_WORDS, ITEM_SIDE, SCENE_SIDE,
};
use crate::data::{FashionMnist, ImageData, SampleSeeds, Split};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::models::vision::{visit_model_with, ImageClassifier, ModelSpec, Trace, ZooVisitor};
use crate::models::CellType;
use crate::nn::{
    AttentionDecoder, AttentionDecoderConfig, AttentionKind, DecodeOptions, Hypothesis, Memory,
    SpecialTokens,
};
use crate::plot::attention_over_image;
use crate::tasks::classification::load_meta;
use crate::train::bleu::{corpus_bleu, Bleu};
use crate::train::checkpoint::{load_weights, read_checkpoint_meta, resolve_checkpoint};
use crate::train::run::{
    create_run_dir_with_config, extend_epochs, read_config, refuse_existing_run, write_config,
    CONFIG_FILE,
};
use crate::train::tokens::{token_loss, TargetTokens, TokenStats};
use crate::train::{fit, EpochRecord, Observer, Task, TrainConfig, TrainOutput};

/// The name of this task in `config.json`.
pub const TASK: &str = "caption";

/// Target id of padding.
pub const PAD: u32 = 0;
/// Target id of the start token.
pub const BOS: u32 = 1;
/// Target id of the end token.
pub const EOS: u32 = 2;

/// The caption grammar's words other than class names.
const GRAMMAR_WORDS: [&str; 9] = [
    "a", "one", "left", "right", "of", "above", "below", "under", "and",
];

/// Most words a caption may have (4 items: 3 clauses of 6 words and 2 "and").
const MAX_CAPTION_WORDS: usize = 24;

/// The most memory a split's annotation vectors may take (they are held for the whole run).
pub const MAX_ANNOTATION_BYTES: u64 = 8_000_000_000;

/// Longest side of the annotation grid.
pub const MAX_GRID: usize = 8;

/// The words of the vocabulary, ids 3, 4, ... (0, 1, 2: padding, start, end).
pub fn vocabulary() -> Vec<&'static str> {
    GRAMMAR_WORDS
        .iter()
        .chain(CLASS_WORDS.iter())
        .copied()
        .collect()
}

fn word_id(w: &str) -> Option<u32> {
    vocabulary()
        .iter()
        .position(|v| *v == w)
        .map(|i| i as u32 + 3)
}

fn word(id: u32) -> &'static str {
    id.checked_sub(3)
        .and_then(|i| vocabulary().get(i as usize).copied())
        .unwrap_or("?")
}

/// Where the scenes and the encoder come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionData {
    /// The Fashion-MNIST directory (items of training and validation scenes from its training
    /// split, of test scenes from its test split).
    pub fashion_mnist: PathBuf,
    /// The encoder: a deepnet run (or checkpoint) of a zoo CNN trained on grey 28x28 images.
    pub encoder: PathBuf,
    /// Scenes: training, validation, test.
    pub scenes: [usize; 3],
    /// Seed of the scenes (validation and test scenes use seeds derived from it).
    pub scene_seed: u64,
}

/// The contents of `config.json` of a captioning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionRun {
    /// The task (`caption`).
    pub task: String,
    /// The decoder.
    pub decoder: AttentionDecoderConfig,
    /// Scenes and encoder.
    pub data: CaptionData,
    /// The encoder's model name.
    pub encoder_model: String,
    /// Its normalisation of pixels.
    pub encoder_normalization: Normalization,
    /// Side of the annotation grid (`L = grid²`).
    pub grid: usize,
    /// Training settings.
    pub train: TrainConfig,
    /// deepnet version that wrote the run.
    pub deepnet_version: String,
}

impl CaptionRun {
    fn from_json(v: serde_json::Value, origin: &Path) -> Result<CaptionRun> {
        crate::train::run::task_config(v, origin, TASK, "captioning")
    }

    fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            tokens: SpecialTokens { bos: BOS, eos: EOS },
            max_len: MAX_CAPTION_WORDS,
            beam_width: 1,
            length_alpha: 1.0,
        }
    }
}

/// The frozen encoder: a zoo CNN's last feature map, pooled to a grid of at most 8x8.
pub struct Encoder {
    checkpoint: PathBuf,
    model: String,
    num_classes: usize,
    options: crate::models::vision::ModelOptions,
    /// Pixel normalisation of its training data.
    pub normalization: Normalization,
}

impl Encoder {
    /// The encoder of the classification run at `path`; an error unless it was trained on
    /// grey MNIST-format images.
    pub fn load(path: &Path) -> Result<Encoder> {
        let loaded = load_meta(path, None)?;
        let normalization = match &loaded.run.data {
            ImageData::Mnist(m) => m.normalization,
            ImageData::Folder(_) => {
                return Err(Error::invalid(
                    "encoder",
                    format!(
                        "{} was trained on an image folder; captioning reads grey scenes and needs a run trained on MNIST-format (grey) images",
                        path.display()
                    ),
                ))
            }
        };
        Ok(Encoder {
            checkpoint: loaded.path,
            model: loaded.run.model.clone(),
            num_classes: loaded.run.num_classes,
            options: loaded.run.model_options,
            normalization,
        })
    }

    /// Annotation vectors of `scenes` (grey 64x64 pixels each): `(values [N · L · D], L, D,
    /// grid side)`, computed in batches of 64 on `device`.
    pub fn annotate(
        &self,
        scenes: &[&[u8]],
        device: &Device,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Vec<f32>, usize, usize, usize)> {
        struct Run<'a> {
            e: &'a Encoder,
            scenes: &'a [&'a [u8]],
            device: &'a Device,
            progress: &'a mut dyn FnMut(usize, usize),
        }
        impl ZooVisitor for Run<'_> {
            type Output = Result<(Vec<f32>, usize, usize, usize)>;
            fn visit<M: ImageClassifier>(self, model: M, spec: &'static ModelSpec) -> Self::Output {
                crate::models::vision::check_input(spec, [1, SCENE_SIDE, SCENE_SIDE])?;
                let model = load_weights(model, &self.e.checkpoint)?;
                let mut out = Vec::new();
                let mut shape = (0, 0, 0);
                let n = self.scenes.len();
                for (k, chunk) in self.scenes.chunks(64).enumerate() {
                    let pixels: Vec<f32> = chunk
                        .iter()
                        .flat_map(|s| s.iter().map(|&p| self.e.normalization.apply(p)))
                        .collect();
                    let x = Tensor::<4>::from_data(
                        TensorData::new(pixels, [chunk.len(), 1, SCENE_SIDE, SCENE_SIDE]),
                        self.device,
                    );
                    let mut trace = Trace::capturing();
                    let _ = model.forward_traced(x, &mut trace);
                    let (_, maps) = trace
                        .into_captures()
                        .into_iter()
                        .rfind(|(_, t)| t.dims()[2] > 1)
                        .ok_or_else(|| {
                            Error::invalid("encoder", format!("{} has no feature map", spec.name))
                        })?;
                    let [b, d, h, _] = maps.dims();
                    let factor = h.div_ceil(MAX_GRID);
                    let maps = if factor > 1 {
                        // Average pooling by `factor` (the last rows and columns that do not
                        // fill a window are dropped).
                        let g = h / factor;
                        let w = maps.dims()[3] / factor;
                        maps.narrow(2, 0, g * factor)
                            .narrow(3, 0, w * factor)
                            .reshape([b, d, g, factor, w, factor])
                            .mean_dim(5)
                            .mean_dim(3)
                            .reshape([b, d, g, w])
                    } else {
                        maps
                    };
                    let [_, _, g, w] = maps.dims();
                    // [B, D, g, g] -> [B, g·g, D]: one annotation vector per grid cell.
                    let a = maps.reshape([b, d, g * w]).swap_dims(1, 2);
                    shape = (g * w, d, g);
                    let bytes = n as u64 * (g * w * d) as u64 * 4;
                    if k == 0 && bytes > MAX_ANNOTATION_BYTES {
                        return Err(Error::invalid(
                            "scenes",
                            format!(
                                "{n} scenes of {} annotation vectors of {d} features would take {:.1} GB of memory; the limit is {} GB: use fewer scenes",
                                g * w,
                                bytes as f64 / 1e9,
                                MAX_ANNOTATION_BYTES / 1_000_000_000
                            ),
                        ));
                    }
                    out.extend(
                        a.into_data()
                            .convert::<f32>()
                            .try_to_vec::<f32>()
                            .map_err(|e| Error::invalid("encoder", format!("{e:?}")))?,
                    );
                    (self.progress)(((k + 1) * 64).min(n), n);
                }
                Ok((out, shape.0, shape.1, shape.2))
            }
        }
        visit_model_with(
            &self.model,
            self.num_classes,
            self.options,
            &device.clone().without_autodiff(),
            Run {
                e: self,
                scenes,
                device,
                progress,
            },
        )?
    }
}

/// Scenes of one split with their annotations.
pub struct SceneSet {
    /// The scenes.
    pub scenes: Vec<Scene>,
    /// Annotation vectors, `[N, L, D]` flattened.
    pub annotations: Vec<f32>,
    /// Each scene's captions.
    pub captions: Vec<Vec<String>>,
}

/// The three splits, annotated.
pub struct Prepared {
    /// Training, validation, test.
    pub sets: [SceneSet; 3],
    /// Annotation vectors per scene.
    pub positions: usize,
    /// Features per annotation vector.
    pub features: usize,
    /// Side of the annotation grid.
    pub grid: usize,
}

/// The scene options of captioning.
pub const SCENES: SceneOptions = SceneOptions {
    layout: Layout::Grid,
    min_items: 1,
    max_items: 4,
};

impl Prepared {
    /// Generates the scenes of `data` and runs the encoder over them.
    pub fn build(
        data: &CaptionData,
        encoder: &Encoder,
        device: &Device,
        progress: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<Prepared> {
        if data.scenes.contains(&0) || data.scenes.iter().any(|&n| n > 1_000_000) {
            return Err(Error::invalid(
                "scenes",
                format!("{:?}: each split needs 1 to 1,000,000 scenes", data.scenes),
            ));
        }
        let train_items = FashionMnist::load(&data.fashion_mnist, Split::Train)?;
        let test_items = FashionMnist::load(&data.fashion_mnist, Split::Test)?;
        let seeds = [
            data.scene_seed,
            data.scene_seed ^ 0x7661_6c69_6400,
            data.scene_seed ^ 0x7465_7374_0000,
        ];
        let sources: [&ImageDataset; 3] = [&train_items, &train_items, &test_items];
        let names = ["training scenes", "validation scenes", "test scenes"];
        let mut sets = Vec::new();
        let mut dims = (0, 0, 0);
        for split in 0..3 {
            let scenes: Vec<Scene> = (0..data.scenes[split])
                .map(|i| generate(sources[split], &SCENES, seeds[split], i))
                .collect::<Result<_>>()?;
            let pixels: Vec<&[u8]> = scenes.iter().map(|s| s.image.as_slice()).collect();
            let (annotations, l, d, g) = encoder.annotate(&pixels, device, &mut |done, n| {
                progress(names[split], done, n)
            })?;
            dims = (l, d, g);
            sets.push(SceneSet {
                captions: scenes.iter().map(captions).collect(),
                scenes,
                annotations,
            });
        }
        let sets: [SceneSet; 3] = sets
            .try_into()
            .map_err(|_| Error::invalid("scenes", "three splits"))?;
        Ok(Prepared {
            sets,
            positions: dims.0,
            features: dims.1,
            grid: dims.2,
        })
    }

    fn memory_values(&self, split: usize, rows: &[usize], device: &Device) -> Tensor<3> {
        let (l, d) = (self.positions, self.features);
        let mut v = Vec::with_capacity(rows.len() * l * d);
        for &i in rows {
            v.extend_from_slice(&self.sets[split].annotations[i * l * d..(i + 1) * l * d]);
        }
        Tensor::from_data(TensorData::new(v, [rows.len(), l, d]), device)
    }
}

/// A teacher-forcing batch of scenes.
pub struct CaptionBatch {
    /// Annotation vectors `[B, L, D]`.
    pub annotations: Tensor<3>,
    /// The captions' words: decoder inputs, targets, mask.
    pub targets: TargetTokens,
}

fn caption_ids(c: &str) -> Vec<u32> {
    c.split_whitespace()
        .map(|w| word_id(w).expect("the grammar's words are in the vocabulary"))
        .collect()
}

fn caption_batch(annotations: Tensor<3>, captions: &[Vec<u32>], device: &Device) -> CaptionBatch {
    let words: Vec<&[u32]> = captions.iter().map(Vec::as_slice).collect();
    CaptionBatch {
        annotations,
        targets: TargetTokens::new(&words, BOS, EOS, PAD, device),
    }
}

/// The decoder's memory and first state for annotations `[B, L, D]`.
fn memory_of(
    decoder: &AttentionDecoder,
    annotations: Tensor<3>,
) -> Result<(Memory, crate::nn::DecoderState)> {
    let [b, l, d] = annotations.dims();
    let summary = annotations.clone().mean_dim(1).reshape([b, d]); // [B, D]
    let state = decoder.initial_state(summary);
    let memory = match &decoder.attention {
        Some(a) => a.memory(annotations, None)?,
        None => Memory {
            keys: annotations.clone(),
            mask: Tensor::zeros([b, l], &annotations.device()),
            values: annotations,
            lengths: vec![l; b],
        },
    };
    Ok((memory, state))
}

fn caption_loss(
    decoder: &AttentionDecoder,
    batch: CaptionBatch,
) -> Result<(Tensor<1>, TokenStats)> {
    let (memory, state) = memory_of(decoder, batch.annotations)?;
    let logits = decoder.teacher_forced(batch.targets.inputs.clone(), state, &memory); // [B, T, V]
    Ok(token_loss(logits, batch.targets))
}

/// Captioning on [`Prepared`] scenes.
pub struct CaptionTask<'a> {
    data: &'a Prepared,
}

impl Task for CaptionTask<'_> {
    type Model = AttentionDecoder;
    type Batch = CaptionBatch;
    type Stats = TokenStats;
    type Carry = ();

    fn unit(&self) -> &'static str {
        "words"
    }
    fn train_len(&self) -> usize {
        self.data.sets[0].scenes.len()
    }
    fn valid_len(&self) -> usize {
        self.data.sets[1].scenes.len()
    }
    /// Each scene's target: one of its captions, drawn with the scene's seed of the epoch.
    fn train_batch(
        &self,
        indices: &[usize],
        seeds: SampleSeeds,
        device: &Device,
    ) -> Result<CaptionBatch> {
        let targets: Vec<Vec<u32>> = indices
            .iter()
            .map(|&i| {
                let caps = &self.data.sets[0].captions[i];
                caption_ids(&caps[seeds.rng(i).random_range(0..caps.len())])
            })
            .collect();
        Ok(caption_batch(
            self.data.memory_values(0, indices, device),
            &targets,
            device,
        ))
    }
    fn valid_batch(&self, indices: &[usize], device: &Device) -> Result<CaptionBatch> {
        let targets: Vec<Vec<u32>> = indices
            .iter()
            .map(|&i| caption_ids(&self.data.sets[1].captions[i][0]))
            .collect();
        Ok(caption_batch(
            self.data.memory_values(1, indices, device),
            &targets,
            device,
        ))
    }
    fn train_step(
        &self,
        model: &AttentionDecoder,
        batch: CaptionBatch,
        _carry: (),
    ) -> Result<TrainOutput<TokenStats, ()>> {
        let (loss, stats) = caption_loss(model, batch)?;
        Ok(TrainOutput::new(loss, stats))
    }
    fn valid_step(&self, model: &AttentionDecoder, batch: CaptionBatch) -> Result<TokenStats> {
        Ok(caption_loss(model, batch)?.1)
    }
    fn default_valid_batch_size(&self, _train_batch_size: usize) -> usize {
        256
    }
}

/// Scores of one captioner on the test scenes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionScores {
    /// What produced the captions.
    pub method: String,
    /// Corpus BLEU against all captions of each scene.
    pub bleu: Bleu,
    /// Outputs equal to one of the scene's captions.
    pub exact_match: f64,
    /// Class slots named right, clause by clause.
    pub class_accuracy: f64,
    /// Relations right, clause by clause.
    pub relation_accuracy: f64,
}

/// Scores `outputs` (one caption per scene) against the scenes of `set`.
pub fn score_captions(method: &str, outputs: &[String], set: &SceneSet) -> CaptionScores {
    let bleu = corpus_bleu(outputs, &set.captions);
    let mut exact = 0;
    let (mut class_right, mut class_slots) = (0usize, 0usize);
    let (mut rel_right, mut rel_slots) = (0usize, 0usize);
    for ((out, caps), scene) in outputs.iter().zip(&set.captions).zip(&set.scenes) {
        exact += usize::from(caps.contains(out));
        let truth = clauses(scene);
        let said = parse_caption(out);
        let n = truth.len().max(said.len());
        for k in 0..n {
            let t = truth.get(k);
            let s = said.get(k).copied().flatten();
            let slots = |c: Option<&crate::data::scenes::Clause>| match c {
                Some(c) => 1 + usize::from(c.relation.is_some()),
                None => 0,
            };
            class_slots += slots(t).max(slots(s.as_ref()));
            rel_slots += usize::from(
                t.is_some_and(|c| c.relation.is_some()) || s.is_some_and(|c| c.relation.is_some()),
            );
            if let (Some(t), Some(s)) = (t, s) {
                class_right += usize::from(t.first == s.first);
                if let (Some((tr, tc)), Some((sr, sc))) = (t.relation, s.relation) {
                    class_right += usize::from(tc == sc);
                    rel_right += usize::from(tr == sr);
                }
            }
        }
    }
    let n = outputs.len().max(1) as f64;
    CaptionScores {
        method: method.to_string(),
        bleu,
        exact_match: exact as f64 / n,
        class_accuracy: class_right as f64 / class_slots.max(1) as f64,
        relation_accuracy: rel_right as f64 / rel_slots.max(1) as f64,
    }
}

/// Where the attention went, over the test scenes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttentionPlacement {
    /// Class words scored (naming an item the scene holds exactly once).
    pub words: usize,
    /// Mean attention mass inside the named item's box.
    pub mass_in_box: f64,
    /// Mean share of the grid cells inside that box (what uniform attention would put there).
    pub box_share: f64,
}

/// Grid cells whose centre lies inside the 28x28 box at `(x, y)`.
fn cells_in_box(x: usize, y: usize, grid: usize) -> Vec<usize> {
    let step = SCENE_SIDE as f64 / grid as f64;
    let mut out = Vec::new();
    for r in 0..grid {
        for c in 0..grid {
            let (cx, cy) = ((c as f64 + 0.5) * step, (r as f64 + 0.5) * step);
            if cx >= x as f64
                && cx < (x + ITEM_SIDE) as f64
                && cy >= y as f64
                && cy < (y + ITEM_SIDE) as f64
            {
                out.push(r * grid + c);
            }
        }
    }
    out
}

fn placement(hyps: &[Hypothesis], scenes: &[Scene], grid: usize) -> AttentionPlacement {
    let mut p = AttentionPlacement::default();
    for (h, scene) in hyps.iter().zip(scenes) {
        for (step, &token) in h.tokens.iter().enumerate() {
            let Some(class) = CLASS_WORDS.iter().position(|c| *c == word(token)) else {
                continue;
            };
            let named: Vec<_> = scene
                .items
                .iter()
                .filter(|it| it.class as usize == class)
                .collect();
            if named.len() != 1 || step >= h.weights.len() {
                continue;
            }
            let cells = cells_in_box(named[0].x, named[0].y, grid);
            let w = &h.weights[step];
            p.mass_in_box += cells.iter().map(|&c| w[c] as f64).sum::<f64>();
            p.box_share += cells.len() as f64 / (grid * grid) as f64;
            p.words += 1;
        }
    }
    if p.words > 0 {
        p.mass_in_box /= p.words as f64;
        p.box_share /= p.words as f64;
    }
    p
}

/// The test report of a captioning run (`report/caption_test.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionReport {
    /// The decoder's attention.
    pub attention: AttentionKind,
    /// Scenes: train, validation, test.
    pub scenes: [usize; 3],
    /// The most frequent training caption, said of every test scene.
    pub most_frequent_caption: String,
    /// Its scores.
    pub baseline: CaptionScores,
    /// The run's decoder, greedy.
    pub model: CaptionScores,
    /// Validation scores of the run's decoder.
    pub valid: CaptionScores,
    /// Where attention went (with attention).
    pub placement: Option<AttentionPlacement>,
    /// The first test scenes: captions said and their references.
    pub examples: Vec<(String, Vec<String>)>,
}

/// Greedy captions of the scenes `rows` of split `split`.
fn caption_rows(
    decoder: &AttentionDecoder,
    data: &Prepared,
    split: usize,
    run: &CaptionRun,
    device: &Device,
) -> Result<Vec<Hypothesis>> {
    let n = data.sets[split].scenes.len();
    let mut out = Vec::with_capacity(n);
    let rows: Vec<usize> = (0..n).collect();
    for chunk in rows.chunks(256) {
        let (memory, state) = memory_of(decoder, data.memory_values(split, chunk, device))?;
        out.extend(decoder.greedy(state, &memory, &run.decode_options())?);
    }
    Ok(out)
}

fn text(h: &Hypothesis) -> String {
    h.tokens
        .iter()
        .map(|&t| word(t))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Scores the decoder and the most-frequent-caption baseline on the test scenes.
pub fn test_report(
    decoder: &AttentionDecoder,
    data: &Prepared,
    run: &CaptionRun,
    device: &Device,
) -> Result<(CaptionReport, Vec<Hypothesis>)> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for caps in &data.sets[0].captions {
        for c in caps {
            *counts.entry(c.as_str()).or_default() += 1;
        }
    }
    let most_frequent = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    let test = &data.sets[2];
    let baseline = score_captions(
        "most frequent caption",
        &vec![most_frequent.clone(); test.scenes.len()],
        test,
    );
    let hyps = caption_rows(decoder, data, 2, run, device)?;
    let outputs: Vec<String> = hyps.iter().map(text).collect();
    let name = match decoder.kind() {
        AttentionKind::None => "Show and Tell (no attention)",
        _ => "soft attention",
    };
    let model = score_captions(name, &outputs, test);
    let valid_hyps = caption_rows(decoder, data, 1, run, device)?;
    let valid = score_captions(
        name,
        &valid_hyps.iter().map(text).collect::<Vec<_>>(),
        &data.sets[1],
    );
    let placement =
        (decoder.kind() != AttentionKind::None).then(|| placement(&hyps, &test.scenes, data.grid));
    let report = CaptionReport {
        attention: decoder.kind(),
        scenes: [
            data.sets[0].scenes.len(),
            data.sets[1].scenes.len(),
            test.scenes.len(),
        ],
        most_frequent_caption: most_frequent,
        baseline,
        model,
        valid,
        placement,
        examples: outputs
            .iter()
            .zip(&test.captions)
            .take(12)
            .map(|(o, c)| (o.clone(), c.clone()))
            .collect(),
    };
    Ok((report, hyps))
}

/// Draws a scene with each word's attention over it (see [`attention_over_image`]): the
/// scene alone, then one panel per word of `h`, the end token's included.
pub fn attention_over_scene(scene: &[u8], h: &Hypothesis, grid: usize, path: &Path) -> Result<()> {
    let mut labels: Vec<String> = h.tokens.iter().map(|&t| word(t).to_string()).collect();
    if h.finished {
        labels.push("</s>".into());
    }
    attention_over_image(scene, SCENE_SIDE, &labels, &h.weights, grid, path)
}

/// Writes `report/caption_test.json`, three example scenes with their attention
/// (`report/attention-N.png`, with attention) and the scenes' PNGs with masks
/// (`report/scenes/`).
pub fn write_report(
    dir: &Path,
    report: &CaptionReport,
    hyps: &[Hypothesis],
    data: &Prepared,
) -> Result<()> {
    let out = dir.join("report");
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    for (i, scene) in data.sets[2].scenes.iter().take(3).enumerate() {
        scene.write_pngs(&out.join("scenes"), &format!("test-{i}"))?;
        if report.attention != AttentionKind::None {
            attention_over_scene(
                &scene.image,
                &hyps[i],
                data.grid,
                &out.join(format!("attention-{}.png", i + 1)),
            )?;
        }
    }
    let json = serde_json::to_string_pretty(report).expect("report serializes");
    write_atomic(&out.join("caption_test.json"), json.as_bytes())
}

/// What starting a captioning run asks for.
#[derive(Debug, Clone)]
pub struct CaptionRequest {
    /// The decoder (vocabulary and memory sizes are filled in).
    pub decoder: AttentionDecoderConfig,
    /// Scenes and encoder.
    pub data: CaptionData,
    /// Training settings.
    pub train: TrainConfig,
    /// The run directory.
    pub out: PathBuf,
}

/// What a finished run reports.
#[derive(Debug)]
pub struct CaptionOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// The run's configuration.
    pub run: CaptionRun,
    /// Test report.
    pub report: CaptionReport,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
}

fn train_in(
    run: &CaptionRun,
    prepared: &Prepared,
    dir: &Path,
    resume: Option<&crate::train::CheckpointMeta>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<CaptionOutcome> {
    let ad = device.clone().autodiff();
    ad.seed(run.train.seed);
    let model = run.decoder.init(&ad);
    let task = CaptionTask { data: prepared };
    let json = serde_json::to_value(run).expect("run serializes");
    let fitted = fit(&task, model, &run.train, &json, dir, resume, &ad, observer)?;
    let decoder = fitted.model.valid();
    let (report, hyps) = test_report(&decoder, prepared, run, device)?;
    write_report(dir, &report, &hyps, prepared)?;
    Ok(CaptionOutcome {
        dir: dir.to_path_buf(),
        run: run.clone(),
        report,
        history: fitted.history,
    })
}

/// Generates and annotates the scenes, creates the run directory of `req`, trains the
/// decoder, tests and writes the report. `progress` hears of the encoder's passes.
pub fn start_run(
    req: &CaptionRequest,
    device: &Device,
    observer: &mut dyn Observer,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<CaptionOutcome> {
    req.train.validate()?;
    if req.train.tbptt.is_some() {
        return Err(Error::invalid(
            "tbptt",
            "captions are short: there is nothing to truncate",
        ));
    }
    refuse_existing_run(&req.out)?;
    let encoder = Encoder::load(&req.data.encoder)?;
    let prepared = Prepared::build(&req.data, &encoder, device, progress)?;
    req.decoder.validate()?;
    let decoder = AttentionDecoderConfig {
        vocab_size: 3 + vocabulary().len(),
        memory_size: prepared.features,
        summary_size: prepared.features,
        cell: CellType::Lstm,
        ..req.decoder.clone()
    };
    let run = CaptionRun {
        task: TASK.into(),
        decoder,
        data: req.data.clone(),
        encoder_model: encoder.model.clone(),
        encoder_normalization: encoder.normalization,
        grid: prepared.grid,
        train: req.train.clone(),
        deepnet_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    create_run_dir_with_config(&req.out, &run)?;
    train_in(&run, &prepared, &req.out, None, device, observer)
}

/// Continues the captioning run in `dir` from its last checkpoint, up to `epochs` in all.
pub fn resume_run(
    dir: &Path,
    epochs: Option<usize>,
    device: &Device,
    observer: &mut dyn Observer,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<CaptionOutcome> {
    let config_path = dir.join(CONFIG_FILE);
    let mut run = CaptionRun::from_json(read_config(dir)?, &config_path)?;
    crate::train::run::lock_run_dir(dir)?;
    let ckpt = resolve_checkpoint(dir)?;
    let meta = read_checkpoint_meta(&ckpt)?;
    extend_epochs(&mut run.train, epochs, meta.state.epoch)?;
    let encoder = Encoder::load(&run.data.encoder)?;
    let prepared = Prepared::build(&run.data, &encoder, device, progress)?;
    write_config(dir, &serde_json::to_value(&run).expect("run serializes"))?;
    train_in(&run, &prepared, dir, Some(&meta), device, observer)
}

/// A trained captioner with its encoder, ready to use.
pub struct Captioner {
    /// The run's configuration.
    pub run: CaptionRun,
    encoder: Encoder,
    decoder: AttentionDecoder,
    device: Device,
}

impl Captioner {
    /// Loads the captioning run at `path` and its encoder on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Captioner> {
        let file = resolve_checkpoint(path)?;
        let meta = read_checkpoint_meta(&file)?;
        let run = CaptionRun::from_json(meta.run, &file)?;
        let decoder = load_weights(run.decoder.init(device), &file)?;
        let encoder = Encoder::load(&run.data.encoder)?;
        Ok(Captioner {
            run,
            encoder,
            decoder,
            device: device.clone(),
        })
    }

    /// The caption of a grey 64x64 scene (pixels row-major), with each word's attention.
    pub fn caption(&self, pixels: &[u8]) -> Result<Hypothesis> {
        if pixels.len() != SCENE_SIDE * SCENE_SIDE {
            return Err(Error::invalid("image", "a scene is 64x64 grey pixels"));
        }
        let (a, l, d, _) = self
            .encoder
            .annotate(&[pixels], &self.device, &mut |_, _| {})?;
        let annotations = Tensor::<3>::from_data(TensorData::new(a, [1, l, d]), &self.device);
        let (memory, state) = memory_of(&self.decoder, annotations)?;
        Ok(self
            .decoder
            .greedy(state, &memory, &self.run.decode_options())?
            .remove(0))
    }

    /// The words of a caption.
    pub fn words(h: &Hypothesis) -> String {
        text(h)
    }
}

/// Reads a scene PNG: 64x64 and grey, else an error naming what it is.
pub fn read_scene_png(path: &Path) -> Result<Vec<u8>> {
    let bytes = crate::io::read_file(path, crate::io::Limit::IMAGE)?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| Error::bad_data(path, format!("not a readable image: {e}")))?;
    if img.width() as usize != SCENE_SIDE || img.height() as usize != SCENE_SIDE {
        return Err(Error::bad_data(
            path,
            format!("is {}x{}; a scene is 64x64", img.width(), img.height()),
        ));
    }
    if img.color().has_color() {
        return Err(Error::bad_data(path, "is a colour image; scenes are grey"));
    }
    Ok(img.to_luma8().into_raw())
}

const _: () = assert!(CELL_SIDE * 2 == SCENE_SIDE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_covers_every_caption_word() {
        for w in GRAMMAR_WORDS.iter().chain(CLASS_WORDS.iter()) {
            assert_eq!(word(word_id(w).unwrap()), *w);
        }
        assert_eq!(word(EOS), "?");
    }

    #[test]
    fn boxes_cover_their_cells() {
        // An 8x8 grid has cell centres at 4, 12, ..., 60. A box at the corner covers the
        // centres 4, 12, 20 in each axis; one at (36, 36) covers 36, 44, 52, 60.
        assert_eq!(cells_in_box(0, 0, 8).len(), 9);
        let far = cells_in_box(36, 36, 8);
        assert_eq!(far.len(), 16);
        assert!(far.contains(&63) && !far.contains(&0));
    }
}
