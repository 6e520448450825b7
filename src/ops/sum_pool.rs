//! LeNet-5's (1998) trainable subsampling, S2 and S4: each map's 2x2 sums times a trainable
//! coefficient plus a trainable bias (LeCun et al. 1998, section II.B), forward and backward
//! in one pass each on Flex.
//!
//! `s[b, c, i, j] = w_c · Σ_{2x2} x[b, c, 2i.., 2j..] + β_c`, so
//! `∂L/∂x[b, c, 2i + u, 2j + v] = w_c · ∂L/∂s[b, c, i, j]`,
//! `∂L/∂w_c = Σ_{b,i,j} ∂L/∂s · Σ_{2x2} x` and `∂L/∂β_c = Σ_{b,i,j} ∂L/∂s`
//! (odd heights and widths drop the last row or column, as a 2x2 average pool does).
//!
//! Why: burn computes it as an average pool times 4, then a broadcast multiply and add, each a
//! pass with its own backward; in a `lenet5-1998` epoch (profiled at commit f11a4f1)
//! burn-flex's average-pool backward alone was 7% of the time and the broadcasts around it most
//! of the 27% spent in rayon's element-wise loops.

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, TensorMetadata};
use burn::tensor::{DType, Shape, Tensor, TensorData};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::is_flex;

/// The 2x2 window of the subsampling.
const WINDOW: [usize; 2] = [2, 2];

/// The trainable subsampling as a backend extension. The default bodies are burn's own ops;
/// Flex overrides them with one-pass kernels, and `Autodiff` records one backward step.
#[backend_extension(Flex, Autodiff)]
pub trait SumPoolOps: Backend {
    /// `x [b, c, h, w]`, `weight`, `bias [c]` -> `[b, c, h/2, w/2]`.
    fn sum_pool2x2_affine(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        burn_forward::<Self>(x, weight, bias)
    }

    /// `(∂L/∂x, ∂L/∂weight, ∂L/∂bias)` for the output gradient `grad`.
    fn sum_pool2x2_affine_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_backward::<Self>(x, weight, grad)
    }
}

/// `[c]` -> `[1, c, 1, 1]`, to broadcast over a `[b, c, h, w]` tensor.
fn per_map<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let c = t.shape()[0];
    B::float_reshape(t, Shape::from(vec![1, c, 1, 1]))
}

/// The 2x2 sums through burn's average pool (times 4).
fn burn_sums<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let mean = B::avg_pool2d(x, WINDOW, WINDOW, [0, 0], true, false);
    B::float_mul_scalar(mean, 4.0f32.into())
}

/// burn's ops: the default, and the Flex fallback for other dtypes.
fn burn_forward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
) -> FloatTensor<B> {
    let scaled = B::float_mul(burn_sums::<B>(x), per_map::<B>(weight));
    B::float_add(scaled, per_map::<B>(bias))
}

/// burn's ops for the backward.
fn burn_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let c = weight.shape()[0];
    // Summed over batch, rows and columns: [c].
    let per_channel = |t: FloatTensor<B>| {
        B::float_reshape(B::float_sum_dims(t, &[0, 2, 3]), Shape::from(vec![c]))
    };
    let dbias = per_channel(grad.clone());
    let dweight = per_channel(B::float_mul(grad.clone(), burn_sums::<B>(x.clone())));
    // d sum / dx distributes each window's gradient to its 4 cells: 4 times the mean's.
    let dsum = B::float_mul_scalar(B::float_mul(grad, per_map::<B>(weight)), 4.0f32.into());
    let dx = B::avg_pool2d_backward(x, dsum, WINDOW, WINDOW, [0, 0], true, false);
    (dx, dweight, dbias)
}

/// burn's options for the 2x2/2 average pool (the reference composition).
fn two_by_two() -> burn::tensor::ops::AvgPoolOptions<2> {
    burn::tensor::ops::AvgPoolOptions::new(WINDOW).with_stride(WINDOW)
}

/// A tensor's f32 values, contiguous.
fn values(t: &FlexTensor) -> Vec<f32> {
    t.clone()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

impl SumPoolOps for Flex {
    fn sum_pool2x2_affine(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let shape = x.shape();
        if [x.dtype(), weight.dtype(), bias.dtype()] != [DType::F32; 3] || shape.num_dims() != 4 {
            return burn_forward::<Self>(x, weight, bias);
        }
        let (c, h, w) = (shape[1], shape[2], shape[3]);
        let (oh, ow) = (h / 2, w / 2);
        let (ws, bs) = (values(&weight), values(&bias));
        let x = x.to_contiguous();
        let xs: &[f32] = x.as_slice().expect("contiguous f32");
        let mut out = vec![0f32; shape[0] * c * oh * ow];
        if oh * ow > 0 {
            out.par_chunks_mut(oh * ow)
                .zip(xs.par_chunks(h * w))
                .enumerate()
                .for_each(|(p, (out, plane))| {
                    let (scale, shift) = (ws[p % c], bs[p % c]);
                    for (i, out) in out.chunks_mut(ow).enumerate() {
                        let (r0, r1) = (
                            &plane[2 * i * w..][..2 * ow],
                            &plane[(2 * i + 1) * w..][..2 * ow],
                        );
                        for ((o, a), b) in out
                            .iter_mut()
                            .zip(r0.chunks_exact(2))
                            .zip(r1.chunks_exact(2))
                        {
                            *o = scale * (a[0] + a[1] + b[0] + b[1]) + shift;
                        }
                    }
                });
        }
        FlexTensor::from_data(TensorData::new(out, Shape::from(vec![shape[0], c, oh, ow])))
    }

    fn sum_pool2x2_affine_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let shape = x.shape();
        if [x.dtype(), weight.dtype(), grad.dtype()] != [DType::F32; 3] || shape.num_dims() != 4 {
            return burn_backward::<Self>(x, weight, grad);
        }
        let (c, h, w) = (shape[1], shape[2], shape[3]);
        let (oh, ow) = (h / 2, w / 2);
        let ws = values(&weight);
        let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
        let xs: &[f32] = x.as_slice().expect("contiguous f32");
        let gs: &[f32] = grad.as_slice().expect("contiguous f32");
        let mut dx = vec![0f32; xs.len()];
        // Per plane: Σ ∂L/∂s · Σ_{2x2} x and Σ ∂L/∂s, summed per map below.
        let sums: Vec<(f64, f64)> = if oh * ow == 0 {
            Vec::new()
        } else {
            dx.par_chunks_mut(h * w)
                .zip(xs.par_chunks(h * w).zip(gs.par_chunks(oh * ow)))
                .enumerate()
                .map(|(p, (dx, (plane, g)))| {
                    let scale = ws[p % c];
                    let (mut dw, mut db) = (0f64, 0f64);
                    for (i, g) in g.chunks(ow).enumerate() {
                        let (r0, r1) = (
                            &plane[2 * i * w..][..2 * ow],
                            &plane[(2 * i + 1) * w..][..2 * ow],
                        );
                        let (mut rw, mut rb) = (0f32, 0f32);
                        for ((&g, a), b) in g.iter().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2))
                        {
                            rw += g * (a[0] + a[1] + b[0] + b[1]);
                            rb += g;
                        }
                        (dw, db) = (dw + rw as f64, db + rb as f64);
                        let (d0, d1) = dx[2 * i * w..].split_at_mut(w);
                        for (j, &g) in g.iter().enumerate() {
                            let v = scale * g;
                            d0[2 * j] = v;
                            d0[2 * j + 1] = v;
                            d1[2 * j] = v;
                            d1[2 * j + 1] = v;
                        }
                    }
                    (dw, db)
                })
                .collect()
        };
        let (mut dweight, mut dbias) = (vec![0f64; c], vec![0f64; c]);
        for (p, (dw, db)) in sums.into_iter().enumerate() {
            dweight[p % c] += dw;
            dbias[p % c] += db;
        }
        let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        (
            FlexTensor::from_data(TensorData::new(dx, shape)),
            FlexTensor::from_data(TensorData::new(to_f32(dweight), [c])),
            FlexTensor::from_data(TensorData::new(to_f32(dbias), [c])),
        )
    }
}

impl<B: Backend + SumPoolOps, C: CheckpointStrategy> SumPoolOps for Autodiff<B, C> {
    fn sum_pool2x2_affine(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SumPoolBackward;

        impl<B: Backend + SumPoolOps> Backward<B, 3> for SumPoolBackward {
            // The input and the coefficients; the bias's gradient needs neither.
            type State = (FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight, node_bias] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, weight) = ops.state;
                let (dx, dweight, dbias) = B::sum_pool2x2_affine_backward(x, weight, grad);
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = node_weight {
                    grads.register::<B>(node.id, dweight);
                }
                if let Some(node) = node_bias {
                    grads.register::<B>(node.id, dbias);
                }
            }
        }

        let guards = [x.node(), weight.node(), bias.node()];
        let (x, weight, bias) = (
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        );
        match SumPoolBackward
            .prepare::<C>(guards)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::sum_pool2x2_affine(x.clone(), weight.clone(), bias);
                prep.finish((x, weight), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::sum_pool2x2_affine(x, weight, bias)),
        }
    }
}

/// LeNet-5's trainable subsampling, differentiable: `x [b, c, h, w]`, `weight`, `bias [c]` ->
/// `[b, c, h/2, w/2]`, each map's 2x2 sums times its coefficient plus its bias. The kernels of
/// this module on Flex; burn's average pool and broadcasts on other devices or with
/// [`super::reference_ops`] on.
pub fn sum_pool2x2_affine(x: Tensor<4>, weight: Tensor<1>, bias: Tensor<1>) -> Tensor<4> {
    if is_flex(&x.device()) && !super::reference_ops() {
        Tensor::from_dispatch(<Dispatch as SumPoolOps>::sum_pool2x2_affine(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        ))
    } else {
        let c = weight.dims()[0];
        let sums = burn::tensor::module::avg_pool2d(x, two_by_two()).mul_scalar(4.0);
        sums * weight.reshape([1, c, 1, 1]) + bias.reshape([1, c, 1, 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// The op against burn's composition, forward and the gradients of x, weight and bias, on
    /// even and odd sides.
    #[test]
    fn matches_burns_ops_forward_and_backward() {
        let device = Device::flex().autodiff();
        for shape in [[4, 6, 28, 28], [3, 16, 10, 10], [2, 3, 7, 9]] {
            let c = shape[1];
            let x =
                Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad();
            let weight =
                Tensor::<1>::random([c], Distribution::Uniform(0.1, 0.5), &device).require_grad();
            let bias = Tensor::<1>::random([c], Distribution::Default, &device).require_grad();
            let out = [shape[0], c, shape[2] / 2, shape[3] / 2];
            let r = Tensor::<4>::random(out, Distribution::Default, &device);
            let mut results = Vec::new();
            for reference in [false, true] {
                let y = if reference {
                    // burn's ops, as the layer computed it before this op.
                    let sums = burn::tensor::module::avg_pool2d(x.clone(), two_by_two());
                    sums.mul_scalar(4.0) * weight.clone().reshape([1, c, 1, 1])
                        + bias.clone().reshape([1, c, 1, 1])
                } else {
                    sum_pool2x2_affine(x.clone(), weight.clone(), bias.clone())
                };
                let g = (y.clone() * r.clone()).sum().backward();
                results.push((
                    y,
                    x.grad(&g).expect("x grad"),
                    weight.grad(&g).expect("weight grad"),
                    bias.grad(&g).expect("bias grad"),
                ));
            }
            let (theirs, ours) = (results.pop().unwrap(), results.pop().unwrap());
            let diff = |a: Tensor<4>, b: Tensor<4>| (a - b).abs().max().into_scalar::<f32>();
            let diff1 = |a: Tensor<1>, b: Tensor<1>| (a - b).abs().max().into_scalar::<f32>();
            assert!(diff(ours.0.clone(), theirs.0) < 1e-5, "forward {shape:?}");
            assert!(diff(ours.1, theirs.1) < 1e-5, "x grad {shape:?}");
            assert!(diff1(ours.2, theirs.2) < 1e-3, "weight grad {shape:?}");
            assert!(diff1(ours.3, theirs.3) < 1e-3, "bias grad {shape:?}");
            assert_eq!(ours.0.dims(), out);
        }
    }
}
