//! Best-of-N fine-tuning, also called rejection sampling (Touvron et al. 2023, "Llama 2",
//! section 3.2.3; Dong et al. 2023, "RAFT"; Gulcehre et al. 2023, "ReST"): the policy writes N
//! replies to each prompt, the reward model scores them, and the policy is fine-tuned with SFT's
//! cross-entropy on replies it believes the person likes.
//!
//! ```text
//! accepted = { y_i : y_i finished, σ(r(x, y_i)) ≥ threshold }
//! kept     = keep × prompts of them drawn with probability ∝ π_ref(y_i|x) / π(y_i|x)
//!            ∪ the earlier kept replies the reward model still accepts
//! L        = − mean over kept replies of (1/|y|) Σ_t log π(y_t | x, y_<t)
//! ```
//!
//! Why it suits a taste learnt from a few ratings (docs/TUNING.md, "Best-of-N"). The objective
//! PPO climbs, E[r] − β KL(π ‖ π_ref), is maximised by π* ∝ π_ref · exp(r / β) (Rafailov et al.
//! 2023, eq. 4). With a reward that is high for the replies a person likes and low for the rest,
//! π* is the base model's own distribution over the liked replies: what the person never judged
//! keeps the spread it had. PPO approaches π* through the reverse KL, which seeks one mode;
//! maximum likelihood on replies drawn from π* approaches it through the forward KL, which
//! covers them all. The candidates come from the policy, which finds liked replies more often
//! as it learns; the importance weights π_ref/π (sampling-importance resampling, Rubin 1988)
//! make the kept ones stand for π_ref restricted to the accepted replies all the same, so the
//! policy's own drift does not compound update after update. Keeping the best-scored replies
//! instead (`keep_best`, Llama 2's choice) maximises the reward model's score and loses the
//! variety.
//!
//! `σ(r)` is a belief that the reply is liked because the reward model's pointwise term fits
//! σ(r) to thumbs and stars ([`crate::reward::loss`]).

use crate::metrics::{BonStats, Metrics};
use crate::model::Gpt;
use crate::ppo::{Context, Rollouts, roll_out, rollout_prompts};
use crate::report::{Slice, Steps};
use crate::rng::Rng;
use crate::settings::config;
use crate::sft::SftConfig;
use crate::sft::reply_logprobs;
use crate::tokenizer::END;
use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::prelude::*;

config! {
    /// Settings of best-of-N fine-tuning (method = bon). Why each default: docs/TUNING.md,
    /// "Best-of-N".
    pub struct BonConfig in "Best-of-N" {
        /// Prompts per update; the policy writes N replies to each.
        prompts: usize = 8 in 1..=32, "Best-of-N prompts per update", basic;
        /// N: replies written to each prompt, of which those the reward model accepts may be kept.
        n: usize = 8 in 1..=32, "Replies per prompt N", basic;
        /// Replies kept per update: `keep` × prompts, drawn from those accepted (or, with keep_best, the best `keep` of each prompt).
        keep: usize = 2 in 1..=32, "Replies kept per prompt", advanced;
        /// Draw the kept replies in proportion to π_ref/π (importance resampling), so that they follow the base model's variety rather than the policy's drift.
        reweight: bool = true, "Correct for the policy's drift", advanced;
        /// Keep the replies the reward model scores highest instead of a random draw of those it accepts (best-of-N as in Llama 2: faster, less varied).
        keep_best: bool = false, "Keep the best-scored, not a random draw", advanced;
        /// Write the candidates with the base model (the reward model's errors do not compound) rather than the policy as it is now.
        from_reference: bool = false, "Candidates from the base model", advanced;
        /// A reply is kept only if the reward model gives it at least this chance of a 👍.
        threshold: f64 = 0.5 in 0.0..=1.0, "Least chance of a 👍 to keep", basic;
        /// Kept replies remembered across updates (the newest), judged again at each update.
        memory: usize = 64 in 0..=1024, "Kept replies remembered", advanced;
        /// Fine-tuning steps per update on the kept replies.
        steps: usize = 8 in 0..=100, "Best-of-N steps per rating", basic;
        /// Kept replies per step (all of them when there are fewer).
        batch_size: usize = 8 in 1..=64, "Replies per best-of-N step", advanced;
        /// Size of each step (AdamW).
        lr: f64 = 1e-4 in 1e-7..=0.1, "Best-of-N learning rate", basic;
        /// Gradients are scaled down to at most this global norm.
        max_grad_norm: f32 = 1.0 in 1e-3..=1e3, "Best-of-N gradient clip", advanced;
        /// Longest reply written, in tokens.
        max_new_tokens: usize = 48 in 1..=96, "Longest best-of-N reply", advanced;
    }
}

/// σ(r): the reward model's belief that a reply with score `r` is liked.
fn liked(r: f32) -> f64 {
    1.0 / (1.0 + (-r as f64).exp())
}

/// The candidates the reward model accepts: those that `finished` and whose belief `σ(raw)`
/// reaches `threshold`.
pub fn accepted(raw: &[f32], finished: &[bool], threshold: f64) -> Vec<usize> {
    (0..raw.len())
        .filter(|&i| finished[i] && liked(raw[i]) >= threshold)
        .collect()
}

/// Best-of-N as in Llama 2: of the `accepted` candidates (indices into `raw`, in groups of `n`
/// replies to one prompt), each prompt's `keep` highest scores.
pub fn best_per_prompt(accepted: &[usize], raw: &[f32], n: usize, keep: usize) -> Vec<usize> {
    let mut kept = Vec::new();
    for g in 0..raw.len().div_ceil(n.max(1)) {
        let mut group: Vec<usize> = accepted.iter().copied().filter(|&i| i / n == g).collect();
        group.sort_by(|&a, &b| raw[b].total_cmp(&raw[a]));
        group.truncate(keep);
        group.sort_unstable();
        kept.extend(group);
    }
    kept
}

/// Importance resampling: `m` of the items drawn without replacement, each next draw with
/// probability proportional to its weight `exp(log_weights[i])` among those left
/// (Efraimidis and Spirakis 2006: the `m` largest keys `u^(1/w)`, compared as `ln u / w`).
/// Returned in index order.
pub fn draw(log_weights: &[f64], m: usize, rng: &mut Rng) -> Vec<usize> {
    let top = log_weights
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let mut keys: Vec<(f64, usize)> = log_weights
        .iter()
        .enumerate()
        .map(|(i, &lw)| {
            let u = rng.next_f64().max(f64::MIN_POSITIVE);
            (u.ln() / (lw - top).exp().max(f64::MIN_POSITIVE), i)
        })
        .collect();
    keys.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut chosen: Vec<usize> = keys.into_iter().take(m).map(|(_, i)| i).collect();
    chosen.sort_unstable();
    chosen
}

/// The kept replies of the update in flight: what was sampled and what is learnt from.
#[derive(Clone)]
struct Round {
    data: Vec<(Vec<u32>, usize)>,
    candidates: usize,
    accepted: usize,
    reward: f64,
    completion_length: f64,
}

/// Best-of-N's optimiser and settings, the replies kept so far and the update in flight. Like
/// SFT it steps the policy that [`crate::ppo::PpoTrainer`] holds, and it reads the reward model
/// through the same [`Context`] as PPO.
#[derive(Clone)]
pub struct BonTrainer {
    cfg: BonConfig,
    optim: ModuleOptimizer,
    device: Device,
    /// Kept replies (token ids and where the reply starts), newest first.
    memory: Vec<(Vec<u32>, usize)>,
    round: Option<Round>,
    steps: Steps,
}

impl BonTrainer {
    /// A trainer whose steps run on `device`'s autodiff form.
    pub fn new(cfg: BonConfig, device: &Device) -> Self {
        Self {
            optim: AdamWConfig::new().with_weight_decay(0.0).init(),
            cfg,
            device: device.clone().autodiff(),
            memory: Vec::new(),
            round: None,
            steps: Steps::default(),
        }
    }

    /// New settings from the next slice on; the optimiser and the memory stay.
    pub fn set_config(&mut self, cfg: BonConfig) {
        self.cfg = cfg;
    }

    /// Starts an update's best-of-N stage.
    pub fn begin(&mut self) {
        self.round = None;
        self.steps.restart();
    }

    /// One slice: the candidates, scored and filtered, or one fine-tuning step. `rollouts`
    /// receives the candidates' (prompt, reply) texts.
    pub async fn step(
        &mut self,
        policy: Gpt,
        mut cx: Context<'_>,
        rollouts: &mut Vec<(String, String)>,
    ) -> (Gpt, Slice) {
        let steps = self.cfg.steps;
        let Some(round) = &self.round else {
            if steps == 0 {
                return (policy, Slice::Skipped("best-of-N is off (bon.steps is 0)"));
            }
            if !cx.reward.is_fitted() {
                return (
                    policy,
                    Slice::Skipped("the reward model has no ratings to learn from yet"),
                );
            }
            let round = self.sample(&policy, &mut cx, rollouts).await;
            if round.data.is_empty() {
                return (
                    policy,
                    Slice::Skipped("no reply yet that the reward model believes you like"),
                );
            }
            self.round = Some(round);
            return (policy, Slice::Progress { step: 0, steps });
        };
        let c = &self.cfg;
        let sft = SftConfig::new()
            .with_lr(c.lr)
            .with_batch_size(c.batch_size)
            .with_max_grad_norm(c.max_grad_norm);
        let (policy, loss) = crate::sft::step(
            policy,
            &mut self.optim,
            &round.data,
            &sft,
            cx.rng,
            &self.device,
        )
        .await;
        let metrics = || Metrics {
            bon: Some(BonStats {
                loss,
                reward: round.reward,
                candidates: round.candidates,
                accepted: round.accepted,
                kept: round.data.len(),
                completion_length: round.completion_length,
            }),
            ..Default::default()
        };
        let slice = self.steps.record(loss, steps, metrics);
        (policy, slice)
    }

    /// N replies to each of the prompts, scored; the best kept, with the earlier kept replies
    /// the reward model still likes.
    async fn sample(
        &mut self,
        policy: &Gpt,
        cx: &mut Context<'_>,
        texts: &mut Vec<(String, String)>,
    ) -> Round {
        let c = &self.cfg;
        let prompts = rollout_prompts(
            cx.prompts,
            cx.corpus,
            c.prompts,
            cx.own_prompt_share,
            cx.rng,
        );
        let prompts: Vec<String> = prompts.iter().flat_map(|p| vec![p.clone(); c.n]).collect();
        let writer = if c.from_reference {
            cx.reference.clone()
        } else {
            policy.valid()
        };
        let Rollouts {
            seqs,
            starts,
            scored,
        } = roll_out(&writer, cx, &prompts, c.max_new_tokens, texts).await;
        let finished: Vec<bool> = seqs.iter().map(|s| s.last() == Some(&END)).collect();
        let liked_now = accepted(&scored.raw, &finished, c.threshold);
        let chosen = if c.keep_best {
            best_per_prompt(&liked_now, &scored.raw, c.n, c.keep)
        } else {
            // The policy's replies stand for the base model's after importance weights
            // π_ref(y|x) / π(y|x), so that what is kept follows π_ref restricted to the liked
            // replies and not the policy's own drift (which would compound, update by update).
            let log_w = if c.from_reference || !c.reweight || liked_now.is_empty() {
                vec![0.0; liked_now.len()]
            } else {
                let rows: Vec<(Vec<u32>, usize)> = liked_now
                    .iter()
                    .map(|&i| (seqs[i].clone(), starts[i]))
                    .collect();
                let reference: Vec<f32> = liked_now
                    .iter()
                    .map(|&i| scored.reply_ref_logprob(i, starts[i], seqs[i].len()))
                    .collect();
                log_ratios(&writer, &rows, &reference).await
            };
            let picked = draw(&log_w, c.keep * c.prompts, cx.rng);
            picked.into_iter().map(|k| liked_now[k]).collect()
        };
        let mut data: Vec<(Vec<u32>, usize)> = chosen
            .iter()
            .map(|&i| (seqs[i].clone(), starts[i]))
            .collect();
        let accepted = data.len();
        // Earlier kept replies, judged again by the reward model as it is now.
        let earlier: Vec<(Vec<u32>, usize)> = std::mem::take(&mut self.memory)
            .into_iter()
            .filter(|old| !data.iter().any(|new| new.0 == old.0))
            .collect();
        data.extend(still_accepted(earlier, cx, c.threshold).await);
        self.memory = data.iter().take(c.memory).cloned().collect();
        let n = seqs.len().max(1) as f64;
        Round {
            candidates: seqs.len(),
            accepted,
            reward: scored.raw.iter().map(|&r| r as f64).sum::<f64>() / n,
            completion_length: seqs
                .iter()
                .zip(&starts)
                .map(|(s, b)| (s.len() - b) as f64)
                .sum::<f64>()
                / n,
            data,
        }
    }
}

/// log π_ref(y|x) − log π(y|x) for each exchange of `rows` (token ids, reply start), given
/// each one's reply log-probability under the reference `reference` and `policy` read here.
async fn log_ratios(policy: &Gpt, rows: &[(Vec<u32>, usize)], reference: &[f32]) -> Vec<f64> {
    let device = policy.devices()[0].clone();
    let policy_lp = crate::read(reply_logprobs(policy, rows, &device).0).await;
    reference
        .iter()
        .zip(&policy_lp)
        .map(|(r, p)| (r - p) as f64)
        .collect()
}

/// The replies of `earlier` that the reward model, as it is now, still accepts at `threshold`.
async fn still_accepted(
    earlier: Vec<(Vec<u32>, usize)>,
    cx: &mut Context<'_>,
    threshold: f64,
) -> Vec<(Vec<u32>, usize)> {
    if earlier.is_empty() {
        return earlier;
    }
    let ids: Vec<Vec<u32>> = earlier.iter().map(|(s, _)| s.clone()).collect();
    let from: Vec<usize> = earlier.iter().map(|(_, s)| *s).collect();
    let again = cx
        .reward
        .score(cx.reference, &ids, &from, cx.pair_share)
        .await;
    earlier
        .into_iter()
        .zip(&again.raw)
        .filter(|(_, r)| liked(**r) >= threshold)
        .map(|(e, _)| e)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_accepts_finished_replies_the_reward_model_believes_liked() {
        // Two prompts, N = 4. σ(r) ≥ 0.5 means r ≥ 0.
        let raw = [
            0.3, 2.0, -1.0, 1.0, /* second */ -0.5, -0.2, -3.0, -0.1,
        ];
        let finished = [true, true, true, false, true, true, true, true];
        // 3 did not finish, 2 is disliked, and nothing of prompt 2 reaches σ = 0.5.
        assert_eq!(accepted(&raw, &finished, 0.5), [0, 1]);
        // σ(−0.2) = 0.450, σ(−0.1) = 0.475: a threshold of 0.46 accepts index 7 too.
        assert_eq!(accepted(&raw, &finished, 0.46), [0, 1, 7]);
        assert!((liked(0.0) - 0.5).abs() < 1e-12);
        assert!((liked(-0.2) - 0.450_166).abs() < 1e-6);
        // Best-of-N: each prompt's highest scores.
        assert_eq!(best_per_prompt(&[0, 1, 7], &raw, 4, 1), [1, 7]);
        assert_eq!(best_per_prompt(&[0, 1, 7], &raw, 4, 2), [0, 1, 7]);
    }

    #[test]
    fn importance_resampling_draws_in_proportion_to_the_weights() {
        let mut rng = Rng::new(0);
        // Weights 1 and 3: the first draw is the second item 3/4 of the time.
        let (lw, trials) = ([0.0, 3f64.ln()], 4000);
        let second = (0..trials)
            .filter(|_| draw(&lw, 1, &mut rng) == [1])
            .count() as f64
            / trials as f64;
        assert!((second - 0.75).abs() < 0.03, "{second}");
        // Without replacement: m items, each once; all of them when m is larger.
        assert_eq!(draw(&[0.0, 5.0, -5.0], 3, &mut rng), [0, 1, 2]);
        assert_eq!(draw(&[0.0, 5.0, -5.0], 9, &mut rng), [0, 1, 2]);
        // Equal weights: a uniform draw (each of 4 first about a quarter of the time).
        let firsts = (0..trials)
            .filter(|_| draw(&[0.0; 4], 1, &mut rng) == [2])
            .count() as f64
            / trials as f64;
        assert!((firsts - 0.25).abs() < 0.03, "{firsts}");
        // Weights far apart (e^-200) stay finite: the heavy one is drawn first.
        assert_eq!(draw(&[-200.0, 0.0], 1, &mut rng), [1]);
    }
}
