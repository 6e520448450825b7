//! Max pooling: the 2x2 window with stride 2 of LeNet-5 and VGG, and any other window without
//! dilation (ResNet's and AlexNet's 3x3/2, GoogLeNet's with PyTorch's `ceil_mode`).
//!
//! Why: burn-flex's `max_pool2d_with_indices` (what burn calls under autodiff, and what its
//! `max_pool2d` runs in inference too) runs a scalar loop per output window that recomputes the
//! valid range of a generic 3-D window; in a LeNet-5 training step it took 23% of the time, more
//! than any convolution, and in ResNet-18 inference at batch 16 its 3x3/2 pool after the stem
//! took 10%, more than every stride-2 convolution together. For the fixed 2x2/2 window the work
//! is four loads and three compares per output; other windows clip each window's rows and
//! columns to the image once and scan them; both plane by plane in parallel. In inference (no
//! autodiff) no arg-max is kept, and other windows take a separable pass (the window's rows,
//! then its columns read by phase of the stride, every loop contiguous) compiled for the CPU's
//! widest vectors: ResNet-18's 3x3/2 pool went from 11% of its inference at batch 16 to about
//! 1.5%.
//!
//! `y[b, c, i, j] = max_{(u, v) ∈ window(i, j)} x[b, c, u, v]` over the window's cells inside the
//! image (padding never wins), and the gradient flows to the arg-max of each window only:
//! `∂L/∂x[b, c, p] = Σ_{(i, j): argmax(i, j) = p} ∂L/∂y[b, c, i, j]` (overlapping windows add).
//! With a 2x2/2 window, odd heights or widths drop the last row or column, as PyTorch's
//! `max_pool2d(x, 2)` does. The first of equal maxima wins, and a NaN wins over numbers, as in
//! PyTorch (among several NaNs, the 2x2 kernel takes the first, the general one the last, as
//! PyTorch's CPU kernel does).

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

/// A max-pooling window without dilation: `kernel`, `stride` and symmetric zero `padding` as
/// `[vertical, horizontal]`, and PyTorch's rounding of the output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolWindow {
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Steps between windows, each at least 1.
    pub stride: [usize; 2],
    /// Rows and columns of padding on each side (never the maximum).
    pub padding: [usize; 2],
    /// How the output size rounds: [`PoolRounding::Floor`] (PyTorch's default) or
    /// [`PoolRounding::Ceil`] (`ceil_mode=True`).
    pub rounding: PoolRounding,
}

/// How a pooling's output size rounds `(size + 2·padding - kernel) / stride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolRounding {
    /// Down: every window lies inside the padded input.
    Floor,
    /// Up (PyTorch's `ceil_mode`): a last, partial window, kept only where it starts inside the
    /// input or its leading padding.
    Ceil,
}

impl PoolWindow {
    /// Output positions along axis `a` for an input of `size`, PyTorch's rule.
    fn out_len(&self, size: usize, a: usize) -> usize {
        let (k, s, p) = (self.kernel[a], self.stride[a].max(1), self.padding[a]);
        let padded = size + 2 * p;
        if padded < k {
            // burn's rule (PyTorch refuses these sizes): in ceil mode one window, clipped to
            // the input.
            return usize::from(self.rounding == PoolRounding::Ceil && size > 0);
        }
        match self.rounding {
            PoolRounding::Floor => (padded - k) / s + 1,
            PoolRounding::Ceil => {
                let out = (padded - k).div_ceil(s) + 1;
                // Drop the last window if it starts at or past the end of the input.
                if (out - 1) * s >= size + p {
                    out - 1
                } else {
                    out
                }
            }
        }
    }

    /// The input cells `[lo, hi)` along axis `a` (input `size`) of output position `i`'s window.
    fn cells(&self, i: usize, size: usize, a: usize) -> (usize, usize) {
        let start = i * self.stride[a].max(1);
        let lo = start.saturating_sub(self.padding[a]).min(size);
        let hi = (start + self.kernel[a])
            .saturating_sub(self.padding[a])
            .min(size)
            .max(lo);
        (lo, hi)
    }

    fn options(&self) -> ([usize; 2], [usize; 2], [usize; 2], bool) {
        let ceil = self.rounding == PoolRounding::Ceil;
        (self.kernel, self.stride, self.padding, ceil)
    }
}

/// Max pooling with any [`PoolWindow`] as a backend extension. The default bodies use the
/// backend's own `max_pool2d` ops; Flex overrides them with the kernels below, and `Autodiff`
/// overrides [`max_pool2d_window`](MaxPool2dOps::max_pool2d_window) to record its backward.
#[backend_extension(Flex, Autodiff)]
pub trait MaxPool2dOps: Backend {
    /// `[b, c, h, w] -> [b, c, oh, ow]`.
    fn max_pool2d_window(x: FloatTensor<Self>, window: PoolWindow) -> FloatTensor<Self> {
        Self::max_pool2d_window_with_indices(x, window).0
    }

    /// The pooled tensor and, per output, the position of its arg-max (backend-specific
    /// encoding, only read by the same backend's
    /// [`max_pool2d_window_backward`](Self::max_pool2d_window_backward)).
    fn max_pool2d_window_with_indices(
        x: FloatTensor<Self>,
        window: PoolWindow,
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        let (k, s, p, ceil) = window.options();
        let r = Self::max_pool2d_with_indices(x, k, s, p, [1, 1], ceil, IntDType::I64);
        (r.output, r.indices)
    }

    /// The gradient with respect to `x` of the max-pool whose output gradient is `grad`.
    fn max_pool2d_window_backward(
        x: FloatTensor<Self>,
        window: PoolWindow,
        grad: FloatTensor<Self>,
        indices: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        window_backend_backward::<Self>(x, window, grad, indices)
    }
}

/// The backward through the backend's own max-pool op: the default, and the Flex fallback for
/// other dtypes.
fn window_backend_backward<B: Backend>(
    x: FloatTensor<B>,
    window: PoolWindow,
    grad: FloatTensor<B>,
    indices: IntTensor<B>,
) -> FloatTensor<B> {
    let (k, s, p, ceil) = window.options();
    B::max_pool2d_with_indices_backward(x, k, s, p, [1, 1], ceil, grad, indices).x_grad
}

/// One plane's max-pool: `out[i, j]` and `arg[i, j]`, the position `u·w + v` in the plane of the
/// window's maximum (the first of equals in row-major order; a NaN wins, PyTorch's
/// `val > max || isnan(val)`). `columns[j]` is output column `j`'s window, clipped to the plane.
///
/// The loops run over the window's cells outside and the output row's columns inside, so each
/// column's running maximum is its own dependency chain: one window at a time chains a compare
/// and a select per cell, and ResNet-18's 3x3/2 pool ran 3x slower that way.
#[inline(always)]
fn pool_plane(
    plane: &[f32],
    [h, w]: [usize; 2],
    window: &PoolWindow,
    columns: &[(usize, usize)],
    out: &mut [f32],
    arg: &mut [u32],
) {
    let ow = columns.len();
    if ow == 0 {
        return;
    }
    let (s, p) = (window.stride[1].max(1), window.padding[1]);
    for (i, (out, arg)) in out.chunks_mut(ow).zip(arg.chunks_mut(ow)).enumerate() {
        let (y0, y1) = window.cells(i, h, 0);
        out.fill(f32::NEG_INFINITY);
        // An all -inf window keeps its first cell.
        for (a, &(x0, _)) in arg.iter_mut().zip(columns) {
            *a = (y0 * w + x0) as u32;
        }
        for u in y0..y1 {
            let row = &plane[u * w..(u + 1) * w];
            for kx in 0..window.kernel[1] {
                // Output columns j whose cell s·j + kx - p lies in the row.
                let lo = p.saturating_sub(kx).div_ceil(s).min(ow);
                let hi = (w + p)
                    .checked_sub(kx + 1)
                    .map_or(0, |last| last / s + 1)
                    .min(ow)
                    .max(lo);
                if lo == hi {
                    continue;
                }
                let first = s * lo + kx - p;
                let cells = row[first..].iter().step_by(s);
                for (j, (&val, (o, a))) in cells
                    .zip(out[lo..hi].iter_mut().zip(arg[lo..hi].iter_mut()))
                    .enumerate()
                {
                    let take = val > *o || val.is_nan();
                    *o = if take { val } else { *o };
                    *a = if take {
                        (u * w + first + s * j) as u32
                    } else {
                        *a
                    };
                }
            }
        }
    }
}

/// The larger of the running maximum `m` and a cell `v`, a NaN winning (PyTorch's
/// `val > max || isnan(val)`).
#[inline(always)]
fn nan_max(m: f32, v: f32) -> f32 {
    if v > m || v.is_nan() {
        v
    } else {
        m
    }
}

/// Per-task buffers of [`pool_plane_values`].
struct PoolScratch {
    /// The window rows' maximum of one output row, on the padded width (`-inf` in the padding).
    rows_max: Vec<f32>,
    /// `rows_max` split by column phase modulo the stride: `phases[r · len + m] =
    /// rows_max[s·m + r]`.
    phases: Vec<f32>,
}

/// One plane's max-pool, values only (inference: no arg-max kept). Separable: per output row,
/// the maximum over the window's rows (contiguous), then over the window's columns, read from
/// the row split by column phase so that every loop is contiguous and vectorizes; for a 3x3/2
/// window that is 3 row passes and 3 short column passes where the window-by-window scan reads
/// 9 strided cells per output.
#[inline(always)]
fn pool_plane_values(
    plane: &[f32],
    [h, w]: [usize; 2],
    window: &PoolWindow,
    ow: usize,
    out: &mut [f32],
    scratch: &mut PoolScratch,
) {
    if ow == 0 {
        return;
    }
    let (k, s, p) = (window.kernel[1], window.stride[1].max(1), window.padding[1]);
    // Padded columns: every window's (s·j .. s·j + k) and the input's (p .. p + w), then whole
    // phases.
    let len = (ow + (k - 1) / s + 1).max((p + w).div_ceil(s));
    let rows_max = &mut scratch.rows_max;
    rows_max.clear();
    rows_max.resize(s * len, f32::NEG_INFINITY);
    scratch.phases.resize(s * len, f32::NEG_INFINITY);
    for (i, out) in out.chunks_mut(ow).enumerate() {
        let (y0, y1) = window.cells(i, h, 0);
        let inner = &mut rows_max[p..p + w];
        if y0 == y1 {
            inner.fill(f32::NEG_INFINITY);
        } else {
            inner.copy_from_slice(&plane[y0 * w..(y0 + 1) * w]);
            for u in y0 + 1..y1 {
                for (m, &v) in inner.iter_mut().zip(&plane[u * w..(u + 1) * w]) {
                    *m = nan_max(*m, v);
                }
            }
        }
        let cols: &[f32] = if s == 1 {
            rows_max
        } else {
            for (m, cells) in rows_max.chunks_exact(s).enumerate() {
                for (r, &v) in cells.iter().enumerate() {
                    scratch.phases[r * len + m] = v;
                }
            }
            &scratch.phases
        };
        out.fill(f32::NEG_INFINITY);
        for kx in 0..k {
            // Column s·j + kx of the padded row is phase kx % s, position j + kx / s.
            let phase = &cols[(kx % s) * len + kx / s..][..ow];
            for (o, &v) in out.iter_mut().zip(phase) {
                *o = nan_max(*o, v);
            }
        }
    }
}

impl MaxPool2dOps for Flex {
    /// Values only: no arg-max to keep, so the separable `pool_plane_values`.
    fn max_pool2d_window(x: FloatTensor<Self>, window: PoolWindow) -> FloatTensor<Self> {
        let shape = x.shape();
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
        if x.dtype() != DType::F32 {
            return Self::max_pool2d_window_with_indices(x, window).0;
        }
        let (oh, ow) = (window.out_len(h, 0), window.out_len(w, 1));
        let x = x.to_contiguous();
        let input: &[f32] = x.as_slice().expect("contiguous f32");
        let mut out = vec![0f32; planes * oh * ow];
        if oh * ow > 0 {
            out.par_chunks_mut(oh * ow * PLANES_PER_TASK)
                .enumerate()
                .for_each(|(t, out)| {
                    let mut scratch = PoolScratch {
                        rows_max: Vec::new(),
                        phases: Vec::new(),
                    };
                    super::select::vectorized(|| {
                        for (q, out) in out.chunks_mut(oh * ow).enumerate() {
                            let p = t * PLANES_PER_TASK + q;
                            let plane = &input[p * h * w..(p + 1) * h * w];
                            pool_plane_values(plane, [h, w], &window, ow, out, &mut scratch);
                        }
                    })
                });
        }
        let out_shape = Shape::from(vec![shape[0], shape[1], oh, ow]);
        FlexTensor::from_data(TensorData::new(out, out_shape))
    }

    fn max_pool2d_window_with_indices(
        x: FloatTensor<Self>,
        window: PoolWindow,
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        let shape = x.shape();
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
        if x.dtype() != DType::F32 || h * w > u32::MAX as usize {
            let (k, s, p, ceil) = window.options();
            let r = Self::max_pool2d_with_indices(x, k, s, p, [1, 1], ceil, IntDType::I64);
            return (r.output, r.indices);
        }
        let (oh, ow) = (window.out_len(h, 0), window.out_len(w, 1));
        let x = x.to_contiguous();
        let input: &[f32] = x.storage();
        let mut out = vec![0f32; planes * oh * ow];
        let mut arg = vec![0u32; planes * oh * ow];
        // Every plane's windows span the same columns: clip them to the plane once.
        let columns: Vec<(usize, usize)> = (0..ow).map(|j| window.cells(j, w, 1)).collect();
        if oh * ow > 0 {
            out.par_chunks_mut(oh * ow * PLANES_PER_TASK)
                .zip(arg.par_chunks_mut(oh * ow * PLANES_PER_TASK))
                .enumerate()
                .for_each(|(t, (out, arg))| {
                    super::select::vectorized(|| {
                        for (q, (out, arg)) in out
                            .chunks_mut(oh * ow)
                            .zip(arg.chunks_mut(oh * ow))
                            .enumerate()
                        {
                            let p = t * PLANES_PER_TASK + q;
                            let plane = &input[p * h * w..(p + 1) * h * w];
                            pool_plane(plane, [h, w], &window, &columns, out, arg);
                        }
                    })
                });
        }
        let out_shape = Shape::from(vec![shape[0], shape[1], oh, ow]);
        let out = FlexTensor::from_data(TensorData::new(out, out_shape.clone()));
        let arg = FlexTensor::from_data(TensorData::new(arg, out_shape));
        (out, arg)
    }

    fn max_pool2d_window_backward(
        x: FloatTensor<Self>,
        window: PoolWindow,
        grad: FloatTensor<Self>,
        indices: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 || indices.dtype() != DType::U32 {
            return window_backend_backward::<Self>(x, window, grad, indices);
        }
        let shape = x.shape();
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
        let (oh, ow) = (window.out_len(h, 0), window.out_len(w, 1));
        let grad = grad.to_contiguous();
        let grad: &[f32] = grad.storage();
        let indices = indices.to_contiguous();
        let arg: &[u32] = indices.storage();
        let mut dx = vec![0f32; planes * h * w];
        if oh * ow > 0 {
            dx.par_chunks_mut(h * w * PLANES_PER_TASK)
                .enumerate()
                .for_each(|(t, dx)| {
                    for (q, dx) in dx.chunks_mut(h * w).enumerate() {
                        let p = t * PLANES_PER_TASK + q;
                        let g = &grad[p * oh * ow..(p + 1) * oh * ow];
                        let a = &arg[p * oh * ow..(p + 1) * oh * ow];
                        // Overlapping windows can share an arg-max: add.
                        for (&at, &gv) in a.iter().zip(g) {
                            dx[at as usize] += gv;
                        }
                    }
                });
        }
        FlexTensor::from_data(TensorData::new(dx, shape))
    }
}

impl<B: Backend + MaxPool2dOps, C: CheckpointStrategy> MaxPool2dOps for Autodiff<B, C> {
    fn max_pool2d_window(x: FloatTensor<Self>, window: PoolWindow) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct MaxPool2dWindowBackward;

        impl<B: Backend + MaxPool2dOps> Backward<B, 1> for MaxPool2dWindowBackward {
            // The input (for its shape), the window, and the arg-max of every window.
            type State = (FloatTensor<B>, PoolWindow, IntTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let (x, window, indices) = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::max_pool2d_window_backward(x, window, grad, indices)
                });
            }
        }

        let guard = x.node();
        let x = x.into_primitive();
        match MaxPool2dWindowBackward
            .prepare::<C>([guard])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, indices) = B::max_pool2d_window_with_indices(x.clone(), window);
                prep.finish((x, window, indices), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::max_pool2d_window(x, window)),
        }
    }
}

/// Max pooling with `window`, differentiable: `[b, c, h, w] -> [b, c, oh, ow]`.
///
/// On Flex it runs the kernels of this module; on other devices, or when
/// [`super::reference_ops`] is on, burn's `max_pool2d` with the same window.
pub fn max_pool2d_window(x: Tensor<4>, window: PoolWindow) -> Tensor<4> {
    if is_flex(&x.device()) && !super::reference_ops() {
        Tensor::from_dispatch(<Dispatch as MaxPool2dOps>::max_pool2d_window(
            x.into_dispatch(),
            window,
        ))
    } else {
        let (k, s, p, ceil) = window.options();
        burn::tensor::module::max_pool2d(
            x,
            burn::tensor::ops::MaxPoolOptions::new(k)
                .with_stride(s)
                .with_padding(p)
                .with_ceil_mode(ceil),
        )
    }
}

/// Runs burn's [`MaxPool2d`](burn::nn::pool::MaxPool2d) layer `layer` on `x` through this
/// module's kernels when it fits them (no dilation, symmetric padding): the 2x2/2 window
/// through [`max_pool2x2`], others through [`max_pool2d_window`]; through the layer's own
/// forward otherwise.
pub fn max_pool2d_layer(layer: &burn::nn::pool::MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let padding = super::symmetric_padding(&layer.padding);
    let Some(padding) = padding.filter(|_| layer.dilation == [1, 1]) else {
        return layer.forward(x);
    };
    let window = PoolWindow {
        kernel: layer.kernel_size,
        stride: layer.stride,
        padding,
        rounding: if layer.ceil_mode {
            PoolRounding::Ceil
        } else {
            PoolRounding::Floor
        },
    };
    let two_by_two = PoolWindow {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        rounding: PoolRounding::Floor,
    };
    if window == two_by_two {
        max_pool2x2(x)
    } else {
        max_pool2d_window(x, window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
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

    /// `(input shape, kernel, stride, padding, ceil mode)`: ResNet's 3x3/2 pad 1 (even and odd
    /// sides) and its 1x1/2 subsampling, AlexNet's 3x3/2, GoogLeNet's ceil-mode pools, a
    /// stride-1 window, unequal sides and strides, a 2x2/2 window in ceil mode on odd sizes,
    /// and inputs smaller than the window (in ceil mode one clipped window, burn's rule).
    type Window = ([usize; 4], [usize; 2], [usize; 2], [usize; 2], bool);
    const WINDOWS: &[Window] = &[
        ([2, 3, 16, 16], [3, 3], [2, 2], [1, 1], false),
        ([2, 3, 17, 15], [3, 3], [2, 2], [1, 1], false),
        ([2, 3, 9, 9], [1, 1], [2, 2], [0, 0], false),
        ([2, 2, 13, 13], [3, 3], [2, 2], [0, 0], false),
        ([2, 2, 14, 15], [3, 3], [2, 2], [0, 0], true),
        ([1, 2, 7, 7], [3, 3], [1, 1], [1, 1], true),
        ([2, 2, 10, 11], [2, 3], [1, 2], [1, 1], false),
        ([2, 2, 7, 9], [2, 2], [2, 2], [0, 0], true),
        ([1, 2, 23, 31], [5, 4], [3, 3], [2, 1], true),
        ([1, 2, 1, 1], [3, 3], [2, 2], [0, 0], true),
        ([1, 2, 2, 2], [3, 3], [2, 2], [0, 0], true),
    ];

    /// burn's layer for one of [`WINDOWS`].
    fn pool_layer(k: [usize; 2], s: [usize; 2], p: [usize; 2], ceil: bool) -> MaxPool2d {
        MaxPool2dConfig::new(k)
            .with_strides(s)
            .with_padding(burn::nn::PaddingConfig2d::Explicit(p[0], p[1], p[0], p[1]))
            .with_ceil_mode(ceil)
            .init()
    }

    #[test]
    fn windows_match_burns_forward_and_backward() {
        let device = Device::flex().autodiff();
        for &(shape, k, s, p, ceil) in WINDOWS {
            let layer = pool_layer(k, s, p, ceil);
            let x = Tensor::<4>::random(shape, Distribution::Default, &device).require_grad();
            let fast = max_pool2d_layer(&layer, x.clone());
            let slow = layer.forward(x.clone());
            assert_eq!(fast.dims(), slow.dims(), "{shape:?} {k:?}/{s:?}");
            assert_eq!(
                max_abs_diff(fast.clone(), slow.clone()),
                0.0,
                "{shape:?} {k:?}/{s:?}"
            );
            let r = Tensor::<4>::random(slow.dims(), Distribution::Default, &device);
            let g_fast = x.grad(&(fast * r.clone()).sum().backward()).unwrap();
            let g_slow = x.grad(&(slow * r).sum().backward()).unwrap();
            let d = (g_fast - g_slow).abs().max().into_scalar::<f32>();
            assert!(
                d < 1e-6,
                "gradient differs by {d} for {shape:?} {k:?}/{s:?}"
            );
        }
    }

    /// Inference (no autodiff: the values-only kernel) against burn's layer on the same
    /// windows, with NaNs, infinities and equal values in the input.
    #[test]
    fn windows_match_burns_forward_without_autodiff() {
        let device = Device::flex();
        for &(shape, k, s, p, ceil) in WINDOWS {
            let layer = pool_layer(k, s, p, ceil);
            let n: usize = shape.iter().product();
            // Rounded values (many ties), a NaN and infinities.
            let mut v: Vec<f32> = (0..n)
                .map(|i| ((i * 7919 % 23) as f32 - 11.0) / 4.0)
                .collect();
            v[n / 3] = f32::NAN;
            v[n / 2] = f32::INFINITY;
            v[n - 1] = f32::NEG_INFINITY;
            let x = Tensor::<4>::from_data(TensorData::new(v, shape), &device);
            let fast = max_pool2d_layer(&layer, x.clone()).into_data();
            let slow = layer.forward(x).into_data();
            assert_eq!(fast.shape(), slow.shape(), "{shape:?} {k:?}/{s:?}");
            let (a, b) = (
                fast.as_slice::<f32>().unwrap(),
                slow.as_slice::<f32>().unwrap(),
            );
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    x == y || (x.is_nan() && y.is_nan()),
                    "{shape:?} {k:?}/{s:?} ceil {ceil}: output {i} is {x}, burn's {y}"
                );
            }
        }
    }

    #[test]
    fn overlapping_windows_add_their_gradients() {
        // A 3x3/1 window over a plane whose maximum is the centre: every one of the 9 padded
        // windows picks it, so its gradient is 9 and every other cell's 0.
        let device = Device::flex().autodiff();
        let mut v = vec![0f32; 9];
        v[4] = 1.0;
        let x = Tensor::<4>::from_data(TensorData::new(v, [1, 1, 3, 3]), &device).require_grad();
        let window = PoolWindow {
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            rounding: PoolRounding::Floor,
        };
        let y = max_pool2d_window(x.clone(), window);
        assert_eq!(y.dims(), [1, 1, 3, 3]);
        let g = x.grad(&y.sum().backward()).unwrap();
        let g = g.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(g, vec![0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
