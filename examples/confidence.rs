//! How well the base model's own confidence tells the replies the truthful rater likes from those
//! it does not: the measurement behind `reward.confidence_weight` (docs/notebook/tuning.md, "The
//! reference's confidence").
//!
//! Samples 4 replies to each of 800 held-out corpus prompts from the bundled base model (as the
//! page and `simulate` sample: top-p 0.95), and reads each reply's confidence, the mean
//! log-probability the base model gives the reply's tokens and its `<|end|>`. Prints the mean
//! confidence by persona and truth, by length and by tone, and how often the reply with the
//! higher confidence is the one the truthful rater scores higher, over every two replies to
//! one prompt that the rater scores differently. Then the same agreement for the other tastes,
//! and for other summaries of the reply's log-probabilities (their least, their three least,
//! their sum) in place of the mean.
//!
//! `cargo run --release --example confidence` (about a minute on 2 cores).

use burn::prelude::*;
use rlhf_playground::checkpoint;
use rlhf_playground::corpus::{Corpus, Family, Labels, Truth, classify};
use rlhf_playground::model::Batch;
use rlhf_playground::rater::Taste;
use rlhf_playground::reward::{reference_confidence, reply_token_logprobs};
use rlhf_playground::rng::Rng;
use rlhf_playground::sample::{SampleConfig, generate};
use rlhf_playground::tokenizer::Tokenizer;
use std::collections::BTreeMap;

const PROMPTS: usize = 800;
const REPLIES: usize = 4;

struct Reply {
    labels: Option<Labels>,
    /// The score of each taste of [`Taste::ALL`].
    scores: Vec<f64>,
    confidence: f32,
    /// The other summaries of [`SUMMARIES`], in order.
    summaries: [f32; 3],
}

/// Other ways to sum a reply's token log-probabilities up than their mean.
const SUMMARIES: [&str; 3] = [
    "least log-prob",
    "mean of the 3 least",
    "sum (the reply's log-prob)",
];

/// The [`SUMMARIES`] of one reply's token log-probabilities.
fn summaries(row: &[f32]) -> [f32; 3] {
    if row.is_empty() {
        return [0.0; 3];
    }
    let mut sorted = row.to_vec();
    sorted.sort_by(f32::total_cmp);
    let least3 = &sorted[..sorted.len().min(3)];
    [
        sorted[0],
        least3.iter().sum::<f32>() / least3.len() as f32,
        row.iter().sum(),
    ]
}

/// How often, over every two replies to one prompt that `score` tells apart (and `keep`
/// keeps), the reply with the higher `key` is the one `score` prefers: (agreeing pairs, pairs).
fn agreement(
    groups: &[Vec<Reply>],
    score: &dyn Fn(&Reply) -> f64,
    key: &dyn Fn(&Reply) -> f32,
    keep: &dyn Fn(&Reply) -> bool,
) -> (usize, usize) {
    let (mut right, mut n) = (0, 0);
    for g in groups {
        for (i, a) in g.iter().enumerate() {
            for b in &g[i + 1..] {
                if score(a) == score(b) || !keep(a) || !keep(b) {
                    continue;
                }
                let (hi, lo) = if score(a) > score(b) { (a, b) } else { (b, a) };
                n += 1;
                right += (key(hi) > key(lo)) as usize;
            }
        }
    }
    (right, n)
}

fn main() {
    let device = Device::flex();
    let (model, _) = checkpoint::bundled(&device).expect("bundled base model");
    let tok = Tokenizer::bundled();
    let mut corpus = Corpus::new(777);
    let mut rng = Rng::new(99);
    let cfg = SampleConfig::new().with_top_p(0.95);
    let mut groups: Vec<Vec<Reply>> = Vec::new();
    for _ in 0..PROMPTS / 8 {
        let prompts: Vec<String> = (0..8).map(|_| corpus.prompt(true).text).collect();
        let ids: Vec<Vec<u32>> = prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(tok.encode_prompt(p), REPLIES))
            .collect();
        let out = rlhf_playground::block_on(generate(&model, &ids, &cfg, &mut rng, true));
        let seqs: Vec<Vec<u32>> = out
            .iter()
            .zip(&ids)
            .map(|(o, p)| o.sequence(p, true))
            .collect();
        let starts: Vec<usize> = ids.iter().map(Vec::len).collect();
        let batch = Batch::right_padded(&seqs, &device);
        let width = batch.tokens.dims()[1] - 1;
        let logprobs = model.token_logprobs(model.forward(&batch, None), batch.tokens.clone());
        let logprobs = rlhf_playground::block_on(rlhf_playground::read(logprobs));
        let confidence = reference_confidence(&logprobs, width, &seqs, &starts);
        let rows = reply_token_logprobs(&logprobs, width, &seqs, &starts);
        for (p, prompt) in prompts.iter().enumerate() {
            groups.push(
                (p * REPLIES..(p + 1) * REPLIES)
                    .map(|i| {
                        let text = tok.decode(&out[i].tokens);
                        Reply {
                            labels: classify(&text, prompt).ok(),
                            scores: Taste::ALL.iter().map(|t| t.score(prompt, &text)).collect(),
                            confidence: confidence[i],
                            summaries: summaries(rows[i]),
                        }
                    })
                    .collect(),
            );
        }
    }
    let replies: Vec<&Reply> = groups.iter().flatten().collect();
    let table = |title: &str, key: &dyn Fn(&Labels) -> String| {
        let mut by: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for r in &replies {
            let k = r.labels.as_ref().map_or("not well-formed".into(), key);
            let e = by.entry(k).or_default();
            e.0 += r.confidence as f64;
            e.1 += 1;
        }
        println!("{title}:");
        for (k, (sum, n)) in by {
            println!(
                "  {k:<28} {n:>5} replies  mean confidence {:.3}",
                sum / n as f64
            );
        }
    };
    let kind = |l: &Labels| {
        let truth = match l.truth {
            Truth::Correct => "correct",
            Truth::Wrong => "wrong",
            Truth::Unsure => "not sure",
        };
        let known = if l.family == Family::Unknowable {
            "unknowable"
        } else {
            "answerable"
        };
        let voice = if l.careful { "careful" } else { "plain" };
        format!("{voice}, {truth} ({known})")
    };
    table("By persona and truth", &kind);
    table("By length", &|l| format!("{:?}", l.length));
    table("By tone", &|l| format!("{:?}", l.tone));
    // Every two replies to one prompt that the rater scores differently.
    let truthful = Taste::ALL
        .iter()
        .position(|&t| t == Taste::Truthful)
        .expect("a taste");
    let all = |_: &Reply| true;
    let (right, n) = agreement(&groups, &|r| r.scores[truthful], &|r| r.confidence, &all);
    let plain = |r: &Reply| r.labels.as_ref().is_some_and(|l| !l.careful);
    let (plain_right, plain_n) =
        agreement(&groups, &|r| r.scores[truthful], &|r| r.confidence, &plain);
    println!(
        "The likelier reply is the one the truthful rater prefers: {right} of {n} pairs ({:.1}%); \
         when both are in the plain voice, {plain_right} of {plain_n} ({:.1}%).",
        100.0 * right as f64 / n as f64,
        100.0 * plain_right as f64 / plain_n as f64
    );
    println!("The likelier reply (by the mean) is the one each taste prefers:");
    for (t, taste) in Taste::ALL.iter().enumerate() {
        let (right, n) = agreement(&groups, &|r| r.scores[t], &|r| r.confidence, &all);
        println!(
            "  {:<9} {right:>5} of {n:>5} pairs ({:.1}%)",
            taste.name(),
            100.0 * right as f64 / n as f64
        );
    }
    println!("Other summaries of the reply's log-probabilities, for the truthful taste:");
    for (k, name) in SUMMARIES.iter().enumerate() {
        let (right, n) = agreement(&groups, &|r| r.scores[truthful], &|r| r.summaries[k], &all);
        println!(
            "  {name:<28} {right:>5} of {n:>5} pairs ({:.1}%)",
            100.0 * right as f64 / n as f64
        );
    }
}
