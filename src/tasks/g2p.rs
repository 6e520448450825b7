//! Grapheme to phoneme (many-to-many, "translation"): a word's letters to its ARPAbet
//! pronunciation, learned from CMUdict by a [`Seq2Seq`] network (bidirectional encoder over
//! letters, attention decoder over phonemes) trained by the one loop with teacher forcing.
//! `deepnet translate-train` and `deepnet translate` are the functions of this file.
//!
//! Data ([`crate::data::text::cmudict`]): stress stripped, punctuation entries dropped, a
//! seeded split by word, so all pronunciations of a word fall in one split. Every (word,
//! pronunciation) pair is a training item; a decoded word is right when it equals any of its
//! pronunciations.
//!
//! The test report decodes every test word greedily and by beam search and gives:
//!
//! - **WER**, word error rate: the share of words whose output equals none of their
//!   pronunciations;
//! - **PER**, phoneme error rate: `Σ edits / Σ reference length` over the words, each word
//!   against the pronunciation closest to the output (Levenshtein distance over phonemes).
//!
//! Batches group words of similar length (a seeded shuffle, sorted by length in pools of 50
//! batches, the batches shuffled), so little of a batch is padding.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::data::batch::rng;
use crate::data::text::cmudict::{CmuDict, CmuSkipped, WordEntry, PHONEMES};
use crate::data::SampleSeeds;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::models::{Seq2Seq, Seq2SeqConfig};
use crate::nn::{AttentionKind, DecodeOptions, Hypothesis, SpecialTokens};
use crate::plot::{heatmaps, Heatmap};
use crate::train::checkpoint::{load_weights, read_checkpoint_meta, resolve_checkpoint};
use crate::train::run::{
    create_run_dir_with_config, extend_epochs, read_config, refuse_existing_run, write_config,
    CONFIG_FILE,
};
use crate::train::tokens::{token_loss, TargetTokens, TokenStats};
use crate::train::{fit, EpochRecord, Observer, Task, TrainConfig, TrainOutput};

/// The name of this task in `config.json`.
pub const TASK: &str = "g2p";

/// The letters of a word, source ids 1, 2, ... (0 pads).
pub const LETTERS: &str = "abcdefghijklmnopqrstuvwxyz'";

/// Target id of padding.
pub const PAD: u32 = 0;
/// Target id of the start token.
pub const BOS: u32 = 1;
/// Target id of the end token.
pub const EOS: u32 = 2;
/// Target id of `PHONEMES[0]`; the others follow.
const FIRST_PHONEME: u32 = 3;

/// Longest word `deepnet translate` takes, in letters, whatever the run saw.
pub const MAX_WORD_LETTERS: usize = 64;

/// Words whose attention the report draws.
pub const HEATMAP_WORDS: [&str; 4] = ["photograph", "knight", "queueing", "thought"];

/// Source ids of the letters of `word` (lower-cased); an error names a character outside
/// [`LETTERS`].
pub fn encode_word(word: &str) -> Result<Vec<u32>> {
    let lower = word.to_lowercase();
    lower
        .chars()
        .map(|c| {
            LETTERS
                .find(c)
                .map(|i| i as u32 + 1)
                .ok_or_else(|| {
                    Error::invalid(
                        "word",
                        format!(
                            "'{word}' has the character {c:?}; words are letters a-z and the apostrophe"
                        ),
                    )
                })
        })
        .collect()
}

/// Target ids of phonemes.
fn encode_phonemes(phonemes: &[String]) -> Vec<u32> {
    phonemes
        .iter()
        .map(|p| {
            FIRST_PHONEME
                + PHONEMES
                    .iter()
                    .position(|q| q == p)
                    .expect("the reader keeps only the 39 phonemes") as u32
        })
        .collect()
}

/// The phoneme of target id `id`, `?` for a special id.
pub fn phoneme(id: u32) -> &'static str {
    id.checked_sub(FIRST_PHONEME)
        .and_then(|i| PHONEMES.get(i as usize))
        .copied()
        .unwrap_or("?")
}

/// Where a G2P run's dictionary comes from and how it is split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct G2pData {
    /// A file in CMUdict format.
    pub file: PathBuf,
    /// Seed of the split by word.
    pub split_seed: u64,
    /// Fraction of the words held out for validation.
    pub valid_fraction: f64,
    /// Fraction of the words held out for the test report.
    pub test_fraction: f64,
}

/// The contents of `config.json` of a G2P run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct G2pRun {
    /// The task (`g2p`).
    pub task: String,
    /// The network.
    pub model: Seq2SeqConfig,
    /// The dictionary.
    pub data: G2pData,
    /// Training settings.
    pub train: TrainConfig,
    /// What reading the dictionary left out.
    pub skipped: CmuSkipped,
    /// Longest training word, in letters.
    pub max_word_len: usize,
    /// Longest training pronunciation, in phonemes.
    pub max_pron_len: usize,
    /// Beam width of the report.
    pub beam_width: usize,
    /// Length normalisation of the report's beam search.
    pub length_alpha: f32,
    /// deepnet version that wrote the run.
    pub deepnet_version: String,
}

impl G2pRun {
    fn from_json(v: serde_json::Value, origin: &Path) -> Result<G2pRun> {
        crate::train::run::task_config(v, origin, TASK, "grapheme-to-phoneme")
    }

    /// How the run decodes: its beam width and limits.
    pub fn decode_options(&self, beam_width: usize) -> DecodeOptions {
        DecodeOptions {
            tokens: SpecialTokens { bos: BOS, eos: EOS },
            max_len: self.max_pron_len + 5,
            beam_width,
            length_alpha: self.length_alpha,
        }
    }
}

/// One (word, pronunciation) pair as ids.
#[derive(Debug, Clone)]
struct Pair {
    letters: Vec<u32>,
    phonemes: Vec<u32>,
}

/// A teacher-forcing batch.
pub struct G2pBatch {
    /// Letters `[B, S]`, padded with 0.
    pub source: Tensor<2, Int>,
    /// Letters of each row.
    pub lengths: Vec<usize>,
    /// The phonemes: decoder inputs, targets, mask.
    pub targets: TargetTokens,
}

impl G2pBatch {
    fn new(pairs: &[&Pair], device: &Device) -> G2pBatch {
        let letters: Vec<&[u32]> = pairs.iter().map(|p| p.letters.as_slice()).collect();
        let phonemes: Vec<&[u32]> = pairs.iter().map(|p| p.phonemes.as_slice()).collect();
        let (source, lengths) = source_batch(&letters, device);
        G2pBatch {
            source,
            lengths,
            targets: TargetTokens::new(&phonemes, BOS, EOS, PAD, device),
        }
    }
}

/// The teacher-forced loss of `batch`: the mean cross-entropy per target token (padding
/// excluded), with the batch's statistics.
pub fn sequence_loss(model: &Seq2Seq, batch: G2pBatch) -> Result<(Tensor<1>, TokenStats)> {
    let logits = model.forward(batch.source, &batch.lengths, batch.targets.inputs.clone())?; // [B, T, V]
    Ok(token_loss(logits, batch.targets))
}

/// The dictionary split and encoded.
pub struct Prepared {
    /// Training, validation and test words.
    pub splits: [Vec<WordEntry>; 3],
    train: Vec<Pair>,
    valid: Vec<Pair>,
    /// What reading left out.
    pub skipped: CmuSkipped,
}

fn pairs(entries: &[WordEntry]) -> Result<Vec<Pair>> {
    let mut out = Vec::new();
    for e in entries {
        let letters = encode_word(&e.word)?;
        for v in &e.variants {
            out.push(Pair {
                letters: letters.clone(),
                phonemes: encode_phonemes(v),
            });
        }
    }
    Ok(out)
}

impl Prepared {
    /// Reads and splits the dictionary of `data`.
    pub fn load(data: &G2pData) -> Result<Prepared> {
        let dict = CmuDict::read(&data.file)?;
        if dict.entries.is_empty() {
            return Err(Error::bad_data(&data.file, "holds no words"));
        }
        let splits = dict.split(data.valid_fraction, data.test_fraction, data.split_seed)?;
        if splits[0].is_empty() || splits[2].is_empty() {
            return Err(Error::bad_data(
                &data.file,
                format!(
                    "{} words are too few for a training and a test split",
                    dict.entries.len()
                ),
            ));
        }
        Ok(Prepared {
            train: pairs(&splits[0])?,
            valid: pairs(&splits[1])?,
            splits,
            skipped: dict.skipped,
        })
    }

    /// Longest training word (letters) and pronunciation (phonemes).
    pub fn longest(&self) -> (usize, usize) {
        (
            self.train
                .iter()
                .map(|p| p.letters.len())
                .max()
                .unwrap_or(0),
            self.train
                .iter()
                .map(|p| p.phonemes.len())
                .max()
                .unwrap_or(0),
        )
    }
}

/// G2P on a [`Prepared`] dictionary.
pub struct G2pTask<'a> {
    data: &'a Prepared,
}

/// Batches of a pool are sorted by length: 50 batches to a pool.
const POOL_BATCHES: usize = 50;

impl Task for G2pTask<'_> {
    type Model = Seq2Seq;
    type Batch = G2pBatch;
    type Stats = TokenStats;
    type Carry = ();

    fn unit(&self) -> &'static str {
        "phonemes"
    }
    fn train_len(&self) -> usize {
        self.data.train.len()
    }
    fn valid_len(&self) -> usize {
        self.data.valid.len()
    }
    /// A seeded shuffle, sorted by word length within pools of 50 batches, cut into
    /// batches, the batches shuffled.
    fn epoch_batches(&self, seed: u64, batch_size: usize) -> Vec<Vec<usize>> {
        let bs = batch_size.max(1);
        let order = crate::data::shuffled_indices(self.data.train.len(), seed);
        let mut batches: Vec<Vec<usize>> = Vec::new();
        for pool in order.chunks(bs * POOL_BATCHES) {
            let mut pool = pool.to_vec();
            pool.sort_by_key(|&i| self.data.train[i].letters.len());
            batches.extend(pool.chunks(bs).map(<[usize]>::to_vec));
        }
        batches.shuffle(&mut rng(seed ^ 0x6261_7463_6865_7300));
        batches
    }
    fn train_batch(
        &self,
        indices: &[usize],
        _seeds: SampleSeeds,
        device: &Device,
    ) -> Result<G2pBatch> {
        let pairs: Vec<&Pair> = indices.iter().map(|&i| &self.data.train[i]).collect();
        Ok(G2pBatch::new(&pairs, device))
    }
    fn valid_batch(&self, indices: &[usize], device: &Device) -> Result<G2pBatch> {
        let pairs: Vec<&Pair> = indices.iter().map(|&i| &self.data.valid[i]).collect();
        Ok(G2pBatch::new(&pairs, device))
    }
    fn train_step(
        &self,
        model: &Seq2Seq,
        batch: G2pBatch,
        _carry: (),
    ) -> Result<TrainOutput<TokenStats, ()>> {
        let (loss, stats) = sequence_loss(model, batch)?;
        Ok(TrainOutput {
            loss,
            stats,
            carry: (),
        })
    }
    fn valid_step(&self, model: &Seq2Seq, batch: G2pBatch) -> Result<TokenStats> {
        Ok(sequence_loss(model, batch)?.1)
    }
    fn default_valid_batch_size(&self, _train_batch_size: usize) -> usize {
        256
    }
}

/// Levenshtein distance between two phoneme sequences.
pub fn edit_distance(a: &[u32], b: &[u32]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(x != y));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Word and phoneme errors of decoded words.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorRates {
    /// Words scored.
    pub words: usize,
    /// Words whose output equals none of their pronunciations.
    pub word_errors: usize,
    /// Edits to the closest pronunciation, summed.
    pub phoneme_edits: usize,
    /// Length of the closest pronunciation, summed.
    pub reference_phonemes: usize,
}

impl ErrorRates {
    /// Scores `output` against a word's pronunciations `variants` (target ids).
    pub fn add(&mut self, output: &[u32], variants: &[Vec<u32>]) {
        let (edits, len) = variants
            .iter()
            .map(|v| (edit_distance(output, v), v.len()))
            .min()
            .expect("a word has a pronunciation");
        self.words += 1;
        self.word_errors += usize::from(edits > 0);
        self.phoneme_edits += edits;
        self.reference_phonemes += len;
    }

    /// Word error rate, in [0, 1].
    pub fn wer(&self) -> f64 {
        self.word_errors as f64 / self.words.max(1) as f64
    }

    /// Phoneme error rate (may exceed 1 for very long outputs).
    pub fn per(&self) -> f64 {
        self.phoneme_edits as f64 / self.reference_phonemes.max(1) as f64
    }
}

/// Decodes `entries` with `options` (batches of similar length for greedy decoding) and
/// scores them. Returns the rates and each word's output, in `entries`' order.
pub fn score_words(
    model: &Seq2Seq,
    entries: &[WordEntry],
    options: &DecodeOptions,
    device: &Device,
    progress: &mut dyn FnMut(usize),
) -> Result<(ErrorRates, Vec<Vec<u32>>)> {
    let letters: Vec<Vec<u32>> = entries
        .iter()
        .map(|e| encode_word(&e.word))
        .collect::<Result<_>>()?;
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| letters[i].len());
    let batch = if options.beam_width == 1 { 256 } else { 32 };
    let mut outputs = vec![Vec::new(); entries.len()];
    let mut done = 0;
    for chunk in order.chunks(batch) {
        let rows: Vec<&[u32]> = chunk.iter().map(|&i| letters[i].as_slice()).collect();
        let (source, lengths) = source_batch(&rows, device);
        let hyps = model.decode(source, &lengths, options)?;
        for (&i, h) in chunk.iter().zip(hyps) {
            outputs[i] = h.tokens;
        }
        done += chunk.len();
        progress(done);
    }
    let mut rates = ErrorRates::default();
    for (e, out) in entries.iter().zip(&outputs) {
        let variants: Vec<Vec<u32>> = e.variants.iter().map(|v| encode_phonemes(v)).collect();
        rates.add(out, &variants);
    }
    Ok((rates, outputs))
}

/// Letters `[B, S]` padded with 0, and each row's length.
fn source_batch(rows: &[&[u32]], device: &Device) -> (Tensor<2, Int>, Vec<usize>) {
    let b = rows.len();
    let s = rows.iter().map(|r| r.len()).max().unwrap_or(1).max(1);
    let mut ids = vec![0i64; b * s];
    for (row, r) in rows.iter().enumerate() {
        for (k, &id) in r.iter().enumerate() {
            ids[row * s + k] = id as i64;
        }
    }
    (
        Tensor::from_data(TensorData::new(ids, [b, s]), device),
        rows.iter().map(|r| r.len().max(1)).collect(),
    )
}

/// One decoding's scores in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodingReport {
    /// `greedy` or `beam k`.
    pub decoding: String,
    /// Beam width (1: greedy).
    pub beam_width: usize,
    /// Test word error rate.
    pub test_wer: f64,
    /// Test phoneme error rate.
    pub test_per: f64,
    /// Validation word error rate.
    pub valid_wer: f64,
    /// Validation phoneme error rate.
    pub valid_per: f64,
    /// The counts behind the test rates.
    pub test: ErrorRates,
    /// Seconds to decode the test words.
    pub test_seconds: f64,
}

/// An example in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The word.
    pub word: String,
    /// Its pronunciations.
    pub truth: Vec<String>,
    /// The greedy output.
    pub output: String,
}

/// The test report of a G2P run (`report/g2p_test.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct G2pReport {
    /// The decoder's attention.
    pub attention: AttentionKind,
    /// Words: train, validation, test.
    pub words: [usize; 3],
    /// Greedy, then beam search.
    pub decodings: Vec<DecodingReport>,
    /// The first test words and their greedy outputs.
    pub examples: Vec<Example>,
}

fn to_text(ids: &[u32]) -> String {
    ids.iter()
        .map(|&i| phoneme(i))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Scores `model` greedily and by beam search on the validation and test words.
pub fn test_report(
    model: &Seq2Seq,
    data: &Prepared,
    run: &G2pRun,
    device: &Device,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<G2pReport> {
    let mut decodings = Vec::new();
    let mut examples = Vec::new();
    let mut widths = vec![1];
    if run.beam_width > 1 {
        widths.push(run.beam_width);
    }
    for &width in &widths {
        let options = run.decode_options(width);
        let name = if width == 1 {
            "greedy".to_string()
        } else {
            format!("beam {width}")
        };
        let n_valid = data.splits[1].len();
        let (valid, _) = score_words(model, &data.splits[1], &options, device, &mut |d| {
            progress(&format!("{name}, validation"), d, n_valid)
        })?;
        let n_test = data.splits[2].len();
        let started = std::time::Instant::now();
        let (test, outputs) = score_words(model, &data.splits[2], &options, device, &mut |d| {
            progress(&format!("{name}, test"), d, n_test)
        })?;
        let test_seconds = started.elapsed().as_secs_f64();
        if width == 1 {
            examples = data.splits[2]
                .iter()
                .zip(&outputs)
                .take(20)
                .map(|(e, o)| Example {
                    word: e.word.clone(),
                    truth: e.variants.iter().map(|v| v.join(" ")).collect(),
                    output: to_text(o),
                })
                .collect();
        }
        decodings.push(DecodingReport {
            decoding: name,
            beam_width: width,
            test_wer: test.wer(),
            test_per: test.per(),
            valid_wer: valid.wer(),
            valid_per: valid.per(),
            test,
            test_seconds,
        });
    }
    Ok(G2pReport {
        attention: run.model.attention,
        words: [
            data.splits[0].len(),
            data.splits[1].len(),
            data.splits[2].len(),
        ],
        decodings,
        examples,
    })
}

/// Writes `report/g2p_test.json` and, with attention, `report/attention.png` (the greedy
/// decoder's attention over the letters of [`HEATMAP_WORDS`]) into the run directory `dir`.
pub fn write_report(dir: &Path, report: &G2pReport, translator: &Translator) -> Result<()> {
    let out = dir.join("report");
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    if report.attention != AttentionKind::None {
        let words: Vec<String> = HEATMAP_WORDS.iter().map(|w| w.to_string()).collect();
        translator.attention_png(&words, 1, &out.join("attention.png"))?;
    }
    let json = serde_json::to_string_pretty(report).expect("report serializes");
    write_atomic(&out.join("g2p_test.json"), json.as_bytes())
}

/// What starting a G2P run asks for.
#[derive(Debug, Clone)]
pub struct G2pRequest {
    /// The network (vocabulary sizes are filled in).
    pub model: Seq2SeqConfig,
    /// The dictionary.
    pub data: G2pData,
    /// Training settings.
    pub train: TrainConfig,
    /// Beam width of the report (1: greedy only).
    pub beam_width: usize,
    /// Length normalisation of beam search.
    pub length_alpha: f32,
    /// The run directory.
    pub out: PathBuf,
}

/// What a finished run reports.
#[derive(Debug)]
pub struct G2pOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// The run's configuration.
    pub run: G2pRun,
    /// Test report.
    pub report: G2pReport,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
    /// (word, pronunciation) pairs: train, validation.
    pub pairs: [usize; 2],
}

fn train_in(
    run: &G2pRun,
    prepared: &Prepared,
    dir: &Path,
    resume: Option<&crate::train::CheckpointMeta>,
    device: &Device,
    observer: &mut dyn Observer,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<G2pOutcome> {
    let ad = device.clone().autodiff();
    ad.seed(run.train.seed);
    let model = run.model.init(&ad);
    let task = G2pTask { data: prepared };
    let json = serde_json::to_value(run).expect("run serializes");
    let fitted = fit(&task, model, &run.train, &json, dir, resume, &ad, observer)?;
    let model = fitted.model.valid();
    let report = test_report(&model, prepared, run, device, progress)?;
    let translator = Translator {
        run: run.clone(),
        model,
        device: device.clone(),
    };
    write_report(dir, &report, &translator)?;
    Ok(G2pOutcome {
        dir: dir.to_path_buf(),
        run: run.clone(),
        report,
        history: fitted.history,
        pairs: [prepared.train.len(), prepared.valid.len()],
    })
}

fn check_request(req: &G2pRequest) -> Result<()> {
    req.train.validate()?;
    if req.train.tbptt.is_some() {
        return Err(Error::invalid(
            "tbptt",
            "G2P reads whole words: there is nothing to truncate",
        ));
    }
    crate::nn::check_beam_width(req.beam_width)?;
    if !(req.length_alpha.is_finite() && (0.0..=2.0).contains(&req.length_alpha)) {
        return Err(Error::invalid(
            "length_alpha",
            format!("{} is not in [0, 2]", req.length_alpha),
        ));
    }
    Ok(())
}

/// Reads and splits the dictionary, creates the run directory of `req`, trains, tests and
/// writes the report. Refuses a directory that already holds a run. `progress` hears of the
/// report's decoding (what, words done, words in all).
pub fn start_run(
    req: &G2pRequest,
    device: &Device,
    observer: &mut dyn Observer,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<G2pOutcome> {
    check_request(req)?;
    refuse_existing_run(&req.out)?;
    let prepared = Prepared::load(&req.data)?;
    let model = Seq2SeqConfig {
        source_vocab: LETTERS.chars().count() + 1,
        target_vocab: FIRST_PHONEME as usize + PHONEMES.len(),
        ..req.model.clone()
    };
    model.validate()?;
    let (max_word_len, max_pron_len) = prepared.longest();
    let run = G2pRun {
        task: TASK.into(),
        model,
        data: req.data.clone(),
        train: req.train.clone(),
        skipped: prepared.skipped.clone(),
        max_word_len,
        max_pron_len,
        beam_width: req.beam_width,
        length_alpha: req.length_alpha,
        deepnet_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    create_run_dir_with_config(&req.out, &run)?;
    train_in(&run, &prepared, &req.out, None, device, observer, progress)
}

/// Continues the G2P run in `dir` from its last checkpoint, up to `epochs` epochs in all.
pub fn resume_run(
    dir: &Path,
    epochs: Option<usize>,
    device: &Device,
    observer: &mut dyn Observer,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<G2pOutcome> {
    let config_path = dir.join(CONFIG_FILE);
    let mut run = G2pRun::from_json(read_config(dir)?, &config_path)?;
    crate::train::run::lock_run_dir(dir)?;
    let ckpt = resolve_checkpoint(dir)?;
    let meta = read_checkpoint_meta(&ckpt)?;
    extend_epochs(&mut run.train, epochs, meta.state.epoch)?;
    let prepared = Prepared::load(&run.data)?;
    if prepared.longest() != (run.max_word_len, run.max_pron_len) {
        return Err(Error::bad_data(
            &config_path,
            "the dictionary changed since the run started: start a new run",
        ));
    }
    write_config(dir, &serde_json::to_value(&run).expect("run serializes"))?;
    train_in(
        &run,
        &prepared,
        dir,
        Some(&meta),
        device,
        observer,
        progress,
    )
}

/// A trained G2P network, ready to use.
pub struct Translator {
    /// The run's configuration.
    pub run: G2pRun,
    model: Seq2Seq,
    device: Device,
}

/// One translated word.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The word, lower case.
    pub word: String,
    /// Its phonemes.
    pub phonemes: Vec<&'static str>,
    /// Whether the decoder ended the output (else the length limit cut it).
    pub finished: bool,
    /// Log-probability of the output.
    pub log_prob: f32,
    /// The attention over the letters at each output step (empty without attention).
    pub weights: Vec<Vec<f32>>,
}

impl Translator {
    /// Loads the checkpoint of the G2P run at `path` (a run directory or a checkpoint file)
    /// on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Translator> {
        let file = resolve_checkpoint(path)?;
        let meta = read_checkpoint_meta(&file)?;
        let run = G2pRun::from_json(meta.run, &file)?;
        let model = load_weights(run.model.init(device), &file)?;
        Ok(Translator {
            run,
            model,
            device: device.clone(),
        })
    }

    /// The pronunciation of each of `words` by greedy decoding (`beam_width` 1) or beam
    /// search. A word must be letters and apostrophes, no longer than the longest training
    /// word.
    pub fn translate(&self, words: &[String], beam_width: usize) -> Result<Vec<Translation>> {
        crate::nn::check_beam_width(beam_width)?;
        let mut out = Vec::with_capacity(words.len());
        for word in words {
            let letters = self.letters(word)?;
            let (source, lengths) = source_batch(&[&letters], &self.device);
            let h: Hypothesis = self
                .model
                .decode(source, &lengths, &self.run.decode_options(beam_width))?
                .remove(0);
            out.push(Translation {
                word: word.to_lowercase(),
                phonemes: h.tokens.iter().map(|&t| phoneme(t)).collect(),
                finished: h.finished,
                log_prob: h.log_prob,
                weights: h.weights,
            });
        }
        Ok(out)
    }

    fn letters(&self, word: &str) -> Result<Vec<u32>> {
        if word.is_empty() {
            return Err(Error::invalid("word", "is empty"));
        }
        let n = word.chars().count();
        if n > self.run.max_word_len.min(MAX_WORD_LETTERS) {
            return Err(Error::invalid(
                "word",
                format!(
                    "'{}' has {n} letters; the longest word this run learned from has {}",
                    word.chars().take(40).collect::<String>(),
                    self.run.max_word_len
                ),
            ));
        }
        encode_word(word)
    }

    /// Draws the attention over the letters of each of `words` (one panel each) into the PNG
    /// `path`. An error when the run has no attention.
    pub fn attention_png(&self, words: &[String], beam_width: usize, path: &Path) -> Result<()> {
        if self.run.model.attention == AttentionKind::None {
            return Err(Error::invalid(
                "heatmap",
                "this run's decoder has no attention to draw",
            ));
        }
        let maps: Vec<Heatmap> = self
            .translate(words, beam_width)?
            .into_iter()
            .map(|t| {
                let mut rows: Vec<String> = t.phonemes.iter().map(|p| p.to_string()).collect();
                if t.finished {
                    rows.push("</s>".into());
                }
                Heatmap {
                    title: t.word.clone(),
                    cols: t.word.chars().map(|c| c.to_string()).collect(),
                    rows,
                    values: t.weights,
                }
            })
            .collect();
        heatmaps(&maps, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_substitutions_insertions_deletions() {
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 2, 3]), 0);
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 4, 3]), 1);
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 3]), 1);
        assert_eq!(edit_distance(&[], &[1, 3]), 2);
        assert_eq!(edit_distance(&[5, 6], &[1, 2, 3]), 3);
    }

    #[test]
    fn a_word_is_right_when_it_equals_any_variant() {
        let mut r = ErrorRates::default();
        r.add(&[4, 5], &[vec![4, 6], vec![4, 5]]);
        assert_eq!(
            (r.word_errors, r.phoneme_edits, r.reference_phonemes),
            (0, 0, 2)
        );
        r.add(&[4], &[vec![4, 6, 7], vec![9, 9]]);
        // Closest variant: [9, 9] (2 edits) ties [4, 6, 7] (2 edits); the shorter is taken.
        assert_eq!((r.word_errors, r.phoneme_edits), (1, 2));
        assert!((r.wer() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn words_are_letters_and_apostrophes() {
        assert_eq!(encode_word("Ab'").unwrap(), vec![1, 2, 27]);
        let e = encode_word("a-b").unwrap_err().to_string();
        assert!(e.contains("'-'"), "{e}");
    }
}
