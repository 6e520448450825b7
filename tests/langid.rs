//! Language identification on a committed extract of Debian's fortunes
//! (`tests/data/fortunes-extract`: 10-31 real entries per language in the packages' own
//! irregular layout — the Portuguese `brasil` beside the English files, `*.u8` symbolic links,
//! an Italian link at the top level, Slovak quotes in the Czech folder, a `.dat` index, an
//! empty `.u8` file — plus planted faults: a binary file, an entry that is not UTF-8, a
//! repeated entry).

mod common;

use common::{assert_fails_cleanly, deepnet, stderr};
use std::path::{Path, PathBuf};

use deepnet::data::text::{CorpusSource, LanguageCorpus};

fn extract() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fortunes-extract")
}

#[test]
fn the_manifest_reads_the_irregular_layout_without_leaks_or_mojibake() {
    let source = CorpusSource::Fortunes { dir: extract() };
    let c = LanguageCorpus::load(&source, 7, 0.1, 0.1).unwrap();
    let codes: Vec<&str> = c.languages.iter().map(|l| l.code.as_str()).collect();
    assert_eq!(
        codes,
        ["en", "de", "es", "it", "pl", "ru", "cs", "pt", "bg"]
    );
    let total = |l: usize| c.train[l].len() + c.valid[l].len() + c.test[l].len();
    // English: 31 entries, one of them twice; wisdom.u8 (a link) and ascii-art not read;
    // brasil is Portuguese, not English.
    assert_eq!(total(0), 30);
    assert_eq!(total(7), 30);
    // German: the binary file is skipped.
    assert_eq!(total(1), 30);
    // Spanish: es/ and es/off/.
    assert_eq!(total(2), 30);
    // Italian: the top-level link `adams` is not read a second time.
    assert_eq!(total(3), 19);
    // Russian: 31 entries, one not UTF-8.
    assert_eq!(total(5), 30);
    // Czech: the link citace.u8 and the Slovak klasik-sk are left out.
    assert_eq!(total(6), 30);
    assert_eq!(c.skipped.binary_files, 1);
    assert_eq!(c.skipped.undecodable_entries, 1);
    assert_eq!(c.skipped.duplicate_entries, 1);
    for l in 0..9 {
        // Split by entry: nothing in two splits.
        for e in &c.test[l] {
            assert!(!c.train[l].contains(e) && !c.valid[l].contains(e));
        }
        for e in &c.valid[l] {
            assert!(!c.train[l].contains(e));
        }
        assert!(!c.test[l].is_empty() && !c.valid[l].is_empty());
    }
    // No replacement characters: nothing decoded wrongly.
    assert!(c.train.iter().flatten().all(|e| !e.contains('\u{fffd}')));
    // The split is seeded.
    let again = LanguageCorpus::load(&source, 7, 0.1, 0.1).unwrap();
    assert_eq!(again.test, c.test);
    let other = LanguageCorpus::load(&source, 8, 0.1, 0.1).unwrap();
    assert_ne!(other.test, c.test);
}

#[test]
fn train_report_identify_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let run_s = run.to_str().unwrap();
    let fortunes = extract();
    let o = deepnet(&[
        "langid-train",
        "--fortunes",
        fortunes.to_str().unwrap(),
        "--out",
        run_s,
        "--epochs",
        "2",
        "--epoch-items",
        "128",
        "--batch-size",
        "32",
        "--hidden-size",
        "16",
        "--embed-size",
        "8",
        "--max-crop",
        "40",
        "--min-char-count",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in ["1-10", "11-20", "21-50", "51+", "naive Bayes", "Bulgarian"] {
        assert!(out.contains(needle), "{out}");
    }
    for f in [
        "report/langid_test.json",
        "report/confusion_matrix.png",
        "report/accuracy_by_length.png",
        "checkpoint.safetensors",
        "metrics.jsonl",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report/langid_test.json")).unwrap())
            .unwrap();
    let buckets = report["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 4);
    // At least 1,000 texts in each short bucket.
    for b in &buckets[..3] {
        assert!(b["count"].as_u64().unwrap() >= 1000, "{b}");
    }
    // The baseline learns something even from ~24 entries a language: well above chance
    // (1/9) on whole entries.
    assert!(report["naive_bayes"]["macro_accuracy"].as_f64().unwrap() > 0.5);

    let o = deepnet(&["langid", run_s, "Der Hund bellt.", "Кошка спит на окне."]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.lines().count(), 2 * 4, "{text}");
    let percents: f64 = text
        .lines()
        .filter(|l| l.starts_with("  "))
        .take(3)
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .unwrap()
                .trim_end_matches('%')
                .parse::<f64>()
                .unwrap()
        })
        .sum();
    assert!(percents > 0.0 && percents <= 100.01, "{text}");
    // Unseen characters are unknown, not an error.
    let o = deepnet(&["langid", run_s, "日本語のテキスト ☃"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Bad input: one line, non-zero exit.
    assert_fails_cleanly(&deepnet(&["langid", run_s, "  \t "]), "empty");
    let huge = "a".repeat(70_000);
    assert_fails_cleanly(&deepnet(&["langid", run_s, &huge]), "64 KiB");
    assert_fails_cleanly(&deepnet(&["langid", run_s, "x", "--top", "0"]), "--top");
    assert_fails_cleanly(
        &deepnet(&["langid", tmp.path().join("none").to_str().unwrap(), "x"]),
        "none",
    );
    // The same directory again: refused, nothing overwritten.
    let again = deepnet(&[
        "langid-train",
        "--fortunes",
        fortunes.to_str().unwrap(),
        "--out",
        run_s,
    ]);
    assert_fails_cleanly(&again, "already holds a run");

    // Resume to a third epoch.
    let o = deepnet(&["langid-train", "--resume", run_s, "--epochs", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);
    assert_fails_cleanly(
        &deepnet(&["langid-train", "--resume", run_s, "--epochs", "3"]),
        "already finished",
    );
}

#[test]
fn bad_text_folders_fail_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let train = |data: &Path| {
        deepnet(&[
            "langid-train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "1",
        ])
    };
    // An empty folder.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_fails_cleanly(&train(&empty), "no language folders");
    // One language only.
    let one = tmp.path().join("one");
    std::fs::create_dir_all(one.join("en")).unwrap();
    std::fs::write(one.join("en/a.txt"), "hello there\n\ngeneral kenobi\n").unwrap();
    assert_fails_cleanly(&train(&one), "at least two");
    // A language folder whose only file is binary, another whose text is not UTF-8.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(bad.join("en")).unwrap();
    std::fs::create_dir_all(bad.join("xx")).unwrap();
    std::fs::create_dir_all(bad.join("yy")).unwrap();
    std::fs::write(bad.join("en/a.txt"), "hello there\n\ngeneral kenobi\n").unwrap();
    std::fs::write(bad.join("xx/blob.bin"), [0u8, 1, 2, 3, 0, 255]).unwrap();
    std::fs::write(bad.join("yy/latin1.txt"), b"caf\xe9 cr\xe8me\n").unwrap();
    assert_fails_cleanly(&train(&bad), "language xx");
    std::fs::remove_dir_all(bad.join("xx")).unwrap();
    assert_fails_cleanly(&train(&bad), "language yy");
    // A missing fortunes directory says how to get it.
    let o = deepnet(&[
        "langid-train",
        "--fortunes",
        tmp.path().join("nowhere").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_fails_cleanly(&o, "langid_job.sh");
    // Nothing was created for the failed runs.
    assert!(!out.join("checkpoint.safetensors").exists());
}

#[test]
fn an_image_run_is_not_a_language_identifier() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("img");
    let o = common::train_image_run(&run);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_fails_cleanly(
        &deepnet(&["langid", run.to_str().unwrap(), "hello"]),
        "not a language-identification",
    );
}
