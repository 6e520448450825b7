//! Parity of the recurrent layers with PyTorch (torch.nn.RNN/LSTM/GRU) and with the NumPy
//! reference of the lecture's GRU and ConvLSTM: outputs, final states and the gradients of a
//! scalar loss with respect to the input, the initial state and every weight, to 1e-5 absolute.
//! Fixtures: tests/fixtures/recurrent, written by scripts/make_recurrent_fixtures.py.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use deepnet::recurrent::{
    CellKind, GruConfig, GruReset, Implementation, LstmConfig, LstmState, Nonlinearity, RnnConfig,
};
use deepnet::weights::StateDict;

const TOL: f32 = 1e-5;

fn fixture(name: &str) -> StateDict {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/recurrent")
        .join(format!("{name}.safetensors"));
    StateDict::read_safetensors(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn get<const D: usize>(d: &StateDict, name: &str, device: &Device) -> Tensor<D> {
    let e = d
        .tensors
        .get(name)
        .unwrap_or_else(|| panic!("fixture has no '{name}'"));
    let shape: [usize; D] = e.shape.clone().try_into().expect("rank");
    Tensor::from_data(TensorData::new(e.data.clone(), shape), device)
}

/// The tensors under `prefix.`, with the prefix removed.
fn sub(d: &StateDict, prefix: &str) -> StateDict {
    let mut out = StateDict::new(format!("{} [{prefix}]", d.source));
    for (k, v) in &d.tensors {
        if let Some(rest) = k.strip_prefix(&format!("{prefix}.")) {
            out.tensors.insert(rest.to_string(), v.clone());
        }
    }
    out
}

fn assert_close<const D: usize>(what: &str, got: Tensor<D>, d: &StateDict, key: &str) {
    let want = d.tensors.get(key).unwrap_or_else(|| panic!("no '{key}'"));
    assert_eq!(got.dims().to_vec(), want.shape, "{what}: shape of {key}");
    let got = got
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    let worst = got
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= TOL,
        "{what}: {key} differs from the reference by {worst}"
    );
}

fn lengths(d: &StateDict) -> Option<Vec<usize>> {
    d.tensors
        .get("lengths")
        .map(|e| e.data.iter().map(|&v| v as usize).collect())
}

/// Which cell of the stack a PyTorch name belongs to, and which of its fields.
fn cell_of(name: &str) -> (usize, &str) {
    let (base, reverse) = match name.strip_suffix("_reverse") {
        Some(b) => (b, 1),
        None => (name, 0),
    };
    let (field, layer) = base.rsplit_once("_l").expect("a layer suffix");
    (
        layer.parse::<usize>().expect("layer index") * 2 + reverse,
        field,
    )
}

fn check_layer(name: &str, kind: CellKind) {
    let device = Device::flex().autodiff();
    let d = fixture(name);
    let params = sub(&d, "param");
    let x: Tensor<3> = get(&d, "input", &device);
    let [_, _, input_size] = x.dims();
    let h0: Tensor<3> = get(&d, "h0", &device);
    let [layers2, _, hidden] = h0.dims();
    let lens = lengths(&d);
    for implementation in [Implementation::Auto, Implementation::Reference] {
        let what = format!("{name} ({implementation:?})");
        let x = x.clone().require_grad();
        let h0 = h0.clone().require_grad();
        let (num_layers, bidirectional) = (layers2 / 2, true);
        // Build the layer, load torch's weights, run, and collect the cell tensors.
        let (out, h_n, c_n, c0, cells) = match kind {
            CellKind::Lstm => {
                let layer = LstmConfig::new(input_size, hidden)
                    .with_num_layers(num_layers)
                    .with_bidirectional(bidirectional)
                    .init(&device)
                    .load_torch(&params)
                    .unwrap();
                let c0: Tensor<3> = get::<3>(&d, "c0", &device).require_grad();
                let state = LstmState {
                    h: h0.clone(),
                    c: c0.clone(),
                };
                let (out, s) = layer
                    .forward_with(x.clone(), lens.as_deref(), Some(state), implementation)
                    .unwrap();
                let cells = layer.cells.iter().map(|c| c.tensors()).collect::<Vec<_>>();
                (out, s.h, Some(s.c), Some(c0), cells)
            }
            CellKind::Gru | CellKind::GruResetBefore => {
                let reset = if kind == CellKind::Gru {
                    GruReset::After
                } else {
                    GruReset::Before
                };
                let layer = GruConfig::new(input_size, hidden)
                    .with_num_layers(num_layers)
                    .with_bidirectional(bidirectional)
                    .with_reset(reset)
                    .init(&device)
                    .load_torch(&params)
                    .unwrap();
                let (out, h) = layer
                    .forward_with(x.clone(), lens.as_deref(), Some(h0.clone()), implementation)
                    .unwrap();
                let cells = layer.cells.iter().map(|c| c.tensors()).collect::<Vec<_>>();
                (out, h, None, None, cells)
            }
            CellKind::RnnTanh | CellKind::RnnRelu => {
                let nl = if kind == CellKind::RnnTanh {
                    Nonlinearity::Tanh
                } else {
                    Nonlinearity::Relu
                };
                let layer = RnnConfig::new(input_size, hidden)
                    .with_num_layers(num_layers)
                    .with_bidirectional(bidirectional)
                    .with_nonlinearity(nl)
                    .init(&device)
                    .load_torch(&params)
                    .unwrap();
                let (out, h) = layer
                    .forward_with(x.clone(), lens.as_deref(), Some(h0.clone()), implementation)
                    .unwrap();
                let cells = layer.cells.iter().map(|c| c.tensors()).collect::<Vec<_>>();
                (out, h, None, None, cells)
            }
        };
        assert_close(&what, out.clone(), &d, "output");
        assert_close(&what, h_n.clone(), &d, "h_n");
        let mut loss = (out * get::<3>(&d, "r_out", &device)).sum()
            + (h_n * get::<3>(&d, "r_h", &device)).sum();
        if let Some(c_n) = c_n {
            assert_close(&what, c_n.clone(), &d, "c_n");
            loss = loss + (c_n * get::<3>(&d, "r_c", &device)).sum();
        }
        let grads = loss.backward();
        assert_close(&what, x.grad(&grads).unwrap(), &d, "grad.input");
        assert_close(&what, h0.grad(&grads).unwrap(), &d, "grad.h0");
        if let Some(c0) = c0 {
            assert_close(&what, c0.grad(&grads).unwrap(), &d, "grad.c0");
        }
        let mut checked = 0;
        for key in params.tensors.keys() {
            let (k, field) = cell_of(key);
            let w = &cells[k];
            let key_grad = format!("grad.{key}");
            let missing = format!("{what}: no gradient for {key}");
            match field {
                "weight_ih" => assert_close(
                    &what,
                    w.weight_ih.grad(&grads).expect(&missing),
                    &d,
                    &key_grad,
                ),
                "weight_hh" => assert_close(
                    &what,
                    w.weight_hh.grad(&grads).expect(&missing),
                    &d,
                    &key_grad,
                ),
                "bias_ih" => assert_close(
                    &what,
                    w.bias_ih.grad(&grads).expect(&missing),
                    &d,
                    &key_grad,
                ),
                "bias_hh" => assert_close(
                    &what,
                    w.bias_hh.grad(&grads).expect(&missing),
                    &d,
                    &key_grad,
                ),
                other => panic!("unknown field {other}"),
            }
            checked += 1;
        }
        assert_eq!(checked, layers2 * 4, "{what}: every weight checked");
    }
}

#[test]
fn rnn_tanh_matches_torch() {
    check_layer("rnn_tanh", CellKind::RnnTanh);
    check_layer("rnn_tanh_lengths", CellKind::RnnTanh);
}

#[test]
fn rnn_relu_matches_torch() {
    check_layer("rnn_relu", CellKind::RnnRelu);
    check_layer("rnn_relu_lengths", CellKind::RnnRelu);
}

#[test]
fn lstm_matches_torch() {
    check_layer("lstm", CellKind::Lstm);
    check_layer("lstm_lengths", CellKind::Lstm);
}

#[test]
fn gru_matches_torch() {
    check_layer("gru", CellKind::Gru);
    check_layer("gru_lengths", CellKind::Gru);
}

#[test]
fn lecture_gru_matches_numpy_reference() {
    check_layer("gru_reset_before", CellKind::GruResetBefore);
    check_layer("gru_reset_before_lengths", CellKind::GruResetBefore);
}

/// The two GRU formulations are different functions: torch's weights in the lecture's GRU do not
/// give torch's outputs.
#[test]
fn gru_formulations_differ() {
    let device = Device::flex();
    let d = fixture("gru");
    let layer = GruConfig::new(3, 4)
        .with_num_layers(2)
        .with_bidirectional(true)
        .with_reset(GruReset::Before)
        .init(&device)
        .load_torch(&sub(&d, "param"))
        .unwrap();
    let (out, _) = layer
        .forward(get(&d, "input", &device), Some(get(&d, "h0", &device)))
        .unwrap();
    let want: Tensor<3> = get(&d, "output", &device);
    let diff = (out - want).abs().max().into_scalar::<f32>();
    assert!(
        diff > 1e-3,
        "reset-before gave reset-after's outputs (diff {diff})"
    );
}

/// deepnet's clipping on the LSTM's gradients gives torch's clip_grad_norm_ (total norm and
/// clipped gradients) and clip_grad_value_ results.
#[test]
fn clipping_matches_torch() {
    use burn::optim::GradientsParams;
    use deepnet::train::clip::{clip_grad_norm, clip_grad_value};
    let device = Device::flex().autodiff();
    let d = fixture("lstm");
    let layer = LstmConfig::new(3, 4)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&device)
        .load_torch(&sub(&d, "param"))
        .unwrap();
    let grads = || {
        let state = LstmState {
            h: get(&d, "h0", &device),
            c: get(&d, "c0", &device),
        };
        let (out, s) = layer
            .forward(get(&d, "input", &device), Some(state))
            .unwrap();
        let loss = (out * get::<3>(&d, "r_out", &device)).sum()
            + (s.h * get::<3>(&d, "r_h", &device)).sum()
            + (s.c * get::<3>(&d, "r_c", &device)).sum();
        GradientsParams::from_grads(loss.backward(), &layer)
    };
    let check = |gp: &GradientsParams, prefix: &str| {
        for (k, cell) in layer.cells.iter().enumerate() {
            let sfx = format!("_l{}{}", k / 2, if k % 2 == 1 { "_reverse" } else { "" });
            let g2 = |id| gp.get::<2>(id).expect("gradient");
            let g1 = |id| gp.get::<1>(id).expect("gradient");
            assert_close(
                prefix,
                g2(cell.weight_ih.id),
                &d,
                &format!("{prefix}.weight_ih{sfx}"),
            );
            assert_close(
                prefix,
                g2(cell.weight_hh.id),
                &d,
                &format!("{prefix}.weight_hh{sfx}"),
            );
            let (b_ih, b_hh) = (
                cell.bias_ih.as_ref().unwrap(),
                cell.bias_hh.as_ref().unwrap(),
            );
            assert_close(prefix, g1(b_ih.id), &d, &format!("{prefix}.bias_ih{sfx}"));
            assert_close(prefix, g1(b_hh.id), &d, &format!("{prefix}.bias_hh{sfx}"));
        }
    };
    let mut gp = grads();
    let total = clip_grad_norm(&layer, &mut gp, 0.5);
    let want = d.tensors["clip.norm_total"].data[0];
    assert!(
        (total - want).abs() <= 1e-4 * want,
        "total norm {total} vs torch {want}"
    );
    assert!(total > 0.5, "the fixture must actually clip");
    check(&gp, "clip_norm");
    let mut gp = grads();
    clip_grad_value(&layer, &mut gp, 0.05);
    check(&gp, "clip_value");
}

/// A state dict written by deepnet loads back and gives the same outputs.
#[test]
fn torch_state_dict_round_trips_through_safetensors() {
    let device = Device::flex();
    let layer = GruConfig::new(3, 5)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&device);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gru.safetensors");
    layer.torch_state_dict().write_safetensors(&path).unwrap();
    let loaded = GruConfig::new(3, 5)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&device)
        .load_torch(&StateDict::read_safetensors(&path).unwrap())
        .unwrap();
    let x = Tensor::<3>::random([4, 2, 3], burn::tensor::Distribution::Default, &device);
    let a = layer.forward(x.clone(), None).unwrap().0;
    let b = loaded.forward(x, None).unwrap().0;
    assert_eq!(
        a.into_data().try_to_vec::<f32>().unwrap(),
        b.into_data().try_to_vec::<f32>().unwrap()
    );
}

fn error_of<T>(r: deepnet::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let device = Device::flex();
    let lstm = LstmConfig::new(3, 4).with_bidirectional(true).init(&device);
    let x = Tensor::<3>::zeros([5, 2, 3], &device);
    // Mismatched input width.
    let msg = error_of(lstm.forward(Tensor::<3>::zeros([5, 2, 7], &device), None));
    assert!(
        msg.contains("7 features") && msg.contains("input_size = 3"),
        "{msg}"
    );
    // Lengths longer than the sequence, zero, or not one per row.
    let msg = error_of(lstm.forward_with(x.clone(), Some(&[5, 6]), None, Implementation::Auto));
    assert!(
        msg.contains("lengths[1] = 6") && msg.contains("T = 5"),
        "{msg}"
    );
    let msg = error_of(lstm.forward_with(x.clone(), Some(&[0, 5]), None, Implementation::Auto));
    assert!(msg.contains("lengths[0] is 0"), "{msg}");
    let msg = error_of(lstm.forward_with(x.clone(), Some(&[5]), None, Implementation::Auto));
    assert!(msg.contains("1 lengths for a batch of 2"), "{msg}");
    // An initial state of the wrong shape.
    let bad = LstmState {
        h: Tensor::zeros([1, 2, 4], &device),
        c: Tensor::zeros([1, 2, 4], &device),
    };
    let msg = error_of(lstm.forward(x, Some(bad)));
    assert!(msg.contains("h0") && msg.contains("[2, 2, 4]"), "{msg}");
    // A state dict without the reverse direction's tensors (a unidirectional LSTM's).
    let mut dict = LstmConfig::new(3, 4).init(&device).torch_state_dict();
    dict.source = "uni.safetensors".into();
    let msg = error_of(lstm.load_torch(&dict));
    assert!(
        msg.contains("'weight_ih_l0_reverse'") && msg.contains("missing"),
        "{msg}"
    );
    // A mis-shaped tensor names both shapes; an extra one is named.
    let mut dict = lstm.torch_state_dict();
    let e = dict.tensors.get_mut("weight_hh_l0").unwrap();
    e.shape = vec![16, 2];
    e.data.truncate(32);
    let msg = error_of(lstm.load_torch(&dict));
    assert!(
        msg.contains("'weight_hh_l0' has shape [16, 2], the model expects [16, 4]"),
        "{msg}"
    );
    let mut dict = lstm.torch_state_dict();
    let extra = dict.tensors["bias_ih_l0"].clone();
    dict.tensors.insert("bias_ih_l1".into(), extra);
    let msg = error_of(lstm.load_torch(&dict));
    assert!(
        msg.contains("'bias_ih_l1'") && msg.contains("no parameter"),
        "{msg}"
    );
}

fn check_conv_lstm(name: &str, peepholes: bool) {
    use deepnet::recurrent::{ConvLstmConfig, ConvLstmState};
    let device = Device::flex().autodiff();
    let d = fixture(name);
    let x: Tensor<5> = get::<5>(&d, "input", &device).require_grad();
    let h0: Tensor<5> = get::<5>(&d, "h0", &device).require_grad();
    let c0: Tensor<5> = get::<5>(&d, "c0", &device).require_grad();
    let [layers, _, hc, s, _] = h0.dims();
    let channels = x.dims()[2];
    let k = d.tensors["param.cells.0.conv_x.weight"].shape[3];
    let model = ConvLstmConfig::new(channels, hc, k)
        .with_num_layers(layers)
        .with_peepholes(peepholes.then_some([s, s]))
        .init(&device)
        .load_state_dict(&sub(&d, "param"))
        .unwrap();
    let state = ConvLstmState {
        h: h0.clone(),
        c: c0.clone(),
    };
    let (out, st) = model.forward(x.clone(), Some(state)).unwrap();
    assert_close(name, out.clone(), &d, "output");
    assert_close(name, st.h.clone(), &d, "h_n");
    assert_close(name, st.c.clone(), &d, "c_n");
    let loss = (out * get::<5>(&d, "r_out", &device)).sum()
        + (st.h * get::<5>(&d, "r_h", &device)).sum()
        + (st.c * get::<5>(&d, "r_c", &device)).sum();
    let grads = loss.backward();
    assert_close(name, x.grad(&grads).unwrap(), &d, "grad.input");
    assert_close(name, h0.grad(&grads).unwrap(), &d, "grad.h0");
    assert_close(name, c0.grad(&grads).unwrap(), &d, "grad.c0");
    let mut checked = 0;
    for (l, cell) in model.cells.iter().enumerate() {
        let g = |key: &str| format!("grad.cells.{l}.{key}");
        assert_close(
            name,
            cell.conv_x.weight.grad(&grads).unwrap(),
            &d,
            &g("conv_x.weight"),
        );
        let bias = cell.conv_x.bias.as_ref().unwrap();
        assert_close(name, bias.grad(&grads).unwrap(), &d, &g("conv_x.bias"));
        assert_close(
            name,
            cell.conv_h.weight.grad(&grads).unwrap(),
            &d,
            &g("conv_h.weight"),
        );
        checked += 3;
        for (key, w) in [
            ("w_ci", &cell.w_ci),
            ("w_cf", &cell.w_cf),
            ("w_co", &cell.w_co),
        ] {
            if let Some(w) = w {
                assert_close(name, w.grad(&grads).unwrap(), &d, &g(key));
                checked += 1;
            }
        }
    }
    let in_fixture = d
        .tensors
        .keys()
        .filter(|k| k.starts_with("grad.cells."))
        .count();
    assert_eq!(checked, in_fixture, "every weight of {name} checked");
}

#[test]
fn conv_lstm_matches_numpy_reference() {
    check_conv_lstm("conv_lstm", false);
    check_conv_lstm("conv_lstm_peephole", true);
}

/// Truncated BPTT: the carried state makes the chunked forward equal the full one, the detach
/// stops gradients at chunk boundaries, and with one chunk it is full BPTT.
#[test]
fn truncated_bptt_carries_state_and_cuts_gradients() {
    use deepnet::recurrent::tbptt::truncated_bptt;
    let device = Device::flex().autodiff();
    let lstm = LstmConfig::new(3, 5).init(&device);
    let x = Tensor::<3>::random([12, 2, 3], burn::tensor::Distribution::Default, &device)
        .require_grad();
    let (full_out, full_state) = lstm.forward(x.clone(), None).unwrap();
    // Chunks of 5, 5, 2: outputs concatenate to the full pass's, the final state is the same.
    let mut outs = Vec::new();
    let mut grad_sums = Vec::new();
    let state = truncated_bptt(&x, 5, None, |chunk, state| {
        let (out, s) = lstm.forward(chunk, state)?;
        let grads = out.clone().sum().backward();
        // dL_chunk/dx is non-zero only inside the chunk: sum |grad| per time step.
        let g = x
            .grad(&grads)
            .expect("input gradient")
            .abs()
            .sum_dim(2)
            .sum_dim(1); // [T, 1, 1]
        grad_sums.push(
            g.flatten::<1>(0, 2)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
        outs.push(out);
        Ok(Some(s))
    })
    .unwrap()
    .unwrap();
    let chunked = Tensor::cat(outs, 0);
    let diff = (chunked - full_out.clone())
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(diff < 1e-6, "chunked forward differs by {diff}");
    let diff = (state.c - full_state.c).abs().max().into_scalar::<f32>();
    assert!(diff < 1e-6, "final state differs by {diff}");
    for (k, sums) in grad_sums.iter().enumerate() {
        let (lo, hi) = (k * 5, (k * 5 + 5).min(12));
        for (t, &s) in sums.iter().enumerate() {
            if (lo..hi).contains(&t) {
                assert!(s > 0.0, "chunk {k}: no gradient at its own step {t}");
            } else {
                assert_eq!(s, 0.0, "chunk {k}: gradient leaked to step {t}");
            }
        }
    }
    // Full BPTT: the last output depends on the first step's input.
    let grads = full_out.narrow(0, 11, 1).sum().backward();
    let first = x
        .grad(&grads)
        .unwrap()
        .narrow(0, 0, 1)
        .abs()
        .sum()
        .into_scalar::<f32>();
    assert!(first > 0.0, "full BPTT reaches step 0");
}

/// batch_first only changes the layout: the same weights give the transposed results.
#[test]
fn batch_first_is_the_transposed_layout() {
    let device = Device::flex();
    let tf = GruConfig::new(3, 4)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&device);
    let bf = GruConfig::new(3, 4)
        .with_num_layers(2)
        .with_bidirectional(true)
        .with_batch_first(true)
        .init(&device)
        .load_torch(&tf.torch_state_dict())
        .unwrap();
    let x = Tensor::<3>::random([5, 2, 3], burn::tensor::Distribution::Default, &device);
    let lengths = [5, 3];
    let (a, ha) = tf
        .forward_with(x.clone(), Some(&lengths), None, Implementation::Auto)
        .unwrap();
    let (b, hb) = bf
        .forward_with(
            x.swap_dims(0, 1),
            Some(&lengths),
            None,
            Implementation::Auto,
        )
        .unwrap();
    assert_eq!(b.dims(), [2, 5, 8]);
    let d = (a - b.swap_dims(0, 1)).abs().max().into_scalar::<f32>();
    assert!(d < 1e-6, "outputs differ by {d}");
    let d = (ha - hb).abs().max().into_scalar::<f32>();
    assert!(d < 1e-6, "states differ by {d}");
}

/// Dropout between layers acts in training (autodiff device) and not in inference, and never
/// after the last layer.
#[test]
fn dropout_between_layers_only_in_training() {
    let train = Device::flex().autodiff();
    let config = LstmConfig::new(3, 16).with_num_layers(2).with_dropout(0.5);
    let with = config.init(&train);
    let without = LstmConfig::new(3, 16)
        .with_num_layers(2)
        .init(&train)
        .load_torch(&with.torch_state_dict())
        .unwrap();
    let x = Tensor::<3>::random([6, 4, 3], burn::tensor::Distribution::Default, &train);
    let (a, _) = with.forward(x.clone(), None).unwrap();
    let (b, _) = without.forward(x.clone(), None).unwrap();
    let d = (a - b).abs().max().into_scalar::<f32>();
    assert!(d > 1e-3, "dropout had no effect in training ({d})");
    // One layer: nothing between layers, so nothing dropped.
    let one = LstmConfig::new(3, 16).with_dropout(0.5).init(&train);
    let (a, _) = one.forward(x.clone(), None).unwrap();
    let (b, _) = one.forward(x.clone(), None).unwrap();
    assert_eq!(
        a.into_data().try_to_vec::<f32>().unwrap(),
        b.into_data().try_to_vec::<f32>().unwrap()
    );
    // Inference (no autodiff): deterministic and equal to no dropout.
    let infer = Device::flex();
    let dict = with.torch_state_dict();
    let with = config.init(&infer).load_torch(&dict).unwrap();
    let without = LstmConfig::new(3, 16)
        .with_num_layers(2)
        .init(&infer)
        .load_torch(&dict)
        .unwrap();
    let x = Tensor::<3>::from_data(x.into_data(), &infer);
    let (a, _) = with.forward(x.clone(), None).unwrap();
    let (b, _) = without.forward(x, None).unwrap();
    let d = (a - b).abs().max().into_scalar::<f32>();
    assert!(d < 1e-6, "dropout acted in inference ({d})");
}

#[test]
fn conv_lstm_bad_inputs_are_clear_errors() {
    use deepnet::recurrent::{ConvLstmConfig, ConvLstmState};
    let device = Device::flex();
    let model = ConvLstmConfig::new(2, 3, 3)
        .with_peepholes(Some([5, 5]))
        .init(&device);
    let msg = error_of(model.forward(Tensor::zeros([1, 2, 4, 5, 5], &device), None));
    assert!(
        msg.contains("4 channels") && msg.contains("expects 2"),
        "{msg}"
    );
    let msg = error_of(model.forward(Tensor::zeros([1, 2, 2, 6, 6], &device), None));
    assert!(msg.contains("6x6") && msg.contains("5x5"), "{msg}");
    let bad = ConvLstmState {
        h: Tensor::zeros([1, 1, 3, 4, 5], &device),
        c: Tensor::zeros([1, 1, 3, 5, 5], &device),
    };
    let msg = error_of(model.forward(Tensor::zeros([1, 2, 2, 5, 5], &device), Some(bad)));
    assert!(
        msg.contains("h0") && msg.contains("[1, 1, 3, 5, 5]"),
        "{msg}"
    );
    let even = ConvLstmConfig::new(2, 3, 4).init(&device);
    let msg = error_of(even.forward(Tensor::zeros([1, 2, 2, 5, 5], &device), None));
    assert!(msg.contains("even"), "{msg}");
}

/// A state dict written by torch.save loads as is, without running pickle code, and gives
/// torch's outputs; a truncated file is a clear error.
#[test]
fn torch_save_file_loads_and_truncated_one_is_refused() {
    let device = Device::flex();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recurrent");
    let dict = StateDict::read(dir.join("lstm.pth")).unwrap();
    let d = fixture("lstm");
    for (k, v) in &dict.tensors {
        assert_eq!(v, &d.tensors[&format!("param.{k}")], "{k}");
    }
    let lstm = LstmConfig::new(3, 4)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&device)
        .load_torch(&dict)
        .unwrap();
    let state = LstmState {
        h: get(&d, "h0", &device),
        c: get(&d, "c0", &device),
    };
    let (out, _) = lstm
        .forward(get(&d, "input", &device), Some(state))
        .unwrap();
    assert_close("lstm.pth", out, &d, "output");

    let bytes = std::fs::read(dir.join("lstm.pth")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cut = tmp.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let msg = error_of(StateDict::read(&cut));
    assert!(msg.contains("cut.pth") && msg.contains("PyTorch"), "{msg}");
}
