//! Step 3 of RLHF: PPO against the reward model, with a KL penalty to a frozen reference.
//!
//! Written to be read beside the papers, top to bottom in the order of cleanrl's `ppo.py`:
//! [`PpoTrainer::step`] rolls out a batch and builds its experience, then runs the epochs over
//! shuffled minibatches, each a clipped step ([`train_minibatch`]), stops early when the policy
//! has moved far enough, and moves β. Sources: Schulman et al. 2017 (PPO: clipped surrogate,
//! clipped value loss, epochs over minibatches), Schulman et al. 2016 (GAE), Ziegler et al. 2019
//! (per-token KL penalty to the reference model with the reward-model score added at the last
//! token, and the adaptive KL controller), Ouyang et al. 2022 (the same objective for an
//! assistant) and Huang et al. 2024, "The N implementation details of RLHF with PPO" (old
//! log-probs recomputed by a forward pass, values from a scalar head, whitened advantages).
//! Metric names are TRL's.
//!
//! Index convention. A sequence is `<|user|> prompt <|bot|> reply <|end|>` with the reply
//! starting at index `start`. Position `j` of every `[B, T-1]` array is the action "emit token
//! `j + 1`" taken in the state "tokens `0..=j`": `logprobs[j] = log π(x_{j+1} | x_{..=j})` and
//! `values[j] = V(x_{..=j})`, read from the scalar head at position `j`. Actions are the reply's
//! tokens and its `<|end|>`: positions `start - 1 ..= len - 2`.

mod experience;
mod kl;
mod stats;

pub use experience::*;
pub use kl::*;
pub use stats::*;

use crate::corpus::Corpus;
use crate::grad::clip_global_norm;
use crate::metrics::Metrics;
use crate::model::{Batch, Entropy, Gpt, masked_mean};
use crate::report::Slice;
use crate::reward::RewardTrainer;
use crate::rng::Rng;
use crate::sample::{SampleConfig, generate};
use crate::settings::config;
use crate::tokenizer::Tokenizer;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

config! {
    /// Settings of the PPO stage: TRL's `PPOConfig` defaults unless re-tuned on this model.
    /// Why each default: docs/TUNING.md, "PPO".
    pub struct PpoConfig in "PPO" {
        /// Size of each PPO step (AdamW). Too large and replies fall apart.
        lr: f64 = 2e-4 in 1e-7..=0.1, "PPO learning rate", basic;
        /// Fresh replies PPO writes and learns from per iteration (the PPO batch).
        batch_size: usize = 16 in 1..=64, "PPO replies per update", basic;
        /// Replies per gradient step; the batch is cut into minibatches of this many.
        minibatch_size: usize = 8 in 1..=64, "Replies per PPO step", advanced;
        /// Passes over each batch of fresh replies.
        epochs: usize = 2 in 1..=20, "PPO epochs", basic;
        /// PPO iterations (a rollout, then its epochs) per update.
        iterations: usize = 1 in 0..=10, "PPO iterations per rating", advanced;
        /// Discount per token (1: a reply is one short episode, as in TRL).
        gamma: f64 = 1.0 in 0.0..=1.0, "Discount γ", advanced;
        /// λ of generalised advantage estimation.
        lam: f64 = 1.0 in 0.0..=1.0, "GAE λ", advanced;
        /// ε of the clipped surrogate objective: how far one batch may move a token's probability.
        cliprange: f64 = 0.2 in 0.01..=1.0, "Clip range ε", advanced;
        /// How far one step may move the value head's predictions.
        cliprange_value: f64 = 0.2 in 0.01..=100.0, "Value clip range", advanced;
        /// Weight of the value loss in PPO's loss.
        vf_coef: f64 = 0.5 in 0.0..=10.0, "Value loss weight", advanced;
        /// Size of each step of the value head, which predicts the reward a reply will get.
        value_lr: f64 = 1e-3 in 1e-7..=0.1, "Value head learning rate", advanced;
        /// Let the value loss train the transformer too (off: the value head reads it detached).
        value_through_trunk: bool = false, "Value loss trains the transformer", advanced;
        /// Weight of an entropy bonus that keeps replies varied (0: none, as in TRL).
        ent_coef: f64 = 0.0 in 0.0..=1.0, "Entropy bonus", advanced;
        /// Gradients are scaled down to at most this global norm.
        max_grad_norm: f32 = 1.0 in 1e-3..=1e3, "PPO gradient clip", advanced;
        /// How strongly PPO is pulled back towards the base model. Higher = safer, slower learning.
        init_kl_coef: f64 = 0.2 in 0.0..=10.0, "β (KL penalty)", basic;
        /// Let β adapt towards the KL target (Ziegler et al. 2019).
        adaptive_kl: bool = true, "Adaptive β", basic;
        /// The adaptive controller nudges β so that the KL per reply heads for this, in nats.
        kl_target: f64 = 3.0 in 0.01..=100.0, "KL target (nats)", basic;
        /// Replies over which the controller moves β by at most ±20%.
        kl_horizon: f64 = 400.0 in 1.0..=1e6, "KL controller horizon", advanced;
        /// Skip a minibatch whose mean ratio to the old policy exceeds this (a guard against spikes).
        ratio_threshold: f64 = 10.0 in 1.0..=1e6, "Ratio guard", advanced;
        /// Stop the epochs once a step's approximate KL to the rollout policy exceeds this (0: never).
        early_stop_kl: f64 = 0.02 in 0.0..=10.0, "Early stop KL", advanced;
        /// Longest reply PPO writes, in tokens.
        max_new_tokens: usize = 48 in 1..=96, "Longest PPO reply", advanced;
        /// Put replies of similar length in the same minibatch (less padding, same replies).
        group_by_length: bool = true, "Group minibatches by length", advanced;
    }
}

impl PpoConfig {
    /// The optimiser of this stage (AdamW, no weight decay; clipping is done by global norm).
    pub fn optimizer(&self) -> ModuleOptimizer {
        AdamWConfig::new().with_weight_decay(0.0).init()
    }
}

/// The policy (with its scalar head as the value function), its optimiser, the KL controller
/// and the PPO update in flight.
#[derive(Clone)]
pub struct PpoTrainer {
    cfg: PpoConfig,
    /// On the autodiff device; SFT steps it too ([`crate::sft::SftTrainer`]).
    policy: Option<Gpt>,
    optim: ModuleOptimizer,
    /// β of the KL penalty, adapted after each iteration.
    pub kl: KlController,
    device: Device,
    /// Iterations finished in the update in flight, the one under way, and each step's loss.
    done: usize,
    iteration: Option<Iteration>,
    losses: Vec<f64>,
}

/// One iteration's batch and how far its epochs have got.
#[derive(Clone)]
struct Iteration {
    exp: Experience,
    /// The rollouts' mean reference confidence, as their scores counted it.
    confidence: f64,
    /// This epoch's minibatches (rows of `exp`).
    minibatches: Vec<Vec<usize>>,
    epoch: usize,
    mb: usize,
    stats: Vec<MinibatchStats>,
}

/// What a PPO slice reads from the session: the reference, the reward model that scores the
/// rollouts, and where their prompts come from.
pub struct Context<'a> {
    pub reference: &'a Gpt,
    pub reward: &'a mut RewardTrainer,
    pub tok: &'a Tokenizer,
    /// The person's prompts so far (the most recent are asked again).
    pub prompts: &'a [String],
    /// The rest of the prompts come from the corpus.
    pub corpus: &'a mut Corpus,
    /// Share of each batch drawn from the person's own prompts.
    pub own_prompt_share: f64,
    /// Share of the ratings that are pairs (for the reference's confidence in the score).
    pub pair_share: f64,
    pub rng: &'a mut Rng,
}

impl PpoTrainer {
    /// A trainer of `policy` (on `device`'s autodiff form).
    pub fn new(cfg: PpoConfig, policy: Gpt, device: &Device) -> Self {
        Self {
            kl: KlController::new(&cfg),
            optim: cfg.optimizer(),
            cfg,
            policy: Some(policy),
            device: device.clone().autodiff(),
            done: 0,
            iteration: None,
            losses: Vec::new(),
        }
    }

    /// New settings from the next slice on: the optimiser keeps its state, a new initial β
    /// replaces the current one, and the controller takes the new target and horizon.
    pub fn set_config(&mut self, cfg: PpoConfig) {
        if cfg.init_kl_coef != self.cfg.init_kl_coef {
            self.kl.value = cfg.init_kl_coef;
        }
        self.kl.target = cfg.kl_target;
        self.kl.horizon = cfg.kl_horizon;
        self.kl.adaptive = cfg.adaptive_kl;
        self.cfg = cfg;
    }

    /// The policy as it is now (no autodiff), to sample from or measure.
    pub fn policy(&self) -> Gpt {
        self.policy
            .as_ref()
            .expect("policy present between slices")
            .valid()
    }

    /// The policy to train elsewhere (SFT); give it back with [`PpoTrainer::put_policy`].
    pub fn take_policy(&mut self) -> Gpt {
        self.policy.take().expect("policy present between slices")
    }

    pub fn put_policy(&mut self, policy: Gpt) {
        self.policy = Some(policy);
    }

    /// Starts an update's PPO stage.
    pub fn begin(&mut self) {
        self.done = 0;
        self.iteration = None;
        self.losses.clear();
    }

    /// Slices of one iteration: its rollout, then one per minibatch of each epoch.
    fn slices_per_iteration(&self) -> usize {
        let p = &self.cfg;
        1 + p.epochs * p.batch_size.div_ceil(p.minibatch_size.max(1))
    }

    /// One slice of the PPO stage: a rollout, or one minibatch step. `rollouts` receives the
    /// (prompt, reply) texts of each batch.
    pub async fn step(
        &mut self,
        mut cx: Context<'_>,
        rollouts: &mut Vec<(String, String)>,
    ) -> Slice {
        let (per_iteration, iterations) = (self.slices_per_iteration(), self.cfg.iterations);
        let steps = iterations * per_iteration;
        let Some(mut it) = self.iteration.take() else {
            if iterations == 0 {
                return Slice::Skipped("PPO is off (ppo.iterations is 0)");
            }
            if !cx.reward.is_fitted() {
                return Slice::Skipped("the reward model has no ratings to learn from yet");
            }
            // 1. Rollout: a batch from the policy, scored, and its experience.
            let (exp, confidence) = self.rollout(&mut cx, rollouts).await;
            let minibatches = self.minibatches(&exp, cx.rng);
            self.iteration = Some(Iteration {
                exp,
                confidence,
                minibatches,
                epoch: 0,
                mb: 0,
                stats: Vec::new(),
            });
            let step = self.done * per_iteration + 1;
            return Slice::Progress { step, steps };
        };
        // 2. Epochs over shuffled minibatches: one clipped step per slice.
        let policy = self.take_policy();
        let rows = &it.minibatches[it.mb];
        let (policy, stats) = train_minibatch(
            policy,
            &mut self.optim,
            &it.exp,
            rows,
            &self.cfg,
            &self.device,
        )
        .await;
        self.put_policy(policy);
        it.stats.push(stats);
        self.losses.push(stats.pg_loss);
        let step = self.done * per_iteration + 2 + it.epoch * it.minibatches.len() + it.mb;
        // 3. cleanrl's early stop: the policy has moved as far as one batch justifies.
        let target = self.cfg.early_stop_kl;
        let stop = target > 0.0 && stats.approx_kl > target;
        if it.mb + 1 < it.minibatches.len() && !stop {
            it.mb += 1;
            self.iteration = Some(it);
            return Slice::Progress { step, steps };
        }
        if it.epoch + 1 < self.cfg.epochs && !stop {
            // A fresh shuffle for every epoch, as in cleanrl.
            it.minibatches = self.minibatches(&it.exp, cx.rng);
            it.epoch += 1;
            it.mb = 0;
            self.iteration = Some(it);
            return Slice::Progress { step, steps };
        }
        // 4. The iteration's metrics, and β moves towards the target KL.
        let mut stats = iteration_stats(&it.exp, &it.stats, it.confidence);
        self.kl.update(stats.kl, it.exp.len());
        self.done += 1;
        // More iterations, unless the setting was lowered meanwhile.
        if self.done < iterations {
            return Slice::Progress { step, steps };
        }
        stats.kl_coef_next = self.kl.value;
        let metrics = Metrics {
            ppo: Some(stats),
            ..Default::default()
        };
        let losses = std::mem::take(&mut self.losses);
        Slice::Done { losses, metrics }
    }

    /// Samples a batch from the policy (on-policy: the full distribution at temperature 1, as
    /// PPO's ratio assumes), scores it with the reward model and builds the experience. Returns
    /// it with the rollouts' mean reference confidence.
    async fn rollout(
        &self,
        cx: &mut Context<'_>,
        texts: &mut Vec<(String, String)>,
    ) -> (Experience, f64) {
        let n = self.cfg.batch_size;
        let prompts = rollout_prompts(cx.prompts, cx.corpus, n, cx.own_prompt_share, cx.rng);
        let policy = self.policy();
        let max_new_tokens = self.cfg.max_new_tokens;
        let Rollouts {
            seqs,
            starts,
            scored: s,
        } = roll_out(&policy, cx, &prompts, max_new_tokens, texts).await;
        let reference = cx.reference;
        // Normalised by running statistics.
        cx.reward.observe(&s.scores);
        let normalised = cx.reward.normalise(&s.scores);
        // The reference's log-probs in the PPO batch's layout: rows cut to its width (a reply
        // that ran out of room has no <|end|> there; positions before it are the same).
        let w = seqs.iter().map(Vec::len).max().unwrap_or(1) - 1;
        let ref_logprobs: Vec<f32> = (0..seqs.len())
            .flat_map(|b| s.ref_logprobs[b * s.width..b * s.width + w].iter().copied())
            .collect();
        let exp = make_experience(
            &policy,
            reference,
            Some(ref_logprobs),
            seqs,
            starts,
            s.scores,
            &normalised,
            self.kl.value,
            &self.cfg,
        )
        .await;
        let n = s.confidence.len().max(1) as f64;
        let mean = s.confidence.iter().map(|&c| c as f64).sum::<f64>() / n;
        (exp, mean)
    }

    /// One epoch's minibatches of `exp`'s replies.
    fn minibatches(&self, exp: &Experience, rng: &mut Rng) -> Vec<Vec<usize>> {
        let lengths: Vec<usize> = exp.seqs.iter().map(Vec::len).collect();
        let p = &self.cfg;
        minibatches(&lengths, p.minibatch_size, p.group_by_length, rng)
    }
}

/// Replies sampled from a policy, and the reward model's reading of them.
pub(crate) struct Rollouts {
    /// Prompt + reply (+ `<|end|>` when the reply finished) token ids.
    pub seqs: Vec<Vec<u32>>,
    /// Index of each reply's first token.
    pub starts: Vec<usize>,
    /// The score of each reply and the reference's log-probs of its closed exchange.
    pub scored: crate::reward::Scored,
}

/// One reply from `policy` to each of `prompts`, sampled from the full distribution at
/// temperature 1 (as the policy gradient assumes), and scored by the reward model from the
/// closed exchange (it is trained on those: a reply cut off by the length limit is scored as if
/// it ended there). `texts` receives each (prompt, reply). PPO and GRPO roll out through this.
pub(crate) async fn roll_out(
    policy: &Gpt,
    cx: &mut Context<'_>,
    prompts: &[String],
    max_new_tokens: usize,
    texts: &mut Vec<(String, String)>,
) -> Rollouts {
    let (reference, tok) = (cx.reference, cx.tok);
    let ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| tok.fit_prompt(p, reference.context()).0)
        .collect();
    let sampling = SampleConfig::new().with_max_new_tokens(max_new_tokens);
    let out = generate(policy, &ids, &sampling, cx.rng, true).await;
    let (mut seqs, mut closed, mut starts) = (Vec::new(), Vec::new(), Vec::new());
    texts.clear();
    for ((p, o), prompt) in ids.iter().zip(&out).zip(prompts) {
        starts.push(p.len());
        seqs.push(o.sequence(p, false));
        closed.push(o.sequence(p, true));
        texts.push((prompt.clone(), tok.decode(&o.tokens)));
    }
    let scored = cx
        .reward
        .score(reference, &closed, &starts, cx.pair_share)
        .await;
    Rollouts {
        seqs,
        starts,
        scored,
    }
}

/// Prompts for a PPO batch of `n`: a share `own_share` from the person's recent `prompts`, the
/// rest from the corpus (its training prompts: the held-out ones are kept for measuring), so
/// the policy improves in general and not only on what was asked.
pub(crate) fn rollout_prompts(
    prompts: &[String],
    corpus: &mut Corpus,
    n: usize,
    own_share: f64,
    rng: &mut Rng,
) -> Vec<String> {
    let n = n.max(1);
    let recent: Vec<&String> = prompts.iter().rev().take(8).collect();
    let own = if recent.is_empty() {
        0
    } else {
        (n as f64 * own_share).round() as usize
    };
    (0..n)
        .map(|i| {
            if i < own {
                recent[rng.below(recent.len())].clone()
            } else {
                corpus.prompt(false).text
            }
        })
        .collect()
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
    let take = |xs: &[f32]| take_rows(xs, rows, w_all, w, device);
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

    let mut out = MinibatchStats::read(l, entropy_loss).await;
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

#[cfg(test)]
mod tests;
