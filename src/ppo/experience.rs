//! The experience of one PPO batch (Huang et al. 2024, "The N implementation details of RLHF
//! with PPO"): old log-probs and values from a forward pass of the policy, the reference's
//! log-probs, per-token rewards (the KL penalty of Ziegler et al. 2019, the normalised score at
//! the last action), GAE (Schulman et al. 2016) and whitened advantages. Index convention: the
//! module doc of [`crate::ppo`].

use crate::model::{Batch, Entropy, Gpt};
use crate::sft::reply_mask;
use burn::prelude::*;

use super::PpoConfig;

/// Generalised advantage estimation (Schulman et al. 2016) over one reply's actions:
/// `δ_t = r_t + γ V_{t+1} - V_t`, `A_t = δ_t + γ λ A_{t+1}`, with `V` after the last action 0
/// (the episode ends with the reply). Returns (advantages, returns = A + V).
pub fn gae(rewards: &[f32], values: &[f32], gamma: f32, lam: f32) -> (Vec<f32>, Vec<f32>) {
    let n = rewards.len();
    let mut adv = vec![0.0; n];
    let mut last_gae_lam = 0.0;
    for t in (0..n).rev() {
        let next_value = if t + 1 < n { values[t + 1] } else { 0.0 };
        let delta = rewards[t] + gamma * next_value - values[t];
        last_gae_lam = delta + gamma * lam * last_gae_lam;
        adv[t] = last_gae_lam;
    }
    let returns = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, returns)
}

/// `(x - mean) / std` over the entries where `mask` is 1 (TRL's `masked_whiten`); others 0.
pub fn whiten(xs: &[f32], mask: &[f32]) -> Vec<f32> {
    let n: f32 = mask.iter().sum();
    if n == 0.0 {
        return vec![0.0; xs.len()];
    }
    let mean = xs.iter().zip(mask).map(|(x, m)| x * m).sum::<f32>() / n;
    let var = xs
        .iter()
        .zip(mask)
        .map(|(x, m)| m * (x - mean).powi(2))
        .sum::<f32>()
        / n;
    let std = var.sqrt() + 1e-8;
    xs.iter()
        .zip(mask)
        .map(|(x, m)| m * (x - mean) / std)
        .collect()
}

/// One PPO batch: rolled-out replies and everything computed from them before the epochs.
/// Per-position arrays are `[B, T-1]`, row-major, in the index convention of the module doc.
#[derive(Clone, Debug)]
pub struct Experience {
    /// Prompt + reply (+ `<|end|>` when the reply finished) token ids.
    pub seqs: Vec<Vec<u32>>,
    /// Index of each reply's first token.
    pub starts: Vec<usize>,
    /// Longest sequence.
    pub t: usize,
    /// 1 on action positions.
    pub mask: Vec<f32>,
    /// log π_old(a_t | s_t) under the policy that sampled the batch.
    pub logprobs: Vec<f32>,
    /// log π_ref(a_t | s_t) under the frozen reference.
    pub ref_logprobs: Vec<f32>,
    /// Entropy of π_old at each position.
    pub entropy: Vec<f32>,
    /// V_old(s_t).
    pub values: Vec<f32>,
    /// r_t = -β (log π_old - log π_ref), plus the normalised score at the last action.
    pub rewards: Vec<f32>,
    /// Whitened GAE advantages.
    pub advantages: Vec<f32>,
    /// A + V (targets of the value loss).
    pub returns: Vec<f32>,
    /// PPO's score of each reply before normalisation: the reward model's plus the weighted
    /// reference confidence ([`crate::reward::RewardTrainer::score`]).
    pub scores: Vec<f32>,
    /// β used for the penalty.
    pub kl_coef: f64,
}

impl Experience {
    /// Replies in the batch.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// True when the batch holds no reply.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Per reply: Σ_t (log π_old - log π_ref) over its actions (the KL estimate TRL logs).
    pub fn kl_per_reply(&self) -> Vec<f64> {
        self.row_sums(|i| (self.logprobs[i] - self.ref_logprobs[i]) as f64)
    }

    pub(crate) fn row_sums(&self, f: impl Fn(usize) -> f64) -> Vec<f64> {
        let w = self.t - 1;
        (0..self.len())
            .map(|b| {
                (b * w..(b + 1) * w)
                    .filter(|&i| self.mask[i] > 0.0)
                    .map(&f)
                    .sum()
            })
            .collect()
    }
}

/// The rows `rows` of a `[B, W]` array `xs` (row-major, `W = w_all`), each cut to its first
/// `w` columns: a minibatch's `[b, w]` slice of a batch's per-position arrays.
pub(crate) fn take_rows(
    xs: &[f32],
    rows: &[usize],
    w_all: usize,
    w: usize,
    device: &Device,
) -> Tensor<2> {
    let v: Vec<f32> = rows
        .iter()
        .flat_map(|&b| xs[b * w_all..b * w_all + w].iter().copied())
        .collect();
    Tensor::from_data(TensorData::new(v, [rows.len(), w]), device)
}

/// Per-position log-probs of a right-padded batch, read back, with entropies and values when
/// `values` (the policy; the reference needs neither).
pub(crate) async fn forward_stats(
    model: &Gpt,
    batch: &Batch,
    values: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let t = batch.tokens.dims()[1];
    let hidden = model.forward(batch, None); // [B, T, C]
    let v = values.then(|| model.scores(hidden.clone()).slice(s![.., 0..t - 1])); // [B, T-1]
    let entropy = if values {
        Entropy::Detached
    } else {
        Entropy::Skip
    };
    let (logp, ent) = model.token_logprobs_and_entropy(hidden, batch.tokens.clone(), entropy);
    let logp = crate::read(logp).await;
    let ent = match ent {
        Some(e) => crate::read(e).await,
        None => Vec::new(),
    };
    let v = match v {
        Some(v) => crate::read(v).await,
        None => Vec::new(),
    };
    (logp, ent, v)
}

/// Builds the batch's experience: old log-probs, values and entropies from a forward pass of the
/// policy (not the sampler's numbers: one code path, so the first ratio is exactly 1), the
/// reference's log-probs (`ref_logprobs` when the caller has them, laid out as this batch's
/// `[B * (T-1)]`; else a forward pass of `reference`), per-token rewards, GAE and whitened
/// advantages.
#[allow(clippy::too_many_arguments)]
pub async fn make_experience(
    policy: &Gpt,
    reference: &Gpt,
    ref_logprobs: Option<Vec<f32>>,
    seqs: Vec<Vec<u32>>,
    starts: Vec<usize>,
    scores: Vec<f32>,
    normalised_scores: &[f32],
    kl_coef: f64,
    cfg: &PpoConfig,
) -> Experience {
    let device = policy
        .devices()
        .first()
        .cloned()
        .unwrap_or_else(Device::flex);
    let batch = Batch::right_padded(&seqs, &device);
    let t = batch.tokens.dims()[1];
    let w = t - 1;
    let (logprobs, entropy, values) = forward_stats(policy, &batch, true).await;
    let ref_logprobs = match ref_logprobs {
        Some(lp) => lp,
        None => forward_stats(reference, &batch, false).await.0,
    };
    assert_eq!(
        ref_logprobs.len(),
        seqs.len() * w,
        "reference log-probs' layout"
    );
    let pairs: Vec<(Vec<u32>, usize)> = seqs.iter().cloned().zip(starts.iter().copied()).collect();
    let mask = crate::read(reply_mask(&pairs, t, &device)).await; // [B*(T-1)]
    let mut rewards = vec![0.0f32; seqs.len() * w];
    let mut advantages = vec![0.0f32; seqs.len() * w];
    let mut returns = vec![0.0f32; seqs.len() * w];
    for (b, seq) in seqs.iter().enumerate() {
        // Actions of row b: positions start-1 ..= len-2.
        let first = b * w + starts[b] - 1;
        let end = b * w + seq.len() - 1;
        if first >= end {
            continue;
        }
        for i in first..end {
            let kl = logprobs[i] - ref_logprobs[i];
            rewards[i] = -(kl_coef as f32) * kl;
        }
        rewards[end - 1] += normalised_scores[b];
        let (adv, ret) = gae(
            &rewards[first..end],
            &values[first..end],
            cfg.gamma as f32,
            cfg.lam as f32,
        );
        advantages[first..end].copy_from_slice(&adv);
        returns[first..end].copy_from_slice(&ret);
    }
    let advantages = whiten(&advantages, &mask);
    Experience {
        seqs,
        starts,
        t,
        mask,
        logprobs,
        ref_logprobs,
        entropy,
        values,
        rewards,
        advantages,
        returns,
        scores,
        kl_coef,
    }
}
