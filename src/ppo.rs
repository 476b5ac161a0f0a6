//! Step 3 of RLHF: PPO against the reward model, with a KL penalty to a frozen reference.
//!
//! Written to be read beside the papers, in the order of cleanrl's `ppo.py`:
//! Schulman et al. 2017 (PPO: clipped surrogate, clipped value loss, epochs over minibatches),
//! Schulman et al. 2016 (GAE), Ziegler et al. 2019 (per-token KL penalty to the reference
//! model with the reward-model score added at the last token, and the adaptive KL controller),
//! Ouyang et al. 2022 (the same objective for an assistant) and Huang et al. 2024, "The N
//! implementation details of RLHF with PPO" (old log-probs recomputed by a forward pass, values
//! from a scalar head, whitened advantages). Metric names are TRL's.
//!
//! Index convention. A sequence is `<|user|> prompt <|bot|> reply <|end|>` with the reply
//! starting at index `start`. Position `j` of every `[B, T-1]` array is the action "emit token
//! `j + 1`" taken in the state "tokens `0..=j`": `logprobs[j] = log π(x_{j+1} | x_{..=j})` and
//! `values[j] = V(x_{..=j})`, read from the scalar head at position `j`. Actions are the reply's
//! tokens and its `<|end|>`: positions `start - 1 ..= len - 2`.

use crate::grad::clip_global_norm;
use crate::model::{Batch, Entropy, Gpt, masked_mean};
use crate::rng::Rng;
use crate::sft::reply_mask;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Settings of the PPO stage. Defaults from TRL's `PPOConfig` (used by its gpt2-sentiment
/// example) unless a line says otherwise; those marked "measured" were re-tuned on this model
/// (docs/TUNING.md). GAE itself is the paper's for any λ (tested with 0.95).
#[derive(Config, Debug)]
pub struct PpoConfig {
    /// AdamW learning rate. TRL's 1.41e-5 is for GPT-2 (124M parameters, thousands of
    /// iterations); this model is 140x smaller and gets one iteration per rating. Measured on
    /// the 6000-step base model (docs/TUNING.md; 10 seeds, 40 thumbs): 2e-4 took the polite
    /// rater to 87 ± 15% against 83 ± 13% at 1e-4; 3e-4 cost well-formed replies.
    #[config(default = 2e-4)]
    pub lr: f64,
    /// Replies rolled out per iteration (the PPO batch). Measured: 16 learns a rater's taste
    /// within 40 ratings where 8 drifted (too few replies to tell signal from luck).
    #[config(default = 16)]
    pub batch_size: usize,
    /// Replies per gradient step; `batch_size / minibatch_size` steps per epoch.
    #[config(default = 8)]
    pub minibatch_size: usize,
    /// Passes over the batch. TRL uses 4; 2 over twice the replies costs the same number of
    /// steps and learned faster here (measured).
    #[config(default = 2)]
    pub epochs: usize,
    /// PPO iterations (rollout, then epochs) per update.
    #[config(default = 1)]
    pub iterations: usize,
    /// Discount (1: a reply is one short episode; TRL and Ouyang et al.).
    #[config(default = 1.0)]
    pub gamma: f64,
    /// GAE λ. TRL uses 0.95; measured here (polite rater, 40 thumbs, seeds 2 and 3,
    /// docs/TUNING.md), 1.0 reached 70-82% where 0.95 reached 45-47%: rewards come only at
    /// the end of a reply and the value head starts untrained, so λ < 1 discounts the credit of
    /// the first tokens (where a polite opening is chosen) by λ^length before the values can
    /// stand in.
    #[config(default = 1.0)]
    pub lam: f64,
    /// ε of the clipped surrogate objective (0.2, Schulman et al. 2017 and TRL).
    #[config(default = 0.2)]
    pub cliprange: f64,
    /// Clip of the value update around the old values (0.2, TRL).
    #[config(default = 0.2)]
    pub cliprange_value: f64,
    /// Weight of the value loss. TRL uses 0.1; 0.5 is cleanrl's. With the value head on detached
    /// features (`value_through_trunk` off, the default) the value loss reaches only the head,
    /// whose gradient is clipped and stepped on its own, so the weight hardly matters; it counts
    /// when the trunk is shared (measured then with λ = 1: 0.5 learned faster than 0.1).
    #[config(default = 0.5)]
    pub vf_coef: f64,
    /// AdamW learning rate of the value head (the policy's scalar head). Ten times the policy's:
    /// the head starts at zero and must reach returns of a few units within a session.
    #[config(default = 1e-3)]
    pub value_lr: f64,
    /// Let the value loss train the shared transformer as well as the value head (a shared
    /// trunk, as TRL's `AutoModelForCausalLMWithValueHead`). Off, the value head reads the
    /// policy's hidden states detached: a critic on the policy's features whose loss cannot
    /// disturb the language model (Ouyang et al. keep a separate value model). Measured
    /// (docs/TUNING.md): no difference either way in preferred rate or well-formed replies, so the
    /// default is the one that cannot harm the language model.
    #[config(default = false)]
    pub value_through_trunk: bool,
    /// Weight of an entropy bonus (0: TRL has none; the KL penalty already keeps entropy up).
    #[config(default = 0.0)]
    pub ent_coef: f64,
    /// Gradient clipping by global norm (1.0, as cleanrl's `max_grad_norm` 0.5-1).
    #[config(default = 1.0)]
    pub max_grad_norm: f32,
    /// Initial β of the KL penalty (0.2, TRL `init_kl_coef`).
    #[config(default = 0.2)]
    pub init_kl_coef: f64,
    /// Adapt β towards `kl_target` (Ziegler et al. 2019); off keeps β fixed.
    #[config(default = true)]
    pub adaptive_kl: bool,
    /// Target KL per reply, in nats. TRL's `target` is 6; measured here (README, "The RLHF
    /// loop"), 3 kept long sessions well-formed where a rater's taste cannot be learnt (after
    /// 160 truthful ratings 79-81% of replies against 61-62%), and the 40-rating tables stayed
    /// within the seeds' noise (polite pairs gained: 10 seeds of 10 at 85%, against 7).
    #[config(default = 3.0)]
    pub kl_target: f64,
    /// Horizon of the adaptive controller in replies. TRL's 10 000 suits runs of 100k replies;
    /// a session here rolls out a few hundred, so 400 lets β react within it (measured).
    #[config(default = 400.0)]
    pub kl_horizon: f64,
    /// Skip a minibatch whose mean ratio exceeds this (TRL `ratio_threshold` = 10): a guard
    /// against loss spikes; skipped minibatches are counted in the metrics.
    #[config(default = 10.0)]
    pub ratio_threshold: f64,
    /// Stop the epochs early once a minibatch's approximate KL to the rollout policy exceeds
    /// this (cleanrl's `target_kl`; 0 turns it off): with a handful of replies per batch, a
    /// lucky minibatch can otherwise move the policy far in one update.
    #[config(default = 0.02)]
    pub target_kl: f64,
    /// Longest rolled-out reply, in tokens.
    #[config(default = 48)]
    pub max_new_tokens: usize,
    /// Group each epoch's minibatches by length (the shortest replies together, in a random
    /// order of minibatches), as Hugging Face's `group_by_length`: a minibatch is padded to its
    /// longest sequence, so random minibatches of replies from 5 to 48 tokens spend much of
    /// their work on padding. Every reply is still used once an epoch; only which replies share
    /// a step changes. Off: cleanrl's uniform shuffle.
    #[config(default = true)]
    pub group_by_length: bool,
}

impl PpoConfig {
    /// The optimiser of this stage (AdamW, no weight decay; clipping is done by global norm).
    pub fn optimizer(&self) -> ModuleOptimizer {
        AdamWConfig::new().with_weight_decay(0.0).init()
    }
}

/// One epoch's minibatches: the rows `0..lengths.len()` in chunks of `size`. Shuffled as in
/// cleanrl; with `group_by_length`, then stably sorted by length (so equal lengths stay in a
/// random order), cut into chunks, and the chunks shuffled, so that each minibatch holds
/// replies of similar length and the epoch still visits them in a random order.
pub fn minibatches(
    lengths: &[usize],
    size: usize,
    group_by_length: bool,
    rng: &mut Rng,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    rng.shuffle(&mut order);
    if group_by_length {
        order.sort_by_key(|&b| lengths[b]);
    }
    let mut chunks: Vec<Vec<usize>> = order.chunks(size.max(1)).map(<[usize]>::to_vec).collect();
    if group_by_length {
        rng.shuffle(&mut chunks);
    }
    chunks
}

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
    /// Raw reward-model scores, one per reply.
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

    fn row_sums(&self, f: impl Fn(usize) -> f64) -> Vec<f64> {
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

/// Per-position log-probs of a right-padded batch, read back, with entropies and values when
/// `values` (the policy; the reference needs neither).
async fn forward_stats(model: &Gpt, batch: &Batch, values: bool) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
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

/// The losses of one minibatch, each a `[1]` tensor.
pub struct Losses {
    pub pg_loss: Tensor<1>,
    pub v_loss: Tensor<1>,
    pub approx_kl: Tensor<1>,
    pub clipfrac: Tensor<1>,
    pub ratio: Tensor<1>,
}

/// PPO's clipped policy and value losses over the positions where `mask` is 1; all inputs
/// `[B, T-1]`.
#[allow(clippy::too_many_arguments)]
pub fn clipped_losses(
    newlogprob: Tensor<2>,
    mb_logprobs: Tensor<2>,
    newvalue: Tensor<2>,
    mb_values: Tensor<2>,
    mb_advantages: Tensor<2>,
    mb_returns: Tensor<2>,
    mask: Tensor<2>,
    cfg: &PpoConfig,
) -> Losses {
    let logratio = newlogprob - mb_logprobs;
    let ratio = logratio.clone().exp();
    let approx_kl = masked_mean(logratio.powi_scalar(2), mask.clone()).mul_scalar(0.5);
    let clipped = (ratio.clone().sub_scalar(1.0).abs())
        .greater_elem(cfg.cliprange)
        .float();
    let clipfrac = masked_mean(clipped, mask.clone());

    // Policy loss: the clipped surrogate objective, negated (Schulman et al. 2017, eq. 7).
    let pg_loss1 = mb_advantages.clone().neg() * ratio.clone();
    let pg_loss2 = mb_advantages.neg()
        * ratio
            .clone()
            .clamp(1.0 - cfg.cliprange, 1.0 + cfg.cliprange);
    let pg_loss = masked_mean(pg_loss1.max_pair(pg_loss2), mask.clone());

    // Value loss, clipped around the old values (as in TRL and cleanrl's `clip_vloss`).
    let v_loss_unclipped = (newvalue.clone() - mb_returns.clone()).powi_scalar(2);
    let v_clipped =
        mb_values.clone() + (newvalue - mb_values).clamp(-cfg.cliprange_value, cfg.cliprange_value);
    let v_loss_clipped = (v_clipped - mb_returns).powi_scalar(2);
    let v_loss =
        masked_mean(v_loss_unclipped.max_pair(v_loss_clipped), mask.clone()).mul_scalar(0.5);
    Losses {
        pg_loss,
        v_loss,
        approx_kl,
        clipfrac,
        ratio: masked_mean(ratio, mask),
    }
}

/// One PPO gradient step on the replies `rows` of `exp`.
pub async fn train_minibatch(
    policy: Gpt,
    optim: &mut ModuleOptimizer,
    exp: &Experience,
    rows: &[usize],
    cfg: &PpoConfig,
    device: &Device,
) -> (Gpt, MinibatchStats) {
    let seqs: Vec<Vec<u32>> = rows.iter().map(|&b| exp.seqs[b].clone()).collect();
    let batch = Batch::right_padded(&seqs, device);
    let t = batch.tokens.dims()[1];
    let (w_all, w) = (exp.t - 1, t - 1);
    // Rows of the experience's [B, T-1] arrays, cut to this minibatch's width: [b, T'-1].
    let take = |xs: &[f32]| -> Tensor<2> {
        let v: Vec<f32> = rows
            .iter()
            .flat_map(|&b| xs[b * w_all..b * w_all + w].iter().copied())
            .collect();
        Tensor::from_data(TensorData::new(v, [rows.len(), w]), device)
    };
    let mask = take(&exp.mask);
    let mb_logprobs = take(&exp.logprobs);
    let mb_values = take(&exp.values);
    let mb_advantages = take(&exp.advantages);
    let mb_returns = take(&exp.returns);

    let hidden = policy.forward(&batch, None); // [b, T', C]
    let value_input = if cfg.value_through_trunk {
        hidden.clone()
    } else {
        hidden.clone().detach()
    };
    let newvalue = policy.scores(value_input).slice(s![.., 0..w]); // [b, T'-1]
    // With no entropy bonus (the default) the entropy is a metric, kept out of the backward pass.
    let with_grad = if cfg.ent_coef != 0.0 {
        Entropy::Tracked
    } else {
        Entropy::Detached
    };
    let (newlogprob, entropy) =
        policy.token_logprobs_and_entropy(hidden, batch.tokens.clone(), with_grad); // [b, T'-1]
    let entropy = entropy.expect("entropy asked");

    let l = clipped_losses(
        newlogprob,
        mb_logprobs,
        newvalue,
        mb_values,
        mb_advantages,
        mb_returns,
        mask.clone(),
        cfg,
    );
    let entropy_loss = masked_mean(entropy, mask);
    let loss = l.pg_loss.clone() - entropy_loss.clone().mul_scalar(cfg.ent_coef)
        + l.v_loss.clone().mul_scalar(cfg.vf_coef);

    let stats = crate::read(Tensor::cat(
        vec![
            l.pg_loss,
            l.v_loss,
            l.approx_kl,
            l.clipfrac,
            l.ratio,
            entropy_loss,
        ],
        0,
    ))
    .await;
    let mut out = MinibatchStats {
        pg_loss: stats[0] as f64,
        v_loss: stats[1] as f64,
        approx_kl: stats[2] as f64,
        clipfrac: stats[3] as f64,
        ratio: stats[4] as f64,
        entropy: stats[5] as f64,
        skipped: false,
    };
    // TRL's guard: a minibatch whose ratio exploded would make a destructive step.
    if out.ratio.is_nan() || out.ratio > cfg.ratio_threshold {
        out.skipped = true;
        return (policy, out);
    }
    // The value head steps at its own learning rate, its gradient clipped on its own so that a
    // large value error does not shrink the policy's step.
    let mut raw = loss.backward();
    let mut head_grads = GradientsParams::from_module(&mut raw, policy.score_head());
    let mut grads = GradientsParams::from_grads(raw, &policy);
    clip_global_norm(&mut grads, &policy, cfg.max_grad_norm);
    clip_global_norm(&mut head_grads, policy.score_head(), cfg.max_grad_norm);
    let policy = optim.step(cfg.lr, policy, grads);
    let policy = optim.step(cfg.value_lr, policy, head_grads);
    (policy, out)
}

/// Metrics of one PPO iteration, under TRL's names (`objective/kl`, `policy/clipfrac_avg`, ...).
pub fn metrics(exp: &Experience, steps: &[MinibatchStats]) -> BTreeMap<String, f64> {
    let n = exp.len().max(1) as f64;
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
    let var_explained = if var_r == 0.0 {
        f64::NAN
    } else {
        1.0 - var(&resid) / var_r
    };
    let mut m = BTreeMap::new();
    m.insert("objective/kl".into(), mean(&kl));
    m.insert("objective/entropy".into(), mean(&entropy));
    m.insert("objective/scores".into(), mean(&scores));
    m.insert("objective/non_score_reward".into(), mean(&non_score));
    m.insert(
        "objective/rlhf_reward".into(),
        mean(&scores) + mean(&non_score),
    );
    m.insert("objective/kl_coef".into(), exp.kl_coef);
    m.insert("policy/approxkl_avg".into(), avg(|s| s.approx_kl));
    m.insert("policy/clipfrac_avg".into(), avg(|s| s.clipfrac));
    m.insert("policy/entropy_avg".into(), avg(|s| s.entropy));
    m.insert("loss/policy_avg".into(), avg(|s| s.pg_loss));
    m.insert("loss/value_avg".into(), avg(|s| s.v_loss));
    m.insert("val/ratio".into(), avg(|s| s.ratio));
    m.insert("val/var_explained".into(), var_explained);
    m.insert(
        "val/num_skipped_minibatches".into(),
        steps.iter().filter(|s| s.skipped).count() as f64,
    );
    m.insert("val/num_replies".into(), n);
    m.insert("policy/minibatches".into(), steps.len() as f64);
    m
}

#[cfg(test)]
mod tests;
