//! A character-level recurrent language model (one-to-many and many-to-many): characters ->
//! embedding -> stacked LSTM or GRU -> a linear layer over the vocabulary at every step,
//! `P(x_{t+1} | x_1..x_t) = softmax(W h_t + b)`. The state after a chunk is returned, so a long
//! text can be read chunk by chunk (truncated BPTT in training, carried state in evaluation
//! and generation).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};

use super::{check_sizes, recurrent_stack, Directions};
use crate::error::Result;
use crate::models::CellType;
use crate::recurrent::tbptt::Detach;
use crate::recurrent::{Gru, Lstm, LstmState};

/// Configuration of a [`CharLm`].
#[derive(Config, Debug, PartialEq)]
pub struct CharLmConfig {
    /// Ids of the character vocabulary (unknown included): inputs and outputs.
    pub vocab_size: usize,
    /// Features of a character's embedding (default 64).
    #[config(default = 64)]
    pub embed_size: usize,
    /// Features of the hidden state (default 256).
    #[config(default = 256)]
    pub hidden_size: usize,
    /// Stacked recurrent layers (default 2).
    #[config(default = 2)]
    pub num_layers: usize,
    /// The recurrent cell (default LSTM).
    #[config(default = "CellType::Lstm")]
    pub cell: CellType,
    /// Dropout between the recurrent layers, in training (default 0).
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl CharLmConfig {
    /// Checks the sizes, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        check_sizes(
            &[
                ("vocab_size", self.vocab_size),
                ("embed_size", self.embed_size),
                ("hidden_size", self.hidden_size),
                ("num_layers", self.num_layers),
            ],
            self.dropout,
        )
    }

    /// The model, randomly initialised (PyTorch's initialisations).
    pub fn init(&self, device: &Device) -> CharLm {
        let (lstm, gru) = recurrent_stack(
            self.cell,
            self.embed_size,
            self.hidden_size,
            self.num_layers,
            Directions::Forward,
            self.dropout,
            device,
        );
        CharLm {
            embedding: EmbeddingConfig::new(self.vocab_size, self.embed_size).init(device),
            lstm,
            gru,
            head: LinearConfig::new(self.hidden_size, self.vocab_size).init(device),
        }
    }
}

/// The recurrent state of a [`CharLm`] between chunks: `h` (and `c` for an LSTM), each
/// `[layers, B, H]`.
#[derive(Debug, Clone)]
pub struct LmState {
    /// Hidden states.
    pub h: Tensor<3>,
    /// Cell states (LSTM only).
    pub c: Option<Tensor<3>>,
}

impl Detach for LmState {
    fn detach(self) -> Self {
        LmState {
            h: self.h.detach(),
            c: self.c.map(Tensor::detach),
        }
    }
}

/// Characters to next-character logits; see the module doc.
#[derive(Module, Debug)]
pub struct CharLm {
    /// Character embeddings `[vocab, embed]`.
    pub embedding: Embedding,
    /// The recurrent layers, when the cell is an LSTM.
    pub lstm: Option<Lstm>,
    /// The recurrent layers, when the cell is a GRU.
    pub gru: Option<Gru>,
    /// Hidden state to logits over the vocabulary.
    pub head: Linear,
}

impl CharLm {
    /// `tokens [B, T]` from `state` (zeros when `None`) -> (logits `[B, T, vocab]`, the state
    /// after the last step).
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        state: Option<LmState>,
    ) -> Result<(Tensor<3>, LmState)> {
        let x = self.embedding.forward(tokens); // [B, T, embed]
        let (out, state) = match (&self.lstm, &self.gru) {
            (Some(lstm), _) => {
                let s = state.map(|s| LstmState {
                    c: s.c.unwrap_or_else(|| s.h.zeros_like()),
                    h: s.h,
                });
                let (out, s) = lstm.forward(x, s)?;
                (
                    out,
                    LmState {
                        h: s.h,
                        c: Some(s.c),
                    },
                )
            }
            (None, Some(gru)) => {
                let (out, h) = gru.forward(x, state.map(|s| s.h))?;
                (out, LmState { h, c: None })
            }
            (None, None) => unreachable!("a CharLm has one recurrent stack"),
        }; // out: [B, T, H]
        Ok((self.head.forward(out), state)) // [B, T, vocab]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn two_chunks_with_carried_state_equal_one_pass() {
        let device = Device::flex();
        for cell in [CellType::Lstm, CellType::Gru] {
            let lm = CharLmConfig::new(12)
                .with_hidden_size(8)
                .with_embed_size(4)
                .with_cell(cell)
                .init(&device);
            let ids: Vec<i64> = vec![2, 5, 7, 3, 9, 11, 4, 2];
            let all = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, 8]), &device);
            let (whole, _) = lm.forward(all, None).unwrap();
            let whole_copy = whole.clone();
            let first =
                Tensor::<2, Int>::from_data(TensorData::new(ids[..5].to_vec(), [1, 5]), &device);
            let second =
                Tensor::<2, Int>::from_data(TensorData::new(ids[5..].to_vec(), [1, 3]), &device);
            let (a, s) = lm.forward(first, None).unwrap();
            let (b, _) = lm.forward(second.clone(), Some(s)).unwrap();
            let joined = Tensor::cat(vec![a, b], 1);
            let d = (whole_copy - joined).abs().max().into_scalar::<f32>();
            assert!(d < 1e-5, "{d}");
            // Without the carried state the second chunk reads differently.
            let (fresh, _) = lm.forward(second, None).unwrap();
            let whole_tail = whole.narrow(1, 5, 3);
            assert!((whole_tail - fresh).abs().max().into_scalar::<f32>() > 1e-4);
        }
    }
}
