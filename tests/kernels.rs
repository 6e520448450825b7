//! Every kernel path this CPU can run, against burn's own ops: the instruction sets (portable
//! loops, AVX2, AVX-512; set with `deepnet::ops::set_isa_limit`), the convolution's lowerings
//! (`set_conv_path`), and the ways the work is split over threads (batch split, the
//! output-channel split for fewer images than threads, the recurrent kernel's row chunks),
//! chosen by running in rayon pools of 1, 2 and 3 threads. A path the CPU lacks is skipped
//! with a note on stderr, so the test passes everywhere and says what it did not check.
//!
//! The switches are process-wide, so the tests of this file take one lock.

use std::sync::Mutex;

use burn::module::{Param, RunningState};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use deepnet::ops::{
    add_relu, batch_norm_layer, batch_norm_relu_layer, conv2d_im2col, detected_isa,
    max_pool2d_window, max_pool2x2, scaled_tanh, set_conv_path, set_isa_limit, set_reference_ops,
    sum_pool2x2_affine, ConvPath, Isa, PoolRounding, PoolWindow,
};
use deepnet::recurrent::{GruConfig, GruReset, Implementation, LstmConfig, RnnConfig};

static SWITCHES: Mutex<()> = Mutex::new(());

/// The instruction sets this CPU runs; the others are named on stderr.
fn isas(test: &str) -> Vec<Isa> {
    let all = [Isa::Portable, Isa::Avx2, Isa::Avx512];
    for isa in all.iter().filter(|&&i| i > detected_isa()) {
        eprintln!("{test}: {isa:?} skipped, this CPU lacks it");
    }
    all.into_iter().filter(|&i| i <= detected_isa()).collect()
}

/// Runs `f` under every instruction set and in pools of 1, 2 and 3 threads, then restores
/// the defaults.
fn on_every_path(test: &str, f: impl Fn(&str) + Sync) {
    let _guard = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    for isa in isas(test) {
        set_isa_limit(isa);
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a rayon pool");
            pool.install(|| f(&format!("{isa:?}, {threads} threads")));
        }
    }
    set_isa_limit(Isa::Avx512);
    set_conv_path(ConvPath::Auto);
    set_reference_ops(false);
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 values")
}

/// Asserts `a` and `b` agree to `tol` relative to the larger of 1 and `b`'s largest value.
fn assert_close<const D: usize>(what: &str, a: Tensor<D>, b: Tensor<D>, tol: f32) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let (a, b) = (values(a), values(b));
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= tol * scale,
        "{what}: differs by {worst} (scale {scale})"
    );
}

/// `(x [N, C, H, W], weight [O, C, K, K], padding, stride)`: LeNet-5's three convolutions (the
/// dense 1x1-output one included), ResNet-like 3x3s with and without enough images for
/// every thread, odd sizes, a padding above `K - 1` (col2im only), 64-channel 3x3s for
/// Winograd's F(2x2, 3x3) (with more images than threads, and one image: its 16 products split
/// over the threads; on channel vectors, 11 -> 9 channels for a part vector, and on rows of
/// tiles for a 18x17 map), 3-wide kernels for the shifted planes (no padding, padding 2, a 5x3
/// kernel), and strided ones (ResNet's 7x7/2 stem, 3x3/2 and 1x1/2).
const CONVS: &[([usize; 4], [usize; 4], usize, usize)] = &[
    ([4, 1, 28, 28], [6, 1, 5, 5], 2, 1),
    ([4, 6, 14, 14], [16, 6, 5, 5], 0, 1),
    ([3, 16, 5, 5], [120, 16, 5, 5], 0, 1),
    ([5, 16, 9, 9], [24, 16, 3, 3], 1, 1),
    ([1, 32, 7, 7], [40, 32, 3, 3], 1, 1),
    ([2, 3, 7, 9], [13, 3, 3, 2], 1, 1),
    ([2, 2, 4, 4], [3, 2, 2, 2], 2, 1),
    ([4, 64, 10, 9], [64, 64, 3, 3], 1, 1),
    ([1, 64, 16, 15], [64, 64, 3, 3], 1, 1),
    ([3, 11, 6, 7], [9, 11, 3, 3], 1, 1),
    ([2, 8, 18, 17], [8, 8, 3, 3], 1, 1),
    ([2, 5, 6, 11], [7, 5, 3, 3], 0, 1),
    ([2, 4, 5, 5], [9, 4, 3, 3], 2, 1),
    ([3, 4, 8, 8], [6, 4, 5, 3], 1, 1),
    ([2, 3, 30, 30], [16, 3, 7, 7], 3, 2),
    ([3, 8, 24, 23], [16, 8, 3, 3], 1, 2),
    ([3, 8, 9, 9], [16, 8, 1, 1], 0, 2),
];

/// Every lowering the tests force (Winograd only where the convolution is 3x3/1, the shifted
/// planes where it is 3-wide with stride 1 on an AVX-512 CPU; the choice by shape elsewhere).
const LOWERINGS: [ConvPath; 5] = [
    ConvPath::Auto,
    ConvPath::Packed,
    ConvPath::Gemm,
    ConvPath::Winograd,
    ConvPath::Shifted,
];

#[test]
fn convolution_matches_burn_on_every_path() {
    let device = Device::flex().autodiff();
    on_every_path("conv", |path| {
        for &(xs, ws, p, st) in CONVS {
            let x = Tensor::<4>::random(xs, Distribution::Default, &device).require_grad();
            let w = Tensor::<4>::random(ws, Distribution::Default, &device).require_grad();
            let b = Tensor::<1>::random([ws[0]], Distribution::Default, &device).require_grad();
            let options = ConvOptions::new([st, st], [p, p], [1, 1], 1);
            let want = conv2d(x.clone(), w.clone(), Some(b.clone()), options);
            let r = Tensor::<4>::random(want.dims(), Distribution::Default, &device);
            let g_want = (want.clone() * r.clone()).sum().backward();
            for lowering in LOWERINGS {
                set_conv_path(lowering);
                let what = format!("{path}, {lowering:?}, x {xs:?}, w {ws:?}, p {p}, s {st}");
                let got = conv2d_im2col(x.clone(), w.clone(), b.clone(), [st, st], [p, p]);
                let g = (got.clone() * r.clone()).sum().backward();
                assert_close(&format!("{what}: y"), got, want.clone(), 1e-5);
                let grad = |t: &Tensor<4>, g| t.grad(g).expect("a gradient");
                assert_close(
                    &format!("{what}: dx"),
                    grad(&x, &g),
                    grad(&x, &g_want),
                    1e-5,
                );
                assert_close(
                    &format!("{what}: dw"),
                    grad(&w, &g),
                    grad(&w, &g_want),
                    1e-5,
                );
                let db = b.grad(&g).expect("a gradient").reshape([1, 1, 1, ws[0]]);
                let db_want = b
                    .grad(&g_want)
                    .expect("a gradient")
                    .reshape([1, 1, 1, ws[0]]);
                assert_close(&format!("{what}: db"), db, db_want, 1e-5);
            }
        }
    });
}

#[test]
fn inference_convolution_matches_burn_on_every_path() {
    // Without autodiff: the forward alone, including the output-channel split (one image,
    // more channels than threads).
    let device = Device::flex();
    on_every_path("conv inference", |path| {
        for &(xs, ws, p, st) in CONVS {
            let x = Tensor::<4>::random(xs, Distribution::Default, &device);
            let w = Tensor::<4>::random(ws, Distribution::Default, &device);
            let b = Tensor::<1>::random([ws[0]], Distribution::Default, &device);
            let options = ConvOptions::new([st, st], [p, p], [1, 1], 1);
            let want = conv2d(x.clone(), w.clone(), Some(b.clone()), options);
            for lowering in LOWERINGS {
                set_conv_path(lowering);
                let got = conv2d_im2col(x.clone(), w.clone(), b.clone(), [st, st], [p, p]);
                let what = format!("{path}, {lowering:?}, x {xs:?}, w {ws:?}, s {st}");
                assert_close(&what, got, want.clone(), 1e-5);
            }
        }
    });
}

#[test]
fn pooling_and_batch_norm_match_burn_on_every_split() {
    let device = Device::flex().autodiff();
    let bn = BatchNormConfig::new(5).init(&device);
    on_every_path("pool and batch norm", |path| {
        // 70 planes: more than one task of 64 planes, and an odd size.
        let x = Tensor::<4>::random([14, 5, 9, 8], Distribution::Default, &device).require_grad();
        let r = Tensor::<4>::random([14, 5, 4, 4], Distribution::Default, &device);
        set_reference_ops(false);
        let g = (max_pool2x2(x.clone()) * r.clone()).sum().backward();
        let dx = x.grad(&g).expect("a gradient");
        set_reference_ops(true);
        let g = (max_pool2x2(x.clone()) * r).sum().backward();
        let dx_want = x.grad(&g).expect("a gradient");
        assert_close(&format!("{path}: max-pool dx"), dx, dx_want, 1e-6);

        // ResNet's 3x3/2 window with padding, and GoogLeNet's ceil mode.
        for rounding in [PoolRounding::Floor, PoolRounding::Ceil] {
            let window = PoolWindow {
                kernel: [3, 3],
                stride: [2, 2],
                padding: [1, 1],
                rounding,
            };
            let mut out = Vec::new();
            for reference in [false, true] {
                set_reference_ops(reference);
                let y = max_pool2d_window(x.clone(), window);
                let r = Tensor::<4>::ones(y.dims(), &device);
                let g = (y.clone() * r).sum().backward();
                out.push((y, x.grad(&g).expect("a gradient")));
            }
            set_reference_ops(false);
            let (want, got) = (out.pop().expect("two"), out.pop().expect("two"));
            let what = format!("{path}: max-pool 3x3/2 {rounding:?}");
            assert_close(&format!("{what} y"), got.0, want.0, 0.0);
            assert_close(&format!("{what} dx"), got.1, want.1, 1e-6);
        }

        let r = Tensor::<4>::random([14, 5, 9, 8], Distribution::Default, &device);
        let mut out = Vec::new();
        for reference in [false, true] {
            set_reference_ops(reference);
            let y = batch_norm_layer(&bn.clone(), x.clone());
            let g = (y.clone() * r.clone()).sum().backward();
            out.push((y, x.grad(&g).expect("a gradient")));
        }
        set_reference_ops(false);
        let (want, got) = (out.pop().expect("two"), out.pop().expect("two"));
        assert_close(&format!("{path}: batch norm y"), got.0, want.0, 1e-4);
        assert_close(&format!("{path}: batch norm dx"), got.1, want.1, 1e-4);
    });
}

#[test]
fn inference_pooling_batch_norm_and_residual_match_burn_on_every_path() {
    // Without autodiff: the values-only max-pool, the one-pass batch norm (+ ReLU), the
    // residual join, LeNet-5's scaled tanh and trainable subsampling, each against burn's ops (reference ops on) on the same input.
    let device = Device::flex();
    let c = 5;
    let bn = BatchNorm {
        gamma: Param::from_tensor(Tensor::random(
            [c],
            Distribution::Uniform(0.5, 1.5),
            &device,
        )),
        beta: Param::from_tensor(Tensor::random([c], Distribution::Default, &device)),
        running_mean: RunningState::new(Tensor::random([c], Distribution::Default, &device)),
        running_var: RunningState::new(Tensor::random(
            [c],
            Distribution::Uniform(0.5, 2.0),
            &device,
        )),
        ..BatchNormConfig::new(c).init(&device)
    };
    on_every_path("inference pool, batch norm, residual", |path| {
        // 70 planes of odd sizes: more than one task of 64 planes.
        let x = Tensor::<4>::random([14, c, 23, 17], Distribution::Normal(0.0, 2.0), &device);
        let shortcut = Tensor::<4>::random([14, c, 23, 17], Distribution::Default, &device);
        let run = |reference: bool| {
            set_reference_ops(reference);
            let mut ys = Vec::new();
            for rounding in [PoolRounding::Floor, PoolRounding::Ceil] {
                let window = PoolWindow {
                    kernel: [3, 3],
                    stride: [2, 2],
                    padding: [1, 1],
                    rounding,
                };
                ys.push(max_pool2d_window(x.clone(), window));
            }
            ys.push(batch_norm_layer(&bn, x.clone()));
            ys.push(batch_norm_relu_layer(&bn, x.clone()));
            ys.push(add_relu(x.clone(), shortcut.clone()));
            ys.push(scaled_tanh(x.clone()));
            ys.push(sum_pool2x2_affine(x.clone(), bn.gamma.val(), bn.beta.val()));
            set_reference_ops(false);
            ys
        };
        let (got, want) = (run(false), run(true));
        let names = [
            "max-pool floor",
            "max-pool ceil",
            "batch norm",
            "batch norm + relu",
            "add + relu",
        ];
        for ((name, got), want) in names.iter().zip(got).zip(want) {
            assert_close(&format!("{path}: {name}"), got, want, 1e-5);
        }
    });
}

/// Output and `∂L/∂x` of a recurrent layer on its fused kernel against its step-by-step
/// version (`forward` maps an input and an implementation to the output).
fn check_recurrent(
    what: &str,
    device: &Device,
    forward: impl Fn(Tensor<3>, Implementation) -> Tensor<3>,
) {
    let x = Tensor::<3>::random([7, 11, 6], Distribution::Default, device).require_grad();
    let want = forward(x.clone(), Implementation::Reference);
    let r = Tensor::<3>::random(want.dims(), Distribution::Default, device);
    let g_want = (want.clone() * r.clone()).sum().backward();
    let got = forward(x.clone(), Implementation::Auto);
    let g = (got.clone() * r).sum().backward();
    assert_close(&format!("{what}: output"), got, want, 1e-5);
    let dx = |g| x.grad(g).expect("a gradient");
    assert_close(&format!("{what}: dx"), dx(&g), dx(&g_want), 1e-5);
}

#[test]
fn recurrent_kernel_matches_the_step_by_step_layers_on_every_path() {
    let device = Device::flex().autodiff();
    // Hidden sizes around the 16- and 32-wide tiles; 11 rows split unevenly over threads.
    let lengths = [7, 3, 5, 7, 1, 6, 7, 2, 4, 7, 5];
    let lstm = LstmConfig::new(6, 19)
        .with_bidirectional(true)
        .init(&device);
    let gru = GruConfig::new(6, 33).init(&device);
    let gru_before = GruConfig::new(6, 17)
        .with_reset(GruReset::Before)
        .init(&device);
    let rnn = RnnConfig::new(6, 9).init(&device);
    on_every_path("recurrent", |path| {
        check_recurrent(&format!("{path}: lstm"), &device, |x, i| {
            lstm.forward_with(x, Some(&lengths), None, i)
                .expect("lstm")
                .0
        });
        check_recurrent(&format!("{path}: gru"), &device, |x, i| {
            gru.forward_with(x, None, None, i).expect("gru").0
        });
        check_recurrent(&format!("{path}: gru reset-before"), &device, |x, i| {
            gru_before
                .forward_with(x, Some(&lengths), None, i)
                .expect("gru")
                .0
        });
        check_recurrent(&format!("{path}: rnn"), &device, |x, i| {
            rnn.forward_with(x, None, None, i).expect("rnn").0
        });
    });
}
