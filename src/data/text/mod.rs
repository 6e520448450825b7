//! Text data: corpora of entries labelled by language, character vocabularies.

pub mod corpus;
pub mod vocab;

pub use corpus::{normalize, CorpusSource, Language, LanguageCorpus, Skipped, FORTUNES_DIR};
pub use vocab::CharVocab;
