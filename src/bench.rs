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
    /// Sampling 4 replies of up to 48 tokens: new tokens per second.
    pub gen_tokens_per_s_cache: f64,
    pub gen_tokens_per_s_no_cache: f64,
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

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Runs the benchmark: `steps` timed training steps of `batch` × `len` tokens after 2 warm-up
/// steps, and sampling 4 replies of up to 48 tokens.
pub fn run(
    cfg: &GptConfig,
    batch: usize,
    len: usize,
    steps: usize,
    device: &Device,
    device_name: &str,
) -> BenchReport {
    let mut trainer = TrainStep::new(cfg, batch, len, device);
    trainer.step();
    trainer.step();
    let times: Vec<f64> = (0..steps.max(1))
        .map(|_| {
            let t = Instant::now();
            trainer.step();
            t.elapsed().as_secs_f64()
        })
        .collect();
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
        gen_tokens_per_s_cache: sample_rate(true),
        gen_tokens_per_s_no_cache: sample_rate(false),
    }
}
