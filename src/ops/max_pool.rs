//! 2x2 max pooling with stride 2, the pooling of LeNet-5 (and of VGG).
//!
//! Why: burn-flex's `max_pool2d_with_indices` (what burn calls under autodiff) runs a scalar
//! loop per output window that recomputes the valid range of a generic 3-D window; in a LeNet-5
//! training step it took 23% of the time, more than any convolution. For the fixed 2x2/2 window
//! the work is four loads and three compares per output, done here plane by plane in parallel.
//!
//! `y[b, c, i, j] = max(x[b, c, 2i, 2j], x[b, c, 2i, 2j+1], x[b, c, 2i+1, 2j], x[b, c, 2i+1, 2j+1])`,
//! and the gradient flows to the arg-max of each window only:
//! `∂L/∂x[b, c, p] = Σ_{(i, j): argmax(i, j) = p} ∂L/∂y[b, c, i, j]` (windows do not overlap, so
//! the sum has at most one term). Odd heights or widths drop the last row or column, as PyTorch's
//! `max_pool2d(x, 2)` does. A NaN in a window wins, as in PyTorch.

use burn::backend::ops::ModuleOps;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::{DType, IntDType, Shape, Tensor, TensorData};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::is_flex;

/// Planes (one image channel each) per parallel task: rayon's per-task cost is larger than the
/// pooling of one small plane, so tasks take many.
const PLANES_PER_TASK: usize = 64;

/// The 2x2/2 max-pool as a backend extension. The default bodies use the backend's own
/// `max_pool2d` ops; Flex overrides them with the fast kernels below, and `Autodiff` overrides
/// [`max_pool2x2`](MaxPool2x2Ops::max_pool2x2) to record its own backward.
#[backend_extension(Flex, Autodiff)]
pub trait MaxPool2x2Ops: Backend {
    /// `[b, c, h, w] -> [b, c, h/2, w/2]`.
    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::max_pool2x2_with_indices(x).0
    }

    /// The pooled tensor and, per output, the index of its arg-max (backend-specific encoding,
    /// only ever read by the same backend's [`max_pool2x2_backward`](Self::max_pool2x2_backward)).
    fn max_pool2x2_with_indices(x: FloatTensor<Self>) -> (FloatTensor<Self>, IntTensor<Self>) {
        let r =
            Self::max_pool2d_with_indices(x, [2, 2], [2, 2], [0, 0], [1, 1], false, IntDType::I64);
        (r.output, r.indices)
    }

    /// The gradient with respect to `x` of a 2x2 max-pool whose output gradient is `grad`.
    fn max_pool2x2_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        indices: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        backend_backward::<Self>(x, grad, indices)
    }
}

/// The backward through the backend's own max-pool op: the default, and the Flex fallback for
/// other dtypes.
fn backend_backward<B: Backend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
    indices: IntTensor<B>,
) -> FloatTensor<B> {
    B::max_pool2d_with_indices_backward(x, [2, 2], [2, 2], [0, 0], [1, 1], false, grad, indices)
        .x_grad
}

/// The largest of a window's four cells and its position (0..4, row-major); the first of
/// equal maxima wins, and a NaN wins over numbers, as in PyTorch.
#[inline(always)]
fn max4(a: f32, b: f32, c: f32, d: f32) -> (f32, u8) {
    let (m1, i1) = if b > a { (b, 1) } else { (a, 0) };
    let (m2, i2) = if d > c { (d, 3) } else { (c, 2) };
    let (m, i) = if m2 > m1 { (m2, i2) } else { (m1, i1) };
    if m.is_nan() || b.is_nan() || c.is_nan() || d.is_nan() {
        // Rare: the first NaN wins.
        let cells = [a, b, c, d];
        let k = cells.iter().position(|v| v.is_nan()).unwrap_or(i as usize);
        return (cells[k], k as u8);
    }
    (m, i)
}

impl MaxPool2x2Ops for Flex {
    fn max_pool2x2_with_indices(x: FloatTensor<Self>) -> (FloatTensor<Self>, IntTensor<Self>) {
        if x.dtype() != DType::F32 {
            let r = Self::max_pool2d_with_indices(
                x,
                [2, 2],
                [2, 2],
                [0, 0],
                [1, 1],
                false,
                IntDType::I64,
            );
            return (r.output, r.indices);
        }
        let shape = x.shape();
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
        let (oh, ow) = (h / 2, w / 2);
        let x = x.to_contiguous();
        let input: &[f32] = x.storage();
        let mut out = vec![0f32; planes * oh * ow];
        // Per output, which of the 4 window cells won (0..4): a byte is enough.
        let mut arg = vec![0u8; planes * oh * ow];
        if oh * ow > 0 {
            out.par_chunks_mut(oh * ow * PLANES_PER_TASK)
                .zip(arg.par_chunks_mut(oh * ow * PLANES_PER_TASK))
                .enumerate()
                .for_each(|(t, (out, arg))| {
                    for (q, (out, arg)) in out
                        .chunks_mut(oh * ow)
                        .zip(arg.chunks_mut(oh * ow))
                        .enumerate()
                    {
                        let p = t * PLANES_PER_TASK + q;
                        let plane = &input[p * h * w..(p + 1) * h * w];
                        for i in 0..oh {
                            let r0 = &plane[2 * i * w..2 * i * w + 2 * ow];
                            let r1 = &plane[(2 * i + 1) * w..(2 * i + 1) * w + 2 * ow];
                            let out = &mut out[i * ow..(i + 1) * ow];
                            let arg = &mut arg[i * ow..(i + 1) * ow];
                            for (((top, bottom), o), a) in r0
                                .chunks_exact(2)
                                .zip(r1.chunks_exact(2))
                                .zip(out.iter_mut())
                                .zip(arg.iter_mut())
                            {
                                (*o, *a) = max4(top[0], top[1], bottom[0], bottom[1]);
                            }
                        }
                    }
                });
        }
        let out_shape = Shape::from(vec![shape[0], shape[1], oh, ow]);
        let out = FlexTensor::from_data(TensorData::new(out, out_shape.clone()));
        let arg = FlexTensor::from_data(TensorData::new(arg, out_shape));
        (out, arg)
    }

    fn max_pool2x2_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        indices: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 || indices.dtype() != DType::U8 {
            return backend_backward::<Self>(x, grad, indices);
        }
        let shape = x.shape();
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
        let (oh, ow) = (h / 2, w / 2);
        let grad = grad.to_contiguous();
        let grad: &[f32] = grad.storage();
        let indices = indices.to_contiguous();
        let arg: &[u8] = indices.storage();
        let mut dx = vec![0f32; planes * h * w];
        if oh * ow > 0 {
            dx.par_chunks_mut(h * w * PLANES_PER_TASK)
                .enumerate()
                .for_each(|(t, dx)| {
                    for (q, dx) in dx.chunks_mut(h * w).enumerate() {
                        let p = t * PLANES_PER_TASK + q;
                        let g = &grad[p * oh * ow..(p + 1) * oh * ow];
                        let a = &arg[p * oh * ow..(p + 1) * oh * ow];
                        for i in 0..oh {
                            for j in 0..ow {
                                let k = a[i * ow + j] as usize;
                                dx[(2 * i + k / 2) * w + 2 * j + k % 2] = g[i * ow + j];
                            }
                        }
                    }
                });
        }
        FlexTensor::from_data(TensorData::new(dx, shape))
    }
}

impl<B: Backend + MaxPool2x2Ops, C: CheckpointStrategy> MaxPool2x2Ops for Autodiff<B, C> {
    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct MaxPool2x2Backward;

        impl<B: Backend + MaxPool2x2Ops> Backward<B, 1> for MaxPool2x2Backward {
            // The input (for its shape, and for backends whose backward needs it) and the
            // arg-max of every window.
            type State = (FloatTensor<B>, IntTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let (x, indices) = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::max_pool2x2_backward(x, grad, indices)
                });
            }
        }

        let guard = x.node();
        let x = x.into_primitive();
        let (out, indices) = B::max_pool2x2_with_indices(x.clone());
        match MaxPool2x2Backward
            .prepare::<C>([guard])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x, indices), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}

/// 2x2 max pooling with stride 2: `[b, c, h, w] -> [b, c, h/2, w/2]`, differentiable.
///
/// On Flex (the CPU backend) it runs the kernels of this module; on other devices, or when
/// [`super::reference_ops`] is on, it is burn's `max_pool2d` with the same window.
pub fn max_pool2x2(x: Tensor<4>) -> Tensor<4> {
    if is_flex(&x.device()) && !super::reference_ops() {
        Tensor::from_dispatch(<Dispatch as MaxPool2x2Ops>::max_pool2x2(x.into_dispatch()))
    } else {
        burn::tensor::module::max_pool2d(
            x,
            burn::tensor::ops::MaxPoolOptions::new([2, 2]).with_stride([2, 2]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution};

    fn max_abs_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn matches_burns_max_pool_forward_and_backward() {
        let device = Device::flex().autodiff();
        let reference = MaxPool2dConfig::new([2, 2]).init();
        for shape in [[3, 4, 28, 28], [2, 3, 7, 9], [1, 1, 2, 2]] {
            let x = Tensor::<4>::random(shape, Distribution::Default, &device).require_grad();
            let w = Tensor::<4>::random(
                [shape[0], shape[1], shape[2] / 2, shape[3] / 2],
                Distribution::Default,
                &device,
            );
            let fast = max_pool2x2(x.clone());
            let slow = reference.forward(x.clone());
            assert_eq!(fast.dims(), slow.dims());
            assert_eq!(max_abs_diff(fast.clone(), slow.clone()), 0.0, "{shape:?}");
            // A weighted sum makes every output's gradient different.
            let g_fast = x.grad(&(fast * w.clone()).sum().backward()).unwrap();
            let g_slow = x.grad(&(slow * w).sum().backward()).unwrap();
            let d = (g_fast - g_slow).abs().max().into_scalar::<f32>();
            assert_eq!(d, 0.0, "gradient differs for {shape:?}");
        }
    }

    #[test]
    fn works_without_autodiff() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new((0..16).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 4, 4]),
            &device,
        );
        let y = max_pool2x2(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(y, vec![5.0, 7.0, 13.0, 15.0]);
    }
}
