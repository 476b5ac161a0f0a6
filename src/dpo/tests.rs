use super::*;
use crate::checkpoint;

fn t(v: &[f32]) -> Tensor<1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Device::flex())
}

fn values(x: Tensor<1>) -> Vec<f32> {
    x.into_data().try_to_vec().unwrap()
}

#[test]
fn the_dpo_loss_is_the_log_sigmoid_of_the_scaled_log_ratio_margin() {
    // Pair 0: the chosen reply's log-ratio is +0.5, the rejected one's −0.5, so h = 0.1 · 1.0
    // and L = −log σ(0.1) = log(1 + e^−0.1) = 0.644396…; pair 1: equal log-ratios, L = log 2.
    let pi = (t(&[-2.0, -1.0]), t(&[-3.0, -1.0]));
    let reference = (t(&[-2.5, -1.0]), t(&[-2.5, -1.0]));
    let loss = values(dpo_loss(pi.clone(), reference.clone(), 0.1, None));
    assert!((loss[0] - 0.644_396_1).abs() < 1e-6, "{loss:?}");
    assert!((loss[1] - std::f32::consts::LN_2).abs() < 1e-6, "{loss:?}");
    // β scales the margin: β = 2 gives h = 2, L = log(1 + e^−2) = 0.126928…
    let loss = values(dpo_loss(pi.clone(), reference.clone(), 2.0, None));
    assert!((loss[0] - 0.126_928_01).abs() < 1e-6, "{loss:?}");
    // IPO on per-token means: lengths 2 and 4 give 0.5/2 − (−0.5/4) = 0.375, and with
    // β = 0.1 the target margin is 1/(2β) = 5: L = (0.375 − 5)² = 21.390625.
    let lengths = (t(&[2.0, 1.0]), t(&[4.0, 1.0]));
    let loss = values(dpo_loss(pi, reference, 0.1, Some(lengths)));
    assert!((loss[0] - 21.390_625).abs() < 1e-4, "{loss:?}");
    assert!((loss[1] - 25.0).abs() < 1e-4, "{loss:?}");
}

/// A log with replies `texts` to prompt "p" (and one reply to "q").
fn log_with(texts: &[&str]) -> FeedbackLog {
    let mut log = FeedbackLog::new();
    let p = log.add_prompt("what is 2 plus 2?").unwrap();
    for text in texts {
        log.add_reply(p, text, 0).unwrap();
    }
    let q = log.add_prompt("hello").unwrap();
    log.add_reply(q, "Hello.", 0).unwrap();
    log
}

#[test]
fn pairs_come_from_preferences_and_from_ratings_apart_on_one_prompt() {
    let mut log = log_with(&["a", "b", "c", "d"]);
    let fb = [
        Feedback::Thumbs { reply: 0, up: true },
        Feedback::Thumbs {
            reply: 1,
            up: false,
        },
        Feedback::Stars { reply: 2, stars: 2 },
        // Alone on its prompt: nothing to compare it with.
        Feedback::Thumbs { reply: 4, up: true },
        Feedback::Pair {
            better: 3,
            worse: 2,
            tie: false,
        },
        Feedback::Pair {
            better: 0,
            worse: 3,
            tie: true,
        },
        Feedback::Demonstration {
            prompt: 0,
            text: "2 plus 2 is 4.".into(),
        },
    ];
    for f in fb {
        log.add(f).unwrap();
    }
    let prefs = preference_pairs(&log);
    let mut pairs = prefs.pairs.clone();
    pairs.sort_unstable();
    // 👍 a over 👎 b; 👍 a (1) over 2★ c (0.25); 2★ c over 👎 b (0); the pair d over c; the
    // written answer (text 5) over each of the four replies to its prompt.
    assert_eq!(
        pairs,
        vec![
            (0, 1),
            (0, 2),
            (2, 1),
            (3, 2),
            (5, 0),
            (5, 1),
            (5, 2),
            (5, 3)
        ]
    );
    assert_eq!(prefs.texts[5].1, "2 plus 2 is 4.");
    // The lone thumbs and the tie gave nothing.
    assert_eq!((prefs.used, prefs.unused), (5, 2));
}

#[test]
fn on_a_separable_log_dpo_raises_the_chosen_replys_log_ratio_over_the_rejected() {
    let device = Device::flex();
    let tok = Tokenizer::bundled();
    let (reference, _) = checkpoint::bundled(&device).unwrap();
    let (policy, _) = checkpoint::bundled(&device.clone().autodiff()).unwrap();
    let chosen = "Sure, happy to help. 2 plus 2 is 4.";
    let rejected = "Ugh, fine. 2 plus 2 is 4.";
    let mut log = log_with(&[chosen, rejected]);
    log.add(Feedback::Pair {
        better: 0,
        worse: 1,
        tie: false,
    })
    .unwrap();
    let seqs =
        [chosen, rejected].map(|r| tok.fit_exchange("what is 2 plus 2?", r, reference.context()));
    let ratios = |policy: &Gpt| {
        let pi = values(reply_logprobs(policy, &seqs, &device.clone().autodiff()).0);
        let r = values(reply_logprobs(&reference, &seqs, &device).0);
        (pi[0] - r[0], pi[1] - r[1])
    };
    let (w0, l0) = ratios(&policy);
    assert!(
        w0.abs() < 1e-4 && l0.abs() < 1e-4,
        "the policy starts as the reference"
    );
    let cfg = DpoConfig::new().with_steps(5).with_lr(1e-4);
    let mut trainer = DpoTrainer::new(cfg, &device);
    trainer.begin(&tok, &log, reference.context());
    let (mut policy, mut rng) = (policy, Rng::new(0));
    let losses = loop {
        let (p, slice) = crate::block_on(trainer.step(policy, &reference, &mut rng));
        policy = p;
        match slice {
            Slice::Progress { .. } => {}
            Slice::Done { losses, metrics } => {
                let stats = metrics.direct.expect("DPO's metrics");
                assert_eq!((stats.examples, stats.used, stats.unused), (1, 1, 0));
                break losses;
            }
            Slice::Skipped(why) => panic!("skipped: {why}"),
        }
    };
    // The first step starts at log 2 (policy = reference); the loss falls from there.
    assert!(
        (losses[0] - std::f64::consts::LN_2).abs() < 1e-4,
        "{losses:?}"
    );
    assert!(losses[4] < losses[0], "{losses:?}");
    let (w, l) = ratios(&policy);
    assert!(
        w > 0.0 && l < 0.0 && w - l > 0.5,
        "chosen {w}, rejected {l}"
    );
    // No pairs: the stage says why it did nothing.
    trainer.begin(&tok, &log_with(&["a"]), reference.context());
    let (_, slice) = crate::block_on(trainer.step(policy, &reference, &mut rng));
    assert!(matches!(slice, Slice::Skipped(w) if w.contains("no pairs")));
}
