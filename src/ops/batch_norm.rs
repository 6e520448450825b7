//! Batch normalization fused for the Flex CPU backend: in training mode (batch statistics),
//! forward and backward, and in inference mode (running statistics), with the ReLU that follows
//! it in ResNet and GoogLeNet in the same pass.
//!
//! Why: burn computes it from tensor operations: each statistic swaps the batch and channel
//! axes (a full copy of the activations) before reducing, and the backward is a dozen
//! element-wise passes, each allocating a tensor the size of the input. In a ResNet-20 training
//! step that showed as layout copies (`copy_2d_tiled`) and memset/memmove in the profile. Here
//! the forward reads the input twice (mean, then variance about it) and writes the output once;
//! the backward reads twice and writes once.
//!
//! With `M = N·H·W` values per channel, `x̂ = (x - μ) / √(σ² + ε)` and `y = γ·x̂ + β`
//! (Ioffe & Szegedy 2015):
//!
//! - `μ = Σ x / M`, `σ² = Σ (x - μ)² / M` (biased, as burn and PyTorch normalize with),
//! - `∂L/∂β = Σ ∂L/∂y`, `∂L/∂γ = Σ ∂L/∂y · x̂`,
//! - `∂L/∂x = γ / √(σ² + ε) · (∂L/∂y - ∂L/∂β / M - x̂ · ∂L/∂γ / M)`.
//!
//! In inference the statistics are the running ones, so `y = a·x + b` per channel with
//! `a = γ / √(σ² + ε)` and `b = β - μ·a`: one pass, in place when the input is not shared.
//! burn's layer makes four broadcast passes (subtract, divide, multiply, add) and the ReLU a
//! fifth; with the residual sums, such passes were about a fifth of ResNet-18 inference.

use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    backend_extension, Autodiff, AutodiffBackend, Backend, Dispatch, TensorMetadata,
};
use burn::nn::BatchNorm;
use burn::tensor::{DType, Tensor, TensorData};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::is_flex;

/// Training-mode batch norm as a backend extension. The default bodies are burn's own
/// `batch_norm_train` and its backward; Flex overrides them with the fused kernels below,
/// `Autodiff` records one backward step for the whole operation.
#[backend_extension(Flex, Autodiff)]
pub trait BatchNormOps: Backend {
    /// `x [N, C, ...]`, `gamma`, `beta [C]` -> `(y [N, C, ...], mean [C], biased variance [C])`,
    /// `then` applied to `y` in the same pass.
    fn batch_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        then: AfterNorm,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (y, mean, var) = burn_forward::<Self>(x, gamma, beta, epsilon);
        (after_norm::<Self>(y, then), mean, var)
    }

    /// `(∂L/∂x, ∂L/∂gamma, ∂L/∂beta)` for the output gradient `grad`, given the statistics the
    /// forward returned (run with [`AfterNorm::Identity`]).
    fn batch_norm_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_backward::<Self>(x, gamma, mean, variance, epsilon, grad)
    }

    /// [`batch_norm_fused_backward`](BatchNormOps::batch_norm_fused_backward) for a forward
    /// run with [`AfterNorm::Relu`], whose output was `output`: `grad` counts only where
    /// `output` is above zero (or NaN), as burn's ReLU backward passes it.
    fn batch_norm_relu_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        grad: FloatTensor<Self>,
        output: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let grad = Self::relu_backward(output, grad);
        burn_backward::<Self>(x, gamma, mean, variance, epsilon, grad)
    }

    /// Inference-mode batch norm with the running statistics, and `then` applied after it:
    /// `x [N, C, ...]`, `gamma`, `beta`, `mean`, `var [C]` -> `y [N, C, ...]`. Not
    /// differentiable on Flex (deepnet calls it outside autodiff only).
    fn batch_norm_inference(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        then: AfterNorm,
    ) -> FloatTensor<Self> {
        burn_inference::<Self>(x, [gamma, beta, mean, var], epsilon, then)
    }
}

/// What follows an inference-mode batch norm in the same pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterNorm {
    /// Nothing: `y = BN(x)`.
    Identity,
    /// `y = relu(BN(x))`, the conv-BN-ReLU of ResNet and GoogLeNet (a NaN stays NaN).
    Relu,
}

/// burn's own inference-mode batch norm (`(x - μ) / √(σ² + ε) · γ + β`, as burn's layer
/// computes it), then `then`: the reference, and the fallback for other dtypes and backends.
fn burn_inference<B: Backend>(
    x: FloatTensor<B>,
    [gamma, beta, mean, var]: [FloatTensor<B>; 4],
    epsilon: f64,
    then: AfterNorm,
) -> FloatTensor<B> {
    let rank = x.shape().num_dims();
    let c = gamma.shape()[0];
    // [C] -> [1, C, 1, ...] to broadcast over x.
    let per_channel = |t: FloatTensor<B>| {
        let mut dims = vec![1; rank];
        dims[1] = c;
        B::float_reshape(t, burn::tensor::Shape::from(dims))
    };
    let std = B::float_sqrt(B::float_add_scalar(var, (epsilon as f32).into()));
    let x = B::float_div(B::float_sub(x, per_channel(mean)), per_channel(std));
    let y = B::float_add(B::float_mul(x, per_channel(gamma)), per_channel(beta));
    match then {
        AfterNorm::Identity => y,
        AfterNorm::Relu => B::relu(y),
    }
}

/// `then` applied with burn's ops.
fn after_norm<B: Backend>(y: FloatTensor<B>, then: AfterNorm) -> FloatTensor<B> {
    match then {
        AfterNorm::Identity => y,
        AfterNorm::Relu => B::relu(y),
    }
}

/// The ReLU of [`AfterNorm::Relu`] on one value: a NaN stays NaN.
#[inline(always)]
fn relu(y: f32) -> f32 {
    if y.is_nan() || y > 0.0 {
        y
    } else {
        0.0
    }
}

/// `∂L/∂y` through the ReLU whose output is `y`: kept where `y` is above zero or NaN (burn's
/// `relu_backward` zeroes where `y ≤ 0`).
#[inline(always)]
fn relu_grad(dy: f32, y: f32) -> f32 {
    if y <= 0.0 {
        0.0
    } else {
        dy
    }
}

/// burn's own training-mode batch norm: the reference, and the fallback for what the Flex
/// kernels do not cover (other dtypes, rank below 2).
fn burn_forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let r = B::batch_norm_train(x, gamma, beta, epsilon);
    (r.output, r.mean, r.variance)
}

/// burn's backward of [`burn_forward`].
fn burn_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let r = B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, grad);
    (r.x_grad, r.gamma_grad, r.beta_grad)
}

/// Sum of a slice in f32 with 16 independent accumulators (vectorized), returned as f64 so
/// that the sums of many planes add up without losing digits.
pub(crate) fn sum16(v: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0f32; 16];
    let chunks = v.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    let t: f32 = tail.iter().map(|&x| f(x)).sum();
    acc.iter().map(|&a| a as f64).sum::<f64>() + t as f64
}

/// `Σ f(a_i, b_i)` as [`sum16`], over two slices of the same length.
fn sum16_2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += f(x, y);
        }
    }
    let t: f32 = ta.iter().zip(tb).map(|(&x, &y)| f(x, y)).sum();
    acc.iter().map(|&s| s as f64).sum::<f64>() + t as f64
}

/// `Σ f(a_i, b_i, c_i)` as [`sum16`], over three slices of the same length.
fn sum16_3(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f64 {
    let mut acc = [0f32; 16];
    let (ca, cb, cc) = (a.chunks_exact(16), b.chunks_exact(16), c.chunks_exact(16));
    let (ta, tb, tc) = (ca.remainder(), cb.remainder(), cc.remainder());
    for ((x, y), z) in ca.zip(cb).zip(cc) {
        for (((s, &x), &y), &z) in acc.iter_mut().zip(x).zip(y).zip(z) {
            *s += f(x, y, z);
        }
    }
    let t: f32 = ta
        .iter()
        .zip(tb)
        .zip(tc)
        .map(|((&x, &y), &z)| f(x, y, z))
        .sum();
    acc.iter().map(|&s| s as f64).sum::<f64>() + t as f64
}

/// Batch, channels and values per channel and image of a `[N, C, ...]` shape.
fn dims(shape: &burn::tensor::Shape) -> (usize, usize, usize) {
    let n = shape[0];
    let c = shape[1];
    let plane = shape.num_elements() / (n * c).max(1);
    (n, c, plane)
}

/// Per channel `c`: `f(planes of channel c)`, where the planes are `x[n, c, ..]` for every n.
fn per_channel<T: Send>(
    n: usize,
    c: usize,
    plane: usize,
    f: impl Fn(usize, &mut dyn Iterator<Item = std::ops::Range<usize>>) -> T + Sync,
) -> Vec<T> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut ranges = (0..n).map(move |i| {
                let at = (i * c + ch) * plane;
                at..at + plane
            });
            f(ch, &mut ranges)
        })
        .collect()
}

impl BatchNormOps for Flex {
    /// One pass, `y = a·x + b` per channel (`a = γ / √(σ² + ε)`, `b = β - μ·a`) and the ReLU
    /// in the same loop, in place when `x` is not shared: burn's layer makes four broadcast
    /// passes, and the ReLU a fifth.
    fn batch_norm_inference(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        then: AfterNorm,
    ) -> FloatTensor<Self> {
        let stats = [gamma, beta, mean, var];
        let dtypes = [
            x.dtype(),
            stats[0].dtype(),
            stats[1].dtype(),
            stats[2].dtype(),
            stats[3].dtype(),
        ];
        if dtypes != [DType::F32; 5] || x.shape().num_dims() < 2 {
            return burn_inference::<Self>(x, stats, epsilon, then);
        }
        let shape = x.shape();
        let (_, c, plane) = dims(&shape);
        let values = |t: &FlexTensor| {
            t.clone()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default()
        };
        let [gs, bs, ms, vs] = [0, 1, 2, 3].map(|i| values(&stats[i]));
        if [gs.len(), bs.len(), ms.len(), vs.len()] != [c; 4] {
            return burn_inference::<Self>(x, stats, epsilon, then);
        }
        let coef: Vec<(f32, f32)> = (0..c)
            .map(|ch| {
                let a = gs[ch] / (vs[ch] + epsilon as f32).sqrt();
                (a, bs[ch] - ms[ch] * a)
            })
            .collect();
        if plane == 0 {
            return x;
        }
        let normalize = |(a, b): (f32, f32), y: f32| {
            let y = a * y + b;
            match then {
                AfterNorm::Identity => y,
                AfterNorm::Relu => relu(y),
            }
        };
        // Whole planes per task, at least ~16k values: layer4's 7x7 planes are too small alone.
        let task = plane * (16_384 / plane).max(1);
        let mut x = x;
        if let Some((start, end)) = x.layout().contiguous_offsets().filter(|_| x.is_unique()) {
            let ys: &mut [f32] = &mut x.try_storage_mut().expect("unique")[start..end];
            ys.par_chunks_mut(task).enumerate().for_each(|(t, ys)| {
                for (q, ys) in ys.chunks_mut(plane).enumerate() {
                    let coef = coef[(t * task / plane + q) % c];
                    ys.iter_mut().for_each(|y| *y = normalize(coef, *y));
                }
            });
            return x;
        }
        let x = x.to_contiguous();
        let xs: &[f32] = x.as_slice().expect("contiguous f32");
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(task)
            .zip(xs.par_chunks(task))
            .enumerate()
            .for_each(|(t, (ys, xs))| {
                for (q, (ys, xs)) in ys.chunks_mut(plane).zip(xs.chunks(plane)).enumerate() {
                    let coef = coef[(t * task / plane + q) % c];
                    for (y, &x) in ys.iter_mut().zip(xs) {
                        *y = normalize(coef, x);
                    }
                }
            });
        FlexTensor::from_data(TensorData::new(out, shape))
    }

    fn batch_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        then: AfterNorm,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if [x.dtype(), gamma.dtype(), beta.dtype()] != [DType::F32; 3] || x.shape().num_dims() < 2 {
            let (y, mean, var) = burn_forward::<Self>(x, gamma, beta, epsilon);
            return (after_norm::<Self>(y, then), mean, var);
        }
        let shape = x.shape();
        let (n, c, plane) = dims(&shape);
        let (x, gamma, beta) = (
            x.to_contiguous(),
            gamma.to_contiguous(),
            beta.to_contiguous(),
        );
        let (xs, gs, bs): (&[f32], &[f32], &[f32]) = (x.storage(), gamma.storage(), beta.storage());
        let count = (n * plane).max(1) as f64;
        // Two passes: the variance about the mean, not E[x²] - μ², which cancels badly.
        let stats: Vec<(f32, f32)> = per_channel(n, c, plane, |_, planes| {
            let planes: Vec<_> = planes.collect();
            let mean = planes
                .iter()
                .map(|r| sum16(&xs[r.clone()], |v| v))
                .sum::<f64>()
                / count;
            let m = mean as f32;
            let var = planes
                .iter()
                .map(|r| sum16(&xs[r.clone()], |v| (v - m) * (v - m)))
                .sum::<f64>()
                / count;
            (mean as f32, var as f32)
        });
        // y = x·a + b with a = γ / √(σ² + ε), b = β - μ·a.
        let coef: Vec<(f32, f32)> = stats
            .iter()
            .enumerate()
            .map(|(ch, &(mean, var))| {
                let a = gs[ch] / (var + epsilon as f32).sqrt();
                (a, bs[ch] - mean * a)
            })
            .collect();
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(plane.max(1))
            .zip(xs.par_chunks(plane.max(1)))
            .enumerate()
            .for_each(|(i, (y, x))| {
                let (a, b) = coef[i % c];
                match then {
                    AfterNorm::Identity => {
                        for (y, &x) in y.iter_mut().zip(x) {
                            *y = x * a + b;
                        }
                    }
                    AfterNorm::Relu => {
                        for (y, &x) in y.iter_mut().zip(x) {
                            *y = relu(x * a + b);
                        }
                    }
                }
            });
        let (mean, var): (Vec<f32>, Vec<f32>) = stats.into_iter().unzip();
        (
            FlexTensor::from_data(TensorData::new(out, shape)),
            FlexTensor::from_data(TensorData::new(mean, [c])),
            FlexTensor::from_data(TensorData::new(var, [c])),
        )
    }

    fn batch_norm_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        flex_backward(x, gamma, mean, variance, epsilon, grad, None)
    }

    fn batch_norm_relu_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        grad: FloatTensor<Self>,
        output: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        flex_backward(x, gamma, mean, variance, epsilon, grad, Some(output))
    }
}

/// The Flex backward of batch norm, with the ReLU's mask where `relu_output` (the forward's
/// output) is given: two passes, ∂L/∂x over ∂L/∂y where nothing else holds it.
fn flex_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    grad: FlexTensor,
    relu_output: Option<FlexTensor>,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let dtypes = [
        x.dtype(),
        gamma.dtype(),
        mean.dtype(),
        variance.dtype(),
        grad.dtype(),
    ];
    let relu_ok = relu_output
        .as_ref()
        .is_none_or(|y| y.dtype() == DType::F32 && y.shape() == x.shape());
    if dtypes != [DType::F32; 5] || x.shape().num_dims() < 2 || !relu_ok {
        let grad = match relu_output {
            Some(y) => Flex::relu_backward(y, grad),
            None => grad,
        };
        return burn_backward::<Flex>(x, gamma, mean, variance, epsilon, grad);
    }
    let shape = x.shape();
    let (n, c, plane) = dims(&shape);
    let (x, gamma, mean, variance) = (
        x.to_contiguous(),
        gamma.to_contiguous(),
        mean.to_contiguous(),
        variance.to_contiguous(),
    );
    // `to_contiguous` shares the buffer of a contiguous tensor: the handle it came from is
    // dropped here, so that ∂L/∂y is unique where nothing else holds it (see below).
    let grad = {
        let contiguous = grad.to_contiguous();
        drop(grad);
        contiguous
    };
    let relu_output = relu_output.map(|y| y.to_contiguous());
    let xs: &[f32] = x.storage();
    let gs: &[f32] = gamma.storage();
    let ms: &[f32] = mean.storage();
    let vs: &[f32] = variance.storage();
    let dys: &[f32] = grad.storage();
    let ys: Option<&[f32]> = relu_output.as_ref().map(|y| y.storage());
    let count = (n * plane).max(1) as f32;
    // Per channel: ∂L/∂β = Σ dy and Σ dy·(x - μ) (= ∂L/∂γ · √(σ² + ε)), with dy through
    // the ReLU where one followed (the same sums, in the same order, as on the masked
    // gradient that burn's ReLU backward would have written).
    let sums: Vec<(f32, f32)> = per_channel(n, c, plane, |ch, planes| {
        let m = ms[ch];
        planes.fold((0f64, 0f64), |(s, sx), r| {
            let (dy, x) = (&dys[r.clone()], &xs[r.clone()]);
            match ys {
                None => (
                    s + sum16(dy, |v| v),
                    sx + sum16_2(dy, x, |d, v| d * (v - m)),
                ),
                Some(ys) => {
                    let y = &ys[r];
                    (
                        s + sum16_2(dy, y, relu_grad),
                        sx + sum16_3(dy, y, x, |d, y, v| relu_grad(d, y) * (v - m)),
                    )
                }
            }
        })
    })
    .into_iter()
    .map(|(s, sx)| (s as f32, sx as f32))
    .collect();
    // ∂L/∂x = A·dy + B·x + C per channel, with inv = 1/√(σ² + ε):
    // A = γ·inv, B = -γ·inv³·Σdy(x-μ)/M, C = -A·Σdy/M - B·μ.
    let mut dgamma = vec![0f32; c];
    let mut dbeta = vec![0f32; c];
    let coef: Vec<(f32, f32, f32)> = (0..c)
        .map(|ch| {
            let inv = 1.0 / (vs[ch] + epsilon as f32).sqrt();
            let (s, sx) = sums[ch];
            dbeta[ch] = s;
            dgamma[ch] = sx * inv;
            let a = gs[ch] * inv;
            let b = -gs[ch] * inv * inv * inv * sx / count;
            (a, b, -a * s / count - b * ms[ch])
        })
        .collect();
    // ∂L/∂x overwrites ∂L/∂y where nothing else holds it (no allocation, no zeroing: the
    // memset of a new buffer was 1% of a ResNet-20 training step), else a copy of it (in
    // ResNet-20, 10 of its 19 batch norms take the first way; the others share ∂L/∂y with
    // a residual branch).
    let mut dx = match grad.layout().contiguous_offsets() {
        Some(_) if grad.is_unique() => grad,
        _ => FlexTensor::from_data(TensorData::new(grad.storage::<f32>().to_vec(), shape)),
    };
    let (start, end) = dx
        .layout()
        .contiguous_offsets()
        .expect("a unique contiguous tensor, or a new one");
    let ds: &mut [f32] = &mut dx.try_storage_mut().expect("unique")[start..end];
    let plane = plane.max(1);
    ds.par_chunks_mut(plane)
        .zip(xs.par_chunks(plane))
        .enumerate()
        .for_each(|(i, (ds, x))| {
            let (a, b, k) = coef[i % c];
            match ys {
                None => {
                    for (d, &x) in ds.iter_mut().zip(x) {
                        *d = a * *d + b * x + k;
                    }
                }
                Some(ys) => {
                    let y = &ys[i * plane..][..ds.len()];
                    for ((d, &x), &y) in ds.iter_mut().zip(x).zip(y) {
                        *d = a * relu_grad(*d, y) + b * x + k;
                    }
                }
            }
        });
    (
        dx,
        FlexTensor::from_data(TensorData::new(dgamma, [c])),
        FlexTensor::from_data(TensorData::new(dbeta, [c])),
    )
}

impl<B: Backend + BatchNormOps, C: CheckpointStrategy> BatchNormOps for Autodiff<B, C> {
    fn batch_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        then: AfterNorm,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct BatchNormBackward;

        impl<B: Backend + BatchNormOps> Backward<B, 3> for BatchNormBackward {
            // x, gamma, batch mean and variance, epsilon, and the output where a ReLU ran.
            type State = (
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                f64,
                Option<FloatTensor<B>>,
            );

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, gamma, mean, var, epsilon, relu_output) = ops.state;
                let (dx, dgamma, dbeta) = match relu_output {
                    None => B::batch_norm_fused_backward(x, gamma, mean, var, epsilon, grad),
                    Some(y) => {
                        B::batch_norm_relu_fused_backward(x, gamma, mean, var, epsilon, grad, y)
                    }
                };
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = node_gamma {
                    grads.register::<B>(node.id, dgamma);
                }
                if let Some(node) = node_beta {
                    grads.register::<B>(node.id, dbeta);
                }
            }
        }

        let guards = [x.node(), gamma.node(), beta.node()];
        let (x, gamma, beta) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
        );
        match BatchNormBackward
            .prepare::<C>(guards)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, mean, var) =
                    B::batch_norm_fused(x.clone(), gamma.clone(), beta, epsilon, then);
                // The output is held anyway by whatever consumes it (the next convolution).
                let relu_output = (then == AfterNorm::Relu).then(|| y.clone());
                let state = (x, gamma, mean.clone(), var.clone(), epsilon, relu_output);
                (
                    prep.finish(state, y),
                    Self::from_inner(mean),
                    Self::from_inner(var),
                )
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, var) = B::batch_norm_fused(x, gamma, beta, epsilon, then);
                (
                    prep.finish(y),
                    Self::from_inner(mean),
                    Self::from_inner(var),
                )
            }
        }
    }
}

/// Runs burn's [`BatchNorm`] layer on `x [N, C, H, W]`: in training mode on Flex (an autodiff
/// device, the layer's training flag on) through the fused op of this module, updating the
/// running statistics as burn's layer does (`running = (1 - momentum)·running +
/// momentum·batch`, biased variance); in inference on Flex (no autodiff) through the one-pass
/// inference op; otherwise (evaluation on an autodiff device, other devices,
/// [`super::reference_ops`]) through the layer's own forward. The layer keeps its parameters
/// and names, so checkpoints and state dicts do not change.
pub fn batch_norm_layer(layer: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let training = device.is_autodiff() && layer.training.is_enabled();
    if !is_flex(&device) || super::reference_ops() {
        return layer.forward(x);
    }
    if !device.is_autodiff() {
        return batch_norm_inference(layer, x, AfterNorm::Identity);
    }
    if !training {
        return layer.forward(x);
    }
    batch_norm_train(layer, x, AfterNorm::Identity)
}

/// The training-mode fused op on `layer`, `then` in the same pass, and the running statistics
/// updated as burn's layer updates them.
fn batch_norm_train(layer: &BatchNorm, x: Tensor<4>, then: AfterNorm) -> Tensor<4> {
    let device = x.device();
    let (y, mean, var) = <Dispatch as BatchNormOps>::batch_norm_fused(
        x.into_dispatch(),
        layer.gamma.val().into_dispatch(),
        layer.beta.val().into_dispatch(),
        layer.epsilon,
        then,
    );
    let (y, mean, var) = (
        Tensor::<4>::from_dispatch(y),
        Tensor::<1>::from_dispatch(mean).detach(),
        Tensor::<1>::from_dispatch(var).detach(),
    );
    let m = layer.momentum;
    let running_mean = layer.running_mean.value_sync().to_device(&device);
    let running_var = layer.running_var.value_sync().to_device(&device);
    layer.running_mean.update(
        running_mean
            .mul_scalar(1.0 - m)
            .add(mean.mul_scalar(m))
            .detach(),
    );
    layer.running_var.update(
        running_var
            .mul_scalar(1.0 - m)
            .add(var.mul_scalar(m))
            .detach(),
    );
    y
}

/// `relu(batch_norm(x))` with burn's [`BatchNorm`] layer `layer`: on Flex one fused pass over
/// `x`, with the running statistics outside autodiff (inference), with the batch's in training
/// (the backward then masks `∂L/∂y` inside batch norm's own two passes: a separate ReLU was a
/// pass over the activations each way, and a new buffer forward); otherwise
/// [`batch_norm_layer`] then burn's `relu`.
pub fn batch_norm_relu_layer(layer: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if is_flex(&device) && !super::reference_ops() {
        if !device.is_autodiff() {
            return batch_norm_inference(layer, x, AfterNorm::Relu);
        }
        if layer.training.is_enabled() {
            return batch_norm_train(layer, x, AfterNorm::Relu);
        }
    }
    burn::tensor::activation::relu(batch_norm_layer(layer, x))
}

/// The inference op on `layer`'s running statistics.
fn batch_norm_inference(layer: &BatchNorm, x: Tensor<4>, then: AfterNorm) -> Tensor<4> {
    let device = x.device();
    Tensor::from_dispatch(<Dispatch as BatchNormOps>::batch_norm_inference(
        x.into_dispatch(),
        layer.gamma.val().into_dispatch(),
        layer.beta.val().into_dispatch(),
        layer
            .running_mean
            .value()
            .to_device(&device)
            .into_dispatch(),
        layer.running_var.value().to_device(&device).into_dispatch(),
        layer.epsilon,
        then,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Device, Distribution};

    fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// Asserts each named pair of Flex tensors holds the same number of values, none apart by
    /// 1e-4 or more.
    fn assert_all_close<const N: usize>(pairs: [(&str, FlexTensor, FlexTensor); N]) {
        for (name, a, b) in pairs {
            let (a, b) = (a.to_contiguous(), b.to_contiguous());
            let (a, b): (&[f32], &[f32]) = (a.storage(), b.storage());
            assert_eq!(a.len(), b.len(), "{name}");
            let d = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(d < 1e-4, "{name} differs by {d}");
        }
    }

    /// The fused op against burn's layer: outputs, running statistics and the gradients of
    /// input, gamma and beta, on random data (mean 3, so centring matters) with a non-trivial
    /// gamma, beta and loss.
    #[test]
    fn matches_burns_batch_norm_forward_and_backward() {
        let device = Device::flex().autodiff();
        for shape in [[4, 3, 5, 7], [2, 16, 28, 28], [3, 5, 1, 1]] {
            let c = shape[1];
            let gamma = Tensor::<1>::random([c], Distribution::Uniform(0.5, 1.5), &device);
            let beta = Tensor::<1>::random([c], Distribution::Uniform(-1.0, 1.0), &device);
            let x0 = Tensor::<4>::random(shape, Distribution::Normal(3.0, 2.0), &device);
            let w = Tensor::<4>::random(shape, Distribution::Default, &device);
            let run = |fused: bool| {
                // A fresh layer each time: running statistics are shared between clones.
                let layer = BatchNorm {
                    gamma: Param::from_tensor(gamma.clone()),
                    beta: Param::from_tensor(beta.clone()),
                    ..BatchNormConfig::new(c).init(&device)
                };
                let x = x0.clone().require_grad();
                let y = if fused {
                    batch_norm_layer(&layer, x.clone())
                } else {
                    layer.forward(x.clone())
                };
                let g = (y.clone() * w.clone()).sum().backward();
                (
                    y.inner(),
                    x.grad(&g).expect("x grad"),
                    layer.gamma.grad(&g).expect("gamma grad"),
                    layer.beta.grad(&g).expect("beta grad"),
                    layer.running_mean.value().inner(),
                    layer.running_var.value().inner(),
                )
            };
            let (a, b) = (run(true), run(false));
            let what = format!("{shape:?}");
            assert!(max_abs_diff(a.0, b.0) < 1e-4, "output {what}");
            assert!(max_abs_diff(a.1, b.1) < 1e-4, "x grad {what}");
            assert!(max_abs_diff(a.2, b.2) < 1e-3, "gamma grad {what}");
            assert!(max_abs_diff(a.3, b.3) < 1e-3, "beta grad {what}");
            assert!(max_abs_diff(a.4, b.4) < 1e-5, "running mean {what}");
            assert!(max_abs_diff(a.5, b.5) < 1e-5, "running var {what}");
        }
    }

    /// The Flex kernels called directly (so the test cannot pass through a fallback) against
    /// burn's composite op, forward and backward.
    #[test]
    fn flex_kernels_match_burns_composite() {
        let device = Device::flex();
        let shape = [3, 4, 6, 5];
        let p = |t: Tensor<4>| FlexTensor::from_data(t.into_data());
        let p1 = |t: Tensor<1>| FlexTensor::from_data(t.into_data());
        let x = Tensor::<4>::random(shape, Distribution::Normal(-2.0, 3.0), &device);
        let dy = Tensor::<4>::random(shape, Distribution::Default, &device);
        let gamma = Tensor::<1>::random([4], Distribution::Uniform(0.5, 1.5), &device);
        let beta = Tensor::<1>::random([4], Distribution::Default, &device);
        let ours = <Flex as BatchNormOps>::batch_norm_fused(
            p(x.clone()),
            p1(gamma.clone()),
            p1(beta.clone()),
            1e-5,
            AfterNorm::Identity,
        );
        let theirs = burn_forward::<Flex>(p(x.clone()), p1(gamma.clone()), p1(beta), 1e-5);
        let back_ours = <Flex as BatchNormOps>::batch_norm_fused_backward(
            p(x.clone()),
            p1(gamma.clone()),
            ours.1.clone(),
            ours.2.clone(),
            1e-5,
            p(dy.clone()),
        );
        // ∂L/∂y held elsewhere too: ∂L/∂x goes to a new buffer and the shared one is unchanged
        // (the call above, given the only handle, computed it in place).
        let dy_shared = p(dy.clone());
        let back_shared = <Flex as BatchNormOps>::batch_norm_fused_backward(
            p(x.clone()),
            p1(gamma.clone()),
            ours.1.clone(),
            ours.2.clone(),
            1e-5,
            dy_shared.clone(),
        );
        let back_theirs = burn_backward::<Flex>(
            p(x),
            p1(gamma),
            theirs.1.clone(),
            theirs.2.clone(),
            1e-5,
            p(dy.clone()),
        );
        let pairs = [
            ("dy kept", dy_shared, p(dy)),
            ("dx, shared dy", back_shared.0, back_theirs.0.clone()),
            ("y", ours.0, theirs.0),
            ("mean", ours.1, theirs.1),
            ("var", ours.2, theirs.2),
            ("dx", back_ours.0, back_theirs.0),
            ("dgamma", back_ours.1, back_theirs.1),
            ("dbeta", back_ours.2, back_theirs.2),
        ];
        assert_all_close(pairs);
    }

    /// With the ReLU fused (forward and backward, the Flex kernels called directly) against
    /// burn's composite op and burn's ReLU: outputs and gradients, on data centred near zero so
    /// that about half the outputs are clipped.
    #[test]
    fn flex_kernels_with_the_relu_match_burns_composite() {
        let device = Device::flex();
        let shape = [3, 4, 6, 5];
        let p = |t: Tensor<4>| FlexTensor::from_data(t.into_data());
        let p1 = |t: Tensor<1>| FlexTensor::from_data(t.into_data());
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.5, 1.0), &device);
        let dy = Tensor::<4>::random(shape, Distribution::Default, &device);
        let gamma = Tensor::<1>::random([4], Distribution::Uniform(0.5, 1.5), &device);
        let beta = Tensor::<1>::random([4], Distribution::Uniform(-0.5, 0.5), &device);
        let ours = <Flex as BatchNormOps>::batch_norm_fused(
            p(x.clone()),
            p1(gamma.clone()),
            p1(beta.clone()),
            1e-5,
            AfterNorm::Relu,
        );
        let theirs = burn_forward::<Flex>(p(x.clone()), p1(gamma.clone()), p1(beta), 1e-5);
        let y_theirs = Flex::relu(theirs.0);
        let back_ours = <Flex as BatchNormOps>::batch_norm_relu_fused_backward(
            p(x.clone()),
            p1(gamma.clone()),
            ours.1.clone(),
            ours.2.clone(),
            1e-5,
            p(dy.clone()),
            ours.0.clone(),
        );
        let back_theirs = burn_backward::<Flex>(
            p(x),
            p1(gamma),
            theirs.1,
            theirs.2,
            1e-5,
            Flex::relu_backward(y_theirs.clone(), p(dy)),
        );
        let clipped = {
            let y = ours.0.clone().to_contiguous();
            let ys: &[f32] = y.storage();
            ys.iter().filter(|&&v| v == 0.0).count() as f32 / ys.len() as f32
        };
        assert!(
            (0.2..0.8).contains(&clipped),
            "{clipped} of the outputs clipped"
        );
        let pairs = [
            ("y", ours.0, y_theirs),
            ("dx", back_ours.0, back_theirs.0),
            ("dgamma", back_ours.1, back_theirs.1),
            ("dbeta", back_ours.2, back_theirs.2),
        ];
        assert_all_close(pairs);
    }

    /// The fused training ReLU gives bit for bit what the batch norm followed by burn's ReLU
    /// gave (the same sums in the same order), through autodiff, and the same running
    /// statistics.
    #[test]
    fn fused_training_relu_is_bit_identical_to_the_separate_one() {
        let device = Device::flex().autodiff();
        let shape = [4, 6, 7, 5];
        let x0 = Tensor::<4>::random(shape, Distribution::Normal(0.3, 1.0), &device);
        let w = Tensor::<4>::random(shape, Distribution::Default, &device);
        let run = |fused: bool| {
            let layer = BatchNormConfig::new(6).init(&device);
            let x = x0.clone().require_grad();
            let y = if fused {
                batch_norm_relu_layer(&layer, x.clone())
            } else {
                burn::tensor::activation::relu(batch_norm_layer(&layer, x.clone()))
            };
            let g = (y.clone() * w.clone()).sum().backward();
            let v = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
            let v1 = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
            (
                v(y.inner()),
                v(x.grad(&g).expect("x grad")),
                v1(layer.gamma.grad(&g).expect("gamma grad")),
                v1(layer.beta.grad(&g).expect("beta grad")),
                v1(layer.running_mean.value().inner()),
            )
        };
        let (a, b) = (run(true), run(false));
        assert!(a.0.contains(&0.0) && a.0.iter().any(|&v| v > 0.0));
        assert_eq!(a, b);
    }

    #[test]
    fn inference_mode_uses_the_running_statistics() {
        let device = Device::flex();
        let layer = BatchNormConfig::new(2).init(&device);
        let x = Tensor::<4>::random([2, 2, 3, 3], Distribution::Normal(5.0, 1.0), &device);
        // Fresh running statistics are mean 0, variance 1: the output is x / sqrt(1 + eps).
        let y = batch_norm_layer(&layer, x.clone());
        assert!(max_abs_diff(y, x.div_scalar((1.0 + layer.epsilon).sqrt())) < 1e-5);
    }
}
