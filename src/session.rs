//! The RLHF loop. A [`Session`] holds the feedback log, the queue of updates, the frozen
//! reference and the three stages' trainers; every rating runs one update through the three
//! steps of Ouyang et al. (2022):
//!
//! ```text
//! feedback ─▶ log ─▶ 1. SFT on demonstrations (and top-rated replies, when enabled)
//!                    2. reward model fitted on every comparison so far
//!                    3. PPO: roll out, score, KL to the reference, GAE, clipped epochs
//!                    ─▶ fresh samples with their reward and per-token change
//! ```
//!
//! Every update ends with a check of the model: one that broke it (a loss that is not a number,
//! replies that stop being sentences) is rolled back to a snapshot taken before it, which is
//! also what "Undo last rating" restores (`health.rs`).
//!
//! The update runs in slices ([`Session::step`]: one optimiser step or one rollout at a time),
//! so the page stays responsive and draws each stage as it happens; [`Session::update`] runs
//! them all. Each stage's trainer ([`SftTrainer`], [`RewardTrainer`], [`PpoTrainer`]) owns its
//! model, optimiser and settings and runs its own loop; the session only orders them. The
//! reference is the base model and stays the base model: SFT happens between RL steps whenever
//! a person writes a demonstration, so a moving reference would make the KL chart mean
//! something different after each one. KL is always "how far from where we started".

mod config;
mod health;
mod replies;

pub use config::{Method, SessionConfig};
pub use health::{MAX_PROBE_DRIFT, MAX_PROBE_RISE, PROBES, verdict};

use crate::bon::BonTrainer;
use crate::checkpoint;
use crate::corpus::Corpus;
use crate::dpo::DpoTrainer;
use crate::error::{Error, Result};
use crate::feedback::{Feedback, FeedbackLog};
use crate::grpo::GrpoTrainer;
use crate::kto::KtoTrainer;
use crate::metrics::{HealthStats, Metrics, SampleStats};
use crate::model::{Gpt, GptConfig};
use crate::ppo::{self, PpoTrainer};
use crate::report::{Event, Slice, Stage, StageReport, UpdateReport};
use crate::reward::RewardTrainer;
use crate::rng::Rng;
use crate::sft::{self, SftTrainer};
use crate::tokenizer::Tokenizer;
use burn::prelude::*;

/// What PPO and GRPO read from the session ([`ppo::Context`]), borrowing its fields one by one
/// so that the trainer itself can be borrowed beside it.
macro_rules! context {
    ($s:ident) => {
        ppo::Context {
            reference: &$s.reference,
            reward: &mut $s.trainers.reward,
            tok: &$s.tok,
            prompts: &$s.log.prompts,
            corpus: &mut $s.corpus,
            own_prompt_share: $s.cfg.own_prompt_share,
            pair_share: $s.log.pair_share(),
            rng: &mut $s.rng,
        }
    };
}

/// An update in flight.
struct Update {
    /// The rating (1-based) this update is for.
    rating: usize,
    stage: Stage,
    started: f64,
    stage_started: f64,
    stages: Vec<StageReport>,
    /// PPO's rollouts, for the report.
    rollouts: Vec<(String, String)>,
}

impl Update {
    /// Closes the current stage, starts timing the next (the policy's stage after the reward
    /// model's is `method`'s) and reports the one that finished.
    fn finish_stage(
        &mut self,
        method: Method,
        skipped: Option<&str>,
        losses: Vec<f64>,
        metrics: Metrics,
    ) -> Event {
        let now = crate::now_ms();
        let report = StageReport {
            stage: self.stage,
            skipped: skipped.map(str::to_string),
            millis: now - self.stage_started,
            losses,
            metrics,
        };
        self.stage_started = now;
        self.stage = match self.stage {
            Stage::Sft => Stage::Reward,
            Stage::Reward => match method {
                Method::Ppo | Method::Sft => Stage::Ppo,
                Method::Dpo => Stage::Dpo,
                Method::Kto => Stage::Kto,
                Method::Grpo => Stage::Grpo,
                Method::Bon => Stage::Bon,
            },
            Stage::Ppo | Stage::Dpo | Stage::Kto | Stage::Grpo | Stage::Bon | Stage::Samples => {
                Stage::Samples
            }
        };
        self.stages.push(report.clone());
        Event::Stage(report)
    }
}

/// Every stage's trainer: each owns its model (or steps the policy [`PpoTrainer`] holds), its
/// optimiser and its settings. Together, all that an update trains: a copy is the snapshot a
/// roll-back or Undo restores (`health.rs`).
#[derive(Clone)]
struct Trainers {
    sft: SftTrainer,
    reward: RewardTrainer,
    ppo: PpoTrainer,
    dpo: DpoTrainer,
    kto: KtoTrainer,
    grpo: GrpoTrainer,
    bon: BonTrainer,
}

/// The feedback log, the queue of updates, the reference and the stages' trainers.
pub struct Session {
    cfg: SessionConfig,
    /// Settings given while an update runs: they apply once it has finished.
    pending: Option<SessionConfig>,
    tok: Tokenizer,
    device: Device,
    /// The base model, never trained: the KL's reference and the reward model's frozen bottom.
    reference: Gpt,
    trainers: Trainers,
    pub log: FeedbackLog,
    /// Updates waiting to run (one per piece of feedback), not counting the one in flight.
    queued: usize,
    update: Option<Update>,
    /// Updates started so far.
    updates_begun: usize,
    /// Updates completed so far (0 = the base model).
    version: u32,
    rng: Rng,
    corpus: Corpus,
    /// All that the last update (or the one in flight) changed, as it was before it: what a
    /// roll-back or Undo restores.
    before: Option<health::Snapshot>,
    /// Fixed corpus exchanges, and the policy's cross-entropy on them after the last good
    /// update (none yet: the base model's is read when needed).
    probes: Vec<(Vec<u32>, usize)>,
    probe_nll: Option<f64>,
    /// The base model's cross-entropy on them, once read.
    base_probe_nll: Option<f64>,
}

impl Session {
    /// A session starting from the weights in `bytes` (as written by `pretrain`), on `device`
    /// (training runs on its autodiff form).
    pub fn new(
        cfg: SessionConfig,
        tok: Tokenizer,
        model: &GptConfig,
        bytes: &[u8],
        device: &Device,
    ) -> Result<Session> {
        cfg.validate()?;
        let train_device = device.clone().autodiff();
        let load = |d: &Device| checkpoint::from_bytes(model, bytes, d);
        let reference = load(device)?;
        let policy = load(&train_device)?;
        let reward_model = load(&train_device)?;
        let seed = cfg.seed;
        let probes = health::probes(&tok, reference.context());
        Ok(Session {
            pending: None,
            trainers: Trainers {
                sft: SftTrainer::new(cfg.sft.clone(), device),
                reward: RewardTrainer::new(cfg.reward.clone(), reward_model, tok.clone(), device),
                ppo: PpoTrainer::new(cfg.ppo.clone(), policy, device),
                dpo: DpoTrainer::new(cfg.dpo.clone(), device),
                kto: KtoTrainer::new(cfg.kto.clone(), device),
                grpo: GrpoTrainer::new(cfg.grpo.clone(), device),
                bon: BonTrainer::new(cfg.bon.clone(), device),
            },
            cfg,
            tok,
            device: device.clone(),
            reference,
            log: FeedbackLog::new(),
            queued: 0,
            update: None,
            updates_begun: 0,
            version: 0,
            rng: Rng::new(seed ^ 0x5e55_1011),
            corpus: Corpus::new(seed ^ 0xc0_7105),
            before: None,
            probes,
            probe_nll: None,
            base_probe_nll: None,
        })
    }

    /// A session on the committed base model.
    pub fn bundled(cfg: SessionConfig, device: &Device) -> Result<Session> {
        let meta: checkpoint::ModelMeta = serde_json::from_str(checkpoint::BUNDLED_META)
            .map_err(|e| Error::Weights(format!("base.json: {e}")))?;
        let tok = Tokenizer::bundled();
        Session::new(cfg, tok, &meta.config, checkpoint::BUNDLED_WEIGHTS, device)
    }

    /// The settings (those given during the update in flight, which apply after it).
    pub fn config(&self) -> &SessionConfig {
        self.pending.as_ref().unwrap_or(&self.cfg)
    }

    /// Replaces the settings, checked first: a bad one is refused and nothing changes. They
    /// apply at once, or, while an update runs, once it has finished, so that an update runs
    /// under one set of settings. The optimisers keep their state; a new initial β replaces
    /// the current one.
    pub fn set_config(&mut self, cfg: SessionConfig) -> Result<()> {
        cfg.validate()?;
        if self.update.is_some() {
            self.pending = Some(cfg);
        } else {
            self.apply(cfg);
        }
        Ok(())
    }

    fn apply(&mut self, cfg: SessionConfig) {
        self.trainers.sft.set_config(cfg.sft.clone());
        self.trainers.reward.set_config(cfg.reward.clone());
        self.trainers.ppo.set_config(cfg.ppo.clone());
        self.trainers.dpo.set_config(cfg.dpo.clone());
        self.trainers.kto.set_config(cfg.kto.clone());
        self.trainers.grpo.set_config(cfg.grpo.clone());
        self.trainers.bon.set_config(cfg.bon.clone());
        self.cfg = cfg;
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tok
    }

    /// The policy as it is now (no autodiff), to sample from or measure.
    pub fn policy(&self) -> Gpt {
        self.trainers.ppo.policy()
    }

    /// The frozen reference (the base model).
    pub fn reference(&self) -> &Gpt {
        &self.reference
    }

    /// β of the KL penalty now.
    pub fn kl_coef(&self) -> f64 {
        self.trainers.ppo.kl.value
    }

    /// Updates completed so far (0 = the base model).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Updates waiting to run (one per piece of feedback), not counting one in flight.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// True while an update is part-way done.
    pub fn is_updating(&self) -> bool {
        self.update.is_some()
    }

    /// The most ratings that wait for their update: about half a minute of training on the
    /// page, beyond which a click storm would only queue minutes of work nobody asked for.
    pub const MAX_QUEUED: usize = 20;

    /// Records a piece of feedback (checked first: bad feedback is refused and changes nothing)
    /// and queues the update it triggers. Refused while [`Session::MAX_QUEUED`] ratings wait.
    pub fn record(&mut self, fb: Feedback) -> Result<()> {
        if self.queued >= Self::MAX_QUEUED {
            return Err(Error::Feedback(format!(
                "{} ratings are already waiting to train: wait for them, or cancel them",
                self.queued
            )));
        }
        self.log.add(fb)?;
        self.queued += 1;
        Ok(())
    }

    /// Cancels the ratings still waiting for their update (not the one in flight): they leave
    /// the log as if never given. Returns how many.
    pub fn cancel_queued(&mut self) -> usize {
        let n = self.queued;
        let keep = self.log.feedback.len() - n;
        self.log.feedback.truncate(keep);
        self.queued = 0;
        n
    }

    /// Runs every queued update to the end; returns the report of the last one.
    pub async fn update(&mut self) -> Option<UpdateReport> {
        let mut last = None;
        while let Some(event) = self.step().await {
            if let Event::Done(report) = event {
                last = Some(report);
            }
        }
        last
    }

    /// Runs the next slice of work: one SFT step, the reward model's evaluation or one of its
    /// steps, one rollout or one PPO minibatch, or the fresh samples that end an update. `None`
    /// when nothing is queued.
    pub async fn step(&mut self) -> Option<Event> {
        let mut up = match self.update.take() {
            Some(up) => up,
            None if self.queued > 0 => {
                self.queued -= 1;
                self.begin()
            }
            None => return None,
        };
        let event = self.advance(&mut up).await;
        if !matches!(event, Event::Done(_)) {
            self.update = Some(up);
        } else if let Some(cfg) = self.pending.take() {
            self.apply(cfg);
        }
        Some(event)
    }

    /// Starts the next update: each stage takes what it learns from in the log as it is now.
    fn begin(&mut self) -> Update {
        self.before = Some(self.capture());
        let demos = sft::demonstrations(&self.log, self.cfg.sft_top_rated);
        self.trainers
            .sft
            .begin(&self.tok, &demos, self.reference.context());
        let context = self.reference.context();
        match self.cfg.method {
            Method::Ppo => {
                self.trainers.reward.begin(&self.log);
                self.trainers.ppo.begin();
            }
            Method::Dpo => self.trainers.dpo.begin(&self.tok, &self.log, context),
            Method::Kto => self.trainers.kto.begin(&self.log, context),
            Method::Grpo => {
                self.trainers.reward.begin(&self.log);
                self.trainers.grpo.begin();
            }
            Method::Bon => {
                self.trainers.reward.begin(&self.log);
                self.trainers.bon.begin();
            }
            Method::Sft => {}
        }
        let now = crate::now_ms();
        self.updates_begun += 1;
        Update {
            rating: self.updates_begun,
            stage: Stage::Sft,
            started: now,
            stage_started: now,
            stages: Vec::new(),
            rollouts: Vec::new(),
        }
    }

    /// One slice of the current stage, in the order SFT → reward model → PPO (or DPO, KTO, GRPO,
    /// best-of-N) → samples. A stage the method does not use says so.
    async fn advance(&mut self, up: &mut Update) -> Event {
        let method = self.cfg.method;
        let slice = match up.stage {
            Stage::Reward if !method.uses_reward_model() => Slice::Skipped(match method {
                Method::Dpo => "DPO learns from pairs directly: no reward model",
                Method::Kto => "KTO learns from thumbs directly: no reward model",
                _ => "SFT only: no reward model",
            }),
            Stage::Ppo if method == Method::Sft => Slice::Skipped("SFT only: no RL stage"),
            Stage::Dpo => {
                let policy = self.trainers.ppo.take_policy();
                let (policy, slice) = self
                    .trainers
                    .dpo
                    .step(policy, &self.reference, &mut self.rng)
                    .await;
                self.trainers.ppo.put_policy(policy);
                slice
            }
            Stage::Kto => {
                let policy = self.trainers.ppo.take_policy();
                let (reference, tok) = (&self.reference, &self.tok);
                let (policy, slice) = self
                    .trainers
                    .kto
                    .step(policy, reference, tok, &mut self.rng)
                    .await;
                self.trainers.ppo.put_policy(policy);
                slice
            }
            Stage::Sft => {
                let policy = self.trainers.ppo.take_policy();
                let (policy, slice) = self.trainers.sft.step(policy, &mut self.rng).await;
                self.trainers.ppo.put_policy(policy);
                slice
            }
            Stage::Reward => {
                let (reference, log) = (&self.reference, &self.log);
                self.trainers
                    .reward
                    .step(reference, log, &mut self.rng)
                    .await
            }
            Stage::Ppo => {
                let cx = context!(self);
                self.trainers.ppo.step(cx, &mut up.rollouts).await
            }
            Stage::Grpo => {
                let policy = self.trainers.ppo.take_policy();
                let cx = context!(self);
                let (policy, slice) = self.trainers.grpo.step(policy, cx, &mut up.rollouts).await;
                self.trainers.ppo.put_policy(policy);
                slice
            }
            Stage::Bon => {
                let policy = self.trainers.ppo.take_policy();
                let cx = context!(self);
                let (policy, slice) = self.trainers.bon.step(policy, cx, &mut up.rollouts).await;
                self.trainers.ppo.put_policy(policy);
                slice
            }
            Stage::Samples => return self.finish(up).await,
        };
        match slice {
            Slice::Progress { step, steps } => Event::Progress {
                stage: up.stage,
                step,
                steps,
            },
            Slice::Done { losses, metrics } => up.finish_stage(method, None, losses, metrics),
            Slice::Skipped(why) => {
                up.finish_stage(method, Some(why), Vec::new(), Metrics::default())
            }
        }
    }

    /// The model checked (and rolled back if the update broke it), fresh samples to show what
    /// changed, and the update's report.
    async fn finish(&mut self, up: &mut Update) -> Event {
        let (probe_nll, rolled_back) = self.check(&up.stages).await;
        if rolled_back.is_none() {
            self.version += 1;
        }
        let samples = self.samples().await;
        let now = crate::now_ms();
        let mut metrics = up
            .stages
            .iter()
            .fold(Metrics::default(), |m, s| m.merge(&s.metrics));
        metrics.samples = SampleStats::of(&samples);
        metrics.health = Some(HealthStats {
            probe_nll,
            rolled_back: rolled_back.is_some(),
        });
        Event::Done(UpdateReport {
            version: self.version,
            ratings: up.rating,
            millis: now - up.started,
            stages: std::mem::take(&mut up.stages),
            metrics,
            samples,
            rollouts: std::mem::take(&mut up.rollouts),
            rolled_back,
        })
    }
}

#[cfg(test)]
mod tests;
