//! Kahneman–Tversky optimisation (KTO, Ethayarajh et al. 2024): the policy learns from replies
//! rated good or bad on their own, with no pairs and no reward model. Each reply's log-ratio
//! r = log π(y|x) − log π_ref(y|x) is judged against a reference point z₀, the policy's KL to
//! the reference, as prospect theory judges a gain or a loss against where one stands: a good
//! reply gains from rising above z₀, a bad one from falling below it.
//!
//! KTO reads the log as desirable and undesirable replies ([`rated_examples`]): thumbs up and
//! down, 4–5 and 1–2 stars, the two sides of a pair, and written answers (desirable). Three
//! stars and ties give it nothing.

use crate::dpo::draw;
use crate::feedback::{Feedback, FeedbackLog};
use crate::grad::descend;
use crate::metrics::{DirectStats, Metrics};
use crate::model::Gpt;
use crate::report::{Slice, Steps};
use crate::rng::Rng;
use crate::settings::config;
use crate::sft::reply_logprobs;
use crate::tokenizer::Tokenizer;
use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

config! {
    /// Settings of KTO (method = kto). Why each default: docs/TUNING.md, "DPO and KTO".
    pub struct KtoConfig in "KTO" {
        /// β: how close to the base model the policy stays (0.1, as in the KTO paper and TRL).
        beta: f64 = 0.1 in 1e-3..=10.0, "KTO β", basic;
        /// Size of each KTO step (AdamW).
        lr: f64 = 1e-4 in 1e-7..=0.1, "KTO learning rate", basic;
        /// Optimiser steps per rating, each on a batch drawn from every rated reply so far.
        steps: usize = 2 in 0..=100, "KTO steps per rating", basic;
        /// Rated replies per step (all of them when there are fewer).
        batch_size: usize = 8 in 1..=64, "KTO batch", advanced;
        /// λ_D, the weight of desirable replies (1, as in TRL).
        desirable_weight: f64 = 1.0 in 0.0..=10.0, "Weight of good replies λ_D", advanced;
        /// λ_U, the weight of undesirable replies (1, as in TRL).
        undesirable_weight: f64 = 1.0 in 0.0..=10.0, "Weight of bad replies λ_U", advanced;
        /// Gradients are scaled down to at most this global norm.
        max_grad_norm: f32 = 1.0 in 1e-3..=1e3, "KTO gradient clip", advanced;
    }
}

/// Replies rated good or bad, as KTO reads the log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Examples {
    /// (prompt, reply, desirable).
    pub rated: Vec<(String, String, bool)>,
    /// Pieces of feedback that gave an example, and those that gave none.
    pub used: usize,
    pub unused: usize,
}

/// The desirable and undesirable replies in `log` (see the module doc). A reply rated twice
/// (thumbs or stars) counts by its latest rating, as in the reward model's data.
pub fn rated_examples(log: &FeedbackLog) -> Examples {
    let reply = |i: usize| {
        let r = &log.replies[i];
        (log.prompts[r.prompt].clone(), r.text.clone())
    };
    // The latest thumbs or stars of each reply: desirable or not, or neither (3 stars).
    let mut latest: Vec<Option<Option<bool>>> = vec![None; log.replies.len()];
    let mut out = Examples::default();
    for fb in &log.feedback {
        match fb {
            Feedback::Thumbs { reply, up } => latest[*reply] = Some(Some(*up)),
            Feedback::Stars { reply, stars } => {
                latest[*reply] = Some((*stars != 3).then_some(*stars > 3))
            }
            Feedback::Pair {
                better,
                worse,
                tie: false,
            } => {
                let ((p, b), (q, w)) = (reply(*better), reply(*worse));
                out.rated.extend([(p, b, true), (q, w, false)]);
                out.used += 1;
            }
            Feedback::Pair { tie: true, .. } => {}
            Feedback::Demonstration { prompt, text } => {
                out.rated
                    .push((log.prompts[*prompt].clone(), text.clone(), true));
                out.used += 1;
            }
        }
    }
    for (r, rating) in latest.iter().enumerate() {
        if let Some(Some(good)) = rating {
            let (prompt, text) = reply(r);
            out.rated.push((prompt, text, *good));
            out.used += 1;
        }
    }
    out.unused = log.feedback.len() - out.used;
    out
}

/// KTO's loss per reply, from its log-ratio `r` = log π(y|x) − log π_ref(y|x) (`[B]`), whether
/// it is desirable (`desirable`, 1 or 0, `[B]`) and the reference point `z0`. Ethayarajh et al.
/// 2024, eq. 8:
///
/// ```text
/// v(x, y) = λ_D · σ(β (r − z₀))   if y is desirable
///           λ_U · σ(β (z₀ − r))   if y is undesirable
/// L_KTO = λ_y − v(x, y)
/// ```
pub fn kto_loss(
    r: Tensor<1>,
    desirable: Tensor<1>,
    z0: f64,
    beta: f64,
    (lambda_d, lambda_u): (f64, f64),
) -> Tensor<1> {
    let undesirable = desirable.clone().neg() + 1.0;
    let gain = (sigmoid((r.clone() - z0) * beta).neg() + 1.0) * lambda_d; // λ_D − v, desirable
    let loss = (sigmoid((r.neg() + z0) * beta).neg() + 1.0) * lambda_u; // λ_U − v, undesirable
    gain * desirable + loss * undesirable
}

/// KTO's reference point z₀ (Ethayarajh et al. 2024, section 4.1, as TRL computes it): the mean
/// log-ratio of mismatched pairs, each prompt of the batch with the next example's reply (an
/// estimate of KL(π ‖ π_ref) that carries no gradient), at least 0. A batch of one has no
/// mismatched pair: z₀ = 0.
pub fn reference_point(mismatched_ratios: &[f32]) -> f64 {
    if mismatched_ratios.len() < 2 {
        return 0.0;
    }
    let mean =
        mismatched_ratios.iter().map(|&r| r as f64).sum::<f64>() / mismatched_ratios.len() as f64;
    mean.max(0.0)
}

/// KTO's optimiser and settings, and the rated replies of the update in flight. Like SFT, it
/// steps the policy that [`crate::ppo::PpoTrainer`] holds.
#[derive(Clone)]
pub struct KtoTrainer {
    cfg: KtoConfig,
    optim: ModuleOptimizer,
    device: Device,
    data: Examples,
    context: usize,
    steps: Steps,
}

impl KtoTrainer {
    /// A trainer whose steps run on `device`'s autodiff form.
    pub fn new(cfg: KtoConfig, device: &Device) -> Self {
        Self {
            optim: AdamWConfig::new().with_weight_decay(0.0).init(),
            cfg,
            device: device.clone().autodiff(),
            data: Examples::default(),
            context: 0,
            steps: Steps::default(),
        }
    }

    /// New settings from the next step on; the optimiser keeps its state.
    pub fn set_config(&mut self, cfg: KtoConfig) {
        self.cfg = cfg;
    }

    /// Starts an update on the rated replies in `log`, for a model reading `context` tokens.
    pub fn begin(&mut self, log: &FeedbackLog, context: usize) {
        self.data = rated_examples(log);
        self.context = context;
        self.steps.restart();
    }

    /// One optimiser step of the update in flight on `policy`, against `reference`.
    pub async fn step(
        &mut self,
        policy: Gpt,
        reference: &Gpt,
        tok: &Tokenizer,
        rng: &mut Rng,
    ) -> (Gpt, Slice) {
        let steps = self.cfg.steps;
        if steps == 0 {
            return (policy, Slice::Skipped("KTO is off (kto.steps is 0)"));
        }
        if self.data.rated.is_empty() {
            return (policy, Slice::Skipped("no rated replies yet"));
        }
        let mut batch = draw(&self.data.rated, self.cfg.batch_size, rng);
        rng.shuffle(&mut batch);
        let n = batch.len();
        // The batch's replies, then the mismatched pairs (as TRL, on a shuffled batch): each
        // prompt with the reply of the next example that answers another prompt.
        let other = |i: usize| {
            (1..n)
                .map(|k| (i + k) % n)
                .find(|&j| batch[j].0 != batch[i].0)
                .unwrap_or((i + 1) % n)
        };
        let seqs: Vec<(Vec<u32>, usize)> = (0..n)
            .map(|i| (i, i))
            .chain((0..n).map(|i| (i, other(i))))
            .map(|(p, r)| tok.fit_exchange(&batch[p].0, &batch[r].1, self.context))
            .collect();
        let ref_device = reference.devices()[0].clone();
        let ref_lp = crate::read(reply_logprobs(reference, &seqs, &ref_device).0).await; // [2n]
        // The rated replies with their gradient; the mismatched ones without (z₀ is a constant).
        let (lp, _) = reply_logprobs(&policy, &seqs[..n], &self.device); // [n]
        let (mismatched, _) = reply_logprobs(&policy.valid(), &seqs[n..], &ref_device); // [n]
        let mut pi_lp = crate::read(lp.clone().detach()).await;
        pi_lp.extend(crate::read(mismatched).await);
        let ratio = |i: usize| pi_lp[i] - ref_lp[i];
        let z0 = reference_point(&(n..2 * n).map(ratio).collect::<Vec<_>>());
        let on_device = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [n]), &self.device);
        let good: Vec<f32> = batch.iter().map(|e| f32::from(e.2 as u8)).collect();
        let r = lp - on_device(ref_lp[..n].to_vec());
        let weights = (self.cfg.desirable_weight, self.cfg.undesirable_weight);
        let loss = kto_loss(r, on_device(good.clone()), z0, self.cfg.beta, weights).mean();
        let value = crate::read(loss.clone()).await[0] as f64;
        let (lr, max_norm) = (self.cfg.lr, self.cfg.max_grad_norm);
        let policy = descend(policy, loss, &mut self.optim, lr, max_norm);
        // The implicit rewards β · r of the desirable and the undesirable replies, to log.
        let mean_of = |want: f32| {
            let rs: Vec<f64> = (0..n)
                .filter(|&i| good[i] == want)
                .map(|i| self.cfg.beta * ratio(i) as f64)
                .collect();
            (!rs.is_empty()).then(|| rs.iter().sum::<f64>() / rs.len() as f64)
        };
        let (chosen, rejected) = (mean_of(1.0), mean_of(0.0));
        let stats = DirectStats {
            loss: value,
            chosen,
            rejected,
            margins: chosen.zip(rejected).map(|(c, r)| c - r),
            accuracies: None,
            kl: Some(z0),
            examples: self.data.rated.len(),
            used: self.data.used,
            unused: self.data.unused,
        };
        let slice = self.steps.record(value, steps, || Metrics {
            direct: Some(stats),
            ..Default::default()
        });
        (policy, slice)
    }
}

#[cfg(test)]
mod tests;
