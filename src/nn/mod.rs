//! Neural-network building blocks that burn does not have and more than one model uses: soft
//! attention (additive and multiplicative) and the recurrent attention decoder with teacher
//! forcing, greedy decoding and beam search.

pub mod attention;
pub mod decoder;

pub use attention::{Attention, AttentionConfig, Memory, Score};
pub use decoder::{
    check_beam_width, AttentionDecoder, AttentionDecoderConfig, AttentionKind, DecodeOptions,
    DecoderState, Hypothesis, SpecialTokens, SummaryUse, MAX_BEAM_WIDTH,
};
