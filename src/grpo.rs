//! Group relative policy optimisation (GRPO, Shao et al. 2024, "DeepSeekMath", section 4.1):
//! PPO's clipped objective without a value head. The policy writes G replies to each prompt,
//! the reward model scores them, and each reply's advantage is its score against its group's:
//! (r − mean) / std. The KL to the reference is a term of the loss (not a per-token reward), with
//! the unbiased estimator π_ref/π − log(π_ref/π) − 1.
//!
//! Index convention as in [`crate::ppo`]: position `j` of a `[B, T-1]` array predicts token
//! `j + 1`, and a reply's actions are positions `start - 1 ..= len - 2`.

use crate::grad::descend;
use crate::metrics::{GrpoStats, Metrics};
use crate::model::{Batch, Gpt};
use crate::ppo::{
    Context, Rollouts, forward_stats, minibatches, roll_out, rollout_prompts, take_rows,
};
use crate::report::Slice;
use crate::settings::config;
use crate::sft::reply_mask;
use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::prelude::*;

config! {
    /// Settings of GRPO (method = grpo). Why each default: docs/TUNING.md, "GRPO".
    pub struct GrpoConfig in "GRPO" {
        /// G: replies written to each prompt and compared with one another.
        group_size: usize = 4 in 2..=16, "Replies per prompt G", basic;
        /// Prompts per iteration (the batch is prompts × G replies).
        prompts: usize = 4 in 1..=16, "GRPO prompts per update", basic;
        /// Size of each GRPO step (AdamW).
        lr: f64 = 2e-4 in 1e-7..=0.1, "GRPO learning rate", basic;
        /// β of the KL term in the loss (0.04, as in the DeepSeekMath paper).
        beta: f64 = 0.04 in 0.0..=10.0, "GRPO β (KL weight)", basic;
        /// Passes over each batch (μ in the paper).
        epochs: usize = 2 in 1..=20, "GRPO epochs", advanced;
        /// Replies per gradient step.
        minibatch_size: usize = 8 in 1..=64, "Replies per GRPO step", advanced;
        /// ε of the clipped objective.
        cliprange: f64 = 0.2 in 0.01..=1.0, "GRPO clip range ε", advanced;
        /// Gradients are scaled down to at most this global norm.
        max_grad_norm: f32 = 1.0 in 1e-3..=1e3, "GRPO gradient clip", advanced;
        /// Longest reply GRPO writes, in tokens.
        max_new_tokens: usize = 48 in 1..=96, "Longest GRPO reply", advanced;
    }
}

/// Group-relative advantages (Shao et al. 2024, eq. 4 with outcome supervision): each score
/// against the other scores to its prompt, Â_i = (r_i − mean(r)) / std(r), with the sample
/// standard deviation as TRL computes it. A group whose scores are all equal teaches nothing:
/// its advantages are 0.
pub fn group_advantages(scores: &[f32], group: usize) -> Vec<f32> {
    scores
        .chunks(group.max(1))
        .flat_map(|g| {
            let n = g.len() as f32;
            let mean = g.iter().sum::<f32>() / n;
            let var = g.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / (n - 1.0).max(1.0);
            let std = var.sqrt();
            g.iter()
                .map(move |r| if std < 1e-6 { 0.0 } else { (r - mean) / std })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// GRPO's loss and what it measured, each a `[1]` tensor.
pub struct GrpoLosses {
    pub loss: Tensor<1>,
    /// Mean per-token KL estimate to the reference.
    pub kl: Tensor<1>,
    /// Share of actions whose ratio the clip held back (below 1 − ε with Â < 0, above 1 + ε
    /// with Â > 0).
    pub clipfrac: Tensor<1>,
}

/// GRPO's objective, negated (Shao et al. 2024, eq. 3), over the positions where `mask` is 1;
/// every input `[B, T-1]`, `advantages` repeating each reply's Â along its row:
///
/// ```text
/// ratio = π(a_t) / π_old(a_t)
/// per token: −min(ratio · Â, clip(ratio, 1 − ε, 1 + ε) · Â) + β (π_ref/π − log(π_ref/π) − 1)
/// L = mean over replies of (1/|o_i|) Σ_t per token
/// ```
pub fn grpo_loss(
    newlogprob: Tensor<2>,
    oldlogprob: Tensor<2>,
    reflogprob: Tensor<2>,
    advantages: Tensor<2>,
    mask: Tensor<2>,
    cliprange: f64,
    beta: f64,
) -> GrpoLosses {
    let ratio = (newlogprob.clone() - oldlogprob).exp();
    let advantage = advantages.clone();
    let pg_loss1 = advantages.clone().neg() * ratio.clone();
    let pg_loss2 = advantages.neg() * ratio.clone().clamp(1.0 - cliprange, 1.0 + cliprange);
    let log_ref_ratio = reflogprob - newlogprob; // log(π_ref/π)
    let kl = log_ref_ratio.clone().exp() - log_ref_ratio - 1.0;
    let per_token = pg_loss1.max_pair(pg_loss2) + kl.clone() * beta; // [B, T-1]
    let lengths = mask.clone().sum_dim(1).clamp_min(1.0); // [B, 1]
    let per_reply = (per_token * mask.clone()).sum_dim(1) / lengths; // [B, 1]
    // Clipping that is active, as TRL's `clip_ratio`: the ratio below 1 − ε where Â < 0, or
    // above 1 + ε where Â > 0.
    let low = ratio.clone().lower_elem(1.0 - cliprange).float()
        * advantage.clone().lower_elem(0.0).float();
    let high = ratio.greater_elem(1.0 + cliprange).float() * advantage.greater_elem(0.0).float();
    let clipped = low + high;
    GrpoLosses {
        loss: per_reply.mean(),
        kl: crate::model::masked_mean(kl, mask.clone()),
        clipfrac: crate::model::masked_mean(clipped, mask),
    }
}

/// One GRPO batch: the groups' replies and what was read from them before the epochs.
#[derive(Clone)]
struct Rollout {
    seqs: Vec<Vec<u32>>,
    /// Longest sequence.
    t: usize,
    /// `[B * (T-1)]`: action mask, log π_old, log π_ref, and each row's advantage.
    mask: Vec<f32>,
    old: Vec<f32>,
    reference: Vec<f32>,
    advantages: Vec<f32>,
    scores: Vec<f32>,
    /// Groups in the batch, and those whose replies all scored alike.
    groups: usize,
    zero_std_groups: usize,
    minibatches: Vec<Vec<usize>>,
    epoch: usize,
    mb: usize,
    /// Each step's (loss, kl, clipfrac).
    stats: Vec<[f64; 3]>,
}

/// GRPO's optimiser and settings, and the batch in flight. Like SFT, it steps the policy that
/// [`crate::ppo::PpoTrainer`] holds; it reads the reward model through the same
/// [`Context`] as PPO.
#[derive(Clone)]
pub struct GrpoTrainer {
    cfg: GrpoConfig,
    optim: ModuleOptimizer,
    device: Device,
    batch: Option<Rollout>,
    losses: Vec<f64>,
}

impl GrpoTrainer {
    /// A trainer whose steps run on `device`'s autodiff form.
    pub fn new(cfg: GrpoConfig, device: &Device) -> Self {
        Self {
            optim: AdamWConfig::new().with_weight_decay(0.0).init(),
            cfg,
            device: device.clone().autodiff(),
            batch: None,
            losses: Vec::new(),
        }
    }

    /// New settings from the next slice on; the optimiser keeps its state.
    pub fn set_config(&mut self, cfg: GrpoConfig) {
        self.cfg = cfg;
    }

    /// Starts an update's GRPO stage.
    pub fn begin(&mut self) {
        self.batch = None;
        self.losses.clear();
    }

    /// One slice: the rollout and its advantages, or one minibatch step. `rollouts` receives
    /// the (prompt, reply) texts.
    pub async fn step(
        &mut self,
        policy: Gpt,
        mut cx: Context<'_>,
        rollouts: &mut Vec<(String, String)>,
    ) -> (Gpt, Slice) {
        let c = &self.cfg;
        let size = c.prompts * c.group_size;
        let steps = 1 + c.epochs * size.div_ceil(c.minibatch_size);
        let Some(mut b) = self.batch.take() else {
            if !cx.reward.is_fitted() {
                return (
                    policy,
                    Slice::Skipped("the reward model has no ratings to learn from yet"),
                );
            }
            let batch = self.rollout(&policy, &mut cx, rollouts).await;
            self.batch = Some(batch);
            return (policy, Slice::Progress { step: 1, steps });
        };
        let rows = b.minibatches[b.mb].clone();
        let (policy, stats) = self.train_minibatch(policy, &b, &rows).await;
        self.losses.push(stats[0]);
        b.stats.push(stats);
        let step = 2 + b.epoch * b.minibatches.len() + b.mb;
        if b.mb + 1 < b.minibatches.len() {
            b.mb += 1;
            self.batch = Some(b);
            return (policy, Slice::Progress { step, steps });
        }
        if b.epoch + 1 < self.cfg.epochs {
            let lengths: Vec<usize> = b.seqs.iter().map(Vec::len).collect();
            b.minibatches = minibatches(&lengths, self.cfg.minibatch_size, true, cx.rng);
            b.epoch += 1;
            b.mb = 0;
            self.batch = Some(b);
            return (policy, Slice::Progress { step, steps });
        }
        let n = b.stats.len() as f64;
        let mean = |k: usize| b.stats.iter().map(|s| s[k]).sum::<f64>() / n;
        let scores: Vec<f64> = b.scores.iter().map(|&s| s as f64).collect();
        let m = scores.iter().sum::<f64>() / scores.len() as f64;
        let sd = (scores.iter().map(|s| (s - m).powi(2)).sum::<f64>() / scores.len() as f64).sqrt();
        let stats = GrpoStats {
            loss: mean(0),
            reward: m,
            reward_std: sd,
            kl: mean(1),
            clip_ratio: mean(2),
            frac_reward_zero_std: b.zero_std_groups as f64 / b.groups as f64,
            completion_length: b.mask.iter().sum::<f32>() as f64 / b.seqs.len() as f64,
        };
        let metrics = Metrics {
            grpo: Some(stats),
            ..Default::default()
        };
        let losses = std::mem::take(&mut self.losses);
        (policy, Slice::Done { losses, metrics })
    }

    /// G replies to each of `prompts` prompts from the policy (at temperature 1), scored by the
    /// reward model, with their group-relative advantages and old and reference log-probs.
    async fn rollout(
        &self,
        policy: &Gpt,
        cx: &mut Context<'_>,
        texts: &mut Vec<(String, String)>,
    ) -> Rollout {
        let g = self.cfg.group_size;
        let prompts = rollout_prompts(
            cx.prompts,
            cx.corpus,
            self.cfg.prompts,
            cx.own_prompt_share,
            cx.rng,
        );
        let prompts: Vec<String> = prompts.iter().flat_map(|p| vec![p.clone(); g]).collect();
        let sampler = policy.valid();
        let max_new_tokens = self.cfg.max_new_tokens;
        let Rollouts {
            seqs,
            starts,
            scored,
        } = roll_out(&sampler, cx, &prompts, max_new_tokens, texts).await;
        let advantages = group_advantages(&scored.scores, g);
        let zero_std_groups = advantages
            .chunks(g)
            .filter(|a| a.iter().all(|&x| x == 0.0))
            .count();
        let device = sampler.devices()[0].clone();
        let batch = Batch::right_padded(&seqs, &device);
        let t = batch.tokens.dims()[1];
        let w = t - 1;
        let old = forward_stats(&sampler, &batch, false).await.0;
        // The reference's log-probs, read with the scores, cut to this batch's width.
        let reference_lp: Vec<f32> = (0..seqs.len())
            .flat_map(|b| {
                scored.ref_logprobs[b * scored.width..b * scored.width + w]
                    .iter()
                    .copied()
            })
            .collect();
        let pairs: Vec<(Vec<u32>, usize)> = seqs.iter().cloned().zip(starts).collect();
        let mask = crate::read(reply_mask(&pairs, t, &device)).await;
        let per_position = (0..seqs.len())
            .flat_map(|b| vec![advantages[b]; w])
            .collect();
        let lengths: Vec<usize> = seqs.iter().map(Vec::len).collect();
        Rollout {
            minibatches: minibatches(&lengths, self.cfg.minibatch_size, true, cx.rng),
            seqs,
            t,
            mask,
            old,
            reference: reference_lp,
            advantages: per_position,
            scores: scored.scores,
            groups: self.cfg.prompts,
            zero_std_groups,
            epoch: 0,
            mb: 0,
            stats: Vec::new(),
        }
    }

    /// One gradient step on the replies `rows` of the batch; returns (loss, kl, clipfrac).
    async fn train_minibatch(
        &mut self,
        policy: Gpt,
        b: &Rollout,
        rows: &[usize],
    ) -> (Gpt, [f64; 3]) {
        let seqs: Vec<Vec<u32>> = rows.iter().map(|&r| b.seqs[r].clone()).collect();
        let batch = Batch::right_padded(&seqs, &self.device);
        let w = batch.tokens.dims()[1] - 1;
        let w_all = b.t - 1;
        // Rows of the batch's [B, T-1] arrays, cut to this minibatch's width: [b, T'-1].
        let take = |xs: &[f32]| take_rows(xs, rows, w_all, w, &self.device);
        let newlogprob = policy.token_logprobs(policy.forward(&batch, None), batch.tokens.clone());
        let c = &self.cfg;
        let l = grpo_loss(
            newlogprob,
            take(&b.old),
            take(&b.reference),
            take(&b.advantages),
            take(&b.mask),
            c.cliprange,
            c.beta,
        );
        let read = async |t: Tensor<1>| crate::read(t).await[0] as f64;
        let stats = [
            read(l.loss.clone()).await,
            read(l.kl).await,
            read(l.clipfrac).await,
        ];
        let (lr, max_norm) = (c.lr, c.max_grad_norm);
        (
            descend(policy, l.loss, &mut self.optim, lr, max_norm),
            stats,
        )
    }
}

#[cfg(test)]
mod tests;
