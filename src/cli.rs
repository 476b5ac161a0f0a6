//! The native command line: pretrain the base model, generate, evaluate, simulate, benchmark.

mod commands;

use clap::{Parser, Subcommand, ValueEnum};
use rlhf_playground::checkpoint::{self, ModelMeta};
use rlhf_playground::model::{Gpt, GptConfig};
use rlhf_playground::sample::SampleConfig;
use rlhf_playground::tokenizer::Tokenizer;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// RLHF Playground: a small GPT that learns from ratings.
///
/// The base model ships with the project (www/assets/base.bpk), so `generate` works at once.
/// Replies vary in tone (polite/neutral/rude), truth (correct/wrong/unsure), length and
/// enthusiasm: the raw material that reinforcement learning from human feedback shapes.
#[derive(Parser)]
#[command(name = "rlhf-playground", version, about, long_about)]
struct Cli {
    /// Where tensors run: `cpu` (burn flex, everywhere) or `gpu` (burn wgpu; needs a build
    /// with `--features gpu` and a Vulkan/Metal/DX12 adapter).
    #[arg(long, global = true, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Print one machine-readable JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Load the model from this folder (tokenizer.json, base.json, base.bpk, as `pretrain`
    /// writes them) instead of the one built into the binary.
    #[arg(long, global = true, value_name = "DIR")]
    model: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum FeedbackArg {
    Thumbs,
    Stars,
    Pairs,
}

#[derive(Clone, Copy, ValueEnum)]
enum PairsArg {
    /// The first reply with the second, the third with the fourth.
    InOrder,
    /// The best with the worst, then the two in between.
    Extremes,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Cpu,
    Gpu,
}

#[derive(Subcommand)]
enum Command {
    /// Train the tokenizer and the base model from a fixed seed and write them under
    /// www/assets/ (about 40 minutes on 2 CPU cores).
    ///
    /// Example: rlhf-playground pretrain --steps 6000
    Pretrain(PretrainArgs),
    /// Sample replies from the base model.
    ///
    /// Example: rlhf-playground generate --prompt "what is 2 plus 2?" -n 4
    Generate(GenerateArgs),
    /// Measure the base model on replies to held-out prompts: well-formed rate and the
    /// mixture of tone, care, truth, length and enthusiasm beside the corpus's.
    Eval(EvalArgs),
    /// Run the RLHF loop with a simulated person: each round, sample replies to a corpus
    /// prompt, the rater gives feedback, and every piece of feedback runs one update (SFT,
    /// reward model, PPO). Prints a row per update, then the rater's preferred rate for the
    /// base model and the tuned one on held-out prompts.
    ///
    /// Example: rlhf-playground simulate --rater polite --ratings 40 --feedback thumbs
    Simulate(SimulateArgs),
    /// The methods side by side: a simulated person rates as in `simulate` (the session
    /// training with --method, PPO by default), then the same ratings are replayed through
    /// each method from the base model. Prints each one's preferred rate, well-formed share,
    /// KL to the base model, diversity kept, time per update and the ratings it could use.
    ///
    /// Example: rlhf-playground compare --rater polite+short --ratings 30
    Compare(CompareArgs),
    /// Time a training step (forward, backward, AdamW) and sampling with and without the
    /// key/value cache, for the default model.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct PretrainArgs {
    /// Optimiser steps.
    #[arg(long, default_value_t = 6000)]
    steps: usize,
    /// Exchanges per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Seed of the corpus and the initial weights.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Peak learning rate (AdamW, after a linear warm-up, cosine decay to a tenth).
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Predict the whole exchange, prompt included. The default predicts only the reply's
    /// tokens (the prompt is context, not a target), which measured closer to the corpus.
    #[arg(long)]
    whole_exchange: bool,
    /// Weight of arithmetic prompts in the training stream (facts 1.5, other families 1);
    /// the replies to each prompt follow the corpus whatever the weight.
    #[arg(long, default_value_t = 3.0)]
    arithmetic_weight: f64,
    /// Folder to write tokenizer.json, base.bpk and base.json into.
    #[arg(long, default_value = "www/assets")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// What the user says to the bot.
    #[arg(long)]
    prompt: String,
    /// How many replies (1-64).
    #[arg(short, long, default_value_t = 4)]
    n: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// Replies to sample.
    #[arg(long, default_value_t = 500)]
    n: usize,
    /// Seed of the prompts and the sampler.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[command(flatten)]
    sampling: SamplingArgs,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["rater", "grader_cmd", "grader_regex"])))]
struct SimulateArgs {
    /// A built-in rater: likes polite, truthful, short or cheerful replies. Join them with +
    /// (all must like a reply) and negate with !: polite+short, truthful+!cheerful.
    #[arg(long, value_name = "TASTE")]
    rater: Option<String>,
    /// A grader program: gets {"prompt": ..., "reply": ...} on stdin, prints a score
    /// between -1 and 1 (positive = a thumbs up).
    #[arg(long, value_name = "CMD")]
    grader_cmd: Option<String>,
    /// A regular expression: replies that match score +1, others -1.
    #[arg(long, value_name = "RE")]
    grader_regex: Option<String>,
    /// Seconds a grader program may take per reply.
    #[arg(long, default_value_t = 5.0)]
    grader_timeout: f64,
    /// Pieces of feedback to give (each runs one update).
    #[arg(long, default_value_t = 40)]
    ratings: usize,
    /// Kind of feedback: thumbs on each reply of a round, stars on each, or a preference
    /// on each pair of them.
    #[arg(long, value_enum, default_value_t = FeedbackArg::Thumbs)]
    feedback: FeedbackArg,
    /// Replies sampled per round (each a thumbs or stars rating; two make a pair).
    #[arg(long, default_value_t = 4)]
    replies: usize,
    /// Which replies of a round a pair compares: in sampled order, or the one the rater
    /// likes best with the one it likes least, then the two in between.
    #[arg(long, value_enum, default_value_t = PairsArg::InOrder)]
    pairs: PairsArg,
    /// Seed of the session, the rounds' prompts and the measurement.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Held-out prompts the preferred rate is measured on.
    #[arg(long, default_value_t = 200)]
    eval_prompts: usize,
    /// How the policy learns from the ratings after SFT: ppo (a reward model, then PPO), dpo
    /// (pairs, no reward model), kto (thumbs, no reward model), grpo (a reward model, then
    /// groups of replies compared), bon (a reward model, then SFT on the best of N replies) or
    /// sft (SFT alone). The same as --set method=….
    #[arg(long, value_name = "METHOD")]
    method: Option<String>,
    /// Change a session setting, e.g. --set ppo.lr=3e-4 --set reward.steps=8 (names as in
    /// SessionConfig; repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(clap::Args)]
struct CompareArgs {
    #[command(flatten)]
    sim: SimulateArgs,
    /// The methods to replay the ratings through, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ppo,dpo,kto,grpo,bon,sft"
    )]
    methods: Vec<String>,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Timed training steps (the median is reported).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Sequences per training step (each a full context of 64 tokens).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Timed full RLHF updates (after 20 ratings; the median is reported).
    #[arg(long, default_value_t = 5)]
    updates: usize,
    /// Change a session setting, as in `simulate --set`: for the 20 ratings before the
    /// timed updates and for the timed updates.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Change a session setting after the 20 ratings, for the timed updates only: the same
    /// history, so that two values are timed on the same policy.
    #[arg(long = "timed-set", value_name = "KEY=VALUE")]
    timed_set: Vec<String>,
}

/// How replies are sampled (shared by `generate` and `eval`).
#[derive(clap::Args)]
struct SamplingArgs {
    /// Sampling temperature: 0 = always the likeliest token, 1 = the model's distribution.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Sample only among the k likeliest tokens (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Sample only within the top-p probability mass (nucleus sampling, Holtzman et al. 2020).
    /// 0.95 drops the long tail of unlikely tokens that garbles a reply now and then; 1 samples
    /// the model's raw distribution.
    #[arg(long, default_value_t = 0.95)]
    top_p: f64,
}

impl SamplingArgs {
    fn config(&self) -> Result<SampleConfig, String> {
        if !(0.0..=10.0).contains(&self.temperature) {
            return Err(format!(
                "--temperature must be between 0 and 10 (got {})",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("--top-p must be in (0, 1] (got {})", self.top_p));
        }
        Ok(SampleConfig::new()
            .with_temperature(self.temperature)
            .with_top_k(self.top_k)
            .with_top_p(self.top_p))
    }
}

fn device(arg: DeviceArg) -> Result<(burn::tensor::Device, &'static str), String> {
    match arg {
        DeviceArg::Cpu => Ok((burn::tensor::Device::flex(), "cpu (burn flex)")),
        #[cfg(feature = "gpu")]
        DeviceArg::Gpu => Ok((
            burn::tensor::Device::wgpu(Default::default()),
            "gpu (burn wgpu)",
        )),
        #[cfg(not(feature = "gpu"))]
        DeviceArg::Gpu => Err("this binary was built without GPU support; rebuild with \
             `cargo build --release --features gpu`, or use --device cpu"
            .into()),
    }
}

fn load(
    dir: Option<&PathBuf>,
    device: &burn::tensor::Device,
) -> Result<(Gpt, ModelMeta, Tokenizer), String> {
    let Some(dir) = dir else {
        let (model, meta) = checkpoint::bundled(device).map_err(|e| e.to_string())?;
        return Ok((model, meta, Tokenizer::bundled()));
    };
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let tok =
        String::from_utf8(read("tokenizer.json")?).map_err(|e| format!("tokenizer.json: {e}"))?;
    let tok = Tokenizer::from_json(&tok).map_err(|e| e.to_string())?;
    let meta: ModelMeta =
        serde_json::from_slice(&read("base.json")?).map_err(|e| format!("base.json: {e}"))?;
    let model = checkpoint::from_bytes(&meta.config, &read("base.bpk")?, device)
        .map_err(|e| e.to_string())?;
    if model.vocab_size() != tok.vocab_size() {
        return Err(format!(
            "{}: the model and tokenizer.json disagree on the vocabulary",
            dir.display()
        ));
    }
    Ok((model, meta, tok))
}

/// The model's shape, weights and tokenizer, from `dir` or built in.
fn load_bytes(dir: Option<&PathBuf>) -> Result<(GptConfig, Vec<u8>, Tokenizer), String> {
    let Some(dir) = dir else {
        let meta: ModelMeta =
            serde_json::from_str(checkpoint::BUNDLED_META).map_err(|e| e.to_string())?;
        return Ok((
            meta.config,
            checkpoint::BUNDLED_WEIGHTS.to_vec(),
            Tokenizer::bundled(),
        ));
    };
    // Checks the folder the same way `load` does.
    let (_, meta, tok) = load(Some(dir), &burn::tensor::Device::flex())?;
    let p = dir.join("base.bpk");
    let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok((meta.config, bytes, tok))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = device(cli.device).and_then(|device| match &cli.command {
        Command::Pretrain(args) => commands::pretrain(&cli, args, &device),
        Command::Generate(args) => commands::generate(&cli, args, &device),
        Command::Eval(args) => commands::eval(&cli, args, &device),
        Command::Simulate(args) => commands::simulate(&cli, args, &device),
        Command::Compare(args) => commands::compare(&cli, args, &device),
        Command::Bench(args) => commands::bench(&cli, args, &device),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            if cli.json {
                println!("{}", json!({ "error": msg }));
            } else {
                eprintln!("error: {msg}");
            }
            ExitCode::from(2)
        }
    }
}
