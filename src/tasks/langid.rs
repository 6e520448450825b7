//! Language identification (many-to-one): which of the corpus's languages a piece of text is
//! in, from its characters. A [`CharClassifier`] (embedding, stacked bidirectional LSTM or GRU
//! over variable-length batches, linear head) trained by the one loop with cross-entropy, and
//! in the same run a character n-gram naive Bayes baseline ([`NgramNaiveBayes`]) trained on
//! the same split. `deepnet langid-train` and `deepnet langid` are the functions of this file.
//!
//! Training items are random crops of training entries, 1 to `max_crop` characters long (the
//! batch's longest crop drawn log-uniformly, each item between half that and it, so a batch
//! wastes little on padding), so the network learns short inputs as well as long ones. The
//! languages are very unbalanced (bg ~600 entries, ru ~20,000): each batch slot draws its
//! language uniformly, then an entry of it. An epoch is as many crops as there are training
//! entries.
//!
//! The test report gives accuracy and macro accuracy (the mean of the per-language
//! accuracies) by input length: 1-10, 11-20 and 21-50 characters (seeded crops of test
//! entries, at least 1,000 per bucket, as few entries are that short) and 51+ (the test
//! entries of 51 characters or more, each cut to its first `eval_max_len` characters), for the
//! network and the baseline, with the confusion matrix of the whole test entries.

use std::path::{Path, PathBuf};

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use rand::rngs::StdRng;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::data::batch::rng;
use crate::data::text::vocab::PAD;
use crate::data::text::{normalize, CharVocab, CorpusSource, Language, LanguageCorpus, Skipped};
use crate::data::SampleSeeds;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::models::{CharClassifier, CharClassifierConfig, NgramNaiveBayes};
use crate::plot::{confusion_matrix, grouped_bars, Series};
use crate::train::checkpoint::{load_weights, read_checkpoint_meta, resolve_checkpoint};
use crate::train::run::{
    create_run_dir_with_config, extend_epochs, read_config, refuse_existing_run, write_config,
    CONFIG_FILE,
};
use crate::train::{fit, EpochRecord, Observer, Stats, Task, TrainConfig, TrainOutput};

/// The name of this task in `config.json`.
pub const TASK: &str = "langid";

/// Longest text `deepnet langid` accepts, in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// The length buckets of the test report: `(lo, hi)` characters (`usize::MAX`: no bound).
pub const BUCKETS: [(usize, usize); 4] = [(1, 10), (11, 20), (21, 50), (51, usize::MAX)];

/// Crops per language in each short bucket of the test report (9 languages: 1,800 a bucket).
const CROPS_PER_LANGUAGE: usize = 200;

/// The smallest count of crops in each short bucket.
const MIN_CROPS_PER_BUCKET: usize = 1000;

/// Where a language-identification run's texts come from and how they are cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LangIdData {
    /// The corpus.
    pub source: CorpusSource,
    /// Seed of the split by entry (the run's seed).
    pub split_seed: u64,
    /// Fraction of each language's entries held out for validation.
    pub valid_fraction: f64,
    /// Fraction held out for the test report.
    pub test_fraction: f64,
    /// Longest training crop, in characters.
    pub max_crop: usize,
    /// Characters of a test entry the report reads (longer entries are cut).
    pub eval_max_len: usize,
    /// Characters seen fewer times in training are unknown.
    pub min_char_count: usize,
    /// Crops per epoch; `None`: as many as there are training entries.
    #[serde(default)]
    pub epoch_items: Option<usize>,
}

/// The contents of `config.json` of a language-identification run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LangIdRun {
    /// The task (`langid`).
    pub task: String,
    /// The network.
    pub model: CharClassifierConfig,
    /// The languages, in label order.
    pub languages: Vec<Language>,
    /// The characters of the vocabulary (ids 2, 3, ...).
    pub vocab: String,
    /// The texts.
    pub data: LangIdData,
    /// Training settings.
    pub train: TrainConfig,
    /// What reading the corpus left out.
    pub skipped: Skipped,
    /// deepnet version that wrote the run.
    pub deepnet_version: String,
}

impl LangIdRun {
    fn from_json(v: serde_json::Value, origin: &Path) -> Result<LangIdRun> {
        crate::train::run::task_config(v, origin, TASK, "language-identification")
    }
}

/// Summed statistics of classified texts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LangStats {
    /// Sum over batches of (mean batch loss × batch size).
    pub loss_sum: f64,
    /// Texts whose top language is the label.
    pub correct: usize,
    /// Texts seen.
    pub count: usize,
    /// Per language: texts right.
    pub hits: Vec<usize>,
    /// Per language: texts seen.
    pub seen: Vec<usize>,
}

impl LangStats {
    fn add(&mut self, label: usize, right: bool) {
        if self.seen.len() <= label {
            self.seen.resize(label + 1, 0);
            self.hits.resize(label + 1, 0);
        }
        self.seen[label] += 1;
        self.hits[label] += usize::from(right);
        self.count += 1;
        self.correct += usize::from(right);
    }

    /// Mean of the per-language accuracies, over the languages seen.
    pub fn macro_accuracy(&self) -> f64 {
        macro_of(&self.hits, &self.seen)
    }
}

fn macro_of(hits: &[usize], seen: &[usize]) -> f64 {
    let accs: Vec<f64> = hits
        .iter()
        .zip(seen)
        .filter(|(_, &n)| n > 0)
        .map(|(&h, &n)| h as f64 / n as f64)
        .collect();
    accs.iter().sum::<f64>() / accs.len().max(1) as f64
}

impl Stats for LangStats {
    fn merge(&mut self, other: &Self) {
        self.loss_sum += other.loss_sum;
        self.correct += other.correct;
        self.count += other.count;
        let n = self.seen.len().max(other.seen.len());
        self.seen.resize(n, 0);
        self.hits.resize(n, 0);
        for (i, (&h, &s)) in other.hits.iter().zip(&other.seen).enumerate() {
            self.hits[i] += h;
            self.seen[i] += s;
        }
    }
    fn items(&self) -> usize {
        self.count
    }
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        let n = self.count.max(1) as f64;
        vec![
            ("loss", self.loss_sum / n),
            ("accuracy", self.correct as f64 / n),
            ("macro_accuracy", self.macro_accuracy()),
        ]
    }
}

/// A batch of texts: ids `[B, T]` padded with [`PAD`], their lengths and languages.
pub struct TextBatch {
    /// Character ids, `[B, T]`.
    pub tokens: Tensor<2, Int>,
    /// Valid characters of each row.
    pub lengths: Vec<usize>,
    /// Language of each row, `[B]`.
    pub labels: Tensor<1, Int>,
    /// The same languages, on the host.
    pub label_values: Vec<usize>,
}

impl TextBatch {
    /// The batch of `texts` (each at least one id) labelled `labels`, on `device`.
    pub fn new(texts: &[&[u32]], labels: &[usize], device: &Device) -> TextBatch {
        let b = texts.len();
        let t = texts.iter().map(|x| x.len()).max().unwrap_or(1).max(1);
        let mut ids = vec![PAD as i64; b * t];
        for (row, text) in texts.iter().enumerate() {
            for (k, &id) in text.iter().enumerate() {
                ids[row * t + k] = id as i64;
            }
        }
        TextBatch {
            // [batch, time]
            tokens: Tensor::from_data(TensorData::new(ids, [b, t]), device),
            lengths: texts.iter().map(|x| x.len().max(1)).collect(),
            labels: Tensor::from_data(
                TensorData::new(labels.iter().map(|&l| l as i64).collect(), [b]),
                device,
            ),
            label_values: labels.to_vec(),
        }
    }
}

/// A text cut for evaluation: its characters, their ids, its language.
#[derive(Debug, Clone)]
struct Sample {
    text: String,
    ids: Vec<u32>,
    label: usize,
}

/// The corpus ready for training: ids of every training entry, fixed validation crops.
pub struct Prepared {
    /// The corpus, split.
    pub corpus: LanguageCorpus,
    /// Its vocabulary (from the training entries).
    pub vocab: CharVocab,
    train_ids: Vec<Vec<Vec<u32>>>,
    /// `(language, entry)` of each training item index.
    train_items: Vec<(usize, usize)>,
    valid: Vec<Sample>,
    space: u32,
}

impl Prepared {
    /// Encodes the corpus with `vocab` and cuts the validation crops (seeded by `seed`).
    pub fn new(corpus: LanguageCorpus, vocab: CharVocab, data: &LangIdData, seed: u64) -> Self {
        let train_ids: Vec<Vec<Vec<u32>>> = corpus
            .train
            .iter()
            .map(|entries| entries.iter().map(|e| vocab.encode(e)).collect())
            .collect();
        let train_items = train_ids
            .iter()
            .enumerate()
            .flat_map(|(l, e)| (0..e.len()).map(move |i| (l, i)))
            .collect();
        let mut r = rng(seed ^ 0x7661_6c69_6400_0000);
        let mut valid = Vec::new();
        for (l, entries) in corpus.valid.iter().enumerate() {
            for e in entries {
                let chars: Vec<char> = e.chars().collect();
                let len = log_uniform(&mut r, data.max_crop).min(chars.len());
                let text = crop(&chars, len, &mut r);
                valid.push(Sample {
                    ids: vocab.encode(&text),
                    text,
                    label: l,
                });
            }
        }
        let space = vocab.id(' ');
        Prepared {
            corpus,
            vocab,
            train_ids,
            train_items,
            valid,
            space,
        }
    }
}

/// A length in `1..=max`, log-uniform (as many crops of 1-10 characters as of 10-100).
fn log_uniform(r: &mut StdRng, max: usize) -> usize {
    let u: f64 = r.random::<f64>();
    ((max.max(1) as f64 + 1.0).ln() * u)
        .exp()
        .floor()
        .clamp(1.0, max.max(1) as f64) as usize
}

/// A random crop of `len` characters of `chars`, trimmed of spaces at its ends (the whole
/// prefix when the crop is all spaces).
fn crop(chars: &[char], len: usize, r: &mut StdRng) -> String {
    let len = len.clamp(1, chars.len().max(1));
    let start = r.random_range(0..=chars.len() - len);
    let s: String = chars[start..start + len].iter().collect();
    let t = s.trim();
    if t.is_empty() {
        chars[..len].iter().collect::<String>().trim().to_string()
    } else {
        t.to_string()
    }
}

/// Language identification on a [`Prepared`] corpus.
pub struct LangIdTask<'a> {
    data: &'a Prepared,
    max_crop: usize,
    epoch_items: usize,
}

impl LangIdTask<'_> {
    fn step(&self, model: &CharClassifier, batch: TextBatch) -> Result<(Tensor<1>, LangStats)> {
        let logits = model.forward(batch.tokens, &batch.lengths)?;
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.labels);
        let predicted = argmax_rows(logits)?;
        let mut stats = LangStats {
            loss_sum: loss.clone().into_scalar::<f32>() as f64 * batch.label_values.len() as f64,
            ..LangStats::default()
        };
        for (&p, &l) in predicted.iter().zip(&batch.label_values) {
            stats.add(l, p == l);
        }
        Ok((loss, stats))
    }
}

fn argmax_rows(logits: Tensor<2>) -> Result<Vec<usize>> {
    let ids = logits
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .map_err(|e| Error::invalid("logits", format!("{e:?}")))?;
    Ok(ids.into_iter().map(|i| i as usize).collect())
}

impl Task for LangIdTask<'_> {
    type Model = CharClassifier;
    type Batch = TextBatch;
    type Stats = LangStats;
    type Carry = ();

    fn unit(&self) -> &'static str {
        "texts"
    }
    fn train_len(&self) -> usize {
        self.epoch_items
    }
    fn valid_len(&self) -> usize {
        self.data.valid.len()
    }
    /// Balanced by language: each slot draws a language uniformly, then one of its entries.
    /// Item `slot · N + entry` (N training entries) lets the same entry, drawn twice in an
    /// epoch, be cropped differently.
    fn epoch_batches(&self, seed: u64, batch_size: usize) -> Vec<Vec<usize>> {
        let mut r = rng(seed);
        let n = self.data.train_items.len();
        let languages = self.data.train_ids.len();
        let offsets: Vec<usize> = self
            .data
            .train_ids
            .iter()
            .scan(0, |acc, e| {
                let o = *acc;
                *acc += e.len();
                Some(o)
            })
            .collect();
        let slots: Vec<usize> = (0..self.epoch_items)
            .map(|slot| {
                let l = r.random_range(0..languages);
                let entry = offsets[l] + r.random_range(0..self.data.train_ids[l].len());
                slot * n + entry
            })
            .collect();
        slots
            .chunks(batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }
    fn train_batch(
        &self,
        indices: &[usize],
        seeds: SampleSeeds,
        device: &Device,
    ) -> Result<TextBatch> {
        let n = self.data.train_items.len();
        let longest = log_uniform(
            &mut seeds.rng(indices.first().copied().unwrap_or(0)),
            self.max_crop,
        );
        let mut crops = Vec::with_capacity(indices.len());
        let mut labels = Vec::with_capacity(indices.len());
        for &index in indices {
            let (l, e) = self.data.train_items[index % n];
            let ids = &self.data.train_ids[l][e];
            let mut r = seeds.rng(index);
            let len = r
                .random_range(longest.div_ceil(2)..=longest)
                .min(ids.len())
                .max(1);
            let start = r.random_range(0..=ids.len() - len);
            let mut piece = &ids[start..start + len];
            // Spaces at the ends say nothing: trimmed, as every input is at use.
            while piece.len() > 1 && piece[0] == self.data.space {
                piece = &piece[1..];
            }
            while piece.len() > 1 && piece[piece.len() - 1] == self.data.space {
                piece = &piece[..piece.len() - 1];
            }
            crops.push(piece);
            labels.push(l);
        }
        Ok(TextBatch::new(&crops, &labels, device))
    }
    fn valid_batch(&self, indices: &[usize], device: &Device) -> Result<TextBatch> {
        let texts: Vec<&[u32]> = indices
            .iter()
            .map(|&i| self.data.valid[i].ids.as_slice())
            .collect();
        let labels: Vec<usize> = indices.iter().map(|&i| self.data.valid[i].label).collect();
        Ok(TextBatch::new(&texts, &labels, device))
    }
    fn train_step(
        &self,
        model: &CharClassifier,
        batch: TextBatch,
        _carry: (),
    ) -> Result<TrainOutput<LangStats, ()>> {
        let (loss, stats) = self.step(model, batch)?;
        Ok(TrainOutput {
            loss,
            stats,
            carry: (),
        })
    }
    fn valid_step(&self, model: &CharClassifier, batch: TextBatch) -> Result<LangStats> {
        Ok(self.step(model, batch)?.1)
    }
    fn default_valid_batch_size(&self, _train_batch_size: usize) -> usize {
        256
    }
}

/// Class probabilities of `texts` (ids, each non-empty), in batches of similar lengths.
pub fn probabilities(
    model: &CharClassifier,
    texts: &[&[u32]],
    batch_size: usize,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut out = vec![Vec::new(); texts.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let rows: Vec<&[u32]> = chunk.iter().map(|&i| texts[i]).collect();
        let batch = TextBatch::new(&rows, &vec![0; rows.len()], device);
        let probs = softmax(model.forward(batch.tokens, &batch.lengths)?, 1);
        let [b, c] = probs.dims();
        let v = probs
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::invalid("logits", format!("{e:?}")))?;
        for (k, &i) in chunk.iter().enumerate() {
            out[i] = v[k * c..(k + 1) * c].to_vec();
        }
        debug_assert_eq!(b, chunk.len());
    }
    Ok(out)
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |best, c| if v[c] > v[best] { c } else { best })
}

/// Accuracy figures of one classifier on one set of texts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Fraction right.
    pub accuracy: f64,
    /// Mean of the per-language accuracies.
    pub macro_accuracy: f64,
    /// Accuracy per language (NaN-free: 0 where a language has no text).
    pub per_language: Vec<f64>,
}

impl Scores {
    fn of(predicted: &[usize], labels: &[usize], languages: usize) -> Scores {
        let mut hits = vec![0; languages];
        let mut seen = vec![0; languages];
        for (&p, &l) in predicted.iter().zip(labels) {
            seen[l] += 1;
            hits[l] += usize::from(p == l);
        }
        let correct: usize = hits.iter().sum();
        Scores {
            accuracy: correct as f64 / predicted.len().max(1) as f64,
            macro_accuracy: macro_of(&hits, &seen),
            per_language: hits
                .iter()
                .zip(&seen)
                .map(|(&h, &n)| if n > 0 { h as f64 / n as f64 } else { 0.0 })
                .collect(),
        }
    }
}

/// One length bucket of the test report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketReport {
    /// `1-10`, ..., `51+`.
    pub name: String,
    /// Texts in the bucket.
    pub count: usize,
    /// How they were made.
    pub made_of: String,
    /// The recurrent network.
    pub rnn: Scores,
    /// The naive Bayes baseline.
    pub naive_bayes: Scores,
}

/// The test report of a language-identification run (`report/langid_test.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LangIdReport {
    /// The languages, in label order.
    pub languages: Vec<Language>,
    /// Test entries (whole, cut to `eval_max_len` characters).
    pub entries: usize,
    /// Scores of the network on the whole test entries.
    pub rnn: Scores,
    /// Scores of the baseline on the whole test entries.
    pub naive_bayes: Scores,
    /// `confusion[true][predicted]` of the network on the whole test entries.
    pub confusion: Vec<Vec<usize>>,
    /// By input length.
    pub buckets: Vec<BucketReport>,
    /// The baseline's smoothing, chosen on the validation crops.
    pub naive_bayes_alpha: f64,
    /// The baseline's validation macro accuracy at that smoothing.
    pub naive_bayes_valid_macro: f64,
    /// Distinct n-grams the baseline counted.
    pub naive_bayes_grams: usize,
}

/// The naive Bayes baseline on the training entries, its smoothing chosen on the validation
/// crops (macro accuracy) from a small grid. Returns it with its validation macro accuracy.
pub fn fit_baseline(data: &Prepared) -> (NgramNaiveBayes, f64) {
    let mut nb = NgramNaiveBayes::fit(&data.corpus.train, 3, 1.0);
    let labels: Vec<usize> = data.valid.iter().map(|s| s.label).collect();
    let mut best = (1.0, -1.0);
    for alpha in [0.01, 0.03, 0.1, 0.3, 1.0] {
        nb = nb.with_alpha(alpha);
        let predicted: Vec<usize> = data.valid.iter().map(|s| nb.predict(&s.text)).collect();
        let m = Scores::of(&predicted, &labels, data.corpus.languages.len()).macro_accuracy;
        if m > best.1 {
            best = (alpha, m);
        }
    }
    (nb.with_alpha(best.0), best.1)
}

/// The test texts of each bucket: seeded crops of test entries for the short buckets (at
/// least [`MIN_CROPS_PER_BUCKET`]), the entries of 51+ characters (cut to `eval_max_len`) for
/// the last. Also returns how each bucket was made.
fn bucket_samples(data: &Prepared, run: &LangIdRun) -> Vec<(Vec<Sample>, String)> {
    let languages = data.corpus.languages.len();
    let per_language = CROPS_PER_LANGUAGE.max(MIN_CROPS_PER_BUCKET.div_ceil(languages));
    let mut out = Vec::new();
    for (b, &(lo, hi)) in BUCKETS.iter().enumerate() {
        let mut samples = Vec::new();
        if hi == usize::MAX {
            for (l, entries) in data.corpus.test.iter().enumerate() {
                for e in entries {
                    let chars: Vec<char> = e.chars().collect();
                    if chars.len() >= lo {
                        let text: String = chars.iter().take(run.data.eval_max_len).collect();
                        samples.push(Sample {
                            ids: data.vocab.encode(&text),
                            text,
                            label: l,
                        });
                    }
                }
            }
            out.push((
                samples,
                format!(
                    "test entries of {lo}+ characters, each cut to its first {}",
                    run.data.eval_max_len
                ),
            ));
            continue;
        }
        let mut r = rng(run.train.seed ^ 0x6275_636b_6574_0000 ^ b as u64);
        for (l, entries) in data.corpus.test.iter().enumerate() {
            let long: Vec<Vec<char>> = entries
                .iter()
                .map(|e| e.chars().collect::<Vec<char>>())
                .filter(|c| c.len() >= lo)
                .collect();
            if long.is_empty() {
                continue;
            }
            let mut made = 0;
            let mut tries = 0;
            while made < per_language && tries < per_language * 20 {
                tries += 1;
                let chars = &long[r.random_range(0..long.len())];
                let len = r.random_range(lo..=hi);
                let text = crop(chars, len, &mut r);
                let n = text.chars().count();
                if n < lo || n > hi {
                    continue;
                }
                samples.push(Sample {
                    ids: data.vocab.encode(&text),
                    text,
                    label: l,
                });
                made += 1;
            }
        }
        out.push((
            samples,
            format!("seeded crops of test entries, up to {per_language} per language"),
        ));
    }
    out
}

/// Scores `model` and the baseline on the test split: whole entries and by input length.
pub fn test_report(
    model: &CharClassifier,
    data: &Prepared,
    run: &LangIdRun,
    device: &Device,
) -> Result<LangIdReport> {
    let languages = data.corpus.languages.len();
    let (nb, nb_valid) = fit_baseline(data);
    let score = |samples: &[Sample]| -> Result<(Scores, Scores, Vec<usize>)> {
        let ids: Vec<&[u32]> = samples.iter().map(|s| s.ids.as_slice()).collect();
        let labels: Vec<usize> = samples.iter().map(|s| s.label).collect();
        let predicted: Vec<usize> = probabilities(model, &ids, 256, device)?
            .iter()
            .map(|p| argmax(p))
            .collect();
        let nb_predicted: Vec<usize> = samples.iter().map(|s| nb.predict(&s.text)).collect();
        Ok((
            Scores::of(&predicted, &labels, languages),
            Scores::of(&nb_predicted, &labels, languages),
            predicted,
        ))
    };
    let whole: Vec<Sample> = data
        .corpus
        .test
        .iter()
        .enumerate()
        .flat_map(|(l, entries)| {
            entries.iter().map(move |e| {
                let text: String = e.chars().take(run.data.eval_max_len).collect();
                (l, text)
            })
        })
        .map(|(label, text)| Sample {
            ids: data.vocab.encode(&text),
            text,
            label,
        })
        .collect();
    let (rnn, naive_bayes, predicted) = score(&whole)?;
    let mut confusion = vec![vec![0; languages]; languages];
    for (s, &p) in whole.iter().zip(&predicted) {
        confusion[s.label][p] += 1;
    }
    let mut buckets = Vec::new();
    for ((samples, made_of), &(lo, hi)) in bucket_samples(data, run).into_iter().zip(&BUCKETS) {
        let (rnn, naive_bayes, _) = score(&samples)?;
        buckets.push(BucketReport {
            name: if hi == usize::MAX {
                format!("{lo}+")
            } else {
                format!("{lo}-{hi}")
            },
            count: samples.len(),
            made_of,
            rnn,
            naive_bayes,
        });
    }
    Ok(LangIdReport {
        languages: data.corpus.languages.clone(),
        entries: whole.len(),
        rnn,
        naive_bayes,
        confusion,
        buckets,
        naive_bayes_alpha: nb.alpha(),
        naive_bayes_valid_macro: nb_valid,
        naive_bayes_grams: nb.grams(),
    })
}

/// Writes `report/langid_test.json`, `report/confusion_matrix.png` and
/// `report/accuracy_by_length.png` into the run directory `dir`.
pub fn write_report(dir: &Path, report: &LangIdReport) -> Result<()> {
    let out = dir.join("report");
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let names: Vec<String> = report.languages.iter().map(|l| l.code.clone()).collect();
    confusion_matrix(
        &names,
        &report.confusion,
        report.rnn.accuracy,
        "test entries",
        &out.join("confusion_matrix.png"),
    )?;
    let categories: Vec<String> = report.buckets.iter().map(|b| b.name.clone()).collect();
    let series = |label: &str, pick: &dyn Fn(&BucketReport) -> f64| Series {
        label: label.to_string(),
        points: report
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| (i as f64, 100.0 * pick(b)))
            .collect(),
    };
    grouped_bars(
        "Macro accuracy by input length (characters), test split",
        &categories,
        &[
            series("recurrent network", &|b| b.rnn.macro_accuracy),
            series("naive Bayes, char 1-3-grams", &|b| {
                b.naive_bayes.macro_accuracy
            }),
        ],
        "macro accuracy (%)",
        105.0,
        &out.join("accuracy_by_length.png"),
    )?;
    let json = serde_json::to_string_pretty(report).expect("report serializes");
    write_atomic(&out.join("langid_test.json"), json.as_bytes())
}

/// What starting a language-identification run asks for.
#[derive(Debug, Clone)]
pub struct LangIdRequest {
    /// The network (its vocabulary and class counts are filled in from the data).
    pub model: CharClassifierConfig,
    /// The texts.
    pub data: LangIdData,
    /// Training settings.
    pub train: TrainConfig,
    /// The run directory.
    pub out: PathBuf,
}

/// What a finished run reports.
#[derive(Debug)]
pub struct LangIdOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// The run's configuration.
    pub run: LangIdRun,
    /// Test report.
    pub report: LangIdReport,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
    /// Entries per split: train, validation, test.
    pub entries: [usize; 3],
}

fn check_data(data: &LangIdData) -> Result<()> {
    if data.max_crop == 0 {
        return Err(Error::invalid("max_crop", "must be at least 1"));
    }
    if data.epoch_items == Some(0) {
        return Err(Error::invalid("epoch_items", "must be at least 1"));
    }
    if data.eval_max_len == 0 {
        return Err(Error::invalid("eval_max_len", "must be at least 1"));
    }
    let ok = |f: f64| f.is_finite() && (0.0..0.5).contains(&f);
    for (what, f) in [
        ("valid_fraction", data.valid_fraction),
        ("test_fraction", data.test_fraction),
    ] {
        if !ok(f) {
            return Err(Error::invalid(what, format!("{f} is not in [0, 0.5)")));
        }
    }
    Ok(())
}

fn train_in(
    run: &LangIdRun,
    prepared: &Prepared,
    dir: &Path,
    resume: Option<&crate::train::CheckpointMeta>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<LangIdOutcome> {
    let ad = device.clone().autodiff();
    ad.seed(run.train.seed);
    let model = run.model.init(&ad);
    let task = LangIdTask {
        data: prepared,
        max_crop: run.data.max_crop,
        epoch_items: run.data.epoch_items.unwrap_or(prepared.train_items.len()),
    };
    let json = serde_json::to_value(run).expect("run serializes");
    let fitted = fit(&task, model, &run.train, &json, dir, resume, &ad, observer)?;
    let model = fitted.model.valid();
    let report = test_report(&model, prepared, run, device)?;
    write_report(dir, &report)?;
    let c = &prepared.corpus;
    Ok(LangIdOutcome {
        dir: dir.to_path_buf(),
        run: run.clone(),
        report,
        history: fitted.history,
        entries: [
            c.train_len(),
            c.valid.iter().map(Vec::len).sum(),
            c.test.iter().map(Vec::len).sum(),
        ],
    })
}

fn load_corpus(data: &LangIdData) -> Result<LanguageCorpus> {
    LanguageCorpus::load(
        &data.source,
        data.split_seed,
        data.valid_fraction,
        data.test_fraction,
    )
}

/// Reads the corpus, builds the vocabulary, creates the run directory of `req`, trains,
/// tests and writes the report. Refuses a directory that already holds a run.
pub fn start_run(
    req: &LangIdRequest,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<LangIdOutcome> {
    req.train.validate()?;
    check_data(&req.data)?;
    if req.train.tbptt.is_some() {
        return Err(Error::invalid(
            "tbptt",
            "language identification reads whole texts: there is nothing to truncate",
        ));
    }
    refuse_existing_run(&req.out)?;
    let corpus = load_corpus(&req.data)?;
    let vocab = CharVocab::build(
        corpus.train.iter().flatten().map(String::as_str),
        req.data.min_char_count,
    );
    let model = CharClassifierConfig {
        vocab_size: vocab.len(),
        num_classes: corpus.languages.len(),
        ..req.model.clone()
    };
    model.validate()?;
    let run = LangIdRun {
        task: TASK.into(),
        model,
        languages: corpus.languages.clone(),
        vocab: vocab.chars.clone(),
        data: req.data.clone(),
        train: req.train.clone(),
        skipped: corpus.skipped.clone(),
        deepnet_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let prepared = Prepared::new(corpus, vocab, &run.data, run.train.seed);
    create_run_dir_with_config(&req.out, &run)?;
    train_in(&run, &prepared, &req.out, None, device, observer)
}

/// Continues the language-identification run in `dir` from its last checkpoint, up to
/// `epochs` epochs in all (default: the run's own count).
pub fn resume_run(
    dir: &Path,
    epochs: Option<usize>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<LangIdOutcome> {
    let config_path = dir.join(CONFIG_FILE);
    let mut run = LangIdRun::from_json(read_config(dir)?, &config_path)?;
    // Before anything in the run is read for training or written.
    crate::train::run::lock_run_dir(dir)?;
    let ckpt = resolve_checkpoint(dir)?;
    let meta = read_checkpoint_meta(&ckpt)?;
    extend_epochs(&mut run.train, epochs, meta.state.epoch)?;
    let corpus = load_corpus(&run.data)?;
    let vocab = CharVocab::build(
        corpus.train.iter().flatten().map(String::as_str),
        run.data.min_char_count,
    );
    if vocab.chars != run.vocab || corpus.languages != run.languages {
        return Err(Error::bad_data(
            &config_path,
            "the texts changed since the run started (other languages or characters): start a new run",
        ));
    }
    let prepared = Prepared::new(corpus, vocab, &run.data, run.train.seed);
    write_config(dir, &serde_json::to_value(&run).expect("run serializes"))?;
    train_in(&run, &prepared, dir, Some(&meta), device, observer)
}

/// A trained language identifier, ready to use.
pub struct Identifier {
    /// The run's configuration.
    pub run: LangIdRun,
    vocab: CharVocab,
    model: CharClassifier,
    device: Device,
}

impl Identifier {
    /// Loads the checkpoint of the run at `path` (a run directory or a checkpoint file) on
    /// `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Identifier> {
        let file = resolve_checkpoint(path)?;
        let meta = read_checkpoint_meta(&file)?;
        let run = LangIdRun::from_json(meta.run, &file)?;
        let model = load_weights(run.model.init(device), &file)?;
        Ok(Identifier {
            vocab: CharVocab::from_chars(run.vocab.clone()),
            run,
            model,
            device: device.clone(),
        })
    }

    /// The languages of `text` with their probabilities, most likely first. The text is
    /// normalised as the training texts were; characters the run never saw count as unknown.
    pub fn identify(&self, text: &str) -> Result<Vec<(Language, f32)>> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(Error::invalid(
                "text",
                format!(
                    "{} bytes; the limit is {MAX_TEXT_BYTES} (64 KiB)",
                    text.len()
                ),
            ));
        }
        let text = normalize(text);
        if text.is_empty() {
            return Err(Error::invalid(
                "text",
                "is empty (or only spaces and control characters)",
            ));
        }
        let ids = self.vocab.encode(&text);
        let probs = probabilities(&self.model, &[&ids], 1, &self.device)?.remove(0);
        let mut ranked: Vec<(Language, f32)> =
            self.run.languages.iter().cloned().zip(probs).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(ranked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_uniform_lengths_stay_in_range_and_favour_short_ones() {
        let mut r = rng(3);
        let v: Vec<usize> = (0..10_000).map(|_| log_uniform(&mut r, 200)).collect();
        assert!(v.iter().all(|&x| (1..=200).contains(&x)));
        let short = v.iter().filter(|&&x| x <= 20).count() as f64 / v.len() as f64;
        // ln(21)/ln(201) = 0.57
        assert!((0.5..0.65).contains(&short), "{short}");
    }

    #[test]
    fn crops_are_trimmed_and_inside_the_text() {
        let chars: Vec<char> = "ab cd ef".chars().collect();
        let mut r = rng(1);
        for _ in 0..200 {
            let c = crop(&chars, 3, &mut r);
            assert!(!c.is_empty() && c.len() <= 3);
            assert!("ab cd ef".contains(&c));
            assert_eq!(c.trim(), c);
        }
    }

    #[test]
    fn macro_accuracy_weighs_languages_equally() {
        let mut s = LangStats::default();
        for _ in 0..9 {
            s.add(0, true);
        }
        s.add(1, false);
        assert!((s.correct as f64 / s.count as f64 - 0.9).abs() < 1e-12);
        assert!((s.macro_accuracy() - 0.5).abs() < 1e-12);
        let mut t = LangStats::default();
        t.add(1, true);
        s.merge(&t);
        assert!((s.macro_accuracy() - 0.75).abs() < 1e-12);
    }
}
