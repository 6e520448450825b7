//! A character vocabulary: the characters seen at least `min_count` times in the training
//! text, most frequent first, after two reserved ids — 0 pads a batch, 1 stands for every
//! character outside the vocabulary (rare characters at training, unseen ones at use).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Id of the padding step of a batch.
pub const PAD: u32 = 0;
/// Id of every character outside the vocabulary.
pub const UNKNOWN: u32 = 1;

/// Characters and their ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharVocab {
    /// The characters of ids 2, 3, ... in order (ids 0 and 1 are [`PAD`] and [`UNKNOWN`]).
    pub chars: String,
    #[serde(skip)]
    index: HashMap<char, u32>,
}

impl CharVocab {
    /// The characters of `texts` seen at least `min_count` times, most frequent first (ties
    /// in character order, so the vocabulary is a function of the text alone).
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>, min_count: usize) -> CharVocab {
        let mut counts: HashMap<char, usize> = HashMap::new();
        for t in texts {
            for c in t.chars() {
                *counts.entry(c).or_default() += 1;
            }
        }
        let mut kept: Vec<(char, usize)> = counts
            .into_iter()
            .filter(|&(_, n)| n >= min_count.max(1))
            .collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Self::from_chars(kept.into_iter().map(|(c, _)| c).collect())
    }

    /// The vocabulary whose characters (ids 2, 3, ...) are `chars`, as stored in a run.
    pub fn from_chars(chars: String) -> CharVocab {
        let index = chars
            .chars()
            .enumerate()
            .map(|(i, c)| (c, i as u32 + 2))
            .collect();
        CharVocab { chars, index }
    }

    /// Ids in all, the two reserved ones included.
    pub fn len(&self) -> usize {
        self.index.len() + 2
    }

    /// Whether no character is in the vocabulary (only the reserved ids).
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The id of `c` ([`UNKNOWN`] when it is not in the vocabulary).
    pub fn id(&self, c: char) -> u32 {
        self.index.get(&c).copied().unwrap_or(UNKNOWN)
    }

    /// The ids of the characters of `text`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        text.chars().map(|c| self.id(c)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequent_characters_first_rare_ones_unknown() {
        let v = CharVocab::build(["aab", "ab", "c"], 2);
        assert_eq!(v.chars, "ab");
        assert_eq!(v.encode("abcz"), vec![2, 3, UNKNOWN, UNKNOWN]);
        assert_eq!(v.len(), 4);
        let again = CharVocab::from_chars(v.chars.clone());
        assert_eq!(again.encode("ba"), vec![3, 2]);
    }
}
