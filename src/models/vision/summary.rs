//! Per-layer inspection: output shape, parameters and multiply-adds, recorded by running a
//! model's `forward_traced` once on a one-image batch.
//!
//! Recording is opt-in: [`Trace::off`] makes every call a no-op, so the same forward code serves
//! training and `deepnet summary` without being written twice.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::Linear;
use burn::tensor::Tensor;
use serde::Serialize;

/// One row of a model summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerStat {
    /// Field path of the layer (`conv1`, `s2`, ...), or the operation's name.
    pub name: String,
    /// What the layer is (`Conv2d 1->6 5x5`, `MaxPool 2x2`, ...).
    pub kind: String,
    /// Output shape of one sample (the batch dimension dropped).
    pub output_shape: Vec<usize>,
    /// Trainable parameters of this layer.
    pub params: usize,
    /// Multiply-adds for one sample.
    pub mult_adds: u64,
    /// Side of the input window that one output pixel of this layer sees (its theoretical
    /// receptive field; the largest over parallel branches).
    pub receptive_field: usize,
}

/// Where a feature map sits relative to the input: receptive field `rf` and `jump`, the input
/// distance between adjacent pixels. A `k×k` window with stride `s` (dilation 1) maps
/// `(rf, jump)` to `(rf + (k − 1)·jump, jump·s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Receptive field side.
    pub rf: usize,
    /// Input pixels between adjacent pixels of the map.
    pub jump: usize,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry { rf: 1, jump: 1 }
    }
}

impl Geometry {
    /// The larger receptive field of two parallel branches (their jumps are equal).
    pub fn max(self, other: Geometry) -> Geometry {
        if other.rf > self.rf {
            other
        } else {
            self
        }
    }
}

/// Collects [`LayerStat`]s while a model runs, or does nothing when off.
#[derive(Debug, Default)]
pub struct Trace {
    layers: Option<Vec<LayerStat>>,
    geometry: Geometry,
    /// Feature maps kept by [`Trace::capturing`]: convolution and pooling outputs.
    captures: Option<Vec<(String, Tensor<4>)>>,
}

impl Trace {
    /// A trace that records nothing (the training path).
    pub fn off() -> Self {
        Self {
            layers: None,
            geometry: Geometry::default(),
            captures: None,
        }
    }

    /// A trace that records every layer and also keeps the output of every convolution and
    /// pooling (what `deepnet visualize activations` draws).
    pub fn capturing() -> Self {
        Self {
            captures: Some(Vec::new()),
            ..Self::on()
        }
    }

    /// The kept feature maps, in the order the layers ran.
    pub fn into_captures(self) -> Vec<(String, Tensor<4>)> {
        self.captures.unwrap_or_default()
    }

    /// Keeps `out` as a feature map (a capturing trace only) without recording a layer: a
    /// residual block's output, which no single layer produces.
    pub fn feature_map(&mut self, name: &str, out: &Tensor<4>) {
        self.capture(name, out);
    }

    fn capture<const D: usize>(&mut self, name: &str, out: &Tensor<D>) {
        if let Some(c) = &mut self.captures {
            let d = out.dims();
            if D == 4 {
                c.push((
                    name.to_string(),
                    out.clone().reshape([d[0], d[1], d[2], d[3]]),
                ));
            }
        }
    }

    /// A trace that records every layer.
    pub fn on() -> Self {
        Self {
            layers: Some(Vec::new()),
            geometry: Geometry::default(),
            captures: None,
        }
    }

    /// The current feature map's geometry (save it before a branch).
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Sets the current geometry (restore it for the next branch, or set the merge's).
    pub fn set_geometry(&mut self, g: Geometry) {
        self.geometry = g;
    }

    /// A `k×k` window with stride `stride` (convolution or pooling) was applied.
    pub fn window(&mut self, k: usize, stride: usize) {
        let g = self.geometry;
        self.geometry = Geometry {
            rf: g.rf + (k.max(1) - 1) * g.jump,
            jump: g.jump * stride.max(1),
        };
    }

    /// Records a `k×k`, stride-`stride` pooling whose output is `out`.
    pub fn pool<const D: usize>(
        &mut self,
        name: &str,
        kind: &str,
        k: usize,
        stride: usize,
        out: &Tensor<D>,
    ) {
        self.window(k, stride);
        self.op(name, kind, out);
        self.capture(name, out);
    }

    /// Whether this trace records.
    pub fn is_on(&self) -> bool {
        self.layers.is_some()
    }

    /// The recorded layers (empty when off).
    pub fn into_layers(self) -> Vec<LayerStat> {
        self.layers.unwrap_or_default()
    }

    /// Records a layer with explicit numbers. `dims` includes the batch dimension; the numbers
    /// are per sample, so `mult_adds_per_sample` must already be divided by the batch size.
    pub fn record(
        &mut self,
        name: &str,
        kind: impl FnOnce() -> String,
        dims: &[usize],
        params: usize,
        mult_adds_per_sample: u64,
    ) {
        if let Some(layers) = &mut self.layers {
            layers.push(LayerStat {
                name: name.to_string(),
                kind: kind(),
                output_shape: dims[1..].to_vec(),
                params,
                mult_adds: mult_adds_per_sample,
                receptive_field: self.geometry.rf,
            });
        }
    }

    /// Records a [`Conv2d`] whose output is `out`: one multiply-add per weight and output pixel.
    pub fn conv(&mut self, name: &str, conv: &Conv2d, out: &Tensor<4>) {
        if !self.is_on() {
            return;
        }
        let w = conv.weight.val().dims(); // [out_c, in_c / groups, kh, kw]
        self.window(w[2] + (w[2] - 1) * (conv.dilation[0] - 1), conv.stride[0]);
        let d = out.dims();
        let macs = (d[1] * d[2] * d[3]) as u64 * (w[1] * w[2] * w[3]) as u64;
        self.capture(name, out);
        self.record(
            name,
            || {
                format!(
                    "Conv2d {}->{} {}x{}{}",
                    w[1] * conv.groups,
                    w[0],
                    w[2],
                    w[3],
                    if conv.stride != [1, 1] {
                        format!(" s{}", conv.stride[0])
                    } else {
                        String::new()
                    }
                )
            },
            &d,
            conv.num_params(),
            macs,
        );
    }

    /// Records a [`Linear`] whose output is `out`.
    pub fn linear(&mut self, name: &str, linear: &Linear, out: &Tensor<2>) {
        if !self.is_on() {
            return;
        }
        let w = linear.weight.val().dims(); // [in, out]
        self.record(
            name,
            || format!("Linear {}->{}", w[0], w[1]),
            &out.dims(),
            linear.num_params(),
            (w[0] * w[1]) as u64,
        );
    }

    /// Records a parameter-free operation (activation, pooling, flatten).
    pub fn op<const D: usize>(&mut self, name: &str, kind: &str, out: &Tensor<D>) {
        if self.is_on() {
            self.record(name, || kind.to_string(), &out.dims(), 0, 0);
        }
    }
}

/// Totals of a summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryTotals {
    /// Sum of the layers' parameters.
    pub params: usize,
    /// Sum of the layers' multiply-adds for one sample.
    pub mult_adds: u64,
}

/// Adds up `layers`.
pub fn totals(layers: &[LayerStat]) -> SummaryTotals {
    SummaryTotals {
        params: layers.iter().map(|l| l.params).sum(),
        mult_adds: layers.iter().map(|l| l.mult_adds).sum(),
    }
}

/// Counts the trainable parameters of a module as PyTorch does: batch norms' running mean and
/// variance are buffers, not parameters (burn's `num_params` counts them).
pub fn trainable_params<M: Module>(module: &M) -> usize {
    #[derive(Default)]
    struct Count {
        path: Vec<String>,
        total: usize,
    }
    impl burn::module::ModuleVisitor for Count {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let buffer = self
                .path
                .last()
                .is_some_and(|n| n == "running_mean" || n == "running_var");
            if !buffer {
                self.total += param.lazy_shape().num_elements();
            }
        }
    }
    let mut c = Count::default();
    module.visit(&mut c);
    c.total
}
