//! A sequence-to-sequence network (many-to-many, "translation"): token embedding, a stacked
//! bidirectional LSTM/GRU encoder over variable-length batches, and an
//! [`AttentionDecoder`] that reads the encoder's outputs through
//! attention (or, without attention, only its final states).
//!
//! The encoder's outputs `h_j = [→h_j ; ←h_j]` (`2·H_enc` features per source token) are the
//! memory; its summary, which sets the decoder's first state, is `[→h_S ; ←h_1]`: each
//! direction's state after reading the whole source.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::tensor::{Device, Int, Tensor};

use super::{check_sizes, recurrent_stack, CellType, Directions};
use crate::error::Result;
use crate::nn::{
    AttentionDecoder, AttentionDecoderConfig, AttentionKind, DecodeOptions, DecoderState,
    Hypothesis, Memory,
};
use crate::recurrent::{Gru, Implementation, Lstm};

/// Configuration of a [`Seq2Seq`].
#[derive(Config, Debug, PartialEq)]
pub struct Seq2SeqConfig {
    /// Source token ids (padding included).
    pub source_vocab: usize,
    /// Target token ids (padding and the start and end tokens included).
    pub target_vocab: usize,
    /// Features of a source or target token's embedding (default 64).
    #[config(default = 64)]
    pub embed_size: usize,
    /// Features of each encoder direction's state (default 128).
    #[config(default = 128)]
    pub encoder_hidden: usize,
    /// Stacked bidirectional encoder layers (default 1).
    #[config(default = 1)]
    pub encoder_layers: usize,
    /// Features of the decoder state (default 256).
    #[config(default = 256)]
    pub decoder_hidden: usize,
    /// Features of the additive attention's hidden layer (default 128).
    #[config(default = 128)]
    pub attention_size: usize,
    /// The recurrent cell of encoder and decoder (default LSTM).
    #[config(default = "CellType::Lstm")]
    pub cell: CellType,
    /// The decoder's attention (default additive).
    #[config(default = "AttentionKind::Additive")]
    pub attention: AttentionKind,
}

impl Seq2SeqConfig {
    /// Checks the sizes, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        check_sizes(
            &[
                ("source_vocab", self.source_vocab),
                ("target_vocab", self.target_vocab),
                ("embed_size", self.embed_size),
                ("encoder_hidden", self.encoder_hidden),
                ("encoder_layers", self.encoder_layers),
                ("decoder_hidden", self.decoder_hidden),
                ("attention_size", self.attention_size),
            ],
            0.0,
        )
    }

    /// The decoder's configuration.
    pub fn decoder(&self) -> AttentionDecoderConfig {
        AttentionDecoderConfig::new(
            self.target_vocab,
            2 * self.encoder_hidden,
            2 * self.encoder_hidden,
        )
        .with_embed_size(self.embed_size)
        .with_hidden_size(self.decoder_hidden)
        .with_cell(self.cell)
        .with_attention(self.attention)
        .with_attention_size(self.attention_size)
    }

    /// The network, randomly initialised.
    pub fn init(&self, device: &Device) -> Seq2Seq {
        let (encoder_lstm, encoder_gru) = recurrent_stack(
            self.cell,
            self.embed_size,
            self.encoder_hidden,
            self.encoder_layers,
            Directions::Both,
            0.0,
            device,
        );
        Seq2Seq {
            embedding: EmbeddingConfig::new(self.source_vocab, self.embed_size).init(device),
            encoder_lstm,
            encoder_gru,
            decoder: self.decoder().init(device),
        }
    }
}

/// Source tokens to target tokens; see the module doc.
#[derive(Module, Debug)]
pub struct Seq2Seq {
    /// Source-token embeddings `[vocab, embed]`.
    pub embedding: Embedding,
    /// The encoder, when the cell is an LSTM.
    pub encoder_lstm: Option<Lstm>,
    /// The encoder, when the cell is a GRU.
    pub encoder_gru: Option<Gru>,
    /// The decoder.
    pub decoder: AttentionDecoder,
}

impl Seq2Seq {
    /// Encodes `source [B, S]` (row `b` valid for its first `lengths[b]` tokens): the memory
    /// the decoder attends to and the decoder's first state.
    pub fn encode(
        &self,
        source: Tensor<2, Int>,
        lengths: &[usize],
    ) -> Result<(Memory, DecoderState)> {
        let x = self.embedding.forward(source); // [B, S, E]
        let (outputs, h_n) = match (&self.encoder_lstm, &self.encoder_gru) {
            (Some(lstm), _) => {
                let (o, s) = lstm.forward_with(x, Some(lengths), None, Implementation::Auto)?;
                (o, s.h)
            }
            (None, Some(gru)) => gru.forward_with(x, Some(lengths), None, Implementation::Auto)?,
            (None, None) => unreachable!("a Seq2Seq has one encoder"),
        }; // outputs [B, S, 2H], h_n [layers · 2, B, H]
        let [rows, batch, hidden] = h_n.dims();
        let summary = h_n
            .narrow(0, rows - 2, 2) // [2, B, H]: forward, backward
            .swap_dims(0, 1)
            .reshape([batch, 2 * hidden]); // [B, 2H]
        let state = self.decoder.initial_state(summary);
        let memory = match &self.decoder.attention {
            Some(attention) => attention.memory(outputs, Some(lengths))?,
            // No attention: nothing reads the memory but its lengths.
            None => Memory {
                keys: outputs.clone(),
                mask: Tensor::zeros([batch, outputs.dims()[1]], &outputs.device()),
                values: outputs,
                lengths: lengths.to_vec(),
            },
        };
        Ok((memory, state))
    }

    /// Teacher-forced logits `[B, T, target_vocab]` of `target_in [B, T]` (the start token,
    /// then each target shifted right) given `source [B, S]` and its `lengths`.
    pub fn forward(
        &self,
        source: Tensor<2, Int>,
        lengths: &[usize],
        target_in: Tensor<2, Int>,
    ) -> Result<Tensor<3>> {
        let (memory, state) = self.encode(source, lengths)?;
        Ok(self.decoder.teacher_forced(target_in, state, &memory))
    }

    /// Decodes every row of `source`: greedily when `options.beam_width` is 1 (all rows at
    /// once), else by beam search row by row. One hypothesis per row: the best.
    pub fn decode(
        &self,
        source: Tensor<2, Int>,
        lengths: &[usize],
        options: &DecodeOptions,
    ) -> Result<Vec<Hypothesis>> {
        crate::nn::check_beam_width(options.beam_width)?;
        let (memory, state) = self.encode(source, lengths)?;
        if options.beam_width == 1 {
            return self.decoder.greedy(state, &memory, options);
        }
        let mut out = Vec::with_capacity(lengths.len());
        for row in 0..lengths.len() {
            let best = self
                .decoder
                .beam(state.select(&[row]), &memory.select(&[row]), options)?
                .into_iter()
                .next()
                .expect("beam search returns at least one hypothesis");
            out.push(best);
        }
        Ok(out)
    }
}
