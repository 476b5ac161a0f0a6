//! End-to-end tests of the command line, on the committed base model.

use serde_json::Value;
use std::process::Command;

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rlhf-playground"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_line(stdout: &str) -> Value {
    let last = stdout.lines().last().expect("a line of output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

#[test]
fn generate_gives_well_formed_replies_to_the_readme_prompt() {
    let args = [
        "generate",
        "--prompt",
        "what is 2 plus 2?",
        "-n",
        "8",
        "--seed",
        "3",
        "--json",
    ];
    let (code, out, err) = cli(&args);
    assert_eq!(code, 0, "{err}");
    let v = json_line(&out);
    let replies = v["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 8);
    let good = replies.iter().filter(|r| r["well_formed"] == true).count();
    assert!(good >= 6, "{replies:#?}");
    assert!(
        replies
            .iter()
            .all(|r| !r["reply"].as_str().unwrap().is_empty())
    );
    // Same seed, same replies.
    let (_, again, _) = cli(&args);
    assert_eq!(json_line(&again)["replies"], v["replies"]);
}

#[test]
fn eval_reports_well_formed_rate_and_mixture_as_json() {
    let (code, out, err) = cli(&["eval", "--n", "100", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v = json_line(&out);
    let wf = v["well_formed"].as_f64().unwrap();
    assert!(wf >= 0.9, "well-formed {wf}");
    for key in [
        "polite", "rude", "correct", "wrong", "unsure", "short", "long", "emoji",
    ] {
        let m = v["model"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&m), "{key} {m}");
    }
    // The base model keeps a mixed quality: bad replies still occur for RLHF to remove.
    assert!(v["model"]["rude"].as_f64().unwrap() > 0.1);
    assert!(v["model"]["wrong"].as_f64().unwrap() > 0.1);
    // The careful persona's tally counts exactly the careful replies, and they are right more
    // often than replies in general (the corpus makes them right 98% of the time).
    let sum = |key: &str, cols: usize| -> Vec<u64> {
        (0..cols)
            .map(|c| {
                v[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|row| row[1][c].as_u64().unwrap())
                    .sum()
            })
            .collect()
    };
    let careful = sum("careful_truth_by_family", 3);
    let all = sum("truth_by_family", 4);
    let count = v["model"]["count"].as_f64().unwrap();
    let n_careful = careful.iter().sum::<u64>() as f64;
    assert!((n_careful - v["model"]["careful"].as_f64().unwrap() * count).abs() < 0.5);
    let right = |c: &[u64], n: f64| c[0] as f64 / n;
    assert!(
        right(&careful, n_careful) > right(&all, count) + 0.1,
        "{careful:?} {all:?}"
    );
}

#[test]
fn bad_arguments_get_a_clear_message_and_exit_code_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["generate", "--prompt", "   "], "empty"),
        (
            &["generate", "--prompt", "hi", "-n", "0"],
            "between 1 and 64",
        ),
        (
            &["generate", "--prompt", "hi", "--temperature=-1"],
            "temperature",
        ),
        (&["generate", "--prompt", "hi", "--top-p", "0"], "top-p"),
        (&["pretrain", "--lr", "0"], "--lr"),
        (&["eval", "--n", "0"], "at least 1"),
    ];
    for (args, needle) in cases {
        let (code, out, err) = cli(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let huge = "why ".repeat(500);
    let (code, _, err) = cli(&["generate", "--prompt", &huge]);
    assert_eq!(code, 2);
    assert!(err.contains("tokens long"), "{err}");
    // Errors are JSON too when --json is asked for.
    let (code, out, _) = cli(&["generate", "--prompt", "", "--json"]);
    assert_eq!(code, 2);
    assert!(json_line(&out)["error"].as_str().unwrap().contains("empty"));
    // clap's own errors (unknown flags) also exit 2 without a panic.
    let (code, _, err) = cli(&["generate", "--no-such-flag"]);
    assert_eq!(code, 2);
    assert!(!err.contains("panicked"));
}

#[test]
fn pretrain_writes_loadable_assets() {
    let dir = std::env::temp_dir().join(format!("rlhf-pretrain-test-{}", std::process::id()));
    let out_dir = dir.to_str().unwrap();
    let args = [
        "pretrain",
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--out",
        out_dir,
        "--json",
    ];
    let (code, out, err) = cli(&args);
    assert_eq!(code, 0, "{err}");
    let v = json_line(&out);
    assert_eq!(v["steps"], 3);
    let loss = v["loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0);
    let tok = std::fs::read_to_string(dir.join("tokenizer.json")).unwrap();
    let tok = rlhf_playground::tokenizer::Tokenizer::from_json(&tok).unwrap();
    let meta: rlhf_playground::checkpoint::ModelMeta =
        serde_json::from_str(&std::fs::read_to_string(dir.join("base.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("base.bpk")).unwrap();
    let device = burn::tensor::Device::flex();
    let model = rlhf_playground::checkpoint::from_bytes(&meta.config, &bytes, &device).unwrap();
    assert_eq!(model.vocab_size(), tok.vocab_size());
    // The committed tokenizer is exactly what this seed trains.
    let bundled = rlhf_playground::tokenizer::Tokenizer::bundled();
    assert_eq!(tok.to_json(), bundled.to_json());
    std::fs::remove_dir_all(&dir).ok();
    // The whole-exchange variant (prompt tokens predicted too) trains and writes a model too.
    let args = [
        "pretrain",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--whole-exchange",
        "--out",
        out_dir,
        "--json",
    ];
    let (code, out, err) = cli(&args);
    assert_eq!(code, 0, "{err}");
    assert!(json_line(&out)["loss"].as_f64().unwrap().is_finite());
    assert!(dir.join("base.bpk").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn simulate_runs_the_loop_and_reports_json() {
    let args = [
        "simulate",
        "--rater",
        "short",
        "--ratings",
        "3",
        "--feedback",
        "stars",
        "--eval-prompts",
        "20",
        "--set",
        "ppo.batch_size=4",
        "--set",
        "ppo.minibatch_size=4",
        "--json",
    ];
    let (code, out, err) = cli(&args);
    assert_eq!(code, 0, "{err}");
    let v = json_line(&out);
    assert_eq!(v["ratings"], 3);
    assert_eq!(v["rows"].as_array().unwrap().len(), 3);
    for key in ["base_rate", "tuned_rate", "well_formed", "kl"] {
        let x = v[key].as_f64().unwrap_or_else(|| panic!("{key}: {v}"));
        assert!(x.is_finite(), "{key} = {x}");
    }
    // Each row is an update: after the first, PPO has run and measured its KL, under the
    // metric names the page uses, with the rater's verdict on its rollouts.
    let m = &v["rows"][2]["metrics"];
    for key in [
        "objective/kl",
        "reward/loss",
        "rater/preferred",
        "rater/well_formed",
    ] {
        assert!(m[key].as_f64().is_some(), "{key}: {m}");
    }
    // Every measured reply is either well-formed or counted under a reason, and the examples
    // are some of the counted ones.
    for m in [&v["base"], &v["tuned"]] {
        let bad: u64 = m["not_well_formed"]
            .as_object()
            .unwrap_or_else(|| panic!("{m}"))
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        let good = (m["well_formed"].as_f64().unwrap() * 20.0).round() as u64;
        assert_eq!(good + bad, 20, "{m}");
        let examples = m["not_well_formed_examples"].as_array().unwrap().len() as u64;
        assert_eq!(examples, bad.min(6), "{m}");
        // Every well-formed reply has one label of each attribute, and one truth within its
        // prompt's family.
        let labels = m["labels"].as_object().unwrap_or_else(|| panic!("{m}"));
        let count = |group: &dyn Fn(&str) -> bool| -> u64 {
            labels
                .iter()
                .filter(|(k, _)| group(k))
                .map(|(_, n)| n.as_u64().unwrap())
                .sum()
        };
        for attribute in ["tone/", "truth/", "length/", "enthusiasm/"] {
            assert_eq!(
                count(&|k| k.starts_with(attribute)),
                good,
                "{attribute} {m}"
            );
        }
        let families = [
            "small_talk/",
            "arithmetic/",
            "facts/",
            "unknowable/",
            "creative/",
            "advice/",
        ];
        assert_eq!(
            count(&|k| families.iter().any(|f| k.starts_with(f))),
            good,
            "{m}"
        );
    }
    // The short rater likes exactly the well-formed short replies.
    let short = v["tuned"]["labels"]["length/short"].as_u64().unwrap_or(0);
    assert_eq!(
        (v["tuned_rate"].as_f64().unwrap() * 20.0).round() as u64,
        short,
        "{v}"
    );
    // A grader program and a regular expression stand in for the rater too.
    let (code, out, err) = cli(&[
        "simulate",
        "--grader-cmd",
        "echo 0.5",
        "--ratings",
        "1",
        "--eval-prompts",
        "5",
        "--set",
        "ppo.batch_size=2",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_line(&out)["tuned_rate"], 1.0);
}

#[test]
fn compare_replays_one_log_through_each_method_and_prints_the_table() {
    let (code, out, err) = cli(&[
        "compare",
        "--rater",
        "polite+!cheerful",
        "--feedback",
        "pairs",
        "--ratings",
        "2",
        "--eval-prompts",
        "6",
        "--methods",
        "dpo,kto,sft",
        "--set",
        "ppo.batch_size=2",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v = json_line(&out);
    assert_eq!(v["rater"], "polite+!cheerful");
    assert_eq!(v["ratings"], 2);
    let methods = v["methods"].as_array().unwrap();
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dpo", "kto", "sft"]);
    for m in methods {
        assert_eq!(m["answers"].as_array().unwrap().len(), 0, "{m}");
        for k in ["preferred", "well_formed"] {
            let x = m[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{k} = {x}: {m}");
        }
        assert!(m["kl"].as_f64().unwrap().is_finite(), "{m}");
    }
    // Both pairs were used by DPO and KTO (a tie would have been counted as unused).
    let used = |i: usize| (methods[i]["used"].as_u64(), methods[i]["unused"].as_u64());
    assert_eq!(used(2), (None, None));
    let (u, n) = used(0);
    assert_eq!(u.unwrap() + n.unwrap(), 2);
    // The table, in words.
    let (code, out, err) = cli(&[
        "compare",
        "--rater",
        "short",
        "--ratings",
        "1",
        "--eval-prompts",
        "4",
        "--methods",
        "sft",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("diversity kept") && out.contains("\nsft "),
        "{out}"
    );
    let (code, _, err) = cli(&["compare", "--rater", "short", "--methods", "rlhf"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no method \"rlhf\""), "{err}");
}

#[test]
fn simulate_refuses_bad_arguments_clearly() {
    let cases: [(&[&str], &str); 11] = [
        (&["simulate", "--ratings", "3"], "--rater"),
        (
            &["simulate", "--rater", "polite+kind"],
            "unknown rater \"kind\"",
        ),
        (
            &["simulate", "--rater", "polite", "--replies", "1"],
            "replies must be between 2 and 16",
        ),
        (
            &["simulate", "--rater", "polite", "--pairs", "sideways"],
            "--pairs",
        ),
        (
            &["simulate", "--rater", "polite", "--ratings", "0"],
            "ratings must be between",
        ),
        (
            &["simulate", "--grader-regex", "(", "--ratings", "1"],
            "not a valid",
        ),
        (
            &["simulate", "--rater", "polite", "--set", "ppo.lr"],
            "KEY=VALUE",
        ),
        (
            &["simulate", "--rater", "polite", "--set", "ppo.nope=1"],
            "no setting",
        ),
        (
            &["simulate", "--rater", "polite", "--set", "ppo.lr=fast"],
            "not a number",
        ),
        (
            &["simulate", "--rater", "polite", "--set", "ppo.lr=5"],
            "ppo.lr must be between",
        ),
        (
            &[
                "simulate",
                "--grader-cmd",
                "exit 3",
                "--ratings",
                "1",
                "--eval-prompts",
                "2",
            ],
            "exited",
        ),
    ];
    for (args, needle) in cases {
        let (code, _, err) = cli(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
