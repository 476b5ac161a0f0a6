//! The adaptive KL controller of Ziegler et al. (2019), section 2.2.

use serde::{Deserialize, Serialize};

use super::PpoConfig;

/// The adaptive KL controller of Ziegler et al. (2019), section 2.2: β moves by at most ±20%
/// of `n_steps / horizon` per update, towards the target KL.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KlController {
    pub value: f64,
    pub target: f64,
    pub horizon: f64,
    pub adaptive: bool,
}

impl KlController {
    pub fn new(cfg: &PpoConfig) -> Self {
        Self {
            value: cfg.init_kl_coef,
            target: cfg.kl_target,
            horizon: cfg.kl_horizon,
            adaptive: cfg.adaptive_kl,
        }
    }

    /// `e_t = clip(KL_t / KL_target - 1, -0.2, 0.2)`; `β ← β (1 + K_β e_t)` with
    /// `K_β = n_steps / horizon`.
    pub fn update(&mut self, current_kl: f64, n_steps: usize) {
        if !self.adaptive {
            return;
        }
        let proportional_error = (current_kl / self.target - 1.0).clamp(-0.2, 0.2);
        let mult = 1.0 + proportional_error * n_steps as f64 / self.horizon;
        self.value *= mult;
    }
}
