//! Models for text: a character-level recurrent classifier and the n-gram naive Bayes
//! baseline it is measured against. (The CNN families live in [`crate::vision`].)

pub mod char_classifier;
pub mod naive_bayes;

pub use char_classifier::{CellType, CharClassifier, CharClassifierConfig};
pub use naive_bayes::NgramNaiveBayes;
