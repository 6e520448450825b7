//! Text data: corpora of entries labelled by language, character vocabularies, the CMU
//! Pronouncing Dictionary.

pub mod cmudict;
pub mod corpus;
pub mod vocab;

pub use cmudict::{CmuDict, WordEntry, PHONEMES};
pub use corpus::{normalize, CorpusSource, Language, LanguageCorpus, Skipped, FORTUNES_DIR};
pub use vocab::CharVocab;
