//! One function per command: read the parsed arguments, call the library, print.

use super::{
    BenchArgs, Cli, CompareArgs, EvalArgs, FeedbackArg, GenerateArgs, PairsArg, PretrainArgs,
    SimulateArgs, load, load_bytes,
};
use indicatif::{ProgressBar, ProgressStyle};
use rlhf_playground::checkpoint::{self, ModelMeta};
use rlhf_playground::corpus::{NotWellFormed, classify};
use rlhf_playground::model::GptConfig;
use rlhf_playground::pretrain::{PretrainConfig, pretrain as train_base};
use rlhf_playground::rater::Rater;
use rlhf_playground::rng::Rng;
use rlhf_playground::sample::generate as sample;
use rlhf_playground::session::{Method, Session, SessionConfig};
use rlhf_playground::simulate::{self, FeedbackKind, PairChoice, Progress, Simulation};
use rlhf_playground::tokenizer::Tokenizer;
use rlhf_playground::{bench as timing, block_on, eval as evaluate, settings};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

type Device = (burn::tensor::Device, &'static str);

pub fn pretrain(cli: &Cli, a: &PretrainArgs, (device, device_name): &Device) -> Result<(), String> {
    if a.steps == 0 || a.batch_size == 0 {
        return Err("--steps and --batch-size must be at least 1".into());
    }
    if !(a.arithmetic_weight > 0.0 && a.arithmetic_weight <= 100.0) {
        return Err(format!(
            "--arithmetic-weight must be above 0 and at most 100 (got {})",
            a.arithmetic_weight
        ));
    }
    if !(a.lr > 0.0 && a.lr < 1.0) {
        return Err(format!("--lr must be between 0 and 1 (got {})", a.lr));
    }
    let t0 = Instant::now();
    let tok = Tokenizer::train(768, 20_000, a.seed).map_err(|e| e.to_string())?;
    let cfg = PretrainConfig::new(GptConfig::new().with_vocab_size(tok.vocab_size()))
        .with_steps(a.steps)
        .with_batch_size(a.batch_size)
        .with_lr(a.lr)
        .with_reply_only(!a.whole_exchange)
        .with_arithmetic_weight(a.arithmetic_weight)
        .with_seed(a.seed);
    let bar = if cli.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(a.steps as u64)
    };
    let style = "{bar:40} {pos}/{len} steps  {msg}  [{elapsed} / ~{duration}]";
    bar.set_style(ProgressStyle::with_template(style).expect("template"));
    let (mut curve, mut recent) = (Vec::new(), Vec::new());
    let model = train_base(&cfg, &tok, device, |p| {
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
                    p.step, a.steps
                );
            }
        }
        bar.inc(1);
    });
    bar.finish();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let meta = ModelMeta {
        config: cfg.model.clone(),
        steps: a.steps,
        seed: a.seed,
        curve: curve.clone(),
        seconds: t0.elapsed().as_secs_f64(),
        machine: format!("{device_name}, {threads} threads"),
    };
    let weights = checkpoint::to_bytes(&model, true).map_err(|e| e.to_string())?;
    let out = &a.out;
    write_assets(out, &tok, &weights, &meta)?;
    let (_, loss, eval_loss) = curve.last().copied().unwrap_or_default();
    let params = model.num_parameters();
    if cli.json {
        let v = json!({"steps": a.steps, "seconds": meta.seconds, "loss": loss,
            "eval_loss": eval_loss, "params": params, "weights_bytes": weights.len(),
            "curve": curve});
        println!("{v}");
    } else {
        println!(
            "trained {params} parameters for {} steps in {:.0} s: loss {loss:.3}, held-out {eval_loss:.3}; wrote {} ({} KB)",
            a.steps,
            meta.seconds,
            out.display(),
            weights.len() / 1024
        );
    }
    Ok(())
}

/// Writes tokenizer.json, base.bpk and base.json into `out`, as the page and `--model` read them.
fn write_assets(
    out: &Path,
    tok: &Tokenizer,
    weights: &[u8],
    meta: &ModelMeta,
) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let p = out.join(name);
        std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))
    };
    write("tokenizer.json", tok.to_json().as_bytes())?;
    write("base.bpk", weights)?;
    let meta_json = serde_json::to_string_pretty(meta).expect("json");
    write("base.json", meta_json.as_bytes())
}

pub fn generate(cli: &Cli, a: &GenerateArgs, (device, name): &Device) -> Result<(), String> {
    if a.prompt.trim().is_empty() {
        return Err(
            "the prompt is empty: say something to the bot, e.g. --prompt \"what is 2 plus 2?\""
                .into(),
        );
    }
    if !(1..=64).contains(&a.n) {
        return Err(format!("-n must be between 1 and 64 (got {})", a.n));
    }
    let cfg = a.sampling.config()?;
    let (model, _, tok) = load(cli.model.as_ref(), device)?;
    let ids = tok.encode_prompt(&a.prompt);
    let limit = model.context() - 8;
    if ids.len() > limit {
        return Err(format!(
            "the prompt is {} tokens long; the model reads at most {limit} (about {} characters)",
            ids.len(),
            limit * 3
        ));
    }
    let mut rng = Rng::new(a.seed);
    let t0 = Instant::now();
    let replies = block_on(sample(&model, &vec![ids; a.n], &cfg, &mut rng, true));
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let rows: Vec<_> = replies
        .iter()
        .map(|r| {
            let text = tok.decode(&r.tokens);
            let labels = classify(&text, &a.prompt);
            (text, labels)
        })
        .collect();
    if cli.json {
        let replies: Vec<_> = rows
            .iter()
            .map(|(text, l)| match l {
                Ok(l) => json!({"reply": text, "well_formed": true, "labels": l}),
                Err(e) => json!({"reply": text, "well_formed": false, "why": e.to_string()}),
            })
            .collect();
        println!(
            "{}",
            json!({"prompt": a.prompt, "replies": replies, "ms": ms})
        );
        return Ok(());
    }
    for (i, (text, l)) in rows.iter().enumerate() {
        let tag = match l {
            Ok(l) => l.describe(", "),
            Err(NotWellFormed::UnknownPrompt) => "prompt outside the corpus".into(),
            Err(e) => format!("not well-formed: {e}"),
        };
        println!("{}. {text}\n   [{tag}]", i + 1);
    }
    println!("({} replies in {ms:.0} ms on {name})", a.n);
    Ok(())
}

pub fn eval(cli: &Cli, a: &EvalArgs, (device, _): &Device) -> Result<(), String> {
    if a.n == 0 {
        return Err("--n must be at least 1".into());
    }
    let cfg = a.sampling.config()?;
    let (model, _, tok) = load(cli.model.as_ref(), device)?;
    let t0 = Instant::now();
    let report = block_on(evaluate::evaluate(&model, &tok, a.n, 50, &cfg, a.seed));
    let seconds = t0.elapsed().as_secs_f64();
    if cli.json {
        let mut v = serde_json::to_value(&report).expect("json");
        v["seconds"] = json!(seconds);
        println!("{v}");
        return Ok(());
    }
    println!("{} replies to held-out prompts in {seconds:.0} s", a.n);
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
    Ok(())
}

/// The simulated person the arguments describe.
fn rater(a: &SimulateArgs) -> Result<Rater, String> {
    Ok(match (&a.rater, &a.grader_cmd, &a.grader_regex) {
        (Some(spec), _, _) => Rater::parse(spec).map_err(|e| format!("--rater: {e}"))?,
        (_, Some(cmd), _) => {
            if !(a.grader_timeout > 0.0 && a.grader_timeout <= 600.0) {
                return Err("--grader-timeout must be between 0 and 600 seconds".into());
            }
            Rater::Command {
                command: cmd.clone(),
                timeout: std::time::Duration::from_secs_f64(a.grader_timeout),
            }
        }
        (_, _, Some(re)) => Rater::regex(re).map_err(|e| format!("--grader-regex: {e}"))?,
        _ => unreachable!("clap requires one of them"),
    })
}

/// The simulation and the session settings that `a` asks for, checked.
fn simulation(a: &SimulateArgs) -> Result<(Simulation, SessionConfig), String> {
    let sim = Simulation {
        rater: rater(a)?,
        feedback: match a.feedback {
            FeedbackArg::Thumbs => FeedbackKind::Thumbs,
            FeedbackArg::Stars => FeedbackKind::Stars,
            FeedbackArg::Pairs => FeedbackKind::Pairs,
        },
        pairs: match a.pairs {
            PairsArg::InOrder => PairChoice::InOrder,
            PairsArg::Extremes => PairChoice::Extremes,
        },
        ratings: a.ratings,
        replies: a.replies,
        seed: a.seed,
        eval_prompts: a.eval_prompts,
    };
    sim.validate().map_err(|e| e.to_string())?;
    let method = a.method.iter().map(|m| format!("method={m}"));
    let sets: Vec<String> = method.chain(a.set.iter().cloned()).collect();
    let cfg = settings::assign(&SessionConfig::new().with_seed(a.seed), &sets)
        .map_err(|e| format!("--set {e}"))?;
    Ok((sim, cfg))
}

pub fn simulate(cli: &Cli, a: &SimulateArgs, (device, _): &Device) -> Result<(), String> {
    let (sim, cfg) = simulation(a)?;
    let (config, bytes, tok) = load_bytes(cli.model.as_ref())?;
    let session_method = cfg.method.name();
    let mut session = Session::new(cfg, tok, &config, &bytes, device).map_err(|e| e.to_string())?;
    let opt = |x: Option<f64>, scale: f64, prec: usize| {
        x.map_or("-".to_string(), |v| format!("{:.*}", prec, v * scale))
    };
    let show = |p: Progress<'_>| match p {
        _ if cli.json => {}
        Progress::Base(base) => {
            let pairs = match sim.feedback {
                FeedbackKind::Pairs => format!(" ({:?})", sim.pairs),
                _ => String::new(),
            };
            println!(
                "rater: {}, method: {}, feedback: {:?}{pairs}, {} replies a round, base model preferred rate {:.1}% on {} held-out prompts",
                sim.rater.describe(),
                session_method,
                sim.feedback,
                sim.replies,
                base.preferred * 100.0,
                sim.eval_prompts
            );
            println!(
                "{:>7} {:>8} {:>11} {:>7} {:>11} {:>8}",
                "ratings", "rm acc", "rater score", "KL", "well-formed", "ms"
            );
        }
        Progress::Row(row) => {
            let m = &row.metrics;
            let rater = m.rater.as_ref();
            println!(
                "{:>7} {:>8} {:>11} {:>7} {:>11} {:>8.0}",
                row.ratings,
                opt(m.reward_accuracy(), 100.0, 0),
                opt(rater.map(|r| r.score), 1.0, 2),
                opt(
                    m.ppo
                        .as_ref()
                        .map(|p| p.kl)
                        .or(m.direct.as_ref().and_then(|d| d.kl)),
                    1.0,
                    2
                ),
                opt(rater.map(|r| r.well_formed), 100.0, 0),
                row.millis
            );
            if let Some(why) = &row.rolled_back {
                println!("        rolled back: {why}; the model is as it was before this rating");
            }
        }
    };
    let report = block_on(simulate::run(&sim, &mut session, show)).map_err(|e| e.to_string())?;
    if cli.json {
        println!("{}", serde_json::to_string(&report).expect("json"));
        return Ok(());
    }
    println!(
        "\npreferred rate on {} held-out prompts: base {:.1}% -> tuned {:.1}%",
        sim.eval_prompts,
        report.base_rate * 100.0,
        report.tuned_rate * 100.0
    );
    println!(
        "well-formed: base {:.1}% -> tuned {:.1}%; KL(tuned || base) {:.2} nats per reply; {} ratings in {:.0} s",
        report.base_well_formed * 100.0,
        report.well_formed * 100.0,
        report.kl,
        report.ratings,
        report.seconds
    );
    if let Some(kept) = report.diversity_kept {
        println!(
            "diversity kept (the variety of what the rater does not judge): {:.0}%",
            kept * 100.0
        );
    }
    Ok(())
}

pub fn bench(cli: &Cli, a: &BenchArgs, (device, name): &Device) -> Result<(), String> {
    if a.steps == 0 || a.batch == 0 || a.updates == 0 {
        return Err("--steps, --batch and --updates must be at least 1".into());
    }
    let set = |cfg: &SessionConfig, sets: &[String]| {
        settings::assign(cfg, sets).map_err(|e| format!("--set {e}"))
    };
    let session = set(&SessionConfig::new(), &a.set)?;
    let timed = match a.timed_set.is_empty() {
        true => None,
        false => Some(set(&session, &a.timed_set)?),
    };
    let r = timing::run(
        &GptConfig::new(),
        a.batch,
        a.steps,
        a.updates,
        session,
        timed,
        device,
        name,
    );
    if cli.json {
        println!("{}", serde_json::to_string(&r).expect("json"));
        return Ok(());
    }
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
    Ok(())
}

pub fn compare(cli: &Cli, a: &CompareArgs, (device, _): &Device) -> Result<(), String> {
    let (sim, cfg) = simulation(&a.sim)?;
    let methods = a
        .methods
        .iter()
        .map(|m| {
            Method::from_name(m.trim()).ok_or_else(|| {
                format!("--methods: no method {m:?} (ppo, dpo, kto, grpo, bon, sft)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (config, bytes, tok) = load_bytes(cli.model.as_ref())?;
    let fresh = |method: Method| {
        Session::new(
            cfg.clone().with_method(method),
            tok.clone(),
            &config,
            &bytes,
            device,
        )
    };
    let mut session = fresh(cfg.method).map_err(|e| e.to_string())?;
    let bar = ProgressBar::new((sim.ratings * (1 + methods.len())) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} updates {msg}").expect("template"),
    );
    bar.set_message(format!("rating with {}", cfg.method.name()));
    let gathered = block_on(simulate::run(&sim, &mut session, |p| {
        if let Progress::Row(_) = p {
            bar.inc(1)
        }
    }))
    .map_err(|e| e.to_string())?;
    let comparer = simulate::Comparer::new(
        session.log.clone(),
        methods,
        Some(sim.rater.clone()),
        sim.eval_prompts,
        Vec::new(),
        sim.seed,
    )
    .map_err(|e| e.to_string())?;
    let fresh = |m: Method| fresh(m);
    let comparison = block_on(simulate::compare(comparer, fresh, |step| {
        if let simulate::CompareStep::Progress {
            method,
            index,
            rating,
            ratings,
            ..
        } = step
        {
            bar.set_message(format!("replaying through {}", method.name()));
            bar.set_position(((1 + index) * ratings + rating) as u64);
        }
    }))
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    if cli.json {
        println!("{}", serde_json::to_string(&comparison).expect("json"));
        return Ok(());
    }
    print_comparison(&sim, cfg.method, &gathered, &comparison);
    Ok(())
}

/// `compare`'s table: the run that gathered the ratings, then each method's replay.
fn print_comparison(
    sim: &Simulation,
    method: Method,
    gathered: &simulate::Report,
    comparison: &simulate::Comparison,
) {
    println!(
        "rater {}: {} {} ratings given to {} (seed {}); the base model's preferred rate {:.1}%, {:.1}% after rating with {}",
        sim.rater.describe(),
        comparison.ratings,
        format!("{:?}", sim.feedback).to_lowercase(),
        method.name(),
        sim.seed,
        gathered.base_rate * 100.0,
        gathered.tuned_rate * 100.0,
        method.name(),
    );
    println!("the same ratings replayed through each method from the base model:\n");
    println!(
        "{:<7} {:>10} {:>12} {:>6} {:>15} {:>10} {:>13}",
        "method", "preferred", "well-formed", "KL", "diversity kept", "ms/update", "ratings used"
    );
    for r in &comparison.methods {
        let used = match (r.used, r.unused) {
            (Some(u), Some(n)) => format!("{u} of {}", u + n),
            _ => "all".into(),
        };
        println!(
            "{:<7} {:>9.1}% {:>11.1}% {:>6.2} {:>15} {:>10.0} {:>13}",
            r.method.name(),
            r.preferred.unwrap_or(f64::NAN) * 100.0,
            r.well_formed * 100.0,
            r.kl,
            r.diversity_kept
                .map_or("-".into(), |d| format!("{:.0}%", d * 100.0)),
            r.millis_per_update,
            used
        );
    }
}
