//! Measuring a model by a rater's taste: one reply per held-out prompt, with the share the
//! rater likes, the share that is well-formed, the labels of the replies and the KL to the
//! reference.

use crate::corpus::classify;
use crate::error::Result;
use crate::model::{Batch, Gpt};
use crate::rater::{Rater, thumbs};
use crate::rng::Rng;
use crate::sample::{SampleConfig, generate};
use crate::tokenizer::Tokenizer;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

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

/// The attributes of style whose spread [`diversity_kept`] compares, with how many values each
/// takes. Truth is not among them: a model that stops saying false things has lost nothing
/// worth keeping.
pub const STYLE_ATTRIBUTES: [(&str, usize); 3] = [("tone", 3), ("length", 2), ("enthusiasm", 3)];

/// Normalised entropy of `attribute` over the well-formed replies of `m`: H / ln(values), 0 when
/// every reply has the same value, 1 when the values are equally common.
pub fn normalised_entropy(m: &Measure, attribute: &str, values: usize) -> f64 {
    let prefix = format!("{attribute}/");
    let counts: Vec<f64> = m
        .labels
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, &n)| n as f64)
        .collect();
    let total: f64 = counts.iter().sum();
    if total == 0.0 || values < 2 {
        return 0.0;
    }
    let h: f64 = counts
        .iter()
        .filter(|&&n| n > 0.0)
        .map(|&n| -(n / total) * (n / total).ln())
        .sum();
    // H ≥ 0; a single value gives −0, printed "-0%" without the abs.
    h.abs() / (values as f64).ln()
}

/// Diversity kept: how much of the base model's variety in the attributes the rater does not
/// judge (`judged`; `None` when it cannot tell, and then every attribute counts) the tuned
/// model still has. The mean over those attributes of the tuned model's normalised entropy
/// over the base model's, each capped at 1; attributes the base model never varied are left
/// out. `None` when no attribute is left to compare.
pub fn diversity_kept(base: &Measure, tuned: &Measure, judged: Option<&[&str]>) -> Option<f64> {
    let kept: Vec<f64> = STYLE_ATTRIBUTES
        .iter()
        .filter(|(a, _)| !judged.is_some_and(|j| j.contains(a)))
        .filter_map(|&(a, k)| {
            let b = normalised_entropy(base, a, k);
            (b > 0.0).then(|| (normalised_entropy(tuned, a, k) / b).min(1.0))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.iter().sum::<f64>() / kept.len() as f64)
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
) -> Result<Measure> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn diversity_kept_compares_the_spread_of_what_the_rater_does_not_judge() {
        let with = |pairs: &[(&str, usize)]| Measure {
            labels: pairs.iter().map(|&(k, n)| (k.to_string(), n)).collect(),
            ..Default::default()
        };
        // Base: tone evenly spread over 3 values, length 50/50, enthusiasm all plain.
        let base = with(&[
            ("tone/polite", 10),
            ("tone/neutral", 10),
            ("tone/rude", 10),
            ("length/short", 15),
            ("length/long", 15),
            ("enthusiasm/plain", 30),
        ]);
        assert!((normalised_entropy(&base, "tone", 3) - 1.0).abs() < 1e-12);
        assert!((normalised_entropy(&base, "length", 2) - 1.0).abs() < 1e-12);
        assert_eq!(normalised_entropy(&base, "enthusiasm", 3), 0.0);
        // Tuned: all polite; length 3:1; still all plain.
        let tuned = with(&[
            ("tone/polite", 20),
            ("length/short", 15),
            ("length/long", 5),
            ("enthusiasm/plain", 20),
        ]);
        // H(3/4, 1/4) / ln 2, by hand.
        let h = -(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln()) / 2f64.ln();
        assert!((h - 0.811_278_124_459_132_8).abs() < 1e-12);
        // A tone rater: only length counts (enthusiasm never varied).
        let kept = diversity_kept(&base, &tuned, Some(&["tone"])).unwrap();
        assert!((kept - h).abs() < 1e-12, "{kept}");
        // A rater that cannot say: tone (lost entirely) and length count.
        let kept = diversity_kept(&base, &tuned, None).unwrap();
        assert!((kept - h / 2.0).abs() < 1e-12, "{kept}");
        // Nothing left to compare.
        assert_eq!(
            diversity_kept(&base, &tuned, Some(&["tone", "length"])),
            None
        );
        // More spread than the base counts as all kept.
        assert_eq!(diversity_kept(&tuned, &base, Some(&["tone"])), Some(1.0));
    }
}
