//! The native command line: pretrain the base model, generate, evaluate, simulate, benchmark.

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rlhf_playground::checkpoint::{self, ModelMeta};
use rlhf_playground::corpus::classify;
use rlhf_playground::model::{Gpt, GptConfig};
use rlhf_playground::ppo::PpoConfig;
use rlhf_playground::pretrain::{PretrainConfig, pretrain};
use rlhf_playground::rater::{Rater, Taste};
use rlhf_playground::reward::RewardConfig;
use rlhf_playground::rng::Rng;
use rlhf_playground::sample::{SampleConfig, generate};
use rlhf_playground::session::{Session, SessionConfig};
use rlhf_playground::sft::SftConfig;
use rlhf_playground::simulate::{self, FeedbackKind};
use rlhf_playground::tokenizer::Tokenizer;
use rlhf_playground::{bench, block_on, eval};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

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
enum RaterArg {
    Polite,
    Truthful,
    Short,
    Cheerful,
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
    Pretrain {
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
    },
    /// Sample replies from the base model.
    ///
    /// Example: rlhf-playground generate --prompt "what is 2 plus 2?" -n 4
    Generate {
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
    },
    /// Measure the base model on replies to held-out prompts: well-formed rate and the
    /// mixture of tone, care, truth, length and enthusiasm beside the corpus's.
    Eval {
        /// Replies to sample.
        #[arg(long, default_value_t = 500)]
        n: usize,
        /// Seed of the prompts and the sampler.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[command(flatten)]
        sampling: SamplingArgs,
    },
    /// Run the RLHF loop with a simulated person: each round, sample replies to a corpus
    /// prompt, the rater gives feedback, and every piece of feedback runs one update (SFT,
    /// reward model, PPO). Prints a row per update, then the rater's preferred rate for the
    /// base model and the tuned one on held-out prompts.
    ///
    /// Example: rlhf-playground simulate --rater polite --ratings 40 --feedback thumbs
    #[command(group(clap::ArgGroup::new("who").required(true).args(["rater", "grader_cmd", "grader_regex"])))]
    Simulate {
        /// A built-in rater: likes polite, truthful, short or cheerful replies.
        #[arg(long, value_enum)]
        rater: Option<RaterArg>,
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
        /// Change a session setting, e.g. --set ppo.lr=3e-4 --set reward.steps=8 (names as in
        /// SessionConfig; repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Time a training step (forward, backward, AdamW) and sampling with and without the
    /// key/value cache, for the default model.
    Bench {
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
    },
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

/// Applies `key=value` settings (dotted paths into the session's configuration) and checks
/// that the result still reads as a configuration.
fn apply_settings(cfg: SessionConfig, sets: &[String]) -> Result<SessionConfig, String> {
    let mut v = serde_json::to_value(&cfg).map_err(|e| e.to_string())?;
    for set in sets {
        let (key, value) = set
            .split_once('=')
            .ok_or_else(|| format!("--set {set}: expected KEY=VALUE, e.g. ppo.lr=3e-4"))?;
        let mut slot = &mut v;
        for part in key.trim().split('.') {
            slot = slot
                .get_mut(part)
                .filter(|_| !part.is_empty())
                .ok_or_else(|| format!("--set {set}: no setting named {key:?}"))?;
        }
        let value: serde_json::Value = serde_json::from_str(value.trim())
            .map_err(|_| format!("--set {set}: {value:?} is not a number or true/false"))?;
        if slot.is_object() || std::mem::discriminant(slot) != std::mem::discriminant(&value) {
            return Err(format!("--set {set}: {key} takes a value like {slot}"));
        }
        *slot = value;
    }
    let cfg: SessionConfig = serde_json::from_value(v).map_err(|e| format!("--set: {e}"))?;
    cfg.validate().map_err(|e| format!("--set: {e}"))?;
    Ok(cfg)
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
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

fn run(cli: &Cli) -> Result<(), String> {
    let (device, device_name) = device(cli.device)?;
    match &cli.command {
        Command::Pretrain {
            steps,
            batch_size,
            seed,
            lr,
            whole_exchange,
            arithmetic_weight,
            out,
        } => {
            if *steps == 0 || *batch_size == 0 {
                return Err("--steps and --batch-size must be at least 1".into());
            }
            if !(*arithmetic_weight > 0.0 && *arithmetic_weight <= 100.0) {
                return Err(format!(
                    "--arithmetic-weight must be above 0 and at most 100 (got {arithmetic_weight})"
                ));
            }
            if !(*lr > 0.0 && *lr < 1.0) {
                return Err(format!("--lr must be between 0 and 1 (got {lr})"));
            }
            let t0 = Instant::now();
            let tok = Tokenizer::train(768, 20_000, *seed).map_err(|e| e.to_string())?;
            let cfg = PretrainConfig::new(GptConfig::new().with_vocab_size(tok.vocab_size()))
                .with_steps(*steps)
                .with_batch_size(*batch_size)
                .with_lr(*lr)
                .with_reply_only(!*whole_exchange)
                .with_arithmetic_weight(*arithmetic_weight)
                .with_seed(*seed);
            let bar = if cli.json {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(*steps as u64)
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} steps  {msg}  [{elapsed} / ~{duration}]",
                )
                .expect("template"),
            );
            let mut curve = Vec::new();
            let mut recent = Vec::new();
            let model = pretrain(&cfg, &tok, &device, |p| {
                recent.push(p.loss);
                if let Some(eval) = p.eval_loss {
                    let mean = recent.iter().sum::<f64>() / recent.len() as f64;
                    curve.push((p.step, mean, eval));
                    recent.clear();
                    bar.set_message(format!("loss {mean:.3}  held-out {eval:.3}"));
                    if bar.is_hidden() {
                        // No terminal (a log, CI): one line per measurement instead of a bar.
                        eprintln!(
                            "step {:>5}/{}  loss {mean:.3}  held-out {eval:.3}",
                            p.step, steps
                        );
                    }
                }
                bar.inc(1);
            });
            bar.finish();
            std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
            let meta = ModelMeta {
                config: cfg.model.clone(),
                steps: *steps,
                seed: *seed,
                curve: curve.clone(),
                seconds: t0.elapsed().as_secs_f64(),
                machine: format!(
                    "{device_name}, {} threads",
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                ),
            };
            let weights = checkpoint::to_bytes(&model, true).map_err(|e| e.to_string())?;
            let write = |name: &str, bytes: &[u8]| {
                let p = out.join(name);
                std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))
            };
            write("tokenizer.json", tok.to_json().as_bytes())?;
            write("base.bpk", &weights)?;
            write(
                "base.json",
                serde_json::to_string_pretty(&meta)
                    .expect("json")
                    .as_bytes(),
            )?;
            let last = curve.last().copied().unwrap_or_default();
            if cli.json {
                println!(
                    "{}",
                    json!({"steps": steps, "seconds": meta.seconds, "loss": last.1, "eval_loss": last.2,
                    "params": model.num_parameters(), "weights_bytes": weights.len(), "curve": curve})
                );
            } else {
                println!(
                    "trained {} parameters for {steps} steps in {:.0} s: loss {:.3}, held-out {:.3}; wrote {} ({} KB)",
                    model.num_parameters(),
                    meta.seconds,
                    last.1,
                    last.2,
                    out.display(),
                    weights.len() / 1024
                );
            }
        }
        Command::Generate {
            prompt,
            n,
            sampling,
            seed,
        } => {
            if prompt.trim().is_empty() {
                return Err("the prompt is empty: say something to the bot, e.g. --prompt \"what is 2 plus 2?\"".into());
            }
            if !(1..=64).contains(n) {
                return Err(format!("-n must be between 1 and 64 (got {n})"));
            }
            let cfg = sampling.config()?;
            let (model, _, tok) = load(cli.model.as_ref(), &device)?;
            let ids = tok.encode_prompt(prompt);
            let limit = model.context() - 8;
            if ids.len() > limit {
                return Err(format!(
                    "the prompt is {} tokens long; the model reads at most {limit} (about {} characters)",
                    ids.len(),
                    limit * 3
                ));
            }
            let mut rng = Rng::new(*seed);
            let t0 = Instant::now();
            let replies = block_on(generate(&model, &vec![ids; *n], &cfg, &mut rng, true));
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let rows: Vec<_> = replies
                .iter()
                .map(|r| {
                    let text = tok.decode(&r.tokens);
                    let labels = classify(&text, prompt);
                    (text, labels)
                })
                .collect();
            if cli.json {
                let replies: Vec<_> = rows
                    .iter()
                    .map(|(text, l)| match l {
                        Ok(l) => json!({"reply": text, "well_formed": true, "labels": l}),
                        Err(e) => {
                            json!({"reply": text, "well_formed": false, "why": e.to_string()})
                        }
                    })
                    .collect();
                println!(
                    "{}",
                    json!({"prompt": prompt, "replies": replies, "ms": ms})
                );
            } else {
                for (i, (text, l)) in rows.iter().enumerate() {
                    let tag = match l {
                        Ok(l) => l.describe(", "),
                        Err(rlhf_playground::corpus::NotWellFormed::UnknownPrompt) => {
                            "prompt outside the corpus".into()
                        }
                        Err(e) => format!("not well-formed: {e}"),
                    };
                    println!("{}. {text}\n   [{tag}]", i + 1);
                }
                println!("({n} replies in {ms:.0} ms on {device_name})");
            }
        }
        Command::Eval { n, seed, sampling } => {
            if *n == 0 {
                return Err("--n must be at least 1".into());
            }
            let cfg = sampling.config()?;
            let (model, _, tok) = load(cli.model.as_ref(), &device)?;
            let t0 = Instant::now();
            let report = block_on(eval::evaluate(&model, &tok, *n, 50, &cfg, *seed));
            if cli.json {
                let mut v = serde_json::to_value(&report).expect("json");
                v["seconds"] = json!(t0.elapsed().as_secs_f64());
                println!("{v}");
            } else {
                println!(
                    "{} replies to held-out prompts in {:.0} s",
                    n,
                    t0.elapsed().as_secs_f64()
                );
                println!("well-formed: {:.1}%\n", report.well_formed * 100.0);
                println!("{:<12} {:>7} {:>7}", "value", "model", "corpus");
                for ((name, m), (_, c)) in report.model.rows().iter().zip(report.corpus.rows()) {
                    println!("{name:<12} {:>6.1}% {:>6.1}%", m * 100.0, c * 100.0);
                }
                println!("\nlargest gap: {:.1} points\n", report.max_gap * 100.0);
                println!(
                    "{:<12} {:>8} {:>6} {:>7} {:>10}",
                    "family", "correct", "wrong", "unsure", "malformed"
                );
                for (family, [c, w, u, m]) in &report.truth_by_family {
                    println!("{:<12} {c:>8} {w:>6} {u:>7} {m:>10}", format!("{family:?}"));
                }
                println!("\nthe careful persona's replies alone:");
                for (family, [c, w, u]) in &report.careful_truth_by_family {
                    println!("{:<12} {c:>8} {w:>6} {u:>7}", format!("{family:?}"));
                }
            }
        }
        Command::Simulate {
            rater,
            grader_cmd,
            grader_regex,
            grader_timeout,
            ratings,
            feedback,
            replies,
            pairs,
            seed,
            eval_prompts,
            set,
        } => {
            let pairs = match pairs {
                PairsArg::InOrder => simulate::PairChoice::InOrder,
                PairsArg::Extremes => simulate::PairChoice::Extremes,
            };
            let rater = match (rater, grader_cmd, grader_regex) {
                (Some(r), _, _) => Rater::Taste(match r {
                    RaterArg::Polite => Taste::Polite,
                    RaterArg::Truthful => Taste::Truthful,
                    RaterArg::Short => Taste::Short,
                    RaterArg::Cheerful => Taste::Cheerful,
                }),
                (_, Some(cmd), _) => {
                    if !(*grader_timeout > 0.0 && *grader_timeout <= 600.0) {
                        return Err("--grader-timeout must be between 0 and 600 seconds".into());
                    }
                    Rater::Command {
                        command: cmd.clone(),
                        timeout: std::time::Duration::from_secs_f64(*grader_timeout),
                    }
                }
                (_, _, Some(re)) => Rater::regex(re).map_err(|e| format!("--grader-regex: {e}"))?,
                _ => unreachable!("clap requires one of them"),
            };
            if !(1..=10_000).contains(ratings) {
                return Err(format!(
                    "--ratings must be between 1 and 10000 (got {ratings})"
                ));
            }
            // Two at least: a pair needs two replies.
            if !(2..=Session::MAX_REPLIES).contains(replies) {
                return Err(format!(
                    "--replies must be between 2 and {} (got {replies})",
                    Session::MAX_REPLIES
                ));
            }
            if !(1..=5_000).contains(eval_prompts) {
                return Err(format!(
                    "--eval-prompts must be between 1 and 5000 (got {eval_prompts})"
                ));
            }
            let kind = match feedback {
                FeedbackArg::Thumbs => FeedbackKind::Thumbs,
                FeedbackArg::Stars => FeedbackKind::Stars,
                FeedbackArg::Pairs => FeedbackKind::Pairs,
            };
            let cfg = apply_settings(
                SessionConfig::new(SftConfig::new(), RewardConfig::new(), PpoConfig::new())
                    .with_seed(*seed),
                set,
            )?;
            let (config, bytes, tok) = load_bytes(cli.model.as_ref())?;
            let mut session =
                Session::new(cfg, tok, &config, &bytes, &device).map_err(|e| e.to_string())?;
            let t0 = Instant::now();
            let prompts = simulate::eval_prompts(*eval_prompts, *seed);
            let sample = session.cfg.sample.clone();
            let measure = |s: &Session| {
                block_on(simulate::measure(
                    &s.policy(),
                    s.reference(),
                    s.tokenizer(),
                    &prompts,
                    &rater,
                    &sample,
                    *seed ^ 0x3ea5,
                ))
                .map_err(|e| e.to_string())
            };
            let base = measure(&session)?;
            if !cli.json {
                println!(
                    "rater: {}, feedback: {:?}{}, {replies} replies a round, base model preferred rate {:.1}% on {} held-out prompts",
                    rater.describe(),
                    kind,
                    if kind == FeedbackKind::Pairs {
                        format!(" ({pairs:?})")
                    } else {
                        String::new()
                    },
                    base.preferred * 100.0,
                    eval_prompts
                );
                println!(
                    "{:>7} {:>8} {:>11} {:>7} {:>11} {:>8}",
                    "ratings", "rm acc", "rater score", "KL", "well-formed", "ms"
                );
            }
            let opt = |x: Option<f64>, scale: f64, prec: usize| {
                x.map_or("-".to_string(), |v| format!("{:.*}", prec, v * scale))
            };
            let mut corpus = simulate::round_prompts(*seed);
            let mut rows = Vec::new();
            let mut given = 0;
            'rounds: while given < *ratings {
                let prompt = corpus.prompt(false).text;
                let fbs = block_on(simulate::round(
                    &mut session,
                    &rater,
                    kind,
                    pairs,
                    &prompt,
                    *replies,
                ))
                .map_err(|e| e.to_string())?;
                for fb in fbs {
                    session.record(fb).map_err(|e| e.to_string())?;
                    let report = block_on(session.update()).expect("an update ran");
                    let row = simulate::Row::of(&report, &rater).map_err(|e| e.to_string())?;
                    if !cli.json {
                        println!(
                            "{:>7} {:>8} {:>11} {:>7} {:>11} {:>8.0}",
                            row.ratings,
                            opt(row.reward_accuracy, 100.0, 0),
                            opt(row.rater_score, 1.0, 2),
                            opt(row.kl, 1.0, 2),
                            opt(row.well_formed, 100.0, 0),
                            row.millis
                        );
                    }
                    rows.push(row);
                    given += 1;
                    if given == *ratings {
                        break 'rounds;
                    }
                }
            }
            let tuned = measure(&session)?;
            // What the reward model learnt to reward, on replies it was never fitted on: its
            // scores of the base model's held-out replies, by label.
            let texts: Vec<(String, String)> = base
                .replies
                .iter()
                .map(|(p, r, _)| (p.clone(), r.clone()))
                .collect();
            let reward_by_label =
                simulate::scores_by_label(&base, &block_on(session.reward_scores(&texts)));
            let seconds = t0.elapsed().as_secs_f64();
            if cli.json {
                println!(
                    "{}",
                    json!({
                        "rater": rater.describe(),
                        "feedback": kind,
                        "pairs": pairs,
                        "replies_per_round": replies,
                        "seed": seed,
                        "ratings": given,
                        "base_rate": base.preferred,
                        "tuned_rate": tuned.preferred,
                        "well_formed": tuned.well_formed,
                        "base_well_formed": base.well_formed,
                        "kl": tuned.kl,
                        "base": base,
                        "tuned": tuned,
                        "reward_by_label": reward_by_label,
                        "seconds": seconds,
                        "rows": rows,
                    })
                );
            } else {
                println!(
                    "\npreferred rate on {eval_prompts} held-out prompts: base {:.1}% -> tuned {:.1}%",
                    base.preferred * 100.0,
                    tuned.preferred * 100.0
                );
                println!(
                    "well-formed: base {:.1}% -> tuned {:.1}%; KL(tuned || base) {:.2} nats per reply; {given} ratings in {seconds:.0} s",
                    base.well_formed * 100.0,
                    tuned.well_formed * 100.0,
                    tuned.kl
                );
            }
        }
        Command::Bench {
            steps,
            batch,
            updates,
            set,
            timed_set,
        } => {
            if *steps == 0 || *batch == 0 || *updates == 0 {
                return Err("--steps, --batch and --updates must be at least 1".into());
            }
            let session = apply_settings(
                SessionConfig::new(SftConfig::new(), RewardConfig::new(), PpoConfig::new()),
                set,
            )?;
            let timed = if timed_set.is_empty() {
                None
            } else {
                Some(apply_settings(session.clone(), timed_set)?)
            };
            let r = bench::run(
                &GptConfig::new(),
                *batch,
                *steps,
                *updates,
                session,
                timed,
                &device,
                device_name,
            );
            if cli.json {
                println!("{}", serde_json::to_string(&r).expect("json"));
            } else {
                println!("device            {}", r.device);
                println!("parameters        {}", r.params);
                println!(
                    "train step        {:.1} ms  (batch {} x {} tokens)",
                    r.train_step_ms, r.batch, r.context
                );
                println!(
                    "train throughput  {:.0} tokens/s, {:.2} GFLOP/s",
                    r.train_tokens_per_s, r.train_gflops
                );
                println!(
                    "sampling          {:.0} tokens/s with KV cache, {:.0} without",
                    r.gen_tokens_per_s_cache, r.gen_tokens_per_s_no_cache
                );
                let u = &r.update;
                println!(
                    "one RLHF update   {:.0} ms after {} ratings (median of {}): SFT {:.0}, reward model {:.0}, PPO rollout {:.0} + epochs {:.0}, samples {:.0}",
                    u.total_ms,
                    u.history,
                    u.updates,
                    u.sft_ms,
                    u.reward_ms,
                    u.ppo_rollout_ms,
                    u.ppo_train_ms,
                    u.samples_ms
                );
            }
        }
    }
    Ok(())
}
