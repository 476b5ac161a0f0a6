//! The frozen reference's confidence in a reply (the mean log-probability it gives the reply's
//! tokens), how far a person's comparisons agree with it, and its place in PPO's score
//! (`reward.confidence_weight`; docs/TUNING.md, "Reward model").

use super::{Comparison, RewardData};
use crate::model::{Batch, Gpt};
use crate::tokenizer::Tokenizer;
use burn::prelude::*;
use std::collections::{BTreeSet, HashMap};

/// Most (prompt, reply) texts whose reference confidence is kept.
const CONFIDENCE_LIMIT: usize = 4096;

/// The reference's confidence in each rated (prompt, reply) text, computed once, and how far
/// the comparisons so far agree with it.
#[derive(Clone, Default)]
pub struct ConfidenceCache {
    map: HashMap<(String, String), f32>,
    /// τ of [`confidence_agreement`] over the last update's comparisons (0 before any).
    pub agreement: f64,
}

impl ConfidenceCache {
    /// The confidence in a text, if computed.
    pub fn get(&self, text: &(String, String)) -> Option<f32> {
        self.map.get(text).copied()
    }

    /// Computes the confidence in the texts of `data` not seen before (in batches of 32), then
    /// the agreement of `data`'s comparisons with it, counting `prior` comparisons of none.
    pub async fn update(
        &mut self,
        data: &RewardData,
        reference: &Gpt,
        tok: &Tokenizer,
        prior: f64,
        device: &Device,
    ) {
        // A bound on what is kept: beyond it, only this update's texts are.
        let known = data
            .texts
            .iter()
            .filter(|t| self.map.contains_key(*t))
            .count();
        if self.map.len() + data.texts.len() - known > CONFIDENCE_LIMIT {
            self.map.clear();
        }
        let missing: Vec<(String, String)> = data
            .texts
            .iter()
            .filter(|t| !self.map.contains_key(*t))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in missing.chunks(32) {
            let (seqs, starts) = tok.encode_exchanges(chunk, reference.context());
            let batch = Batch::right_padded(&seqs, device);
            let width = batch.tokens.dims()[1] - 1;
            let hidden = reference.forward(&batch, None);
            let lp = crate::read(reference.token_logprobs(hidden, batch.tokens.clone())).await;
            let conf = reference_confidence(&lp, width, &seqs, &starts);
            self.map.extend(chunk.iter().cloned().zip(conf));
        }
        let conf: Vec<f32> = data.texts.iter().map(|t| self.map[t]).collect();
        self.agreement = confidence_agreement(&data.pairs, &conf, prior);
    }
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
