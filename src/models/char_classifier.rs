//! A character-level recurrent classifier (many-to-one): characters -> embedding -> stacked,
//! bidirectional LSTM or GRU over variable-length batches -> the last layer's final states of
//! both directions -> a linear layer -> class logits.
//!
//! `h = [→h_T ; ←h_1]` (the forward direction after each row's last valid character, the
//! backward one after its first), `logits = W h + b`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};

use super::{check_sizes, recurrent_stack, Directions};
use crate::error::{Error, Result};
pub use crate::recurrent::CellType;
use crate::recurrent::{Gru, Implementation, Lstm};

/// Configuration of a [`CharClassifier`].
#[derive(Config, Debug, PartialEq)]
pub struct CharClassifierConfig {
    /// Ids of the character vocabulary (padding and unknown included).
    pub vocab_size: usize,
    /// Classes to tell apart.
    pub num_classes: usize,
    /// Features of a character's embedding (default 32).
    #[config(default = 32)]
    pub embed_size: usize,
    /// Features of each direction's hidden state (default 64).
    #[config(default = 64)]
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

impl CharClassifierConfig {
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
        )?;
        if self.num_classes < 2 {
            return Err(Error::invalid("num_classes", "must be at least 2"));
        }
        Ok(())
    }

    /// The classifier, randomly initialised (PyTorch's initialisations).
    pub fn init(&self, device: &Device) -> CharClassifier {
        let (lstm, gru) = recurrent_stack(
            self.cell,
            self.embed_size,
            self.hidden_size,
            self.num_layers,
            Directions::Both,
            self.dropout,
            device,
        );
        CharClassifier {
            embedding: EmbeddingConfig::new(self.vocab_size, self.embed_size).init(device),
            lstm,
            gru,
            head: LinearConfig::new(2 * self.hidden_size, self.num_classes).init(device),
        }
    }
}

/// Characters to class logits; see the module doc.
#[derive(Module, Debug)]
pub struct CharClassifier {
    /// Character embeddings `[vocab, embed]`.
    pub embedding: Embedding,
    /// The recurrent layers, when the cell is an LSTM.
    pub lstm: Option<Lstm>,
    /// The recurrent layers, when the cell is a GRU.
    pub gru: Option<Gru>,
    /// Final states of both directions to logits.
    pub head: Linear,
}

impl CharClassifier {
    /// `tokens [B, T]` (padded with any id past each row's length) and `lengths` (`B` values in
    /// `1..=T`) -> logits `[B, classes]`.
    pub fn forward(&self, tokens: Tensor<2, Int>, lengths: &[usize]) -> Result<Tensor<2>> {
        let x = self.embedding.forward(tokens); // [B, T, embed]
        let h_n = match (&self.lstm, &self.gru) {
            (Some(lstm), _) => {
                lstm.forward_with(x, Some(lengths), None, Implementation::Auto)?
                    .1
                    .h
            }
            (None, Some(gru)) => {
                gru.forward_with(x, Some(lengths), None, Implementation::Auto)?
                    .1
            }
            (None, None) => unreachable!("a CharClassifier has one recurrent stack"),
        }; // [layers · 2, B, H]
        let [rows, batch, hidden] = h_n.dims();
        let last = h_n.narrow(0, rows - 2, 2); // [2, B, H]: forward, backward
        let features = last.swap_dims(0, 1).reshape([batch, 2 * hidden]); // [B, 2H]
        Ok(self.head.forward(features))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn padding_past_a_rows_length_changes_nothing() {
        let device = Device::flex();
        for cell in [CellType::Lstm, CellType::Gru] {
            let model = CharClassifierConfig::new(10, 3)
                .with_hidden_size(8)
                .with_embed_size(4)
                .with_cell(cell)
                .init(&device);
            let a = Tensor::<2, Int>::from_data(
                TensorData::new(vec![2i64, 3, 4, 0, 0], [1, 5]),
                &device,
            );
            let b = Tensor::<2, Int>::from_data(
                TensorData::new(vec![2i64, 3, 4, 7, 9], [1, 5]),
                &device,
            );
            let la = model
                .forward(a, &[3])
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let lb = model
                .forward(b.clone(), &[3])
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            assert_eq!(la, lb);
            // ... and the characters inside the length do count.
            let lc = model
                .forward(b, &[5])
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            assert_ne!(la, lc);
            assert_eq!(la.len(), 3);
        }
    }
}
