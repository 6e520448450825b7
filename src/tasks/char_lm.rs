//! A character language model (one-to-many and many-to-many) trained with truncated BPTT on
//! the fortunes of one language, measured in bits per character against an interpolated
//! Kneser-Ney 5-gram model on the same split, vocabulary and unknown-character rule.
//! `deepnet lm-train` and `deepnet generate` are the functions of this file.
//!
//! The text of a split is its entries (whitespace collapsed, see
//! [`crate::data::text::normalize`]) each ended by a newline, so the model learns where a
//! fortune ends. It is cut into `streams` contiguous streams, one per batch row (the classic
//! "batchify" of word-level language modelling): an epoch is one batch of `streams` rows read
//! in windows of `bptt` characters, the state carried from window to window and cut from the
//! graph (the loop's truncated-BPTT mode). Validation and test read their streams the same
//! way, the state carried across windows. Characters seen fewer than `min_char_count` times
//! in the training text are unknown (id 1) in every split, for the network and the baseline
//! alike.

use std::path::{Path, PathBuf};

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::data::batch::rng;
use crate::data::text::vocab::UNKNOWN;
use crate::data::text::{normalize, CharVocab, CorpusSource, Language, LanguageCorpus};
use crate::data::SampleSeeds;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::models::{CharLm, CharLmConfig, KneserNey, LmState};
use crate::train::checkpoint::{load_weights, read_checkpoint_meta, resolve_checkpoint};
use crate::train::run::{
    create_run_dir_with_config, extend_epochs, read_config, refuse_existing_run, write_config,
    CONFIG_FILE,
};
use crate::train::{fit, EpochRecord, Observer, Stats, Task, TrainConfig, TrainOutput};

/// The name of this task in `config.json`.
pub const TASK: &str = "char-lm";

/// Longest prompt `deepnet generate` accepts, in bytes.
pub const MAX_PROMPT_BYTES: usize = 64 * 1024;

/// Order of the Kneser-Ney baseline.
pub const BASELINE_ORDER: usize = 5;

/// The text of a character-LM run and how it is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmData {
    /// The corpus.
    pub source: CorpusSource,
    /// Which of its languages (code).
    pub language: String,
    /// Seed of the split by entry.
    pub split_seed: u64,
    /// Fraction of the entries held out for validation.
    pub valid_fraction: f64,
    /// Fraction held out for the test report.
    pub test_fraction: f64,
    /// Characters seen fewer times in training are unknown.
    pub min_char_count: usize,
    /// Contiguous streams, one per batch row.
    pub streams: usize,
    /// Characters per truncated-BPTT window.
    pub bptt: usize,
}

/// The contents of `config.json` of a character-LM run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmRun {
    /// The task (`char-lm`).
    pub task: String,
    /// The network.
    pub model: CharLmConfig,
    /// The language of the text.
    pub language: Language,
    /// The characters of the vocabulary (ids 2, 3, ...).
    pub vocab: String,
    /// The text.
    pub data: LmData,
    /// Training settings.
    pub train: TrainConfig,
    /// deepnet version that wrote the run.
    pub deepnet_version: String,
}

impl LmRun {
    fn from_json(v: serde_json::Value, origin: &Path) -> Result<LmRun> {
        crate::train::run::task_config(v, origin, TASK, "character language model")
    }
}

/// Summed next-character cross-entropy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LmStats {
    /// Sum of the per-character losses, in nats.
    pub nats: f64,
    /// Characters predicted.
    pub count: usize,
}

impl LmStats {
    /// Bits per character.
    pub fn bits_per_char(&self) -> f64 {
        self.nats / self.count.max(1) as f64 / std::f64::consts::LN_2
    }
}

impl Stats for LmStats {
    fn merge(&mut self, other: &Self) {
        self.nats += other.nats;
        self.count += other.count;
    }
    fn items(&self) -> usize {
        self.count
    }
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("loss", self.nats / self.count.max(1) as f64),
            ("bits_per_char", self.bits_per_char()),
        ]
    }
}

/// The ids of a split's text: its entries, each followed by a newline.
fn split_ids(entries: &[String], vocab: &CharVocab) -> Vec<u32> {
    let mut ids = Vec::new();
    for e in entries {
        ids.extend(vocab.encode(e));
        ids.push(vocab.id('\n'));
    }
    ids
}

/// `ids` cut into `b` contiguous streams of equal length `L + 1` (the last character of a
/// stream is the first of the next: it is only a target). The tail that does not fill a
/// stream is dropped.
pub fn streams(ids: &[u32], b: usize) -> Vec<Vec<u32>> {
    let len = ids.len().saturating_sub(1) / b.max(1);
    (0..b)
        .map(|r| ids[r * len..r * len + len + 1].to_vec())
        .collect()
}

/// Rows of ids as one `[B, L]` tensor.
fn tokens(rows: &[&[u32]], device: &Device) -> Tensor<2, Int> {
    let (b, l) = (rows.len(), rows.first().map_or(0, |r| r.len()));
    let ids: Vec<i64> = rows
        .iter()
        .flat_map(|r| r.iter().map(|&i| i as i64))
        .collect();
    Tensor::from_data(TensorData::new(ids, [b, l]), device) // [batch, time]
}

/// One batch (or one truncated-BPTT window) of streams: `[B, t + 1]` ids, inputs the first
/// `t`, targets the last `t`.
pub struct StreamBatch {
    /// Ids `[B, t + 1]`.
    pub tokens: Tensor<2, Int>,
}

/// Next-character loss of `window` from `state`: (mean loss `[1]`, stats, state after).
fn window_loss(
    model: &CharLm,
    window: Tensor<2, Int>,
    state: Option<LmState>,
) -> Result<(Tensor<1>, LmStats, LmState)> {
    let [b, t1] = window.dims();
    let t = t1 - 1;
    let inputs = window.clone().narrow(1, 0, t); // [B, t]
    let targets = window.narrow(1, 1, t).reshape([b * t]); // [B·t]
    let (logits, state) = model.forward(inputs, state)?; // [B, t, vocab]
    let v = logits.dims()[2];
    let loss = CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits.reshape([b * t, v]), targets); // [B·t, vocab] -> [1]
    let stats = LmStats {
        nats: loss.clone().into_scalar::<f32>() as f64 * (b * t) as f64,
        count: b * t,
    };
    Ok((loss, stats, state))
}

/// Bits per character of `model` on `rows` (streams), read in windows of `bptt` with the state
/// carried across windows.
pub fn evaluate_streams(
    model: &CharLm,
    rows: &[Vec<u32>],
    bptt: usize,
    device: &Device,
) -> Result<LmStats> {
    let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
    let all = tokens(&refs, device);
    let len = all.dims()[1].saturating_sub(1);
    let mut stats = LmStats::default();
    let mut state = None;
    let mut start = 0;
    while start < len {
        let t = bptt.min(len - start);
        let (_, s, st) = window_loss(model, all.clone().narrow(1, start, t + 1), state)?;
        stats.merge(&s);
        state = Some(st);
        start += t;
    }
    Ok(stats)
}

/// The text of a run, encoded and cut.
pub struct LmText {
    /// Vocabulary of the training text.
    pub vocab: CharVocab,
    /// Training streams.
    pub train: Vec<Vec<u32>>,
    /// Validation streams.
    pub valid: Vec<Vec<u32>>,
    /// The validation and test texts as whole id sequences (for the baseline and the report).
    pub valid_ids: Vec<u32>,
    /// The test text.
    pub test_ids: Vec<u32>,
    /// The training text.
    pub train_ids: Vec<u32>,
    /// The language.
    pub language: Language,
}

impl LmText {
    /// Reads the corpus of `data` and encodes its splits (the vocabulary from the training
    /// text).
    pub fn load(data: &LmData) -> Result<LmText> {
        let corpus = LanguageCorpus::load(
            &data.source,
            data.split_seed,
            data.valid_fraction,
            data.test_fraction,
        )?;
        let Some(l) = corpus
            .languages
            .iter()
            .position(|l| l.code == data.language)
        else {
            let codes: Vec<&str> = corpus.languages.iter().map(|l| l.code.as_str()).collect();
            return Err(Error::invalid(
                "language",
                format!(
                    "{} is not in the corpus (it has {})",
                    data.language,
                    codes.join(", ")
                ),
            ));
        };
        let train_text: String = corpus.train[l].iter().map(|e| format!("{e}\n")).collect();
        let vocab = CharVocab::build([train_text.as_str()], data.min_char_count);
        let train_ids = split_ids(&corpus.train[l], &vocab);
        let valid_ids = split_ids(&corpus.valid[l], &vocab);
        let test_ids = split_ids(&corpus.test[l], &vocab);
        for (name, ids) in [("training", &train_ids), ("validation", &valid_ids)] {
            if ids.len() < 2 * data.streams + 1 {
                return Err(Error::invalid(
                    "streams",
                    format!(
                        "the {name} text has {} characters, too few for {} streams",
                        ids.len(),
                        data.streams
                    ),
                ));
            }
        }
        Ok(LmText {
            train: streams(&train_ids, data.streams),
            valid: streams(&valid_ids, data.streams),
            vocab,
            valid_ids,
            test_ids,
            train_ids,
            language: corpus.languages[l].clone(),
        })
    }
}

/// Language modelling of the streams of an [`LmText`].
pub struct LmTask<'a> {
    text: &'a LmText,
    bptt: usize,
}

impl Task for LmTask<'_> {
    type Model = CharLm;
    type Batch = StreamBatch;
    type Stats = LmStats;
    type Carry = Option<LmState>;

    fn unit(&self) -> &'static str {
        "chars"
    }
    fn train_len(&self) -> usize {
        self.text.train.len()
    }
    fn valid_len(&self) -> usize {
        self.text.valid.len()
    }
    /// One batch of every stream, in stream order: the streams continue one another.
    fn epoch_batches(&self, _seed: u64, _batch_size: usize) -> Vec<Vec<usize>> {
        vec![(0..self.text.train.len()).collect()]
    }
    fn batches_per_epoch(&self, _batch_size: usize) -> usize {
        1
    }
    fn train_batch(
        &self,
        indices: &[usize],
        _: SampleSeeds,
        device: &Device,
    ) -> Result<StreamBatch> {
        let rows: Vec<&[u32]> = indices
            .iter()
            .map(|&i| self.text.train[i].as_slice())
            .collect();
        Ok(StreamBatch {
            tokens: tokens(&rows, device),
        })
    }
    fn valid_batch(&self, indices: &[usize], device: &Device) -> Result<StreamBatch> {
        let rows: Vec<&[u32]> = indices
            .iter()
            .map(|&i| self.text.valid[i].as_slice())
            .collect();
        Ok(StreamBatch {
            tokens: tokens(&rows, device),
        })
    }
    fn train_step(
        &self,
        model: &CharLm,
        batch: StreamBatch,
        carry: Option<LmState>,
    ) -> Result<TrainOutput<LmStats, Option<LmState>>> {
        let (loss, stats, state) = window_loss(model, batch.tokens, carry)?;
        Ok(TrainOutput {
            loss,
            stats,
            carry: Some(state),
        })
    }
    /// The whole validation streams, window by window, the state carried.
    fn valid_step(&self, model: &CharLm, batch: StreamBatch) -> Result<LmStats> {
        let len = batch.tokens.dims()[1].saturating_sub(1);
        let mut stats = LmStats::default();
        let mut state = None;
        let mut start = 0;
        while start < len {
            let t = self.bptt.min(len - start);
            let window = batch.tokens.clone().narrow(1, start, t + 1);
            let (_, s, st) = window_loss(model, window, state)?;
            stats.merge(&s);
            state = Some(st);
            start += t;
        }
        Ok(stats)
    }
    fn has_time_axis(&self) -> bool {
        true
    }
    /// Windows of `steps` characters (plus the one target after them).
    fn split_time(&self, batch: StreamBatch, steps: usize) -> Result<Vec<StreamBatch>> {
        let len = batch.tokens.dims()[1].saturating_sub(1);
        let mut out = Vec::new();
        let mut start = 0;
        while start < len {
            let t = steps.min(len - start);
            out.push(StreamBatch {
                tokens: batch.tokens.clone().narrow(1, start, t + 1), // [B, t + 1]
            });
            start += t;
        }
        Ok(out)
    }
    fn default_valid_batch_size(&self, _train_batch_size: usize) -> usize {
        self.text.valid.len()
    }
}

/// The test report of a character-LM run (`report/lm_test.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmReport {
    /// Vocabulary size (padding and unknown included).
    pub vocab_size: usize,
    /// Characters of each split's text: train, validation, test.
    pub chars: [usize; 3],
    /// Unknown characters in the test text.
    pub test_unknown: usize,
    /// The network's bits per character on the validation and test streams.
    pub rnn_valid_bpc: f64,
    /// On the test streams.
    pub rnn_test_bpc: f64,
    /// The Kneser-Ney baseline on the validation text.
    pub kn_valid_bpc: f64,
    /// On the test text.
    pub kn_test_bpc: f64,
    /// The baseline's order.
    pub kn_order: usize,
    /// A sample: prompt, temperature, seed and text.
    pub sample: Sample,
}

/// A generated text and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The prompt.
    pub prompt: String,
    /// Softmax temperature.
    pub temperature: f64,
    /// Sampling seed.
    pub seed: u64,
    /// The prompt followed by the generated characters.
    pub text: String,
}

fn report(model: &CharLm, text: &LmText, run: &LmRun, device: &Device) -> Result<LmReport> {
    let test_streams = streams(
        &text.test_ids,
        run.data.streams.min(text.test_ids.len() / 2).max(1),
    );
    let rnn_valid = evaluate_streams(model, &text.valid, run.data.bptt, device)?;
    let rnn_test = evaluate_streams(model, &test_streams, run.data.bptt, device)?;
    let kn = KneserNey::fit(&text.train_ids, BASELINE_ORDER, text.vocab.len());
    let generator = Generator {
        run: run.clone(),
        vocab: text.vocab.clone(),
        model: model.clone(),
        device: device.clone(),
    };
    let sample = generator.generate("The ", 400, 0.8, 1)?;
    Ok(LmReport {
        vocab_size: text.vocab.len(),
        chars: [
            text.train_ids.len(),
            text.valid_ids.len(),
            text.test_ids.len(),
        ],
        test_unknown: text.test_ids.iter().filter(|&&i| i == UNKNOWN).count(),
        rnn_valid_bpc: rnn_valid.bits_per_char(),
        rnn_test_bpc: rnn_test.bits_per_char(),
        kn_valid_bpc: kn.bits_per_char(&text.valid_ids),
        kn_test_bpc: kn.bits_per_char(&text.test_ids),
        kn_order: BASELINE_ORDER,
        sample: Sample {
            prompt: "The ".into(),
            temperature: 0.8,
            seed: 1,
            text: sample,
        },
    })
}

/// What starting a character-LM run asks for.
#[derive(Debug, Clone)]
pub struct LmRequest {
    /// The network (its vocabulary size is filled in from the text).
    pub model: CharLmConfig,
    /// The text.
    pub data: LmData,
    /// Training settings (the batch size and truncation come from `data`).
    pub train: TrainConfig,
    /// The run directory.
    pub out: PathBuf,
}

/// What a finished run reports.
#[derive(Debug)]
pub struct LmOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// The run's configuration.
    pub run: LmRun,
    /// Test report.
    pub report: LmReport,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
}

fn train_in(
    run: &LmRun,
    text: &LmText,
    dir: &Path,
    resume: Option<&crate::train::CheckpointMeta>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<LmOutcome> {
    let ad = device.clone().autodiff();
    ad.seed(run.train.seed);
    let model = run.model.init(&ad);
    let task = LmTask {
        text,
        bptt: run.data.bptt,
    };
    let json = serde_json::to_value(run).expect("run serializes");
    let fitted = fit(&task, model, &run.train, &json, dir, resume, &ad, observer)?;
    let model = fitted.model.valid();
    let report = report(&model, text, run, device)?;
    let out = dir.join("report");
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let json = serde_json::to_string_pretty(&report).expect("report serializes");
    write_atomic(&out.join("lm_test.json"), json.as_bytes())?;
    write_atomic(&out.join("sample.txt"), report.sample.text.as_bytes())?;
    Ok(LmOutcome {
        dir: dir.to_path_buf(),
        run: run.clone(),
        report,
        history: fitted.history,
    })
}

fn check(data: &LmData) -> Result<()> {
    if data.streams == 0 {
        return Err(Error::invalid("streams", "must be at least 1"));
    }
    if data.bptt == 0 {
        return Err(Error::invalid("bptt", "must be at least 1"));
    }
    let ok = |f: f64| f.is_finite() && f > 0.0 && f < 0.5;
    for (what, f) in [
        ("valid_fraction", data.valid_fraction),
        ("test_fraction", data.test_fraction),
    ] {
        if !ok(f) {
            return Err(Error::invalid(what, format!("{f} is not in (0, 0.5)")));
        }
    }
    Ok(())
}

/// Reads the text, creates the run directory of `req`, trains, tests and writes the report
/// (`report/lm_test.json`, `report/sample.txt`). Refuses a directory that already holds a run.
pub fn start_run(
    req: &LmRequest,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<LmOutcome> {
    check(&req.data)?;
    let train = TrainConfig {
        batch_size: req.data.streams,
        tbptt: Some(req.data.bptt),
        checkpoint_every: None,
        ..req.train.clone()
    };
    train.validate()?;
    refuse_existing_run(&req.out)?;
    let text = LmText::load(&req.data)?;
    let model = CharLmConfig {
        vocab_size: text.vocab.len(),
        ..req.model.clone()
    };
    model.validate()?;
    let run = LmRun {
        task: TASK.into(),
        model,
        language: text.language.clone(),
        vocab: text.vocab.chars.clone(),
        data: req.data.clone(),
        train,
        deepnet_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    create_run_dir_with_config(&req.out, &run)?;
    train_in(&run, &text, &req.out, None, device, observer)
}

/// Continues the character-LM run in `dir` from its last checkpoint, up to `epochs` epochs in
/// all (default: the run's own count).
pub fn resume_run(
    dir: &Path,
    epochs: Option<usize>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<LmOutcome> {
    let config_path = dir.join(CONFIG_FILE);
    let mut run = LmRun::from_json(read_config(dir)?, &config_path)?;
    // Before anything in the run is read for training or written.
    crate::train::run::lock_run_dir(dir)?;
    let meta = read_checkpoint_meta(&resolve_checkpoint(dir)?)?;
    extend_epochs(&mut run.train, epochs, meta.state.epoch)?;
    let text = LmText::load(&run.data)?;
    if text.vocab.chars != run.vocab {
        return Err(Error::bad_data(
            &config_path,
            "the text changed since the run started (other characters): start a new run",
        ));
    }
    write_config(dir, &serde_json::to_value(&run).expect("run serializes"))?;
    train_in(&run, &text, dir, Some(&meta), device, observer)
}

/// A trained character language model, ready to write.
pub struct Generator {
    /// The run's configuration.
    pub run: LmRun,
    vocab: CharVocab,
    model: CharLm,
    device: Device,
}

impl Generator {
    /// Loads the checkpoint of the run at `path` (a run directory or a checkpoint file).
    pub fn load(path: &Path, device: &Device) -> Result<Generator> {
        let file = resolve_checkpoint(path)?;
        let meta = read_checkpoint_meta(&file)?;
        let run = LmRun::from_json(meta.run, &file)?;
        let model = load_weights(run.model.init(device), &file)?;
        Ok(Generator {
            vocab: CharVocab::from_chars(run.vocab.clone()),
            run,
            model,
            device: device.clone(),
        })
    }

    /// `prompt` followed by `length` characters sampled at `temperature` with `seed` (the same
    /// arguments give the same text). The prompt's whitespace is collapsed as the training
    /// text's was; characters the model never saw are read as unknown. Unknown and padding
    /// ids are never written.
    pub fn generate(
        &self,
        raw_prompt: &str,
        length: usize,
        temperature: f64,
        seed: u64,
    ) -> Result<String> {
        if raw_prompt.len() > MAX_PROMPT_BYTES {
            return Err(Error::invalid(
                "prompt",
                format!(
                    "{} bytes; the limit is {MAX_PROMPT_BYTES} (64 KiB)",
                    raw_prompt.len()
                ),
            ));
        }
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(Error::invalid(
                "temperature",
                format!("{temperature} is not a positive number"),
            ));
        }
        if length == 0 {
            return Err(Error::invalid("length", "must be at least 1"));
        }
        let chars: Vec<char> = std::iter::once('\0')
            .chain(self.vocab.chars.chars())
            .collect();
        // Whitespace collapsed as in training, a final space kept: it says a word has ended.
        let mut prompt = normalize(raw_prompt);
        if !prompt.is_empty() && raw_prompt.ends_with(char::is_whitespace) {
            prompt.push(' ');
        }
        // An entry starts after a newline: that is the context of an empty prompt too.
        let mut ids = vec![self.vocab.id('\n')];
        ids.extend(self.vocab.encode(&prompt));
        let mut r = rng(seed);
        let mut out = prompt.clone();
        let mut state = None;
        let mut input = ids;
        for _ in 0..length {
            let (logits, s) = self.model.forward(tokens(&[&input], &self.device), state)?;
            state = Some(s);
            let t = logits.dims()[1];
            let last = logits.narrow(1, t - 1, 1).reshape([1, self.vocab.len()]); // [1, vocab]
            let p = softmax(last.div_scalar(temperature), 1)
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| Error::invalid("logits", format!("{e:?}")))?;
            // Padding and unknown are not characters: never drawn.
            let weights: Vec<f64> = p
                .iter()
                .enumerate()
                .map(|(i, &x)| if i < 2 { 0.0 } else { x as f64 })
                .collect();
            let total: f64 = weights.iter().sum();
            let mut u = r.random::<f64>() * total;
            let mut next = weights.len() - 1;
            for (i, w) in weights.iter().enumerate() {
                if u < *w {
                    next = i;
                    break;
                }
                u -= w;
            }
            out.push(chars[next - 1]);
            input = vec![next as u32];
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_continue_one_another() {
        let ids: Vec<u32> = (0..23).collect();
        let s = streams(&ids, 4);
        assert_eq!(s.len(), 4);
        assert!(s.iter().all(|r| r.len() == 6));
        // The last character of a stream is the first of the next.
        for w in s.windows(2) {
            assert_eq!(w[0][5], w[1][0]);
        }
        assert_eq!(s[0][0], 0);
    }

    #[test]
    fn bits_per_char_of_summed_nats() {
        let s = LmStats {
            nats: 2.0 * std::f64::consts::LN_2 * 10.0,
            count: 10,
        };
        assert!((s.bits_per_char() - 2.0).abs() < 1e-12);
    }
}
