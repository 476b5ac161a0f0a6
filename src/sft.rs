//! Step 1 of RLHF: supervised fine-tuning (SFT) on demonstrations.
//!
//! Ouyang et al. (2022), section 3.5: the policy is fine-tuned on human-written replies with the
//! ordinary next-token cross-entropy. Only the reply's tokens (and the closing `<|end|>`, so the
//! model learns where to stop) are predicted; the prompt is context, not a target. The
//! demonstrations are the replies a person wrote and, with `sft_top_rated` (on by default), the
//! best-rated sampled replies ([`demonstrations`]).

use crate::feedback::{Feedback, FeedbackLog};
use crate::grad::descend;
use crate::metrics::{Metrics, SftStats};
use crate::model::{Batch, Gpt, masked_mean};
use crate::report::{Slice, Steps};
use crate::rng::Rng;
use crate::settings::config;
use crate::tokenizer::Tokenizer;
use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::prelude::*;

config! {
    /// Settings of the SFT stage. Why each default: docs/TUNING.md, "SFT".
    pub struct SftConfig in "SFT" {
        /// Size of each step on your written answers and best-rated replies (AdamW).
        lr: f64 = 2e-4 in 1e-7..=0.1, "SFT learning rate", basic;
        /// How many times Pip practises your written answers and best-rated replies per update.
        steps: usize = 1 in 0..=100, "SFT steps per rating", basic;
        /// Demonstrations per step, drawn from all so far (all of them when there are fewer).
        batch_size: usize = 8 in 1..=64, "SFT batch", advanced;
        /// Gradients are scaled down to at most this global norm.
        max_grad_norm: f32 = 1.0 in 1e-3..=1e3, "SFT gradient clip", advanced;
    }
}

impl SftConfig {
    /// The optimiser this stage uses (AdamW without weight decay; clipping is by global norm).
    pub fn optimizer(&self) -> ModuleOptimizer {
        AdamWConfig::new().with_weight_decay(0.0).init()
    }
}

/// SFT's optimiser and settings, and the demonstrations of the update in flight. It steps the
/// policy that [`crate::ppo::PpoTrainer`] holds: SFT and PPO train one model, as in Ouyang et
/// al., where PPO starts from the SFT model (here they take turns, every update).
#[derive(Clone)]
pub struct SftTrainer {
    cfg: SftConfig,
    optim: ModuleOptimizer,
    device: Device,
    /// This update's encoded demonstrations, and its steps.
    data: Vec<(Vec<u32>, usize)>,
    steps: Steps,
}

impl SftTrainer {
    /// A trainer whose steps run on `device`'s autodiff form.
    pub fn new(cfg: SftConfig, device: &Device) -> Self {
        Self {
            optim: cfg.optimizer(),
            cfg,
            device: device.clone().autodiff(),
            data: Vec::new(),
            steps: Steps::default(),
        }
    }

    /// New settings from the next step on; the optimiser keeps its state.
    pub fn set_config(&mut self, cfg: SftConfig) {
        self.cfg = cfg;
    }

    /// Starts an update on `demos`, encoded for a model reading `context` tokens.
    pub fn begin(&mut self, tok: &Tokenizer, demos: &[Demonstration], context: usize) {
        self.data = encode(tok, demos, context);
        self.steps.restart();
    }

    /// Demonstrations the update in flight learns from.
    pub fn demonstrations(&self) -> usize {
        self.data.len()
    }

    /// One optimiser step of the update in flight on `policy`; returns the policy and what the
    /// slice did.
    pub async fn step(&mut self, policy: Gpt, rng: &mut Rng) -> (Gpt, Slice) {
        let steps = self.cfg.steps;
        if steps == 0 {
            return (policy, Slice::Skipped("SFT is off (sft.steps is 0)"));
        }
        if self.data.is_empty() {
            return (
                policy,
                Slice::Skipped("no demonstrations or top-rated replies yet"),
            );
        }
        let (policy, loss) = step(
            policy,
            &mut self.optim,
            &self.data,
            &self.cfg,
            rng,
            &self.device,
        )
        .await;
        let demonstrations = self.data.len();
        let slice = self.steps.record(loss, steps, || Metrics {
            sft: Some(SftStats {
                loss,
                demonstrations,
            }),
            ..Default::default()
        });
        (policy, slice)
    }
}

/// What SFT learns from in `log`: the demonstrations, and with `top_rated` also the replies
/// rated thumbs-up or 4–5 stars and the preferred reply of each pair (rejection-sampling
/// fine-tuning, as in Llama 2's RLHF, Touvron et al. 2023).
pub fn demonstrations(log: &FeedbackLog, top_rated: bool) -> Vec<Demonstration> {
    let demo_of = |reply: usize| {
        let r = &log.replies[reply];
        Demonstration {
            prompt: log.prompts[r.prompt].clone(),
            reply: r.text.clone(),
        }
    };
    let mut demos = Vec::new();
    for fb in &log.feedback {
        match fb {
            Feedback::Demonstration { prompt, text } => demos.push(Demonstration {
                prompt: log.prompts[*prompt].clone(),
                reply: text.clone(),
            }),
            Feedback::Thumbs { reply, up: true } if top_rated => demos.push(demo_of(*reply)),
            Feedback::Stars { reply, stars } if top_rated && *stars >= 4 => {
                demos.push(demo_of(*reply))
            }
            Feedback::Pair {
                better, tie: false, ..
            } if top_rated => demos.push(demo_of(*better)),
            _ => {}
        }
    }
    demos
}

/// A prompt and the reply the policy should learn to give.
#[derive(Clone, Debug, PartialEq)]
pub struct Demonstration {
    pub prompt: String,
    pub reply: String,
}

/// Token ids of each demonstration and where its reply starts, the prompt shortened as for
/// sampling ([`Tokenizer::fit_exchange`]), so that a reply is learnt after the prompt it was
/// written to and always keeps room.
pub fn encode(tok: &Tokenizer, demos: &[Demonstration], context: usize) -> Vec<(Vec<u32>, usize)> {
    demos
        .iter()
        .map(|d| tok.fit_exchange(&d.prompt, &d.reply, context))
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

/// Each reply's log-probability under `model`, Σ_t log π(y_t | x, y_<t) over its tokens and its
/// `<|end|>` (`[B]`), and how many tokens that sums (`[B]`): the log π(y|x) of DPO and KTO.
pub fn reply_logprobs(
    model: &Gpt,
    seqs: &[(Vec<u32>, usize)],
    device: &Device,
) -> (Tensor<1>, Tensor<1>) {
    let ids: Vec<Vec<u32>> = seqs.iter().map(|(ids, _)| ids.clone()).collect();
    let batch = Batch::right_padded(&ids, device);
    let t = batch.tokens.dims()[1];
    let logp = model.token_logprobs(model.forward(&batch, None), batch.tokens.clone()); // [B, T-1]
    let mask = reply_mask(seqs, t, device); // [B, T-1]
    let sums = (logp * mask.clone()).sum_dim(1).squeeze_dim::<1>(1); // [B]
    (sums, mask.sum_dim(1).squeeze_dim::<1>(1))
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
    (
        descend(model, loss, optim, cfg.lr, cfg.max_grad_norm),
        value,
    )
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
    fn the_trainer_lowers_the_loss_on_its_demonstrations_one_step_a_slice() {
        let device = Device::flex();
        let tok = Tokenizer::bundled();
        let (model, _) = checkpoint::bundled(&device.clone().autodiff()).unwrap();
        let cfg = SftConfig::new().with_steps(12).with_lr(1e-3);
        let mut trainer = SftTrainer::new(cfg, &device);
        let seqs = encode(&tok, &demos(), model.context());
        let before: f32 = sft_loss(&model, &seqs, &device.clone().autodiff()).into_scalar();
        trainer.begin(&tok, &demos(), model.context());
        let (mut model, mut rng, mut slices) = (model, Rng::new(0), Vec::new());
        loop {
            let (m, slice) = crate::block_on(trainer.step(model, &mut rng));
            model = m;
            match slice {
                Slice::Progress { step, steps } => slices.push((step, steps)),
                Slice::Done { losses, metrics } => {
                    assert_eq!(losses.len(), 12);
                    let stats = metrics.sft.expect("SFT's metrics");
                    assert_eq!((stats.loss, stats.demonstrations), (losses[11], 2));
                    break;
                }
                Slice::Skipped(why) => panic!("skipped: {why}"),
            }
        }
        assert_eq!(slices, (1..12).map(|i| (i, 12)).collect::<Vec<_>>());
        let after: f32 = sft_loss(&model, &seqs, &device.clone().autodiff()).into_scalar();
        assert!(after < before * 0.5, "{before} -> {after}");
        // No demonstrations, or no steps: the stage says why it did nothing.
        trainer.begin(&tok, &[], model.context());
        let (model, slice) = crate::block_on(trainer.step(model, &mut rng));
        assert!(matches!(slice, Slice::Skipped(w) if w.contains("no demonstrations")));
        trainer.set_config(SftConfig::new().with_steps(0));
        trainer.begin(&tok, &demos(), model.context());
        let (_, slice) = crate::block_on(trainer.step(model, &mut rng));
        assert!(matches!(slice, Slice::Skipped(w) if w.contains("off")));
    }
}
