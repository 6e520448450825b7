//! A stable-Rust mutation fuzzer for every parser of untrusted bytes: IDX (raw and gzip),
//! `.npy`, safetensors (deepnet's header reader and its state-dict reader), `.pth` (zip and
//! pickle, through burn's reader), images (deepnet's bounded decoder), fortune-format text and
//! CMUdict.
//!
//! Each parser starts from valid seed files and runs on seeded mutations of them (bit flips,
//! bytes set to boundary values, 32-bit fields set to 0 / 1 / 2^31 / 2^32 - 1 in either byte
//! order, insertions, deletions, truncations, duplicated and spliced chunks). A panic is a
//! crash: the input is written to `target/fuzz-crashes/` and the test fails naming it. An
//! answer of `Err` is the expected outcome for most inputs.
//!
//! CI runs a short round (`DEEPNET_FUZZ_ITERS`, default 3,000 inputs per parser); the long
//! runs of the record use `DEEPNET_FUZZ_ITERS=1000000 cargo test --release --test fuzz --
//! --nocapture` and print how many inputs each parser took and how many it accepted.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use deepnet::data::text::corpus::file_entries;
use deepnet::data::text::Skipped;
use deepnet::io::idx::{encode_idx, parse_idx, read_idx};
use deepnet::io::npy::{encode_npy, parse_npy, NpyArray};
use deepnet::weights::StateDict;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn iterations() -> usize {
    std::env::var("DEEPNET_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// One mutation of `seeds[k]` (sometimes spliced with another seed).
fn mutate(seeds: &[Vec<u8>], rng: &mut StdRng) -> Vec<u8> {
    let mut b = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        let len = b.len();
        match rng.random_range(0..8) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                b[i] = [0u8, 1, 0x7f, 0x80, 0xff][rng.random_range(0..5)];
            }
            2 if len >= 4 => {
                // Header fields are where parsers trust the file: lengths, dimensions, offsets.
                let i = rng.random_range(0..=len - 4);
                let v: u32 = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, len as u32 * 2]
                    [rng.random_range(0..6)];
                let bytes = if rng.random_bool(0.5) {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                b[i..i + 4].copy_from_slice(&bytes);
            }
            3 => {
                let i = rng.random_range(0..=len);
                let n = rng.random_range(1..=16);
                let ins: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                b.splice(i..i, ins);
            }
            4 if len > 0 => {
                let i = rng.random_range(0..len);
                let j = (i + rng.random_range(1..=64)).min(len);
                b.drain(i..j);
            }
            5 if len > 0 => {
                b.truncate(rng.random_range(0..len));
            }
            6 if len > 0 => {
                let i = rng.random_range(0..len);
                let j = (i + rng.random_range(1..=256)).min(len);
                let chunk = b[i..j].to_vec();
                let at = rng.random_range(0..=b.len());
                b.splice(at..at, chunk);
            }
            _ => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                if !other.is_empty() {
                    let cut = rng.random_range(0..=len);
                    let from = rng.random_range(0..other.len());
                    b.truncate(cut);
                    b.extend_from_slice(&other[from..]);
                }
            }
        }
    }
    b
}

/// Runs `parse` on `iterations()` mutations of `seeds`; returns (inputs, accepted). A panic
/// saves the input and fails the test.
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, parse: impl Fn(&[u8]) -> bool) -> (usize, usize) {
    for (k, s) in seeds.iter().enumerate() {
        assert!(parse(s), "{name}: seed {k} must parse");
    }
    let n = iterations();
    let mut rng = StdRng::seed_from_u64(0x5eed ^ name.len() as u64);
    let mut accepted = 0;
    for i in 0..n {
        let input = mutate(&seeds, &mut rng);
        match catch_unwind(AssertUnwindSafe(|| parse(&input))) {
            Ok(ok) => accepted += usize::from(ok),
            Err(_) => {
                let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join(format!("{name}-{i}.bin"));
                std::fs::write(&path, &input).unwrap();
                panic!(
                    "{name}: input {i} panicked the parser; saved to {}",
                    path.display()
                );
            }
        }
    }
    println!("fuzz {name}: {n} inputs, {accepted} accepted, no crash");
    (n, accepted)
}

/// A scratch file for the parsers that read a path.
fn scratch(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

#[test]
fn fuzz_idx() {
    let labels = encode_idx(&[6], &[0, 1, 2, 3, 4, 5]);
    let images = encode_idx(&[2, 3, 3], &(0..18).collect::<Vec<u8>>());
    fuzz("idx", vec![labels, images], |b| {
        parse_idx(b, Path::new("f.idx")).is_ok()
    });
    // The gzip path reads a file and inflates it as far as the header declares.
    let tmp = tempfile::tempdir().unwrap();
    let path = scratch(tmp.path(), "f.gz");
    let seeds = vec![
        gzip(&encode_idx(&[6], &[0, 1, 2, 3, 4, 5])),
        fixture("tests/fixtures/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz"),
    ];
    fuzz("idx-gzip", seeds, |b| {
        write(&path, b);
        read_idx(&path).is_ok()
    });
}

#[test]
fn fuzz_npy() {
    let a = encode_npy(&NpyArray {
        shape: vec![2, 1, 2, 2],
        data: (0..8).map(|v| v as f32).collect(),
    });
    let b = encode_npy(&NpyArray {
        shape: vec![3],
        data: vec![1.0, 2.0, 3.0],
    });
    fuzz("npy", vec![a, b], |b| {
        parse_npy(b, Path::new("f.npy")).is_ok()
    });
}

#[test]
fn fuzz_safetensors() {
    let seeds = vec![
        fixture("tests/fixtures/vision/resnet18.safetensors"),
        fixture("tests/fixtures/recurrent/gru.safetensors"),
    ];
    fuzz("safetensors", seeds.clone(), |b| {
        StateDict::parse_safetensors(b, Path::new("f.safetensors")).is_ok()
    });
    fuzz("safetensors-header", seeds, |b| {
        deepnet::io::safetensors_header::header(b, Path::new("f.safetensors")).is_ok()
    });
}

#[test]
fn fuzz_pth() {
    let tmp = tempfile::tempdir().unwrap();
    let path = scratch(tmp.path(), "f.pth");
    let seeds = vec![fixture("tests/fixtures/recurrent/lstm.pth")];
    fuzz("pth", seeds, |b| {
        write(&path, b);
        StateDict::read_pth(&path).is_ok()
    });
}

#[test]
fn fuzz_image() {
    let tmp = tempfile::tempdir().unwrap();
    let path = scratch(tmp.path(), "f.img");
    let mut seeds = Vec::new();
    for (k, format) in [
        image::ImageFormat::Png,
        image::ImageFormat::Bmp,
        image::ImageFormat::Jpeg,
        image::ImageFormat::Gif,
    ]
    .into_iter()
    .enumerate()
    {
        let img = image::RgbImage::from_fn(6 + k as u32, 5, |x, y| {
            image::Rgb([(x * 40) as u8, (y * 50) as u8, 90])
        });
        let mut bytes = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut bytes, format)
            .unwrap();
        seeds.push(bytes.into_inner());
    }
    fuzz("image", seeds, |b| {
        write(&path, b);
        deepnet::data::folder::decode(&path).is_ok()
    });
}

#[test]
fn fuzz_text() {
    let seeds = vec![
        b"An entry.\n%\nAnother one,\non two lines.\n%\n".to_vec(),
        "Zażółć gęślą jaźń.\r\n%\r\nПривет, мир.\r\n%\r\n"
            .as_bytes()
            .to_vec(),
        b"A paragraph.\n\nAnother paragraph\nwithout percent lines.\n".to_vec(),
    ];
    for encoding in [
        encoding_rs::UTF_8,
        encoding_rs::ISO_8859_2,
        encoding_rs::KOI8_R,
    ] {
        fuzz(&format!("text-{}", encoding.name()), seeds.clone(), |b| {
            let mut skipped = Skipped::default();
            file_entries(b, encoding, &mut skipped).is_some()
        });
    }
}

#[test]
fn fuzz_cmudict() {
    let seeds = vec![fixture("tests/data/cmudict-extract/cmudict.dict")];
    fuzz("cmudict", seeds, |b| {
        deepnet::data::text::CmuDict::parse(&String::from_utf8_lossy(b)).is_ok()
    });
}
