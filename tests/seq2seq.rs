//! The attention decoder and the sequence-to-sequence network: teacher-forced loss and every
//! parameter's gradient against PyTorch (fixtures from scripts/make_seq2seq_fixtures.py),
//! beam search of width 1 against greedy decoding, and `deepnet translate-train` /
//! `deepnet translate` on the committed CMUdict extract, bad input included.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{assert_fails_cleanly, deepnet, stdout};
use deepnet::models::{CellType, Seq2Seq, Seq2SeqConfig};
use deepnet::nn::{AttentionKind, DecodeOptions, SpecialTokens};
use deepnet::tasks::g2p::{sequence_loss, G2pBatch};
use deepnet::train::checkpoint::load_weights;
use deepnet::train::tokens::TargetTokens;
use deepnet::weights::StateDict;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seq2seq")
        .join(name)
}

fn config(cell: CellType, attention: AttentionKind) -> Seq2SeqConfig {
    Seq2SeqConfig::new(8, 9)
        .with_embed_size(5)
        .with_encoder_hidden(4)
        .with_decoder_hidden(6)
        .with_attention_size(7)
        .with_cell(cell)
        .with_attention(attention)
}

const CASES: [(&str, CellType, AttentionKind); 4] = [
    ("lstm_additive", CellType::Lstm, AttentionKind::Additive),
    (
        "lstm_multiplicative",
        CellType::Lstm,
        AttentionKind::Multiplicative,
    ),
    ("lstm_none", CellType::Lstm, AttentionKind::None),
    ("gru_additive", CellType::Gru, AttentionKind::Additive),
];

fn values(d: &StateDict, key: &str) -> Vec<f32> {
    d.tensors
        .get(key)
        .unwrap_or_else(|| panic!("fixture lacks {key}"))
        .data
        .clone()
}

fn ids(d: &StateDict, key: &str, device: &Device) -> Tensor<2, Int> {
    let e = &d.tensors[key];
    let v: Vec<i64> = e.data.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [e.shape[0], e.shape[1]]), device)
}

/// The fixture's batch, `source` optionally changed at (row, column) to `letter`.
fn batch(d: &StateDict, device: &Device, change: Option<(usize, usize, i64)>) -> G2pBatch {
    let mut source = ids(d, "source", device);
    if let Some((r, c, letter)) = change {
        let [b, s] = source.dims();
        let mut v = source
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        v[r * s + c] = letter;
        source = Tensor::from_data(TensorData::new(v, [b, s]), device);
    }
    let mask = values(d, "mask");
    let [b, t] = [d.tensors["mask"].shape[0], d.tensors["mask"].shape[1]];
    G2pBatch {
        source,
        lengths: values(d, "lengths").iter().map(|&x| x as usize).collect(),
        targets: TargetTokens {
            inputs: ids(d, "target_in", device),
            targets: ids(d, "target_out", device),
            tokens: mask.iter().sum::<f32>() as usize,
            mask: Tensor::from_data(TensorData::new(mask, [b, t]), device),
        },
    }
}

/// Every parameter's gradient by field path.
fn gradients(model: &Seq2Seq, grads: &GradientsParams) -> BTreeMap<String, Vec<f32>> {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        path: Vec<String>,
        out: BTreeMap<String, Vec<f32>>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = self
                .grads
                .get::<D>(param.id)
                .map(|g| g.into_data().try_to_vec::<f32>().unwrap())
                .unwrap_or_default();
            self.out.insert(self.path.join("."), g);
        }
    }
    let mut c = Collect {
        grads,
        path: Vec::new(),
        out: BTreeMap::new(),
    };
    model.visit(&mut c);
    c.out
}

#[test]
fn teacher_forced_loss_and_gradients_match_pytorch() {
    let device = Device::flex().autodiff();
    for (name, cell, attention) in CASES {
        let model = load_weights(
            config(cell, attention).init(&device),
            &fixture(&format!("{name}.weights.safetensors")),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let d = StateDict::read_safetensors(fixture(&format!("{name}.batch.safetensors"))).unwrap();
        let (loss, stats) = sequence_loss(&model, batch(&d, &device, None)).unwrap();
        let expected = values(&d, "loss")[0];
        let got = loss.clone().into_scalar::<f32>();
        assert!(
            (got - expected).abs() < 1e-5 * expected.abs().max(1.0),
            "{name}: loss {got}, PyTorch {expected}"
        );
        assert!((stats.nats / stats.tokens as f64 - expected as f64).abs() < 1e-4);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let ours = gradients(&model, &grads);
        let mut compared = 0;
        for (path, g) in &ours {
            let key = format!("grad.{path}");
            let want = values(&d, &key);
            assert_eq!(g.len(), want.len(), "{name}: {path} has no gradient");
            let scale = want.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
            for (i, (a, b)) in g.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * scale,
                    "{name}: {path}[{i}] = {a}, PyTorch {b}"
                );
            }
            compared += 1;
        }
        // Every tensor of the fixture was compared: none of ours is missing.
        let fixture_grads = d.tensors.keys().filter(|k| k.starts_with("grad.")).count();
        assert_eq!(compared, fixture_grads, "{name}");
    }
}

#[test]
fn the_loss_depends_on_the_source_letters() {
    // A fixed loss would pass the parity check for any input: a changed letter must move it,
    // through the attention (and, without attention, through the first state).
    let device = Device::flex();
    for (name, cell, attention) in CASES {
        let model = load_weights(
            config(cell, attention).init(&device),
            &fixture(&format!("{name}.weights.safetensors")),
        )
        .unwrap();
        let d = StateDict::read_safetensors(fixture(&format!("{name}.batch.safetensors"))).unwrap();
        let loss = |change| {
            sequence_loss(&model, batch(&d, &device, change))
                .unwrap()
                .0
                .into_scalar::<f32>()
        };
        let base = loss(None);
        let source = values(&d, "source");
        let letter = if source[1] as i64 == 5 { 6 } else { 5 };
        let moved = loss(Some((0, 1, letter)));
        assert!((base - moved).abs() > 1e-5, "{name}: {base} vs {moved}");
        // A letter past a row's length is padding: it changes nothing.
        let same = loss(Some((1, 4, letter)));
        assert_eq!(base, same, "{name}: padding changed the loss");
    }
}

fn random_model(attention: AttentionKind, cell: CellType, seed: u64) -> Seq2Seq {
    let device = Device::flex();
    device.seed(seed);
    Seq2SeqConfig::new(12, 10)
        .with_embed_size(6)
        .with_encoder_hidden(5)
        .with_decoder_hidden(7)
        .with_attention_size(4)
        .with_cell(cell)
        .with_attention(attention)
        .init(&device)
}

fn sources(device: &Device) -> (Tensor<2, Int>, Vec<usize>) {
    let rows: [&[i64]; 5] = [&[3, 4, 5, 6, 7], &[8, 2], &[11, 10, 9], &[1], &[5, 5, 5, 5]];
    let s = 5;
    let mut v = vec![0i64; rows.len() * s];
    for (r, row) in rows.iter().enumerate() {
        v[r * s..r * s + row.len()].copy_from_slice(row);
    }
    (
        Tensor::from_data(TensorData::new(v, [rows.len(), s]), device),
        rows.iter().map(|r| r.len()).collect(),
    )
}

#[test]
fn beam_search_of_width_one_is_greedy_decoding() {
    let device = Device::flex();
    let mut differ = 0;
    for (seed, attention, cell) in [
        (1, AttentionKind::Additive, CellType::Lstm),
        (2, AttentionKind::Multiplicative, CellType::Lstm),
        (3, AttentionKind::None, CellType::Gru),
        (4, AttentionKind::Additive, CellType::Gru),
    ] {
        let model = random_model(attention, cell, seed);
        for max_len in [2, 12] {
            let options = DecodeOptions {
                tokens: SpecialTokens { bos: 1, eos: 2 },
                max_len,
                beam_width: 1,
                length_alpha: 1.0,
            };
            let (source, lengths) = sources(&device);
            let (memory, state) = model.encode(source, &lengths).unwrap();
            let greedy = model
                .decoder
                .greedy(state.clone(), &memory, &options)
                .unwrap();
            for (row, g) in greedy.iter().enumerate() {
                let beam = model
                    .decoder
                    .beam(state.select(&[row]), &memory.select(&[row]), &options)
                    .unwrap();
                let b = &beam[0];
                assert_eq!(b.tokens, g.tokens, "{attention:?} row {row}");
                assert_eq!(b.finished, g.finished, "{attention:?} row {row}");
                assert!((b.log_prob - g.log_prob).abs() < 1e-4);
                assert_eq!(b.weights.len(), g.weights.len());
                for (x, y) in b.weights.iter().zip(&g.weights) {
                    assert_eq!(x.len(), lengths[row]);
                    for (p, q) in x.iter().zip(y) {
                        assert!((p - q).abs() < 1e-5);
                    }
                }
                assert!(g.tokens.len() <= max_len);
                if attention == AttentionKind::None {
                    assert!(g.weights.is_empty());
                }
            }
            // Different sources decode differently: the decoder reads them.
            differ += usize::from(greedy.windows(2).any(|w| w[0].tokens != w[1].tokens));
        }
        // A wider beam finds an output at least as likely as greedy's (unnormalised score).
        let options = DecodeOptions {
            tokens: SpecialTokens { bos: 1, eos: 2 },
            max_len: 12,
            beam_width: 4,
            length_alpha: 0.0,
        };
        let (source, lengths) = sources(&device);
        let (memory, state) = model.encode(source, &lengths).unwrap();
        let greedy = model
            .decoder
            .greedy(
                state.clone(),
                &memory,
                &DecodeOptions {
                    beam_width: 1,
                    ..options
                },
            )
            .unwrap();
        for (row, g) in greedy.iter().enumerate() {
            let b = model
                .decoder
                .beam(state.select(&[row]), &memory.select(&[row]), &options)
                .unwrap();
            if g.finished {
                assert!(b[0].log_prob >= g.log_prob - 1e-5, "row {row}");
            }
            assert!(b.len() <= 4 && !b.is_empty());
        }
    }
    assert!(differ > 0, "every source decoded to the same output");
}

#[test]
fn beam_width_zero_is_refused() {
    let device = Device::flex();
    let model = random_model(AttentionKind::Additive, CellType::Lstm, 5);
    let (source, lengths) = sources(&device);
    let options = DecodeOptions {
        tokens: SpecialTokens { bos: 1, eos: 2 },
        max_len: 5,
        beam_width: 0,
        length_alpha: 1.0,
    };
    let e = model.decode(source, &lengths, &options).unwrap_err();
    assert!(e.to_string().contains("beam_width"), "{e}");
}

fn extract() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/cmudict-extract/cmudict.dict")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn translate_train_and_translate_on_the_extract() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("g2p");
    let run_s = run.to_str().unwrap();
    let o = deepnet(&[
        "translate-train",
        "--data",
        &extract(),
        "--out",
        run_s,
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--encoder-hidden",
        "16",
        "--decoder-hidden",
        "32",
        "--embed-size",
        "16",
        "--valid-fraction",
        "0.1",
        "--test-fraction",
        "0.1",
        "--beam",
        "3",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("greedy") && out.contains("beam 3"), "{out}");
    for f in [
        "report/g2p_test.json",
        "report/attention.png",
        "metrics.jsonl",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report/g2p_test.json")).unwrap()).unwrap();
    let d = &report["decodings"];
    assert_eq!(d.as_array().unwrap().len(), 2);
    for x in d.as_array().unwrap() {
        let wer = x["test_wer"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&wer));
        // 38 test words of the extract (10% of 377 words after punctuation entries).
        assert!(x["test"]["words"].as_u64().unwrap() > 20);
    }

    let o = deepnet(&["translate", run_s, "Hello", "cat's", "--beam", "2"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("hello "), "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let png = dir.path().join("att.png");
    let o = deepnet(&[
        "translate",
        run_s,
        "cat",
        "--heatmap",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success() && png.exists());

    // Bad input: one clear line, non-zero exit, no panic.
    assert_fails_cleanly(&deepnet(&["translate", run_s, "c4t"]), "'4'");
    assert_fails_cleanly(&deepnet(&["translate", run_s, ""]), "is empty");
    let long = "a".repeat(40);
    assert_fails_cleanly(&deepnet(&["translate", run_s, &long]), "longest word");
    assert_fails_cleanly(
        &deepnet(&["translate", run_s, "cat", "--beam", "0"]),
        "beam",
    );
    // A beam too wide to bound the search's memory.
    assert_fails_cleanly(
        &deepnet(&["translate", run_s, "cat", "--beam", "100000"]),
        "1..=64",
    );
    let other = dir.path().join("image");
    assert!(common::train_image_run(&other).status.success());
    assert_fails_cleanly(
        &deepnet(&["translate", other.to_str().unwrap(), "cat"]),
        "not a grapheme-to-phoneme",
    );
    // A dictionary with a bad line is named, with its line.
    let bad = dir.path().join("bad.dict");
    std::fs::write(&bad, "cat K AE T\ndog D XX G\n").unwrap();
    assert_fails_cleanly(
        &deepnet(&[
            "translate-train",
            "--data",
            bad.to_str().unwrap(),
            "--out",
            dir.path().join("bad").to_str().unwrap(),
        ]),
        "line 2",
    );
}
