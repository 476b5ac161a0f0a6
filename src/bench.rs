//! Measured speed of the default model: a training step and sampling, with and without the
//! key/value cache. Shared by `rlhf-playground bench` and `cargo bench`.
//!
//! The FLOP count per training step is the usual 6 × parameters × tokens (forward 2, backward 4;
//! Kaplan et al. 2020), which ignores attention's T² term (small at T = 64).

use crate::model::{Gpt, GptConfig};
use crate::pretrain::lm_loss;
use crate::rng::Rng;
use crate::sample::{SampleConfig, generate};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Figures of one benchmark run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchReport {
    pub device: String,
    pub params: usize,
    pub batch: usize,
    /// Tokens per training sequence.
    pub context: usize,
    /// Median milliseconds of one forward + backward + AdamW step.
    pub train_step_ms: f64,
    pub train_tokens_per_s: f64,
    /// Achieved FLOP/s of the training step (6 × params × tokens / time).
    pub train_gflops: f64,
    /// Loss of each timed training step (a fixed seed gives the same figures on every run).
    pub train_losses: Vec<f32>,
    /// Sampling 4 replies of up to 48 tokens: new tokens per second.
    pub gen_tokens_per_s_cache: f64,
    pub gen_tokens_per_s_no_cache: f64,
    /// One full RLHF update with the default session configuration.
    pub update: UpdateBench,
}

/// Milliseconds of one full update (SFT, reward model, PPO, fresh samples), the median over
/// the timed updates, split by stage.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UpdateBench {
    /// Pieces of feedback recorded (each with its update) before timing started.
    pub history: usize,
    pub updates: usize,
    pub total_ms: f64,
    pub sft_ms: f64,
    pub reward_ms: f64,
    /// Sampling the PPO batch, scoring it and computing old/reference log-probs and advantages.
    pub ppo_rollout_ms: f64,
    /// The PPO epochs over minibatches.
    pub ppo_train_ms: f64,
    /// Fresh samples with per-token changes after the update.
    pub samples_ms: f64,
    /// Per timed update, each stage's optimiser-step losses in order (SFT, reward model, PPO):
    /// figures that a change of the engine's numerics would change.
    pub losses: Vec<Vec<Vec<f64>>>,
}

/// Random sequences of `len` tokens (no padding: every position is real work).
pub fn random_batch(cfg: &GptConfig, batch: usize, len: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = Rng::new(seed);
    (0..batch)
        .map(|_| {
            (0..len)
                .map(|_| 4 + rng.below(cfg.vocab_size - 4) as u32)
                .collect()
        })
        .collect()
}

/// A trainer for timing: model, optimiser and a fixed batch.
pub struct TrainStep {
    model: Option<Gpt>,
    optim: burn::optim::ModuleOptimizer,
    seqs: Vec<Vec<u32>>,
    device: Device,
}

impl TrainStep {
    /// A fresh model on `device` (with autodiff) and a random batch of `batch` × `len` tokens.
    pub fn new(cfg: &GptConfig, batch: usize, len: usize, device: &Device) -> Self {
        let device = device.clone().autodiff();
        device.seed(0);
        Self {
            model: Some(cfg.init(&device)),
            optim: AdamWConfig::new().init(),
            seqs: random_batch(cfg, batch, len.min(cfg.context), 1),
            device,
        }
    }

    /// One forward, backward and AdamW step; returns the loss (read back, which also waits for
    /// the device to finish).
    pub fn step(&mut self) -> f32 {
        let model = self.model.take().expect("model");
        let loss = lm_loss(&model, &self.seqs, &self.device);
        let value: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(1e-3, model, grads));
        value
    }

    /// The model without autodiff, for sampling.
    pub fn model(&self) -> Gpt {
        self.model.as_ref().expect("model").valid()
    }
}

/// A session for timing updates: the bundled base model, fed by the polite rater.
pub struct UpdateBencher {
    session: crate::session::Session,
    rater: crate::rater::Rater,
    prompts: crate::corpus::Corpus,
    pending: Vec<crate::feedback::Feedback>,
    /// Pieces of feedback recorded so far.
    pub ratings: usize,
}

impl UpdateBencher {
    /// A session on the bundled base model with `history` pieces of feedback from the polite
    /// rater (the first a demonstration, so that every stage has work), each with its update,
    /// under the session settings `cfg`.
    pub fn new(device: &Device, history: usize, cfg: crate::session::SessionConfig) -> Self {
        use crate::feedback::Feedback;
        use crate::session::Session;
        let mut session = Session::bundled(cfg, device).expect("bundled model");
        let _ = crate::block_on(session.generate("what is 3 plus 4?", 1));
        session
            .record(Feedback::Demonstration {
                prompt: 0,
                text: "Sure, happy to help. 3 plus 4 is 7.".into(),
            })
            .expect("valid demonstration");
        crate::block_on(session.update());
        let mut b = UpdateBencher {
            session,
            rater: crate::rater::Rater::Taste(crate::rater::Taste::Polite),
            prompts: crate::simulate::round_prompts(0),
            pending: Vec::new(),
            ratings: 1,
        };
        while b.ratings < history {
            b.run_one();
        }
        b
    }

    /// Records one more rating and runs its update; returns milliseconds of
    /// [total, SFT, reward model, PPO rollout, PPO epochs, samples], and each stage's losses.
    pub fn run_one(&mut self) -> ([f64; 6], Vec<Vec<f64>>) {
        use crate::report::{Event, Stage};
        use crate::simulate::{FeedbackKind, PairChoice, round};
        if self.pending.is_empty() {
            let p = self.prompts.prompt(false).text;
            self.pending = crate::block_on(round(
                &mut self.session,
                &self.rater,
                FeedbackKind::Thumbs,
                PairChoice::InOrder,
                &p,
                4,
            ))
            .expect("built-in rater");
            self.pending.reverse();
        }
        let fb = self.pending.pop().expect("a round gives feedback");
        self.session.record(fb).expect("valid feedback");
        self.ratings += 1;
        let mut row = [0.0; 6];
        let mut first_ppo = true;
        let mut losses = Vec::new();
        let start = Instant::now();
        loop {
            let t = Instant::now();
            let Some(event) = crate::block_on(self.session.step()) else {
                break;
            };
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let stage = match &event {
                Event::Progress { stage, .. } => Some(*stage),
                Event::Stage(r) => Some(r.stage),
                Event::Done(report) => {
                    losses = report.stages.iter().map(|s| s.losses.clone()).collect();
                    None
                }
            };
            match stage {
                Some(Stage::Sft) => row[1] += ms,
                Some(Stage::Reward) => row[2] += ms,
                Some(Stage::Ppo) if first_ppo => {
                    row[3] += ms;
                    first_ppo = false;
                }
                // DPO's, KTO's and GRPO's steps stand where PPO's minibatches do.
                Some(Stage::Ppo | Stage::Dpo | Stage::Kto | Stage::Grpo | Stage::Bon) => {
                    row[4] += ms
                }
                Some(Stage::Samples) | None => row[5] += ms,
            }
        }
        row[0] = start.elapsed().as_secs_f64() * 1e3;
        (row, losses)
    }
}

/// `updates` timed updates after `history` ratings (see [`UpdateBencher`]); medians. With
/// `timed`, the session changes to those settings after the history, so that two settings are
/// timed on the same policy (a setting that changes training would otherwise change the replies
/// of the 20 ratings before, and with them the cost of every stage).
pub fn update(
    device: &Device,
    history: usize,
    updates: usize,
    cfg: crate::session::SessionConfig,
    timed: Option<crate::session::SessionConfig>,
) -> UpdateBench {
    let mut b = UpdateBencher::new(device, history, cfg);
    if let Some(t) = timed {
        b.session.set_config(t).expect("valid settings");
    }
    let (rows, losses): (Vec<[f64; 6]>, Vec<Vec<Vec<f64>>>) =
        (0..updates.max(1)).map(|_| b.run_one()).unzip();
    let col = |i: usize| median(rows.iter().map(|r| r[i]).collect());
    UpdateBench {
        history,
        updates: rows.len(),
        total_ms: col(0),
        sft_ms: col(1),
        reward_ms: col(2),
        ppo_rollout_ms: col(3),
        ppo_train_ms: col(4),
        samples_ms: col(5),
        losses,
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Tokens per sequence in the timed training steps (the CLI's figure; context permitting).
pub const TRAIN_LEN: usize = 64;

/// Runs the benchmark: `steps` timed training steps of `batch` × [`TRAIN_LEN`] tokens after 2
/// warm-up steps, sampling 4 replies of up to 48 tokens, and `updates` full RLHF updates after
/// 20 ratings under the session settings `session`, timed under `timed` when given (see
/// [`update`]).
#[allow(clippy::too_many_arguments)]
pub fn run(
    cfg: &GptConfig,
    batch: usize,
    steps: usize,
    updates: usize,
    session: crate::session::SessionConfig,
    timed: Option<crate::session::SessionConfig>,
    device: &Device,
    device_name: &str,
) -> BenchReport {
    let len = TRAIN_LEN;
    let mut trainer = TrainStep::new(cfg, batch, len, device);
    trainer.step();
    trainer.step();
    let (times, train_losses): (Vec<f64>, Vec<f32>) = (0..steps.max(1))
        .map(|_| {
            let t = Instant::now();
            let loss = trainer.step();
            (t.elapsed().as_secs_f64(), loss)
        })
        .unzip();
    let step_s = median(times);
    let len = len.min(cfg.context);
    let tokens = (batch * len) as f64;
    let model = trainer.model();
    let params = model.num_parameters();
    let sample_rate = |cache: bool| {
        let prompts = random_batch(cfg, 4, 8, 2);
        // No <|end|> in a random model's argmax is guaranteed, so count what was produced.
        let sc = SampleConfig::new()
            .with_temperature(0.0)
            .with_max_new_tokens(48);
        let mut rng = Rng::new(0);
        crate::block_on(generate(&model, &prompts, &sc, &mut rng, cache)); // warm-up
        let t = Instant::now();
        let out = crate::block_on(generate(&model, &prompts, &sc, &mut rng, cache));
        let n: usize = out.iter().map(|o| o.tokens.len()).sum();
        n as f64 / t.elapsed().as_secs_f64()
    };
    BenchReport {
        device: device_name.to_string(),
        params,
        batch,
        context: len,
        train_step_ms: step_s * 1e3,
        train_tokens_per_s: tokens / step_s,
        train_gflops: 6.0 * params as f64 * tokens / step_s / 1e9,
        train_losses,
        gen_tokens_per_s_cache: sample_rate(true),
        gen_tokens_per_s_no_cache: sample_rate(false),
        update: update(device, 20, updates, session, timed),
    }
}
