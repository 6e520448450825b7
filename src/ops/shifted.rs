//! Stride-1 convolutions with 3-wide kernels (ResNet's and VGG's 3x3) without im2col:
//! forward, and weight gradient; the input gradient is the forward of the flipped convolution
//! (`super::conv`), so it runs here too.
//!
//! Why: im2col writes `KH·KW` copies of the image per convolution, three times per training
//! step (forward, input gradient, weight gradient), and the packed kernel then copies the
//! forward's into its panels once more. In a ResNet-20 training step, im2col, those copies and
//! the weight gradient on the `gemm` crate were about half of the time
//! (`bench/results/profile-resnet20-train-b128-winograd-20261128.txt`).
//!
//! For a stride-1 convolution the im2col row of tap `(c, ky, kx)` is, over all output pixels
//! `(oy, ox)` in order, one contiguous run of a "shifted plane": `S_kx[c][yy][ox] =
//! x[c, yy - p, ox + kx - p]` (zero outside), `yy` over the padded rows, row length `OW`; the
//! run starts at row `ky`. These planes are `KW` copies of the padded image instead of
//! im2col's `KH·KW`, and the products read the runs in place:
//!
//! - forward, `y [O, OH·OW] = W [O, C·KH·KW] · X`: the packed kernel's register tile (12x32 on
//!   AVX-512, 6x16 on AVX2), its `B` rows loaded straight from the runs through a table of run
//!   offsets (no panels);
//! - weight gradient, `∂L/∂W[o, c, ky, kx] = Σ_images Σ_(oy, ox) ∂L/∂y[o, oy, ox] ·
//!   x[c, oy + ky - p, ox + kx - p]`, for stride 1 and 3-wide kernels: outer products
//!   `∂L/∂Wᵀ += run(tap) · ∂L/∂yᵀ` over the pixels (one broadcast from each tap's run, `∂L/∂y`
//!   transposed per image, a small copy), in 24 (AVX-512) or 12 (AVX2) accumulators that run
//!   over a group of images before they are written.
//!
//! Both need AVX2 or AVX-512 (they say `None` elsewhere and the caller takes im2col). An
//! earlier AVX2 weight gradient, dot products of the runs in 8 lanes, made a ResNet-20 step
//! 0.76x of burn's ops, against 1.9x on im2col and the `gemm` crate
//! (`speed_gate-20261129-033641.json`); the outer products keep every lane busy instead.
//! When it wins over Winograd's F(2x2, 3x3) and the im2col lowerings is decided in
//! `super::conv` (`Geometry::shifted_wins`).

use rayon::prelude::*;

/// Kernel columns the kernels are written for.
pub(super) const KW: usize = 3;
/// Output pixels a group of images covers in the weight gradient: its register tiles run over
/// the whole group before they are written.
const GROUP_PIXELS: usize = 1024;

/// A convolution: `x [n, c, h, w]`, kernels `[o, c, kh, kw]`, `∂L/∂y [n, o, oh, ow]`, symmetric
/// zero padding `p`, stride `s` (the forward takes any; the weight gradient stride 1 and
/// `kw = KW`).
#[derive(Debug, Clone, Copy)]
pub(super) struct ShiftedConv {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub p: [usize; 2],
    pub s: [usize; 2],
}

impl ShiftedConv {
    fn oh(&self) -> usize {
        (self.h + 2 * self.p[0] - self.kh) / self.s[0] + 1
    }
    fn ow(&self) -> usize {
        (self.w + 2 * self.p[1] - self.kw) / self.s[1] + 1
    }
    /// Rows of a shifted plane: `OH + (KH - 1) / stride` (the padded image's for stride 1).
    fn padded_rows(&self) -> usize {
        self.oh() + (self.kh - 1) / self.s[0]
    }
    /// Row phases the taps read: `ky mod stride` for `ky < KH` (a 1x1/2 convolution reads
    /// one of its two).
    fn phases(&self) -> usize {
        self.s[0].min(self.kh)
    }
    /// Values in one image's shifted planes: `phases · KW · C · rows · OW`.
    fn planes_len(&self) -> usize {
        self.phases() * self.kw * self.c * self.padded_rows() * self.ow()
    }
    /// Whether the weight gradient's kernels take this convolution.
    fn weight_grad_fits(&self) -> bool {
        self.s == [1, 1] && self.kw == KW
    }
}

/// `(∂L/∂W [o, c, kh, KW], ∂L/∂b [o])` of the convolution `shape` for input `xs` and output
/// gradient `gs`, on AVX-512 or AVX2 (`None` elsewhere). The images are split over rayon's
/// threads; each sums its share into a partial gradient, and the partials are added.
pub(super) fn weight_grad(
    xs: &[f32],
    gs: &[f32],
    shape: &ShiftedConv,
) -> Option<(Vec<f32>, Vec<f32>)> {
    #[cfg(target_arch = "x86_64")]
    if let Some(tiles) = Tiles::for_cpu() {
        return Some(weight_grad_on(tiles, xs, gs, shape));
    }
    let _ = (xs, gs, shape);
    None
}

#[cfg(target_arch = "x86_64")]
fn weight_grad_on(
    tiles: Tiles,
    xs: &[f32],
    gs: &[f32],
    shape: &ShiftedConv,
) -> (Vec<f32>, Vec<f32>) {
    let s = *shape;
    assert!(
        s.weight_grad_fits(),
        "weight_grad: stride 1 and 3-wide kernels only"
    );
    assert!(
        s.h + 2 * s.p[0] >= s.kh && s.w + 2 * s.p[1] >= KW,
        "kernel larger than the image"
    );
    let (img_len, out_len) = (s.c * s.h * s.w, s.o * s.oh() * s.ow());
    assert!(
        xs.len() == s.n * img_len && gs.len() == s.n * out_len,
        "weight_grad: operand sizes"
    );
    let dw_len = s.o * s.c * s.kh * KW;
    let threads = rayon::current_num_threads().max(1);
    let per_task = s.n.div_ceil(threads).max(1);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = (0..s.n.div_ceil(per_task))
        .into_par_iter()
        .map(|t| {
            let images = t * per_task..((t + 1) * per_task).min(s.n);
            let mut dw = vec![0f32; dw_len];
            let mut db = vec![0f32; s.o];
            task(tiles, xs, gs, &s, images, &mut dw, &mut db);
            (dw, db)
        })
        .collect();
    let mut parts = partials.into_iter();
    let (mut dw, mut db) = parts
        .next()
        .unwrap_or_else(|| (vec![0f32; dw_len], vec![0f32; s.o]));
    for (pw, pb) in parts {
        dw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
    (dw, db)
}

/// `y [n, o, OH, OW] = conv(x, w) + b` for the convolution `s` (weights `[o, c, kh, kw]`), on
/// AVX-512 or AVX2: each image's shifted planes are the `B` of the product `W [o, C·KH·KW] ·
/// B`, read in place row by row (row `r` is tap `r`'s run, see the module docs) by a register
/// tile like the packed kernel's (12x32 on AVX-512, 6x16 on AVX2). This replaces im2col
/// (`KH·KW` copies of the image, written once more into panels) by `stride·KW` copies.
/// `None` where the CPU has neither.
pub(super) fn forward(xs: &[f32], ws: &[f32], bs: &[f32], s: &ShiftedConv) -> Option<Vec<f32>> {
    #[cfg(target_arch = "x86_64")]
    if let Some(tiles) = Tiles::for_cpu() {
        return Some(forward_on(tiles, xs, ws, bs, s));
    }
    let _ = (xs, ws, bs, s);
    None
}

thread_local! {
    /// Each thread's buffer for shifted planes, kept between calls: a fresh one per call was
    /// zeroed (a pass over memory the planes overwrite) and faulted in.
    static PLANES: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's planes buffer, at least `len` values long (contents
/// unspecified: [`shifted_planes`] writes every value it covers). The buffer is taken out of
/// the thread-local slot for the call, so a nested call (rayon may run another task on this
/// thread while `f` waits) gets a buffer of its own.
fn with_planes<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = PLANES.take();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    PLANES.set(buf);
    r
}

/// One thread's share: the images `images`, a group at a time, summed into `dw` and `db`.
#[cfg(target_arch = "x86_64")]
fn task(
    tiles: Tiles,
    xs: &[f32],
    gs: &[f32],
    s: &ShiftedConv,
    images: std::ops::Range<usize>,
    dw: &mut [f32],
    db: &mut [f32],
) {
    let group = GROUP_PIXELS
        .div_ceil(s.oh() * s.ow())
        .clamp(1, images.len().max(1));
    with_planes(group * s.planes_len(), |planes| {
        task_groups(tiles, xs, gs, s, images, group, planes, dw, db)
    });
}

/// [`task`] with a planes buffer for `group` images.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn task_groups(
    tiles: Tiles,
    xs: &[f32],
    gs: &[f32],
    s: &ShiftedConv,
    images: std::ops::Range<usize>,
    group: usize,
    planes: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let (img_len, pixels) = (s.c * s.h * s.w, s.oh() * s.ow());
    let out_len = s.o * pixels;
    let mut outer = Outer::new(tiles, s, group);
    let mut first = images.start;
    while first < images.end {
        let count = group.min(images.end - first);
        let dy = &gs[first * out_len..(first + count) * out_len];
        let planes = &mut planes[..count * s.planes_len()];
        // Vectorised for the CPU: the planes' row copies, the bias sums and the transpose.
        super::select::vectorized(
            #[inline(always)]
            || {
                for (i, img_planes) in planes.chunks_mut(s.planes_len()).enumerate() {
                    let img = first + i;
                    shifted_planes(&xs[img * img_len..(img + 1) * img_len], s, img_planes);
                }
                for (o, sum) in db.iter_mut().enumerate() {
                    *sum += (0..count)
                        .map(|i| {
                            super::batch_norm::sum16(
                                &dy[i * out_len + o * pixels..][..pixels],
                                |v| v,
                            )
                        })
                        .sum::<f64>() as f32;
                }
                outer.add_group(dy, planes, s, count);
            },
        );
        first += count;
    }
    outer.add_into(s, dw);
}

/// The shifted planes of one image `img [c, h, w]` into `out [phases, kw, c, rows, OW]` (see
/// the module docs): `out[py][kx][c][yy][ox] = img[c, stride·yy + py - p, stride·ox + kx - p]`,
/// zero outside. Rows are a few
/// dozen values: copies of 16 at a time in registers, not `memcpy` and `memset` calls (which
/// were 5% of a ResNet-20 training step).
fn shifted_planes(img: &[f32], s: &ShiftedConv, out: &mut [f32]) {
    super::select::vectorized(
        #[inline(always)]
        || shifted_planes_inner(img, s, out),
    );
}

/// `dst = src` (same length, a row of a few dozen values) as fixed-size vector moves: 16 at a
/// time and a last 16 that ends at the row's end (overlapping the one before), or two
/// overlapping 8s or 4s for shorter rows, never a scalar tail of up to 15 values.
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    #[inline(always)]
    fn at<const K: usize>(dst: &mut [f32], src: &[f32], i: usize) {
        let s: &[f32; K] = src[i..i + K].try_into().expect("K values");
        let d: &mut [f32; K] = (&mut dst[i..i + K]).try_into().expect("K values");
        *d = *s;
    }
    let n = dst.len();
    assert_eq!(n, src.len());
    if n >= 16 {
        for i in (0..n - 16).step_by(16) {
            at::<16>(dst, src, i);
        }
        at::<16>(dst, src, n - 16);
    } else if n >= 8 {
        at::<8>(dst, src, 0);
        at::<8>(dst, src, n - 8);
    } else if n >= 4 {
        at::<4>(dst, src, 0);
        at::<4>(dst, src, n - 4);
    } else {
        dst.copy_from_slice(src);
    }
}

#[inline(always)]
fn shifted_planes_inner(img: &[f32], s: &ShiftedConv, out: &mut [f32]) {
    let (ow, rows, [sy, sx]) = (s.ow(), s.padded_rows(), s.s);
    let per_phase = s.kw * s.c * rows * ow;
    for (py, per_py) in out.chunks_mut(per_phase).enumerate() {
        for (kx, per_kx) in per_py.chunks_mut(s.c * rows * ow).enumerate() {
            // Output columns ox whose input column sx·ox + kx - p lies inside the image.
            let lo = s.p[1].saturating_sub(kx).div_ceil(sx).min(ow);
            let hi = (s.w + s.p[1]).saturating_sub(kx).div_ceil(sx).clamp(lo, ow);
            for (c, plane) in per_kx.chunks_mut(rows * ow).enumerate() {
                for (yy, row) in plane.chunks_mut(ow).enumerate() {
                    let Some(iy) = (sy * yy + py).checked_sub(s.p[0]).filter(|&iy| iy < s.h) else {
                        for v in row.iter_mut() {
                            *v = 0.0;
                        }
                        continue;
                    };
                    let src = &img[(c * s.h + iy) * s.w..][..s.w];
                    let start = sx * lo + kx - s.p[1];
                    let (left, rest) = row.split_at_mut(lo);
                    let (inside, right) = rest.split_at_mut(hi - lo);
                    for v in left.iter_mut().chain(right) {
                        *v = 0.0;
                    }
                    if sx == 1 {
                        copy_short(inside, &src[start..start + (hi - lo)]);
                    } else {
                        for (d, v) in inside.iter_mut().zip(src[start..].iter().step_by(sx)) {
                            *d = *v;
                        }
                    }
                }
            }
        }
    }
}

/// Where tap `r = (c, ky, kx)`'s run starts in one image's shifted planes: its im2col row is
/// `planes[offset .. offset + OH·OW]`. The planes are `[phases, KW, C, rows, OW]`: tap
/// `(ky, kx)` reads the plane of row phase `ky mod stride` and column `kx`, from row
/// `ky / stride`.
fn tap_offsets(s: &ShiftedConv) -> Vec<usize> {
    let (ow, rows) = (s.ow(), s.padded_rows());
    (0..s.c * s.kh * s.kw)
        .map(|r| {
            let (c, ky, kx) = (r / (s.kh * s.kw), (r / s.kw) % s.kh, r % s.kw);
            let plane = (ky % s.s[0]) * s.kw + kx;
            plane * s.c * rows * ow + (c * rows + ky / s.s[0]) * ow
        })
        .collect()
}

/// The register tiles of one instruction set: the forward's (`rows × cols` of `y`, rows read
/// in place from `W` and the planes) and the weight gradient's (`accumulators` vectors of
/// `lanes` output channels).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tiles {
    /// 12x32 forward tiles (24 of the 32 zmm registers), 24 weight-gradient accumulators.
    Avx512,
    /// 6x16 forward tiles (12 of the 16 ymm registers, as the packed AVX2 kernel), 12
    /// weight-gradient accumulators.
    Avx2,
}

#[cfg(target_arch = "x86_64")]
impl Tiles {
    /// The widest tiles [`super::isa`] allows now, if any.
    fn for_cpu() -> Option<Tiles> {
        match super::isa() {
            super::Isa::Avx512 => Some(Tiles::Avx512),
            super::Isa::Avx2 => Some(Tiles::Avx2),
            super::Isa::Portable => None,
        }
    }
    /// Rows (output channels) of a forward tile.
    fn rows(self) -> usize {
        match self {
            Tiles::Avx512 => avx512::ROWS,
            Tiles::Avx2 => avx2::ROWS,
        }
    }
    /// Columns (pixels) of a forward tile: two vectors.
    fn cols(self) -> usize {
        2 * self.lanes()
    }
    /// f32 lanes of a vector.
    fn lanes(self) -> usize {
        match self {
            Tiles::Avx512 => avx512::V,
            Tiles::Avx2 => avx2::V,
        }
    }
    /// Accumulator vectors of a weight-gradient tile (`taps × vectors`).
    fn accumulators(self) -> usize {
        match self {
            Tiles::Avx512 => avx512::ACCUMULATORS,
            Tiles::Avx2 => avx2::ACCUMULATORS,
        }
    }
    /// Most vectors of output channels per weight-gradient tile.
    fn max_vectors(self) -> usize {
        match self {
            Tiles::Avx512 => 4,
            Tiles::Avx2 => 2,
        }
    }
}

/// See [`forward`].
#[cfg(target_arch = "x86_64")]
fn forward_on(tiles: Tiles, xs: &[f32], ws: &[f32], bs: &[f32], s: &ShiftedConv) -> Vec<f32> {
    let (pixels, taps, img_len) = (s.oh() * s.ow(), s.c * s.kh * s.kw, s.c * s.h * s.w);
    assert!(
        xs.len() == s.n * img_len && ws.len() == s.o * taps && bs.len() == s.o,
        "shifted forward: operand sizes"
    );
    let offsets = tap_offsets(s);
    let mut out = vec![0f32; s.n * s.o * pixels];
    if pixels == 0 || s.o == 0 {
        return out;
    }
    let add_bias = |y: &mut [f32], first: usize| {
        if bs.iter().any(|&b| b != 0.0) {
            for (o, row) in y.chunks_mut(pixels).enumerate() {
                row.iter_mut().for_each(|v| *v += bs[first + o]);
            }
        }
    };
    let threads = rayon::current_num_threads().max(1);
    if s.n < threads && s.o >= 2 * threads {
        // Fewer images than threads: the threads share each image's output channels.
        let rows_per = s.o.div_ceil(threads);
        with_planes(s.planes_len(), |planes| {
            for (img, y) in out.chunks_mut(s.o * pixels).enumerate() {
                shifted_planes(&xs[img * img_len..][..img_len], s, planes);
                let planes = &*planes;
                y.par_chunks_mut(rows_per * pixels)
                    .enumerate()
                    .for_each(|(b, y)| {
                        let o0 = b * rows_per;
                        product(tiles, &ws[o0 * taps..], taps, planes, &offsets, pixels, y);
                        add_bias(y, o0);
                    });
            }
        });
        return out;
    }
    let per_task = s.n.div_ceil(threads).max(1);
    out.par_chunks_mut(per_task * s.o * pixels)
        .enumerate()
        .for_each(|(t, out)| {
            with_planes(s.planes_len(), |planes| {
                for (i, y) in out.chunks_mut(s.o * pixels).enumerate() {
                    let img = t * per_task + i;
                    shifted_planes(&xs[img * img_len..][..img_len], s, planes);
                    product(tiles, ws, taps, planes, &offsets, pixels, y);
                    add_bias(y, 0);
                }
            });
        });
    out
}

/// `y [m, pixels] = w [m, taps] (row stride taps) · B`, `B[r, j] = planes[offsets[r] + j]`:
/// the packed kernel's loop (depth blocks of `KC`, row tiles by column blocks) with both
/// operands read in place: `A`'s rows at stride `taps`, `B`'s through the offsets.
#[cfg(target_arch = "x86_64")]
fn product(
    tiles: Tiles,
    w: &[f32],
    taps: usize,
    planes: &[f32],
    offsets: &[usize],
    pixels: usize,
    y: &mut [f32],
) {
    use crate::ops::packed_gemm::KC;
    let m = y.len() / pixels;
    assert!(
        offsets.len() == taps
            && w.len() >= (m - 1) * taps + taps
            && offsets.iter().all(|&o| o + pixels <= planes.len()),
        "shifted product: operand outside its slice"
    );
    let (tile_rows, tile_cols) = (tiles.rows(), tiles.cols());
    let tile_at = |k0: usize, kc: usize, i: usize, col: usize, y: &mut [f32]| {
        let tile = Tile {
            rows: tile_rows.min(m - i),
            k: kc,
            // W's rows read in place: packing them per image was the largest cost after the
            // tile in a ResNet-18 inference at batch 1 (each weight serves few pixels there).
            a: &w[i * taps + k0..],
            lda: taps,
            offs: &offsets[k0..k0 + kc],
            col,
            cols: tile_cols.min(pixels - col),
            ldc: pixels,
            accumulate: k0 > 0,
        };
        let c = &mut y[i * pixels + col..];
        // SAFETY: the CPU has the tiles' instruction set (Tiles::for_cpu); the assert above
        // keeps every row run inside planes (col + cols ≤ pixels), and the tiles check `a`
        // and `c`.
        unsafe {
            match tiles {
                Tiles::Avx512 => avx512::forward_tile(&tile, planes, c),
                Tiles::Avx2 => avx2::forward_tile(&tile, planes, c),
            }
        }
    };
    let mut k0 = 0;
    while k0 < taps {
        let kc = KC.min(taps - k0);
        for col in (0..pixels).step_by(tile_cols) {
            for i in (0..m).step_by(tile_rows) {
                tile_at(k0, kc, i, col, y);
            }
        }
        k0 += kc;
    }
}

/// One forward tile: `C (+)= A · B` on `rows × cols` values, `A[r, kk] = a[r·lda + kk]` for
/// `kk < k`, row `kk` of `B` at `planes[offs[kk] + col ..]`, `C`'s rows `ldc` apart.
struct Tile<'a> {
    rows: usize,
    k: usize,
    a: &'a [f32],
    lda: usize,
    offs: &'a [usize],
    col: usize,
    cols: usize,
    ldc: usize,
    /// Add to `C` (a later depth block) instead of overwriting it.
    accumulate: bool,
}

/// The weight gradient as outer products: `∂L/∂Wᵀ [C·KH·KW, O] += Σ_pixels run(r)[pixel] ·
/// ∂L/∂yᵀ[pixel, :]`, with `∂L/∂y` transposed per image (`O` values per pixel, a small copy)
/// and each kernel tap `r = (c, ky, kx)` read in place from its run of the shifted planes, one
/// broadcast per pixel. A register tile holds the instruction set's accumulators (24 zmm or
/// 12 ymm): `R` taps × `NV` vectors of output channels, and runs over all pixels of a group of
/// images before it is written, so no lanes are summed.
#[cfg(target_arch = "x86_64")]
struct Outer {
    tiles: Tiles,
    /// Output channels rounded up to a multiple of the vector's lanes.
    o_pad: usize,
    /// `∂L/∂y` of the group, transposed: `[count, pixels, o_pad]` (zero padded).
    dyt: Vec<f32>,
    /// `∂L/∂Wᵀ [C·KH·KW, o_pad]`, this task's sum.
    dwt: Vec<f32>,
    /// Offset of tap `r`'s run in one image's shifted planes.
    offsets: Vec<usize>,
}

/// Most taps a weight-gradient tile covers (AVX-512 with one vector of output channels).
const MAX_TILE_TAPS: usize = 24;

#[cfg(target_arch = "x86_64")]
impl Outer {
    /// Empty sums and a transpose buffer for groups of up to `group` images of `s`.
    fn new(tiles: Tiles, s: &ShiftedConv, group: usize) -> Self {
        let o_pad = s.o.div_ceil(tiles.lanes()) * tiles.lanes();
        let taps = s.c * s.kh * KW;
        Outer {
            tiles,
            o_pad,
            dyt: vec![0f32; group * s.oh() * s.ow() * o_pad],
            dwt: vec![0f32; taps * o_pad],
            offsets: tap_offsets(s),
        }
    }

    /// Adds the group's outer products (`dy [count, o, pixels]`, `planes [count, ...]`).
    fn add_group(&mut self, dy: &[f32], planes: &[f32], s: &ShiftedConv, count: usize) {
        let pixels = s.oh() * s.ow();
        let o_pad = self.o_pad;
        // [count, o, pixels] -> [count, pixels, o_pad]
        for (img, dyt) in self.dyt.chunks_mut(pixels * o_pad).take(count).enumerate() {
            for o in 0..s.o {
                let src = &dy[(img * s.o + o) * pixels..][..pixels];
                for (p, v) in src.iter().enumerate() {
                    dyt[p * o_pad + o] = *v;
                }
            }
        }
        let taps = self.offsets.len();
        assert!(planes.len() >= count * s.planes_len() && self.dyt.len() >= count * pixels * o_pad);
        let run = Run {
            count,
            pixels,
            x_image: s.planes_len(),
            o_pad,
        };
        let lanes = self.tiles.lanes();
        let mut col = 0;
        while col < o_pad {
            let nv = ((o_pad - col) / lanes).min(self.tiles.max_vectors());
            let rows = self.tiles.accumulators() / nv;
            for r0 in (0..taps).step_by(rows) {
                let n_rows = rows.min(taps - r0);
                // A short last tile repeats its first tap for the missing rows; only n_rows
                // rows are written.
                let offs: [usize; MAX_TILE_TAPS] =
                    std::array::from_fn(|i| self.offsets[r0 + if i < n_rows { i } else { 0 }]);
                let out = &mut self.dwt[r0 * o_pad + col..];
                let dyt = &self.dyt[col..];
                // SAFETY: the CPU has the tiles' instruction set (Tiles::for_cpu); every run
                // of `pixels` values at an offset lies inside an image's shifted planes, dyt
                // holds count·pixels rows of o_pad values, and out holds n_rows rows of o_pad
                // values from column col (asserted in the tiles).
                unsafe {
                    match self.tiles {
                        Tiles::Avx512 => {
                            avx512::outer_tile(nv, &run, planes, &offs, dyt, out, n_rows)
                        }
                        Tiles::Avx2 => avx2::outer_tile(nv, &run, planes, &offs, dyt, out, n_rows),
                    }
                }
            }
            col += nv * lanes;
        }
    }

    /// Adds this task's `∂L/∂Wᵀ` into `dw [o, C·KH·KW]`.
    fn add_into(&self, s: &ShiftedConv, dw: &mut [f32]) {
        let taps = self.offsets.len();
        for (o, row) in dw.chunks_mut(taps).take(s.o).enumerate() {
            for (r, d) in row.iter_mut().enumerate() {
                *d += self.dwt[r * self.o_pad + o];
            }
        }
    }
}

/// The sizes a weight-gradient tile walks: `count` images of `pixels` pixels, image planes
/// `x_image` apart, `o_pad` values per pixel of `dyt`.
struct Run {
    count: usize,
    pixels: usize,
    x_image: usize,
    o_pad: usize,
}

/// Checks the slices a weight-gradient tile of `R` taps and `NV` vectors of `lanes` reads
/// and writes.
#[allow(clippy::too_many_arguments)]
fn check_outer_tile(
    r: usize,
    nv: usize,
    lanes: usize,
    run: &Run,
    x: &[f32],
    offs: &[usize; MAX_TILE_TAPS],
    dyt: &[f32],
    out: &[f32],
    n_rows: usize,
) {
    let (count, pixels, o_pad) = (run.count, run.pixels, run.o_pad);
    let max_off = offs[..r].iter().copied().max().unwrap_or(0);
    assert!(
        r <= MAX_TILE_TAPS
            && n_rows <= r
            && (count - 1) * run.x_image + max_off + pixels <= x.len()
            && (count * pixels - 1) * o_pad + nv * lanes <= dyt.len()
            && (n_rows - 1) * o_pad + nv * lanes <= out.len(),
        "weight_grad tile: operand outside its slice"
    );
}

/// Checks the slices a forward tile reads and writes (`cols ≤ max_cols`, `rows ≤
/// max_rows`; the caller checked the planes).
fn check_forward_tile(t: &Tile, c: &[f32], max_rows: usize, max_cols: usize) {
    assert!(
        t.rows <= max_rows
            && t.rows >= 1
            && t.offs.len() >= t.k
            && t.a.len() >= (t.rows - 1) * t.lda + t.k
            && c.len() >= (t.rows - 1) * t.ldc + t.cols
            && t.cols <= max_cols,
        "shifted tile: operand outside its slice"
    );
}

/// The weight-gradient tile `tile::<R, NV>` of one instruction set (see `Outer`): `out[i][v·V..]
/// += Σ_images Σ_p x[image·x_image + offs[i] + p] · dyt[image, p, v·V..]` for `i < n_rows`, in
/// `R × NV` accumulators of the set's vector type. Expanded inside [`avx512`] and [`avx2`],
/// where `V`, `ACCUMULATORS`, `Run` and `check_outer_tile` resolve; the arguments name the
/// target features and the intrinsics.
#[cfg(target_arch = "x86_64")]
macro_rules! outer_tile_fn {
    ($feature:literal, $vec:ty, $zero:ident, $load:ident, $splat:ident, $fmadd:ident, $add:ident,
     $store:ident) => {
        /// [`outer_tile`] for `R` taps and `NV` vectors.
        ///
        /// # Safety
        ///
        /// The CPU has the features named in `target_feature`.
        #[target_feature(enable = $feature)]
        unsafe fn tile<const R: usize, const NV: usize>(
            run: &Run,
            x: &[f32],
            offs: &[usize; MAX_TILE_TAPS],
            dyt: &[f32],
            out: &mut [f32],
            n_rows: usize,
        ) {
            assert!(R * NV == ACCUMULATORS);
            check_outer_tile(R, NV, V, run, x, offs, dyt, out, n_rows);
            let (pixels, o_pad) = (run.pixels, run.o_pad);
            let mut acc = [[$zero(); NV]; R];
            for img in 0..run.count {
                // SAFETY: the check above bounds every read: tap runs of `pixels` values and
                // `count·pixels` rows of dyt of NV vectors each.
                unsafe {
                    let xp = x.as_ptr().add(img * run.x_image);
                    let rows: [*const f32; R] = std::array::from_fn(|i| xp.add(offs[i]));
                    let mut d = dyt.as_ptr().add(img * pixels * o_pad);
                    for p in 0..pixels {
                        let dv: [$vec; NV] = std::array::from_fn(|v| $load(d.add(v * V)));
                        for (i, acc_i) in acc.iter_mut().enumerate() {
                            let xv = $splat(*rows[i].add(p));
                            for v in 0..NV {
                                acc_i[v] = $fmadd(xv, dv[v], acc_i[v]);
                            }
                        }
                        d = d.add(o_pad);
                    }
                }
            }
            for (i, acc_i) in acc.iter().enumerate().take(n_rows) {
                for (v, a) in acc_i.iter().enumerate() {
                    // SAFETY: row i < n_rows, vector v < NV: inside out (checked above).
                    unsafe {
                        let dst = out.as_mut_ptr().add(i * o_pad + v * V);
                        $store(dst, $add(*a, $load(dst)));
                    }
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{check_forward_tile, check_outer_tile, Run, Tile, MAX_TILE_TAPS};
    use std::arch::x86_64::*;

    /// Lanes of an AVX-512 vector of f32.
    pub(super) const V: usize = 16;
    /// Rows of a forward tile.
    pub(super) const ROWS: usize = crate::ops::packed_gemm::MR512;
    /// Accumulators of a weight-gradient tile.
    pub(super) const ACCUMULATORS: usize = 24;

    /// One forward tile (see [`Tile`]), monomorphised per row count (the registers are per
    /// row).
    ///
    /// # Safety
    ///
    /// The CPU has AVX-512F; row `kk` of `B` (`planes[offs[kk] + col..][..cols]`) lies inside
    /// `planes` for every `kk < k`.
    pub(super) unsafe fn forward_tile(t: &Tile, planes: &[f32], c: &mut [f32]) {
        check_forward_tile(t, c, ROWS, 2 * V);
        macro_rules! tile_for_rows {
            ($($r:literal)*) => {
                match t.rows {
                    $($r => rows_tile::<$r>(t, planes, c),)*
                    _ => rows_tile::<1>(t, planes, c),
                }
            };
        }
        // SAFETY: the caller's contract and the check above.
        unsafe { tile_for_rows!(12 11 10 9 8 7 6 5 4 3 2) }
    }

    /// [`forward_tile`] for `R` rows, with masked loads and stores for a short last tile.
    ///
    /// # Safety
    ///
    /// As [`forward_tile`], and `t.rows == R` (checked there).
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_tile<const R: usize>(t: &Tile, planes: &[f32], c: &mut [f32]) {
        let mask = |n: usize| -> __mmask16 {
            if n >= V {
                0xffff
            } else {
                ((1u32 << n) - 1) as u16
            }
        };
        let (m0, m1) = (mask(t.cols), mask(t.cols.saturating_sub(V)));
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        // SAFETY: see # Safety: every load and store stays inside its slice.
        unsafe {
            let b = planes.as_ptr().add(t.col);
            let ap = t.a.as_ptr();
            for (kk, &off) in t.offs.iter().enumerate().take(t.k) {
                let row = b.add(off);
                let b0 = _mm512_maskz_loadu_ps(m0, row);
                let b1 = _mm512_maskz_loadu_ps(m1, row.add(V));
                for r in 0..R {
                    let av = _mm512_set1_ps(*ap.add(r * t.lda + kk));
                    acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
                    acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
                }
            }
            for r in 0..R {
                let dst = c.as_mut_ptr().add(r * t.ldc);
                let (mut v0, mut v1) = (acc0[r], acc1[r]);
                if t.accumulate {
                    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, dst));
                    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, dst.add(V)));
                }
                _mm512_mask_storeu_ps(dst, m0, v0);
                _mm512_mask_storeu_ps(dst.add(V), m1, v1);
            }
        }
    }

    /// One weight-gradient tile of `nv` vectors of output channels (`24 / nv` taps):
    /// `out[i][v·16..] += Σ_images Σ_p x[image·x_image + offs[i] + p] · dyt[image, p, v·16..]`
    /// for `i < n_rows`.
    ///
    /// # Safety
    ///
    /// The CPU has AVX-512F.
    pub(super) unsafe fn outer_tile(
        nv: usize,
        run: &Run,
        x: &[f32],
        offs: &[usize; MAX_TILE_TAPS],
        dyt: &[f32],
        out: &mut [f32],
        n_rows: usize,
    ) {
        // SAFETY: the caller's contract; the tile checks its slices.
        unsafe {
            match nv {
                4 => tile::<6, 4>(run, x, offs, dyt, out, n_rows),
                3 => tile::<8, 3>(run, x, offs, dyt, out, n_rows),
                2 => tile::<12, 2>(run, x, offs, dyt, out, n_rows),
                _ => tile::<24, 1>(run, x, offs, dyt, out, n_rows),
            }
        }
    }

    outer_tile_fn!(
        "avx512f",
        __m512,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_add_ps,
        _mm512_storeu_ps
    );
}

/// The AVX2 tiles: [`avx512`]'s with 8 lanes and 16 registers. A tile with fewer than 16
/// columns loads and stores through lane masks (`vmaskmovps`), which never touch the masked
/// lanes' memory.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{check_forward_tile, check_outer_tile, Run, Tile, MAX_TILE_TAPS};
    use std::arch::x86_64::*;

    /// Lanes of an AVX2 vector of f32.
    pub(super) const V: usize = 8;
    /// Rows of a forward tile: 12 accumulators, two `B` vectors and a broadcast fill 15 of
    /// the 16 ymm registers.
    pub(super) const ROWS: usize = 6;
    /// Accumulators of a weight-gradient tile (two `∂L/∂y` vectors and a broadcast beside
    /// them).
    pub(super) const ACCUMULATORS: usize = 12;

    /// One forward tile (see [`Tile`]), monomorphised per row count.
    ///
    /// # Safety
    ///
    /// The CPU has AVX2 and FMA; row `kk` of `B` (`planes[offs[kk] + col..][..cols]`) lies
    /// inside `planes` for every `kk < k`.
    pub(super) unsafe fn forward_tile(t: &Tile, planes: &[f32], c: &mut [f32]) {
        check_forward_tile(t, c, ROWS, 2 * V);
        // SAFETY: the caller's contract and the check above.
        unsafe {
            match (t.rows, t.cols == 2 * V) {
                (6, true) => rows_tile::<6, true>(t, planes, c),
                (5, true) => rows_tile::<5, true>(t, planes, c),
                (4, true) => rows_tile::<4, true>(t, planes, c),
                (3, true) => rows_tile::<3, true>(t, planes, c),
                (2, true) => rows_tile::<2, true>(t, planes, c),
                (_, true) => rows_tile::<1, true>(t, planes, c),
                (6, false) => rows_tile::<6, false>(t, planes, c),
                (5, false) => rows_tile::<5, false>(t, planes, c),
                (4, false) => rows_tile::<4, false>(t, planes, c),
                (3, false) => rows_tile::<3, false>(t, planes, c),
                (2, false) => rows_tile::<2, false>(t, planes, c),
                (_, false) => rows_tile::<1, false>(t, planes, c),
            }
        }
    }

    /// The lane mask of the first `n` lanes (all of them for `n ≥ 8`).
    #[target_feature(enable = "avx2")]
    fn first_lanes(n: usize) -> __m256i {
        let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(V) as i32), index)
    }

    /// [`forward_tile`] for `R` rows; `FULL`: 16 columns (plain loads and stores), else
    /// masked ones.
    ///
    /// # Safety
    ///
    /// As [`forward_tile`], and `t.rows == R`, `FULL == (t.cols == 16)` (checked there).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_tile<const R: usize, const FULL: bool>(t: &Tile, planes: &[f32], c: &mut [f32]) {
        let (m0, m1) = (first_lanes(t.cols), first_lanes(t.cols.saturating_sub(V)));
        let mut acc0 = [_mm256_setzero_ps(); R];
        let mut acc1 = [_mm256_setzero_ps(); R];
        // SAFETY: see # Safety: every load and store stays inside its slice (masked lanes
        // are not accessed).
        unsafe {
            let load = |p: *const f32, m: __m256i| {
                if FULL {
                    _mm256_loadu_ps(p)
                } else {
                    _mm256_maskload_ps(p, m)
                }
            };
            let b = planes.as_ptr().add(t.col);
            let ap = t.a.as_ptr();
            for (kk, &off) in t.offs.iter().enumerate().take(t.k) {
                let row = b.add(off);
                let b0 = load(row, m0);
                let b1 = load(row.add(V), m1);
                for r in 0..R {
                    let av = _mm256_set1_ps(*ap.add(r * t.lda + kk));
                    acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
                    acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
                }
            }
            for r in 0..R {
                let dst = c.as_mut_ptr().add(r * t.ldc);
                let (mut v0, mut v1) = (acc0[r], acc1[r]);
                if t.accumulate {
                    v0 = _mm256_add_ps(v0, load(dst, m0));
                    v1 = _mm256_add_ps(v1, load(dst.add(V), m1));
                }
                if FULL {
                    _mm256_storeu_ps(dst, v0);
                    _mm256_storeu_ps(dst.add(V), v1);
                } else {
                    _mm256_maskstore_ps(dst, m0, v0);
                    _mm256_maskstore_ps(dst.add(V), m1, v1);
                }
            }
        }
    }

    /// One weight-gradient tile of `nv` vectors of output channels (`12 / nv` taps), as
    /// [`super::avx512::outer_tile`] with 8 lanes.
    ///
    /// # Safety
    ///
    /// The CPU has AVX2 and FMA.
    pub(super) unsafe fn outer_tile(
        nv: usize,
        run: &Run,
        x: &[f32],
        offs: &[usize; MAX_TILE_TAPS],
        dyt: &[f32],
        out: &mut [f32],
        n_rows: usize,
    ) {
        // SAFETY: the caller's contract; the tile checks its slices.
        unsafe {
            match nv {
                2 => tile::<6, 2>(run, x, offs, dyt, out, n_rows),
                _ => tile::<12, 1>(run, x, offs, dyt, out, n_rows),
            }
        }
    }

    outer_tile_fn!(
        "avx2,fma",
        __m256,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps,
        _mm256_storeu_ps
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, summed in f64.
    fn naive(xs: &[f32], gs: &[f32], s: &ShiftedConv) -> (Vec<f32>, Vec<f32>) {
        let (oh, ow) = (s.oh(), s.ow());
        let mut dw = vec![0f64; s.o * s.c * s.kh * KW];
        let mut db = vec![0f64; s.o];
        for n in 0..s.n {
            for o in 0..s.o {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let g = gs[((n * s.o + o) * oh + oy) * ow + ox] as f64;
                        db[o] += g;
                        for c in 0..s.c {
                            for ky in 0..s.kh {
                                for kx in 0..KW {
                                    let (iy, ix) = (oy + ky, ox + kx);
                                    if iy < s.p[0] || ix < s.p[1] {
                                        continue;
                                    }
                                    let (iy, ix) = (iy - s.p[0], ix - s.p[1]);
                                    if iy >= s.h || ix >= s.w {
                                        continue;
                                    }
                                    let xv = xs[((n * s.c + c) * s.h + iy) * s.w + ix] as f64;
                                    dw[((o * s.c + c) * s.kh + ky) * KW + kx] += g * xv;
                                }
                            }
                        }
                    }
                }
            }
        }
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
        (f(dw), f(db))
    }

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_the_definition_on_avx512_and_avx2_and_stays_off_elsewhere() {
        use crate::ops::{detected_isa, set_isa_limit, Isa};
        // (n, c, h, w, o, kh, padding), 3-wide kernels, stride 1: ResNet-20's stages (fewer
        // images), odd sizes, a tail of output channels, 1x3 and 5x3 kernels, no padding and
        // padding 2, pixels not a multiple of 16.
        let table = [
            (3, 16, 32, 32, 16, 3, [1, 1]),
            (5, 64, 8, 8, 64, 3, [1, 1]),
            (2, 3, 7, 9, 11, 3, [1, 1]),
            (3, 5, 6, 5, 13, 1, [0, 1]),
            (2, 4, 9, 7, 9, 5, [2, 0]),
            (1, 2, 3, 3, 3, 3, [2, 2]),
        ];
        let shapes = table.map(|(n, c, h, w, o, kh, p)| ShiftedConv {
            n,
            c,
            h,
            w,
            o,
            kh,
            kw: KW,
            p,
            s: [1, 1],
        });
        for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
            set_isa_limit(isa);
            if isa > detected_isa() {
                eprintln!("weight_grad: {isa:?} skipped, this CPU lacks it");
                continue;
            }
            for (k, s) in shapes.iter().enumerate() {
                let xs = random(s.n * s.c * s.h * s.w, 2 * k as u64);
                let gs = random(s.n * s.o * s.oh() * s.ow(), 2 * k as u64 + 1);
                let got = weight_grad(&xs, &gs, s);
                if isa < Isa::Avx2 {
                    assert!(got.is_none(), "{isa:?}: a vector kernel ran");
                    continue;
                }
                let (dw, db) = got.expect("AVX2 or AVX-512");
                let (want_w, want_b) = naive(&xs, &gs, s);
                for (what, got, want) in [("dw", &dw, &want_w), ("db", &db, &want_b)] {
                    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
                    let err = got
                        .iter()
                        .zip(want)
                        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(
                        err <= 1e-5 * scale * (s.n * s.oh() * s.ow()) as f32 / 16.0 + 1e-5,
                        "{isa:?} {s:?} {what}: max error {err} (scale {scale})"
                    );
                }
                // The gradient depends on the input: a changed x changes dw.
                let mut xs2 = xs.clone();
                xs2[0] += 1.0;
                assert_ne!(
                    weight_grad(&xs2, &gs, s).expect("AVX2 or AVX-512").0,
                    dw,
                    "{isa:?} {s:?}"
                );
            }
        }
        set_isa_limit(Isa::Avx512);
    }
}
