//! What an update reports, slice by slice: the events the page draws and the CLI prints.

use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};

/// The three stages of an update, and the samples shown after it. The third is PPO, or DPO, KTO
/// GRPO or best-of-N in its place ([`crate::session::Method`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Sft,
    Reward,
    Ppo,
    Dpo,
    Kto,
    Grpo,
    Bon,
    Samples,
}

/// What one slice of a stage's trainer did.
// One slice a few times a second: the size of the finished variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Slice {
    /// `step` of `steps` slices are done; more follow.
    Progress { step: usize, steps: usize },
    /// The stage finished: the loss of each optimiser step, and what it measured.
    Done { losses: Vec<f64>, metrics: Metrics },
    /// The stage had nothing to do, and why (e.g. no demonstrations yet).
    Skipped(&'static str),
}

/// A stage's optimiser steps in the update in flight: how many are done, and each one's loss.
#[derive(Clone, Debug, Default)]
pub struct Steps {
    done: usize,
    losses: Vec<f64>,
}

impl Steps {
    /// Back to none, for a new update.
    pub fn restart(&mut self) {
        *self = Steps::default();
    }

    /// Records a step's `loss`: progress while fewer than `steps` are done, else the stage is
    /// done with every step's loss and `metrics()`.
    pub fn record(&mut self, loss: f64, steps: usize, metrics: impl FnOnce() -> Metrics) -> Slice {
        self.losses.push(loss);
        self.done += 1;
        if self.done < steps {
            return Slice::Progress {
                step: self.done,
                steps,
            };
        }
        Slice::Done {
            losses: std::mem::take(&mut self.losses),
            metrics: metrics(),
        }
    }
}

/// What one stage of an update did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageReport {
    pub stage: Stage,
    /// Why the stage did nothing, when it did nothing (e.g. no demonstrations yet).
    pub skipped: Option<String>,
    pub millis: f64,
    /// Loss of each optimiser step.
    pub losses: Vec<f64>,
    /// This stage's part of the metrics.
    pub metrics: Metrics,
}

/// One token of a sampled reply with its log-probability under the policy and the reference.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenChange {
    pub text: String,
    pub logprob: f32,
    pub ref_logprob: f32,
}

/// A fresh reply after an update.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SampleReport {
    pub prompt: String,
    pub reply: String,
    /// PPO's score of it: the reward model's plus the reference's confidence, unnormalised.
    pub reward: f32,
    /// The reply's tokens (and its `<|end|>`) with their log-prob change.
    pub tokens: Vec<TokenChange>,
}

/// Everything one update did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpdateReport {
    /// Policy version after the update.
    pub version: u32,
    /// The rating this update was for (the k-th piece of feedback runs the k-th update).
    pub ratings: usize,
    pub millis: f64,
    pub stages: Vec<StageReport>,
    /// Every stage's metrics in one object.
    pub metrics: Metrics,
    pub samples: Vec<SampleReport>,
    /// The (prompt, reply) pairs PPO or GRPO rolled out: fresh samples of the policy before
    /// its step.
    pub rollouts: Vec<(String, String)>,
    /// Why the update was undone, when it broke the model: the model is as it was before the
    /// update (the rating stays in the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

impl UpdateReport {
    /// The replies a simulated rater judges an update by: its rollouts, or for a method without
    /// any (DPO, KTO, SFT only) the fresh samples shown after it.
    pub fn judged(&self) -> Vec<(String, String)> {
        if !self.rollouts.is_empty() {
            return self.rollouts.clone();
        }
        self.samples
            .iter()
            .map(|s| (s.prompt.clone(), s.reply.clone()))
            .collect()
    }
}

/// What a slice of an update produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `step` of `steps` slices of `stage` are done.
    Progress {
        stage: Stage,
        step: usize,
        steps: usize,
    },
    /// A stage finished.
    Stage(StageReport),
    /// The whole update finished.
    Done(UpdateReport),
}

/// A reply the session sampled and recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Generated {
    /// Index in the log's prompts (what a demonstration refers to).
    pub prompt: usize,
    /// Index in the log's replies (what feedback refers to).
    pub reply: usize,
    pub text: String,
    /// The prompt was longer than the model reads, so only its end was used
    /// ([`crate::tokenizer::Tokenizer::fit_prompt`]); the page says so.
    pub shortened: bool,
}
