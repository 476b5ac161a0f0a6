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
//! head train; the rest of the pretrained transformer is a fixed feature extractor (measured in
//! docs/TUNING.md: training everything fits the labels as well but generalises worse to new
//! replies).

use crate::feedback::{Feedback, FeedbackLog};
use crate::grad::clip_global_norm;
use crate::model::{Batch, Gpt};
use crate::rng::Rng;
use crate::tokenizer::Tokenizer;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Settings of the reward-model stage.
#[derive(Config, Debug)]
pub struct RewardConfig {
    /// AdamW learning rate for the trainable top of the model (measured: 1e-3 fits a few dozen
    /// labels in a handful of steps without overshooting).
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Optimiser steps per update. Measured (docs/TUNING.md): 4 steps imitating top-rated
    /// replies did as well as 6 (polite rater, thumbs: 90 ± 3%), and 4 cost a third less time.
    #[config(default = 4)]
    pub steps: usize,
    /// Comparisons per step, drawn from all of them (all of them when there are fewer), with
    /// half as many pointwise targets. Each step costs the top block on at most 2.5x this many
    /// replies, so 8 keeps a fitting of 6 steps within a few hundred milliseconds.
    #[config(default = 8)]
    pub batch_pairs: usize,
    /// Of those, how many are drawn from the comparisons the newest feedback made (the ones the
    /// model has not been fitted on yet), so that a rating is surely learnt from in the update
    /// it starts; 0 draws every comparison from all of them alike. Measured (docs/TUNING.md;
    /// 10 seeds, 40 ratings): at 4, polite 85 ± 13% with thumbs and 79 ± 19% with pairs,
    /// truthful 80 ± 8% and 77 ± 12%, against 85 ± 14%, 77 ± 22%, 84 ± 6% and 80 ± 10% at 0.
    #[config(default = 0)]
    pub fresh_pairs: usize,
    /// Transformer blocks that train, counted from the top; the embeddings and the blocks below
    /// stay as pretrained. Measured (docs/TUNING.md; 10 seeds, 40 thumbs): two blocks took
    /// the truthful rater to 84 ± 6% against 77 ± 15% with one, the polite rater 85 ± 14%
    /// against 87 ± 15%; either learns "careful > plain" from 8 labels (98.5-99.5% unseen).
    #[config(default = 2)]
    pub train_blocks: usize,
    /// Weight of a comparison between replies to different prompts, relative to one between
    /// replies to the same prompt.
    #[config(default = 0.5)]
    pub cross_prompt_weight: f64,
    /// Weight of the comparisons a set of pairs implies: the preferred reply of one pair against
    /// the other reply of another (ties excluded), times `cross_prompt_weight` across prompts.
    /// A pair says which of two replies is better, not whether either is good; over many pairs,
    /// a preferred reply is more often a good one than a rejected reply is, as thumbs and stars
    /// compare every rated reply with every other. 0 turns it off. Measured (docs/TUNING.md;
    /// 10 seeds, 40 pairs): 0.5 took the polite rater from 66 ± 28% to 77 ± 22% and
    /// the truthful one from 77 ± 15% to 80 ± 10%; 1.0 did less for polite (70 ± 20%).
    #[config(default = 0.5)]
    pub implied_pair_weight: f64,
    /// Weight of a tie (a pair whose replies the person found equally good), a comparison with
    /// target ½, relative to a pair with a preferred reply. Many preference datasets have no
    /// ties; measured (docs/TUNING.md; 10 seeds, 40 pairs), dropping them (0) took polite to
    /// 85 ± 8% and truthful to 76 ± 15% (9 seeds), against 77 ± 22% and 80 ± 10% at 1.
    #[config(default = 1.0)]
    pub tie_weight: f64,
    /// Weight of the pointwise term on thumbs and stars (0 turns it off).
    #[config(default = 0.25)]
    pub pointwise_weight: f64,
    /// Gradient clipping by global norm.
    #[config(default = 1.0)]
    pub max_grad_norm: f32,
    /// How much of the running score statistics each new batch of scores keeps (an exponential
    /// moving average: the reward model itself changes with every update, so old statistics
    /// fade).
    #[config(default = 0.9)]
    pub norm_momentum: f64,
    /// Smallest standard deviation the normalisation divides by. Bradley–Terry scores are
    /// log-odds: differences under one are the model's own uncertainty, and dividing them by a
    /// small spread would turn a hunch into a full-size reward (measured: with a floor of 0.1,
    /// PPO chased tiny score differences and the replies degenerated).
    #[config(default = 1.0)]
    pub norm_std_floor: f64,
    /// The most weight c of the frozen reference's confidence in a reply, added to the reward
    /// model's score wherever PPO or the page reads it (before the normalisation): r_θ(x, y) +
    /// w · (1/|y|) Σ_t log π_ref(y_t | x, y_<t), the mean log-probability the pretrained model
    /// gives the reply's tokens (see [`reference_confidence`]). A reward model fitted on a few
    /// dozen ratings cannot learn facts; the pretrained model has learnt them, and its
    /// probabilities are higher on right answers than on wrong ones, and on the careful persona
    /// than on a hedge (Kadavath et al. 2022, "Language Models (Mostly) Know What They Know").
    /// The weight used, w = c · clamp(τ / τ_full, 0, 1) · s, follows how far the person's
    /// comparisons agree with that confidence (τ: [`confidence_agreement`]; τ_full:
    /// `confidence_full_agreement`), so a taste it does not track (politeness, brevity, cheer;
    /// it favours long replies a little, as their filler is predictable) gets little or none,
    /// and the share s of the ratings that are pairs ([`FeedbackLog::pair_share`]): a pair
    /// says only which of two replies is better, and a reward model fitted on a few dozen of
    /// them gains from a prior that knows the facts, while thumbs and stars compare every
    /// rated reply with every other and teach it enough alone. Measured (docs/TUNING.md, "The
    /// reference's confidence"; 40 ratings, the same seeds with c = 0 and c = 20): with pairs
    /// the truthful rater went from 78.6 ± 9.7% to 83.8 ± 7.8% (20 seeds; +5.2 ± 2.2 points a
    /// seed), the polite one from 79.9 ± 15.1% to 79.8 ± 12.1% (20 seeds), short from 95.4 to
    /// 95.5% and cheerful from 90.5 to 92.6% (10 seeds); with thumbs it cost the polite rater
    /// three points (87.3 ± 8.0% to 84.1 ± 9.2%, 20 seeds), which is why thumbs and stars give
    /// it no weight. 0 turns it off.
    #[config(default = 20.0)]
    pub confidence_weight: f64,
    /// The agreement τ at and above which the confidence gets its whole weight; 1 makes the
    /// weight grow with τ all the way. Measured (docs/TUNING.md, "The reference's confidence";
    /// c = 20, 40 pairs): at 0.01, the whole weight as soon as the comparisons agree with the
    /// confidence more often than not, the truthful rater reached 87 ± 6% on ten seeds and the
    /// polite one 82 ± 10%; at 0.25, which withholds part of the weight in the first updates,
    /// 79 ± 9% (18 seeds) and 77 ± 21%, no better than without the confidence.
    #[config(default = 0.01)]
    pub confidence_full_agreement: f64,
    /// Comparisons' worth of no agreement counted into τ before any rating (a prior that keeps
    /// the first few comparisons from setting the weight alone).
    #[config(default = 8.0)]
    pub confidence_prior: f64,
}

impl RewardConfig {
    /// The optimiser of this stage (AdamW, no weight decay; clipping is done by global norm).
    pub fn optimizer(&self) -> ModuleOptimizer {
        AdamWConfig::new().with_weight_decay(0.0).init()
    }
}

/// One comparison: `chosen` should score above `rejected` (indices into [`RewardData::texts`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub chosen: usize,
    pub rejected: usize,
    /// 1 for a preference, ½ for a tie.
    pub target: f32,
    pub weight: f32,
    /// The newest piece of feedback (index in the log) this comparison depends on: tells which
    /// comparisons the reward model has not been trained on yet.
    pub newest: usize,
}

/// The reward model's training set, rebuilt from the whole log at each update.
#[derive(Clone, Debug, Default)]
pub struct RewardData {
    /// (prompt, reply) texts to score.
    pub texts: Vec<(String, String)>,
    pub pairs: Vec<Comparison>,
    /// (text, target u in [0, 1], newest feedback index) for the pointwise term.
    pub points: Vec<(usize, f32, usize)>,
    /// Comparisons whose `newest` is at least this are fresh: the reward model has not been
    /// fitted on them yet (the session sets it; 0 counts every comparison as fresh).
    pub fresh_from: usize,
}

impl RewardData {
    /// Turns every piece of feedback in `log` into comparisons and pointwise targets.
    pub fn from_log(log: &FeedbackLog, cfg: &RewardConfig) -> RewardData {
        let n = log.replies.len();
        let mut data = RewardData {
            texts: log
                .replies
                .iter()
                .map(|r| (log.prompts[r.prompt].clone(), r.text.clone()))
                .collect(),
            ..Default::default()
        };
        // The latest thumbs or stars of each reply, on the common scale u.
        let mut rated: Vec<Option<(f32, usize)>> = vec![None; n];
        for (i, fb) in log.feedback.iter().enumerate() {
            match fb {
                Feedback::Thumbs { reply, up } => {
                    rated[*reply] = Some((if *up { 1.0 } else { 0.0 }, i));
                }
                Feedback::Stars { reply, stars } => {
                    rated[*reply] = Some(((*stars as f32 - 1.0) / 4.0, i));
                }
                Feedback::Pair { better, worse, tie } => data.pairs.push(Comparison {
                    chosen: *better,
                    rejected: *worse,
                    target: if *tie { 0.5 } else { 1.0 },
                    weight: if *tie { cfg.tie_weight as f32 } else { 1.0 },
                    newest: i,
                }),
                Feedback::Demonstration { prompt, text } => {
                    data.texts
                        .push((log.prompts[*prompt].clone(), text.clone()));
                    let demo = data.texts.len() - 1;
                    for (j, r) in log.replies.iter().enumerate() {
                        if r.prompt == *prompt && r.text != *text {
                            data.pairs.push(Comparison {
                                chosen: demo,
                                rejected: j,
                                target: 1.0,
                                weight: 1.0,
                                newest: i,
                            });
                        }
                    }
                }
            }
        }
        if cfg.implied_pair_weight > 0.0 {
            data.add_implied_pairs(log, cfg);
        }
        let rated: Vec<(usize, f32, usize)> = rated
            .iter()
            .enumerate()
            .filter_map(|(j, r)| r.map(|(u, i)| (j, u, i)))
            .collect();
        for (a, &(ja, ua, ia)) in rated.iter().enumerate() {
            data.points.push((ja, ua, ia));
            for &(jb, ub, ib) in &rated[a + 1..] {
                if ua == ub {
                    continue;
                }
                let same = log.replies[ja].prompt == log.replies[jb].prompt;
                let (chosen, rejected) = if ua > ub { (ja, jb) } else { (jb, ja) };
                let w = (ua - ub).abs()
                    * if same {
                        1.0
                    } else {
                        cfg.cross_prompt_weight as f32
                    };
                data.pairs.push(Comparison {
                    chosen,
                    rejected,
                    target: 1.0,
                    weight: w,
                    newest: ia.max(ib),
                });
            }
        }
        data
    }

    /// The comparisons explicit pairs imply (`RewardConfig::implied_pair_weight`): every
    /// preferred reply against every rejected reply of another pair.
    fn add_implied_pairs(&mut self, log: &FeedbackLog, cfg: &RewardConfig) {
        let outcomes: Vec<(usize, usize, usize)> = log
            .feedback
            .iter()
            .enumerate()
            .filter_map(|(i, fb)| match fb {
                Feedback::Pair {
                    better,
                    worse,
                    tie: false,
                } => Some((*better, *worse, i)),
                _ => None,
            })
            .collect();
        // The comparisons the person made, either way round: nothing to imply there.
        let direct: HashSet<(usize, usize)> = outcomes
            .iter()
            .flat_map(|&(w, l, _)| [(w, l), (l, w)])
            .collect();
        for (a, &(win, _, ia)) in outcomes.iter().enumerate() {
            for (b, &(_, lose, ib)) in outcomes.iter().enumerate() {
                if a == b || win == lose || direct.contains(&(win, lose)) {
                    continue;
                }
                let same = log.replies[win].prompt == log.replies[lose].prompt;
                let w = cfg.implied_pair_weight * if same { 1.0 } else { cfg.cross_prompt_weight };
                self.pairs.push(Comparison {
                    chosen: win,
                    rejected: lose,
                    target: 1.0,
                    weight: w as f32,
                    newest: ia.max(ib),
                });
            }
        }
    }
}

/// Token ids of a (prompt, reply) exchange, cut to the context.
pub fn encode(tok: &Tokenizer, text: &(String, String), context: usize) -> Vec<u32> {
    let (mut ids, _) = tok.encode_exchange(&text.0, &text.1);
    ids.truncate(context);
    ids
}

/// Features of the frozen bottom of the reward model, computed once per sequence.
///
/// With only the top `train_blocks` blocks training, everything below them is a fixed function
/// of the tokens; caching its output makes each fitting step cost the top blocks alone.
#[derive(Default)]
pub struct FeatureCache {
    map: HashMap<Vec<u32>, Tensor<2>>,
}

/// Most sequences the cache keeps (about 25 KB each); beyond it, it starts afresh.
const CACHE_LIMIT: usize = 4096;

impl FeatureCache {
    /// `[B, T, C]` features of `seqs` after `blocks` blocks of `model`, right-padded with
    /// zeros; missing ones are computed in one batch (on `model.valid()`: no gradients).
    pub fn batch(
        &mut self,
        model: &Gpt,
        seqs: &[Vec<u32>],
        blocks: usize,
        device: &Device,
    ) -> Tensor<3> {
        let missing: Vec<Vec<u32>> = seqs
            .iter()
            .filter(|s| !self.map.contains_key(*s))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            if self.map.len() + missing.len() > CACHE_LIMIT {
                self.map.clear();
            }
            let batch = Batch::right_padded(&missing, device);
            let x = model.valid().features(&batch, blocks); // [M, T, C]
            for (i, s) in missing.into_iter().enumerate() {
                let n = s.len();
                let f = x.clone().slice(s![i..i + 1, 0..n, ..]).squeeze_dim::<2>(0); // [n, C]
                self.map.insert(s, f);
            }
        }
        let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let rows: Vec<Tensor<3>> = seqs
            .iter()
            .map(|s| {
                let f = self.map[s].clone(); // [n, C]
                let [n, c] = f.dims();
                let f = if n < t {
                    Tensor::cat(vec![f, Tensor::zeros([t - n, c], device)], 0) // [T, C]
                } else {
                    f
                };
                f.unsqueeze_dim::<3>(0) // [1, T, C]
            })
            .collect();
        Tensor::cat(rows, 0) // [B, T, C]
    }

    /// Sequences cached.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The last token of each sequence (the `<|end|>` of a closed exchange): where the head reads.
fn last_positions(seqs: &[Vec<u32>]) -> Vec<usize> {
    seqs.iter().map(|s| s.len().max(1) - 1).collect()
}

/// The scalar head `[B]` on final hidden states at the last tokens `[B, C]`.
fn head(model: &Gpt, last_hidden: Tensor<2>) -> Tensor<1> {
    let [b, _] = last_hidden.dims();
    model.scores(last_hidden.unsqueeze_dim(1)).reshape([b]) // [B, 1] -> [B]
}

/// Scores `[B]` of sequences of token ids: the scalar head at each one's last token. With a
/// cache, only the top `train_blocks` blocks run (and train); without, the whole model runs.
pub fn score_ids(
    model: &Gpt,
    seqs: &[Vec<u32>],
    cache: Option<(&mut FeatureCache, usize)>,
    device: &Device,
) -> Tensor<1> {
    let batch = Batch::right_padded(seqs, device);
    let last = last_positions(seqs);
    let hidden = match cache {
        Some((cache, train_blocks)) if train_blocks < model.n_layer() => {
            let frozen = model.n_layer() - train_blocks;
            let x = cache.batch(model, seqs, frozen, device); // [B, T, C]
            model.forward_last_from(x, batch.mask.clone(), frozen, &last)
        }
        _ => model.forward_last_from(model.features(&batch, 0), batch.mask.clone(), 0, &last),
    }; // [B, C]
    head(model, hidden)
}

/// Scores `[B]` of sequences under the reward model `rm`, and the per-position log-probs
/// `[B * (T-1)]` of the same right-padded batch under `reference`, sharing one pass through the
/// embeddings and the blocks below the reward model's top `train_blocks`: those are the
/// pretrained weights in both models (the reward model never trains them and the reference is
/// the pretrained model), so the reward model only runs its top blocks. With every block
/// training, both models run in full.
pub async fn scores_and_reference_logprobs(
    rm: &Gpt,
    reference: &Gpt,
    seqs: &[Vec<u32>],
    train_blocks: usize,
    device: &Device,
) -> (Vec<f32>, Vec<f32>) {
    let batch = Batch::right_padded(seqs, device);
    let frozen = rm.n_layer().saturating_sub(train_blocks);
    let last = last_positions(seqs);
    let x = reference.features(&batch, frozen); // [B, T, C]
    // With every block training, the embeddings are the reward model's own too.
    let x_rm = if frozen > 0 {
        x.clone()
    } else {
        rm.features(&batch, 0)
    };
    let ref_hidden = reference.forward_from(x, batch.mask.clone(), frozen); // [B, T, C]
    let rm_hidden = rm.forward_last_from(x_rm, batch.mask.clone(), frozen, &last); // [B, C]
    let logprobs = crate::read(reference.token_logprobs(ref_hidden, batch.tokens.clone())).await;
    let scores = crate::read(head(rm, rm_hidden)).await;
    (scores, logprobs)
}

/// The frozen reference's confidence in each reply: the mean log-probability it gives the
/// reply's tokens, `(1/|y|) Σ_t log π_ref(y_t | x, y_<t)`, over the positions that emit them
/// ([`reply_token_logprobs`]). A reply with no token has confidence 0.
pub fn reference_confidence(
    ref_logprobs: &[f32],
    width: usize,
    seqs: &[Vec<u32>],
    starts: &[usize],
) -> Vec<f32> {
    reply_token_logprobs(ref_logprobs, width, seqs, starts)
        .into_iter()
        .map(|row| {
            if row.is_empty() {
                0.0
            } else {
                row.iter().sum::<f32>() / row.len() as f32
            }
        })
        .collect()
}

/// Each reply's token log-probabilities under the reference: the positions that emit the
/// reply's tokens and its `<|end|>` when the sequence has one (empty for a reply with no
/// token). `ref_logprobs` is `[B * width]`, position `j` of a row predicting token `j + 1` (as
/// in `ppo`); `starts[b]` is the index of reply `b`'s first token.
pub fn reply_token_logprobs<'a>(
    ref_logprobs: &'a [f32],
    width: usize,
    seqs: &[Vec<u32>],
    starts: &[usize],
) -> Vec<&'a [f32]> {
    seqs.iter()
        .zip(starts)
        .enumerate()
        .map(|(b, (seq, &start))| {
            let end = seq.len().min(width + 1).saturating_sub(1);
            let first = (start.max(1) - 1).min(end);
            &ref_logprobs[b * width + first..b * width + end]
        })
        .collect()
}

/// How far the reference's confidence agrees with the person's comparisons: a weighted Kendall's
/// τ, `Σ w · sign(c_chosen − c_rejected) / (Σ w + prior)` over the comparisons that have a
/// preferred reply (ties left out), `confidence[i]` being text `i`'s [`reference_confidence`].
/// 1 when the preferred reply is always the one the base model finds likelier, −1 when it is
/// always the other, 0 before any comparison.
pub fn confidence_agreement(pairs: &[Comparison], confidence: &[f32], prior: f64) -> f64 {
    let (mut agree, mut total) = (0.0, prior.max(0.0));
    for c in pairs.iter().filter(|c| c.target == 1.0) {
        let d = confidence[c.chosen] - confidence[c.rejected];
        let sign = if d > 0.0 {
            1.0
        } else if d < 0.0 {
            -1.0
        } else {
            0.0
        };
        agree += c.weight as f64 * sign;
        total += c.weight as f64;
    }
    if total > 0.0 { agree / total } else { 0.0 }
}

/// The score PPO maximises and the page shows: each reward-model score plus `weight` times the
/// reply's [`reference_confidence`].
pub fn with_confidence(scores: &[f32], confidence: &[f32], weight: f64) -> Vec<f32> {
    scores
        .iter()
        .zip(confidence)
        .map(|(&s, &c)| s + (weight as f32) * c)
        .collect()
}

/// Scores of (prompt, reply) texts under the reward model.
pub async fn score_texts(
    model: &Gpt,
    tok: &Tokenizer,
    texts: &[(String, String)],
    device: &Device,
) -> Vec<f32> {
    if texts.is_empty() {
        return Vec::new();
    }
    let seqs: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| encode(tok, t, model.context()))
        .collect();
    crate::read(score_ids(model, &seqs, None, device)).await
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

/// What one fitting of the reward model measured. Names as TRL's reward trainer logs them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RewardStats {
    /// Loss of each step (before its update).
    pub losses: Vec<f64>,
    /// Share of the last step's comparisons (ties excluded) that the model ranked right.
    pub accuracy: f64,
    /// Mean `r_chosen - r_rejected` over the last step's comparisons.
    pub margin: f64,
    /// Comparisons and pointwise targets in the training set.
    pub pairs: usize,
    pub points: usize,
}

/// Draws one step's batch: up to `batch_pairs` comparisons and as many pointwise targets, and
/// the distinct texts they need. Returns (texts, pairs as local indices, points as local indices).
#[allow(clippy::type_complexity)]
pub fn draw_batch(
    data: &RewardData,
    batch_pairs: usize,
    fresh_pairs: usize,
    rng: &mut Rng,
) -> (Vec<usize>, Vec<(usize, usize, f32, f32)>, Vec<(usize, f32)>) {
    let n = data.pairs.len();
    let pair_idx: Vec<usize> = if n <= batch_pairs {
        (0..n).collect()
    } else {
        // The newest feedback's comparisons first (up to `fresh_pairs` of them), so that every
        // rating is in the batches of the update it starts; the rest drawn from all of them.
        let k = fresh_pairs.min(batch_pairs);
        let fresh: Vec<usize> = if k == 0 {
            Vec::new()
        } else {
            (0..n)
                .filter(|&i| data.pairs[i].newest >= data.fresh_from)
                .collect()
        };
        let mut idx: Vec<usize> = if fresh.len() <= k {
            fresh
        } else {
            (0..k).map(|_| fresh[rng.below(fresh.len())]).collect()
        };
        while idx.len() < batch_pairs {
            idx.push(rng.below(n));
        }
        idx
    };
    // The pointwise term is a helper: half as many targets as comparisons, once there are any.
    let points_n = if data.pairs.is_empty() {
        batch_pairs
    } else {
        batch_pairs.div_ceil(2)
    };
    let point_idx: Vec<usize> = if data.points.len() <= points_n {
        (0..data.points.len()).collect()
    } else {
        (0..points_n)
            .map(|_| rng.below(data.points.len()))
            .collect()
    };
    let mut texts: Vec<usize> = Vec::new();
    let mut local = |t: usize| match texts.iter().position(|&x| x == t) {
        Some(i) => i,
        None => {
            texts.push(t);
            texts.len() - 1
        }
    };
    let pairs = pair_idx
        .iter()
        .map(|&i| {
            let c = &data.pairs[i];
            (local(c.chosen), local(c.rejected), c.target, c.weight)
        })
        .collect();
    let points = point_idx
        .iter()
        .map(|&i| {
            let (t, u, _) = data.points[i];
            (local(t), u)
        })
        .collect();
    (texts, pairs, points)
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

/// Running mean and variance of reward-model scores, to normalise them before PPO (Ziegler et
/// al. 2019 normalise the reward model's output; TRL keeps `RunningMoments`). An exponential
/// moving average, because the reward model changes with every update.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunningMoments {
    pub mean: f64,
    pub var: f64,
    pub count: usize,
}

impl RunningMoments {
    /// Folds a batch of scores in: the first batch sets the statistics, later ones move them by
    /// `1 - momentum`.
    pub fn update(&mut self, xs: &[f32], momentum: f64) {
        if xs.is_empty() {
            return;
        }
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        if self.count == 0 {
            self.mean = mean;
            self.var = var;
        } else {
            self.mean = momentum * self.mean + (1.0 - momentum) * mean;
            self.var = momentum * self.var + (1.0 - momentum) * var;
        }
        self.count += xs.len();
    }

    /// `(x - mean) / max(std, floor)`.
    pub fn normalise(&self, x: f32, floor: f64) -> f32 {
        ((x as f64 - self.mean) / self.var.sqrt().max(floor)) as f32
    }
}

#[cfg(test)]
mod tests;
