//! Clipping gradients by their global norm.
//!
//! burn's `GradientClipping::Norm` clips each parameter tensor on its own. PPO implementations
//! (cleanrl's `nn.utils.clip_grad_norm_`, TRL's `max_grad_norm`) clip the norm of all gradients
//! taken together, which keeps the direction of the update and only shortens it; this does the
//! same with tensor operations only, so it never reads back (safe on WebGPU).

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;

/// Collects the ids of a module's float parameters.
struct Ids(Vec<(ParamId, usize)>);

impl ModuleVisitor for Ids {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push((param.id, D));
    }
}

fn sum_sq<const D: usize>(grads: &GradientsParams, id: ParamId) -> Option<Tensor<1>> {
    grads.get::<D>(id).map(|g| g.square().sum())
}

fn scale<const D: usize>(grads: &mut GradientsParams, id: ParamId, factor: &Tensor<1>) {
    if let Some(g) = grads.remove::<D>(id) {
        let f = factor.clone().reshape([1; D]);
        grads.register::<D>(id, g * f);
    }
}

/// One optimiser step of `model` down `loss`: backward, the gradients clipped to a global norm
/// of `max_norm` ([`clip_global_norm`]), then `optim`'s update at learning rate `lr`.
pub fn descend<M: Module>(
    model: M,
    loss: Tensor<1>,
    optim: &mut burn::optim::ModuleOptimizer,
    lr: f64,
    max_norm: f32,
) -> M {
    let mut grads = GradientsParams::from_grads(loss.backward(), &model);
    clip_global_norm(&mut grads, &model, max_norm);
    optim.step(lr, model, grads)
}

/// Scales all of `grads` by `min(1, max_norm / ‖g‖)` where ‖g‖ is the L2 norm of every
/// gradient of `model` together; returns ‖g‖ before clipping (a `[1]` tensor, to log).
pub fn clip_global_norm<M: Module>(
    grads: &mut GradientsParams,
    model: &M,
    max_norm: f32,
) -> Option<Tensor<1>> {
    let mut ids = Ids(Vec::new());
    model.visit(&mut ids);
    let parts: Vec<Tensor<1>> = ids
        .0
        .iter()
        .filter_map(|&(id, d)| match d {
            1 => sum_sq::<1>(grads, id),
            2 => sum_sq::<2>(grads, id),
            3 => sum_sq::<3>(grads, id),
            4 => sum_sq::<4>(grads, id),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    let norm = Tensor::cat(parts, 0).sum().sqrt(); // [1]
    let factor = (norm.clone().add_scalar(1e-6).recip() * max_norm).clamp_max(1.0); // [1]
    for &(id, d) in &ids.0 {
        match d {
            1 => scale::<1>(grads, id, &factor),
            2 => scale::<2>(grads, id, &factor),
            3 => scale::<3>(grads, id, &factor),
            4 => scale::<4>(grads, id, &factor),
            _ => {}
        }
    }
    Some(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    #[test]
    fn clipping_scales_all_gradients_by_one_factor() {
        let device = Device::flex().autodiff();
        let lin = LinearConfig::new(3, 2).init(&device);
        let x = Tensor::<2>::from_data([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], &device);
        let loss = lin.forward(x).sum().mul_scalar(10.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &lin);
        // Every gradient of the layer, weight then bias, flattened.
        let read = |grads: &GradientsParams| -> (Vec<f32>, Vec<f32>) {
            let w = grads.get::<2>(lin.weight.id).unwrap().into_data();
            let b = grads
                .get::<1>(lin.bias.as_ref().unwrap().id)
                .unwrap()
                .into_data();
            (w.try_to_vec().unwrap(), b.try_to_vec().unwrap())
        };
        let (w0, b0) = read(&grads);
        let expected: f32 = w0.iter().chain(&b0).map(|g| g * g).sum::<f32>().sqrt();
        let norm: f32 = clip_global_norm(&mut grads, &lin, 1.0)
            .unwrap()
            .into_scalar();
        assert!(
            (norm - expected).abs() < 1e-3 * expected,
            "{norm} vs {expected}"
        );
        let (w1, b1) = read(&grads);
        let after: f32 = w1.iter().chain(&b1).map(|g| g * g).sum::<f32>().sqrt();
        assert!((after - 1.0).abs() < 1e-4, "clipped norm {after}");
        // Same direction: every component shrinks by the same factor.
        for (a, b) in w0.iter().zip(&w1) {
            assert!((a / expected - b).abs() < 1e-5);
        }
        // Under the limit nothing changes.
        let norm2: f32 = clip_global_norm(&mut grads, &lin, 10.0)
            .unwrap()
            .into_scalar();
        assert!((norm2 - 1.0).abs() < 1e-4);
    }
}
