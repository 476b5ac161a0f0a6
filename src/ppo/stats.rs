//! What a PPO iteration measured: each minibatch step's figures, and the iteration's
//! [`PpoStats`] under TRL's names.

use crate::metrics::PpoStats;
use burn::prelude::*;

use super::{Experience, Losses};

/// What one minibatch step measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MinibatchStats {
    pub pg_loss: f64,
    pub v_loss: f64,
    /// ½ E[(log π - log π_old)²], TRL's `approxkl`.
    pub approx_kl: f64,
    /// Share of actions whose ratio left [1-ε, 1+ε].
    pub clipfrac: f64,
    /// Mean ratio π / π_old.
    pub ratio: f64,
    pub entropy: f64,
    /// True when the ratio guard skipped the update.
    pub skipped: bool,
}

impl MinibatchStats {
    /// Reads a minibatch's losses and its mean entropy back, in one transfer.
    pub async fn read(l: Losses, entropy: Tensor<1>) -> MinibatchStats {
        let parts = vec![
            l.pg_loss,
            l.v_loss,
            l.approx_kl,
            l.clipfrac,
            l.ratio,
            entropy,
        ];
        let v = crate::read(Tensor::cat(parts, 0)).await;
        MinibatchStats {
            pg_loss: v[0] as f64,
            v_loss: v[1] as f64,
            approx_kl: v[2] as f64,
            clipfrac: v[3] as f64,
            ratio: v[4] as f64,
            entropy: v[5] as f64,
            skipped: false,
        }
    }
}

/// What one PPO iteration measured, under TRL's names: the batch's KL, entropy and scores,
/// and the minibatch steps' averages (over the steps the ratio guard let through).
/// `confidence` is the rollouts' mean reference confidence; `kl_coef_next` is left at the
/// batch's β for the caller to set once the controller has moved.
pub fn iteration_stats(exp: &Experience, steps: &[MinibatchStats], confidence: f64) -> PpoStats {
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    let kl = exp.kl_per_reply();
    let entropy = exp.row_sums(|i| exp.entropy[i] as f64);
    let scores: Vec<f64> = exp.scores.iter().map(|&s| s as f64).collect();
    let non_score: Vec<f64> = kl.iter().map(|k| -exp.kl_coef * k).collect();
    let done: Vec<&MinibatchStats> = steps.iter().filter(|s| !s.skipped).collect();
    let avg = |f: fn(&MinibatchStats) -> f64| {
        if done.is_empty() {
            0.0
        } else {
            done.iter().map(|s| f(s)).sum::<f64>() / done.len() as f64
        }
    };
    // Explained variance of the old values against the returns (cleanrl's `explained_var`).
    let (mut v, mut r) = (Vec::new(), Vec::new());
    for i in 0..exp.mask.len() {
        if exp.mask[i] > 0.0 {
            v.push(exp.values[i] as f64);
            r.push(exp.returns[i] as f64);
        }
    }
    let var = |xs: &[f64]| {
        let m = mean(xs);
        xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len().max(1) as f64
    };
    let resid: Vec<f64> = r.iter().zip(&v).map(|(r, v)| r - v).collect();
    let var_r = var(&r);
    PpoStats {
        kl: mean(&kl),
        entropy: mean(&entropy),
        scores: mean(&scores),
        non_score_reward: mean(&non_score),
        rlhf_reward: mean(&scores) + mean(&non_score),
        kl_coef: exp.kl_coef,
        kl_coef_next: exp.kl_coef,
        confidence,
        approxkl_avg: avg(|s| s.approx_kl),
        clipfrac_avg: avg(|s| s.clipfrac),
        entropy_avg: avg(|s| s.entropy),
        minibatches: steps.len(),
        policy_avg: avg(|s| s.pg_loss),
        value_avg: avg(|s| s.v_loss),
        ratio: avg(|s| s.ratio),
        var_explained: (var_r != 0.0).then(|| 1.0 - var(&resid) / var_r),
        num_skipped_minibatches: steps.iter().filter(|s| s.skipped).count(),
        num_replies: exp.len().max(1),
    }
}
