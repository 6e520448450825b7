//! Models for text: a character-level recurrent classifier and language model, and the
//! baselines they are measured against (n-gram naive Bayes, Kneser-Ney). (The CNN families live in [`crate::vision`].)

pub mod char_classifier;
pub mod char_lm;
pub mod kneser_ney;
pub mod naive_bayes;
pub mod sequence_net;

pub use char_classifier::{CellType, CharClassifier, CharClassifierConfig};
pub use char_lm::{CharLm, CharLmConfig, LmState};
pub use kneser_ney::KneserNey;
pub use naive_bayes::NgramNaiveBayes;
pub use sequence_net::{SeqCell, SequenceNet, SequenceNetConfig};
