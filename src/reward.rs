//! Step 2 of RLHF: the reward model.
//!
//! Ouyang et al. (2022), section 3.5: a copy of the language model whose output is one number,
//! the score of a reply, trained on comparisons with the Bradley–Terry loss
//! `-log σ(r_chosen - r_rejected)`. Here the score is the model's scalar head read at the last
//! token of the exchange (the `<|end|>` the bot wrote, or its last token when it ran out of room).
//!
//! Every kind of feedback becomes comparisons (see [`RewardData::from_log`]):
//! - a pairwise preference is one comparison (a tie is a comparison with target ½);
//! - thumbs and stars put each rated reply on one scale u in [0, 1] (up = 1, down = 0, stars
//!   (s - 1) / 4); any two replies with different u make a comparison weighted by the gap |Δu|,
//!   fully when they answer the same prompt and by `cross_prompt_weight` when they do not (a
//!   reply to another prompt is weaker evidence: Ouyang et al. compare replies to one prompt);
//! - a demonstration is preferred to every sampled reply to its prompt;
//! - and a small pointwise term, binary cross-entropy of σ(r) against u, gives the very first
//!   rating a signal before any pair exists.
//!
//! Generalising from a few labels: only the top `train_blocks` blocks, the final LayerNorm and the
//! head train; the rest of the pretrained transformer is a fixed feature extractor, shared with
//! the reference ([`score`]).
//!
//! [`RewardTrainer`] owns the reward model, its optimiser and everything fitting keeps between
//! updates. PPO's reward is written once, in two of its methods: [`RewardTrainer::score`], the
//! reward model's score plus the reference's confidence ([`confidence`]), and
//! [`RewardTrainer::normalise`], by the running statistics of the rollouts' scores.

mod confidence;
mod data;
mod score;

pub use confidence::*;
pub use data::*;
pub use score::*;

use crate::feedback::FeedbackLog;
use crate::grad::clip_global_norm;
use crate::metrics::{Metrics, RewardStats};
use crate::model::Gpt;
use crate::report::Slice;
use crate::rng::Rng;
use crate::settings::config;
use crate::tokenizer::Tokenizer;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;

config! {
    /// Settings of the reward-model stage. Why each default: docs/TUNING.md, "Reward model".
    pub struct RewardConfig in "Reward model" {
        /// Size of each reward-model step (AdamW on its trainable top).
        lr: f64 = 1e-3 in 1e-7..=0.1, "Reward model learning rate", basic;
        /// How many times the reward model practises on your ratings per update.
        steps: usize = 4 in 0..=100, "Reward model steps per rating", basic;
        /// Comparisons per step, drawn from all of them (with half as many pointwise targets).
        batch_pairs: usize = 8 in 1..=64, "Comparisons per step", advanced;
        /// Of those, how many come from the newest rating's comparisons (0: drawn from all alike).
        fresh_pairs: usize = 0 in 0..=64, "Newest rating's comparisons per step", advanced;
        /// Transformer blocks that train, from the top; the ones below stay as pretrained.
        train_blocks: usize = 2 in 0..=64, "Trainable blocks", advanced;
        /// Weight of a comparison between replies to different prompts (1 = same prompt).
        cross_prompt_weight: f64 = 0.5 in 0.0..=1.0, "Weight across prompts", advanced;
        /// Weight of the comparisons pairs imply: one pair's preferred reply over another's rejected one.
        implied_pair_weight: f64 = 0.5 in 0.0..=10.0, "Weight of implied pairs", advanced;
        /// Weight of a tie (two replies equally good: a comparison with target ½).
        tie_weight: f64 = 1.0 in 0.0..=10.0, "Weight of a tie", advanced;
        /// Weight of the pointwise term on thumbs and stars (0 turns it off).
        pointwise_weight: f64 = 0.25 in 0.0..=10.0, "Weight of single ratings", advanced;
        /// Gradients are scaled down to at most this global norm.
        max_grad_norm: f32 = 1.0 in 1e-3..=1e3, "Reward model gradient clip", advanced;
        /// How much of the running score statistics each new batch of scores keeps.
        norm_momentum: f64 = 0.9 in 0.0..=1.0, "Score statistics memory", advanced;
        /// Smallest spread of scores the normalisation divides by.
        norm_std_floor: f64 = 1.0 in 1e-3..=100.0, "Smallest score spread", advanced;
        /// PPO's reward adds up to this times the base model's mean log-prob of the reply's words, while your pairs agree with it (0 = the reward model alone).
        confidence_weight: f64 = 20.0 in 0.0..=1000.0, "Most trust in the base model", basic;
        /// Agreement of your comparisons with the base model's confidence that earns it its whole weight.
        confidence_full_agreement: f64 = 0.01 in 0.01..=1.0, "Agreement for full trust", advanced;
        /// Comparisons' worth of no agreement counted before any rating.
        confidence_prior: f64 = 8.0 in 0.0..=1000.0, "Trust prior", advanced;
    }
}

impl RewardConfig {
    /// The optimiser of this stage (AdamW, no weight decay; clipping is done by global norm).
    pub fn optimizer(&self) -> ModuleOptimizer {
        AdamWConfig::new().with_weight_decay(0.0).init()
    }
}

/// How many recent outcomes the held-out accuracy averages.
const UNSEEN_WINDOW: usize = 50;

/// The reward model, its optimiser and what fitting keeps between updates.
#[derive(Clone)]
pub struct RewardTrainer {
    cfg: RewardConfig,
    /// On the autodiff device.
    model: Option<Gpt>,
    optim: ModuleOptimizer,
    tok: Tokenizer,
    /// Where scoring runs (the reference's device); training runs on its autodiff form.
    device: Device,
    train_device: Device,
    /// Features of the frozen bottom, per scored sequence.
    features: FeatureCache,
    /// The most top blocks trained so far: the blocks below them are still the base model's, so
    /// the reward model may share them with the reference.
    blocks_trained: usize,
    /// Feedback entries the model has been fitted on.
    fitted_upto: usize,
    fitted: bool,
    /// Outcomes on comparisons the model had not been trained on yet (the last
    /// [`UNSEEN_WINDOW`]).
    unseen: Vec<bool>,
    /// The reference's confidence in rated replies, and its agreement with the comparisons.
    pub(crate) confidence: ConfidenceCache,
    /// Running statistics of PPO's scores of its rollouts.
    pub moments: RunningMoments,
    /// The fitting in flight.
    fit: Option<Fit>,
}

/// One update's fitting: its data and how far it has got.
#[derive(Clone)]
struct Fit {
    data: RewardData,
    /// Feedback entries in the log when the update began: what this fitting learns from.
    upto: usize,
    /// Whether the reference's confidence weighed in when the fitting began.
    confidence: bool,
    evaluated: bool,
    step: usize,
    losses: Vec<f64>,
    last_accuracy: Option<(f64, f64)>,
}

/// PPO's reward for a batch of exchanges, and the reference's log-probs read on the way.
pub struct Scored {
    /// The reward model's score plus the weighted confidence, unnormalised.
    pub scores: Vec<f32>,
    /// The reward model's own score: with thumbs and stars in the log, σ(raw) is its belief that
    /// the person likes the reply (the pointwise term fits it).
    pub raw: Vec<f32>,
    /// The reference's confidence in each reply ([`reference_confidence`]).
    pub confidence: Vec<f32>,
    /// `[B * width]` per-position log-probs under the reference (position `j` predicts token
    /// `j + 1`).
    pub ref_logprobs: Vec<f32>,
    /// Positions per row: the longest sequence less one.
    pub width: usize,
}

impl Scored {
    /// The reference's log-probability of row `b`'s reply (its tokens from `start` to `len`,
    /// the `<|end|>` included when the row has it), read from `ref_logprobs`.
    pub fn reply_ref_logprob(&self, b: usize, start: usize, len: usize) -> f32 {
        (start - 1..len - 1)
            .map(|j| self.ref_logprobs[b * self.width + j])
            .sum()
    }
}

impl RewardTrainer {
    /// A reward model starting from `model` (the base model, on the autodiff device).
    pub fn new(cfg: RewardConfig, model: Gpt, tok: Tokenizer, device: &Device) -> Self {
        Self {
            optim: cfg.optimizer(),
            cfg,
            model: Some(model),
            tok,
            device: device.clone(),
            train_device: device.clone().autodiff(),
            features: FeatureCache::default(),
            blocks_trained: 0,
            fitted_upto: 0,
            fitted: false,
            unseen: Vec::new(),
            confidence: ConfidenceCache::default(),
            moments: RunningMoments::default(),
            fit: None,
        }
    }

    /// New settings from the next slice on; the optimiser keeps its state.
    pub fn set_config(&mut self, cfg: RewardConfig) {
        if cfg.train_blocks != self.cfg.train_blocks {
            // The cached features are those of the old frozen depth.
            self.features = FeatureCache::default();
        }
        self.cfg = cfg;
    }

    /// Whether the model has been fitted on any rating yet.
    pub fn is_fitted(&self) -> bool {
        self.fitted
    }

    /// The reward model as it is now (no autodiff).
    pub fn model(&self) -> Gpt {
        self.model
            .as_ref()
            .expect("reward model between slices")
            .valid()
    }

    /// The top blocks that are the reward model's own (trained now or before a change of
    /// `train_blocks`); the blocks below are the reference's too.
    pub fn own_blocks(&self) -> usize {
        self.blocks_trained.max(self.cfg.train_blocks)
    }

    /// Starts an update's fitting on every piece of feedback in `log`.
    pub fn begin(&mut self, log: &FeedbackLog) {
        let data = RewardData {
            fresh_from: self.fitted_upto,
            ..RewardData::from_log(log, &self.cfg)
        };
        self.fit = Some(Fit {
            data,
            upto: log.feedback.len(),
            confidence: self.confidence_in_use(log),
            evaluated: false,
            step: 0,
            losses: Vec::new(),
            last_accuracy: None,
        });
    }

    /// One slice of the fitting: first the held-out evaluation of the comparisons not trained
    /// on yet (and the confidence's agreement), then one optimiser step per slice.
    pub async fn step(&mut self, reference: &Gpt, log: &FeedbackLog, rng: &mut Rng) -> Slice {
        let steps = self.cfg.steps;
        let mut fit = self.fit.take().expect("a fitting begun");
        if !fit.evaluated {
            if steps == 0 {
                return Slice::Skipped("the reward model is off (reward.steps is 0)");
            }
            if fit.data.pairs.is_empty() && fit.data.points.is_empty() {
                return Slice::Skipped("no ratings yet");
            }
            if fit.confidence {
                let (tok, prior) = (&self.tok, self.cfg.confidence_prior);
                let device = &self.device;
                self.confidence
                    .update(&fit.data, reference, tok, prior, device)
                    .await;
            }
            self.evaluate_unseen(&fit.data).await;
            fit.evaluated = true;
            self.fit = Some(fit);
            return Slice::Progress { step: 0, steps };
        }
        self.blocks_trained = self.own_blocks();
        let model = self.model.take().expect("reward model");
        let (model, loss, acc) = step(
            model,
            &mut self.optim,
            &self.tok,
            &fit.data,
            &self.cfg,
            &mut self.features,
            rng,
            &self.train_device,
        )
        .await;
        self.model = Some(model);
        fit.losses.push(loss);
        if acc.is_some() {
            fit.last_accuracy = acc;
        }
        fit.step += 1;
        if fit.step < steps {
            let step = fit.step;
            self.fit = Some(fit);
            return Slice::Progress { step, steps };
        }
        self.fitted_upto = fit.upto;
        self.fitted = true;
        let in_use = fit.confidence;
        let stats = RewardStats {
            loss,
            accuracy: fit.last_accuracy.map(|a| a.0),
            margin: fit.last_accuracy.map(|a| a.1),
            eval_accuracy: (self.unseen.len() >= 4).then(|| {
                self.unseen.iter().filter(|&&b| b).count() as f64 / self.unseen.len() as f64
            }),
            pairs: fit.data.pairs.len(),
            confidence_agreement: in_use.then_some(self.confidence.agreement),
            confidence_weight: in_use.then(|| self.confidence_weight(log.pair_share())),
        };
        Slice::Done {
            losses: fit.losses,
            metrics: Metrics {
                reward: Some(stats),
                ..Default::default()
            },
        }
    }

    /// Held-out accuracy: the comparisons that arrived since the last fitting, scored before
    /// the model trains on them (each label is tested once, then learned from).
    async fn evaluate_unseen(&mut self, data: &RewardData) {
        let unseen: Vec<&Comparison> = data
            .pairs
            .iter()
            .filter(|c| c.newest >= self.fitted_upto && c.target == 1.0)
            .rev()
            .take(32)
            .collect();
        if !self.fitted || unseen.is_empty() {
            return;
        }
        let mut texts: Vec<usize> = unseen.iter().flat_map(|c| [c.chosen, c.rejected]).collect();
        texts.sort_unstable();
        texts.dedup();
        let rm = self.model();
        let seqs: Vec<Vec<u32>> = texts
            .iter()
            .map(|&t| encode(&self.tok, &data.texts[t], rm.context()))
            .collect();
        let cache = Some((&mut self.features, self.cfg.train_blocks));
        let s = crate::read(score_ids(&rm, &seqs, cache, &self.device)).await;
        let score = |t: usize| s[texts.binary_search(&t).expect("scored")];
        for c in unseen {
            self.unseen.push(score(c.chosen) > score(c.rejected));
        }
        let n = self.unseen.len();
        if n > UNSEEN_WINDOW {
            self.unseen.drain(..n - UNSEEN_WINDOW);
        }
    }

    /// Whether the reference's confidence can weigh in: it is on, and some of the ratings are
    /// pairs.
    pub fn confidence_in_use(&self, log: &FeedbackLog) -> bool {
        self.cfg.confidence_weight > 0.0 && log.pair_share() > 0.0
    }

    /// The weight of the reference's confidence in PPO's score now: the most weight, scaled by
    /// how far the comparisons so far agree with it (none when they do not) and by the share
    /// `pair_share` of the ratings that are pairs (none with thumbs and stars alone).
    pub fn confidence_weight(&self, pair_share: f64) -> f64 {
        let r = &self.cfg;
        r.confidence_weight
            * (self.confidence.agreement / r.confidence_full_agreement).clamp(0.0, 1.0)
            * pair_share
    }

    /// PPO's reward for exchanges `seqs` (each reply starting at `starts[b]`): the reward
    /// model's score plus the reference's confidence weighted for `pair_share`, from one pass
    /// through the frozen bottom shared with `reference`, which also gives its log-probs.
    pub async fn score(
        &self,
        reference: &Gpt,
        seqs: &[Vec<u32>],
        starts: &[usize],
        pair_share: f64,
    ) -> Scored {
        let rm = self.model();
        let (raw, ref_logprobs) =
            scores_and_reference_logprobs(&rm, reference, seqs, self.own_blocks(), &self.device)
                .await;
        let width = seqs.iter().map(Vec::len).max().unwrap_or(1) - 1;
        let confidence = reference_confidence(&ref_logprobs, width, seqs, starts);
        let scores = with_confidence(&raw, &confidence, self.confidence_weight(pair_share));
        Scored {
            scores,
            raw,
            confidence,
            ref_logprobs,
            width,
        }
    }

    /// Folds a batch of rollout scores into the running statistics.
    pub fn observe(&mut self, scores: &[f32]) {
        self.moments.update(scores, self.cfg.norm_momentum);
    }

    /// Scores normalised by the running statistics of the rollout scores.
    pub fn normalise(&self, scores: &[f32]) -> Vec<f32> {
        let floor = self.cfg.norm_std_floor;
        scores
            .iter()
            .map(|&s| self.moments.normalise(s, floor))
            .collect()
    }
}

/// The loss of one batch of comparisons and pointwise targets, with the per-pair score
/// differences `r_chosen - r_rejected` `[P]` (to measure accuracy and margin).
pub fn loss(
    model: &Gpt,
    seqs: &[Vec<u32>],
    pairs: &[(usize, usize, f32, f32)],
    points: &[(usize, f32)],
    pointwise_weight: f64,
    cache: Option<(&mut FeatureCache, usize)>,
    device: &Device,
) -> (Tensor<1>, Option<Tensor<1>>) {
    let r = score_ids(model, seqs, cache, device); // [N]
    let int = |v: Vec<i32>| {
        let n = v.len();
        Tensor::<1, Int>::from_data(TensorData::new(v, [n]), device)
    };
    let float = |v: Vec<f32>| {
        let n = v.len();
        Tensor::<1>::from_data(TensorData::new(v, [n]), device)
    };
    let mut total: Option<Tensor<1>> = None;
    let mut diff = None;
    if !pairs.is_empty() {
        let chosen = r
            .clone()
            .select(0, int(pairs.iter().map(|p| p.0 as i32).collect())); // [P]
        let rejected = r
            .clone()
            .select(0, int(pairs.iter().map(|p| p.1 as i32).collect())); // [P]
        let y = float(pairs.iter().map(|p| p.2).collect()); // [P] target
        let w = float(pairs.iter().map(|p| p.3).collect()); // [P] weight
        let d = chosen - rejected; // [P]
        // Bradley–Terry: -[y log σ(d) + (1 - y) log σ(-d)], weighted mean.
        let nll = (y.clone() * log_sigmoid(d.clone())
            + (y.neg().add_scalar(1.0)) * log_sigmoid(d.clone().neg()))
        .neg();
        let wsum = w.clone().sum().clamp_min(1e-6);
        total = Some((nll * w).sum() / wsum);
        diff = Some(d);
    }
    if !points.is_empty() && pointwise_weight > 0.0 {
        let s = r.select(0, int(points.iter().map(|p| p.0 as i32).collect())); // [Q]
        let u = float(points.iter().map(|p| p.1).collect()); // [Q]
        let bce = (u.clone() * log_sigmoid(s.clone())
            + u.neg().add_scalar(1.0) * log_sigmoid(s.neg()))
        .neg()
        .mean()
        .mul_scalar(pointwise_weight);
        total = Some(match total {
            Some(t) => t + bce,
            None => bce,
        });
    }
    let total = total.unwrap_or_else(|| float(vec![0.0]));
    (total, diff)
}

/// One optimiser step on a batch drawn from `data`; returns the model, the loss before the step,
/// and the batch's (accuracy, margin) when it has comparisons.
#[allow(clippy::too_many_arguments)]
pub async fn step(
    model: Gpt,
    optim: &mut ModuleOptimizer,
    tok: &Tokenizer,
    data: &RewardData,
    cfg: &RewardConfig,
    cache: &mut FeatureCache,
    rng: &mut Rng,
    device: &Device,
) -> (Gpt, f64, Option<(f64, f64)>) {
    let (texts, pairs, points) = draw_batch(data, cfg.batch_pairs, cfg.fresh_pairs, rng);
    if texts.is_empty() {
        return (model, 0.0, None);
    }
    let seqs: Vec<Vec<u32>> = texts
        .iter()
        .map(|&t| encode(tok, &data.texts[t], model.context()))
        .collect();
    let (loss, diff) = loss(
        &model,
        &seqs,
        &pairs,
        &points,
        cfg.pointwise_weight,
        Some((cache, cfg.train_blocks)),
        device,
    );
    let loss_value = crate::read(loss.clone()).await[0] as f64;
    let mut grads = GradientsParams::from_grads(loss.backward(), &model);
    clip_global_norm(&mut grads, &model, cfg.max_grad_norm);
    let model = optim.step(cfg.lr, model, grads);
    let acc = match diff {
        Some(d) => {
            let d = crate::read(d).await;
            let ranked: Vec<(f32, f32)> = d
                .iter()
                .zip(&pairs)
                .filter(|(_, p)| p.2 == 1.0)
                .map(|(d, _)| (*d, if *d > 0.0 { 1.0 } else { 0.0 }))
                .collect();
            (!ranked.is_empty()).then(|| {
                let n = ranked.len() as f64;
                (
                    ranked.iter().map(|r| r.1 as f64).sum::<f64>() / n,
                    ranked.iter().map(|r| r.0 as f64).sum::<f64>() / n,
                )
            })
        }
        None => None,
    };
    (model, loss_value, acc)
}

#[cfg(test)]
mod tests;
