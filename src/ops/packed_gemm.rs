//! A matrix product for the recurrent time loop: `C (+)= A · B` with a small `A` (a batch of
//! hidden states, `m ≤ ~32` rows) and a `B` that is the same for every step (the recurrent
//! weights). `B` is packed once per sequence into column panels of 16, so each step's product
//! streams the panels with no packing; an AVX2+FMA micro-kernel keeps a 6×16 tile of `C` in 12
//! registers, an AVX-512 one a 12×32 tile (two panels) in 24. The general-purpose `gemm` crate
//! re-packs `B` on every call, which for these shapes costs as much as the arithmetic, and has
//! no AVX-512 kernels on stable Rust.
//!
//! The convolution (`super::conv`) uses it too: there `B` is the im2col matrix, written straight
//! into panels by [`PackedB::set_row`]. On AVX-512 CPUs the large products of
//! `super::gemm::matmul` (the recurrent kernel's input projection and weight gradients) run
//! here as well, split over threads by `matmul_threads`.

thread_local! {
    /// Each thread's buffer for packed tiles of A, kept between calls (a fresh large buffer per
    /// call costs page faults).
    static APACK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Columns per panel: two AVX registers of f32.
const NR: usize = 16;
/// Rows of `C` per micro-kernel call.
const MR: usize = 6;
/// Depth of one pass over the panels (k-blocking for L1).
pub(crate) const KC: usize = 128;

/// `B` (`k × n`) packed into `ceil(n / 16)` panels of `k × 16` values (zero-padded).
pub struct PackedB {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl PackedB {
    fn pack(k: usize, n: usize, at: impl Fn(usize, usize) -> f32 + Sync) -> Self {
        use rayon::prelude::*;
        let np = n.div_ceil(NR);
        let mut panels = vec![0f32; np * k * NR];
        if np == 0 || k == 0 {
            return PackedB { k, n, panels };
        }
        let fill = |(p, panel): (usize, &mut [f32])| {
            for kk in 0..k {
                for j in 0..NR.min(n - p * NR) {
                    panel[kk * NR + j] = at(kk, p * NR + j);
                }
            }
        };
        if k * n >= 1 << 18 {
            panels.par_chunks_mut(k * NR).enumerate().for_each(fill);
        } else {
            panels.chunks_mut(k * NR).enumerate().for_each(fill);
        }
        PackedB { k, n, panels }
    }

    /// `B = Wᵀ` for `W` row-major `[n, k]` with row stride `ldw`: `B[kk, j] = W[j, kk]`.
    pub fn from_transposed(w: &[f32], n: usize, k: usize, ldw: usize) -> Self {
        Self::pack(k, n, |kk, j| w[j * ldw + kk])
    }

    /// `B` row-major `[k, n]` with row stride `ldb`.
    pub fn from_rows(b: &[f32], k: usize, n: usize, ldb: usize) -> Self {
        let mut packed = Self::zeros(k, n);
        for kk in 0..k {
            packed.set_row(kk, &b[kk * ldb..kk * ldb + n]);
        }
        packed
    }

    /// A `k × n` matrix of zeros, to be filled with [`set_row`](Self::set_row) (the
    /// convolution writes its im2col rows straight into the panels).
    pub fn zeros(k: usize, n: usize) -> Self {
        PackedB {
            k,
            n,
            panels: vec![0f32; n.div_ceil(NR) * k * NR],
        }
    }

    /// The matrix's `(k, n)`.
    /// Sets `B[kk, j] = v` (the Winograd lowering writes its transformed weights this way,
    /// straight into the panels).
    #[inline(always)]
    pub(crate) fn set(&mut self, kk: usize, j: usize, v: f32) {
        assert!(kk < self.k && j < self.n, "set: outside the matrix");
        self.panels[(j / NR) * self.k * NR + kk * NR + j % NR] = v;
    }

    pub(crate) fn dims(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// Sets row `kk` of `B` to `row` (`n` values): each run of 16 goes to its panel.
    pub fn set_row(&mut self, kk: usize, row: &[f32]) {
        assert!(
            kk < self.k && row.len() == self.n,
            "set_row: row {kk} of {}x{}",
            self.k,
            self.n
        );
        let stride = self.k * NR;
        let full = self.n / NR;
        for p in 0..full {
            // Fixed-size copies: a register move each, not a memcpy call.
            let src: &[f32; NR] = row[p * NR..(p + 1) * NR].try_into().expect("NR values");
            let at = p * stride + kk * NR;
            let dst: &mut [f32; NR] = (&mut self.panels[at..at + NR])
                .try_into()
                .expect("NR values");
            *dst = *src;
        }
        let tail = &row[full * NR..];
        if !tail.is_empty() {
            let at = full * stride + kk * NR;
            self.panels[at..at + tail.len()].copy_from_slice(tail);
        }
    }
}

/// `C[m × n] (row stride ldc) = (accumulate ? C : 0) + A[m × k] (row stride lda) · B`.
pub fn gemm_packed(
    m: usize,
    a: &[f32],
    lda: usize,
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    gemm_packed_strided(m, a, [lda, 1], b, c, ldc, accumulate);
}

/// [`gemm_packed`] with `A[i, kk] = a[i · strides[0] + kk · strides[1]]` (so `Aᵀ` of a row-major
/// matrix is `[1, cols]`).
pub fn gemm_packed_strided(
    m: usize,
    a: &[f32],
    strides: [usize; 2],
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let (k, n) = (b.k, b.n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in c.chunks_mut(ldc).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    // Checked arithmetic: a wrapped product would pass the check and the kernels would read
    // outside the slices.
    let a_last = (m - 1)
        .checked_mul(strides[0])
        .zip((k - 1).checked_mul(strides[1]))
        .and_then(|(r, c)| r.checked_add(c));
    let c_end = (m - 1).checked_mul(ldc).and_then(|r| r.checked_add(n));
    assert!(
        a_last.is_some_and(|l| l < a.len()) && c_end.is_some_and(|e| e <= c.len()),
        "gemm_packed: operand outside its slice"
    );
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU has AVX-512F (checked at run time); the assert above keeps every
        // access of a and c in bounds, and panels hold k·16 values each.
        unsafe { gemm_avx512(m, a, strides, b, c, ldc, accumulate) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: as above, for AVX2 and FMA.
        unsafe { gemm_avx2(m, a, strides, b, c, ldc, accumulate) };
        return;
    }
    gemm_portable(m, a, strides, b, c, ldc, accumulate);
}

/// `C[m × n] (+)= A · B` on the packed kernel, split over rayon's threads, for the large
/// products of the recurrent kernel's backward and input projection. `A[i, kk] =
/// a[i·sa[0] + kk·sa[1]]`, `B[kk, j] = b[kk·sb[0] + j·sb[1]]`, `C` row-major with row stride
/// `n`.
///
/// A tall product (`m ≥ 2k`, as `X · W_ihᵀ` with `T·B` rows) packs `B` once
/// and splits the rows of C. A deep one (the weight gradients `dXPᵀ · X`, `dHPᵀ · H_prev`: a
/// sum over `T·B` rows) splits the depth instead: each thread packs and multiplies its own
/// share of `B`'s rows, so no thread streams all of a packed `B` that does not fit its cache,
/// and the partial products are added at the end.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_threads(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    sa: [usize; 2],
    b: &[f32],
    sb: [usize; 2],
    c: &mut [f32],
    accumulate: bool,
) {
    use rayon::prelude::*;
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    // Rows `k0 .. k0 + kc` of B, packed: row by row when B is row-major (contiguous copies),
    // element by element otherwise.
    let pack_rows = |k0: usize, kc: usize| {
        if sb[1] == 1 {
            PackedB::from_rows(&b[k0 * sb[0]..], kc, n, sb[0])
        } else {
            PackedB::pack(kc, n, move |kk, j| b[(k0 + kk) * sb[0] + j * sb[1]])
        }
    };
    if m >= 2 * k {
        let packed = pack_rows(0, k);
        let rows = m.div_ceil(threads);
        c[..m * n]
            .par_chunks_mut(rows * n)
            .enumerate()
            .for_each(|(t, c)| {
                let i0 = t * rows;
                gemm_packed_strided(c.len() / n, &a[i0 * sa[0]..], sa, &packed, c, n, accumulate);
            });
        return;
    }
    // Depth split: chunk 0 goes straight into C, the others into buffers of their own.
    let depth = k.div_ceil(threads);
    let chunks = k.div_ceil(depth);
    let mut partials: Vec<Vec<f32>> = (1..chunks).map(|_| vec![0f32; m * n]).collect();
    let mut outs: Vec<(&mut [f32], bool)> = vec![(&mut c[..m * n], accumulate)];
    outs.extend(partials.iter_mut().map(|p| (p.as_mut_slice(), false)));
    outs.into_par_iter()
        .enumerate()
        .for_each(|(t, (out, acc))| {
            let k0 = t * depth;
            let kc = depth.min(k - k0);
            let packed = pack_rows(k0, kc);
            gemm_packed_strided(m, &a[k0 * sa[1]..], sa, &packed, out, n, acc);
        });
    for p in partials {
        c[..m * n].iter_mut().zip(p).for_each(|(x, y)| *x += y);
    }
}

/// Whether the kernels may use AVX2 and FMA now (the CPU has them, and
/// [`super::set_isa_limit`] allows them).
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2() -> bool {
    super::isa() >= super::Isa::Avx2
}

/// Whether the kernels may use AVX-512F now (the CPU has it, and neither
/// [`super::set_isa_limit`] nor `DEEPNET_NO_AVX512=1` turned it off).
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512() -> bool {
    super::isa() >= super::Isa::Avx512
}

/// Rows per AVX-512 micro-tile.
#[cfg(target_arch = "x86_64")]
pub(crate) const MR512: usize = 12;

/// One `R × 32` tile of `C` (two adjacent panels; `R × 16` when `cols ≤ 16`) in `2R` 16-lane
/// accumulators: two panel loads and `R` broadcasts per `k`, so the FMAs, not the loads, set
/// the pace (an `R × 16` tile needs a load per FMA). `pstride` is the distance between panels.
///
/// # Safety
///
/// The CPU has AVX-512F. `a` is valid for reads of `R` rows and `k` columns at `strides`;
/// `panel` (and `panel + pstride` when `cols > 16`) for `k · 16` values; `c` for writes of `R`
/// rows of `cols ≤ 32` values at row stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn tile512<const R: usize>(
    k: usize,
    a: *const f32,
    strides: [usize; 2],
    panel: *const f32,
    pstride: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    accumulate: bool,
) {
    // SAFETY: the caller upholds this function's contract (# Safety): the CPU has AVX-512F
    // and every pointer offset below is inside its operand.
    unsafe {
        use std::arch::x86_64::*;
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        if cols > NR {
            for kk in 0..k {
                let b0 = _mm512_loadu_ps(panel.add(kk * NR));
                let b1 = _mm512_loadu_ps(panel.add(pstride + kk * NR));
                for r in 0..R {
                    let av = _mm512_set1_ps(*a.add(r * strides[0] + kk * strides[1]));
                    acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
                    acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
                }
            }
        } else {
            for kk in 0..k {
                let b0 = _mm512_loadu_ps(panel.add(kk * NR));
                for (r, acc_r) in acc0.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(r * strides[0] + kk * strides[1]));
                    *acc_r = _mm512_fmadd_ps(av, b0, *acc_r);
                }
            }
        }
        let store = |dst: *mut f32, v: __m512, n: usize| {
            let mask: __mmask16 = if n >= NR { 0xffff } else { (1u16 << n) - 1 };
            let v = if accumulate {
                _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, dst))
            } else {
                v
            };
            _mm512_mask_storeu_ps(dst, mask, v);
        };
        for r in 0..R {
            let dst = c.add(r * ldc);
            store(dst, acc0[r], cols.min(NR));
            if cols > NR {
                store(dst.add(NR), acc1[r], cols - NR);
            }
        }
    }
}

fn gemm_portable(
    m: usize,
    a: &[f32],
    strides: [usize; 2],
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let (k, n) = (b.k, b.n);
    for p in 0..n.div_ceil(NR) {
        let panel = &b.panels[p * k * NR..(p + 1) * k * NR];
        let cols = NR.min(n - p * NR);
        for i in 0..m {
            let mut acc = [0f32; NR];
            for kk in 0..k {
                let av = a[i * strides[0] + kk * strides[1]];
                for (x, bv) in acc.iter_mut().zip(&panel[kk * NR..(kk + 1) * NR]) {
                    *x += av * bv;
                }
            }
            let row = &mut c[i * ldc + p * NR..i * ldc + p * NR + cols];
            for (d, v) in row.iter_mut().zip(acc) {
                *d = if accumulate { *d + v } else { v };
            }
        }
    }
}

/// The driver of a micro-kernel family: k in blocks of [`KC`]; per block, all of A's row tiles
/// packed, then panel by panel, so that a block of the panel stays in L1 across the row tiles.
/// `$tile::<R>` computes an `R × 16` tile; `$mr` is the largest `R`.
///
/// The generated function's safety contract: the CPU has the features its `target_feature`
/// names, and `A[i, kk] = a[i · strides[0] + kk · strides[1]]` for every `i < m`, `kk < b.k`,
/// and `c[(m - 1) · ldc + b.n - 1]` are inside their slices (what `gemm_packed_strided`
/// asserts).
macro_rules! driver {
    ($(#[$attr:meta])* $name:ident, $tile:ident, $mr:expr, $wide:expr, [$($r:literal),*]) => {
        $(#[$attr])*
        unsafe fn $name(
            m: usize,
            a: &[f32],
            strides: [usize; 2],
            b: &PackedB,
            c: &mut [f32],
            ldc: usize,
            accumulate: bool,
        ) {
            // SAFETY: the caller upholds the contract of `driver!`: the CPU has the
            // features, and the operands are inside their slices, so every tile call is too.
            unsafe {
                let (k, n) = (b.k, b.n);
                let tiles = m.div_ceil($mr);
                APACK.with_borrow_mut(|apack| {
                    apack.resize(tiles * KC * $mr, 0.0);
                    let mut k0 = 0;
                    while k0 < k {
                        let kc = KC.min(k - k0);
                        let acc = accumulate || k0 > 0;
                        for t in 0..tiles {
                            let i = t * $mr;
                            let rows = ($mr).min(m - i);
                            let buf = &mut apack[t * KC * $mr..(t + 1) * KC * $mr];
                            pack_a::<{ $mr }>(a, strides, i, rows, k0, kc, buf);
                        }
                        let st = [1, $mr];
                        // $wide adjacent panels per tile.
                        for p in (0..n.div_ceil(NR)).step_by($wide) {
                            let panel = b.panels.as_ptr().add(p * k * NR + k0 * NR);
                            let cols = (NR * $wide).min(n - p * NR);
                            for t in 0..tiles {
                                let i = t * $mr;
                                let rows = ($mr).min(m - i);
                                let a_ptr = apack.as_ptr().add(t * KC * $mr);
                                let c_ptr = c.as_mut_ptr().add(i * ldc + p * NR);
                                match rows {
                                    $($r => $tile::<$r>(kc, a_ptr, st, panel, k * NR, c_ptr, ldc, cols, acc),)*
                                    _ => $tile::<1>(kc, a_ptr, st, panel, k * NR, c_ptr, ldc, cols, acc),
                                }
                            }
                        }
                        k0 += kc;
                    }
                });
            }
        }
    };
}

driver!(
    /// The packed product on this family's micro-kernel.
    ///
    /// # Safety
    ///
    /// The CPU has the target features named here, and the operands are inside their slices
    /// as `gemm_packed_strided` asserts (see `driver!`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    gemm_avx512,
    tile512,
    MR512,
    2,
    [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2]
);

driver!(
    /// The packed product on this family's micro-kernel.
    ///
    /// # Safety
    ///
    /// The CPU has the target features named here, and the operands are inside their slices
    /// as `gemm_packed_strided` asserts (see `driver!`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    gemm_avx2,
    tile,
    MR,
    1,
    [6, 5, 4, 3, 2]
);

/// Copies `A[i0 .. i0 + rows, k0 .. k0 + kc]` into `out` as `out[kk · mr + r]`, so the
/// micro-kernel's broadcasts read consecutive memory whatever A's strides (a transposed A would
/// otherwise touch a new cache line and page at every `kk`).
#[inline(always)]
pub(crate) fn pack_a<const MRC: usize>(
    a: &[f32],
    strides: [usize; 2],
    i0: usize,
    rows: usize,
    k0: usize,
    kc: usize,
    out: &mut [f32],
) {
    let mr = MRC;
    if strides[0] == 1 && rows == MRC {
        // A fixed-size copy per k: a register move, not a memmove call.
        for kk in 0..kc {
            let src = (k0 + kk) * strides[1] + i0;
            let row: &[f32; MRC] = a[src..src + MRC].try_into().expect("MRC values");
            out[kk * MRC..(kk + 1) * MRC].copy_from_slice(row);
        }
    } else if strides[0] == 1 {
        for kk in 0..kc {
            let src = (k0 + kk) * strides[1] + i0;
            for r in 0..rows {
                out[kk * mr + r] = a[src + r];
            }
        }
    } else {
        for r in 0..rows {
            let row = (i0 + r) * strides[0];
            for kk in 0..kc {
                out[kk * mr + r] = a[row + (k0 + kk) * strides[1]];
            }
        }
    }
}

/// One `R × 16` tile of `C`: `R · 2` accumulators, two panel loads and `R` broadcasts per `k`.
///
/// # Safety
///
/// The CPU has AVX2 and FMA. `a` is valid for reads of `R` rows and `k` columns at `strides`;
/// `panel` for `k · 16` values; `c` for writes of `R` rows of `cols ≤ 16` values at row stride
/// `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn tile<const R: usize>(
    k: usize,
    a: *const f32,
    strides: [usize; 2],
    panel: *const f32,
    _pstride: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    accumulate: bool,
) {
    // SAFETY: the caller upholds this function's contract (# Safety): the CPU has AVX2 and
    // FMA, and every pointer offset below is inside its operand.
    unsafe {
        use std::arch::x86_64::*;
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for kk in 0..k {
            let b0 = _mm256_loadu_ps(panel.add(kk * NR));
            let b1 = _mm256_loadu_ps(panel.add(kk * NR + 8));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*a.add(r * strides[0] + kk * strides[1]));
                acc_r[0] = _mm256_fmadd_ps(av, b0, acc_r[0]);
                acc_r[1] = _mm256_fmadd_ps(av, b1, acc_r[1]);
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let dst = c.add(r * ldc);
            if cols == NR {
                let (mut v0, mut v1) = (acc_r[0], acc_r[1]);
                if accumulate {
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(dst));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(dst.add(8)));
                }
                _mm256_storeu_ps(dst, v0);
                _mm256_storeu_ps(dst.add(8), v1);
            } else {
                let mut tmp = [0f32; NR];
                _mm256_storeu_ps(tmp.as_mut_ptr(), acc_r[0]);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc_r[1]);
                for (j, v) in tmp.iter().enumerate().take(cols) {
                    let d = dst.add(j);
                    *d = if accumulate { *d + v } else { *v };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Impl = fn(usize, &[f32], [usize; 2], &PackedB, &mut [f32], usize, bool);

    /// Every implementation this CPU can run: the portable loop, AVX2, AVX-512.
    fn implementations() -> Vec<(&'static str, Impl)> {
        let mut v: Vec<(&'static str, Impl)> = vec![("portable", gemm_portable)];
        #[cfg(target_arch = "x86_64")]
        {
            // The CPU's own features, whatever limit another test set meanwhile.
            if crate::ops::detected_isa() >= crate::ops::Isa::Avx2 {
                v.push(("avx2", |m, a, st, b, c, ldc, acc| {
                    // SAFETY: only listed when the CPU has AVX2 and FMA; the tests call it on
                    // operands that gemm_packed_strided's bounds admit.
                    unsafe { gemm_avx2(m, a, st, b, c, ldc, acc) }
                }));
            }
            if crate::ops::detected_isa() >= crate::ops::Isa::Avx512 {
                v.push(("avx512", |m, a, st, b, c, ldc, acc| {
                    // SAFETY: as above, for AVX-512F.
                    unsafe { gemm_avx512(m, a, st, b, c, ldc, acc) }
                }));
            }
        }
        v
    }

    #[test]
    fn matches_a_naive_product() {
        // Odd sizes: partial row tiles, a partial last panel, several k blocks.
        for (m, k, n) in [(1, 1, 1), (7, 5, 17), (16, 64, 256), (13, 300, 40)] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.1)
                .collect();
            let c0: Vec<f32> = (0..m * n).map(|i| (i % 3) as f32).collect();
            let mut want = c0.clone();
            for i in 0..m {
                for j in 0..n {
                    let s: f32 = (0..k).map(|kk| a[i * k + kk] * w[j * k + kk]).sum();
                    want[i * n + j] += s;
                }
            }
            let at: Vec<f32> = (0..m * k).map(|i| a[(i % m) * k + i / m]).collect(); // Aᵀ
            let b_rows: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
            for (name, f) in implementations() {
                let what = format!("{name} {m}x{k}x{n}");
                // B = Wᵀ, accumulating.
                let mut c = c0.clone();
                f(
                    m,
                    &a,
                    [k, 1],
                    &PackedB::from_transposed(&w, n, k, k),
                    &mut c,
                    n,
                    true,
                );
                let worst = c
                    .iter()
                    .zip(&want)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                assert!(worst < 1e-4, "{what}: {worst}");
                // The same B given row-major, A given transposed, overwriting.
                let mut c = vec![9f32; m * n];
                f(
                    m,
                    &at,
                    [1, m],
                    &PackedB::from_rows(&b_rows, k, n, n),
                    &mut c,
                    n,
                    false,
                );
                let worst = c
                    .iter()
                    .zip(&want)
                    .zip(&c0)
                    .map(|((x, y), z)| (x - (y - z)).abs())
                    .fold(0f32, f32::max);
                assert!(worst < 1e-4, "{what} (rows, Aᵀ): {worst}");
            }
        }
    }

    #[test]
    fn threaded_product_matches_a_naive_one() {
        // Row split (m ≥ 2k) and depth split, overwriting and accumulating, on 1 to 3 threads.
        for (m, n, k) in [(300, 37, 20), (50, 37, 301), (13, 70, 1000)] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.1)
                .collect();
            let c0: Vec<f32> = (0..m * n).map(|i| (i % 3) as f32).collect();
            // A given transposed (a[kk·m + i]), B row-major.
            let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let mut want = vec![0f32; m * n];
            for i in 0..m {
                for j in 0..n {
                    want[i * n + j] = (0..k).map(|kk| a[i * k + kk] * b[kk * n + j]).sum();
                }
            }
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("a rayon pool");
                // B row-major (packed row by row) and B given transposed (element by element).
                let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
                for (accumulate, b, sb) in
                    [(false, &b, [n, 1]), (true, &b, [n, 1]), (true, &bt, [1, k])]
                {
                    let mut c = c0.clone();
                    pool.install(|| {
                        matmul_threads(m, n, k, &at, [1, m], b, sb, &mut c, accumulate)
                    });
                    let worst = c
                        .iter()
                        .zip(&want)
                        .zip(&c0)
                        .map(|((x, y), z)| (x - y - if accumulate { *z } else { 0.0 }).abs())
                        .fold(0f32, f32::max);
                    assert!(worst < 1e-3, "{m}x{n}x{k}, {threads} threads: {worst}");
                }
            }
        }
    }
}
