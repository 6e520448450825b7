//! A matrix product for the recurrent time loop: `C (+)= A · B` with a small `A` (a batch of
//! hidden states, `m ≤ ~32` rows) and a `B` that is the same for every step (the recurrent
//! weights). `B` is packed once per sequence into column panels of 16, so each step's product
//! streams the panels with no packing; an AVX2+FMA micro-kernel keeps a 6×16 tile of `C` in 12
//! registers. The general-purpose `gemm` crate re-packs `B` on every call, which for these
//! shapes costs as much as the arithmetic.

/// Columns per panel: two AVX registers of f32.
const NR: usize = 16;
/// Rows of `C` per micro-kernel call.
const MR: usize = 6;

/// `B` (`k × n`) packed into `ceil(n / 16)` panels of `k × 16` values (zero-padded).
pub(crate) struct PackedB {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl PackedB {
    fn pack(k: usize, n: usize, at: impl Fn(usize, usize) -> f32) -> Self {
        let np = n.div_ceil(NR);
        let mut panels = vec![0f32; np * k * NR];
        for p in 0..np {
            let panel = &mut panels[p * k * NR..(p + 1) * k * NR];
            for kk in 0..k {
                for j in 0..NR.min(n - p * NR) {
                    panel[kk * NR + j] = at(kk, p * NR + j);
                }
            }
        }
        PackedB { k, n, panels }
    }

    /// `B = Wᵀ` for `W` row-major `[n, k]` with row stride `ldw`: `B[kk, j] = W[j, kk]`.
    pub fn from_transposed(w: &[f32], n: usize, k: usize, ldw: usize) -> Self {
        Self::pack(k, n, |kk, j| w[j * ldw + kk])
    }

    /// `B` row-major `[k, n]` with row stride `ldb`.
    pub fn from_rows(b: &[f32], k: usize, n: usize, ldb: usize) -> Self {
        Self::pack(k, n, |kk, j| b[kk * ldb + j])
    }
}

/// `C[m × n] (row stride ldc) = (accumulate ? C : 0) + A[m × k] (row stride lda) · B`.
pub(crate) fn gemm_packed(
    m: usize,
    a: &[f32],
    lda: usize,
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let (k, n) = (b.k, b.n);
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * lda + k <= a.len() && (m - 1) * ldc + n <= c.len(),
        "gemm_packed: operand outside its slice"
    );
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked at run time); the assert above keeps every
        // access of a and c in bounds, and panels hold k·16 values each.
        unsafe { gemm_avx2(m, a, lda, b, c, ldc, accumulate) };
        return;
    }
    gemm_portable(m, a, lda, b, c, ldc, accumulate);
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

fn gemm_portable(
    m: usize,
    a: &[f32],
    lda: usize,
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
                let av = a[i * lda + kk];
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_avx2(
    m: usize,
    a: &[f32],
    lda: usize,
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let (k, n) = (b.k, b.n);
    for p in 0..n.div_ceil(NR) {
        let panel = b.panels.as_ptr().add(p * k * NR);
        let cols = NR.min(n - p * NR);
        let mut i = 0;
        while i < m {
            let rows = MR.min(m - i);
            let a_ptr = a.as_ptr().add(i * lda);
            let c_ptr = c.as_mut_ptr().add(i * ldc + p * NR);
            match rows {
                6 => tile::<6>(k, a_ptr, lda, panel, c_ptr, ldc, cols, accumulate),
                5 => tile::<5>(k, a_ptr, lda, panel, c_ptr, ldc, cols, accumulate),
                4 => tile::<4>(k, a_ptr, lda, panel, c_ptr, ldc, cols, accumulate),
                3 => tile::<3>(k, a_ptr, lda, panel, c_ptr, ldc, cols, accumulate),
                2 => tile::<2>(k, a_ptr, lda, panel, c_ptr, ldc, cols, accumulate),
                _ => tile::<1>(k, a_ptr, lda, panel, c_ptr, ldc, cols, accumulate),
            }
            i += rows;
        }
    }
}

/// One `R × 16` tile of `C`: `R · 2` accumulators, two panel loads and `R` broadcasts per `k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn tile<const R: usize>(
    k: usize,
    a: *const f32,
    lda: usize,
    panel: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for kk in 0..k {
        let b0 = _mm256_loadu_ps(panel.add(kk * NR));
        let b1 = _mm256_loadu_ps(panel.add(kk * NR + 8));
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_ps(*a.add(r * lda + kk));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_naive_product() {
        // Odd sizes: partial row tiles and a partial last panel.
        for (m, k, n) in [(1, 1, 1), (7, 5, 17), (16, 64, 256), (13, 33, 40)] {
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
            // B = Wᵀ, accumulating.
            let mut c = c0.clone();
            gemm_packed(
                m,
                &a,
                k,
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
            assert!(worst < 1e-4, "{m}x{k}x{n}: {worst}");
            // The same B given row-major, overwriting.
            let b_rows: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
            let mut c = vec![9f32; m * n];
            gemm_packed(
                m,
                &a,
                k,
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
            assert!(worst < 1e-4, "{m}x{k}x{n} rows: {worst}");
        }
    }
}
