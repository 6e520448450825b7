//! Element-wise functions as branch-free arithmetic the compiler vectorizes, for deepnet's own
//! kernels (the recurrent gates, LeNet-5's scaled tanh). The C library's `tanhf` and `expf`
//! are scalar calls, one value at a time; these run 8 or 16 values per instruction inside
//! `select::vectorized` loops. They use no fused multiply-add, so every instruction set gives
//! the same bits.

/// tanh as a rational function (Eigen's `generic_fast_tanh_float`): max error a few ulp on
/// [-9, 9], exactly ±1 beyond. Branch-free, so loops over slices vectorise.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = x2 * A13 + A11;
    let p = x2 * p + A9;
    let p = x2 * p + A7;
    let p = x2 * p + A5;
    let p = x2 * p + A3;
    let p = x2 * p + A1;
    let p = x * p;
    let q = x2 * B6 + B4;
    let q = x2 * q + B2;
    let q = x2 * q + B0;
    p / q
}

/// σ(x) = ½·tanh(x/2) + ½.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    0.5 * tanh(0.5 * x) + 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64's tanh on [-20, 20] in steps of 1e-4; saturated, odd, NaN-preserving.
    #[test]
    fn tanh_is_within_5e_7_of_the_exact_value() {
        let mut worst = (0f64, 0f32);
        for k in -200_000..=200_000 {
            let x = k as f32 * 1e-4;
            let err = (tanh(x) as f64 - (x as f64).tanh()).abs();
            if err > worst.0 {
                worst = (err, x);
            }
        }
        assert!(worst.0 < 5e-7, "max error {} at {}", worst.0, worst.1);
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-100.0), -1.0);
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(-0.7), -tanh(0.7));
        assert!(tanh(f32::NAN).is_nan());
        // Small values keep their relative precision.
        assert!(((tanh(1e-5) - 1e-5) / 1e-5).abs() < 1e-5);
    }

    #[test]
    fn sigmoid_is_within_5e_7_of_the_exact_value() {
        let worst = (-200_000..=200_000)
            .map(|k| {
                let x = k as f64 * 1e-4;
                (sigmoid(x as f32) as f64 - 1.0 / (1.0 + (-x).exp())).abs()
            })
            .fold(0f64, f64::max);
        assert!(worst < 5e-7, "max error {worst}");
    }
}
