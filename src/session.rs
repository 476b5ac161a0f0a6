//! The RLHF loop. A [`Session`] holds the policy, the frozen reference, the reward model and
//! the three optimisers' states; every rating runs one update through the three steps of
//! Ouyang et al. (2022):
//!
//! ```text
//! feedback ─▶ log ─▶ 1. SFT on demonstrations (and top-rated replies, when enabled)
//!                    2. reward model fitted on every comparison so far
//!                    3. PPO: roll out, score, KL to the reference, GAE, clipped epochs
//!                    ─▶ fresh samples with their reward and per-token change
//! ```
//!
//! The update runs in slices ([`Session::step`]: one optimiser step or one rollout at a time),
//! so the page stays responsive and draws each stage as it happens; [`Session::update`] runs
//! them all. The reference is the base model and stays the base model: SFT happens between RL
//! steps whenever a person writes a demonstration, so a moving reference would make the KL chart
//! mean something different after each one. KL is always "how far from where we started".

use crate::checkpoint::{self, CheckpointError};
use crate::corpus::Corpus;
use crate::feedback::{Feedback, FeedbackError, FeedbackLog};
use crate::model::{Batch, Gpt, GptConfig};
use crate::ppo::{self, Experience, KlController, MinibatchStats, PpoConfig};
use crate::reward::{self, RewardConfig, RewardData, RunningMoments};
use crate::rng::Rng;
use crate::sample::{SampleConfig, generate};
use crate::sft::{self, Demonstration, SftConfig};
use crate::tokenizer::{BOT, END, Tokenizer, USER};
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Settings of a session: the three stages' own settings and how they are fed.
#[derive(Config, Debug)]
pub struct SessionConfig {
    pub sft: SftConfig,
    pub reward: RewardConfig,
    pub ppo: PpoConfig,
    /// How replies shown to the person are sampled (top-p 0.95 trims the tail of rare tokens
    /// that makes a small model's replies garbled; PPO's own rollouts sample the full
    /// distribution, as the algorithm assumes).
    #[config(default = "SampleConfig::new().with_top_p(0.95)")]
    pub sample: SampleConfig,
    /// Share of each PPO batch drawn from the person's own recent prompts; the rest are corpus
    /// prompts, so the policy improves in general and not only on what was asked.
    #[config(default = 0.5)]
    pub own_prompt_share: f64,
    /// Fresh replies sampled after each update to show what changed.
    #[config(default = 2)]
    pub report_samples: usize,
    /// Also fine-tune on replies rated thumbs-up or 4-5 stars and on the preferred reply of each
    /// pair (rejection-sampling fine-tuning, as in Llama 2's RLHF, Touvron et al. 2023), before
    /// the reward model and PPO. Measured (polite rater, 40 thumbs, seeds 1-3): 89-95% with it
    /// against 45-80% without, at a KL of 4-6 nats instead of 2-3; with pairs, 84 ± 4% against
    /// 66 ± 20% (docs/TUNING.md). Off gives RLHF exactly as Ouyang et al.
    #[config(default = true)]
    pub sft_top_rated: bool,
    /// Seed of every random draw in the session.
    #[config(default = 0)]
    pub seed: u64,
}

impl SessionConfig {
    /// Checks every setting a person can change, with a message naming the setting and its
    /// allowed range.
    pub fn validate(&self) -> Result<(), String> {
        fn range<T: PartialOrd + std::fmt::Display>(
            name: &str,
            v: T,
            lo: T,
            hi: T,
        ) -> Result<(), String> {
            if v >= lo && v <= hi {
                Ok(())
            } else {
                Err(format!("{name} must be between {lo} and {hi} (got {v})"))
            }
        }
        let (s, r, p) = (&self.sft, &self.reward, &self.ppo);
        range("sft.lr", s.lr, 1e-7, 0.1)?;
        range("sft.steps", s.steps, 0, 100)?;
        range("sft.batch_size", s.batch_size, 1, 64)?;
        range("sft.max_grad_norm", s.max_grad_norm, 1e-3, 1e3)?;
        range("reward.lr", r.lr, 1e-7, 0.1)?;
        range("reward.steps", r.steps, 0, 100)?;
        range("reward.batch_pairs", r.batch_pairs, 1, 64)?;
        range("reward.fresh_pairs", r.fresh_pairs, 0, 64)?;
        range("reward.train_blocks", r.train_blocks, 0, 64)?;
        range(
            "reward.cross_prompt_weight",
            r.cross_prompt_weight,
            0.0,
            1.0,
        )?;
        range(
            "reward.implied_pair_weight",
            r.implied_pair_weight,
            0.0,
            10.0,
        )?;
        range("reward.tie_weight", r.tie_weight, 0.0, 10.0)?;
        range("reward.pointwise_weight", r.pointwise_weight, 0.0, 10.0)?;
        range("reward.max_grad_norm", r.max_grad_norm, 1e-3, 1e3)?;
        range("reward.norm_momentum", r.norm_momentum, 0.0, 1.0)?;
        range("reward.norm_std_floor", r.norm_std_floor, 1e-3, 100.0)?;
        // A negative weight would reward text the model finds unlikely: garbled replies.
        range("reward.confidence_weight", r.confidence_weight, 0.0, 1000.0)?;
        range("reward.confidence_prior", r.confidence_prior, 0.0, 1000.0)?;
        range(
            "reward.confidence_full_agreement",
            r.confidence_full_agreement,
            0.01,
            1.0,
        )?;
        range("ppo.lr", p.lr, 1e-7, 0.1)?;
        range("ppo.batch_size", p.batch_size, 1, 64)?;
        range("ppo.minibatch_size", p.minibatch_size, 1, 64)?;
        range("ppo.epochs", p.epochs, 1, 20)?;
        range("ppo.iterations", p.iterations, 0, 10)?;
        range("ppo.gamma", p.gamma, 0.0, 1.0)?;
        range("ppo.lam", p.lam, 0.0, 1.0)?;
        range("ppo.cliprange", p.cliprange, 0.01, 1.0)?;
        range("ppo.cliprange_value", p.cliprange_value, 0.01, 100.0)?;
        range("ppo.vf_coef", p.vf_coef, 0.0, 10.0)?;
        range("ppo.value_lr", p.value_lr, 1e-7, 0.1)?;
        range("ppo.ent_coef", p.ent_coef, 0.0, 1.0)?;
        range("ppo.max_grad_norm", p.max_grad_norm, 1e-3, 1e3)?;
        range("ppo.init_kl_coef", p.init_kl_coef, 0.0, 10.0)?;
        range("ppo.kl_target", p.kl_target, 0.01, 100.0)?;
        range("ppo.kl_horizon", p.kl_horizon, 1.0, 1e6)?;
        range("ppo.ratio_threshold", p.ratio_threshold, 1.0, 1e6)?;
        range("ppo.target_kl", p.target_kl, 0.0, 10.0)?;
        range("ppo.max_new_tokens", p.max_new_tokens, 1, 96)?;
        range("sample.temperature", self.sample.temperature, 0.0, 10.0)?;
        range("sample.top_p", self.sample.top_p, 1e-3, 1.0)?;
        range("sample.top_k", self.sample.top_k, 0, 100_000)?;
        range("sample.max_new_tokens", self.sample.max_new_tokens, 1, 96)?;
        range("own_prompt_share", self.own_prompt_share, 0.0, 1.0)?;
        range("report_samples", self.report_samples, 0, 8)?;
        Ok(())
    }
}

/// The three stages of an update, and the samples shown after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Sft,
    Reward,
    Ppo,
    Samples,
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
    /// Named metrics (TRL's names for the reward model and PPO).
    pub metrics: BTreeMap<String, f64>,
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
    /// The reward model's raw score.
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
    pub samples: Vec<SampleReport>,
    /// The (prompt, reply) pairs PPO rolled out: fresh samples of the policy before its step.
    pub rollouts: Vec<(String, String)>,
}

impl UpdateReport {
    /// A metric of one stage, if it was measured.
    pub fn metric(&self, stage: Stage, name: &str) -> Option<f64> {
        self.stages
            .iter()
            .find(|s| s.stage == stage)
            .and_then(|s| s.metrics.get(name).copied())
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

/// Errors a person can cause: bad feedback, a bad prompt.
#[derive(Debug)]
pub enum SessionError {
    Feedback(FeedbackError),
    Weights(CheckpointError),
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Feedback(e) => write!(f, "{e}"),
            SessionError::Weights(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SessionError {}

impl From<FeedbackError> for SessionError {
    fn from(e: FeedbackError) -> Self {
        SessionError::Feedback(e)
    }
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
    /// ([`Session::prompt_ids`]); the page says so.
    pub shortened: bool,
}

/// Where an update in flight has got to.
enum Phase {
    Sft(usize),
    RewardEval,
    Reward(usize),
    Rollout(usize),
    Ppo {
        iter: usize,
        epoch: usize,
        mb: usize,
    },
    Samples,
}

struct Update {
    /// The rating (1-based) this update is for.
    rating: usize,
    phase: Phase,
    started: f64,
    stage_started: f64,
    stages: Vec<StageReport>,
    losses: Vec<f64>,
    sft_data: Vec<(Vec<u32>, usize)>,
    reward_data: RewardData,
    last_accuracy: Option<(f64, f64)>,
    exp: Option<Experience>,
    /// This epoch's minibatches (rows of `exp`).
    minibatches: Vec<Vec<usize>>,
    mb_stats: Vec<MinibatchStats>,
    ppo_metrics: BTreeMap<String, f64>,
    rollouts: Vec<(String, String)>,
    /// Mean reference confidence of the current rollouts, as their scores counted it.
    rollout_confidence: f64,
}

/// Policy, reference, reward model and optimiser states, with the feedback log.
pub struct Session {
    pub cfg: SessionConfig,
    tok: Tokenizer,
    device: Device,
    train_device: Device,
    policy: Option<Gpt>,
    reference: Gpt,
    reward_model: Option<Gpt>,
    sft_optim: ModuleOptimizer,
    reward_optim: ModuleOptimizer,
    ppo_optim: ModuleOptimizer,
    /// β of the KL penalty, adapted after each PPO iteration.
    pub kl: KlController,
    /// Running statistics of the reward model's scores of rollouts.
    pub moments: RunningMoments,
    pub log: FeedbackLog,
    rng: Rng,
    corpus: Corpus,
    version: u32,
    queued: usize,
    /// Feedback entries the reward model has been fitted on.
    fitted_upto: usize,
    /// Whether the reward model has been fitted at all.
    reward_fitted: bool,
    /// Outcomes of the reward model on comparisons it had not been trained on yet.
    unseen_outcomes: Vec<bool>,
    update: Option<Update>,
    /// Features of the reward model's frozen bottom, per scored sequence.
    features: reward::FeatureCache,
    /// The most top blocks the reward model has trained so far: the blocks below them are still
    /// the base model's, so the reward model may share them with the reference.
    reward_blocks_trained: usize,
    /// Updates started so far (one per piece of feedback).
    updates_begun: usize,
    /// The reference's confidence in each rated (prompt, reply) text.
    confidence: HashMap<(String, String), f32>,
    /// How far the comparisons so far agree with the reference's confidence (τ of
    /// [`reward::confidence_agreement`]; 0 before any).
    agreement: f64,
}

/// Most (prompt, reply) texts whose reference confidence a session keeps.
const CONFIDENCE_LIMIT: usize = 4096;

/// How many recent outcomes the held-out accuracy averages.
const UNSEEN_WINDOW: usize = 50;

impl Session {
    /// The most replies [`Session::generate`] samples at once.
    pub const MAX_REPLIES: usize = 16;

    /// A session starting from the weights in `bytes` (as written by `pretrain`), on `device`
    /// (training runs on its autodiff form).
    pub fn new(
        cfg: SessionConfig,
        tok: Tokenizer,
        model: &GptConfig,
        bytes: &[u8],
        device: &Device,
    ) -> Result<Session, SessionError> {
        cfg.validate()
            .map_err(|e| SessionError::Feedback(FeedbackError(e)))?;
        let train_device = device.clone().autodiff();
        let load =
            |d: &Device| checkpoint::from_bytes(model, bytes, d).map_err(SessionError::Weights);
        let reference = load(device)?;
        let policy = load(&train_device)?;
        let reward_model = load(&train_device)?;
        let seed = cfg.seed;
        Ok(Session {
            kl: KlController::new(&cfg.ppo),
            sft_optim: cfg.sft.optimizer(),
            reward_optim: cfg.reward.optimizer(),
            ppo_optim: cfg.ppo.optimizer(),
            cfg,
            tok,
            device: device.clone(),
            train_device,
            policy: Some(policy),
            reference,
            reward_model: Some(reward_model),
            moments: RunningMoments::default(),
            log: FeedbackLog::new(),
            rng: Rng::new(seed ^ 0x5e55_1011),
            corpus: Corpus::new(seed ^ 0xc0_7105),
            version: 0,
            queued: 0,
            fitted_upto: 0,
            reward_fitted: false,
            unseen_outcomes: Vec::new(),
            confidence: HashMap::new(),
            agreement: 0.0,
            update: None,
            features: reward::FeatureCache::default(),
            reward_blocks_trained: 0,
            updates_begun: 0,
        })
    }

    /// A session on the committed base model.
    pub fn bundled(cfg: SessionConfig, device: &Device) -> Result<Session, SessionError> {
        let meta: checkpoint::ModelMeta = serde_json::from_str(checkpoint::BUNDLED_META)
            .map_err(|e| SessionError::Weights(CheckpointError(e.to_string())))?;
        Session::new(
            cfg,
            Tokenizer::bundled(),
            &meta.config,
            checkpoint::BUNDLED_WEIGHTS,
            device,
        )
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tok
    }

    /// The policy as it is now (no autodiff), to sample from or measure.
    pub fn policy(&self) -> Gpt {
        self.policy
            .as_ref()
            .expect("policy present between slices")
            .valid()
    }

    /// The frozen reference (the base model).
    pub fn reference(&self) -> &Gpt {
        &self.reference
    }

    /// Replaces the settings (checked first; a bad one is refused and nothing changes). The
    /// optimisers keep their state; a new initial β applies from the next update.
    pub fn set_config(&mut self, cfg: SessionConfig) -> Result<(), SessionError> {
        cfg.validate()
            .map_err(|e| SessionError::Feedback(FeedbackError(e)))?;
        if cfg.ppo.init_kl_coef != self.cfg.ppo.init_kl_coef {
            self.kl.value = cfg.ppo.init_kl_coef;
        }
        self.kl.target = cfg.ppo.kl_target;
        self.kl.horizon = cfg.ppo.kl_horizon;
        self.kl.adaptive = cfg.ppo.adaptive_kl;
        if cfg.reward.train_blocks != self.cfg.reward.train_blocks {
            // The cached features are those of the old frozen depth.
            self.features = reward::FeatureCache::default();
        }
        self.cfg = cfg;
        Ok(())
    }

    /// `<|user|> prompt <|bot|> reply <|end|>` ids of (prompt, reply) texts, cut to the
    /// context, with the index of each reply's first token.
    fn encode_exchanges(&self, texts: &[(String, String)]) -> (Vec<Vec<u32>>, Vec<usize>) {
        let ctx = self.reference.context();
        texts
            .iter()
            .map(|(prompt, reply)| {
                let (mut ids, start) = self.tok.encode_exchange(prompt, reply);
                ids.truncate(ctx);
                (ids, start)
            })
            .unzip()
    }

    /// Whether the reference's confidence can weigh in: it is on, and some of the ratings are
    /// pairs.
    fn confidence_in_use(&self) -> bool {
        self.cfg.reward.confidence_weight > 0.0 && self.log.pair_share() > 0.0
    }

    /// The weight of the reference's confidence in PPO's score now: the most weight, scaled by
    /// how far the comparisons so far agree with it (none when they do not) and by the share of
    /// the ratings that are pairs (none with thumbs and stars alone).
    fn confidence_weight(&self) -> f64 {
        let r = &self.cfg.reward;
        r.confidence_weight
            * (self.agreement / r.confidence_full_agreement).clamp(0.0, 1.0)
            * self.log.pair_share()
    }

    /// The reference's confidence in (prompt, reply) texts not seen before, computed in
    /// batches and kept; then the agreement of the comparisons of `data` with it.
    async fn update_agreement(&mut self, data: &RewardData) {
        // A bound on what is kept: beyond it, only this update's texts are.
        let known = data
            .texts
            .iter()
            .filter(|t| self.confidence.contains_key(*t))
            .count();
        if self.confidence.len() + data.texts.len() - known > CONFIDENCE_LIMIT {
            self.confidence.clear();
        }
        let missing: Vec<(String, String)> = data
            .texts
            .iter()
            .filter(|t| !self.confidence.contains_key(*t))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in missing.chunks(32) {
            let (seqs, starts) = self.encode_exchanges(chunk);
            let batch = Batch::right_padded(&seqs, &self.device);
            let width = batch.tokens.dims()[1] - 1;
            let hidden = self.reference.forward(&batch, None);
            let lp = crate::read(self.reference.token_logprobs(hidden, batch.tokens.clone())).await;
            let conf = reward::reference_confidence(&lp, width, &seqs, &starts);
            self.confidence.extend(chunk.iter().cloned().zip(conf));
        }
        let conf: Vec<f32> = data.texts.iter().map(|t| self.confidence[t]).collect();
        self.agreement =
            reward::confidence_agreement(&data.pairs, &conf, self.cfg.reward.confidence_prior);
    }

    /// The reward model's top blocks that are its own (trained now or before, after a change of
    /// `reward.train_blocks`); the blocks below are the reference's too.
    fn reward_own_blocks(&self) -> usize {
        self.reward_blocks_trained.max(self.cfg.reward.train_blocks)
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

    /// `<|user|> prompt <|bot|>`, shortened from the front when it would leave fewer than 24
    /// tokens of room for the reply (the end of a long prompt is usually the question).
    pub fn prompt_ids(&self, prompt: &str) -> Vec<u32> {
        self.fit_prompt(prompt).0
    }

    /// [`Session::prompt_ids`], and whether the prompt had to be shortened to fit.
    fn fit_prompt(&self, prompt: &str) -> (Vec<u32>, bool) {
        let ids = self.tok.encode_prompt(prompt);
        let limit = self.reference.context().saturating_sub(24).max(8);
        if ids.len() <= limit {
            return (ids, false);
        }
        let body = &ids[1..ids.len() - 1];
        let mut out = vec![USER];
        out.extend_from_slice(&body[body.len() - (limit - 2)..]);
        out.push(BOT);
        (out, true)
    }

    /// Samples `n` replies to `prompt` from the current policy and records them, so that
    /// feedback can refer to them.
    pub async fn generate(
        &mut self,
        prompt: &str,
        n: usize,
    ) -> Result<Vec<Generated>, SessionError> {
        if !(1..=Self::MAX_REPLIES).contains(&n) {
            return Err(FeedbackError(format!(
                "ask for 1 to {} replies, not {n}",
                Self::MAX_REPLIES
            ))
            .into());
        }
        let p = self.log.add_prompt(prompt)?;
        let (prompt_ids, shortened) = self.fit_prompt(prompt);
        let ids = vec![prompt_ids; n];
        let out = generate(&self.policy(), &ids, &self.cfg.sample, &mut self.rng, true).await;
        let mut replies = Vec::new();
        for o in out {
            let text = self.tok.decode(&o.tokens);
            let reply = self.log.add_reply(p, &text, self.version)?;
            replies.push(Generated {
                prompt: p,
                reply,
                text,
                shortened,
            });
        }
        Ok(replies)
    }

    /// One reply to `prompt` from the reference and one from the policy, drawn with the same
    /// random numbers (before / after).
    pub async fn before_after(&mut self, prompt: &str) -> Result<(String, String), SessionError> {
        crate::feedback::check_text("prompt", prompt)?;
        let ids = vec![self.prompt_ids(prompt)];
        let seed = self.rng.next_u64();
        let before = generate(
            &self.reference,
            &ids,
            &self.cfg.sample,
            &mut Rng::new(seed),
            true,
        )
        .await;
        let after = generate(
            &self.policy(),
            &ids,
            &self.cfg.sample,
            &mut Rng::new(seed),
            true,
        )
        .await;
        Ok((
            self.tok.decode(&before[0].tokens),
            self.tok.decode(&after[0].tokens),
        ))
    }

    /// A corpus prompt from the session's own stream (the autopilot's next question).
    pub fn corpus_prompt(&mut self) -> String {
        self.corpus.prompt(false).text
    }

    /// Records a piece of feedback (checked first: bad feedback is refused and changes nothing)
    /// and queues the update it triggers.
    pub fn record(&mut self, fb: Feedback) -> Result<(), SessionError> {
        self.log.add(fb)?;
        self.queued += 1;
        Ok(())
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

    /// Runs the next slice of work: one SFT step, one reward-model step, one rollout or one PPO
    /// minibatch. `None` when nothing is queued.
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
        }
        Some(event)
    }

    fn begin(&mut self) -> Update {
        let mut demos: Vec<Demonstration> = Vec::new();
        for fb in &self.log.feedback {
            match fb {
                Feedback::Demonstration { prompt, text } => demos.push(Demonstration {
                    prompt: self.log.prompts[*prompt].clone(),
                    reply: text.clone(),
                }),
                Feedback::Thumbs { reply, up: true } if self.cfg.sft_top_rated => {
                    demos.push(self.demo_of(*reply))
                }
                Feedback::Stars { reply, stars } if self.cfg.sft_top_rated && *stars >= 4 => {
                    demos.push(self.demo_of(*reply))
                }
                Feedback::Pair {
                    better, tie: false, ..
                } if self.cfg.sft_top_rated => demos.push(self.demo_of(*better)),
                _ => {}
            }
        }
        let now = crate::now_ms();
        self.updates_begun += 1;
        Update {
            rating: self.updates_begun,
            phase: Phase::Sft(0),
            started: now,
            stage_started: now,
            stages: Vec::new(),
            losses: Vec::new(),
            sft_data: sft::encode(&self.tok, &demos, self.reference.context()),
            reward_data: RewardData {
                fresh_from: self.fitted_upto,
                ..RewardData::from_log(&self.log, &self.cfg.reward)
            },
            last_accuracy: None,
            exp: None,
            minibatches: Vec::new(),
            mb_stats: Vec::new(),
            ppo_metrics: BTreeMap::new(),
            rollouts: Vec::new(),
            rollout_confidence: 0.0,
        }
    }

    fn demo_of(&self, reply: usize) -> Demonstration {
        let r = &self.log.replies[reply];
        Demonstration {
            prompt: self.log.prompts[r.prompt].clone(),
            reply: r.text.clone(),
        }
    }

    /// Closes the current stage and starts timing the next.
    fn finish_stage(
        up: &mut Update,
        stage: Stage,
        skipped: Option<&str>,
        metrics: BTreeMap<String, f64>,
    ) -> Event {
        let now = crate::now_ms();
        let report = StageReport {
            stage,
            skipped: skipped.map(str::to_string),
            millis: now - up.stage_started,
            losses: std::mem::take(&mut up.losses),
            metrics,
        };
        up.stage_started = now;
        up.stages.push(report.clone());
        Event::Stage(report)
    }

    fn ppo_slices(&self) -> usize {
        let p = &self.cfg.ppo;
        let mbs = p.batch_size.div_ceil(p.minibatch_size.max(1));
        p.iterations * (1 + p.epochs * mbs)
    }

    async fn advance(&mut self, up: &mut Update) -> Event {
        match up.phase {
            Phase::Sft(i) => {
                let steps = self.cfg.sft.steps;
                if up.sft_data.is_empty() || steps == 0 {
                    up.phase = Phase::RewardEval;
                    return Self::finish_stage(
                        up,
                        Stage::Sft,
                        Some("no demonstrations or top-rated replies yet"),
                        BTreeMap::new(),
                    );
                }
                let policy = self.policy.take().expect("policy");
                let (policy, loss) = sft::step(
                    policy,
                    &mut self.sft_optim,
                    &up.sft_data,
                    &self.cfg.sft,
                    &mut self.rng,
                    &self.train_device,
                )
                .await;
                self.policy = Some(policy);
                up.losses.push(loss);
                if i + 1 < steps {
                    up.phase = Phase::Sft(i + 1);
                    return Event::Progress {
                        stage: Stage::Sft,
                        step: i + 1,
                        steps,
                    };
                }
                up.phase = Phase::RewardEval;
                let mut m = BTreeMap::new();
                m.insert("sft/loss".into(), loss);
                m.insert("sft/demonstrations".into(), up.sft_data.len() as f64);
                Self::finish_stage(up, Stage::Sft, None, m)
            }
            Phase::RewardEval => {
                let data = &up.reward_data;
                if (data.pairs.is_empty() && data.points.is_empty()) || self.cfg.reward.steps == 0 {
                    up.phase = Phase::Rollout(0);
                    return Self::finish_stage(
                        up,
                        Stage::Reward,
                        Some("no ratings yet"),
                        BTreeMap::new(),
                    );
                }
                if self.confidence_in_use() {
                    let data = std::mem::take(&mut up.reward_data);
                    self.update_agreement(&data).await;
                    up.reward_data = data;
                }
                let data = &up.reward_data;
                // Held-out accuracy: the comparisons that arrived since the last fitting, scored
                // before the model trains on them (each label is tested once, then learned from).
                let unseen: Vec<&reward::Comparison> = data
                    .pairs
                    .iter()
                    .filter(|c| c.newest >= self.fitted_upto && c.target == 1.0)
                    .rev()
                    .take(32)
                    .collect();
                if self.reward_fitted && !unseen.is_empty() {
                    let mut texts: Vec<usize> =
                        unseen.iter().flat_map(|c| [c.chosen, c.rejected]).collect();
                    texts.sort_unstable();
                    texts.dedup();
                    let ctx = self.reference.context();
                    let seqs: Vec<Vec<u32>> = texts
                        .iter()
                        .map(|&t| reward::encode(&self.tok, &data.texts[t], ctx))
                        .collect();
                    let rm = self.reward_model.as_ref().expect("reward model").valid();
                    let cache = Some((&mut self.features, self.cfg.reward.train_blocks));
                    let s = crate::read(reward::score_ids(&rm, &seqs, cache, &self.device)).await;
                    let score = |t: usize| s[texts.binary_search(&t).expect("scored")];
                    for c in unseen {
                        self.unseen_outcomes
                            .push(score(c.chosen) > score(c.rejected));
                    }
                    let n = self.unseen_outcomes.len();
                    if n > UNSEEN_WINDOW {
                        self.unseen_outcomes.drain(..n - UNSEEN_WINDOW);
                    }
                }
                up.phase = Phase::Reward(0);
                Event::Progress {
                    stage: Stage::Reward,
                    step: 0,
                    steps: self.cfg.reward.steps,
                }
            }
            Phase::Reward(i) => {
                let steps = self.cfg.reward.steps;
                self.reward_blocks_trained = self.reward_own_blocks();
                let rm = self.reward_model.take().expect("reward model");
                let (rm, loss, acc) = reward::step(
                    rm,
                    &mut self.reward_optim,
                    &self.tok,
                    &up.reward_data,
                    &self.cfg.reward,
                    &mut self.features,
                    &mut self.rng,
                    &self.train_device,
                )
                .await;
                self.reward_model = Some(rm);
                up.losses.push(loss);
                if acc.is_some() {
                    up.last_accuracy = acc;
                }
                if i + 1 < steps {
                    up.phase = Phase::Reward(i + 1);
                    return Event::Progress {
                        stage: Stage::Reward,
                        step: i + 1,
                        steps,
                    };
                }
                self.fitted_upto = self.log.feedback.len();
                self.reward_fitted = true;
                let mut m = BTreeMap::new();
                m.insert("loss".into(), loss);
                if let Some((acc, margin)) = up.last_accuracy {
                    m.insert("accuracy".into(), acc);
                    m.insert("margin".into(), margin);
                }
                if self.unseen_outcomes.len() >= 4 {
                    let right = self.unseen_outcomes.iter().filter(|&&b| b).count();
                    m.insert(
                        "eval_accuracy".into(),
                        right as f64 / self.unseen_outcomes.len() as f64,
                    );
                }
                m.insert("pairs".into(), up.reward_data.pairs.len() as f64);
                if self.confidence_in_use() {
                    m.insert("confidence_agreement".into(), self.agreement);
                    m.insert("confidence_weight".into(), self.confidence_weight());
                }
                up.phase = Phase::Rollout(0);
                Self::finish_stage(up, Stage::Reward, None, m)
            }
            Phase::Rollout(iter) => {
                if !self.reward_fitted || self.cfg.ppo.iterations == 0 {
                    up.phase = Phase::Samples;
                    return Self::finish_stage(
                        up,
                        Stage::Ppo,
                        Some("the reward model has no ratings to learn from yet"),
                        BTreeMap::new(),
                    );
                }
                let (exp, confidence) = self.rollout(&mut up.rollouts).await;
                up.rollout_confidence = confidence;
                up.minibatches = self.minibatches(&exp);
                up.exp = Some(exp);
                up.mb_stats.clear();
                up.phase = Phase::Ppo {
                    iter,
                    epoch: 0,
                    mb: 0,
                };
                let step = iter * (self.ppo_slices() / self.cfg.ppo.iterations) + 1;
                Event::Progress {
                    stage: Stage::Ppo,
                    step,
                    steps: self.ppo_slices(),
                }
            }
            Phase::Ppo { iter, epoch, mb } => {
                let exp = up.exp.as_ref().expect("experience");
                let n_mb = up.minibatches.len();
                let rows = &up.minibatches[mb];
                let policy = self.policy.take().expect("policy");
                let (policy, stats) = ppo::train_minibatch(
                    policy,
                    &mut self.ppo_optim,
                    exp,
                    rows,
                    &self.cfg.ppo,
                    &self.train_device,
                )
                .await;
                self.policy = Some(policy);
                up.mb_stats.push(stats);
                up.losses.push(stats.pg_loss);
                let per_iter = self.ppo_slices() / self.cfg.ppo.iterations;
                let step = iter * per_iter + 2 + epoch * n_mb + mb;
                let steps = self.ppo_slices();
                // cleanrl's early stop: the policy has moved as far as one batch justifies.
                let target = self.cfg.ppo.target_kl;
                let stop = target > 0.0 && stats.approx_kl > target;
                if mb + 1 < n_mb && !stop {
                    up.phase = Phase::Ppo {
                        iter,
                        epoch,
                        mb: mb + 1,
                    };
                    return Event::Progress {
                        stage: Stage::Ppo,
                        step,
                        steps,
                    };
                }
                if epoch + 1 < self.cfg.ppo.epochs && !stop {
                    // A fresh shuffle for every epoch, as in cleanrl.
                    up.minibatches = self.minibatches(exp);
                    up.phase = Phase::Ppo {
                        iter,
                        epoch: epoch + 1,
                        mb: 0,
                    };
                    return Event::Progress {
                        stage: Stage::Ppo,
                        step,
                        steps,
                    };
                }
                let mut m = ppo::metrics(exp, &up.mb_stats);
                // The reference's mean log-prob per token of the rollouts (part of the score).
                m.insert("objective/confidence".into(), up.rollout_confidence);
                self.kl.update(m["objective/kl"], exp.len());
                up.ppo_metrics = m;
                if iter + 1 < self.cfg.ppo.iterations {
                    up.phase = Phase::Rollout(iter + 1);
                    return Event::Progress {
                        stage: Stage::Ppo,
                        step,
                        steps,
                    };
                }
                up.phase = Phase::Samples;
                let mut m = std::mem::take(&mut up.ppo_metrics);
                m.insert("objective/kl_coef_next".into(), self.kl.value);
                Self::finish_stage(up, Stage::Ppo, None, m)
            }
            Phase::Samples => {
                let samples = self.samples().await;
                let now = crate::now_ms();
                up.stage_started = now;
                self.version += 1;
                Event::Done(UpdateReport {
                    version: self.version,
                    ratings: up.rating,
                    millis: now - up.started,
                    stages: std::mem::take(&mut up.stages),
                    samples,
                    rollouts: std::mem::take(&mut up.rollouts),
                })
            }
        }
    }

    /// One epoch's minibatches of `exp`'s replies (`ppo::minibatches`).
    fn minibatches(&mut self, exp: &Experience) -> Vec<Vec<usize>> {
        let lengths: Vec<usize> = exp.seqs.iter().map(Vec::len).collect();
        let p = &self.cfg.ppo;
        ppo::minibatches(&lengths, p.minibatch_size, p.group_by_length, &mut self.rng)
    }

    /// Prompts for a PPO batch: a share from the person's recent prompts, the rest from the
    /// corpus (its training prompts: the held-out ones are kept for measuring).
    fn rollout_prompts(&mut self) -> Vec<String> {
        let n = self.cfg.ppo.batch_size.max(1);
        let recent: Vec<String> = self.log.prompts.iter().rev().take(8).cloned().collect();
        let own = if recent.is_empty() {
            0
        } else {
            (n as f64 * self.cfg.own_prompt_share).round() as usize
        };
        (0..n)
            .map(|i| {
                if i < own {
                    recent[self.rng.below(recent.len())].clone()
                } else {
                    self.corpus.prompt(false).text
                }
            })
            .collect()
    }

    /// Samples a PPO batch from the policy, scores it with the reward model and builds the
    /// experience (old log-probs, reference log-probs, rewards, advantages).
    /// Also returns the rollouts' mean reference confidence.
    async fn rollout(&mut self, texts: &mut Vec<(String, String)>) -> (Experience, f64) {
        let prompts = self.rollout_prompts();
        let ids: Vec<Vec<u32>> = prompts.iter().map(|p| self.prompt_ids(p)).collect();
        // On-policy sampling: the full distribution at temperature 1, as PPO's ratio assumes.
        let cfg = SampleConfig::new().with_max_new_tokens(self.cfg.ppo.max_new_tokens);
        let policy = self.policy();
        let out = generate(&policy, &ids, &cfg, &mut self.rng, true).await;
        let mut seqs = Vec::new();
        let mut scored = Vec::new();
        let mut starts = Vec::new();
        texts.clear();
        for ((p, o), prompt) in ids.iter().zip(&out).zip(&prompts) {
            starts.push(p.len());
            seqs.push(o.sequence(p, false));
            // The reward model always reads a closed exchange (it is trained on those).
            scored.push(o.sequence(p, true));
            texts.push((prompt.clone(), self.tok.decode(&o.tokens)));
        }
        let rm = self.reward_model.as_ref().expect("reward model").valid();
        // One pass through the frozen bottom serves the reward model and the reference.
        let (scores, ref_closed) = reward::scores_and_reference_logprobs(
            &rm,
            &self.reference,
            &scored,
            self.reward_own_blocks(),
            &self.device,
        )
        .await;
        // The reference's log-probs in the PPO batch's layout: rows cut to its width (a reply
        // that ran out of room has no <|end|> there; positions before it are the same).
        let width = |s: &[Vec<u32>]| s.iter().map(Vec::len).max().unwrap_or(1) - 1;
        let (wc, w) = (width(&scored), width(&seqs));
        let ref_logprobs: Vec<f32> = (0..seqs.len())
            .flat_map(|b| ref_closed[b * wc..b * wc + w].iter().copied())
            .collect();
        // PPO's score: the reward model's plus the reference's confidence in the reply, both
        // read from the closed exchange (a reply cut off by the length limit is scored as if
        // it ended there).
        let confidence = reward::reference_confidence(&ref_closed, wc, &scored, &starts);
        let scores = reward::with_confidence(&scores, &confidence, self.confidence_weight());
        self.moments.update(&scores, self.cfg.reward.norm_momentum);
        let normalised = self.normalised(&scores);
        let exp = ppo::make_experience(
            &policy,
            &self.reference,
            Some(ref_logprobs),
            seqs,
            starts,
            scores,
            &normalised,
            self.kl.value,
            &self.cfg.ppo,
        )
        .await;
        let mean =
            confidence.iter().map(|&c| c as f64).sum::<f64>() / confidence.len().max(1) as f64;
        (exp, mean)
    }

    /// Fresh replies to the latest prompt with their reward and per-token change.
    async fn samples(&mut self) -> Vec<SampleReport> {
        let n = self.cfg.report_samples;
        let Some(prompt) = self.log.prompts.last().cloned() else {
            return Vec::new();
        };
        if n == 0 {
            return Vec::new();
        }
        let p = self.prompt_ids(&prompt);
        let policy = self.policy();
        let out = generate(
            &policy,
            &vec![p.clone(); n],
            &self.cfg.sample,
            &mut self.rng,
            true,
        )
        .await;
        let seqs: Vec<Vec<u32>> = out.iter().map(|o| o.sequence(&p, true)).collect();
        let (changes, rewards) = self.token_changes(&policy, &seqs, p.len()).await;
        out.iter()
            .zip(changes)
            .zip(rewards)
            .map(|((o, tokens), reward)| SampleReport {
                prompt: prompt.clone(),
                reply: self.tok.decode(&o.tokens),
                reward,
                tokens,
            })
            .collect()
    }

    /// The scores PPO's reward uses for (prompt, reply) texts: the reward model's, plus the
    /// reference's confidence, normalised by the running statistics of its rollout scores.
    pub async fn reward_scores(&self, texts: &[(String, String)]) -> Vec<f32> {
        if texts.is_empty() {
            return Vec::new();
        }
        let (seqs, starts) = self.encode_exchanges(texts);
        let rm = self.reward_model.as_ref().expect("reward model").valid();
        let (raw, rp) = reward::scores_and_reference_logprobs(
            &rm,
            &self.reference,
            &seqs,
            self.reward_own_blocks(),
            &self.device,
        )
        .await;
        let width = seqs.iter().map(Vec::len).max().unwrap_or(1) - 1;
        let confidence = reward::reference_confidence(&rp, width, &seqs, &starts);
        self.normalised(&reward::with_confidence(
            &raw,
            &confidence,
            self.confidence_weight(),
        ))
    }

    /// Reward-model scores normalised by the running statistics of its rollout scores.
    fn normalised(&self, scores: &[f32]) -> Vec<f32> {
        let floor = self.cfg.reward.norm_std_floor;
        scores
            .iter()
            .map(|&s| self.moments.normalise(s, floor))
            .collect()
    }

    /// Per-token log-probs of `seqs` (all sharing a prompt of `start` tokens) under `policy` and
    /// the reference, and their scores (the reward model's plus the reference's confidence).
    async fn token_changes(
        &self,
        policy: &Gpt,
        seqs: &[Vec<u32>],
        start: usize,
    ) -> (Vec<Vec<TokenChange>>, Vec<f32>) {
        let batch = Batch::right_padded(seqs, &self.device);
        let t = batch.tokens.dims()[1];
        let lp =
            crate::read(policy.token_logprobs(policy.forward(&batch, None), batch.tokens.clone()))
                .await;
        let rm = self.reward_model.as_ref().expect("reward model").valid();
        let (rewards, rp) = reward::scores_and_reference_logprobs(
            &rm,
            &self.reference,
            seqs,
            self.reward_own_blocks(),
            &self.device,
        )
        .await;
        let starts = vec![start; seqs.len()];
        let confidence = reward::reference_confidence(&rp, t - 1, seqs, &starts);
        let rewards = reward::with_confidence(&rewards, &confidence, self.confidence_weight());
        let changes = seqs
            .iter()
            .enumerate()
            .map(|(b, s)| {
                let texts = self.tok.token_texts(&s[start..]);
                (start..s.len())
                    .zip(texts)
                    .map(|(i, text)| {
                        let j = b * (t - 1) + i - 1; // position predicting token i
                        TokenChange {
                            text: if s[i] == END { "⏎".to_string() } else { text },
                            logprob: lp[j],
                            ref_logprob: rp[j],
                        }
                    })
                    .collect()
            })
            .collect();
        (changes, rewards)
    }
}

#[cfg(test)]
mod tests;
