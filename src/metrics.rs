//! What an update measured: one typed struct per stage, serialised under TRL's names and
//! namespaced by stage (`sft/…`, `reward/…`, `objective/…`, `policy/…`, `loss/…`, `val/…`,
//! `rewards/…` and `direct/…` for DPO and KTO, `grpo/…`, `samples/…`),
//! and [`Metrics`], their union as one flat object. The CLI's `--json`, `simulate`'s rows, the
//! wasm API and the page all read these types, so a metric has one name everywhere.

use crate::corpus::classify;
use crate::error::Result;
use crate::rater::Rater;
use serde::{Deserialize, Serialize};

/// What SFT measured in an update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SftStats {
    /// Cross-entropy of the reply tokens at the last step, before its update.
    #[serde(rename = "sft/loss")]
    pub loss: f64,
    /// Demonstrations and top-rated replies SFT drew its batches from.
    #[serde(rename = "sft/demonstrations")]
    pub demonstrations: usize,
}

/// What fitting the reward model measured in an update (names as TRL's reward trainer, under
/// `reward/`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardStats {
    /// Bradley–Terry (plus pointwise) loss at the last step, before its update.
    #[serde(rename = "reward/loss")]
    pub loss: f64,
    /// Share of the last step's comparisons (ties excluded) ranked right.
    #[serde(
        rename = "reward/accuracy",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub accuracy: Option<f64>,
    /// Mean `r_chosen − r_rejected` over the last step's comparisons.
    #[serde(
        rename = "reward/margin",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub margin: Option<f64>,
    /// Share of comparisons ranked right before the model was trained on them (the last 50
    /// such outcomes; once there are 4): the honest accuracy.
    #[serde(
        rename = "reward/eval_accuracy",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub eval_accuracy: Option<f64>,
    /// Comparisons in the training set.
    #[serde(rename = "reward/pairs")]
    pub pairs: usize,
    /// Kendall's τ of the comparisons with the reference's confidence (when it can weigh in).
    #[serde(
        rename = "reward/confidence_agreement",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub confidence_agreement: Option<f64>,
    /// The weight of the reference's confidence in PPO's score now.
    #[serde(
        rename = "reward/confidence_weight",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub confidence_weight: Option<f64>,
}

/// What PPO measured in an update (TRL's `PPOTrainer` names): with several iterations, the
/// last one's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PpoStats {
    /// Mean over replies of Σ_t (log π_old − log π_ref): the KL to the reference, in nats.
    #[serde(rename = "objective/kl")]
    pub kl: f64,
    /// Mean over replies of the summed per-token entropy of π_old.
    #[serde(rename = "objective/entropy")]
    pub entropy: f64,
    /// Mean score of the rollouts (reward model plus the reference's confidence), unnormalised.
    #[serde(rename = "objective/scores")]
    pub scores: f64,
    /// Mean of −β · KL per reply.
    #[serde(rename = "objective/non_score_reward")]
    pub non_score_reward: f64,
    /// `scores + non_score_reward`.
    #[serde(rename = "objective/rlhf_reward")]
    pub rlhf_reward: f64,
    /// β used for this batch's penalty.
    #[serde(rename = "objective/kl_coef")]
    pub kl_coef: f64,
    /// β after the adaptive controller's update, for the next batch.
    #[serde(rename = "objective/kl_coef_next")]
    pub kl_coef_next: f64,
    /// Mean log-probability per token the reference gives the rollouts (part of the score).
    #[serde(rename = "objective/confidence")]
    pub confidence: f64,
    /// ½ E[(log π − log π_old)²] over the minibatches that stepped.
    #[serde(rename = "policy/approxkl_avg")]
    pub approxkl_avg: f64,
    /// Share of actions whose ratio left [1 − ε, 1 + ε].
    #[serde(rename = "policy/clipfrac_avg")]
    pub clipfrac_avg: f64,
    /// Mean per-token entropy of the policy in the minibatches.
    #[serde(rename = "policy/entropy_avg")]
    pub entropy_avg: f64,
    /// Minibatch steps taken (fewer than epochs × minibatches after an early stop).
    #[serde(rename = "policy/minibatches")]
    pub minibatches: usize,
    /// The clipped surrogate loss.
    #[serde(rename = "loss/policy_avg")]
    pub policy_avg: f64,
    /// The clipped value loss.
    #[serde(rename = "loss/value_avg")]
    pub value_avg: f64,
    /// Mean ratio π / π_old.
    #[serde(rename = "val/ratio")]
    pub ratio: f64,
    /// Explained variance of the values against the returns (none when the returns are
    /// constant).
    #[serde(
        rename = "val/var_explained",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub var_explained: Option<f64>,
    /// Minibatches the ratio guard skipped.
    #[serde(rename = "val/num_skipped_minibatches")]
    pub num_skipped_minibatches: usize,
    /// Replies in the batch.
    #[serde(rename = "val/num_replies")]
    pub num_replies: usize,
}

/// What a direct alignment method (DPO or KTO) measured in an update, under TRL's names for
/// the implicit rewards `β · log π(y|x)/π_ref(y|x)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectStats {
    /// The method's loss at the last step, before its update.
    #[serde(rename = "direct/loss")]
    pub loss: f64,
    /// Mean implicit reward of the chosen (DPO) or desirable (KTO) replies of the last step.
    #[serde(
        rename = "rewards/chosen",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub chosen: Option<f64>,
    /// Mean implicit reward of the rejected (DPO) or undesirable (KTO) replies.
    #[serde(
        rename = "rewards/rejected",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rejected: Option<f64>,
    /// `rewards/chosen − rewards/rejected`.
    #[serde(
        rename = "rewards/margins",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub margins: Option<f64>,
    /// Share of the last step's pairs whose chosen reply has the higher implicit reward (DPO).
    #[serde(
        rename = "rewards/accuracies",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub accuracies: Option<f64>,
    /// KTO's reference point z₀: the batch's estimate of KL(π ‖ π_ref), in nats, at least 0.
    #[serde(rename = "direct/kl", default, skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// Pairs (DPO) or rated replies (KTO) learnt from.
    #[serde(rename = "direct/examples")]
    pub examples: usize,
    /// Pieces of feedback the method used, and those it could not use (DPO: a thumbs with no
    /// opposite rating on the same prompt, a tie; KTO: 3 stars, a tie).
    #[serde(rename = "direct/used")]
    pub used: usize,
    #[serde(rename = "direct/unused")]
    pub unused: usize,
}

/// What GRPO measured in an update (TRL's `GRPOTrainer` names, under `grpo/`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpoStats {
    /// Mean loss over the steps.
    #[serde(rename = "grpo/loss")]
    pub loss: f64,
    /// Mean reward-model score of the batch's replies.
    #[serde(rename = "grpo/reward")]
    pub reward: f64,
    /// Their standard deviation.
    #[serde(rename = "grpo/reward_std")]
    pub reward_std: f64,
    /// Mean per-token KL estimate to the reference over the steps.
    #[serde(rename = "grpo/kl")]
    pub kl: f64,
    /// Share of actions whose ratio was clipped.
    #[serde(rename = "grpo/clip_ratio")]
    pub clip_ratio: f64,
    /// Share of groups whose replies all scored the same (they teach nothing).
    #[serde(rename = "grpo/frac_reward_zero_std")]
    pub frac_reward_zero_std: f64,
    /// Mean reply length, in tokens.
    #[serde(rename = "grpo/completion_length")]
    pub completion_length: f64,
}

/// What best-of-N fine-tuning measured in an update (under `bon/`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BonStats {
    /// Mean cross-entropy of the kept replies over the steps (as `sft/loss`).
    #[serde(rename = "bon/loss")]
    pub loss: f64,
    /// Mean reward-model score of the candidates.
    #[serde(rename = "bon/reward")]
    pub reward: f64,
    /// Replies written this update.
    #[serde(rename = "bon/candidates")]
    pub candidates: usize,
    /// Of those, the ones kept.
    #[serde(rename = "bon/accepted")]
    pub accepted: usize,
    /// Replies learnt from: this update's kept and the earlier ones the reward model still likes.
    #[serde(rename = "bon/kept")]
    pub kept: usize,
    /// Mean candidate length, in tokens.
    #[serde(rename = "bon/completion_length")]
    pub completion_length: f64,
}

/// The check that ends every update ([`crate::session::Session`]): the policy's cross-entropy
/// on fixed corpus exchanges, and whether the update was rolled back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthStats {
    /// The policy's mean cross-entropy per reply token on the probe exchanges, in nats (after a
    /// roll-back, the restored model's).
    #[serde(rename = "health/probe_nll")]
    pub probe_nll: f64,
    /// Whether the update broke the model and was rolled back.
    #[serde(rename = "health/rolled_back")]
    pub rolled_back: bool,
}

/// What the fresh replies shown after an update measured: the same for every method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleStats {
    /// Mean over the replies of Σ_t (log π − log π_ref) over their tokens: the KL to the base
    /// model per reply, in nats, as `objective/kl` but on the replies shown.
    #[serde(rename = "samples/kl")]
    pub kl: f64,
}

impl SampleStats {
    /// The statistics of an update's fresh `samples`; none when there are none.
    pub fn of(samples: &[crate::report::SampleReport]) -> Option<SampleStats> {
        if samples.is_empty() {
            return None;
        }
        let kl: f64 = samples
            .iter()
            .flat_map(|s| &s.tokens)
            .map(|t| (t.logprob - t.ref_logprob) as f64)
            .sum();
        Some(SampleStats {
            kl: kl / samples.len() as f64,
        })
    }
}

/// A simulated rater's verdict on an update's PPO rollouts (the autopilot's chart, and
/// `simulate`'s rows).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RaterStats {
    /// Share of the rollouts the rater would give a thumbs up.
    #[serde(rename = "rater/preferred")]
    pub preferred: f64,
    /// Mean rater score of the rollouts, in [−1, 1].
    #[serde(rename = "rater/score")]
    pub score: f64,
    /// Share of the rollouts that are well-formed (`corpus::classify` parses them).
    #[serde(rename = "rater/well_formed")]
    pub well_formed: f64,
}

impl RaterStats {
    /// `rater`'s verdict on (prompt, reply) `rollouts`; none when there are none.
    pub fn of(rollouts: &[(String, String)], rater: &Rater) -> Result<Option<RaterStats>> {
        if rollouts.is_empty() {
            return Ok(None);
        }
        let (mut score, mut preferred, mut well_formed) = (0.0, 0usize, 0usize);
        for (prompt, reply) in rollouts {
            let s = rater.score(prompt, reply)?;
            score += s;
            preferred += usize::from(crate::rater::thumbs(s));
            well_formed += usize::from(classify(reply, prompt).is_ok());
        }
        let n = rollouts.len() as f64;
        Ok(Some(RaterStats {
            preferred: preferred as f64 / n,
            score: score / n,
            well_formed: well_formed as f64 / n,
        }))
    }
}

/// Everything measured, as one flat object of namespaced names: a stage's report holds its own
/// part, an update's report the union of its stages (and the rater's verdict, where a
/// simulated rater rated).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    #[serde(flatten)]
    pub sft: Option<SftStats>,
    #[serde(flatten)]
    pub reward: Option<RewardStats>,
    #[serde(flatten)]
    pub ppo: Option<PpoStats>,
    #[serde(flatten)]
    pub direct: Option<DirectStats>,
    #[serde(flatten)]
    pub grpo: Option<GrpoStats>,
    #[serde(flatten)]
    pub bon: Option<BonStats>,
    #[serde(flatten)]
    pub samples: Option<SampleStats>,
    #[serde(flatten)]
    pub health: Option<HealthStats>,
    #[serde(flatten)]
    pub rater: Option<RaterStats>,
}

impl Metrics {
    /// `self` with the parts that `other` has taken from `other`.
    pub fn merge(mut self, other: &Metrics) -> Metrics {
        if other.sft.is_some() {
            self.sft = other.sft.clone();
        }
        if other.reward.is_some() {
            self.reward = other.reward.clone();
        }
        if other.ppo.is_some() {
            self.ppo = other.ppo.clone();
        }
        if other.direct.is_some() {
            self.direct = other.direct.clone();
        }
        if other.grpo.is_some() {
            self.grpo = other.grpo.clone();
        }
        if other.bon.is_some() {
            self.bon = other.bon.clone();
        }
        if other.samples.is_some() {
            self.samples = other.samples.clone();
        }
        if other.health.is_some() {
            self.health = other.health.clone();
        }
        if other.rater.is_some() {
            self.rater = other.rater.clone();
        }
        self
    }

    /// The reward model's accuracy: on comparisons it had not been trained on yet, or on its
    /// last training batch until there are enough of those.
    pub fn reward_accuracy(&self) -> Option<f64> {
        let r = self.reward.as_ref()?;
        r.eval_accuracy.or(r.accuracy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_serialise_flat_under_namespaced_names_and_read_back() {
        let m = Metrics {
            sft: Some(SftStats {
                loss: 1.5,
                demonstrations: 3,
            }),
            reward: Some(RewardStats {
                loss: 0.5,
                accuracy: Some(0.75),
                margin: None,
                eval_accuracy: None,
                pairs: 8,
                confidence_agreement: None,
                confidence_weight: None,
            }),
            ..Default::default()
        };
        let v = serde_json::to_value(&m).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "reward/accuracy",
                "reward/loss",
                "reward/pairs",
                "sft/demonstrations",
                "sft/loss"
            ]
        );
        assert_eq!(serde_json::from_value::<Metrics>(v).unwrap(), m);
        assert_eq!(m.reward_accuracy(), Some(0.75));
    }
}
