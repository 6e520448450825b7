//! IDX parsing and MNIST-format loading on real (committed) Fashion-MNIST files.

mod common;

use deepnet::data::{FashionMnist, Split};
use deepnet::io::idx;
use deepnet::Error;

#[test]
fn loads_the_gzipped_fixture() {
    let train = FashionMnist::load(common::fixture_dir(), Split::Train).unwrap();
    let test = FashionMnist::load(common::fixture_dir(), Split::Test).unwrap();
    assert_eq!((train.len(), train.rows, train.cols), (2000, 28, 28));
    assert_eq!(test.len(), 500);
    assert_eq!(train.class_names[9], "Ankle boot");
    // Every class is present and the pixels are not all blank.
    for c in 0..10u8 {
        assert!(train.labels.contains(&c), "class {c} missing");
    }
    assert!(train.images.iter().any(|&p| p > 200));
}

#[test]
fn raw_and_gzip_give_the_same_data() {
    let raw = common::raw_copy_of_fixture();
    let a = FashionMnist::load(common::fixture_dir(), Split::Test).unwrap();
    let b = FashionMnist::load(raw.path(), Split::Test).unwrap();
    assert_eq!(a.images, b.images);
    assert_eq!(a.labels, b.labels);
}

#[test]
fn truncated_image_file_is_reported_with_its_name() {
    let raw = common::raw_copy_of_fixture();
    let path = raw.path().join("t10k-images-idx3-ubyte");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = FashionMnist::load(raw.path(), Split::Test).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::BadData { .. }));
    assert!(
        msg.contains("t10k-images-idx3-ubyte") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn truncated_gzip_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(common::fixture_dir().join(name), dir.path().join(name)).unwrap();
    }
    let path = dir.path().join("t10k-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let msg = FashionMnist::load(dir.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("t10k-images-idx3-ubyte.gz"), "{msg}");
}

#[test]
fn wrong_magic_is_reported() {
    let raw = common::raw_copy_of_fixture();
    let path = raw.path().join("t10k-labels-idx1-ubyte");
    std::fs::write(&path, b"this is a text file, not IDX").unwrap();
    let msg = FashionMnist::load(raw.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("magic"), "{msg}");
}

#[test]
fn mismatched_counts_are_reported() {
    let raw = common::raw_copy_of_fixture();
    // Put the 2,000 training labels beside the 500 test images.
    std::fs::copy(
        raw.path().join("train-labels-idx1-ubyte"),
        raw.path().join("t10k-labels-idx1-ubyte"),
    )
    .unwrap();
    let msg = FashionMnist::load(raw.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("2000 labels") && msg.contains("500 images"),
        "{msg}"
    );
}

#[test]
fn label_out_of_range_is_reported() {
    let raw = common::raw_copy_of_fixture();
    let bytes = idx::encode_idx(&[500], &[10u8; 500]);
    std::fs::write(raw.path().join("t10k-labels-idx1-ubyte"), bytes).unwrap();
    let msg = FashionMnist::load(raw.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("out of range"), "{msg}");
}

#[test]
fn missing_directory_and_missing_file() {
    let msg = FashionMnist::load("/no/such/dir", Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("/no/such/dir") && msg.contains("does not exist"),
        "{msg}"
    );
    let empty = tempfile::tempdir().unwrap();
    let msg = FashionMnist::load(empty.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
}
