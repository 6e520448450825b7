//! Gradient clipping with PyTorch's semantics.
//!
//! burn's `GradientClippingConfig::Norm` clips each parameter's gradient on its own; torch's
//! `clip_grad_norm_` (what the lecture and most recipes mean) clips by the norm of all gradients
//! taken together, so the direction of the whole update is kept. This module does the latter:
//!
//! `total = sqrt(Σ_p ‖g_p‖²)`, and when `total > max_norm`, every `g_p ← g_p · max_norm / (total + 1e-6)`.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let sq = g.powf_scalar(2.0).sum(); // [1]
            self.sum = Some(match self.sum.take() {
                Some(s) => s + sq,
                None => sq,
            });
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// The global L2 norm of the gradients of `module`'s parameters.
pub fn global_grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> f32 {
    let mut v = SquaredNorm { grads, sum: None };
    module.visit(&mut v);
    match v.sum {
        Some(s) => s.into_scalar::<f32>().sqrt(),
        None => 0.0,
    }
}

/// Scales the gradients so that their global norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_`. Returns the norm before clipping.
pub fn clip_grad_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f32) -> f32 {
    let total = global_grad_norm(module, grads);
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        module.visit(&mut Scale {
            grads,
            factor: coef,
        });
    }
    total
}

struct ClampValue<'a> {
    grads: &'a mut GradientsParams,
    limit: f32,
}

impl ModuleVisitor for ClampValue<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads
                .register(param.id, g.clamp(-self.limit, self.limit));
        }
    }
}

/// Clamps every gradient element to `[-limit, limit]`, as `torch.nn.utils.clip_grad_value_`.
pub fn clip_grad_value<M: Module>(module: &M, grads: &mut GradientsParams, limit: f32) {
    module.visit(&mut ClampValue { grads, limit });
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::prelude::*;
    use burn::tensor::TensorData;

    fn setup() -> (Linear, GradientsParams) {
        let device = Device::flex().autodiff();
        let mut layer = LinearConfig::new(2, 1).init(&device);
        // weight [[1], [2]], bias [0]: loss = sum(x W + b) with x = [[3, 4]] gives
        // dW = [[3], [4]], db = [1]: global norm sqrt(9 + 16 + 1) = sqrt(26).
        layer.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![1.0f32, 2.0], [2, 1]),
            &device,
        ));
        layer.bias = Some(Param::from_tensor(Tensor::zeros([1], &device)));
        let x = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 4.0], [1, 2]), &device);
        let loss = layer.forward(x).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &layer);
        (layer, grads)
    }

    #[test]
    fn clips_by_the_global_norm_like_torch() {
        let (layer, mut grads) = setup();
        let before = clip_grad_norm(&layer, &mut grads, 1.0);
        assert!((before - 26f32.sqrt()).abs() < 1e-5, "{before}");
        let after = global_grad_norm(&layer, &grads);
        assert!((after - 1.0).abs() < 1e-5, "{after}");
        // Direction kept: dW = [3, 4] / (sqrt(26) + 1e-6).
        let dw = grads
            .get::<2>(layer.weight.id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let s = 26f32.sqrt();
        assert!(
            (dw[0] - 3.0 / s).abs() < 1e-5 && (dw[1] - 4.0 / s).abs() < 1e-5,
            "{dw:?}"
        );
    }

    #[test]
    fn leaves_small_gradients_alone() {
        let (layer, mut grads) = setup();
        clip_grad_norm(&layer, &mut grads, 100.0);
        let after = global_grad_norm(&layer, &grads);
        assert!((after - 26f32.sqrt()).abs() < 1e-5);
    }

    #[test]
    fn clips_by_value() {
        let (layer, mut grads) = setup();
        clip_grad_value(&layer, &mut grads, 3.5);
        let dw = grads
            .get::<2>(layer.weight.id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(dw, vec![3.0, 3.5]);
    }
}
