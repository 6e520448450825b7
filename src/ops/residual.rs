//! The residual join of ResNet's blocks, `relu(main + shortcut)`, in one pass on Flex, in
//! inference and in training (one recorded step whose backward masks `∂L/∂y` once and hands
//! it to both branches).
//!
//! Why: burn runs the sum and the ReLU as two element-wise passes over the block's output
//! (`zip_apply_inplace`, then `unary_op`); in ResNet-18 inference the element-wise passes
//! around the convolutions (this one and batch norm's) were about a fifth of the profile. The
//! ResNet block is `y = F(x) + x` (He et al. 2016) followed by the ReLU.

use burn::backend::ops::{ActivationOps, FloatTensorOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, TensorMetadata};
use burn::tensor::{DType, Tensor, TensorData};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::is_flex;

/// Values per parallel task: the sum is memory-bound, so tasks are large.
const VALUES_PER_TASK: usize = 1 << 15;

/// The fused residual join as a backend extension. The default body is burn's own `add` and
/// `relu` (what `Autodiff` uses, so gradients are burn's); Flex overrides it with one pass.
#[backend_extension(Flex, Autodiff)]
pub trait ResidualOps: Backend {
    /// `relu(main + shortcut)`, both of the same shape (a NaN stays NaN).
    fn add_relu(main: FloatTensor<Self>, shortcut: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::relu(Self::float_add(main, shortcut))
    }

    /// `∂L/∂(main + shortcut)` from `∂L/∂y` (`grad`) and the join's output `y`: `grad` where
    /// `y` is above zero (or NaN), zero where `y ≤ 0`, as burn's ReLU backward.
    fn add_relu_backward(output: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::relu_backward(output, grad)
    }
}

impl ResidualOps for Flex {
    fn add_relu(main: FloatTensor<Self>, shortcut: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = main.shape();
        if main.dtype() != DType::F32 || shortcut.dtype() != DType::F32 || shortcut.shape() != shape
        {
            return Self::relu(Self::float_add(main, shortcut));
        }
        let join = |m: f32, s: f32| {
            let y = m + s;
            if y.is_nan() || y > 0.0 {
                y
            } else {
                0.0
            }
        };
        let shortcut = shortcut.to_contiguous();
        let ss: &[f32] = shortcut.as_slice().expect("contiguous f32");
        let mut main = main;
        // In place into the main path's buffer when nothing else holds it (it is the last
        // batch norm's fresh output in a ResNet block).
        if let Some((start, end)) = main
            .layout()
            .contiguous_offsets()
            .filter(|_| main.is_unique())
        {
            let ms: &mut [f32] = &mut main.try_storage_mut().expect("unique")[start..end];
            ms.par_chunks_mut(VALUES_PER_TASK)
                .zip(ss.par_chunks(VALUES_PER_TASK))
                .for_each(|(ms, ss)| {
                    for (m, &s) in ms.iter_mut().zip(ss) {
                        *m = join(*m, s);
                    }
                });
            return main;
        }
        let main = main.to_contiguous();
        let ms: &[f32] = main.as_slice().expect("contiguous f32");
        let mut out = vec![0f32; ms.len()];
        out.par_chunks_mut(VALUES_PER_TASK)
            .zip(
                ms.par_chunks(VALUES_PER_TASK)
                    .zip(ss.par_chunks(VALUES_PER_TASK)),
            )
            .for_each(|(ys, (ms, ss))| {
                for (y, (&m, &s)) in ys.iter_mut().zip(ms.iter().zip(ss)) {
                    *y = join(m, s);
                }
            });
        FlexTensor::from_data(TensorData::new(out, shape))
    }

    fn add_relu_backward(output: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        if output.dtype() != DType::F32
            || grad.dtype() != DType::F32
            || output.shape() != grad.shape()
        {
            return Self::relu_backward(output, grad);
        }
        let mask = |d: f32, y: f32| if y <= 0.0 { 0.0 } else { d };
        let output = output.to_contiguous();
        let ys: &[f32] = output.as_slice().expect("contiguous f32");
        // In place when nothing else holds ∂L/∂y (`to_contiguous` shares a contiguous buffer,
        // so the caller's handle is dropped first).
        let grad = {
            let contiguous = grad.to_contiguous();
            drop(grad);
            contiguous
        };
        let mut grad = grad;
        if let Some((start, end)) = grad
            .layout()
            .contiguous_offsets()
            .filter(|_| grad.is_unique())
        {
            let ds: &mut [f32] = &mut grad.try_storage_mut().expect("unique")[start..end];
            ds.par_chunks_mut(VALUES_PER_TASK)
                .zip(ys.par_chunks(VALUES_PER_TASK))
                .for_each(|(ds, ys)| {
                    for (d, &y) in ds.iter_mut().zip(ys) {
                        *d = mask(*d, y);
                    }
                });
            return grad;
        }
        let ds: &[f32] = grad.as_slice().expect("contiguous f32");
        let mut out = vec![0f32; ds.len()];
        out.par_chunks_mut(VALUES_PER_TASK)
            .zip(
                ds.par_chunks(VALUES_PER_TASK)
                    .zip(ys.par_chunks(VALUES_PER_TASK)),
            )
            .for_each(|(out, (ds, ys))| {
                for (o, (&d, &y)) in out.iter_mut().zip(ds.iter().zip(ys)) {
                    *o = mask(d, y);
                }
            });
        FlexTensor::from_data(TensorData::new(out, output.shape()))
    }
}

impl<B: Backend + ResidualOps, C: CheckpointStrategy> ResidualOps for Autodiff<B, C> {
    fn add_relu(main: FloatTensor<Self>, shortcut: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AddReluBackward;

        impl<B: Backend + ResidualOps> Backward<B, 2> for AddReluBackward {
            // The join's output.
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_main, node_shortcut] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let grad = B::add_relu_backward(ops.state, grad);
                match (node_main, node_shortcut) {
                    (Some(main), Some(shortcut)) => {
                        grads.register::<B>(main.id, grad.clone());
                        grads.register::<B>(shortcut.id, grad);
                    }
                    (Some(node), None) | (None, Some(node)) => grads.register::<B>(node.id, grad),
                    (None, None) => {}
                }
            }
        }

        let same_shape = main.shape() == shortcut.shape();
        if !same_shape {
            // Broadcasting: burn's own ops, whose backward sums over the broadcast axes.
            return Self::relu(Self::float_add(main, shortcut));
        }
        let guards = [main.node(), shortcut.node()];
        let (main, shortcut) = (main.into_primitive(), shortcut.into_primitive());
        match AddReluBackward
            .prepare::<C>(guards)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::add_relu(main, shortcut);
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::add_relu(main, shortcut)),
        }
    }
}

/// `relu(main + shortcut)`, differentiable: one pass on Flex (in training a single recorded
/// step), burn's `add` and `relu` otherwise.
pub fn add_relu<const D: usize>(main: Tensor<D>, shortcut: Tensor<D>) -> Tensor<D> {
    let device = main.device();
    if is_flex(&device) && !super::reference_ops() {
        Tensor::from_dispatch(<Dispatch as ResidualOps>::add_relu(
            main.into_dispatch(),
            shortcut.into_dispatch(),
        ))
    } else {
        burn::tensor::activation::relu(main + shortcut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// The fused pass against burn's `relu(a + b)`, in place (a fresh tensor) and not (a tensor
    /// still held elsewhere), with a NaN that must stay NaN.
    #[test]
    fn matches_burns_add_then_relu() {
        let device = Device::flex();
        let a = Tensor::<4>::random([3, 5, 7, 9], Distribution::Normal(0.0, 1.0), &device);
        let b = Tensor::<4>::random([3, 5, 7, 9], Distribution::Normal(0.0, 1.0), &device);
        let nan = Tensor::<4>::zeros([3, 5, 7, 9], &device).slice_assign(
            [0..1, 0..1, 0..1, 0..1],
            Tensor::full([1, 1, 1, 1], f32::NAN, &device),
        );
        let b = b + nan;
        let reference = burn::tensor::activation::relu(a.clone() + b.clone()).into_data();
        let shared = add_relu(a.clone(), b.clone()).into_data();
        let fresh = add_relu(a * 1.0, b).into_data();
        for ours in [shared, fresh] {
            let (x, y) = (
                ours.as_slice::<f32>().unwrap(),
                reference.as_slice::<f32>().unwrap(),
            );
            assert!(x[0].is_nan() && y[0].is_nan(), "NaN kept");
            assert!(x.iter().skip(1).any(|&v| v > 0.0) && x.contains(&0.0));
            assert_eq!(&x[1..], &y[1..]);
        }
    }

    /// In training (autodiff): the recorded join gives burn's `relu(a + b)` bit for bit,
    /// output and both gradients, for fresh and shared operands.
    #[test]
    fn training_join_matches_burns_add_then_relu() {
        let device = Device::flex().autodiff();
        let a0 = Tensor::<4>::random([3, 5, 7, 9], Distribution::Normal(0.0, 1.0), &device);
        let b0 = Tensor::<4>::random([3, 5, 7, 9], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<4>::random([3, 5, 7, 9], Distribution::Default, &device);
        let run = |fused: bool| {
            let (a, b) = (a0.clone().require_grad(), b0.clone().require_grad());
            // `a * 1` is a fresh tensor (the in-place forward); `b` is shared with the caller.
            let main = a.clone() * 1.0;
            let y = if fused {
                add_relu(main, b.clone())
            } else {
                burn::tensor::activation::relu(main + b.clone())
            };
            let g = (y.clone() * w.clone()).sum().backward();
            let v = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
            (
                v(y.inner()),
                v(a.grad(&g).expect("a grad")),
                v(b.grad(&g).expect("b grad")),
            )
        };
        let (ours, theirs) = (run(true), run(false));
        assert!(ours.1.contains(&0.0) && ours.1.iter().any(|&v| v != 0.0));
        assert_eq!(ours, theirs);
    }
}
