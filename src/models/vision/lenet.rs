//! LeNet-5, in the two forms the lecture shows (see `shared/REFERENCE.md`).
//!
//! Both follow the lecture's shape, Conv -> Pool -> Conv -> Pool -> Conv -> FC: width and height go
//! down (28 -> 14 -> 10 -> 5 -> 1) while the number of filters goes up (6 -> 16 -> 120).
//! Inputs are 28x28 MNIST-format images, padded by 2 inside the first convolution, which is the
//! 32x32 input of the paper.
//!
//! - [`Lenet5`] (`lenet5`): the modern form. ReLU, max pooling, a full C3, a linear output layer.
//!   61,706 parameters.
//! - [`Lenet5Classic`] (`lenet5-1998`): LeCun et al. 1998 as published. Scaled tanh
//!   `f(a) = 1.7159 tanh(2a/3)` after every layer, trainable subsampling (S2, S4), C3 wired by
//!   the sparse table of the paper's Table I, and an output of 10 Euclidean RBF units over F6 with
//!   fixed ±1 centres. 60,000 trainable parameters.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::TensorData;

use super::summary::Trace;
use crate::ops::{conv2d_layer, conv2d_s1, max_pool2x2};

/// Configuration of the modern [`Lenet5`].
#[derive(Config, Debug)]
pub struct Lenet5Config {
    /// Number of output classes.
    #[config(default = 10)]
    pub num_classes: usize,
    /// Channels of the input images (1 for grey).
    #[config(default = 1)]
    pub in_channels: usize,
}

/// Modern LeNet-5: conv(5x5, 6) -> ReLU -> maxpool -> conv(5x5, 16) -> ReLU -> maxpool ->
/// conv(5x5, 120) -> ReLU -> fc(84) -> ReLU -> fc(classes).
#[derive(Module, Debug)]
pub struct Lenet5 {
    /// C1: 1 -> 6 channels, 5x5, padding 2: [6, 28, 28].
    pub conv1: Conv2d,
    /// C3: 6 -> 16 channels, 5x5, every input map: [16, 10, 10].
    pub conv2: Conv2d,
    /// C5: 16 -> 120 channels, 5x5: [120, 1, 1].
    pub conv3: Conv2d,
    /// F6: 120 -> 84.
    pub fc1: Linear,
    /// Output: 84 -> classes.
    pub fc2: Linear,
}

impl Lenet5Config {
    /// Builds the model on `device` with burn's default (Kaiming-uniform) initialization.
    pub fn init(&self, device: &Device) -> Lenet5 {
        Lenet5 {
            conv1: Conv2dConfig::new([self.in_channels, 6], [5, 5])
                .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                .init(device),
            conv2: Conv2dConfig::new([6, 16], [5, 5]).init(device),
            conv3: Conv2dConfig::new([16, 120], [5, 5]).init(device),
            fc1: LinearConfig::new(120, 84).init(device),
            fc2: LinearConfig::new(84, self.num_classes).init(device),
        }
    }
}

impl Lenet5 {
    /// Logits `[batch, classes]` for images `[batch, channels, 28, 28]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_traced(images, &mut Trace::off())
    }

    /// [`forward`](Self::forward), recording each layer into `trace`.
    pub fn forward_traced(&self, images: Tensor<4>, trace: &mut Trace) -> Tensor<2> {
        let x = conv2d_layer(&self.conv1, images); // [batch, 6, 28, 28]
        trace.conv("conv1", &self.conv1, &x);
        let x = max_pool2x2(relu(x)); // [batch, 6, 14, 14]
        trace.pool("pool1", "ReLU + MaxPool 2x2", 2, 2, &x);
        let x = conv2d_layer(&self.conv2, x); // [batch, 16, 10, 10]
        trace.conv("conv2", &self.conv2, &x);
        let x = max_pool2x2(relu(x)); // [batch, 16, 5, 5]
        trace.pool("pool2", "ReLU + MaxPool 2x2", 2, 2, &x);
        let x = conv2d_layer(&self.conv3, x); // [batch, 120, 1, 1]
        trace.conv("conv3", &self.conv3, &x);
        let x = relu(x).flatten::<2>(1, 3); // [batch, 120]
        trace.op("flatten", "ReLU + Flatten", &x);
        let x = self.fc1.forward(x); // [batch, 84]
        trace.linear("fc1", &self.fc1, &x);
        let x = relu(x);
        let x = self.fc2.forward(x); // [batch, classes]
        trace.linear("fc2", &self.fc2, &x);
        x
    }
}

/// The paper's squashing function `f(a) = A tanh(S a)` with `A = 1.7159`, `S = 2/3`
/// (LeCun et al. 1998, Appendix A): `f(±1) = ±1`, and the second derivative is largest at ±1.
/// One fused op on the CPU (`crate::ops::scaled_tanh`).
pub fn scaled_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    crate::ops::scaled_tanh(x)
}

/// Table I of LeCun et al. 1998: for each of C3's 16 feature maps, the S2 maps it reads.
/// Maps 0-5 read 3 contiguous maps, 6-11 four contiguous, 12-14 four non-contiguous, 15 all six.
pub const C3_TABLE: [&[usize]; 16] = [
    &[0, 1, 2],
    &[1, 2, 3],
    &[2, 3, 4],
    &[3, 4, 5],
    &[0, 4, 5],
    &[0, 1, 5],
    &[0, 1, 2, 3],
    &[1, 2, 3, 4],
    &[2, 3, 4, 5],
    &[0, 3, 4, 5],
    &[0, 1, 4, 5],
    &[0, 1, 2, 5],
    &[0, 1, 3, 4],
    &[1, 2, 4, 5],
    &[0, 2, 3, 5],
    &[0, 1, 2, 3, 4, 5],
];

/// Trainable subsampling (S2, S4): each map's 2x2 sum is multiplied by a trainable coefficient
/// and shifted by a trainable bias, `s_c = w_c · Σ_{2x2} x_c + b_c` (2 parameters per map).
#[derive(Module, Debug)]
pub struct Subsampling {
    /// One coefficient per map, `[channels]`.
    pub weight: Param<Tensor<1>>,
    /// One bias per map, `[channels]`.
    pub bias: Param<Tensor<1>>,
}

impl Subsampling {
    /// `channels` maps; the coefficient starts at 1/4, so the layer starts as a 2x2 mean.
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::full([channels], 0.25, device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
        }
    }

    /// `[batch, c, h, w] -> [batch, c, h/2, w/2]`, one fused op on the CPU
    /// (`crate::ops::sum_pool2x2_affine`).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        crate::ops::sum_pool2x2_affine(x, self.weight.val(), self.bias.val())
    }
}

/// C3 of the paper: a 5x5 convolution 6 -> 16 where output map `k` reads only the input maps
/// `C3_TABLE[k]`. Only the 60 connected 5x5 kernels are parameters (1,500 weights + 16 biases);
/// the dense `[16, 6, 5, 5]` kernel is assembled from them on each forward with zeros elsewhere,
/// so the unconnected weights are not parameters and get no gradient.
#[derive(Module, Debug)]
pub struct SparseConv {
    /// The connected kernels, packed: `[connections * 25]`.
    pub weight: Param<Tensor<1>>,
    /// One bias per output map, `[16]`.
    pub bias: Param<Tensor<1>>,
}

impl SparseConv {
    fn connections() -> usize {
        C3_TABLE.iter().map(|t| t.len()).sum()
    }

    /// C3 with weights uniform in ±2.4 / fan-in (the paper's initialization, Appendix A.3).
    pub fn new(device: &Device) -> Self {
        let n = Self::connections() * 25;
        let bounds: Vec<f32> = C3_TABLE
            .iter()
            .flat_map(|inputs| {
                let bound = 2.4 / (inputs.len() * 25) as f32;
                std::iter::repeat_n(bound, inputs.len() * 25)
            })
            .collect();
        let unit = Tensor::<1>::random([n], burn::tensor::Distribution::Uniform(-1.0, 1.0), device);
        let bounds = Tensor::<1>::from_data(TensorData::new(bounds, [n]), device);
        Self {
            weight: Param::from_tensor(unit * bounds),
            bias: Param::from_tensor(Tensor::zeros([16], device)),
        }
    }

    /// Index into `[packed weights, 0]` for every entry of the dense `[16, 6, 5, 5]` kernel;
    /// unconnected entries point at the trailing zero.
    fn dense_index(device: &Device) -> Tensor<1, Int> {
        let zero_slot = (Self::connections() * 25) as i64;
        let mut index = vec![zero_slot; 16 * 6 * 25];
        let mut next = 0i64;
        for (out, inputs) in C3_TABLE.iter().enumerate() {
            for &inp in inputs.iter() {
                for k in 0..25 {
                    index[(out * 6 + inp) * 25 + k] = next;
                    next += 1;
                }
            }
        }
        Tensor::from_data(TensorData::new(index, [16 * 6 * 25]), device)
    }

    /// `[batch, 6, h, w] -> [batch, 16, h-4, w-4]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let device = x.device();
        let packed = self.weight.val();
        let padded = Tensor::cat(vec![packed, Tensor::zeros([1], &device)], 0);
        let dense = padded
            .select(0, Self::dense_index(&device))
            .reshape([16, 6, 5, 5]); // [out, in, kh, kw]
        conv2d_s1(x, dense, self.bias.val(), [0, 0])
    }
}

/// A uniform draw in [0, 1) from a splitmix64 stream (deterministic, no device involved).
fn uniform01(state: &mut u64) -> f32 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}

/// The fixed RBF centres: one ±1 code of length 84 per class. The paper drew its codes as 7x12
/// bitmaps of the ASCII characters; Fashion-MNIST has no characters, so each class gets a
/// pseudo-random ±1 code from a fixed splitmix64 stream (expected Hamming distance 42 between
/// two codes). They are constants, not parameters, as in the paper.
pub fn rbf_centres(num_classes: usize) -> Vec<f32> {
    let mut state = 0x5EED_1998u64;
    (0..num_classes * 84)
        .map(|_| {
            if uniform01(&mut state) < 0.5 {
                -1.0
            } else {
                1.0
            }
        })
        .collect()
}

/// The paper's initialization (Appendix A.3): uniform in ±2.4 / fan-in, which keeps the
/// weighted sums in the range where the sigmoid is not saturated.
fn lecun_uniform(fan_in: usize) -> Initializer {
    let bound = 2.4 / fan_in as f64;
    Initializer::Uniform {
        min: -bound,
        max: bound,
    }
}

/// Configuration of [`Lenet5Classic`].
#[derive(Config, Debug)]
pub struct Lenet5ClassicConfig {
    /// Number of output classes (RBF units).
    #[config(default = 10)]
    pub num_classes: usize,
}

/// LeNet-5 as published (LeCun, Bottou, Bengio, Haffner 1998).
///
/// C1 conv 5x5 (156) -> S2 subsampling (12) -> C3 sparse conv (1,516) -> S4 subsampling (32) ->
/// C5 conv 5x5 (48,120) -> F6 fc 84 (10,164) -> RBF output (fixed centres). Every layer up to F6
/// is followed by [`scaled_tanh`]. The output unit `i` computes the squared distance
/// `y_i = Σ_j (x_j - w_ij)²` between F6 and centre `i`; the logits are `-y_i`, so cross-entropy
/// on them is the paper's MAP criterion (eq. 9) without the constant `j` term.
#[derive(Module, Debug)]
pub struct Lenet5Classic {
    /// C1: 1 -> 6, 5x5, padding 2.
    pub c1: Conv2d,
    /// S2: trainable subsampling of 6 maps.
    pub s2: Subsampling,
    /// C3: sparse 6 -> 16, 5x5.
    pub c3: SparseConv,
    /// S4: trainable subsampling of 16 maps.
    pub s4: Subsampling,
    /// C5: 16 -> 120, 5x5.
    pub c5: Conv2d,
    /// F6: 120 -> 84.
    pub f6: Linear,
    num_classes: usize,
}

impl Lenet5ClassicConfig {
    /// Builds the model on `device`.
    pub fn init(&self, device: &Device) -> Lenet5Classic {
        Lenet5Classic {
            c1: Conv2dConfig::new([1, 6], [5, 5])
                .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                .with_initializer(lecun_uniform(25))
                .init(device),
            s2: Subsampling::new(6, device),
            c3: SparseConv::new(device),
            s4: Subsampling::new(16, device),
            c5: Conv2dConfig::new([16, 120], [5, 5])
                .with_initializer(lecun_uniform(16 * 25))
                .init(device),
            f6: LinearConfig::new(120, 84)
                .with_initializer(lecun_uniform(120))
                .init(device),
            num_classes: self.num_classes,
        }
    }
}

impl Lenet5Classic {
    /// Logits `[batch, classes]` (negative RBF distances) for images `[batch, 1, 28, 28]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_traced(images, &mut Trace::off())
    }

    /// [`forward`](Self::forward), recording each layer into `trace`.
    pub fn forward_traced(&self, images: Tensor<4>, trace: &mut Trace) -> Tensor<2> {
        let x = scaled_tanh(conv2d_layer(&self.c1, images)); // [batch, 6, 28, 28]
        trace.conv("c1", &self.c1, &x);
        let x = scaled_tanh(self.s2.forward(x)); // [batch, 6, 14, 14]
        record_subsampling(trace, "s2", &self.s2, &x);
        let x = scaled_tanh(self.c3.forward(x)); // [batch, 16, 10, 10]
        trace.window(5, 1);
        if trace.is_on() {
            let d = x.dims();
            let macs = (d[2] * d[3] * SparseConv::connections() * 25) as u64;
            trace.record(
                "c3",
                || "SparseConv 6->16 5x5 (Table I)".into(),
                &d,
                self.c3.num_params(),
                macs,
            );
        }
        let x = scaled_tanh(self.s4.forward(x)); // [batch, 16, 5, 5]
        record_subsampling(trace, "s4", &self.s4, &x);
        let x = scaled_tanh(conv2d_layer(&self.c5, x)); // [batch, 120, 1, 1]
        trace.conv("c5", &self.c5, &x);
        let x = x.flatten::<2>(1, 3); // [batch, 120]
        let x = scaled_tanh(self.f6.forward(x)); // [batch, 84]
        trace.linear("f6", &self.f6, &x);
        let logits = self.rbf(x); // [batch, classes]
        if trace.is_on() {
            let d = logits.dims();
            trace.record(
                "output",
                || "RBF 84->classes (fixed)".into(),
                &d,
                0,
                (84 * d[1]) as u64,
            );
        }
        logits
    }

    /// `-Σ_j (x_j - w_ij)²` for each class `i`: `[batch, 84] -> [batch, classes]`.
    fn rbf(&self, x: Tensor<2>) -> Tensor<2> {
        let device = x.device();
        let centres = Tensor::<2>::from_data(
            TensorData::new(rbf_centres(self.num_classes), [self.num_classes, 84]),
            &device,
        ); // [classes, 84]
           // |x - w|² = |x|² - 2 x·w + |w|²
        let x2 = x.clone().powf_scalar(2.0).sum_dim(1); // [batch, 1]
        let w2 = centres
            .clone()
            .powf_scalar(2.0)
            .sum_dim(1)
            .reshape([1, self.num_classes]); // [1, classes]
        let xw = x.matmul(centres.transpose()); // [batch, classes]
        xw.mul_scalar(2.0) - x2 - w2
    }
}

fn record_subsampling(trace: &mut Trace, name: &str, s: &Subsampling, out: &Tensor<4>) {
    trace.window(2, 2);
    if trace.is_on() {
        let d = out.dims();
        let macs = (d[1] * d[2] * d[3]) as u64 * 4;
        trace.record(
            name,
            || "Subsampling 2x2 (trainable)".into(),
            &d,
            s.num_params(),
            macs,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c3_table_has_60_connections() {
        assert_eq!(SparseConv::connections(), 60);
    }

    #[test]
    fn parameter_counts_match_the_reference() {
        let device = Device::flex();
        assert_eq!(Lenet5Config::new().init(&device).num_params(), 61_706);
        assert_eq!(
            Lenet5ClassicConfig::new().init(&device).num_params(),
            60_000
        );
    }

    #[test]
    fn output_shapes() {
        let device = Device::flex();
        let x = Tensor::<4>::zeros([3, 1, 28, 28], &device);
        let modern = Lenet5Config::new().with_num_classes(7).init(&device);
        assert_eq!(modern.forward(x.clone()).dims(), [3, 7]);
        let classic = Lenet5ClassicConfig::new().init(&device);
        assert_eq!(classic.forward(x).dims(), [3, 10]);
    }

    #[test]
    fn rbf_logits_are_negative_squared_distances() {
        let device = Device::flex();
        let model = Lenet5ClassicConfig::new().init(&device);
        // F6 output equal to the code of class 3: distance 0 to it, > 0 to every other class.
        let centres = rbf_centres(10);
        let x = Tensor::<2>::from_data(
            TensorData::new(centres[3 * 84..4 * 84].to_vec(), [1, 84]),
            &device,
        );
        let logits = model.rbf(x).into_data().try_to_vec::<f32>().unwrap();
        assert!(logits[3].abs() < 1e-4, "{logits:?}");
        for (i, &l) in logits.iter().enumerate() {
            if i != 3 {
                // Codes are ±1, so each differing bit adds (±2)² = 4.
                assert!(l <= -4.0 && (l / 4.0).fract().abs() < 1e-4, "{logits:?}");
            }
        }
    }

    #[test]
    fn sparse_conv_ignores_unconnected_maps() {
        let device = Device::flex();
        let c3 = SparseConv::new(&device);
        // Output map 0 reads maps 0, 1, 2 only: changing map 5 must leave it alone.
        let x = Tensor::<4>::random([1, 6, 5, 5], burn::tensor::Distribution::Default, &device);
        let mut bumped = x.clone().into_data().try_to_vec::<f32>().unwrap();
        for v in &mut bumped[5 * 25..6 * 25] {
            *v += 1.0;
        }
        let x2 = Tensor::<4>::from_data(TensorData::new(bumped, [1, 6, 5, 5]), &device);
        let a = c3.forward(x).into_data().try_to_vec::<f32>().unwrap();
        let b = c3.forward(x2).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(a[0], b[0], "map 0 does not read map 5");
        assert_ne!(a[3], b[3], "map 3 reads map 5");
    }
}
