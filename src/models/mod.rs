//! The networks: the CNN families with FCN and the model registry ([`vision`], its
//! [`vision::MODELS`]), and the models of the recurrent tasks: a character-level recurrent
//! classifier and language model, a sequence-to-sequence network with attention, video
//! predictors (ConvLSTM and FC-LSTM encoder-forecasters), a recurrent instance segmenter, and
//! the baselines they are measured against (n-gram naive Bayes, Kneser-Ney).

pub mod char_classifier;
pub mod char_lm;
pub mod forecaster;
pub mod instance_seg;
pub mod kneser_ney;
pub mod naive_bayes;
pub mod seq2seq;
pub mod sequence_net;
pub mod vision;

pub use char_classifier::{CellType, CharClassifier, CharClassifierConfig};
pub use char_lm::{CharLm, CharLmConfig, LmState};
pub use forecaster::{Forecaster, ForecasterConfig, ForecasterKind};
pub use instance_seg::{InstanceSegmenter, InstanceSegmenterConfig};
pub use kneser_ney::KneserNey;
pub use naive_bayes::NgramNaiveBayes;
pub use seq2seq::{Seq2Seq, Seq2SeqConfig};
pub use sequence_net::{SeqCell, SequenceNet, SequenceNetConfig};

use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::recurrent::{Gru, GruConfig, Lstm, LstmConfig};

/// Which directions a recurrent stack reads its sequence in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Directions {
    /// First to last step only (a language model must not see the future).
    Forward,
    /// Both, outputs concatenated (a classifier of whole texts).
    Both,
}

/// A batch-first LSTM or GRU stack, as `cell` says: exactly one of the pair is `Some` (a burn
/// `Module` field cannot be an enum of two layers here, two options can).
pub(crate) fn recurrent_stack(
    cell: CellType,
    input: usize,
    hidden: usize,
    layers: usize,
    directions: Directions,
    dropout: f64,
    device: &Device,
) -> (Option<Lstm>, Option<Gru>) {
    let bidirectional = directions == Directions::Both;
    match cell {
        CellType::Lstm => (
            Some(
                LstmConfig::new(input, hidden)
                    .with_num_layers(layers)
                    .with_bidirectional(bidirectional)
                    .with_batch_first(true)
                    .with_dropout(dropout)
                    .init(device),
            ),
            None,
        ),
        CellType::Gru => (
            None,
            Some(
                GruConfig::new(input, hidden)
                    .with_num_layers(layers)
                    .with_bidirectional(bidirectional)
                    .with_batch_first(true)
                    .with_dropout(dropout)
                    .init(device),
            ),
        ),
    }
}

/// Checks that each named size is at least 1 and `dropout` is in [0, 1), naming the first bad
/// one.
pub(crate) fn check_sizes(sizes: &[(&str, usize)], dropout: f64) -> Result<()> {
    if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
        return Err(Error::invalid(*name, "must be at least 1"));
    }
    if !(0.0..1.0).contains(&dropout) {
        return Err(Error::invalid("dropout", "must be in [0, 1)"));
    }
    Ok(())
}
