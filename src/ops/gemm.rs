//! One matrix-product helper over f32 slices for deepnet's kernels (convolution, recurrent
//! layers): strided views, so transposes cost nothing. It runs on the `gemm` crate, except
//! large parallel products on an AVX-512 CPU, which go to the packed kernel's 12x32 tile
//! (`super::packed_gemm::matmul_threads`): the crate has AVX-512 only on nightly Rust, and on
//! the recurrent weight-gradient shapes the tile did 116-145 GFLOP/s on 2 threads where the
//! crate did 84-132 (AMD EPYC Zen 4).

/// A matrix view into a slice: element `(i, j)` is at `i * rs + j * cs`. Strides are unsigned,
/// so a view never reaches before its slice; [`matmul`] checks the last element of every view
/// with checked arithmetic before any access.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `[rows, cols]` matrix.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat::strided(data, cols, 1)
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Mat::strided(data, 1, cols)
    }
    /// Element `(i, j)` at `i * row_stride + j * col_stride`.
    pub fn strided(data: &'a [f32], row_stride: usize, col_stride: usize) -> Self {
        Mat {
            data,
            rs: row_stride,
            cs: col_stride,
        }
    }
    /// Whether a `rows × cols` view stays inside the slice (`rows, cols ≥ 1`), without
    /// overflowing.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        (rows - 1)
            .checked_mul(self.rs)
            .zip((cols - 1).checked_mul(self.cs))
            .and_then(|(r, c)| r.checked_add(c))
            .is_some_and(|last| last < self.data.len())
    }
}

/// Multiply-adds from which a parallel product runs on the packed AVX-512 kernel.
const PACKED_MIN_WORK: usize = 1 << 22;

/// `dst[m×n]` (row-major, row stride `n`) `= (accumulate ? dst : 0) + a[m×k] · b[k×n]`.
/// With `parallel`, the product is split over rayon's threads (worth it from about a million
/// multiply-adds).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    parallel: bool,
) {
    assert!(
        m.checked_mul(n).is_some_and(|mn| dst.len() >= mn),
        "matmul: destination too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    assert!(
        a.fits(m, k) && b.fits(k, n),
        "matmul: operand view outside its slice"
    );
    // Large products on an AVX-512 CPU: the packed kernel's 12x32 tile, 1.1-1.5x the `gemm`
    // crate's AVX2 kernels on the recurrent shapes (see the module docs).
    if parallel && m * n * k >= PACKED_MIN_WORK && super::isa() == super::Isa::Avx512 {
        super::packed_gemm::matmul_threads(
            m,
            n,
            k,
            a.data,
            [a.rs, a.cs],
            b.data,
            [b.rs, b.cs],
            dst,
            accumulate,
        );
        return;
    }
    let parallelism = if parallel && m * n * k >= 1 << 20 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // Every in-bounds offset of a slice fits an isize (a slice is at most isize::MAX bytes), and
    // the asserts above bound every stride by its slice's length.
    let stride = |s: usize| s as isize;
    // SAFETY: the asserts above keep every access of a, b and dst inside their slices (unsigned
    // strides, last elements checked without overflow), and dst does not alias a or b
    // (distinct borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            stride(a.cs),
            stride(a.rs),
            b.data.as_ptr(),
            stride(b.cs),
            stride(b.rs),
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
