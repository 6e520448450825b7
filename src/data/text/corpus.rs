//! Texts labelled by language: Debian's fortune databases through a committed manifest, or any
//! folder with one sub-folder of text files per language.
//!
//! The fortune files are irregular (see `assets/fortunes-manifest.json`): the Portuguese file
//! sits at the top level beside the English ones, several packages ship a `*.u8` symbolic link
//! beside every file (a naive reader counts each entry twice and leaks it across splits), and
//! encodings differ by package. So the manifest maps language -> files -> encoding; symbolic
//! links are skipped, duplicate entries removed (within a language, and entries found under two
//! languages from both), files holding NUL bytes skipped as binary, and an entry that does not
//! decode in its file's encoding skipped and counted, never turned into mojibake.
//!
//! An entry is one fortune (the text between lines holding only `%`), or, in a file without
//! such lines, one paragraph. Its whitespace is collapsed to single spaces and control
//! characters dropped: a language is recognised from its words, not from its line breaks.
//! Splits are by entry, per language, seeded: the same entry never lands in two splits.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::shuffled_indices;
use crate::error::{Error, Result};

/// Where the fortune packages install their files.
pub const FORTUNES_DIR: &str = "/usr/share/games/fortunes";

/// The committed manifest of the fortune corpus.
const MANIFEST: &str = include_str!("../../../assets/fortunes-manifest.json");

/// One language of the fortune manifest.
#[derive(Debug, Clone, Deserialize)]
struct ManifestLanguage {
    code: String,
    name: String,
    package: String,
    encoding: String,
    #[serde(default)]
    dirs: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Manifest {
    languages: Vec<ManifestLanguage>,
}

fn manifest() -> Manifest {
    serde_json::from_str(MANIFEST).expect("the committed manifest is valid JSON")
}

/// A language of a corpus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Language {
    /// Short code (`en`, or the folder name for a user's corpus).
    pub code: String,
    /// Name shown in reports (`English`).
    pub name: String,
}

/// What reading a corpus left out, with counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Symbolic links not followed (each would repeat a file read elsewhere).
    pub symlinks: usize,
    /// Files holding NUL bytes.
    pub binary_files: usize,
    /// Entries that are not valid text in their file's encoding.
    pub undecodable_entries: usize,
    /// Entries repeated within a language (all copies but one dropped).
    pub duplicate_entries: usize,
    /// Entries found under two or more languages (dropped from all).
    pub ambiguous_entries: usize,
}

/// Texts labelled by language, split by entry into training, validation and test sets.
#[derive(Debug, Clone)]
pub struct LanguageCorpus {
    /// The languages, in label order.
    pub languages: Vec<Language>,
    /// `train[l]`: the training entries of language `l`.
    pub train: Vec<Vec<String>>,
    /// Validation entries per language.
    pub valid: Vec<Vec<String>>,
    /// Test entries per language.
    pub test: Vec<Vec<String>>,
    /// What was left out while reading.
    pub skipped: Skipped,
}

/// Where a corpus comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum CorpusSource {
    /// Debian's fortune databases under `dir`, read through the committed manifest.
    Fortunes {
        /// Where the packages installed their files (normally [`FORTUNES_DIR`]).
        dir: PathBuf,
    },
    /// A folder with one sub-folder of UTF-8 text files per language.
    Folder {
        /// The folder.
        dir: PathBuf,
    },
}

/// The text of one language before splitting.
struct RawLanguage {
    language: Language,
    files: Vec<PathBuf>,
    encoding: &'static encoding_rs::Encoding,
    origin: String,
}

impl LanguageCorpus {
    /// Reads `source` and splits every language's entries, with `seed`, into `valid_fraction`
    /// and `test_fraction` of validation and test entries (each at least one entry when the
    /// language has three or more) and the rest for training.
    pub fn load(
        source: &CorpusSource,
        seed: u64,
        valid_fraction: f64,
        test_fraction: f64,
    ) -> Result<LanguageCorpus> {
        let raw = match source {
            CorpusSource::Fortunes { dir } => fortune_languages(dir)?,
            CorpusSource::Folder { dir } => folder_languages(dir)?,
        };
        if raw.len() < 2 {
            return Err(Error::invalid(
                "data",
                format!(
                    "{} language(s) found; identification needs at least two",
                    raw.len()
                ),
            ));
        }
        let mut skipped = Skipped::default();
        let mut per_language = Vec::with_capacity(raw.len());
        for lang in &raw {
            let entries = read_language(lang, &mut skipped)?;
            per_language.push(entries);
        }
        // Entries under two languages cannot be labelled: drop them everywhere.
        let mut owners: HashMap<&str, usize> = HashMap::new();
        for entries in &per_language {
            for e in entries {
                *owners.entry(e.as_str()).or_default() += 1;
            }
        }
        let ambiguous: HashSet<String> = owners
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(e, _)| e.to_string())
            .collect();
        let mut languages = Vec::new();
        let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
        for (l, (lang, entries)) in raw.iter().zip(per_language).enumerate() {
            let before = entries.len();
            let entries: Vec<String> = entries
                .into_iter()
                .filter(|e| !ambiguous.contains(e))
                .collect();
            skipped.ambiguous_entries += before - entries.len();
            if entries.is_empty() {
                return Err(Error::invalid(
                    "data",
                    format!(
                        "language {} ({}): no usable text",
                        lang.language.code, lang.origin
                    ),
                ));
            }
            let order = shuffled_indices(entries.len(), seed.wrapping_add(l as u64));
            let n = entries.len();
            let part = |f: f64| {
                if n >= 3 {
                    ((n as f64 * f).round() as usize).max(1)
                } else {
                    0
                }
            };
            let (n_valid, n_test) = (part(valid_fraction), part(test_fraction));
            let pick = |ix: &[usize]| ix.iter().map(|&i| entries[i].clone()).collect::<Vec<_>>();
            valid.push(pick(&order[..n_valid]));
            test.push(pick(&order[n_valid..n_valid + n_test]));
            train.push(pick(&order[n_valid + n_test..]));
            languages.push(lang.language.clone());
        }
        Ok(LanguageCorpus {
            languages,
            train,
            valid,
            test,
            skipped,
        })
    }

    /// Training entries in all.
    pub fn train_len(&self) -> usize {
        self.train.iter().map(Vec::len).sum()
    }
}

/// The languages of the fortune manifest, with their files under `root`.
fn fortune_languages(root: &Path) -> Result<Vec<RawLanguage>> {
    if !root.is_dir() {
        return Err(Error::bad_data(
            root,
            "no fortune databases here: install them with scripts/langid_job.sh (apt-get install fortunes fortunes-de ...), or pass --data DIR",
        ));
    }
    let mut out = Vec::new();
    for lang in manifest().languages {
        let encoding = encoding_rs::Encoding::for_label(lang.encoding.as_bytes())
            .expect("the manifest names known encodings");
        let mut files = Vec::new();
        for dir in &lang.dirs {
            let dir_path = root.join(dir);
            if !dir_path.is_dir() {
                return Err(Error::bad_data(
                    &dir_path,
                    format!(
                        "missing: the {} fortunes are not installed (Debian package {})",
                        lang.name, lang.package
                    ),
                ));
            }
            for f in list_files(&dir_path)? {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if !lang.exclude.iter().any(|x| x == name) {
                    files.push(f);
                }
            }
        }
        for f in &lang.files {
            let path = root.join(f);
            if !path.is_file() {
                return Err(Error::bad_data(
                    &path,
                    format!(
                        "missing: the {} fortunes are not installed (Debian package {})",
                        lang.name, lang.package
                    ),
                ));
            }
            files.push(path);
        }
        out.push(RawLanguage {
            origin: format!("package {}", lang.package),
            language: Language {
                code: lang.code,
                name: lang.name,
            },
            files,
            encoding,
        });
    }
    Ok(out)
}

/// One language per sub-folder of `dir` (sorted by name), its files read recursively.
fn folder_languages(dir: &Path) -> Result<Vec<RawLanguage>> {
    let read = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut subdirs: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    if subdirs.is_empty() {
        return Err(Error::bad_data(
            dir,
            "holds no language folders (expected one sub-folder of text files per language)",
        ));
    }
    let mut out = Vec::new();
    for sub in subdirs {
        let code = sub
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut files = Vec::new();
        let mut stack = vec![sub.clone()];
        while let Some(d) = stack.pop() {
            for p in list_entries(&d)? {
                if p.is_dir() {
                    stack.push(p);
                } else if !is_symlink(&p) && p.is_file() {
                    files.push(p);
                }
            }
        }
        files.sort();
        out.push(RawLanguage {
            origin: sub.display().to_string(),
            language: Language {
                name: code.clone(),
                code,
            },
            files,
            encoding: encoding_rs::UTF_8,
        });
    }
    Ok(out)
}

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

fn list_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// Regular files of `dir` (not recursive), symbolic links and `.dat` indexes left out.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(list_entries(dir)?
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "dat"))
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file()))
        .collect())
}

/// The distinct entries of one language, in file order.
fn read_language(lang: &RawLanguage, skipped: &mut Skipped) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    let mut entries = Vec::new();
    for file in &lang.files {
        if is_symlink(file) {
            skipped.symlinks += 1;
            continue;
        }
        let bytes = crate::io::read_file(file, crate::io::Limit::TEXT)?;
        let Some(texts) = file_entries(&bytes, lang.encoding, skipped) else {
            skipped.binary_files += 1;
            continue;
        };
        for text in texts {
            if seen.insert(text.clone()) {
                entries.push(text);
            } else {
                skipped.duplicate_entries += 1;
            }
        }
    }
    Ok(entries)
}

/// The entries of one text file's `bytes` in `encoding`: split ([`split_entries`]), decoded
/// strictly (an entry that does not decode is counted in `skipped`, never turned into
/// replacement characters), [`normalize`]d, the empty ones dropped. `None` for a binary file
/// (one holding a NUL byte).
pub fn file_entries(
    bytes: &[u8],
    encoding: &'static encoding_rs::Encoding,
    skipped: &mut Skipped,
) -> Option<Vec<String>> {
    if bytes.contains(&0) {
        return None;
    }
    let mut out = Vec::new();
    for raw in split_entries(bytes) {
        let Some(text) = decode_strict(encoding, raw) else {
            skipped.undecodable_entries += 1;
            continue;
        };
        let text = normalize(&text);
        if !text.is_empty() {
            out.push(text);
        }
    }
    Some(out)
}

/// `bytes` decoded as `encoding`, or `None` where they are not valid in it.
fn decode_strict(encoding: &'static encoding_rs::Encoding, bytes: &[u8]) -> Option<String> {
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|c| c.into_owned())
}

/// The entries of a file: the parts between lines holding only `%` (fortune format), or, when
/// there are no such lines, its paragraphs (parts between blank lines).
pub fn split_entries(bytes: &[u8]) -> Vec<&[u8]> {
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let trim_cr = |l: &[u8]| -> usize { l.len() - usize::from(l.ends_with(b"\r")) };
    let is_percent = |l: &[u8]| &l[..trim_cr(l)] == b"%";
    let is_blank = |l: &[u8]| l[..trim_cr(l)].iter().all(u8::is_ascii_whitespace);
    let fortune = lines.iter().any(|l| is_percent(l));
    let mut out = Vec::new();
    let mut start = 0usize; // byte offset of the current entry
    let mut offset = 0usize;
    for line in &lines {
        let end = offset + line.len();
        let boundary = if fortune {
            is_percent(line)
        } else {
            is_blank(line)
        };
        if boundary {
            if offset > start {
                out.push(&bytes[start..offset]);
            }
            start = (end + 1).min(bytes.len());
        }
        offset = (end + 1).min(bytes.len());
    }
    if bytes.len() > start {
        out.push(&bytes[start..]);
    }
    out
}

/// `text` with every run of whitespace turned into one space, control characters dropped, the
/// ends trimmed: the form every language-identification input takes, at training and at use.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = !out.is_empty();
        } else if c.is_control() {
            continue;
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_at_percent_lines_or_paragraphs() {
        let f = b"one\nline two\n%\nthree\n%\n\n%\nfour";
        let e: Vec<&[u8]> = split_entries(f);
        assert_eq!(e, vec![&b"one\nline two\n"[..], b"three\n", b"\n", b"four"]);
        let p = b"para one\nstill\n\npara two\n";
        assert_eq!(
            split_entries(p),
            vec![&b"para one\nstill\n"[..], b"para two\n"]
        );
    }

    #[test]
    fn normalize_collapses_whitespace_and_drops_control_characters() {
        assert_eq!(normalize("  a\tb\n\n c\u{1b}[0m  "), "a b c[0m");
        assert_eq!(normalize("\n\t "), "");
    }

    #[test]
    fn the_manifest_names_nine_languages_with_known_encodings() {
        let m = manifest();
        assert_eq!(m.languages.len(), 9);
        for l in &m.languages {
            assert!(encoding_rs::Encoding::for_label(l.encoding.as_bytes()).is_some());
            assert!(!l.dirs.is_empty() || !l.files.is_empty(), "{}", l.code);
        }
    }

    #[test]
    fn latin1_decodes_and_bad_utf8_is_refused() {
        let latin1 = encoding_rs::Encoding::for_label(b"iso-8859-1").unwrap();
        assert_eq!(decode_strict(latin1, b"caf\xe9").unwrap(), "café");
        assert!(decode_strict(encoding_rs::UTF_8, b"caf\xe9").is_none());
    }
}
