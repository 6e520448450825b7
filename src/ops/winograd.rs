//! Winograd's minimal filtering F(2x2, 3x3) for 3x3 stride-1 convolutions (Lavin & Gray 2016,
//! "Fast Algorithms for Convolutional Neural Networks"), the lowering `super::conv` picks for
//! ResNet's and VGG's 3x3 convolutions.
//!
//! Why: these convolutions are 80% of ResNet-18's multiply-adds, and the packed micro-kernel
//! already runs their im2col products near the cores' peak, so only fewer multiplies make them
//! faster. Each 2x2 block of outputs reads a 4x4 tile `d` of the input (neighbouring tiles
//! overlap by 2) and, for a 3x3 filter `g`,
//!
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`
//!
//! with
//!
//! ```text
//!      | 1  0 -1  0 |        |  1    0    0  |
//! Bᵀ = | 0  1  1  0 |    G = | 1/2  1/2  1/2 |    Aᵀ = | 1  1  1  0 |
//!      | 0 -1  1  0 |        | 1/2 -1/2  1/2 |         | 0  1 -1 -1 |
//!      | 0  1  0 -1 |        |  0    0    1  |
//! ```
//!
//! Summed over input channels, the element-wise products become 16 matrix products, one per
//! position ξ of the 4x4 transformed tile: `M_ξ [O, tiles] = U_ξ [O, C] · V_ξ [C, tiles]` with
//! `U = G g Gᵀ` (the weights, transformed once per call) and `V = Bᵀ d B` (the input tiles).
//! That is 16 multiplies per 4 outputs and input channel where the direct convolution needs 36:
//! 2.25x fewer. The products run on the packed micro-kernel, `V_ξ` written straight into its
//! panels. The transforms only add and halve, so the result differs from the direct sum by
//! rounding alone (the tests hold it to 1e-5 of the output's scale).
//!
//! The transforms are written as contiguous loops over a row of tiles and compiled for the
//! CPU's widest vectors (`select::vectorized`): as scalar code, tile by tile, they took about
//! 15% of ResNet-18's inference at batch 16, half as much as the products they feed.
//!
//! Work is split over rayon's threads by whole images; each task transforms and multiplies its
//! images' tiles a band of [`TILES_PER_BAND`] at a time (bands span images where maps are
//! small, so the products still fill the kernel's panels). With fewer images than threads, the
//! 16 products of a band run in parallel instead.
//!
//! Small maps (up to 16x16 outputs: ResNet-20's last stage, ResNet-18's last two) take the
//! channels-last form instead ([`forward_channels_last`]): there a row has 4 to 8 tiles, too few
//! to fill a vector along the row, and the transforms took longer than the products. At 7x7
//! with 64 channels a training step's forward and input gradient then took ~26 against ~32 ms
//! (`conv_paths 3 resnet20.stage3`, with the `gemm` lowering as the in-run reference: 0.70-0.77x
//! of it, 0.88x before; run record `docs/avx2-session-ab/`).

use std::ops::Range;

use rayon::prelude::*;

use super::packed_gemm::{gemm_packed, PackedB};

/// Positions of the transformed 4x4 tile.
const XI: usize = 16;

/// Most tiles transformed and multiplied at once: a band of tile rows whose `V` and `M`
/// (`16 · (C + O) · tiles` values, 1 MB at 64 channels) stay in the core's L2 cache between the
/// transforms and the products.
const TILES_PER_BAND: usize = 256;

/// Sizes of a 3x3, stride-1 convolution: `x [n, c, h, w]`, weights `[o, c, 3, 3]`, symmetric
/// zero padding `p`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Conv3x3 {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub p: [usize; 2],
}

impl Conv3x3 {
    /// Output height and width: `h + 2p - 2`.
    fn out(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.p[0]).saturating_sub(2),
            (self.w + 2 * self.p[1]).saturating_sub(2),
        )
    }

    /// Tile rows and columns per image: one tile per 2x2 block of outputs.
    fn tiles(&self) -> (usize, usize) {
        let (oh, ow) = self.out();
        (oh.div_ceil(2), ow.div_ceil(2))
    }
}

/// The convolution `y [n, o, h + 2p - 2, w + 2p - 2] = x ⋆ w + b` by F(2x2, 3x3): on
/// channel vectors ([`forward_channels_last`]) where an image has at most
/// [`CHANNELS_LAST_MAX_TILES`] tiles, on rows of tiles otherwise.
pub(super) fn forward(xs: &[f32], ws: &[f32], bs: &[f32], s: &Conv3x3) -> Vec<f32> {
    let (th, tw) = s.tiles();
    if th * tw <= CHANNELS_LAST_MAX_TILES {
        forward_channels_last(xs, ws, bs, s)
    } else {
        forward_rows(xs, ws, bs, s)
    }
}

/// Most tiles per image for [`forward_channels_last`]: up to 16x16 outputs.
const CHANNELS_LAST_MAX_TILES: usize = 64;

/// [`forward`] with the transforms run on vectors of channels. On a small map (ResNet-20's
/// 7x7 and 14x14, ResNet-18's last stages) a row of tiles is 4 to 7 tiles, too short for the
/// row-wise transforms of [`forward_rows`] to fill a vector: there the transforms took more
/// time than the 16 products at 7x7. Here each image is first transposed to channels-last
/// `[H·W, C]`, so the 16 inputs of a tile are 16 vectors of `C` channels, and the products are
/// turned around, `Mᵀ_ξ [tiles, O] = Vᵀ_ξ [tiles, C] · Uᵀ_ξ [C, O]`, so that `Vᵀ_ξ` is
/// written a channel vector at a time and `Mᵀ_ξ` read so. Bands are whole images.
fn forward_channels_last(xs: &[f32], ws: &[f32], bs: &[f32], s: &Conv3x3) -> Vec<f32> {
    let (oh, ow) = s.out();
    let (th, tw) = s.tiles();
    let out_len = s.o * oh * ow;
    let mut out = vec![0f32; s.n * out_len];
    if out.is_empty() || s.c == 0 {
        return out;
    }
    // Uᵀ_ξ [C, O], transformed straight into the kernel's panels: packing U_ξ transposed in a
    // second pass was 1.4% of ResNet-18's inference at batch 16 (512 channels).
    let mut ut: Vec<PackedB> = (0..XI).map(|_| PackedB::zeros(s.c, s.o)).collect();
    transform_weights_into(ws, |xi, f, v| ut[xi].set(f % s.c, f / s.c, v));
    let threads = rayon::current_num_threads().max(1);
    let images = s.n.div_ceil(threads).max(1);
    let products_in_parallel = s.n < threads;
    let img_len = s.c * s.h * s.w;
    let img_tiles = th * tw;
    let band_images = (TILES_PER_BAND / img_tiles).max(1);
    out.par_chunks_mut(images * out_len)
        .enumerate()
        .for_each(|(t, out)| {
            let count = out.len() / out_len;
            let xs = &xs[t * images * img_len..][..count * img_len];
            let band_images = band_images.min(count);
            let max_tiles = band_images * img_tiles;
            // The band's images, channels-last: [band_images, H·W, C].
            let mut xt = vec![0f32; band_images * img_len];
            // Vᵀ_ξ [tiles, C] and Mᵀ_ξ [tiles, O] for the 16 positions.
            let mut v = vec![0f32; XI * max_tiles * s.c];
            let mut m = vec![0f32; XI * max_tiles * s.o];
            // One image's output, channels-last: [OH·OW, O].
            let mut yt = vec![0f32; oh * ow * s.o];
            for i0 in (0..count).step_by(band_images) {
                let images = i0..(i0 + band_images).min(count);
                let tiles = images.len() * img_tiles;
                let (v, m) = (&mut v[..XI * tiles * s.c], &mut m[..XI * tiles * s.o]);
                super::select::vectorized(
                    #[inline(always)]
                    || {
                        for (i, img) in images.clone().enumerate() {
                            // [C, H·W] -> [H·W, C]
                            transpose(
                                &xs[img * img_len..][..img_len],
                                s.c,
                                s.h * s.w,
                                &mut xt[i * img_len..][..img_len],
                            );
                        }
                        transform_input_channels_last(&xt, s, images.len(), v);
                    },
                );
                // Mᵀ_ξ [tiles, O] = Vᵀ_ξ [tiles, C] · Uᵀ_ξ [C, O]
                let product = |((m, v), ut): ((&mut [f32], &[f32]), &PackedB)| {
                    gemm_packed(tiles, v, s.c, ut, m, s.o, false);
                };
                if products_in_parallel {
                    m.par_chunks_mut(tiles * s.o)
                        .zip(v.par_chunks(tiles * s.c))
                        .zip(ut.par_iter())
                        .for_each(product);
                } else {
                    m.chunks_mut(tiles * s.o)
                        .zip(v.chunks(tiles * s.c))
                        .zip(ut.iter())
                        .for_each(product);
                }
                super::select::vectorized(
                    #[inline(always)]
                    || {
                        for (i, img) in images.clone().enumerate() {
                            transform_output_channels_last(m, s, bs, tiles, i, &mut yt);
                            // [OH·OW, O] -> [O, OH·OW]
                            transpose(&yt, oh * ow, s.o, &mut out[img * out_len..][..out_len]);
                        }
                    },
                );
            }
        });
    out
}

/// `dst [cols, rows] = srcᵀ` for `src [rows, cols]`, both row-major.
#[inline(always)]
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let (src, dst) = (&src[..rows * cols], &mut dst[..rows * cols]);
    // Blocks of 8 rows: each source row is read in runs, each destination row written 8
    // values at a time.
    const B: usize = 8;
    let mut r0 = 0;
    while r0 < rows {
        let rb = B.min(rows - r0);
        for c in 0..cols {
            let d = &mut dst[c * rows + r0..][..rb];
            for (i, d) in d.iter_mut().enumerate() {
                *d = src[(r0 + i) * cols + c];
            }
        }
        r0 += rb;
    }
}

/// `Vᵀ_ξ [tiles, C]` (`v [16, tiles, C]`) of the `count` channels-last images `xt [count, H·W,
/// C]`: `V = Bᵀ d B` for every 4x4 input tile `d` (rows `2·ty - p ..`, columns `2·tx - p ..`,
/// zero outside the image), tile `(image, ty, tx)` in row `(image · th + ty) · tw + tx`; each
/// `d[i][j]` is a vector of `C` channels.
#[inline(always)]
fn transform_input_channels_last(xt: &[f32], s: &Conv3x3, count: usize, v: &mut [f32]) {
    let (th, tw) = s.tiles();
    let (h, w, c) = (s.h, s.w, s.c);
    let tiles = count * th * tw;
    let zeros = vec![0f32; c];
    let mut outs: Vec<&mut [f32]> = v.chunks_mut(tiles * c).collect();
    let outs: &mut [&mut [f32]; XI] = outs.as_mut_slice().try_into().expect("16 positions");
    for img in 0..count {
        let image = &xt[img * h * w * c..][..h * w * c];
        for ty in 0..th {
            for tx in 0..tw {
                let tile = (img * th + ty) * tw + tx;
                // The tile's 16 channel vectors, zeros outside the image (plain loops: the
                // nested `array::from_fn` here was not inlined, a call per tile).
                let mut d: [[&[f32]; 4]; 4] = [[&zeros[..]; 4]; 4];
                for (i, row) in d.iter_mut().enumerate() {
                    let Some(y) = (2 * ty + i).checked_sub(s.p[0]).filter(|&y| y < h) else {
                        continue;
                    };
                    for (j, dij) in row.iter_mut().enumerate() {
                        if let Some(x) = (2 * tx + j).checked_sub(s.p[1]).filter(|&x| x < w) {
                            *dij = &image[(y * w + x) * c..][..c];
                        }
                    }
                }
                let mut o: [&mut [f32]; XI] = Default::default();
                for (o, v) in o.iter_mut().zip(outs.iter_mut()) {
                    *o = &mut v[tile * c..(tile + 1) * c];
                }
                // LANES channels at a time in fixed-size arrays (vector registers), the rest
                // one by one.
                let mut k = 0;
                while k + LANES <= c {
                    let v = input_tile(
                        #[inline(always)]
                        |i, j| lanes(d[i][j], k),
                        sub,
                        add,
                    );
                    for (o, v) in o.iter_mut().zip(v) {
                        o[k..k + LANES].copy_from_slice(&v);
                    }
                    k += LANES;
                }
                for k in k..c {
                    let v = input_tile(|i, j| d[i][j][k], |a, b| a - b, |a, b| a + b);
                    for (o, v) in o.iter_mut().zip(v) {
                        o[k] = v;
                    }
                }
            }
        }
    }
}

/// Values per fixed-size array in the channel-vector transforms: one AVX2 register.
const LANES: usize = 8;

/// `s[at..at + LANES]` as an array.
#[inline(always)]
fn lanes(s: &[f32], at: usize) -> [f32; LANES] {
    s[at..at + LANES].try_into().expect("LANES values")
}

/// `a - b`, lane by lane.
#[inline(always)]
fn sub(a: [f32; LANES], b: [f32; LANES]) -> [f32; LANES] {
    let mut r = a;
    for (r, b) in r.iter_mut().zip(b) {
        *r -= b;
    }
    r
}

/// `a + b`, lane by lane.
#[inline(always)]
fn add(a: [f32; LANES], b: [f32; LANES]) -> [f32; LANES] {
    let mut r = a;
    for (r, b) in r.iter_mut().zip(b) {
        *r += b;
    }
    r
}

/// `V = Bᵀ d B` of one 4x4 tile `d(i, j)` (values or lane arrays), `V` in position order `ξ =
/// 4·row + column`.
#[inline(always)]
fn input_tile<T: Copy>(
    d: impl Fn(usize, usize) -> T,
    sub: impl Fn(T, T) -> T,
    add: impl Fn(T, T) -> T,
) -> [T; XI] {
    // Written out: `array::map` with a closure here was left out of line (a call per value).
    // Bᵀ d, column j: rows combined (Bᵀ's rows applied to d's column j).
    let c0 = b_transpose([d(0, 0), d(1, 0), d(2, 0), d(3, 0)], &sub, &add);
    let c1 = b_transpose([d(0, 1), d(1, 1), d(2, 1), d(3, 1)], &sub, &add);
    let c2 = b_transpose([d(0, 2), d(1, 2), d(2, 2), d(3, 2)], &sub, &add);
    let c3 = b_transpose([d(0, 3), d(1, 3), d(2, 3), d(3, 3)], &sub, &add);
    // (Bᵀ d) B: B's columns applied to each row i of Bᵀ d.
    let r0 = b_transpose([c0[0], c1[0], c2[0], c3[0]], &sub, &add);
    let r1 = b_transpose([c0[1], c1[1], c2[1], c3[1]], &sub, &add);
    let r2 = b_transpose([c0[2], c1[2], c2[2], c3[2]], &sub, &add);
    let r3 = b_transpose([c0[3], c1[3], c2[3], c3[3]], &sub, &add);
    [
        r0[0], r0[1], r0[2], r0[3], r1[0], r1[1], r1[2], r1[3], r2[0], r2[1], r2[2], r2[3], r3[0],
        r3[1], r3[2], r3[3],
    ]
}

/// `Bᵀ v` of 4 values: `[v0 - v2, v1 + v2, v2 - v1, v1 - v3]` (`Bᵀ` of the module docs; `v B`
/// is the same combination of a row).
#[inline(always)]
fn b_transpose<T: Copy>(
    [v0, v1, v2, v3]: [T; 4],
    sub: &impl Fn(T, T) -> T,
    add: &impl Fn(T, T) -> T,
) -> [T; 4] {
    [sub(v0, v2), add(v1, v2), sub(v2, v1), sub(v1, v3)]
}

/// Image `img`'s output, channels-last `yt [OH·OW, O]`, from `Mᵀ [16, tiles, O]`: `Y = Aᵀ m A
/// + b` of every tile's 16 product vectors, the 2x2 block clipped at odd edges.
#[inline(always)]
fn transform_output_channels_last(
    m: &[f32],
    s: &Conv3x3,
    bs: &[f32],
    tiles: usize,
    img: usize,
    yt: &mut [f32],
) {
    let (oh, ow) = s.out();
    let (th, tw) = s.tiles();
    let o = s.o;
    let bs = &bs[..o];
    let mut y = [vec![0f32; o], vec![0f32; o], vec![0f32; o], vec![0f32; o]];
    for ty in 0..th {
        for tx in 0..tw {
            let tile = (img * th + ty) * tw + tx;
            let mut mm: [&[f32]; XI] = [&[]; XI];
            for (xi, mm) in mm.iter_mut().enumerate() {
                *mm = &m[(xi * tiles + tile) * o..][..o];
            }
            let [y00, y01, y10, y11] = &mut y;
            let (y00, y01, y10, y11) = (&mut y00[..o], &mut y01[..o], &mut y10[..o], &mut y11[..o]);
            let mut k = 0;
            while k + LANES <= o {
                let q = output_tile(
                    #[inline(always)]
                    |xi| lanes(mm[xi], k),
                    lanes(bs, k),
                    sub,
                    add,
                );
                for (y, q) in [&mut *y00, &mut *y01, &mut *y10, &mut *y11]
                    .into_iter()
                    .zip(q)
                {
                    y[k..k + LANES].copy_from_slice(&q);
                }
                k += LANES;
            }
            for k in k..o {
                let q = output_tile(|xi| mm[xi][k], bs[k], |a, b| a - b, |a, b| a + b);
                for (y, q) in [&mut *y00, &mut *y01, &mut *y10, &mut *y11]
                    .into_iter()
                    .zip(q)
                {
                    y[k] = q;
                }
            }
            for (q, yq) in y.iter().enumerate() {
                let (oy, ox) = (2 * ty + q / 2, 2 * tx + q % 2);
                if oy < oh && ox < ow {
                    yt[(oy * ow + ox) * o..][..o].copy_from_slice(yq);
                }
            }
        }
    }
}

/// `Y = Aᵀ m A + b` of one tile's 16 products `m(ξ)` (values or lane arrays): `[y00, y01,
/// y10, y11]`, summed in the order of [`transform_output`].
#[inline(always)]
fn output_tile<T: Copy>(
    m: impl Fn(usize) -> T,
    b: T,
    sub: impl Fn(T, T) -> T,
    add: impl Fn(T, T) -> T,
) -> [T; 4] {
    // Aᵀ m: [2, 4], written out (see `input_tile`).
    let t0 = [
        add(add(m(0), m(4)), m(8)),
        add(add(m(1), m(5)), m(9)),
        add(add(m(2), m(6)), m(10)),
        add(add(m(3), m(7)), m(11)),
    ];
    let t1 = [
        sub(sub(m(4), m(8)), m(12)),
        sub(sub(m(5), m(9)), m(13)),
        sub(sub(m(6), m(10)), m(14)),
        sub(sub(m(7), m(11)), m(15)),
    ];
    // (Aᵀ m) A: [2, 2]
    [
        add(add(add(t0[0], t0[1]), t0[2]), b),
        add(sub(sub(t0[1], t0[2]), t0[3]), b),
        add(add(add(t1[0], t1[1]), t1[2]), b),
        add(sub(sub(t1[1], t1[2]), t1[3]), b),
    ]
}

/// [`forward`] on rows of tiles: each task transforms and multiplies its images' tiles a band
/// of [`TILES_PER_BAND`] at a time (see the module docs).
fn forward_rows(xs: &[f32], ws: &[f32], bs: &[f32], s: &Conv3x3) -> Vec<f32> {
    let (oh, ow) = s.out();
    let (th, tw) = s.tiles();
    let out_len = s.o * oh * ow;
    let mut out = vec![0f32; s.n * out_len];
    if out.is_empty() || s.c == 0 {
        return out;
    }
    let u = transform_weights(ws, s.o, s.c);
    let threads = rayon::current_num_threads().max(1);
    let images = s.n.div_ceil(threads).max(1);
    // Fewer images than threads: the 16 products of a band share the threads instead.
    let products_in_parallel = s.n < threads;
    let band_rows = (TILES_PER_BAND / tw).max(1);
    let img_len = s.c * s.h * s.w;
    out.par_chunks_mut(images * out_len)
        .enumerate()
        .for_each(|(t, out)| {
            let count = out.len() / out_len;
            let xs = &xs[t * images * img_len..][..count * img_len];
            // Tile rows `r = image · th + ty` of this task's images, a band at a time.
            let rows = count * th;
            let mut v: Vec<PackedB> = Vec::new();
            let mut m: Vec<f32> = Vec::new();
            for r0 in (0..rows).step_by(band_rows) {
                let band = r0..(r0 + band_rows).min(rows);
                let tiles = band.len() * tw;
                if v.first().map(PackedB::dims) != Some((s.c, tiles)) {
                    v = (0..XI).map(|_| PackedB::zeros(s.c, tiles)).collect();
                    m = vec![0f32; XI * s.o * tiles];
                }
                // Out of line, so baseline x86-64 code (see `select::vectorized`): forced into
                // AVX2, the row transforms measured slower on the Zen 1.
                super::select::vectorized(|| transform_input(xs, s, band.clone(), &mut v));
                // M_ξ [O, tiles] = U_ξ [O, C] · V_ξ [C, tiles]
                let product = |(xi, (m, v)): (usize, (&mut [f32], &PackedB))| {
                    gemm_packed(s.o, &u[xi * s.o * s.c..], s.c, v, m, tiles, false);
                };
                if products_in_parallel {
                    m.par_chunks_mut(s.o * tiles)
                        .zip(v.par_iter())
                        .enumerate()
                        .for_each(product);
                } else {
                    m.chunks_mut(s.o * tiles)
                        .zip(v.iter())
                        .enumerate()
                        .for_each(product);
                }
                super::select::vectorized(|| transform_output(&m, s, bs, band, out));
            }
        });
    out
}

/// `U_ξ [O, C]` for each of the 16 positions: `U = G g Gᵀ` of every filter `g = w[o, c]`.
fn transform_weights(ws: &[f32], o: usize, c: usize) -> Vec<f32> {
    let mut u = vec![0f32; XI * o * c];
    transform_weights_into(ws, |xi, f, v| u[xi * o * c + f] = v);
    u
}

/// `U = G g Gᵀ` of every filter `g = w[o, c]`, handed to `store(ξ, f, value)` with the
/// filter's index `f = o·C + c`.
#[inline(always)]
fn transform_weights_into(ws: &[f32], mut store: impl FnMut(usize, usize, f32)) {
    for (f, g) in ws.chunks_exact(9).enumerate() {
        // G g: [4, 3]
        let mut t = [[0f32; 3]; 4];
        for col in 0..3 {
            let (g0, g1, g2) = (g[col], g[3 + col], g[6 + col]);
            t[0][col] = g0;
            t[1][col] = 0.5 * (g0 + g1 + g2);
            t[2][col] = 0.5 * (g0 - g1 + g2);
            t[3][col] = g2;
        }
        // (G g) Gᵀ: [4, 4]
        for (r, t) in t.iter().enumerate() {
            let row = [
                t[0],
                0.5 * (t[0] + t[1] + t[2]),
                0.5 * (t[0] - t[1] + t[2]),
                t[2],
            ];
            for (col, v) in row.into_iter().enumerate() {
                store(r * 4 + col, f, v);
            }
        }
    }
}

/// `V_ξ [C, tiles]` for the tile rows `band` (`r = image · th + ty`) of the images `xs [count,
/// C, H, W]`: `V = Bᵀ d B` of every 4x4 input tile `d` (rows `2·ty - p ..`, columns
/// `2·tx - p ..`, zero outside the image), tile `(r, tx)` in column `(r - band.start) · tw + tx`.
///
/// A channel at a time, and in it a row of tiles at a time: `Bᵀ d` combines whole
/// (zero-padded) input rows, each result row is split into its even and odd columns, and
/// `(Bᵀ d) B` combines those for every tile of the row at once, since tile `tx` reads columns
/// `2·tx .. 2·tx + 3`, that is even and odd columns `tx` and `tx + 1`. Every loop is
/// contiguous, so it vectorizes. Each of the 16 results is then one run of the band's tiles in
/// row `c` of its `V_ξ`, set with [`PackedB::set_row`] (a panel width at a time).
#[inline(always)]
fn transform_input(xs: &[f32], s: &Conv3x3, band: Range<usize>, v: &mut [PackedB]) {
    let (th, tw) = s.tiles();
    let (h, w) = (s.h, s.w);
    let plane_len = h * w;
    let tiles = band.len() * tw;
    // Padded columns 0 .. 2·tw + 2 cover every tile of a row (2·tw + 2 ≥ w + 2p).
    let wp = 2 * tw + 2;
    let mut d: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0f32; wp]);
    let mut t = d.clone();
    // Even and odd columns of each row of Bᵀ d.
    let mut even: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0f32; tw + 1]);
    let mut odd = even.clone();
    // Row c of each V_ξ for the band's tiles.
    let mut vals: [Vec<f32>; XI] = std::array::from_fn(|_| vec![0f32; tiles]);
    for c in 0..s.c {
        for (local, r) in band.clone().enumerate() {
            let (img, ty) = (r / th, r % th);
            let plane = &xs[(img * s.c + c) * plane_len..][..plane_len];
            // The tile row's 4 input rows, zero-padded.
            for (dy, d) in d.iter_mut().enumerate() {
                d.fill(0.0);
                if let Some(y) = (2 * ty + dy).checked_sub(s.p[0]).filter(|&y| y < h) {
                    let n = w.min(wp - s.p[1]);
                    d[s.p[1]..s.p[1] + n].copy_from_slice(&plane[y * w..y * w + n]);
                }
            }
            // Bᵀ d, the rows combined.
            let [d0, d1, d2, d3] = &d;
            let [t0, t1, t2, t3] = &mut t;
            for x in 0..wp {
                t0[x] = d0[x] - d2[x];
                t1[x] = d1[x] + d2[x];
                t2[x] = d2[x] - d1[x];
                t3[x] = d1[x] - d3[x];
            }
            for row in 0..4 {
                let (t, e, o) = (&t[row][..wp], &mut even[row][..=tw], &mut odd[row][..=tw]);
                for (k, pair) in t.chunks_exact(2).enumerate() {
                    e[k] = pair[0];
                    o[k] = pair[1];
                }
                // (Bᵀ d) B: tile tx's columns are even[tx], odd[tx], even[tx + 1], odd[tx + 1].
                let [v0, v1, v2, v3] = &mut vals[row * 4..row * 4 + 4] else {
                    unreachable!("4 rows of 4")
                };
                let run = local * tw..(local + 1) * tw;
                let (v0, v1, v2, v3) = (
                    &mut v0[run.clone()],
                    &mut v1[run.clone()],
                    &mut v2[run.clone()],
                    &mut v3[run],
                );
                for tx in 0..tw {
                    let (a, b, c, e) = (e[tx], o[tx], e[tx + 1], o[tx + 1]);
                    v0[tx] = a - c;
                    v1[tx] = b + c;
                    v2[tx] = c - b;
                    v3[tx] = b - e;
                }
            }
        }
        for (v, vals) in v.iter_mut().zip(&vals) {
            v.set_row(c, vals);
        }
    }
}

/// The outputs of the tile rows `band` into `out [count, O, OH, OW]` from `M [16, O, tiles]`:
/// `Y = Aᵀ m A + b` of every tile's 16 products `m`, the 2x2 block clipped at odd edges. A row
/// of tiles at a time: its 16 products are runs of `tw` consecutive values of `M`, combined
/// for the whole row at once (contiguous, so it vectorizes), then interleaved into the two
/// output rows.
#[inline(always)]
fn transform_output(m: &[f32], s: &Conv3x3, bs: &[f32], band: Range<usize>, out: &mut [f32]) {
    let (oh, ow) = s.out();
    let (th, tw) = s.tiles();
    let tiles = band.len() * tw;
    let stride = s.o * tiles;
    // The 2x2 outputs of each tile of the row, [y00, y01, y10, y11].
    let mut y: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0f32; tw]);
    // The tile row's two output rows, 2·tw wide before clipping to OW.
    let mut rows = [vec![0f32; 2 * tw], vec![0f32; 2 * tw]];
    for (local, r) in band.enumerate() {
        let (img, ty) = (r / th, r % th);
        for (o, &b) in bs.iter().enumerate().take(s.o) {
            let at = o * tiles + local * tw;
            let mm: [&[f32]; XI] = std::array::from_fn(|xi| &m[xi * stride + at..][..tw]);
            let [y00, y01, y10, y11] = &mut y;
            let (y00, y01, y10, y11) = (
                &mut y00[..tw],
                &mut y01[..tw],
                &mut y10[..tw],
                &mut y11[..tw],
            );
            for tx in 0..tw {
                // Aᵀ m: [2, 4]
                let t0: [f32; 4] =
                    std::array::from_fn(|col| mm[col][tx] + mm[4 + col][tx] + mm[8 + col][tx]);
                let t1: [f32; 4] =
                    std::array::from_fn(|col| mm[4 + col][tx] - mm[8 + col][tx] - mm[12 + col][tx]);
                // (Aᵀ m) A: [2, 2]
                y00[tx] = t0[0] + t0[1] + t0[2] + b;
                y01[tx] = t0[1] - t0[2] - t0[3] + b;
                y10[tx] = t1[0] + t1[1] + t1[2] + b;
                y11[tx] = t1[1] - t1[2] - t1[3] + b;
            }
            let [row0, row1] = &mut rows;
            for (tx, (r0, r1)) in row0
                .chunks_exact_mut(2)
                .zip(row1.chunks_exact_mut(2))
                .enumerate()
            {
                r0[0] = y00[tx];
                r0[1] = y01[tx];
                r1[0] = y10[tx];
                r1[1] = y11[tx];
            }
            let plane = &mut out[(img * s.o + o) * oh * ow..][..oh * ow];
            for (dy, row) in rows.iter().enumerate() {
                let y = 2 * ty + dy;
                if y < oh {
                    plane[y * ow..(y + 1) * ow].copy_from_slice(&row[..ow]);
                }
            }
        }
    }
}
