//! Measuring a model's replies: sample replies to held-out prompts, classify each from its text,
//! report the well-formed rate and the attribute mixture beside the corpus's own.

use crate::corpus::{Corpus, Family, Labels, MixtureReport, Truth, classify, parse_prompt};
use crate::model::Gpt;
use crate::rng::Rng;
use crate::sample::{SampleConfig, generate};
use crate::tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

/// The outcome of an evaluation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalReport {
    /// Replies sampled.
    pub replies: usize,
    /// Fraction that [`classify`] parses.
    pub well_formed: f64,
    /// Mixture of the model's well-formed replies.
    pub model: MixtureReport,
    /// Mixture of the corpus's own replies to 20 000 held-out prompts (large, so that the gap
    /// below is the model's sampling noise and bias, not the corpus sample's).
    pub corpus: MixtureReport,
    /// Largest gap between the two mixtures, over all attribute values.
    pub max_gap: f64,
    /// Per family (in `Family::ALL` order): replies that were correct, wrong, unsure, and not
    /// well-formed. Shows which knowledge the model lacks (a low correct share on arithmetic
    /// means it has not learned the sums).
    pub truth_by_family: Vec<(Family, [usize; 4])>,
    /// The same counts for the careful persona's replies alone (correct, wrong, unsure; a
    /// reply that is not well-formed has no persona): what the model knows when it answers
    /// as carefully as the corpus lets it.
    pub careful_truth_by_family: Vec<(Family, [usize; 3])>,
    /// A few (prompt, reply, verdict) examples.
    pub examples: Vec<(String, String, String)>,
}

/// How many corpus replies the reference mixture is measured on.
pub const REFERENCE_SAMPLES: usize = 20_000;

/// Samples `n` replies (in batches of `batch`) to held-out prompts drawn from `seed`.
pub async fn evaluate(
    model: &Gpt,
    tok: &Tokenizer,
    n: usize,
    batch: usize,
    cfg: &SampleConfig,
    seed: u64,
) -> EvalReport {
    let mut corpus = Corpus::new(seed);
    let prompts: Vec<String> = (0..n).map(|_| corpus.prompt(true).text).collect();
    let reference: Vec<Labels> = (0..REFERENCE_SAMPLES)
        .map(|_| {
            let p = corpus.prompt(true);
            corpus.exchange_for(&p.text).expect("corpus prompt").labels
        })
        .collect();
    let mut rng = Rng::new(seed ^ 0xe7a1);
    let mut labels = Vec::new();
    let mut examples = Vec::new();
    let mut by_family = [[0usize; 4]; 6];
    let mut careful_by_family = [[0usize; 3]; 6];
    for chunk in prompts.chunks(batch.max(1)) {
        let ids: Vec<Vec<u32>> = chunk.iter().map(|p| tok.encode_prompt(p)).collect();
        let replies = generate(model, &ids, cfg, &mut rng, true).await;
        for (prompt, reply) in chunk.iter().zip(replies) {
            let text = tok.decode(&reply.tokens);
            let verdict = classify(&text, prompt);
            if examples.len() < 10 {
                let v = match &verdict {
                    Ok(l) => l.describe(" "),
                    Err(e) => format!("not well-formed: {e}"),
                };
                examples.push((prompt.clone(), text.clone(), v));
            }
            let family = parse_prompt(prompt).expect("corpus prompt").family();
            let column = match &verdict {
                Ok(l) => [Truth::Correct, Truth::Wrong, Truth::Unsure]
                    .iter()
                    .position(|t| *t == l.truth)
                    .unwrap_or(3),
                Err(_) => 3,
            };
            by_family[family as usize][column] += 1;
            if matches!(&verdict, Ok(l) if l.careful) {
                careful_by_family[family as usize][column] += 1;
            }
            if let Ok(l) = verdict {
                labels.push(l);
            }
        }
    }
    let model_mix = MixtureReport::of(&labels);
    let corpus_mix = MixtureReport::of(&reference);
    EvalReport {
        replies: n,
        well_formed: labels.len() as f64 / n.max(1) as f64,
        max_gap: model_mix.max_gap(&corpus_mix),
        model: model_mix,
        corpus: corpus_mix,
        truth_by_family: Family::ALL
            .iter()
            .map(|f| (*f, by_family[*f as usize]))
            .collect(),
        careful_truth_by_family: Family::ALL
            .iter()
            .map(|f| (*f, careful_by_family[*f as usize]))
            .collect(),
        examples,
    }
}
