//! 2-D convolution (any stride, no dilation, one group: LeNet-5's, ResNet's, VGG's, AlexNet's,
//! GoogLeNet's), forward and backward, for the Flex CPU backend.
//!
//! Why: in a LeNet-5 training step on burn-flex, convolution backward took ~41% of the time and
//! conv1's forward (one input channel) 15% (profile in BENCHMARKS.md). burn-flex cuts these
//! small convolutions into many tiny parallel tasks and converts layouts on the way. Here each
//! parallel task takes a whole slice of the batch and, image by image, lowers the convolution to
//! one matrix product (im2col), so every task is a handful of mid-sized GEMMs.
//!
//! With `X` the im2col matrix of one image (`[C·KH·KW, OH·OW]`: row `(c, ky, kx)`, column
//! `(oy, ox)` holds `x[c, oy + ky - p, ox + kx - p]`, zero outside the image) and `W` the weights
//! as `[O, C·KH·KW]`:
//!
//! - forward: `Y = W·X + b` (`[O, OH·OW]`),
//! - `∂L/∂W = Σ_images ∂L/∂Y · Xᵀ`, `∂L/∂b = Σ_images Σ_pixels ∂L/∂Y`,
//! - `∂L/∂x`: the "full" convolution of `∂L/∂Y` with the weights flipped in space and with
//!   input and output channels swapped, i.e. the forward again (equal to `Wᵀ · ∂L/∂Y` scattered
//!   back by col2im, the fallback for paddings above `KH - 1`).
//!
//! Which products run where is chosen per convolution, by shape (`Geometry::plan`; forced
//! with [`super::set_conv_path`]), because no one lowering wins everywhere (measured with
//! `bench/conv_paths.sh`, forward + backward, AMD EPYC Zen 4, `bench/results/conv_paths-*.json`),
//! in this order:
//!
//! - a convolution whose output is one pixel and whose kernel covers the unpadded image
//!   (LeNet-5's conv3, 16x5x5 -> 120) is a fully connected layer: three products over the
//!   whole batch (0.4 ms at batch 64, where the packed path took 10.7 ms: one-column products
//!   per image, and an input gradient 25 times larger than needed, see below);
//! - on an AVX-512 CPU, the shifted planes (`ops/shifted.rs`: `min(stride, KH)·KW` shifted
//!   copies of the image instead of im2col's `KH·KW`, read in place by the packed kernel's
//!   12x32 tile; no panels) for every convolution with at least 16 output pixels, except
//!   Winograd's below when the batch has images for every thread
//!   (`bench/results/conv_paths-20261129-041254.json`: ResNet-20 at batch 128, forward and
//!   backward per convolution, 9.7 against 15.7 ms packed on its first stage and 9.2 against
//!   11.1 ms Winograd on its last; every ResNet-18 layer at batch 1, the 7x7/2 stem at batch 16
//!   (49.5 against 53.1 ms on the `gemm` crate) and LeNet-5's conv1 and conv2 faster than on
//!   every other lowering); on an AVX2 CPU (6x16 tile) the shifted planes for every
//!   convolution with fewer than 64 channels in and out (ResNet-20's first two stages,
//!   LeNet-5's conv1 and conv2), where they won on an AVX2-only AMD EPYC, and with 64 at
//!   most on fewer images than threads or with kernels of 25 taps or more (ResNet-18's layer1
//!   at batch 1, its 7x7/2 stem); Winograd or the `gemm` crate otherwise (see
//!   `SHIFTED_MAX_CHANNELS_AVX2`);
//! - 3x3 stride-1 convolutions with 64 channels or more in and out, and at least 64 2x2 output
//!   tiles in the batch: Winograd's F(2x2, 3x3) (`ops/winograd.rs`), forward and input
//!   gradient (2.25x fewer multiplies; ResNet-18's layer1 at batch 16: 22 against 34 ms on the
//!   packed kernel); with 128 channels or more (in or out) it beats the shifted planes on a
//!   batch (by 8-21% at batch 16), below that they do. With 32 channels or 16 tiles its
//!   transforms cost more than it saves;
//! - on an AVX-512 CPU, the packed micro-kernel ([`super::packed_gemm`]: im2col writes its
//!   rows straight into the panels; the 12x32 tile runs at about twice the `gemm` crate's
//!   speed on ResNet's shapes, the crate having AVX-512 only on nightly Rust) for products with
//!   at least 12 rows and depth 64 (its AVX2 6x16 tile lost to the crate: see
//!   `Geometry::packed_wins`);
//! - otherwise im2col and the `gemm` crate, image by image (LeNet-5's conv1 and conv2 on AVX2:
//!   6 and 16 output channels, depth 25 and 150, fill too little of the 12-row tile; conv2 took
//!   2.3 ms this way, 4.2 ms packed). 7x7 maps (ResNet's last stage) too: 49 columns fill the
//!   32-wide tiles by 77%.
//!
//! The input gradient of a stride-1 convolution is the convolution of `∂L/∂y` with the flipped
//! weights on the same choice when that costs no more multiplies than `Wᵀ·∂L/∂y` then col2im;
//! strided convolutions always take col2im (im2col lowerings gather with a stride). The weight
//! gradient of a stride-1 convolution with 3-wide kernels is the shifted planes' (outer
//! products, no im2col), whichever lowering the forward takes (on AVX2 from 16 input channels:
//! see `SHIFTED_DW_MIN_CHANNELS_AVX2`).
//!
//! Forcing the packed path for every convolution, as all of them ran from commit 744a392 on,
//! makes a LeNet-5 training step 3-4x slower (0.64x-0.86x of burn's ops against 2.3x-2.6x by
//! shape, `bench/results/speed_gate-*.json`); the speed gate (`tests/speed_gate`) checks that
//! this stays caught. The weight gradient of other convolutions stays on the `gemm` crate:
//! packing `Xᵀ` for the packed kernel is a strided scatter and made the ResNet-20 step 10%
//! slower.

use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, TensorMetadata};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, Tensor, TensorData};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::gemm::{matmul, Mat};
use super::packed_gemm::{gemm_packed, PackedB};
use super::shifted::{self, ShiftedConv};
use super::winograd::{self, Conv3x3};
use super::{is_flex, ConvPath};

fn options(stride: [usize; 2], padding: [usize; 2]) -> ConvOptions<2> {
    ConvOptions::new(stride, padding, [1, 1], 1)
}

/// The convolution as a backend extension. The default bodies use the backend's own conv ops;
/// Flex overrides them with the kernels below, `Autodiff` records its own backward.
#[backend_extension(Flex, Autodiff)]
pub trait Conv2dOps: Backend {
    /// `x [N, C, H, W]`, `weight [O, C, KH, KW]`, `bias [O]` -> `[N, O, OH, OW]` with
    /// `OH = (H + 2·padding - KH) / stride + 1` (and `OW` alike).
    fn conv2d_im2col(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, Some(bias), options(stride, padding))
    }

    /// Gradients `(∂L/∂x, ∂L/∂weight, ∂L/∂bias)` for the output gradient `grad`. With
    /// `need_x_grad` false (the input is data), `∂L/∂x` is not computed and a one-element tensor
    /// stands in for it.
    fn conv2d_im2col_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        need_x_grad: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        backend_backward::<Self>(x, weight, grad, stride, padding, need_x_grad)
    }
}

/// The backward through the backend's own conv ops: the reference, and the fallback for what
/// the Flex kernels do not cover (other dtypes).
fn backend_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    stride: [usize; 2],
    padding: [usize; 2],
    need_x_grad: bool,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let o = weight.shape()[0];
    let options = || options(stride, padding);
    let db = B::float_reshape(
        B::float_sum_dims(grad.clone(), &[0, 2, 3]),
        Shape::from(vec![o]),
    );
    let dw = B::conv2d_weight_backward(x.clone(), weight.clone(), grad.clone(), options());
    let dx = if need_x_grad {
        B::conv2d_x_backward(x, weight, grad, options())
    } else {
        // A one-element stand-in: the caller asked for no input gradient.
        B::float_reshape(B::float_sum_dims(grad, &[0, 1, 2, 3]), Shape::from(vec![1]))
    };
    (dx, dw, db)
}

/// Sizes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    p: [usize; 2],
    /// Stride `[vertical, horizontal]`, each at least 1.
    s: [usize; 2],
}

/// Output positions of a convolution along one axis: `(size + 2·pad - k) / stride + 1`, or 0
/// when the kernel does not fit.
fn out_len(size: usize, k: usize, pad: usize, stride: usize) -> usize {
    (size + 2 * pad)
        .checked_sub(k)
        .map_or(0, |span| span / stride + 1)
}

impl Geometry {
    fn new(x: &Shape, weight: &Shape, p: [usize; 2], s: [usize; 2]) -> Self {
        let (h, w, kh, kw) = (x[2], x[3], weight[2], weight[3]);
        let s = [s[0].max(1), s[1].max(1)];
        Geometry {
            n: x[0],
            c: x[1],
            h,
            w,
            o: weight[0],
            kh,
            kw,
            oh: out_len(h, kh, p[0], s[0]),
            ow: out_len(w, kw, p[1], s[1]),
            p,
            s,
        }
    }
    /// Rows of the im2col matrix.
    fn ckk(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Columns of the im2col matrix.
    fn pixels(&self) -> usize {
        self.oh * self.ow
    }
    /// Images per parallel task: the batch split evenly over rayon's threads.
    fn images_per_task(&self) -> usize {
        self.n.div_ceil(rayon::current_num_threads().max(1)).max(1)
    }

    /// The input row `s·oy + ky - p` that output row `oy` reads through kernel row `ky`, or
    /// `None` where it falls in the zero padding.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (self.s[0] * oy + ky)
            .checked_sub(self.p[0])
            .filter(|&iy| iy < self.h)
    }

    /// The output columns `[lo, hi)` whose input column `s·ox + kx - p` lies inside the image
    /// (the others read the zero padding).
    fn inside_columns(&self, kx: usize) -> (usize, usize) {
        let (s, p) = (self.s[1], self.p[1]);
        // s·ox + kx ≥ p  ⇔  ox ≥ ceil((p - kx) / s)
        let lo = p.saturating_sub(kx).div_ceil(s).min(self.ow);
        // s·ox + kx - p ≤ w - 1  ⇔  ox ≤ (w - 1 + p - kx) / s
        let hi = (self.w + p)
            .checked_sub(kx + 1)
            .map_or(0, |last| last / s + 1)
            .min(self.ow)
            .max(lo);
        (lo, hi)
    }
}

/// `cols[(c, ky, kx), (oy, ox)] = img[c, s·oy + ky - p, s·ox + kx - p]` (0 outside).
fn im2col(img: &[f32], g: &Geometry, cols: &mut [f32]) {
    let px = g.pixels();
    for (r, row) in cols.chunks_mut(px).take(g.ckk()).enumerate() {
        im2col_row(img, g, r, row);
    }
}

/// Row `r = (c, ky, kx)` of the im2col matrix of `img`: `row[(oy, ox)] = img[c, s·oy + ky - p,
/// s·ox + kx - p]` (0 outside).
fn im2col_row(img: &[f32], g: &Geometry, r: usize, row: &mut [f32]) {
    let (oh, ow) = (g.oh, g.ow);
    let (c, ky, kx) = (r / (g.kh * g.kw), (r / g.kw) % g.kh, r % g.kw);
    let plane = &img[c * g.h * g.w..(c + 1) * g.h * g.w];
    let (lo, hi) = g.inside_columns(kx);
    for oy in 0..oh {
        let out_row = &mut row[oy * ow..(oy + 1) * ow];
        let Some(iy) = g.input_row(oy, ky) else {
            out_row.fill(0.0);
            continue;
        };
        let src = &plane[iy * g.w..(iy + 1) * g.w];
        out_row[..lo].fill(0.0);
        out_row[hi..].fill(0.0);
        if lo == hi {
            continue;
        }
        let start = g.s[1] * lo + kx - g.p[1];
        if g.s[1] == 1 {
            out_row[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
        } else {
            let taken = src[start..].iter().step_by(g.s[1]);
            out_row[lo..hi]
                .iter_mut()
                .zip(taken)
                .for_each(|(d, v)| *d = *v);
        }
    }
}

/// The whole im2col matrix of `img` into the packed panels `cols`, row by row through the
/// scratch `row` (`OH·OW` values).
fn im2col_packed(img: &[f32], g: &Geometry, row: &mut [f32], cols: &mut PackedB) {
    for r in 0..g.ckk() {
        im2col_row(img, g, r, row);
        cols.set_row(r, row);
    }
}

/// The adjoint of [`im2col`]: adds `cols` back into the image gradient `img`.
fn col2im(cols: &[f32], g: &Geometry, img: &mut [f32]) {
    let (oh, ow) = (g.oh, g.ow);
    for c in 0..g.c {
        let plane = &mut img[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = ((c * g.kh + ky) * g.kw + kx) * oh * ow;
                let src = &cols[row..row + oh * ow];
                let (lo, hi) = g.inside_columns(kx);
                for oy in 0..oh {
                    let Some(iy) = g.input_row(oy, ky).filter(|_| lo < hi) else {
                        continue;
                    };
                    let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
                    let start = g.s[1] * lo + kx - g.p[1];
                    let src = &src[oy * ow + lo..oy * ow + hi];
                    if g.s[1] == 1 {
                        // Contiguous: a plain zip vectorises (a `step_by(1)` one did not, and
                        // LeNet-5's conv2 backward slowed by a third).
                        for (d, s) in dst[start..start + src.len()].iter_mut().zip(src) {
                            *d += s;
                        }
                    } else {
                        let targets = dst[start..].iter_mut().step_by(g.s[1]);
                        for (d, s) in targets.zip(src) {
                            *d += s;
                        }
                    }
                }
            }
        }
    }
}

/// The weights of the input-gradient convolution: `out[c, o, ky, kx] = w[o, c, KH-1-ky,
/// KW-1-kx]` (`[C, O, KH, KW]`).
fn flip_transpose(w: &[f32], g: &Geometry) -> Vec<f32> {
    let kk = g.kh * g.kw;
    let mut out = vec![0f32; g.c * g.o * kk];
    for o in 0..g.o {
        for c in 0..g.c {
            let src = &w[(o * g.c + c) * kk..(o * g.c + c + 1) * kk];
            let dst = &mut out[(c * g.o + o) * kk..(c * g.o + o + 1) * kk];
            // Reversing the KH·KW values flips both ky and kx.
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    out
}

fn contiguous(t: FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

/// How one convolution is lowered to matrix products (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lowering {
    /// The output is one pixel and the kernel covers the unpadded image: the convolution is a
    /// fully connected layer, one product for the whole batch.
    Dense,
    /// im2col rows written into the panels of the packed micro-kernel, image by image.
    Packed,
    /// im2col into a plain matrix and the `gemm` crate, image by image.
    Gemm,
    /// Winograd's F(2x2, 3x3) for 3x3 stride-1 convolutions ([`super::winograd`]).
    Winograd,
    /// The packed kernel's tile reading its `B` rows in place from shifted copies of the image
    /// ([`super::shifted`]): any stride and kernel, AVX2 or AVX-512; elsewhere
    /// [`Lowering::Packed`].
    Shifted,
}

/// How a convolution's input gradient is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputGradient {
    /// As the convolution of `∂L/∂y` with the flipped weights, lowered this way.
    Flipped(Lowering),
    /// As `Wᵀ·∂L/∂y` then col2im.
    Col2im,
}

/// How a convolution's weight gradient is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeightGradient {
    /// `∂L/∂Y · Xᵀ` image by image, im2col built again, on the `gemm` crate.
    Im2col,
    /// Outer products over shifted copies of the image, no im2col ([`super::shifted`]):
    /// stride 1, 3-wide kernels, AVX2 or AVX-512.
    Shifted,
}

/// The lowering of a convolution's forward, input gradient and weight gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    forward: Lowering,
    dx: InputGradient,
    dw: WeightGradient,
}

impl Geometry {
    /// Whether the convolution is a fully connected layer: one output pixel, no padding.
    fn is_dense(&self) -> bool {
        self.oh == 1 && self.ow == 1 && self.p == [0, 0] && self.kh == self.h && self.kw == self.w
    }

    /// Whether the packed micro-kernel beats the `gemm` crate on this convolution's forward
    /// product `[O, C·KH·KW] x [C·KH·KW, OH·OW]`: it needs rows enough to fill its 12-row
    /// tile, columns enough to fill its 32-wide tiles, and a product deep enough to amortise
    /// writing im2col into panels. Only the AVX-512 12x32 tile does: on an AVX2-only AMD EPYC
    /// (Zen 1) the 6x16 tile lost to the `gemm` crate on every convolution measured where the
    /// choice falls between the two (`bench/results/conv_paths-20261129-082250.json`,
    /// ResNet-18 at batch 1 and 16: 256 channels at 14x14, 4.38 against 3.93 ms at batch 1 and
    /// 63.2 against 57.0 at batch 16; the 64 -> 128 stride-2 conv 31.8 against 31.2 ms; and
    /// `conv_paths-20261129-082641.json`, ResNet-20's stride-2 convs in training: 23.2 and 22.0
    /// against 22.4 and 20.3 ms).
    fn packed_wins(&self) -> bool {
        super::isa() == super::Isa::Avx512
            && self.o >= PACKED_MIN_ROWS
            && self.ckk() >= PACKED_MIN_DEPTH
            && self.pixels() >= PACKED_MIN_PIXELS
    }

    /// The geometry of the input gradient as a convolution: `∂L/∂y [N, O, OH, OW]` with the
    /// flipped weights `[C, O, KH, KW]` and padding `KH - 1 - p`, whose output is `[N, C, H, W]`.
    /// Stride 1 only.
    fn flipped(&self) -> Geometry {
        Geometry::new(
            &Shape::from(vec![self.n, self.o, self.oh, self.ow]),
            &Shape::from(vec![self.c, self.o, self.kh, self.kw]),
            [self.kh - 1 - self.p[0], self.kw - 1 - self.p[1]],
            [1, 1],
        )
    }

    /// Whether Winograd's F(2x2, 3x3) computes this convolution: 3x3, stride 1.
    fn winograd_fits(&self) -> bool {
        self.kh == 3 && self.kw == 3 && self.s == [1, 1] && self.p[0] <= 2 && self.p[1] <= 2
    }

    /// Whether F(2x2, 3x3) beats the im2col lowerings: channels enough on both sides for its
    /// 16 products to be worth their transforms, and tiles enough to fill the kernel's panels
    /// (see [`WINOGRAD_MIN_CHANNELS`]).
    fn winograd_wins(&self) -> bool {
        let tiles = self.n * self.oh.div_ceil(2) * self.ow.div_ceil(2);
        self.winograd_fits()
            && self.c >= WINOGRAD_MIN_CHANNELS
            && self.o >= WINOGRAD_MIN_CHANNELS
            && tiles >= WINOGRAD_MIN_TILES
    }

    /// The lowering for this convolution: forced by [`super::set_conv_path`], or by shape.
    fn plan(&self) -> Plan {
        // The flipped convolution needs stride 1 and padding KH-1-p ≥ 0.
        let flip_fits = self.s == [1, 1] && self.p[0] < self.kh && self.p[1] < self.kw;
        match super::conv_path() {
            ConvPath::Packed => Plan {
                forward: Lowering::Packed,
                dx: if flip_fits {
                    InputGradient::Flipped(Lowering::Packed)
                } else {
                    InputGradient::Col2im
                },
                dw: WeightGradient::Im2col,
            },
            ConvPath::Gemm => Plan {
                forward: Lowering::Gemm,
                dx: InputGradient::Col2im,
                dw: WeightGradient::Im2col,
            },
            ConvPath::Winograd if self.winograd_fits() => Plan {
                forward: Lowering::Winograd,
                dx: if flip_fits {
                    InputGradient::Flipped(Lowering::Winograd)
                } else {
                    InputGradient::Col2im
                },
                dw: self.auto_weight_gradient(),
            },
            ConvPath::Shifted if self.shifted_fits() => Plan {
                forward: Lowering::Shifted,
                dx: if flip_fits {
                    InputGradient::Flipped(Lowering::Shifted)
                } else {
                    InputGradient::Col2im
                },
                dw: self.auto_weight_gradient(),
            },
            ConvPath::Auto | ConvPath::Winograd | ConvPath::Shifted => self.auto_plan(flip_fits),
        }
    }

    /// The choice by shape (see the module docs).
    fn auto_plan(&self, flip_fits: bool) -> Plan {
        if self.is_dense() {
            return Plan {
                forward: Lowering::Dense,
                dx: InputGradient::Col2im,
                dw: WeightGradient::Im2col,
            };
        }
        let forward = if self.shifted_wins() {
            Lowering::Shifted
        } else if self.winograd_wins() {
            Lowering::Winograd
        } else if self.packed_wins() {
            Lowering::Packed
        } else {
            Lowering::Gemm
        };
        let flipped = self.flipped();
        // The flipped convolution multiplies C·(O·KH·KW)·(H·W) times, the col2im way
        // C·KH·KW·O·(OH·OW): the same for "same" padding, but H·W/(OH·OW) times more for a
        // "valid" convolution on a small image (LeNet's conv2: 2x, conv3: 25x).
        let flipped_costs_no_more = 4 * self.h * self.w <= 5 * self.pixels();
        let dx = if !flip_fits {
            InputGradient::Col2im
        } else if flipped_costs_no_more && flipped.shifted_wins() {
            InputGradient::Flipped(Lowering::Shifted)
        } else if flipped.winograd_wins() {
            InputGradient::Flipped(Lowering::Winograd)
        } else if flipped_costs_no_more && flipped.packed_wins() {
            InputGradient::Flipped(Lowering::Packed)
        } else {
            InputGradient::Col2im
        };
        Plan {
            forward,
            dx,
            dw: self.auto_weight_gradient(),
        }
    }

    /// Whether the shifted-planes forward computes this convolution: an AVX2 or AVX-512 CPU
    /// (its tiles are written for those); any stride and kernel.
    fn shifted_fits(&self) -> bool {
        super::isa() >= super::Isa::Avx2
    }

    /// Whether the shifted planes beat Winograd's F(2x2, 3x3) and the im2col lowerings (see
    /// [`SHIFTED_MAX_CHANNELS`]).
    fn shifted_wins(&self) -> bool {
        let threads = rayon::current_num_threads();
        if !self.shifted_fits() || self.pixels() < SHIFTED_MIN_PIXELS {
            return false;
        }
        if super::isa() == super::Isa::Avx512 {
            self.n < threads
                || !self.winograd_fits()
                || (self.c < SHIFTED_MAX_CHANNELS && self.o < SHIFTED_MAX_CHANNELS)
        } else {
            let (c, o) = (self.c, self.o);
            (c < SHIFTED_MAX_CHANNELS_AVX2 && o < SHIFTED_MAX_CHANNELS_AVX2)
                || (c <= SHIFTED_MAX_CHANNELS_AVX2
                    && o <= SHIFTED_MAX_CHANNELS_AVX2
                    && (self.n < threads || self.kh * self.kw >= SHIFTED_LARGE_KERNEL_AVX2))
        }
    }

    /// The weight gradient without im2col where it applies: stride 1, 3-wide kernels, an
    /// AVX-512 CPU, or an AVX2 one from [`SHIFTED_DW_MIN_CHANNELS_AVX2`] input channels.
    fn auto_weight_gradient(&self) -> WeightGradient {
        let deep_enough = match super::isa() {
            super::Isa::Avx512 => true,
            super::Isa::Avx2 => self.c >= SHIFTED_DW_MIN_CHANNELS_AVX2,
            super::Isa::Portable => false,
        };
        if self.s == [1, 1] && self.kw == shifted::KW && self.pixels() > 0 && deep_enough {
            WeightGradient::Shifted
        } else {
            WeightGradient::Im2col
        }
    }

    /// This convolution as [`shifted`] takes it.
    fn shifted(&self) -> ShiftedConv {
        ShiftedConv {
            n: self.n,
            c: self.c,
            h: self.h,
            w: self.w,
            o: self.o,
            kh: self.kh,
            kw: self.kw,
            p: self.p,
            s: self.s,
        }
    }
}

/// Fewest input and output channels for Winograd's F(2x2, 3x3): below them its transforms
/// cost more than the multiplies it saves.
const WINOGRAD_MIN_CHANNELS: usize = 64;
/// Fewest 2x2 output tiles in the batch for F(2x2, 3x3).
const WINOGRAD_MIN_TILES: usize = 64;

/// Channels (in and out) from which Winograd's F(2x2, 3x3) beats the shifted planes on a batch
/// of images: its transforms cost `C + O` per tile against `C·O` multiply-adds saved, so it
/// gains with channels. Measured (`bench/conv_paths.sh`, forward only, batch 16,
/// `conv_paths-20261129-034023.json` and `-041254.json`): 64 channels at 56x56 a tie, 128 at
/// 28x28 and 256 at 14x14 Winograd by 16-21% and 8-21%; ResNet-20's 64 channels at 7x7,
/// forward and backward at batch 128, the shifted planes by 17-24%. With fewer
/// images than threads (inference on one image) the shifted planes won on every ResNet-18
/// layer, Winograd's and the `gemm` crate's included.
const SHIFTED_MAX_CHANNELS: usize = 128;
/// Channels (in or out) from which the shifted planes' AVX2 forward tile (6x16) loses to the
/// other lowerings, on a batch and on one image alike. Measured on an AVX2-only AMD EPYC (Zen
/// 1, `bench/results/conv_paths-20261129-060056.json`, forward and backward): ResNet-20's 16
/// and 32 channels at batch 128 took 35 and 28 ms against 47-51 and 29-37 ms on the other
/// lowerings; at 64 channels Winograd won (33 against 38 ms), and ResNet-18's 128-512-channel
/// layers were 1.06-2.3x slower on the shifted planes (batch 1 and 16). At 64 channels exactly
/// they win with fewer images than threads, and for large kernels (see
/// [`SHIFTED_LARGE_KERNEL_AVX2`]): ResNet-18's layer1 at batch 1, 3.77 against 4.80 ms on
/// Winograd (`conv_paths-20261129-082250.json`, 7 rounds; two more runs of the same binary:
/// 3.84 and 3.71 against 4.90 and 4.77). ResNet-20's 32 -> 64-channel stride-2 conv at batch
/// 128 (training) stays on the `gemm` crate: 22.05 against 20.30 ms
/// (`conv_paths-20261129-082641.json`).
const SHIFTED_MAX_CHANNELS_AVX2: usize = 64;
/// Taps `KH·KW` from which a convolution with at most 64 channels in and out takes the shifted
/// planes on AVX2 on a batch too: im2col copies every pixel `KH·KW` times, the planes
/// `min(stride, KH)·KW` times. ResNet-18's 7x7/2 stem (3 -> 64), `conv_paths-20261129-082250.json`:
/// 86.6 against 101.2 ms on the packed kernel and 99.0 on the `gemm` crate at batch 16, 6.05
/// against 8.57 and 7.71 ms at batch 1.
const SHIFTED_LARGE_KERNEL_AVX2: usize = 25;
/// Fewest input channels for the shifted planes' weight gradient on AVX2: with ResNet-20's stem
/// (3 channels, 27 taps) forward and backward took 9.2 ms against 7.8 ms with im2col and the
/// `gemm` crate; from 16 channels the shifted planes won by 9-12% (39 against 43 ms at 16, 35
/// against 39 at 32, 40 against 45 at 64; run record `docs/avx2-weight-gradient/`).
const SHIFTED_DW_MIN_CHANNELS_AVX2: usize = 16;
/// Fewest output pixels for the shifted planes (their tile is 32 pixels wide).
const SHIFTED_MIN_PIXELS: usize = 16;

/// Fewest output channels (rows of the product) for the packed kernel (see
/// [`Geometry::packed_wins`]).
const PACKED_MIN_ROWS: usize = 12;
/// Smallest depth `C·KH·KW` of the product for the packed kernel.
const PACKED_MIN_DEPTH: usize = 64;
/// Fewest pixels `OH·OW` (columns of the product) for the packed kernel: its tiles are 32
/// columns wide, and at 7x7 (49 columns, two tiles for 64) the `gemm` crate won: ResNet-18's
/// last stage at batch 16, 33 against 48 ms; ResNet-20's third stage (forward and backward)
/// 18 against 23 ms (`bench/results/conv_paths-20261128-044401.json`).
const PACKED_MIN_PIXELS: usize = 100;

/// The forward on f32 slices, lowered as `lowering` says. The image-by-image lowerings let
/// each parallel task build its images' im2col matrices, one at a time, in one scratch matrix
/// that stays in cache. (Keeping all of them for the backward was tried: at ResNet-20's first
/// stage they are 58 MB per layer, and writing, zeroing and reading them back cost more than
/// building them again: a training step went from ~790 to ~690 ms.)
fn forward_f32(xs: &[f32], ws: &[f32], bs: &[f32], g: &Geometry, lowering: Lowering) -> Vec<f32> {
    let (ckk, px, img_len) = (g.ckk(), g.pixels(), g.c * g.h * g.w);
    if px == 0 {
        return Vec::new();
    }
    let has_bias = bs.iter().any(|&b| b != 0.0);
    let add_bias = |y: &mut [f32], first_channel: usize| {
        for (o, row) in y.chunks_mut(px).enumerate() {
            row.iter_mut().for_each(|v| *v += bs[first_channel + o]);
        }
    };
    if lowering == Lowering::Winograd {
        let shape = Conv3x3 {
            n: g.n,
            c: g.c,
            h: g.h,
            w: g.w,
            o: g.o,
            p: g.p,
        };
        return winograd::forward(xs, ws, bs, &shape);
    }
    if lowering == Lowering::Shifted {
        if let Some(out) = shifted::forward(xs, ws, bs, &g.shifted()) {
            return out;
        }
    }
    // Allocated after the lowerings that return their own output (zeroing it is a pass).
    let mut out = vec![0f32; g.n * g.o * px];
    if lowering == Lowering::Dense {
        // y [N, O] = x [N, C·H·W] · Wᵀ (+ b)
        matmul(
            g.n,
            g.o,
            ckk,
            &mut out,
            Mat::rows(xs, ckk),
            Mat::transposed(ws, ckk),
            false,
            true,
        );
        if has_bias {
            for row in out.chunks_mut(g.o) {
                row.iter_mut().zip(bs).for_each(|(v, b)| *v += b);
            }
        }
        return out;
    }
    let threads = rayon::current_num_threads();
    if g.n < threads && g.o >= 2 * threads {
        // Fewer images than threads (inference on one image): the threads share each image's
        // product instead, each taking a block of output channels (rows of W and of y).
        let mut cols = Cols::new(lowering, g);
        let rows_per = g.o.div_ceil(threads);
        for (img, y) in out.chunks_mut(g.o * px).enumerate() {
            cols.fill_shared(&xs[img * img_len..(img + 1) * img_len], g);
            y.par_chunks_mut(rows_per * px)
                .enumerate()
                .for_each(|(b, y)| {
                    let o0 = b * rows_per;
                    cols.product(&ws[o0 * ckk..], ckk, y, px);
                    if has_bias {
                        add_bias(y, o0);
                    }
                });
        }
        return out;
    }
    let per_task = g.images_per_task();
    out.par_chunks_mut(per_task * g.o * px)
        .enumerate()
        .for_each(|(t, out)| {
            let mut cols = Cols::new(lowering, g);
            for (i, y) in out.chunks_mut(g.o * px).enumerate() {
                let img = t * per_task + i;
                cols.fill(&xs[img * img_len..(img + 1) * img_len], g);
                // y [O, OH·OW] = W [O, C·KH·KW] · cols [C·KH·KW, OH·OW] (+ b below)
                cols.product(ws, ckk, y, px);
                // ResNet's and VGG-BN's convolutions have no bias (a zero one): no pass.
                if has_bias {
                    add_bias(y, 0);
                }
            }
        });
    out
}

/// One image's im2col matrix in the form its lowering multiplies: written row by row straight
/// into the packed panels (no separate packing pass), or a plain row-major matrix for the
/// `gemm` crate.
enum Cols {
    /// The panels, and one row's scratch.
    Packed(PackedB, Vec<f32>),
    /// `[C·KH·KW, OH·OW]`.
    Plain(Vec<f32>),
}

impl Cols {
    fn new(lowering: Lowering, g: &Geometry) -> Self {
        let (ckk, px) = (g.ckk(), g.pixels());
        match lowering {
            Lowering::Packed | Lowering::Shifted => {
                Cols::Packed(PackedB::zeros(ckk, px), vec![0f32; px])
            }
            _ => Cols::Plain(vec![0f32; ckk * px]),
        }
    }

    /// The im2col matrix of `img`.
    fn fill(&mut self, img: &[f32], g: &Geometry) {
        match self {
            Cols::Packed(cols, row) => im2col_packed(img, g, row, cols),
            Cols::Plain(cols) => im2col(img, g, cols),
        }
    }

    /// [`Cols::fill`] with the threads sharing the rows of a plain matrix (for one image, whose
    /// product the threads share too: a serial im2col left one thread idle, 2.5% of ResNet-18's
    /// inference at batch 1 on the `gemm` crate's layers).
    fn fill_shared(&mut self, img: &[f32], g: &Geometry) {
        match self {
            Cols::Plain(cols) => {
                let px = g.pixels().max(1);
                // Tasks of about 16k values: ResNet-18's 7x7 maps give rows of 49.
                let rows_per_task = (16_384 / px).max(1);
                cols[..g.ckk() * g.pixels()]
                    .par_chunks_mut(rows_per_task * px)
                    .enumerate()
                    .for_each(|(t, rows)| {
                        for (i, row) in rows.chunks_mut(px).enumerate() {
                            im2col_row(img, g, t * rows_per_task + i, row);
                        }
                    });
            }
            Cols::Packed(..) => self.fill(img, g),
        }
    }

    /// `y [rows, px] = w [rows, C·KH·KW] (row stride ldw) · cols`, `px = OH·OW`.
    fn product(&self, w: &[f32], ldw: usize, y: &mut [f32], px: usize) {
        let rows = y.len() / px;
        match self {
            Cols::Packed(cols, _) => gemm_packed(rows, w, ldw, cols, y, px, false),
            Cols::Plain(cols) => {
                matmul(
                    rows,
                    px,
                    ldw,
                    y,
                    Mat::rows(w, ldw),
                    Mat::rows(cols, px),
                    false,
                    false,
                );
            }
        }
    }
}

/// The backward of a [`Lowering::Dense`] convolution, three products over the whole batch:
/// `∂L/∂W = ∂L/∂yᵀ · x`, `∂L/∂x = ∂L/∂y · W`, `∂L/∂b` the column sums of `∂L/∂y [N, O]`.
fn dense_backward(
    xs: &[f32],
    ws: &[f32],
    gs: &[f32],
    g: &Geometry,
    need_x_grad: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let ckk = g.ckk();
    let mut dw = vec![0f32; g.o * ckk];
    matmul(
        g.o,
        ckk,
        g.n,
        &mut dw,
        Mat::transposed(gs, g.o),
        Mat::rows(xs, ckk),
        false,
        true,
    );
    let dx = need_x_grad.then(|| {
        let mut dx = vec![0f32; g.n * ckk];
        matmul(
            g.n,
            ckk,
            g.o,
            &mut dx,
            Mat::rows(gs, g.o),
            Mat::rows(ws, ckk),
            false,
            true,
        );
        dx
    });
    let mut db = vec![0f32; g.o];
    for row in gs.chunks(g.o) {
        db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
    }
    (dx, dw, db)
}

impl Conv2dOps for Flex {
    fn conv2d_im2col(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || bias.dtype() != DType::F32 {
            return Self::conv2d(x, weight, Some(bias), options(stride, padding));
        }
        let g = Geometry::new(&x.shape(), &weight.shape(), padding, stride);
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let lowering = g.plan().forward;
        let out = forward_f32(x.storage(), weight.storage(), bias.storage(), &g, lowering);
        FlexTensor::from_data(TensorData::new(out, [g.n, g.o, g.oh, g.ow]))
    }

    fn conv2d_im2col_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        need_x_grad: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let x_shape = x.shape();
        let w_shape = weight.shape();
        let g = Geometry::new(&x_shape, &w_shape, padding, stride);
        let (ckk, px, img_len) = (g.ckk(), g.pixels(), g.c * g.h * g.w);
        if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || grad.dtype() != DType::F32 {
            return backend_backward::<Self>(x, weight, grad, stride, padding, need_x_grad);
        }
        let (x, weight, grad) = (contiguous(x), contiguous(weight), contiguous(grad));
        let (xs, ws, gs): (&[f32], &[f32], &[f32]) =
            (x.storage(), weight.storage(), grad.storage());
        let plan = g.plan();
        let wrap =
            |data: Vec<f32>, shape: Shape| FlexTensor::from_data(TensorData::new(data, shape));
        let no_dx = || FlexTensor::from_data(TensorData::new(vec![0f32], [1]));
        if plan.forward == Lowering::Dense {
            let (dx, dw, db) = dense_backward(xs, ws, gs, &g, need_x_grad);
            return (
                dx.map_or_else(no_dx, |dx| wrap(dx, x_shape)),
                wrap(dw, w_shape),
                wrap(db, Shape::from(vec![g.o])),
            );
        }
        let per_task = g.images_per_task();
        let tasks = g.n.div_ceil(per_task);
        // ∂L/∂x of a stride-1 convolution is the "full" convolution of ∂L/∂y with the weights
        // flipped in space and transposed in channels (padding KH-1-p): the forward kernel
        // again, one GEMM of depth O·KH·KW per image, where Wᵀ·∂L/∂y then col2im is a GEMM of
        // depth O and a scatter. The plan says which (see `Geometry::plan`); strided
        // convolutions always take col2im.
        let dx_conv = match plan.dx {
            InputGradient::Flipped(lowering) if need_x_grad => {
                let flipped = flip_transpose(ws, &g); // [C, O, KH, KW]
                let gt = g.flipped();
                debug_assert_eq!((gt.oh, gt.ow), (g.h, g.w));
                Some(forward_f32(gs, &flipped, &vec![0f32; g.c], &gt, lowering))
            }
            _ => None,
        };
        let need_x_grad = need_x_grad && dx_conv.is_none();
        if plan.dw == WeightGradient::Shifted && !need_x_grad {
            if let Some((dw, db)) = shifted::weight_grad(xs, gs, &g.shifted()) {
                let dx = dx_conv.map_or_else(no_dx, |dx| wrap(dx, x_shape));
                return (dx, wrap(dw, w_shape), wrap(db, Shape::from(vec![g.o])));
            }
        }
        let mut dx = if need_x_grad {
            vec![0f32; g.n * img_len]
        } else {
            Vec::new()
        };
        let dx_slices: Vec<Option<&mut [f32]>> = if need_x_grad {
            dx.chunks_mut(per_task * img_len).map(Some).collect()
        } else {
            (0..tasks).map(|_| None).collect()
        };
        // Each task: its images' dx, and partial sums of dw and db.
        let partials: Vec<(Vec<f32>, Vec<f32>)> = dx_slices
            .into_par_iter()
            .enumerate()
            .map(|(t, mut dx_task)| {
                let mut dcols = if need_x_grad {
                    vec![0f32; ckk * px]
                } else {
                    Vec::new()
                };
                let mut dw = vec![0f32; g.o * ckk];
                let mut db = vec![0f32; g.o];
                // The forward's im2col matrices, built again image by image (see forward_f32).
                let mut cols = vec![0f32; ckk * px];
                let first = t * per_task;
                let last = (first + per_task).min(g.n);
                for img in first..last {
                    let gy = &gs[img * g.o * px..(img + 1) * g.o * px]; // [O, OH·OW]
                    im2col(&xs[img * img_len..(img + 1) * img_len], &g, &mut cols); // [ckk, px]
                    for (o, row) in gy.chunks(px).enumerate() {
                        db[o] += row.iter().sum::<f32>();
                    }
                    // dW += dY · colsᵀ: [O, px] · [px, ckk]
                    matmul(
                        g.o,
                        ckk,
                        px,
                        &mut dw,
                        Mat::strided(gy, px, 1),
                        Mat::strided(&cols, 1, px),
                        true,
                        false,
                    );
                    if let Some(dx_task) = dx_task.as_deref_mut() {
                        // dcols = Wᵀ · dY: [ckk, O] · [O, px]
                        matmul(
                            ckk,
                            px,
                            g.o,
                            &mut dcols,
                            Mat::strided(ws, 1, ckk),
                            Mat::strided(gy, px, 1),
                            false,
                            false,
                        );
                        let local = img - first;
                        col2im(
                            &dcols,
                            &g,
                            &mut dx_task[local * img_len..(local + 1) * img_len],
                        );
                    }
                }
                (dw, db)
            })
            .collect();
        let mut dw = vec![0f32; g.o * ckk];
        let mut db = vec![0f32; g.o];
        for (pw, pb) in partials {
            dw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
            db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
        }
        let dx = if let Some(dx) = dx_conv {
            wrap(dx, x_shape)
        } else if need_x_grad {
            wrap(dx, x_shape)
        } else {
            no_dx()
        };
        (dx, wrap(dw, w_shape), wrap(db, Shape::from(vec![g.o])))
    }
}

impl<B: Backend + Conv2dOps, C: CheckpointStrategy> Conv2dOps for Autodiff<B, C> {
    fn conv2d_im2col(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Conv2dIm2colBackward;

        impl<B: Backend + Conv2dOps> Backward<B, 3> for Conv2dIm2colBackward {
            // x, weight, stride, padding.
            type State = (FloatTensor<B>, FloatTensor<B>, [usize; 2], [usize; 2]);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_w, node_b] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, weight, stride, padding) = ops.state;
                let (dx, dw, db) =
                    B::conv2d_im2col_backward(x, weight, grad, stride, padding, node_x.is_some());
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = node_w {
                    grads.register::<B>(node.id, dw);
                }
                if let Some(node) = node_b {
                    grads.register::<B>(node.id, db);
                }
            }
        }

        let guards = [x.node(), weight.node(), bias.node()];
        let (x, weight, bias) = (
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        );
        match Conv2dIm2colBackward
            .prepare::<C>(guards)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out = B::conv2d_im2col(x.clone(), weight.clone(), bias, stride, padding);
                prep.finish((x, weight, stride, padding), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::conv2d_im2col(x, weight, bias, stride, padding))
            }
        }
    }
}

/// Dilation-1 2-D convolution with bias, stride `stride` and symmetric `padding`,
/// differentiable: `x [N, C, H, W]`, `weight [O, C, KH, KW]`, `bias [O]` -> `[N, O, OH, OW]`,
/// `OH = (H + 2·padding[0] - KH) / stride[0] + 1` (and `OW` alike).
///
/// On Flex it runs the kernels of this module; on other devices, or when
/// [`super::reference_ops`] is on, burn's `conv2d`.
pub fn conv2d_im2col(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<4> {
    if is_flex(&x.device()) && !super::reference_ops() {
        Tensor::from_dispatch(<Dispatch as Conv2dOps>::conv2d_im2col(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            stride,
            padding,
        ))
    } else {
        burn::tensor::module::conv2d(x, weight, Some(bias), options(stride, padding))
    }
}

/// [`conv2d_im2col`] with stride 1: `[N, C, H, W]` -> `[N, O, H + 2p - KH + 1, W + 2p - KW + 1]`.
pub fn conv2d_s1(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    padding: [usize; 2],
) -> Tensor<4> {
    conv2d_im2col(x, weight, bias, [1, 1], padding)
}

/// Runs burn's [`Conv2d`](burn::nn::conv::Conv2d) layer `layer` on `x` through
/// [`conv2d_im2col`] when the layer fits it (dilation 1, one group, symmetric padding; a
/// missing bias is a zero one), and through the layer's own forward otherwise. The layer keeps
/// its parameters and names, so checkpoints do not change.
pub fn conv2d_layer(layer: &burn::nn::conv::Conv2d, x: Tensor<4>) -> Tensor<4> {
    match super::symmetric_padding(&layer.padding) {
        Some(padding) if layer.dilation == [1, 1] && layer.groups == 1 => {
            let weight = layer.weight.val();
            let bias = match &layer.bias {
                Some(b) => b.val(),
                // Bias-free layers (before a batch norm): a constant zero bias, no gradient.
                None => Tensor::zeros([weight.dims()[0]], &weight.device()),
            };
            conv2d_im2col(x, weight, bias, layer.stride, padding)
        }
        _ => layer.forward(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn max_abs<const D: usize>(t: Tensor<D>) -> f32 {
        t.abs().max().into_scalar::<f32>()
    }

    #[test]
    fn matches_burns_conv_forward_and_backward() {
        let device = Device::flex().autodiff();
        // LeNet's three convolutions, and odd sizes with padding; then strided ones: ResNet's
        // 7x7/2 stem and 3x3/2 (large enough for the packed kernel), its 1x1/2 shortcut, odd
        // sizes where the last window overhangs, a stride larger than the kernel, and unequal
        // strides.
        for (x_shape, w_shape, p, s) in [
            ([4, 1, 28, 28], [6, 1, 5, 5], [2, 2], [1, 1]),
            ([4, 6, 14, 14], [16, 6, 5, 5], [0, 0], [1, 1]),
            ([3, 16, 5, 5], [120, 16, 5, 5], [0, 0], [1, 1]),
            ([5, 3, 7, 9], [4, 3, 3, 2], [1, 1], [1, 1]),
            // One image, more output channels than threads: the row-split path.
            ([1, 3, 8, 8], [10, 3, 3, 3], [1, 1], [1, 1]),
            ([2, 3, 30, 30], [16, 3, 7, 7], [3, 3], [2, 2]),
            ([3, 8, 24, 23], [16, 8, 3, 3], [1, 1], [2, 2]),
            ([3, 8, 9, 9], [16, 8, 1, 1], [0, 0], [2, 2]),
            ([2, 3, 10, 11], [5, 3, 3, 3], [1, 1], [3, 3]),
            ([2, 2, 13, 12], [3, 2, 2, 2], [0, 0], [3, 3]),
            ([2, 3, 9, 10], [4, 3, 3, 5], [1, 2], [2, 3]),
            ([1, 4, 11, 11], [12, 4, 3, 3], [1, 1], [2, 2]),
            // Channels and tiles enough for Winograd's F(2x2, 3x3), forward and input gradient,
            // on odd sides.
            ([4, 64, 10, 9], [64, 64, 3, 3], [1, 1], [1, 1]),
        ] {
            let x = Tensor::<4>::random(x_shape, Distribution::Default, &device).require_grad();
            let w = Tensor::<4>::random(w_shape, Distribution::Default, &device).require_grad();
            let b =
                Tensor::<1>::random([w_shape[0]], Distribution::Default, &device).require_grad();
            let fast = conv2d_im2col(x.clone(), w.clone(), b.clone(), s, p);
            let slow =
                burn::tensor::module::conv2d(x.clone(), w.clone(), Some(b.clone()), options(s, p));
            assert_eq!(fast.dims(), slow.dims(), "{x_shape:?} stride {s:?}");
            let scale = max_abs(slow.clone());
            assert!(
                max_abs(fast.clone() - slow.clone()) <= 1e-5 * scale,
                "forward {x_shape:?} stride {s:?}"
            );
            // A weighted sum makes every output's gradient different.
            let r = Tensor::<4>::random(slow.dims(), Distribution::Default, &device);
            let gf = (fast * r.clone()).sum().backward();
            let gs = (slow * r).sum().backward();
            for (name, a, b) in [
                ("x", x.grad(&gf).unwrap(), x.grad(&gs).unwrap()),
                ("weight", w.grad(&gf).unwrap(), w.grad(&gs).unwrap()),
                (
                    "bias",
                    b.grad(&gf).unwrap().reshape([1, 1, 1, w_shape[0]]),
                    b.grad(&gs).unwrap().reshape([1, 1, 1, w_shape[0]]),
                ),
            ] {
                let scale = max_abs(b.clone()).max(1.0);
                let d = max_abs(a - b);
                assert!(
                    d <= 1e-5 * scale,
                    "d{name} differs by {d} (of {scale}) for {x_shape:?} stride {s:?}"
                );
            }
        }
    }

    /// F(2x2, 3x3) against burn's convolution at every padding it takes, on even and odd
    /// sides, with channel counts that are not multiples of anything.
    #[test]
    fn winograd_matches_burns_conv() {
        let device = Device::flex();
        for (x_shape, o, p) in [
            ([2, 3, 8, 8], 5, [1, 1]),
            ([3, 2, 7, 9], 4, [1, 1]),
            ([2, 3, 7, 6], 5, [0, 0]),
            ([1, 2, 5, 4], 3, [2, 2]),
            ([2, 5, 3, 3], 2, [0, 1]),
        ] {
            let x = Tensor::<4>::random(x_shape, Distribution::Default, &device);
            let w = Tensor::<4>::random([o, x_shape[1], 3, 3], Distribution::Default, &device);
            let b = Tensor::<1>::random([o], Distribution::Default, &device);
            let want = burn::tensor::module::conv2d(
                x.clone(),
                w.clone(),
                Some(b.clone()),
                options([1, 1], p),
            );
            let g = Geometry::new(&x.shape(), &w.shape(), p, [1, 1]);
            let vals = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
            let bv = b.into_data().try_to_vec::<f32>().unwrap();
            let got = forward_f32(&vals(x), &vals(w), &bv, &g, Lowering::Winograd);
            let want = vals(want);
            assert_eq!(got.len(), want.len(), "{x_shape:?} p {p:?}");
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                d <= 1e-5 * scale,
                "{x_shape:?} p {p:?}: differs by {d} of {scale}"
            );
        }
    }

    /// The Flex backward, called directly, against burn's backward.
    #[test]
    fn flex_backward_matches_burns() {
        let device = Device::flex();
        for (stride, out) in [([1, 1], [3, 5, 9, 7]), ([2, 2], [3, 5, 5, 4])] {
            let x = Tensor::<4>::random([3, 4, 9, 7], Distribution::Default, &device);
            let w = Tensor::<4>::random([5, 4, 3, 3], Distribution::Default, &device);
            let gy = Tensor::<4>::random(out, Distribution::Default, &device);
            let p = |t: Tensor<4>| FlexTensor::from_data(t.into_data());
            let ours = <Flex as Conv2dOps>::conv2d_im2col_backward(
                p(x.clone()),
                p(w.clone()),
                p(gy.clone()),
                stride,
                [1, 1],
                true,
            );
            let theirs = backend_backward::<Flex>(p(x), p(w), p(gy), stride, [1, 1], true);
            for (a, b) in [(ours.0, theirs.0), (ours.1, theirs.1), (ours.2, theirs.2)] {
                let (a, b) = (contiguous(a), contiguous(b));
                let (a, b): (&[f32], &[f32]) = (a.storage(), b.storage());
                assert_eq!(a.len(), b.len());
                let d = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                assert!(d < 1e-4, "differs by {d} at stride {stride:?}");
            }
        }
    }

    #[test]
    fn data_input_needs_no_input_gradient() {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::random([2, 1, 6, 6], Distribution::Default, &device);
        let w = Tensor::<4>::random([3, 1, 3, 3], Distribution::Default, &device).require_grad();
        let b = Tensor::<1>::zeros([3], &device).require_grad();
        let grads = conv2d_s1(x.clone(), w.clone(), b, [1, 1]).sum().backward();
        assert!(x.grad(&grads).is_none());
        assert_eq!(w.grad(&grads).unwrap().dims(), [3, 1, 3, 3]);
    }
}
