//! Teacher forcing's targets and loss, shared by every task whose model writes token
//! sequences (grapheme to phoneme, captioning): the decoder inputs (the start token, then the
//! target shifted right), the targets (then the end token), the padding mask, and the mean
//! cross-entropy per target token with the token statistics the loop sums.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use super::Stats;

/// Teacher-forcing targets of a batch of token sequences.
#[derive(Debug, Clone)]
pub struct TargetTokens {
    /// Decoder inputs `[B, T]`: the start token, then each sequence (padded).
    pub inputs: Tensor<2, Int>,
    /// Targets `[B, T]`: each sequence, then the end token (padded).
    pub targets: Tensor<2, Int>,
    /// 1 at target tokens, 0 at padding, `[B, T]`.
    pub mask: Tensor<2>,
    /// Target tokens in the batch (end tokens included).
    pub tokens: usize,
}

impl TargetTokens {
    /// The targets of `sequences` (token ids, without start or end token), padded with `pad`,
    /// on `device`; `T` is the longest sequence plus one.
    pub fn new(sequences: &[&[u32]], bos: u32, eos: u32, pad: u32, device: &Device) -> Self {
        let b = sequences.len();
        let t = sequences.iter().map(|x| x.len() + 1).max().unwrap_or(1);
        let mut inputs = vec![pad as i64; b * t];
        let mut targets = vec![pad as i64; b * t];
        let mut mask = vec![0f32; b * t];
        for (row, ids) in sequences.iter().enumerate() {
            inputs[row * t] = bos as i64;
            for (k, &id) in ids.iter().enumerate() {
                inputs[row * t + k + 1] = id as i64;
                targets[row * t + k] = id as i64;
            }
            targets[row * t + ids.len()] = eos as i64;
            mask[row * t..row * t + ids.len() + 1].fill(1.0);
        }
        TargetTokens {
            inputs: Tensor::from_data(TensorData::new(inputs, [b, t]), device),
            targets: Tensor::from_data(TensorData::new(targets, [b, t]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, t]), device),
            tokens: sequences.iter().map(|x| x.len() + 1).sum(),
        }
    }
}

/// Summed statistics of teacher-forced tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenStats {
    /// Summed cross-entropy of the target tokens (nats).
    pub nats: f64,
    /// Target tokens whose most likely prediction (given the true prefix) is right.
    pub correct: usize,
    /// Target tokens.
    pub tokens: usize,
}

impl Stats for TokenStats {
    fn merge(&mut self, other: &Self) {
        self.nats += other.nats;
        self.correct += other.correct;
        self.tokens += other.tokens;
    }
    fn items(&self) -> usize {
        self.tokens
    }
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        let n = self.tokens.max(1) as f64;
        vec![
            ("loss", self.nats / n),
            ("token_accuracy", self.correct as f64 / n),
        ]
    }
}

/// The mean cross-entropy per target token of `logits [B, T, vocab]` against `targets`
/// (padding excluded), with the batch's statistics.
pub fn token_loss(logits: Tensor<3>, targets: TargetTokens) -> (Tensor<1>, TokenStats) {
    let [b, t, _] = logits.dims();
    let log_probs = log_softmax(logits, 2);
    let predicted = log_probs.clone().argmax(2).reshape([b, t]); // [B, T]
    let picked = log_probs
        .gather(2, targets.targets.clone().reshape([b, t, 1]))
        .reshape([b, t]); // [B, T]
    let nats = (picked * targets.mask.clone()).sum().neg(); // [1]
    let loss = nats.clone().div_scalar(targets.tokens.max(1) as f32);
    let hits = predicted.equal(targets.targets).float() * targets.mask;
    let stats = TokenStats {
        nats: nats.into_scalar::<f32>() as f64,
        correct: hits.sum().into_scalar::<f32>().round() as usize,
        tokens: targets.tokens,
    };
    (loss, stats)
}
