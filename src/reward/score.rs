//! Scoring with the reward model: the scalar head at an exchange's last token, the cache of the
//! frozen bottom's features, the pass through the frozen bottom shared with the reference, and
//! the running statistics that normalise scores for PPO.

use crate::model::{Batch, Gpt};
use crate::tokenizer::Tokenizer;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use super::encode;

/// Features of the frozen bottom of the reward model, computed once per sequence.
///
/// With only the top `train_blocks` blocks training, everything below them is a fixed function
/// of the tokens; caching its output makes each fitting step cost the top blocks alone.
#[derive(Clone, Default)]
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
