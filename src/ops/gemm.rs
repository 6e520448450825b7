//! One matrix-product helper over f32 slices for deepnet's kernels (convolution, recurrent
//! layers): strided views, so transposes cost nothing. It runs on the `gemm` crate, except
//! large parallel products on an AVX-512 CPU, which go to the packed kernel's 12x32 tile
//! (`super::packed_gemm::matmul_threads`): the crate has AVX-512 only on nightly Rust, and on
//! the recurrent weight-gradient shapes the tile did 116-145 GFLOP/s on 2 threads where the
//! crate did 84-132 (AMD EPYC Zen 4).

/// A matrix view into a slice: element `(i, j)` is at `i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: isize,
    pub cs: isize,
}

impl<'a> Mat<'a> {
    /// A row-major `[rows, cols]` matrix.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            rs: cols as isize,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            rs: 1,
            cs: cols as isize,
        }
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
    assert!(dst.len() >= m * n, "matmul: destination too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let last = |v: &Mat<'_>, rows: usize, cols: usize| {
        (rows as isize - 1) * v.rs + (cols as isize - 1) * v.cs
    };
    assert!(
        last(&a, m, k) < a.data.len() as isize && last(&b, k, n) < b.data.len() as isize,
        "matmul: operand view outside its slice"
    );
    // Large products on an AVX-512 CPU: the packed kernel's 12x32 tile, 1.1-1.5x the `gemm`
    // crate's AVX2 kernels on the recurrent shapes (see the module docs).
    if parallel && m * n * k >= PACKED_MIN_WORK && super::isa() == super::Isa::Avx512 {
        let strides = |v: &Mat<'_>| [v.rs, v.cs].map(|s| usize::try_from(s).ok());
        if let ([Some(ar), Some(ac)], [Some(br), Some(bc)]) = (strides(&a), strides(&b)) {
            super::packed_gemm::matmul_threads(
                m,
                n,
                k,
                a.data,
                [ar, ac],
                b.data,
                [br, bc],
                dst,
                accumulate,
            );
            return;
        }
    }
    let parallelism = if parallel && m * n * k >= 1 << 20 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every access of a, b and dst inside their slices (strides
    // are non-negative in all callers), and dst does not alias a or b (distinct borrows).
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
            a.cs,
            a.rs,
            b.data.as_ptr(),
            b.cs,
            b.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
