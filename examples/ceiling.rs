//! The diversity a perfect learner would keep: the base model's own replies that a rater likes,
//! and how much of the base model's variety in what the rater does not judge is left among
//! them. A method that learnt a taste exactly, and nothing else, would reply like the base model
//! restricted to the liked replies (π_ref conditioned on "liked", the optimum of the
//! KL-regularised objective for a reward that only says liked or not); its `diversity_kept` is
//! this figure, not 1, whenever the base model's liked replies lean one way on an attribute the
//! rater never judged.
//!
//! Samples one reply to each of 4,000 held-out prompts from the bundled base model (as the page
//! and `simulate` sample: top-p 0.95) and prints, for each rater, its base rate, the ceiling of
//! diversity kept, and the unjudged attributes' shares among the liked replies.
//!
//! `cargo run --release --example ceiling` (about two minutes on 2 cores).

use burn::prelude::*;
use rlhf_playground::checkpoint;
use rlhf_playground::rater::{Rater, thumbs};
use rlhf_playground::session::SessionConfig;
use rlhf_playground::simulate::{Measure, STYLE_ATTRIBUTES, diversity_kept, eval_prompts, measure};
use rlhf_playground::tokenizer::Tokenizer;

const PROMPTS: usize = 4000;
const RATERS: [&str; 9] = [
    "polite",
    "truthful",
    "short",
    "cheerful",
    "polite+short",
    "polite+!cheerful",
    "short+!cheerful",
    "truthful+polite+short",
    "truthful+!cheerful",
];

fn main() {
    let device = Device::flex();
    let tok = Tokenizer::bundled();
    let (model, _) = checkpoint::bundled(&device).expect("the bundled model");
    let prompts = eval_prompts(PROMPTS, 1);
    let sample = SessionConfig::new().sample;
    let any = Rater::parse("polite").expect("a rater");
    let base = rlhf_playground::block_on(measure(&model, &model, &tok, &prompts, &any, &sample, 7))
        .expect("measured");
    println!(
        "{PROMPTS} base replies, {:.1}% well-formed\n",
        100.0 * base.well_formed
    );
    println!(
        "| rater | base rate | diversity kept at best | unjudged attributes among the liked replies |"
    );
    println!("|---|---|---|---|");
    for spec in RATERS {
        let rater = Rater::parse(spec).expect("a rater");
        let mut liked = Measure::default();
        let mut n = 0usize;
        for (prompt, reply, keys) in &base.replies {
            if !thumbs(rater.score(prompt, reply).expect("a score")) {
                continue;
            }
            n += 1;
            for key in keys {
                *liked.labels.entry(key.clone()).or_insert(0) += 1;
            }
        }
        let judged = rater.attributes();
        let kept = diversity_kept(&base, &liked, judged.as_deref());
        let shares: Vec<String> = STYLE_ATTRIBUTES
            .iter()
            .filter(|(a, _)| !judged.as_ref().is_some_and(|j| j.contains(a)))
            .map(|(a, _)| {
                let prefix = format!("{a}/");
                let values: Vec<(&String, &usize)> = liked
                    .labels
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .collect();
                let total: usize = values.iter().map(|(_, c)| **c).sum();
                let parts: Vec<String> = values
                    .iter()
                    .map(|(k, c)| {
                        format!(
                            "{} {:.0}%",
                            &k[prefix.len()..],
                            100.0 * **c as f64 / total.max(1) as f64
                        )
                    })
                    .collect();
                parts.join(", ")
            })
            .collect();
        println!(
            "| {spec} | {:.1}% | {} | {} |",
            100.0 * n as f64 / PROMPTS as f64,
            kept.map_or("-".into(), |k| format!("{k:.2}")),
            shares.join("; ")
        );
    }
}
