//! A recurrent decoder that reads a memory of annotation vectors through soft attention: the
//! one decoder of deepnet's sequence-to-sequence and captioning models. Trained with teacher
//! forcing ([`AttentionDecoder::teacher_forced`]); decoded greedily ([`AttentionDecoder::greedy`])
//! or by beam search ([`AttentionDecoder::beam`]), each returning the attention weights of
//! every output step for inspection.
//!
//! With `y_{t-1}` the previous output token, `E` its embedding, `s` the LSTM/GRU state and
//! `c_t` the context (see [`super::attention`]), one step is:
//!
//! - **additive** (Bahdanau et al. 2015): `c_t = attend(s_{t-1})`,
//!   `s_t = cell([E y_{t-1}; c_t], s_{t-1})`, `logits = W_o [s_t; c_t] + b_o`;
//! - **multiplicative** (Luong et al. 2015, with input feeding):
//!   `s_t = cell([E y_{t-1}; h̃_{t-1}], s_{t-1})`, `c_t = attend(s_t)`,
//!   `h̃_t = tanh(W_c [c_t; s_t])`, `logits = W_o h̃_t + b_o`;
//! - **none** (Sutskever et al. 2014): `s_t = cell(E y_{t-1}, s_{t-1})`,
//!   `logits = W_o s_t + b_o`: the source reaches the decoder only through its first state.
//!
//! The first state comes from a summary `m` of the source (a bidirectional encoder's two final
//! states; a CNN's mean annotation vector), one of two ways ([`SummaryUse`]):
//! `h_0 = tanh(W_b m + b_b)`, `c_0 = 0` (Bahdanau et al.; Xu et al.), or, as Show and Tell
//! (Vinyals et al. 2015) feeds the image, as the input of a step before the start token:
//! `s_0 = cell(W_b m + b_b, 0)` (decoders without attention only).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, tanh};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::attention::{row_index, Attention, AttentionConfig, Memory, Score};
use crate::error::{Error, Result};
use crate::recurrent::{CellType, GruCell, GruCellConfig, LstmCell, LstmCellConfig};

/// Whether and how the decoder attends to the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttentionKind {
    /// No attention: the memory's summary sets the first state, nothing more.
    None,
    /// Bahdanau's additive attention, queried with the previous state.
    Additive,
    /// Luong's multiplicative attention, queried with the new state, with input feeding.
    Multiplicative,
}

impl AttentionKind {
    /// The score function, when there is attention.
    pub fn score(self) -> Option<Score> {
        match self {
            AttentionKind::None => None,
            AttentionKind::Additive => Some(Score::Additive),
            AttentionKind::Multiplicative => Some(Score::Multiplicative),
        }
    }

    /// The name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            AttentionKind::None => "none",
            AttentionKind::Additive => "additive",
            AttentionKind::Multiplicative => "multiplicative",
        }
    }
}

/// The widest beam [`AttentionDecoder::beam`] searches: its hypotheses and their attention
/// weights grow with the width, and past a few dozen wider beams stop finding better outputs.
pub const MAX_BEAM_WIDTH: usize = 64;

/// How the source's summary starts the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SummaryUse {
    /// It sets the first state: `h_0 = tanh(W_b m + b_b)`, `c_0 = 0`.
    #[default]
    InitialState,
    /// It is the input of one step before the start token, from a zero state (Show and
    /// Tell's image input); only without attention.
    FirstInput,
}

/// Token ids with a meaning to the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    /// The first input of every output sequence.
    pub bos: u32,
    /// Ends an output sequence.
    pub eos: u32,
}

/// Configuration of an [`AttentionDecoder`].
#[derive(Config, Debug, PartialEq)]
pub struct AttentionDecoderConfig {
    /// Output tokens (padding and the special tokens included).
    pub vocab_size: usize,
    /// Features of each annotation vector of the memory.
    pub memory_size: usize,
    /// Features of the summary that sets the first state.
    pub summary_size: usize,
    /// Features of an output token's embedding (default 64).
    #[config(default = 64)]
    pub embed_size: usize,
    /// Features of the decoder state (default 256).
    #[config(default = 256)]
    pub hidden_size: usize,
    /// The recurrent cell (default LSTM).
    #[config(default = "CellType::Lstm")]
    pub cell: CellType,
    /// The attention (default additive).
    #[config(default = "AttentionKind::Additive")]
    pub attention: AttentionKind,
    /// Features of the additive score's hidden layer (default 128).
    #[config(default = 128)]
    pub attention_size: usize,
    /// How the source's summary starts the decoder (default: it sets the first state).
    #[config(default = "SummaryUse::InitialState")]
    pub summary_use: SummaryUse,
}

impl AttentionDecoderConfig {
    /// Checks that the settings fit together.
    pub fn validate(&self) -> Result<()> {
        if self.summary_use == SummaryUse::FirstInput && self.attention != AttentionKind::None {
            return Err(Error::invalid(
                "summary_use",
                "the summary can be the first input only of a decoder without attention",
            ));
        }
        Ok(())
    }

    /// Features the cell reads per step.
    fn cell_input(&self) -> usize {
        self.embed_size
            + match self.attention {
                AttentionKind::None => 0,
                AttentionKind::Additive => self.memory_size,
                AttentionKind::Multiplicative => self.hidden_size,
            }
    }

    /// Features the output layer reads.
    fn output_input(&self) -> usize {
        match self.attention {
            AttentionKind::Additive => self.hidden_size + self.memory_size,
            AttentionKind::None | AttentionKind::Multiplicative => self.hidden_size,
        }
    }

    /// The decoder, randomly initialised (PyTorch's initialisation for the cell).
    pub fn init(&self, device: &Device) -> AttentionDecoder {
        let input = self.cell_input();
        let (lstm, gru) = match self.cell {
            CellType::Lstm => (
                Some(LstmCellConfig::new(input, self.hidden_size).init(device)),
                None,
            ),
            CellType::Gru => (
                None,
                Some(GruCellConfig::new(input, self.hidden_size).init(device)),
            ),
        };
        AttentionDecoder {
            embedding: EmbeddingConfig::new(self.vocab_size, self.embed_size).init(device),
            bridge: LinearConfig::new(
                self.summary_size,
                match self.summary_use {
                    SummaryUse::InitialState => self.hidden_size,
                    SummaryUse::FirstInput => self.embed_size,
                },
            )
            .init(device),
            lstm,
            gru,
            attention: self.attention.score().map(|score| {
                AttentionConfig::new(self.hidden_size, self.memory_size, score)
                    .with_attention_size(self.attention_size)
                    .init(device)
            }),
            combine: (self.attention == AttentionKind::Multiplicative).then(|| {
                LinearConfig::new(self.memory_size + self.hidden_size, self.hidden_size)
                    .with_bias(false)
                    .init(device)
            }),
            out: LinearConfig::new(self.output_input(), self.vocab_size).init(device),
            kind: self.attention,
            summary_use: self.summary_use,
            hidden_size: self.hidden_size,
        }
    }
}

/// The decoder; see the module doc. Exactly one of `lstm` and `gru` is `Some`; `attention` is
/// `Some` unless the kind is none; `combine` (`W_c`) only with multiplicative attention.
#[derive(Module, Debug)]
pub struct AttentionDecoder {
    /// Output-token embeddings `[vocab, embed]`.
    pub embedding: Embedding,
    /// `W_b`: the memory's summary to the first state (or the first input).
    pub bridge: Linear,
    /// The cell, when it is an LSTM.
    pub lstm: Option<LstmCell>,
    /// The cell, when it is a GRU.
    pub gru: Option<GruCell>,
    /// The attention.
    pub attention: Option<Attention>,
    /// `W_c` of Luong's attentional state.
    pub combine: Option<Linear>,
    /// `W_o`: features to output logits.
    pub out: Linear,
    #[module(skip)]
    kind: AttentionKind,
    #[module(skip)]
    summary_use: SummaryUse,
    /// Features of the state.
    pub hidden_size: usize,
}

/// The decoder's state between steps: `h`, `c` (zeros for a GRU) and Luong's `h̃` (zeros
/// otherwise), each `[B, H]`.
#[derive(Debug, Clone)]
pub struct DecoderState {
    /// Hidden state.
    pub h: Tensor<2>,
    /// Cell state (LSTM).
    pub c: Tensor<2>,
    /// The attentional state `h̃` of the last step (multiplicative attention).
    pub feed: Tensor<2>,
}

impl DecoderState {
    /// Rows `rows` of the state, in that order.
    pub fn select(&self, rows: &[usize]) -> DecoderState {
        let index = row_index(rows, &self.h.device());
        DecoderState {
            h: self.h.clone().select(0, index.clone()),
            c: self.c.clone().select(0, index.clone()),
            feed: self.feed.clone().select(0, index),
        }
    }
}

/// One decoded sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Output tokens, without the end token.
    pub tokens: Vec<u32>,
    /// Sum of the log-probabilities of the tokens and the end token (when it was reached).
    pub log_prob: f32,
    /// Whether the end token was produced within the length limit.
    pub finished: bool,
    /// Attention weights of each output step (the end token's included), each over the
    /// row's valid memory positions; empty without attention.
    pub weights: Vec<Vec<f32>>,
}

/// How a sequence is decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeOptions {
    /// The special tokens.
    pub tokens: SpecialTokens,
    /// Most output tokens (the end token not counted).
    pub max_len: usize,
    /// Beam width (1: greedy).
    pub beam_width: usize,
    /// Length normalisation of beam search: hypotheses rank by `log p / len^alpha`, `len`
    /// counting the end token (0: by `log p`, which favours short outputs).
    pub length_alpha: f32,
}

impl AttentionDecoder {
    /// Whether and how this decoder attends.
    pub fn kind(&self) -> AttentionKind {
        self.kind
    }

    /// The first state from a summary of the memory, `[B, summary]` (see [`SummaryUse`]).
    pub fn initial_state(&self, summary: Tensor<2>) -> DecoderState {
        let projected = self.bridge.forward(summary);
        match self.summary_use {
            SummaryUse::InitialState => {
                let h = tanh(projected); // [B, H]
                let zeros = h.zeros_like();
                DecoderState {
                    h,
                    c: zeros.clone(),
                    feed: zeros,
                }
            }
            SummaryUse::FirstInput => {
                // One step from a zero state that reads the summary as its input [B, E].
                let b = projected.dims()[0];
                let zeros = Tensor::<2>::zeros([b, self.hidden_size], &projected.device());
                let (h, c) = match (&self.lstm, &self.gru) {
                    (Some(lstm), _) => lstm.forward(projected, (zeros.clone(), zeros.clone())),
                    (None, Some(gru)) => (gru.forward(projected, zeros.clone()), zeros.clone()),
                    (None, None) => unreachable!("an AttentionDecoder has one cell"),
                };
                DecoderState { h, c, feed: zeros }
            }
        }
    }

    /// One step from the embedded previous tokens `e [B, E]`: the features the output layer
    /// reads, the new state and the attention weights (`None` without attention).
    fn advance(
        &self,
        e: Tensor<2>,
        state: DecoderState,
        memory: &Memory,
    ) -> (Tensor<2>, DecoderState, Option<Tensor<2>>) {
        let cell = |x: Tensor<2>, s: &DecoderState| -> (Tensor<2>, Tensor<2>) {
            match (&self.lstm, &self.gru) {
                (Some(lstm), _) => lstm.forward(x, (s.h.clone(), s.c.clone())),
                (None, Some(gru)) => (gru.forward(x, s.h.clone()), s.c.clone()),
                (None, None) => unreachable!("an AttentionDecoder has one cell"),
            }
        };
        match (self.kind, &self.attention) {
            (AttentionKind::Additive, Some(attention)) => {
                let (context, weights) = attention.attend(state.h.clone(), memory);
                let (h, c) = cell(Tensor::cat(vec![e, context.clone()], 1), &state);
                let features = Tensor::cat(vec![h.clone(), context], 1); // [B, H + D]
                let feed = state.feed;
                (features, DecoderState { h, c, feed }, Some(weights))
            }
            (AttentionKind::Multiplicative, Some(attention)) => {
                let (h, c) = cell(Tensor::cat(vec![e, state.feed.clone()], 1), &state);
                let (context, weights) = attention.attend(h.clone(), memory);
                let combine = self.combine.as_ref().expect("Luong attention has W_c");
                let feed = tanh(combine.forward(Tensor::cat(vec![context, h.clone()], 1))); // [B, H]
                (feed.clone(), DecoderState { h, c, feed }, Some(weights))
            }
            _ => {
                let (h, c) = cell(e, &state);
                let feed = state.feed;
                (h.clone(), DecoderState { h, c, feed }, None)
            }
        }
    }

    /// Teacher forcing: the logits of every step when step `t` reads the true token
    /// `inputs[:, t]` (the start token, then the target shifted right), `inputs [B, T]` ->
    /// `[B, T, vocab]`.
    pub fn teacher_forced(
        &self,
        inputs: Tensor<2, Int>,
        state: DecoderState,
        memory: &Memory,
    ) -> Tensor<3> {
        let [b, t] = inputs.dims();
        let embedded = self.embedding.forward(inputs); // [B, T, E]
        let e_size = embedded.dims()[2];
        let mut state = state;
        let mut features = Vec::with_capacity(t);
        for step in 0..t {
            let e = embedded.clone().narrow(1, step, 1).reshape([b, e_size]); // [B, E]
            let (f, next, _) = self.advance(e, state, memory);
            features.push(f);
            state = next;
        }
        let features: Tensor<3> = Tensor::stack(features, 1); // [B, T, F]
        self.out.forward(features) // [B, T, vocab]
    }

    /// One inference step from the previous tokens: log-probabilities `[B, vocab]` on the
    /// host, the new state and the attention weights on the host (`[B][S]`, empty without
    /// attention).
    fn step_host(
        &self,
        previous: &[u32],
        state: DecoderState,
        memory: &Memory,
    ) -> Result<HostStep> {
        let device = state.h.device();
        let b = previous.len();
        let tokens = Tensor::<2, Int>::from_data(
            TensorData::new(previous.iter().map(|&t| t as i64).collect(), [b, 1]),
            &device,
        );
        let e = self.embedding.forward(tokens); // [B, 1, E]
        let e_size = e.dims()[2];
        let (features, state, weights) = self.advance(e.reshape([b, e_size]), state, memory);
        let log_probs = log_softmax(self.out.forward(features), 1);
        let rows = |t: Tensor<2>| -> Result<Vec<Vec<f32>>> {
            let cols = t.dims()[1];
            let v = t
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| Error::invalid("decoder output", format!("{e:?}")))?;
            Ok(v.chunks(cols.max(1)).map(<[f32]>::to_vec).collect())
        };
        let weights = match weights {
            Some(w) => rows(w)?,
            None => Vec::new(),
        };
        Ok((rows(log_probs)?, state, weights))
    }

    /// Greedy decoding of every row of `memory`, from `state` (`B` rows): at each step the
    /// most likely token, until the end token or `options.max_len` tokens.
    pub fn greedy(
        &self,
        state: DecoderState,
        memory: &Memory,
        options: &DecodeOptions,
    ) -> Result<Vec<Hypothesis>> {
        let b = memory.batch();
        let mut out: Vec<Hypothesis> = (0..b)
            .map(|_| Hypothesis {
                tokens: Vec::new(),
                log_prob: 0.0,
                finished: false,
                weights: Vec::new(),
            })
            .collect();
        let mut previous = vec![options.tokens.bos; b];
        // Rows still decoding: not ended, not cut by the length limit.
        let mut active = vec![true; b];
        let mut state = state;
        while active.iter().any(|&a| a) {
            let (log_probs, next, weights) = self.step_host(&previous, state, memory)?;
            state = next;
            for (row, hyp) in out.iter_mut().enumerate() {
                if !active[row] {
                    continue;
                }
                let token = argmax(&log_probs[row]);
                if token != options.tokens.eos && hyp.tokens.len() == options.max_len {
                    // Cut by the length limit: unfinished, this step belongs to no token.
                    active[row] = false;
                    continue;
                }
                hyp.log_prob += log_probs[row][token as usize];
                if let Some(w) = weights.get(row) {
                    hyp.weights.push(w[..memory.lengths[row]].to_vec());
                }
                if token == options.tokens.eos {
                    hyp.finished = true;
                    active[row] = false;
                } else {
                    hyp.tokens.push(token);
                    previous[row] = token;
                }
            }
        }
        Ok(out)
    }

    /// Beam search over row `row` of `memory` (state `state`, one row): keeps the
    /// `options.beam_width` best partial outputs at each step; a hypothesis that produces
    /// the end token is set aside; the search stops when `beam_width` are set aside (or at
    /// `max_len` tokens). Returns the hypotheses best first by the length-normalised score
    /// (see [`DecodeOptions::length_alpha`]). With width 1 it is greedy decoding.
    pub fn beam(
        &self,
        state: DecoderState,
        memory: &Memory,
        options: &DecodeOptions,
    ) -> Result<Vec<Hypothesis>> {
        let width = options.beam_width;
        check_beam_width(width)?;
        if memory.batch() != 1 || state.h.dims()[0] != 1 {
            return Err(Error::invalid(
                "memory",
                "beam search decodes one sequence at a time",
            ));
        }
        let valid = memory.lengths[0];
        let normalised = |h: &Hypothesis| {
            let len = (h.tokens.len() + usize::from(h.finished)).max(1) as f32;
            h.log_prob / len.powf(options.length_alpha)
        };
        let mut live = vec![Hypothesis {
            tokens: Vec::new(),
            log_prob: 0.0,
            finished: false,
            weights: Vec::new(),
        }];
        let mut memory_rows = memory.select(&[0]);
        let mut state = state;
        let mut done: Vec<Hypothesis> = Vec::new();
        // Hypotheses stopped by the length limit before they ended.
        let mut cut: Vec<Hypothesis> = Vec::new();
        loop {
            let previous: Vec<u32> = live
                .iter()
                .map(|h| h.tokens.last().copied().unwrap_or(options.tokens.bos))
                .collect();
            let (log_probs, next, weights) = self.step_host(&previous, state, &memory_rows)?;
            // Every (hypothesis, token) extension, best first (ties: earlier hypothesis,
            // lower token, as greedy's argmax).
            let mut candidates: Vec<(f32, usize, u32)> = Vec::new();
            for (i, lp) in log_probs.iter().enumerate() {
                for (token, &p) in lp.iter().enumerate() {
                    candidates.push((live[i].log_prob + p, i, token as u32));
                }
            }
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let mut parents = Vec::new();
            let mut next_live = Vec::new();
            let mut cut_from = Vec::new();
            for &(score, i, token) in candidates.iter().take(2 * width) {
                let mut h = live[i].clone();
                h.log_prob = score;
                if let Some(w) = weights.get(i) {
                    h.weights.push(w[..valid].to_vec());
                }
                if token == options.tokens.eos {
                    h.finished = true;
                    done.push(h);
                } else if h.tokens.len() < options.max_len {
                    h.tokens.push(token);
                    parents.push(i);
                    next_live.push(h);
                } else if !cut_from.contains(&i) {
                    // This step belongs to no token: as greedy decoding, the hypothesis
                    // stops as it was.
                    cut_from.push(i);
                    cut.push(live[i].clone());
                }
                if done.len() >= width || next_live.len() + cut.len() >= width {
                    break;
                }
            }
            if done.len() >= width || next_live.is_empty() {
                break;
            }
            state = next.select(&parents);
            memory_rows = memory.select(&vec![0; parents.len()]);
            live = next_live;
        }
        if done.is_empty() {
            // Nothing ended within the limit: the cut hypotheses, unfinished.
            done = cut;
        }
        done.sort_by(|a, b| normalised(b).total_cmp(&normalised(a)));
        Ok(done)
    }
}

/// Checks a beam width: 1 to [`MAX_BEAM_WIDTH`].
pub fn check_beam_width(width: usize) -> Result<()> {
    if !(1..=MAX_BEAM_WIDTH).contains(&width) {
        return Err(Error::invalid(
            "beam_width",
            format!("{width} is not in 1..={MAX_BEAM_WIDTH}"),
        ));
    }
    Ok(())
}

/// One inference step on the host: log-probabilities `[B][vocab]`, the new state, the
/// attention weights `[B][S]` (empty without attention).
type HostStep = (Vec<Vec<f32>>, DecoderState, Vec<Vec<f32>>);

/// The index of the largest value (the first of equals).
fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_starts_the_decoder_either_way() {
        let device = Device::flex();
        for use_ in [SummaryUse::InitialState, SummaryUse::FirstInput] {
            let config = AttentionDecoderConfig::new(7, 5, 5)
                .with_embed_size(4)
                .with_hidden_size(6)
                .with_attention(AttentionKind::None)
                .with_summary_use(use_);
            config.validate().unwrap();
            let decoder = config.init(&device);
            let a = Tensor::<2>::ones([2, 5], &device);
            let s1 = decoder.initial_state(a.clone());
            let s2 = decoder.initial_state(a.neg());
            assert_eq!(s1.h.dims(), [2, 6]);
            let moved = (s1.h - s2.h).abs().max().into_scalar::<f32>();
            assert!(
                moved > 1e-4,
                "{use_:?}: the first state ignores the summary"
            );
            if use_ == SummaryUse::FirstInput {
                // An LSTM step from zeros: the cell state is not zero.
                assert!(s1.c.abs().max().into_scalar::<f32>() > 0.0);
            }
        }
        let e = AttentionDecoderConfig::new(7, 5, 5)
            .with_summary_use(SummaryUse::FirstInput)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("without attention"), "{e}");
    }
}
