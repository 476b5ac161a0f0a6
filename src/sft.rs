//! Step 1 of RLHF: supervised fine-tuning (SFT) on demonstrations.
//!
//! Ouyang et al. (2022), section 3.5: the policy is fine-tuned on human-written replies with the
//! ordinary next-token cross-entropy. Only the reply's tokens (and the closing `<|end|>`, so the
//! model learns where to stop) are predicted; the prompt is context, not a target. The caller
//! chooses the demonstrations: replies a person wrote, and (next) the best-rated sampled
//! replies (rejection-sampling fine-tuning, as in Llama 2's RLHF, Touvron et al. 2023).

use crate::grad::clip_global_norm;
use crate::model::{Batch, Gpt, masked_mean};
use crate::rng::Rng;
use crate::tokenizer::Tokenizer;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

/// Settings of the SFT stage.
#[derive(Config, Debug)]
pub struct SftConfig {
    /// AdamW learning rate: 2e-4, a fifteenth of pretraining's peak, so a couple of steps move
    /// the policy without erasing the corpus (InstructGPT used 9.65e-6 on 175B parameters).
    /// Tuned together with `steps` (docs/TUNING.md).
    #[config(default = 2e-4)]
    pub lr: f64,
    /// Optimiser steps per update (one rating = one update). Measured (docs/TUNING.md): one
    /// step kept replies better formed than two (90-97% against 89-96%) at about the same
    /// preferred rates: a few dozen imitated replies revisited twice per rating got learnt by
    /// heart, and their fragments leaked into other answers.
    #[config(default = 1)]
    pub steps: usize,
    /// Demonstrations per step, drawn with replacement from all collected so far (all of them
    /// when there are no more than this).
    #[config(default = 8)]
    pub batch_size: usize,
    /// Gradient clipping by global norm (1.0, as in pretraining).
    #[config(default = 1.0)]
    pub max_grad_norm: f32,
}

impl SftConfig {
    /// The optimiser this stage uses (AdamW without weight decay; clipping is by global norm).
    pub fn optimizer(&self) -> ModuleOptimizer {
        AdamWConfig::new().with_weight_decay(0.0).init()
    }
}

/// A prompt and the reply the policy should learn to give.
#[derive(Clone, Debug, PartialEq)]
pub struct Demonstration {
    pub prompt: String,
    pub reply: String,
}

/// Token ids of each demonstration (cut to the context) and where its reply starts.
pub fn encode(tok: &Tokenizer, demos: &[Demonstration], context: usize) -> Vec<(Vec<u32>, usize)> {
    demos
        .iter()
        .map(|d| {
            let (mut ids, start) = tok.encode_exchange(&d.prompt, &d.reply);
            ids.truncate(context);
            (ids, start.min(context))
        })
        .collect()
}

/// `[B, T-1]` mask of the targets that count: position t predicts token t+1, which counts when
/// it belongs to the reply (index >= start) and is not padding.
pub fn reply_mask(seqs: &[(Vec<u32>, usize)], t: usize, device: &Device) -> Tensor<2> {
    let b = seqs.len();
    let mut mask = Vec::with_capacity(b * (t - 1));
    for (ids, start) in seqs {
        mask.extend((0..t - 1).map(|i| {
            if i + 1 >= *start && i + 1 < ids.len() {
                1.0f32
            } else {
                0.0
            }
        }));
    }
    Tensor::from_data(TensorData::new(mask, [b, t - 1]), device)
}

/// Mean cross-entropy over the reply tokens of `seqs` (differentiable on an autodiff device).
pub fn sft_loss(model: &Gpt, seqs: &[(Vec<u32>, usize)], device: &Device) -> Tensor<1> {
    let ids: Vec<Vec<u32>> = seqs.iter().map(|(ids, _)| ids.clone()).collect();
    let batch = Batch::right_padded(&ids, device);
    let t = batch.tokens.dims()[1];
    let logp = model.token_logprobs(model.forward(&batch, None), batch.tokens.clone()); // [B, T-1]
    masked_mean(logp, reply_mask(seqs, t, device)).neg()
}

/// One SFT step on a batch of `cfg.batch_size` sequences drawn from `all` (encoded
/// demonstrations); returns the model and the loss before the step.
pub async fn step(
    model: Gpt,
    optim: &mut ModuleOptimizer,
    all: &[(Vec<u32>, usize)],
    cfg: &SftConfig,
    rng: &mut Rng,
    device: &Device,
) -> (Gpt, f64) {
    // With no more demonstrations than a batch holds, the batch is all of them (drawing copies
    // would give the same mean gradient at several times the cost).
    let batch: Vec<(Vec<u32>, usize)> = if all.len() <= cfg.batch_size {
        all.to_vec()
    } else {
        (0..cfg.batch_size.max(1))
            .map(|_| all[rng.below(all.len())].clone())
            .collect()
    };
    let loss = sft_loss(&model, &batch, device);
    let value = crate::read(loss.clone()).await[0] as f64;
    let mut grads = GradientsParams::from_grads(loss.backward(), &model);
    clip_global_norm(&mut grads, &model, cfg.max_grad_norm);
    (optim.step(cfg.lr, model, grads), value)
}

/// Runs `cfg.steps` SFT steps on batches drawn from `demos`; returns the model and the loss of
/// each step (before its update).
pub async fn train(
    mut model: Gpt,
    optim: &mut ModuleOptimizer,
    tok: &Tokenizer,
    demos: &[Demonstration],
    cfg: &SftConfig,
    rng: &mut Rng,
    device: &Device,
) -> (Gpt, Vec<f64>) {
    let mut losses = Vec::new();
    if demos.is_empty() {
        return (model, losses);
    }
    let all = encode(tok, demos, model.context());
    for _ in 0..cfg.steps {
        let (m, loss) = step(model, optim, &all, cfg, rng, device).await;
        model = m;
        losses.push(loss);
    }
    (model, losses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint;
    use crate::tokenizer::END;

    fn demos() -> Vec<Demonstration> {
        vec![
            Demonstration {
                prompt: "what is 2 plus 2?".into(),
                reply: "2 plus 2 is 4. Hope that helps.".into(),
            },
            Demonstration {
                prompt: "hello".into(),
                reply: "Hello! I am Pip, a tiny chat bot.".into(),
            },
        ]
    }

    #[test]
    fn the_loss_counts_reply_tokens_only() {
        let device = Device::flex();
        let tok = Tokenizer::bundled();
        let (model, _) = checkpoint::bundled(&device).unwrap();
        let seqs = encode(&tok, &demos(), model.context());
        let t = seqs.iter().map(|(s, _)| s.len()).max().unwrap();
        let mask: Vec<f32> = reply_mask(&seqs, t, &device)
            .into_data()
            .try_to_vec()
            .unwrap();
        // Row 0: targets from the reply's first token through <|end|>, nothing else.
        let (ids, start) = &seqs[0];
        let counted: Vec<u32> = (0..t - 1)
            .filter(|&i| mask[i] == 1.0)
            .map(|i| ids[i + 1])
            .collect();
        assert_eq!(counted, ids[*start..].to_vec());
        assert_eq!(*counted.last().unwrap(), END);
        // The loss equals the mean negative log-prob of exactly those tokens.
        let loss: f32 = sft_loss(&model, &seqs, &device).into_scalar();
        let ids_only: Vec<Vec<u32>> = seqs.iter().map(|(s, _)| s.clone()).collect();
        let batch = Batch::right_padded(&ids_only, &device);
        let logp: Vec<f32> = model
            .token_logprobs(model.forward(&batch, None), batch.tokens.clone())
            .into_data()
            .try_to_vec()
            .unwrap();
        let (sum, n) = logp
            .iter()
            .zip(&mask)
            .fold((0.0, 0.0), |(s, n), (l, m)| (s - l * m, n + m));
        assert!((loss - sum / n).abs() < 1e-5, "{loss} vs {}", sum / n);
    }

    #[test]
    fn sft_lowers_the_loss_on_its_demonstrations() {
        let device = Device::flex().autodiff();
        let tok = Tokenizer::bundled();
        let (model, _) = checkpoint::bundled(&device).unwrap();
        let cfg = SftConfig::new().with_steps(12).with_lr(1e-3);
        let mut optim = cfg.optimizer();
        let seqs = encode(&tok, &demos(), model.context());
        let before: f32 = sft_loss(&model, &seqs, &device).into_scalar();
        let (model, losses) = crate::block_on(train(
            model,
            &mut optim,
            &tok,
            &demos(),
            &cfg,
            &mut Rng::new(0),
            &device,
        ));
        let after: f32 = sft_loss(&model, &seqs, &device).into_scalar();
        assert_eq!(losses.len(), 12);
        assert!(after < before * 0.5, "{before} -> {after}");
        // No demonstrations: nothing happens.
        let (_, none) = crate::block_on(train(
            model,
            &mut optim,
            &tok,
            &[],
            &cfg,
            &mut Rng::new(0),
            &device,
        ));
        assert!(none.is_empty());
    }
}
