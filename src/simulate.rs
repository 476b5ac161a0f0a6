//! A simulated person: rounds of "ask, read the replies, give feedback", each piece of feedback
//! running one update, then the rater's preferred rate measured before and after.
//!
//! Each round takes a corpus prompt (a training prompt: the held-out ones are kept for the final
//! measurement), samples replies from the current policy and lets the rater give feedback of one
//! kind: a thumbs or stars rating on every reply, or a preference on pairs of them (in sampled
//! order, or best against worst: [`PairChoice`]).

use crate::corpus::{Corpus, classify};
use crate::feedback::Feedback;
use crate::model::{Batch, Gpt};
use crate::rater::{GraderError, Rater, prefer, stars, thumbs};
use crate::rng::Rng;
use crate::sample::{SampleConfig, generate};
use crate::session::{Session, Stage, UpdateReport};
use crate::tokenizer::Tokenizer;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The kind of feedback a simulated person gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    Thumbs,
    Stars,
    Pairs,
}

impl FeedbackKind {
    pub fn from_name(name: &str) -> Option<FeedbackKind> {
        match name {
            "thumbs" => Some(FeedbackKind::Thumbs),
            "stars" => Some(FeedbackKind::Stars),
            "pairs" => Some(FeedbackKind::Pairs),
            _ => None,
        }
    }
}

/// Which replies of a round a simulated person compares when giving pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairChoice {
    /// Two at a time in the order they were sampled: the first with the second, the third with
    /// the fourth.
    #[default]
    InOrder,
    /// The one the person likes best with the one they like least, then the next best with the
    /// next worst, and so on (as in best–worst scaling, Louviere et al. 2015): the widest gaps
    /// first. Replies the person likes equally keep their sampled order.
    Extremes,
}

impl PairChoice {
    /// The order in which to take replies two at a time, given the person's score of each.
    pub fn order(self, scores: &[f64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        if self == PairChoice::Extremes {
            // Best first; a stable sort keeps equally liked replies in sampled order.
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
            let (n, sorted) = (order.len(), order);
            order = (0..n)
                .map(|i| {
                    if i % 2 == 0 {
                        sorted[i / 2]
                    } else {
                        sorted[n - 1 - i / 2]
                    }
                })
                .collect();
        }
        order
    }
}

/// Asks `prompt`, samples `n` replies and returns the feedback `rater` gives on them (recorded
/// in the session's log by the caller, one update each); `pairs` says which replies a
/// preference compares.
pub async fn round(
    session: &mut Session,
    rater: &Rater,
    kind: FeedbackKind,
    pairs: PairChoice,
    prompt: &str,
    n: usize,
) -> Result<Vec<Feedback>, RoundError> {
    let replies = session
        .generate(prompt, n)
        .await
        .map_err(|e| RoundError(e.to_string()))?;
    let mut scores = Vec::new();
    for r in &replies {
        scores.push(rater.score(prompt, &r.text)?);
    }
    Ok(match kind {
        FeedbackKind::Thumbs => replies
            .iter()
            .zip(&scores)
            .map(|(r, &s)| Feedback::Thumbs {
                reply: r.reply,
                up: thumbs(s),
            })
            .collect(),
        FeedbackKind::Stars => replies
            .iter()
            .zip(&scores)
            .map(|(r, &s)| Feedback::Stars {
                reply: r.reply,
                stars: stars(s),
            })
            .collect(),
        FeedbackKind::Pairs => pairs
            .order(&scores)
            .chunks_exact(2)
            .map(|ab| {
                let preferred = prefer(scores[ab[0]], scores[ab[1]]);
                // A tie keeps the pair's order; otherwise the preferred reply comes first.
                let (better, worse) = match preferred {
                    Some(false) => (ab[1], ab[0]),
                    _ => (ab[0], ab[1]),
                };
                Feedback::Pair {
                    better: replies[better].reply,
                    worse: replies[worse].reply,
                    tie: preferred.is_none(),
                }
            })
            .collect(),
    })
}

/// Why a round failed (a grader that failed, a refused prompt).
#[derive(Clone, Debug)]
pub struct RoundError(pub String);

impl std::fmt::Display for RoundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RoundError {}

impl From<GraderError> for RoundError {
    fn from(e: GraderError) -> Self {
        RoundError(e.0)
    }
}

/// How a model does by a rater's taste on a set of prompts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Measure {
    /// Share of replies the rater would give a thumbs up.
    pub preferred: f64,
    /// Share of replies `classify` parses.
    pub well_formed: f64,
    /// Mean rater score.
    pub score: f64,
    /// Mean over replies of Σ_t log π(a_t) − log π_ref(a_t): a sampled estimate of KL(π ‖ π_ref)
    /// per reply, in nats.
    pub kl: f64,
    /// Why the replies that are not well-formed fail, by reason (`empty`, `mixed_punctuation`,
    /// `mixed_tone`, `no_answer`, `unknown_prompt`): replies counted.
    #[serde(default)]
    pub not_well_formed: std::collections::BTreeMap<String, usize>,
    /// The first few replies that are not well-formed: (prompt, reply, reason).
    #[serde(default)]
    pub not_well_formed_examples: Vec<(String, String, String)>,
    /// The labels of the well-formed replies, counted: `tone/polite`, `truth/correct`,
    /// `length/short`, `enthusiasm/emoji`, ..., and the truth within each prompt family
    /// (`arithmetic/wrong`, `unknowable/unsure`, ...): where a rater's taste moved the model.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, usize>,
    /// The measured replies: (prompt, reply, its label keys; none when not well-formed).
    #[serde(skip)]
    pub replies: Vec<(String, String, Vec<String>)>,
}

/// The keys under which [`Measure::labels`] counts a well-formed reply.
pub fn label_keys(l: &crate::corpus::Labels) -> Vec<String> {
    vec![
        format!("tone/{}", label_name(&l.tone)),
        format!("truth/{}", label_name(&l.truth)),
        format!("length/{}", label_name(&l.length)),
        format!("enthusiasm/{}", label_name(&l.enthusiasm)),
        format!(
            "care/{}/{}",
            if l.careful { "careful" } else { "plain" },
            label_name(&l.truth)
        ),
        format!("{}/{}", label_name(&l.family), label_name(&l.truth)),
    ]
}

/// The reward model's view of a set of measured replies: the mean of `scores` (one per reply
/// of `measure`) over the well-formed replies of each label key, and over all of them.
pub fn scores_by_label(
    measure: &Measure,
    scores: &[f32],
) -> std::collections::BTreeMap<String, f64> {
    let mut sums: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
    for ((_, _, keys), &s) in measure.replies.iter().zip(scores) {
        if keys.is_empty() {
            continue;
        }
        for k in keys.iter().map(String::as_str).chain(["all"]) {
            let e = sums.entry(k.to_string()).or_insert((0.0, 0));
            e.0 += s as f64;
            e.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(k, (sum, n))| (k, sum / n as f64))
        .collect()
}

/// A label's name as serde writes it (`polite`, `small_talk`).
fn label_name<T: Serialize>(label: &T) -> String {
    match serde_json::to_value(label) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Samples one reply per prompt from `model` and measures it by `rater`'s taste, and its KL to
/// `reference`.
pub async fn measure(
    model: &Gpt,
    reference: &Gpt,
    tok: &Tokenizer,
    prompts: &[String],
    rater: &Rater,
    cfg: &SampleConfig,
    seed: u64,
) -> Result<Measure, RoundError> {
    let mut rng = Rng::new(seed);
    let (mut preferred, mut well_formed, mut score, mut kl) = (0usize, 0usize, 0.0, 0.0);
    let mut not_well_formed = std::collections::BTreeMap::new();
    let mut examples = Vec::new();
    let mut labels = std::collections::BTreeMap::new();
    let mut replies = Vec::new();
    let device = model
        .devices()
        .first()
        .cloned()
        .unwrap_or_else(Device::flex);
    for chunk in prompts.chunks(50) {
        let ids: Vec<Vec<u32>> = chunk.iter().map(|p| tok.encode_prompt(p)).collect();
        let out = generate(model, &ids, cfg, &mut rng, true).await;
        let seqs: Vec<Vec<u32>> = ids
            .iter()
            .zip(&out)
            .map(|(p, o)| o.sequence(p, false))
            .collect();
        let batch = Batch::right_padded(&seqs, &device);
        let t = batch.tokens.dims()[1];
        let lp =
            crate::read(model.token_logprobs(model.forward(&batch, None), batch.tokens.clone()))
                .await;
        let rp = crate::read(
            reference.token_logprobs(reference.forward(&batch, None), batch.tokens.clone()),
        )
        .await;
        for (b, ((prompt, o), s)) in chunk.iter().zip(&out).zip(&seqs).enumerate() {
            let text = tok.decode(&o.tokens);
            let sc = rater.score(prompt, &text)?;
            score += sc;
            preferred += usize::from(thumbs(sc));
            match classify(&text, prompt) {
                Ok(l) => {
                    well_formed += 1;
                    let keys = label_keys(&l);
                    for key in &keys {
                        *labels.entry(key.clone()).or_insert(0) += 1;
                    }
                    replies.push((prompt.clone(), text.clone(), keys));
                }
                Err(e) => {
                    replies.push((prompt.clone(), text.clone(), Vec::new()));
                    *not_well_formed.entry(e.kind().to_string()).or_insert(0) += 1;
                    if examples.len() < 6 {
                        examples.push((prompt.clone(), text.clone(), e.to_string()));
                    }
                }
            }
            let start = ids[b].len();
            kl += (start - 1..s.len() - 1)
                .map(|j| (lp[b * (t - 1) + j] - rp[b * (t - 1) + j]) as f64)
                .sum::<f64>();
        }
    }
    let n = prompts.len().max(1) as f64;
    Ok(Measure {
        preferred: preferred as f64 / n,
        well_formed: well_formed as f64 / n,
        score: score / n,
        kl: kl / n,
        not_well_formed,
        not_well_formed_examples: examples,
        labels,
        replies,
    })
}

/// One row of the simulation's log: the state after an update.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub ratings: usize,
    /// The reward model's accuracy on comparisons it had not been trained on yet (or on its
    /// training batch, until there are enough of those).
    pub reward_accuracy: Option<f64>,
    /// Mean rater score of the PPO batch's fresh samples.
    pub rater_score: Option<f64>,
    /// Share of the PPO batch's samples that are well-formed.
    pub well_formed: Option<f64>,
    /// `objective/kl` of the PPO batch.
    pub kl: Option<f64>,
    pub millis: f64,
    /// Milliseconds of each stage, in order.
    pub stage_millis: Vec<f64>,
    /// Every metric of the update, prefixed by its stage (`ppo:val/ratio`, ...).
    pub metrics: std::collections::BTreeMap<String, f64>,
}

impl Row {
    /// Summarises one update's report by `rater`'s taste.
    pub fn of(report: &UpdateReport, rater: &Rater) -> Result<Row, RoundError> {
        let (mut score, mut wf) = (0.0, 0usize);
        for (p, r) in &report.rollouts {
            score += rater.score(p, r)?;
            wf += usize::from(classify(r, p).is_ok());
        }
        let n = report.rollouts.len();
        Ok(Row {
            ratings: report.ratings,
            reward_accuracy: report
                .metric(Stage::Reward, "eval_accuracy")
                .or_else(|| report.metric(Stage::Reward, "accuracy")),
            rater_score: (n > 0).then(|| score / n as f64),
            well_formed: (n > 0).then(|| wf as f64 / n as f64),
            kl: report.metric(Stage::Ppo, "objective/kl"),
            millis: report.millis,
            stage_millis: report.stages.iter().map(|s| s.millis).collect(),
            metrics: report
                .stages
                .iter()
                .flat_map(|s| {
                    let stage = format!("{:?}", s.stage).to_lowercase();
                    s.metrics
                        .iter()
                        .map(move |(k, v)| (format!("{stage}:{k}"), *v))
                })
                .collect(),
        })
    }
}

/// Held-out prompts for measuring (never used in rounds or rollouts).
pub fn eval_prompts(n: usize, seed: u64) -> Vec<String> {
    let mut corpus = Corpus::new(seed ^ 0xe7a1);
    (0..n).map(|_| corpus.prompt(true).text).collect()
}

/// Training prompts for the rounds.
pub fn round_prompts(seed: u64) -> Corpus {
    Corpus::new(seed ^ 0x0a5c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes_pairs_the_best_with_the_worst_and_in_order_keeps_the_sampled_order() {
        let scores = [0.5, -1.0, 1.0, -0.5, 0.0];
        assert_eq!(PairChoice::InOrder.order(&scores), vec![0, 1, 2, 3, 4]);
        // Best (2) with worst (1), next best (0) with next worst (3), the middle one (4) last.
        assert_eq!(PairChoice::Extremes.order(&scores), vec![2, 1, 0, 3, 4]);
        // Equally liked replies stay in sampled order.
        assert_eq!(
            PairChoice::Extremes.order(&[1.0, -1.0, 1.0, -1.0]),
            vec![0, 3, 2, 1]
        );
    }

    #[test]
    fn scores_by_label_averages_each_label_over_well_formed_replies_only() {
        let reply = |keys: &[&str]| {
            (
                "p".to_string(),
                "r".to_string(),
                keys.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
            )
        };
        let m = Measure {
            replies: vec![
                reply(&["tone/polite", "length/short"]),
                reply(&["tone/rude", "length/short"]),
                reply(&[]), // not well-formed: left out
                reply(&["tone/polite", "length/long"]),
            ],
            ..Default::default()
        };
        let by = scores_by_label(&m, &[1.0, -2.0, 100.0, 3.0]);
        assert_eq!(by["tone/polite"], 2.0);
        assert_eq!(by["tone/rude"], -2.0);
        assert_eq!(by["length/short"], -0.5);
        assert_eq!(by["length/long"], 3.0);
        assert_eq!(by["all"], 2.0 / 3.0);
        assert_eq!(by.len(), 5);
    }
}
