//! Direct preference optimisation (DPO, Rafailov et al. 2023): the policy learns from pairs of
//! replies directly, with no reward model and no sampling. Its loss raises the log-ratio
//! log π(y|x) − log π_ref(y|x) of the preferred reply over the other's; the frozen reference
//! keeps it near the base model, β saying how near. IPO (Azar et al. 2023) is the same with a
//! squared loss that pulls the margin towards 1/(2β) (from either side) instead of without end.
//!
//! DPO needs pairs of replies to the same prompt. It takes them from the log: a person's "A is
//! better than B", every thumbs-up against every thumbs-down on the same prompt, higher stars
//! against lower on the same prompt, and a written answer against the sampled replies to its
//! prompt ([`preference_pairs`]). A thumbs with no opposite rating on its prompt, and a tie,
//! give it nothing.

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
use burn::tensor::activation::log_sigmoid;
use std::collections::BTreeSet;

config! {
    /// Settings of DPO (method = dpo). Why each default: docs/TUNING.md, "DPO and KTO".
    pub struct DpoConfig in "DPO" {
        /// β: how close to the base model the policy stays (0.1, as in the DPO paper and TRL).
        beta: f64 = 0.1 in 1e-3..=10.0, "DPO β", basic;
        /// Size of each DPO step (AdamW).
        lr: f64 = 1e-4 in 1e-7..=0.1, "DPO learning rate", basic;
        /// Optimiser steps per rating, each on a batch drawn from every pair so far.
        steps: usize = 2 in 0..=100, "DPO steps per rating", basic;
        /// Pairs per step (all of them when there are fewer).
        batch_size: usize = 8 in 1..=64, "DPO batch", advanced;
        /// Gradients are scaled down to at most this global norm.
        max_grad_norm: f32 = 1.0 in 1e-3..=1e3, "DPO gradient clip", advanced;
        /// IPO's squared loss instead of DPO's logistic one (Azar et al. 2023).
        ipo: bool = false, "IPO loss", advanced;
    }
}

/// Pairs of replies to the same prompt, the preferred one first, as DPO reads the log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Preferences {
    /// (prompt, reply) texts: the log's replies, then its demonstrations.
    pub texts: Vec<(String, String)>,
    /// (chosen, rejected), indices into `texts`.
    pub pairs: Vec<(usize, usize)>,
    /// Pieces of feedback that gave at least one pair, and those that gave none.
    pub used: usize,
    pub unused: usize,
}

/// The pairs DPO learns from in `log` (see the module doc). Thumbs and stars are compared
/// within a prompt only: DPO's margin compares two replies to the same x.
pub fn preference_pairs(log: &FeedbackLog) -> Preferences {
    let mut texts: Vec<(String, String)> = log
        .replies
        .iter()
        .map(|r| (log.prompts[r.prompt].clone(), r.text.clone()))
        .collect();
    let mut pairs = Vec::new();
    let mut used = BTreeSet::new();
    // The latest thumbs or stars of each reply on one scale, 0 (👎, 1★) to 1 (👍, 5★), and the
    // feedback that gave it.
    let mut rated: Vec<Option<(f32, usize)>> = vec![None; log.replies.len()];
    for (i, fb) in log.feedback.iter().enumerate() {
        match fb {
            Feedback::Thumbs { reply, up } => rated[*reply] = Some((f32::from(*up as u8), i)),
            Feedback::Stars { reply, stars } => {
                rated[*reply] = Some(((*stars as f32 - 1.0) / 4.0, i))
            }
            Feedback::Pair {
                better,
                worse,
                tie: false,
            } => {
                pairs.push((*better, *worse));
                used.insert(i);
            }
            Feedback::Pair { tie: true, .. } => {}
            Feedback::Demonstration { prompt, text } => {
                texts.push((log.prompts[*prompt].clone(), text.clone()));
                let demo = texts.len() - 1;
                for (j, r) in log.replies.iter().enumerate() {
                    if r.prompt == *prompt && r.text != *text {
                        pairs.push((demo, j));
                        used.insert(i);
                    }
                }
            }
        }
    }
    for (a, ra) in rated.iter().enumerate() {
        for (b, rb) in rated.iter().enumerate() {
            if let (Some((ua, ia)), Some((ub, ib))) = (ra, rb)
                && ua > ub
                && log.replies[a].prompt == log.replies[b].prompt
            {
                pairs.push((a, b));
                used.extend([*ia, *ib]);
            }
        }
    }
    Preferences {
        texts,
        pairs,
        used: used.len(),
        unused: log.feedback.len() - used.len(),
    }
}

/// DPO's loss per pair, from the summed log-probabilities of the chosen (w) and rejected (l)
/// replies under the policy (π) and the reference (ref), all `[B]`. Rafailov et al. 2023, eq. 7:
///
/// ```text
/// h = β · [(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))]
/// L_DPO = −log σ(h)
/// ```
///
/// With `ipo`, Azar et al. 2023, eq. 17, with τ = β, on per-token mean log-probabilities as in
/// TRL (`lengths` `[B]` of the chosen and rejected replies): L_IPO = (h/β − 1/(2β))². (The
/// logged implicit rewards stay β times the summed log-ratios.)
pub fn dpo_loss(
    pi: (Tensor<1>, Tensor<1>),
    reference: (Tensor<1>, Tensor<1>),
    beta: f64,
    ipo: Option<(Tensor<1>, Tensor<1>)>,
) -> Tensor<1> {
    let (chosen, rejected) = (pi.0 - reference.0, pi.1 - reference.1); // log-ratios [B]
    match ipo {
        None => log_sigmoid((chosen - rejected) * beta).neg(),
        Some((len_w, len_l)) => {
            let margin = chosen / len_w.clamp_min(1.0) - rejected / len_l.clamp_min(1.0); // [B]
            (margin - 1.0 / (2.0 * beta)).powi_scalar(2)
        }
    }
}

/// An encoded exchange: token ids and where the reply starts ([`Tokenizer::fit_exchange`]).
type Encoded = (Vec<u32>, usize);

/// DPO's optimiser and settings, and the pairs of the update in flight. Like SFT, it steps the
/// policy that [`crate::ppo::PpoTrainer`] holds.
#[derive(Clone)]
pub struct DpoTrainer {
    cfg: DpoConfig,
    optim: ModuleOptimizer,
    device: Device,
    /// This update's pairs: encoded (chosen, rejected), and what the log gave.
    data: Vec<(Encoded, Encoded)>,
    used: (usize, usize),
    steps: Steps,
}

impl DpoTrainer {
    /// A trainer whose steps run on `device`'s autodiff form.
    pub fn new(cfg: DpoConfig, device: &Device) -> Self {
        Self {
            optim: AdamWConfig::new().with_weight_decay(0.0).init(),
            cfg,
            device: device.clone().autodiff(),
            data: Vec::new(),
            used: (0, 0),
            steps: Steps::default(),
        }
    }

    /// New settings from the next step on; the optimiser keeps its state.
    pub fn set_config(&mut self, cfg: DpoConfig) {
        self.cfg = cfg;
    }

    /// Starts an update on the pairs in `log`, encoded for a model reading `context` tokens.
    pub fn begin(&mut self, tok: &Tokenizer, log: &FeedbackLog, context: usize) {
        let prefs = preference_pairs(log);
        let encoded: Vec<Encoded> = prefs
            .texts
            .iter()
            .map(|(prompt, reply)| tok.fit_exchange(prompt, reply, context))
            .collect();
        self.data = prefs
            .pairs
            .iter()
            .map(|&(w, l)| (encoded[w].clone(), encoded[l].clone()))
            .collect();
        self.used = (prefs.used, prefs.unused);
        self.steps.restart();
    }

    /// One optimiser step of the update in flight on `policy`, against `reference`.
    pub async fn step(&mut self, policy: Gpt, reference: &Gpt, rng: &mut Rng) -> (Gpt, Slice) {
        let steps = self.cfg.steps;
        if steps == 0 {
            return (policy, Slice::Skipped("DPO is off (dpo.steps is 0)"));
        }
        if self.data.is_empty() {
            return (
                policy,
                Slice::Skipped("no pairs yet: DPO needs two replies to one prompt rated apart"),
            );
        }
        let batch = draw(&self.data, self.cfg.batch_size, rng);
        let seqs: Vec<Encoded> = batch
            .iter()
            .map(|p| p.0.clone())
            .chain(batch.iter().map(|p| p.1.clone()))
            .collect();
        let n = batch.len();
        // The reference's log-probabilities, read back and put on the training device: a
        // constant of the loss.
        let ref_device = reference.devices()[0].clone();
        let (ref_lp, _) = reply_logprobs(reference, &seqs, &ref_device);
        let ref_lp = crate::read(ref_lp).await;
        let constant =
            |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [n]), &self.device);
        let (lp, lengths) = reply_logprobs(&policy, &seqs, &self.device); // [2n]
        let split = |t: Tensor<1>| (t.clone().slice(s![0..n]), t.slice(s![n..2 * n]));
        let reference_lp = (constant(&ref_lp[..n]), constant(&ref_lp[n..]));
        let ipo = self.cfg.ipo.then(|| split(lengths.clone()));
        let per_pair = dpo_loss(split(lp.clone()), reference_lp.clone(), self.cfg.beta, ipo);
        let loss = per_pair.mean();
        // The implicit rewards β · log-ratio, to log.
        let pi_lp = crate::read(lp.detach()).await;
        let beta = self.cfg.beta;
        let reward = |i: usize| beta * (pi_lp[i] - ref_lp[i]) as f64;
        let chosen = (0..n).map(reward).sum::<f64>() / n as f64;
        let rejected = (n..2 * n).map(reward).sum::<f64>() / n as f64;
        let right = (0..n).filter(|&i| reward(i) > reward(i + n)).count();
        let value = crate::read(loss.clone()).await[0] as f64;
        let (lr, max_norm) = (self.cfg.lr, self.cfg.max_grad_norm);
        let policy = descend(policy, loss, &mut self.optim, lr, max_norm);
        let stats = DirectStats {
            loss: value,
            chosen: Some(chosen),
            rejected: Some(rejected),
            margins: Some(chosen - rejected),
            accuracies: Some(right as f64 / n as f64),
            kl: None,
            examples: self.data.len(),
            used: self.used.0,
            unused: self.used.1,
        };
        let slice = self.steps.record(value, steps, || Metrics {
            direct: Some(stats),
            ..Default::default()
        });
        (policy, slice)
    }
}

/// `size` items drawn from `all` with replacement, or all of them when there are no more.
pub fn draw<T: Clone>(all: &[T], size: usize, rng: &mut Rng) -> Vec<T> {
    if all.len() <= size {
        return all.to_vec();
    }
    (0..size)
        .map(|_| all[rng.below(all.len())].clone())
        .collect()
}

#[cfg(test)]
mod tests;
