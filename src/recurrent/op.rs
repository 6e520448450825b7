//! The fused recurrent kernel as a burn op with its own backward (a backend extension for Flex
//! and Autodiff), and the per-direction driver that picks it or the step-by-step reference.

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, TensorMetadata};
use burn::tensor::{DType, Shape, Tensor, TensorData};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};

use super::cell::{step, CellKind, CellTensors};
use super::kernel::{self, Inputs, Spec};

/// One layer, one direction, the whole sequence (see `super::kernel` for the layout).
#[backend_extension(Flex, Autodiff)]
pub trait RecurrentOps: Backend {
    /// `x [T, B, I]`, weights, `h0`, `c0 [B, H]` -> packed `[T + 2, B, H]` (outputs, final h,
    /// final c). `kind` is a [`CellKind`] code; `lengths` has one entry per row.
    #[allow(clippy::too_many_arguments)]
    fn recurrent(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        kind: usize,
        reverse: bool,
        lengths: Vec<usize>,
    ) -> FloatTensor<Self>;

    /// [`recurrent`](Self::recurrent), also returning the workspace the backward needs.
    #[allow(clippy::too_many_arguments)]
    fn recurrent_saving(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        kind: usize,
        reverse: bool,
        lengths: Vec<usize>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// Gradients `(x, w_ih, w_hh, b_ih, b_hh, h0, c0)` for the packed output's gradient `grad`.
    /// With `need_x_grad` false, a one-element tensor stands in for `∂L/∂x`.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn recurrent_backward(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        workspace: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        kind: usize,
        reverse: bool,
        lengths: Vec<usize>,
        need_x_grad: bool,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    );
}

fn spec(x: &Shape, w_hh: &Shape, kind: usize, reverse: bool, lengths: Vec<usize>) -> Spec {
    Spec {
        kind: CellKind::from_code(kind),
        t: x[0],
        b: x[1],
        i: x[2],
        h: w_hh[1],
        reverse,
        lengths,
    }
}

fn flex(data: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape.into()))
}

impl RecurrentOps for Flex {
    fn recurrent(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        kind: usize,
        reverse: bool,
        lengths: Vec<usize>,
    ) -> FloatTensor<Self> {
        Self::recurrent_saving(x, w_ih, w_hh, b_ih, b_hh, h0, c0, kind, reverse, lengths).0
    }

    fn recurrent_saving(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        kind: usize,
        reverse: bool,
        lengths: Vec<usize>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let s = spec(&x.shape(), &w_hh.shape(), kind, reverse, lengths);
        let [x, w_ih, w_hh, b_ih, b_hh, h0, c0] =
            [x, w_ih, w_hh, b_ih, b_hh, h0, c0].map(|t| t.to_contiguous());
        let inputs = Inputs {
            x: x.storage(),
            w_ih: w_ih.storage(),
            w_hh: w_hh.storage(),
            b_ih: b_ih.storage(),
            b_hh: b_hh.storage(),
            h0: h0.storage(),
            c0: c0.storage(),
        };
        let (packed, ws) = kernel::forward(&s, &inputs, true);
        let ws_len = ws.len();
        (flex(packed, [s.t + 2, s.b, s.h]), flex(ws, [ws_len]))
    }

    fn recurrent_backward(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        workspace: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        kind: usize,
        reverse: bool,
        lengths: Vec<usize>,
        need_x_grad: bool,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let (x_shape, w_ih_shape, w_hh_shape) = (x.shape(), w_ih.shape(), w_hh.shape());
        let s = spec(&x_shape, &w_hh_shape, kind, reverse, lengths);
        let [x, w_ih, w_hh, h0, c0, workspace, grad] =
            [x, w_ih, w_hh, h0, c0, workspace, grad].map(|t| t.to_contiguous());
        let inputs = Inputs {
            x: x.storage(),
            w_ih: w_ih.storage(),
            w_hh: w_hh.storage(),
            b_ih: &[],
            b_hh: &[],
            h0: h0.storage(),
            c0: c0.storage(),
        };
        let g = kernel::backward(
            &s,
            &inputs,
            workspace.storage(),
            grad.storage(),
            need_x_grad,
        );
        let gh = w_hh_shape[0];
        (
            if need_x_grad {
                flex(g.x, x_shape)
            } else {
                flex(vec![0.0], [1])
            },
            flex(g.w_ih, w_ih_shape),
            flex(g.w_hh, w_hh_shape),
            flex(g.b_ih, [gh]),
            flex(g.b_hh, [gh]),
            flex(g.h0, [s.b, s.h]),
            flex(g.c0, [s.b, s.h]),
        )
    }
}

impl<B: Backend + RecurrentOps, C: CheckpointStrategy> RecurrentOps for Autodiff<B, C> {
    fn recurrent(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        kind: usize,
        reverse: bool,
        lengths: Vec<usize>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct RecurrentBackward;

        type State<B> = (
            [FloatTensor<B>; 6], // x, w_ih, w_hh, h0, c0, workspace
            usize,
            bool,
            Vec<usize>,
        );

        impl<B: Backend + RecurrentOps> Backward<B, 7> for RecurrentBackward {
            type State = State<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 7>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let grad = grads.consume::<B>(&ops.node);
                let ([x, w_ih, w_hh, h0, c0, ws], kind, reverse, lengths) = ops.state;
                let need_x = ops.parents[0].is_some();
                let (dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0) = B::recurrent_backward(
                    x, w_ih, w_hh, h0, c0, ws, grad, kind, reverse, lengths, need_x,
                );
                for (node, g) in ops
                    .parents
                    .into_iter()
                    .zip([dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0])
                {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        let guards = [
            x.node(),
            w_ih.node(),
            w_hh.node(),
            b_ih.node(),
            b_hh.node(),
            h0.node(),
            c0.node(),
        ];
        let [x, w_ih, w_hh, b_ih, b_hh, h0, c0] =
            [x, w_ih, w_hh, b_ih, b_hh, h0, c0].map(|t| t.into_primitive());
        match RecurrentBackward
            .prepare::<C>(guards)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, ws) = B::recurrent_saving(
                    x.clone(),
                    w_ih.clone(),
                    w_hh.clone(),
                    b_ih,
                    b_hh,
                    h0.clone(),
                    c0.clone(),
                    kind,
                    reverse,
                    lengths.clone(),
                );
                prep.finish(([x, w_ih, w_hh, h0, c0, ws], kind, reverse, lengths), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::recurrent(
                x, w_ih, w_hh, b_ih, b_hh, h0, c0, kind, reverse, lengths,
            )),
        }
    }

    fn recurrent_saving(
        _x: FloatTensor<Self>,
        _w_ih: FloatTensor<Self>,
        _w_hh: FloatTensor<Self>,
        _b_ih: FloatTensor<Self>,
        _b_hh: FloatTensor<Self>,
        _h0: FloatTensor<Self>,
        _c0: FloatTensor<Self>,
        _kind: usize,
        _reverse: bool,
        _lengths: Vec<usize>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("recurrent_saving is called on the inner backend only")
    }

    fn recurrent_backward(
        _x: FloatTensor<Self>,
        _w_ih: FloatTensor<Self>,
        _w_hh: FloatTensor<Self>,
        _h0: FloatTensor<Self>,
        _c0: FloatTensor<Self>,
        _workspace: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _kind: usize,
        _reverse: bool,
        _lengths: Vec<usize>,
        _need_x_grad: bool,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        unreachable!("recurrent_backward is called on the inner backend only")
    }
}

/// How a recurrent layer runs its time loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Implementation {
    /// The fused kernel on the Flex CPU backend (f32), the step-by-step reference elsewhere or
    /// when `DEEPNET_REFERENCE_OPS=1`.
    #[default]
    Auto,
    /// Always the step-by-step reference ([`step`] per time step, burn's autodiff for the
    /// backward): every backend, slower.
    Reference,
}

/// The result of one direction of one layer.
pub(crate) struct DirectionOutput {
    /// `[T, B, H]`, zero at padded steps.
    pub output: Tensor<3>,
    /// `[B, H]`: the state after each row's last valid step.
    pub h: Tensor<2>,
    /// `[B, H]` (meaningful for LSTM only).
    pub c: Tensor<2>,
}

/// Runs one direction of one layer over `x [T, B, I]` from `(h0, c0)`. `lengths` has been
/// checked by the caller (one per row, each in `1..=T`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_direction(
    kind: CellKind,
    w: &CellTensors,
    x: Tensor<3>,
    h0: Tensor<2>,
    c0: Tensor<2>,
    lengths: &[usize],
    reverse: bool,
    implementation: Implementation,
) -> DirectionOutput {
    let [t, b, _] = x.dims();
    let hidden = h0.dims()[1];
    let fused = implementation == Implementation::Auto
        && crate::ops::is_flex(&x.device())
        && !crate::ops::reference_ops()
        && x.dtype() == DType::F32
        && w.weight_ih.dtype() == DType::F32;
    if fused {
        let packed = Tensor::<3>::from_dispatch(<Dispatch as RecurrentOps>::recurrent(
            x.into_dispatch(),
            w.weight_ih.clone().into_dispatch(),
            w.weight_hh.clone().into_dispatch(),
            w.bias_ih.clone().into_dispatch(),
            w.bias_hh.clone().into_dispatch(),
            h0.into_dispatch(),
            c0.into_dispatch(),
            kind.code(),
            reverse,
            lengths.to_vec(),
        )); // [T + 2, B, H]
        return DirectionOutput {
            output: packed.clone().narrow(0, 0, t),
            h: packed.clone().narrow(0, t, 1).reshape([b, hidden]),
            c: packed.narrow(0, t + 1, 1).reshape([b, hidden]),
        };
    }
    reference_direction(kind, w, x, h0, c0, lengths, reverse)
}

/// The step-by-step version of [`run_direction`]: a mask per step keeps padded rows' state and
/// zeroes their output.
fn reference_direction(
    kind: CellKind,
    w: &CellTensors,
    x: Tensor<3>,
    h0: Tensor<2>,
    c0: Tensor<2>,
    lengths: &[usize],
    reverse: bool,
) -> DirectionOutput {
    let [t_len, b, i] = x.dims();
    let device = x.device();
    let all_valid = lengths.iter().all(|&l| l == t_len);
    let (mut h, mut c) = (h0, c0);
    let mut outputs: Vec<Option<Tensor<2>>> = vec![None; t_len];
    for s in 0..t_len {
        let t = if reverse { t_len - 1 - s } else { s };
        let x_t = x.clone().narrow(0, t, 1).reshape([b, i]); // [B, I]
        let (h_new, c_new) = step(kind, w, x_t, h.clone(), c.clone());
        if all_valid {
            outputs[t] = Some(h_new.clone());
            (h, c) = (h_new, c_new);
        } else {
            let mask: Vec<f32> = lengths
                .iter()
                .map(|&l| if t < l { 1.0 } else { 0.0 })
                .collect();
            let m = Tensor::<2>::from_data(TensorData::new(mask, [b, 1]), &device); // [B, 1]
            let keep = m.clone().neg().add_scalar(1.0);
            outputs[t] = Some(h_new.clone() * m.clone());
            h = h_new * m.clone() + h * keep.clone();
            c = c_new * m + c * keep;
        }
    }
    let outputs: Vec<Tensor<2>> = outputs.into_iter().flatten().collect();
    DirectionOutput {
        output: Tensor::stack(outputs, 0),
        h,
        c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn max_abs<const D: usize>(t: Tensor<D>) -> f32 {
        t.abs().max().into_scalar::<f32>()
    }

    /// The fused kernel against the step-by-step reference: outputs, final states and the
    /// gradients of a random weighting of all three with respect to every input.
    #[test]
    fn fused_matches_reference_forward_and_backward() {
        let device = Device::flex().autodiff();
        let (t, i, h) = (5, 3, 6);
        for kind in [
            CellKind::RnnTanh,
            CellKind::RnnRelu,
            CellKind::Lstm,
            CellKind::Gru,
            CellKind::GruResetBefore,
        ] {
            // Batches of 4 run on one thread, of 9 on two (rows split between them).
            for (lengths, reverse) in [
                (vec![t; 4], false),
                (vec![t; 4], true),
                (vec![2, 5, 1, 4], false),
                (vec![2, 5, 1, 4], true),
                (vec![2, 5, 1, 4, 5, 3, 5, 1, 2], false),
                (vec![2, 5, 1, 4, 5, 3, 5, 1, 2], true),
            ] {
                let b = lengths.len();
                let g = kind.gates() * h;
                let rnd = |shape: Vec<usize>| {
                    Tensor::<2>::random(
                        [1, shape.iter().product()],
                        Distribution::Normal(0.0, 0.5),
                        &device,
                    )
                };
                let x = rnd(vec![t, b, i]).reshape([t, b, i]).require_grad();
                let w = CellTensors {
                    weight_ih: rnd(vec![g, i]).reshape([g, i]).require_grad(),
                    weight_hh: rnd(vec![g, h]).reshape([g, h]).require_grad(),
                    bias_ih: rnd(vec![g]).reshape([g]).require_grad(),
                    bias_hh: rnd(vec![g]).reshape([g]).require_grad(),
                };
                let h0 = rnd(vec![b, h]).reshape([b, h]).require_grad();
                let c0 = rnd(vec![b, h]).reshape([b, h]).require_grad();
                let r_out = Tensor::<3>::random([t, b, h], Distribution::Default, &device);
                let r_h = Tensor::<2>::random([b, h], Distribution::Default, &device);
                let r_c = Tensor::<2>::random([b, h], Distribution::Default, &device);
                let run = |imp| {
                    let o = run_direction(
                        kind,
                        &w,
                        x.clone(),
                        h0.clone(),
                        c0.clone(),
                        &lengths,
                        reverse,
                        imp,
                    );
                    let loss = (o.output.clone() * r_out.clone()).sum()
                        + (o.h.clone() * r_h.clone()).sum()
                        + (o.c.clone() * r_c.clone()).sum();
                    (o, loss.backward())
                };
                let (fast, gf) = run(Implementation::Auto);
                let (slow, gs) = run(Implementation::Reference);
                let what = format!("{kind:?} lengths {lengths:?} reverse {reverse}");
                assert!(max_abs(fast.output - slow.output) < 1e-5, "output, {what}");
                assert!(max_abs(fast.h - slow.h) < 1e-5, "h, {what}");
                assert!(max_abs(fast.c - slow.c) < 1e-5, "c, {what}");
                let flat2 = |t: Option<Tensor<2>>| t.map(|t| t.flatten::<1>(0, 1));
                let grads = [
                    (
                        "x",
                        x.grad(&gf).map(|t| t.flatten::<1>(0, 2)),
                        x.grad(&gs).map(|t| t.flatten::<1>(0, 2)),
                    ),
                    (
                        "w_ih",
                        flat2(w.weight_ih.grad(&gf)),
                        flat2(w.weight_ih.grad(&gs)),
                    ),
                    (
                        "w_hh",
                        flat2(w.weight_hh.grad(&gf)),
                        flat2(w.weight_hh.grad(&gs)),
                    ),
                    ("b_ih", w.bias_ih.grad(&gf), w.bias_ih.grad(&gs)),
                    ("b_hh", w.bias_hh.grad(&gf), w.bias_hh.grad(&gs)),
                    ("h0", flat2(h0.grad(&gf)), flat2(h0.grad(&gs))),
                ];
                for (name, a, b) in grads {
                    let (a, b) = (a.expect(name), b.expect(name));
                    let d = max_abs(a - b.clone());
                    assert!(
                        d < 1e-5 * max_abs(b).max(1.0),
                        "d{name} differs by {d}, {what}"
                    );
                }
                if kind == CellKind::Lstm {
                    let d = max_abs(c0.grad(&gf).unwrap() - c0.grad(&gs).unwrap());
                    assert!(d < 1e-5, "dc0 differs by {d}, {what}");
                }
            }
        }
    }
}
