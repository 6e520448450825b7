//! LeNet-5's (1998) squashing function `f(a) = A tanh(S a)`, `A = 1.7159`, `S = 2/3` (LeCun et
//! al. 1998, Appendix A), forward and backward in one pass each on Flex.
//!
//! Why: burn computes it as three element-wise passes (scale, tanh, scale) and its tanh calls
//! the C library's `tanhf` value by value; in a `lenet5-1998` training run `tanhf` and the
//! `expm1f` it calls were 42% of the profile. Here the tanh is the rational function of
//! `super::fast_math` (the recurrent kernel's; within 5e-7 of the exact value, tested),
//! compiled for the CPU's widest vectors: an epoch of `lenet5-1998` on 21,000 images went from
//! 2,754 to 6,848 images/s (`bench/results/loop_speed-20261129-012349.json`), with the same
//! losses to four digits.
//!
//! The derivative uses the output alone: `f'(a) = A S (1 - tanh²(S a)) = (S / A)(A² - f(a)²)`.

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, TensorMetadata};
use burn::tensor::{DType, Tensor, TensorData};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::fast_math::tanh;
use super::is_flex;

/// `A` of `f(a) = A tanh(S a)`.
pub const AMPLITUDE: f32 = 1.7159;
/// `S` of `f(a) = A tanh(S a)`.
pub const SLOPE: f32 = 2.0 / 3.0;

/// Values per parallel task.
const VALUES_PER_TASK: usize = 1 << 14;

/// The scaled tanh as a backend extension. The default bodies are burn's own ops; Flex
/// overrides them with one-pass kernels, and `Autodiff` records the backward from the output.
#[backend_extension(Flex, Autodiff)]
pub trait ScaledTanhOps: Backend {
    /// `A tanh(S a)` of every value.
    fn scaled_tanh(a: FloatTensor<Self>) -> FloatTensor<Self> {
        burn_forward::<Self>(a)
    }

    /// `∂L/∂a = ∂L/∂y · (S / A)(A² - y²)` from the output `y` and its gradient `grad`.
    fn scaled_tanh_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        burn_backward::<Self>(y, grad)
    }
}

/// burn's ops: the default, and the Flex fallback for other dtypes.
fn burn_forward<B: Backend>(a: FloatTensor<B>) -> FloatTensor<B> {
    let t = B::float_tanh(B::float_mul_scalar(a, SLOPE.into()));
    B::float_mul_scalar(t, AMPLITUDE.into())
}

/// burn's ops for the backward: `grad · (S / A)(A² - y²)`.
fn burn_backward<B: Backend>(y: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let y2 = B::float_mul(y.clone(), y);
    let slope = B::float_mul_scalar(
        B::float_neg(B::float_add_scalar(y2, (-AMPLITUDE * AMPLITUDE).into())),
        (SLOPE / AMPLITUDE).into(),
    );
    B::float_mul(grad, slope)
}

/// `out[i] = f(a[i], b[i])` in parallel, compiled for the widest vectors.
fn map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    out.par_chunks_mut(VALUES_PER_TASK)
        .zip(
            a.par_chunks(VALUES_PER_TASK)
                .zip(b.par_chunks(VALUES_PER_TASK)),
        )
        .for_each(|(out, (a, b))| {
            super::select::vectorized(|| {
                for (o, (&a, &b)) in out.iter_mut().zip(a.iter().zip(b)) {
                    *o = f(a, b);
                }
            })
        });
    out
}

impl ScaledTanhOps for Flex {
    fn scaled_tanh(a: FloatTensor<Self>) -> FloatTensor<Self> {
        if a.dtype() != DType::F32 {
            return burn_forward::<Self>(a);
        }
        let shape = a.shape();
        let a = a.to_contiguous();
        let xs: &[f32] = a.as_slice().expect("contiguous f32");
        let out = map2(xs, xs, |x, _| AMPLITUDE * tanh(SLOPE * x));
        FlexTensor::from_data(TensorData::new(out, shape))
    }

    fn scaled_tanh_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        if y.dtype() != DType::F32 || grad.dtype() != DType::F32 || y.shape() != grad.shape() {
            return burn_backward::<Self>(y, grad);
        }
        let shape = y.shape();
        let (y, grad) = (y.to_contiguous(), grad.to_contiguous());
        let (ys, gs): (&[f32], &[f32]) = (
            y.as_slice().expect("contiguous f32"),
            grad.as_slice().expect("contiguous f32"),
        );
        let out = map2(ys, gs, |y, g| {
            g * (SLOPE / AMPLITUDE) * (AMPLITUDE * AMPLITUDE - y * y)
        });
        FlexTensor::from_data(TensorData::new(out, shape))
    }
}

impl<B: Backend + ScaledTanhOps, C: CheckpointStrategy> ScaledTanhOps for Autodiff<B, C> {
    fn scaled_tanh(a: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ScaledTanhBackward;

        impl<B: Backend + ScaledTanhOps> Backward<B, 1> for ScaledTanhBackward {
            // The output y: the derivative is a function of it.
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let y = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::scaled_tanh_backward(y, grad)
                });
            }
        }

        let guard = a.node();
        let y = B::scaled_tanh(a.into_primitive());
        match ScaledTanhBackward
            .prepare::<C>([guard])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(y.clone(), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// `A tanh(S a)` of every value (`A = 1.7159`, `S = 2/3`), differentiable: the kernels of this
/// module on Flex, burn's ops on other devices or with [`super::reference_ops`] on.
pub fn scaled_tanh<const D: usize>(a: Tensor<D>) -> Tensor<D> {
    if is_flex(&a.device()) && !super::reference_ops() {
        Tensor::from_dispatch(<Dispatch as ScaledTanhOps>::scaled_tanh(a.into_dispatch()))
    } else {
        burn::tensor::activation::tanh(a.mul_scalar(SLOPE)).mul_scalar(AMPLITUDE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// The op against burn's `A·tanh(S·a)`, forward and backward (on values out to ±6, where
    /// tanh saturates).
    #[test]
    fn matches_burns_ops_forward_and_backward() {
        let device = Device::flex().autodiff();
        let a = Tensor::<4>::random([3, 6, 14, 14], Distribution::Normal(0.0, 2.0), &device)
            .require_grad();
        let w = Tensor::<4>::random([3, 6, 14, 14], Distribution::Default, &device);
        let ours = scaled_tanh(a.clone());
        let theirs =
            burn::tensor::activation::tanh(a.clone().mul_scalar(SLOPE)).mul_scalar(AMPLITUDE);
        let d = (ours.clone() - theirs.clone())
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(d < 2e-6, "forward differs by {d}");
        let g_ours = a.grad(&(ours * w.clone()).sum().backward()).unwrap();
        let g_theirs = a.grad(&(theirs * w).sum().backward()).unwrap();
        let d = (g_ours - g_theirs).abs().max().into_scalar::<f32>();
        assert!(d < 1e-5, "gradient differs by {d}");
    }
}
