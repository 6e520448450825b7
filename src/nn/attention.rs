//! Soft attention over a memory of annotation vectors: additive (Bahdanau et al. 2015) and
//! multiplicative (Luong et al. 2015, "general"). The same module serves a sequence encoder's
//! outputs (one vector per source letter) and a CNN's feature grid (one vector per cell).
//!
//! For a query `q` (a decoder state) and annotations `h_1 .. h_S`:
//!
//! - additive: `e_j = vᵀ tanh(W_q q + W_k h_j + b)`
//! - multiplicative: `e_j = qᵀ W_k h_j`
//! - weights `α = softmax(e)` over the valid positions (padded ones get `α_j = 0`), and the
//!   context `c = Σ_j α_j h_j`.
//!
//! The keys `W_k h_j` do not depend on the query: [`Attention::memory`] computes them once per
//! sequence, and each decoder step costs one `[S]` score per row.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{softmax, tanh};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a padded memory position adds to its score: `exp` of it is exactly 0 in f32, so the
/// softmax gives it no weight, and unlike `-inf` it keeps the gradient finite.
const MASKED: f32 = -1.0e9;

/// How a decoder state scores an annotation vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Score {
    /// Bahdanau et al. (2015): `vᵀ tanh(W_q q + W_k h_j + b)`.
    Additive,
    /// Luong et al. (2015), "general": `qᵀ W_k h_j`.
    Multiplicative,
}

/// Configuration of an [`Attention`].
#[derive(Config, Debug, PartialEq)]
pub struct AttentionConfig {
    /// Features of the query (the decoder state).
    pub query_size: usize,
    /// Features of each annotation vector.
    pub memory_size: usize,
    /// The score function.
    pub score: Score,
    /// Features of the additive score's hidden layer (default 128; unused by the
    /// multiplicative score, whose keys have `query_size` features).
    #[config(default = 128)]
    pub attention_size: usize,
}

impl AttentionConfig {
    /// The attention, with burn's default Linear initialisation.
    pub fn init(&self, device: &Device) -> Attention {
        match self.score {
            Score::Additive => Attention {
                key: LinearConfig::new(self.memory_size, self.attention_size).init(device),
                query: Some(
                    LinearConfig::new(self.query_size, self.attention_size)
                        .with_bias(false)
                        .init(device),
                ),
                v: Some(
                    LinearConfig::new(self.attention_size, 1)
                        .with_bias(false)
                        .init(device),
                ),
            },
            Score::Multiplicative => Attention {
                key: LinearConfig::new(self.memory_size, self.query_size)
                    .with_bias(false)
                    .init(device),
                query: None,
                v: None,
            },
        }
    }
}

/// Soft attention; see the module doc. The additive score has `query` and `v`, the
/// multiplicative one neither.
#[derive(Module, Debug)]
pub struct Attention {
    /// `W_k` (and the additive score's bias `b`): annotation -> key.
    pub key: Linear,
    /// `W_q` of the additive score.
    pub query: Option<Linear>,
    /// `v` of the additive score.
    pub v: Option<Linear>,
}

/// Annotation vectors ready to be attended to: values, keys and the padding mask.
#[derive(Debug, Clone)]
pub struct Memory {
    /// The annotation vectors `h_j`, `[B, S, D]`.
    pub values: Tensor<3>,
    /// Their keys `W_k h_j (+ b)`, `[B, S, K]`.
    pub keys: Tensor<3>,
    /// 0 at valid positions, a large negative number at padded ones, `[B, S]`.
    pub mask: Tensor<2>,
    /// Valid positions of each row.
    pub lengths: Vec<usize>,
}

impl Memory {
    /// Rows `rows` of the memory, in that order (a row may repeat): how beam search follows
    /// its hypotheses.
    pub fn select(&self, rows: &[usize]) -> Memory {
        let device = self.values.device();
        let index = row_index(rows, &device);
        Memory {
            values: self.values.clone().select(0, index.clone()),
            keys: self.keys.clone().select(0, index.clone()),
            mask: self.mask.clone().select(0, index),
            lengths: rows.iter().map(|&r| self.lengths[r]).collect(),
        }
    }

    /// Rows of the batch.
    pub fn batch(&self) -> usize {
        self.values.dims()[0]
    }
}

/// `rows` as an index tensor on `device`.
pub(crate) fn row_index(rows: &[usize], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(
        TensorData::new(rows.iter().map(|&r| r as i64).collect(), [rows.len()]),
        device,
    )
}

impl Attention {
    /// The memory of annotations `values [B, S, D]`, row `b` valid for its first
    /// `lengths[b]` positions (all `S` when `lengths` is `None`).
    pub fn memory(&self, values: Tensor<3>, lengths: Option<&[usize]>) -> Result<Memory> {
        let [b, s, _] = values.dims();
        let lengths: Vec<usize> = match lengths {
            Some(l) => l.to_vec(),
            None => vec![s; b],
        };
        if lengths.len() != b {
            return Err(Error::invalid(
                "lengths",
                format!("{} lengths for a memory of {b} rows", lengths.len()),
            ));
        }
        if let Some(row) = lengths.iter().position(|&l| l == 0 || l > s) {
            return Err(Error::invalid(
                "lengths",
                format!(
                    "lengths[{row}] = {} is not in 1..={s} (positions of the memory)",
                    lengths[row]
                ),
            ));
        }
        let mut mask = vec![0f32; b * s];
        for (row, &l) in lengths.iter().enumerate() {
            mask[row * s + l..(row + 1) * s].fill(MASKED);
        }
        let device = values.device();
        Ok(Memory {
            keys: self.key.forward(values.clone()), // [B, S, K]
            values,
            mask: Tensor::from_data(TensorData::new(mask, [b, s]), &device),
            lengths,
        })
    }

    /// `query [B, Q]` against `memory` -> `(context [B, D], weights [B, S])`.
    pub fn attend(&self, query: Tensor<2>, memory: &Memory) -> (Tensor<2>, Tensor<2>) {
        let [b, s, k] = memory.keys.dims();
        let scores = match (&self.query, &self.v) {
            (Some(w_q), Some(v)) => {
                let q = w_q.forward(query).unsqueeze_dim::<3>(1); // [B, 1, K]
                let hidden = tanh(memory.keys.clone() + q); // [B, S, K]
                v.forward(hidden).reshape([b, s]) // [B, S]
            }
            _ => {
                let q = query.reshape([b, k, 1]); // [B, Q = K, 1]
                memory.keys.clone().matmul(q).reshape([b, s]) // [B, S]
            }
        };
        let weights = softmax(scores + memory.mask.clone(), 1); // [B, S]
        let d = memory.values.dims()[2];
        let context = weights
            .clone()
            .unsqueeze_dim::<3>(1) // [B, 1, S]
            .matmul(memory.values.clone()) // [B, 1, D]
            .reshape([b, d]);
        (context, weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(device: &Device) -> Tensor<3> {
        Tensor::from_data(
            TensorData::new(
                (0..2 * 3 * 4).map(|i| (i as f32 * 0.37).sin()).collect(),
                [2, 3, 4],
            ),
            device,
        )
    }

    #[test]
    fn weights_sum_to_one_and_skip_padding() {
        let device = Device::flex();
        for score in [Score::Additive, Score::Multiplicative] {
            let attn = AttentionConfig::new(5, 4, score)
                .with_attention_size(6)
                .init(&device);
            let mem = attn.memory(values(&device), Some(&[3, 2])).unwrap();
            let q = Tensor::<2>::from_data(
                TensorData::new((0..10).map(|i| i as f32 * 0.1).collect(), [2, 5]),
                &device,
            );
            let (ctx, w) = attn.attend(q, &mem);
            assert_eq!(ctx.dims(), [2, 4]);
            let w = w.into_data().try_to_vec::<f32>().unwrap();
            assert!((w[0] + w[1] + w[2] - 1.0).abs() < 1e-5);
            assert!((w[3] + w[4] - 1.0).abs() < 1e-5);
            assert_eq!(w[5], 0.0, "{score:?}: a padded position has weight");
        }
    }

    #[test]
    fn context_is_the_weighted_mean_and_depends_on_the_query() {
        let device = Device::flex();
        let attn = AttentionConfig::new(5, 4, Score::Additive).init(&device);
        let mem = attn.memory(values(&device), None).unwrap();
        let q1 = Tensor::<2>::ones([2, 5], &device);
        let (c1, w1) = attn.attend(q1.clone(), &mem);
        let expect = w1
            .unsqueeze_dim::<3>(2)
            .mul(mem.values.clone())
            .sum_dim(1)
            .reshape([2, 4]);
        let d = (c1.clone() - expect).abs().max().into_scalar::<f32>();
        assert!(d < 1e-6);
        let (c2, _) = attn.attend(q1.neg(), &mem);
        assert!((c1 - c2).abs().max().into_scalar::<f32>() > 1e-4);
    }

    #[test]
    fn bad_lengths_are_named() {
        let device = Device::flex();
        let attn = AttentionConfig::new(5, 4, Score::Multiplicative).init(&device);
        let e = attn.memory(values(&device), Some(&[3, 4])).unwrap_err();
        assert!(e.to_string().contains("lengths[1] = 4"), "{e}");
    }
}
