use super::*;
use crate::checkpoint;

fn t(v: &[f32]) -> Tensor<1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Device::flex())
}

fn values(x: Tensor<1>) -> Vec<f32> {
    x.into_data().try_to_vec().unwrap()
}

fn sigma(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn the_kto_loss_is_prospect_theorys_value_against_the_reference_point() {
    // Two desirable replies and one undesirable, z₀ = 0.2, β = 0.5, λ_D = 1, λ_U = 2.
    let r = t(&[1.0, -0.6, 0.4]);
    let desirable = t(&[1.0, 1.0, 0.0]);
    let loss = values(kto_loss(r, desirable, 0.2, 0.5, (1.0, 2.0)));
    // By hand: 1 − σ(0.5 · (1.0 − 0.2)), 1 − σ(0.5 · (−0.6 − 0.2)), 2 · (1 − σ(0.5 · (0.2 − 0.4))).
    let want = [
        1.0 - sigma(0.4),
        1.0 - sigma(-0.4),
        2.0 * (1.0 - sigma(-0.1)),
    ];
    for (got, want) in loss.iter().zip(want) {
        assert!((*got as f64 - want).abs() < 1e-6, "{loss:?} against {want}");
    }
    assert!((want[0] - 0.401_312_339_887_548_3).abs() < 1e-12);
    // At r = z₀ every reply is worth half its weight.
    let loss = values(kto_loss(
        t(&[0.3, 0.3]),
        t(&[1.0, 0.0]),
        0.3,
        0.1,
        (1.0, 1.0),
    ));
    assert!(loss.iter().all(|l| (l - 0.5).abs() < 1e-6), "{loss:?}");
}

#[test]
fn the_reference_point_is_the_mismatched_log_ratios_mean_at_least_zero() {
    assert!((reference_point(&[0.5, 1.5, -0.5]) - 0.5).abs() < 1e-9);
    assert_eq!(reference_point(&[-0.5, -1.0]), 0.0);
    // A batch of one has no mismatched pair.
    assert_eq!(reference_point(&[3.0]), 0.0);
}

#[test]
fn thumbs_stars_pairs_and_written_answers_become_desirable_or_undesirable_replies() {
    let mut log = FeedbackLog::new();
    let p = log.add_prompt("what is 2 plus 2?").unwrap();
    for text in ["a", "b", "c", "d", "e"] {
        log.add_reply(p, text, 0).unwrap();
    }
    for f in [
        Feedback::Thumbs { reply: 0, up: true },
        Feedback::Thumbs {
            reply: 1,
            up: false,
        },
        Feedback::Stars { reply: 2, stars: 3 },
        Feedback::Stars { reply: 2, stars: 5 },
        Feedback::Pair {
            better: 3,
            worse: 4,
            tie: false,
        },
        Feedback::Pair {
            better: 3,
            worse: 4,
            tie: true,
        },
        Feedback::Demonstration {
            prompt: p,
            text: "4.".into(),
        },
    ] {
        log.add(f).unwrap();
    }
    let ex = rated_examples(&log);
    let got: Vec<(&str, bool)> = ex.rated.iter().map(|(_, r, g)| (r.as_str(), *g)).collect();
    // The pair's two sides and the written answer in the order given, then each rated reply
    // by its latest rating (c: 5 stars, not 3).
    assert_eq!(
        got,
        [
            ("d", true),
            ("e", false),
            ("4.", true),
            ("a", true),
            ("b", false),
            ("c", true)
        ]
    );
    // The 3 stars that the 5 replaced, and the tie: unused.
    assert_eq!((ex.used, ex.unused), (5, 2));
    // A thumbs up changed to a thumbs down counts once, as a thumbs down.
    log.add(Feedback::Thumbs {
        reply: 0,
        up: false,
    })
    .unwrap();
    let ex = rated_examples(&log);
    let a: Vec<bool> = ex
        .rated
        .iter()
        .filter(|e| e.1 == "a")
        .map(|e| e.2)
        .collect();
    assert_eq!(a, [false]);
    assert_eq!((ex.used, ex.unused), (5, 3));
}

#[test]
fn kto_raises_a_liked_replys_log_ratio_and_lowers_a_disliked_ones() {
    let device = Device::flex();
    let tok = Tokenizer::bundled();
    let (reference, _) = checkpoint::bundled(&device).unwrap();
    let (policy, _) = checkpoint::bundled(&device.clone().autodiff()).unwrap();
    let (good, bad) = (
        "Sure, happy to help. 2 plus 2 is 4.",
        "Ugh, fine. 2 plus 2 is 4.",
    );
    let mut log = FeedbackLog::new();
    let p = log.add_prompt("what is 2 plus 2?").unwrap();
    log.add_reply(p, good, 0).unwrap();
    log.add_reply(p, bad, 0).unwrap();
    log.add(Feedback::Thumbs { reply: 0, up: true }).unwrap();
    log.add(Feedback::Thumbs {
        reply: 1,
        up: false,
    })
    .unwrap();
    let mut trainer = KtoTrainer::new(KtoConfig::new().with_steps(5).with_lr(1e-4), &device);
    trainer.begin(&log, reference.context());
    let (mut policy, mut rng) = (policy, Rng::new(0));
    let losses = loop {
        let (m, slice) = crate::block_on(trainer.step(policy, &reference, &tok, &mut rng));
        policy = m;
        match slice {
            Slice::Progress { .. } => {}
            Slice::Done { losses, metrics } => {
                let stats = metrics.direct.expect("KTO's metrics");
                assert_eq!((stats.examples, stats.used, stats.unused), (2, 2, 0));
                assert!(stats.kl.unwrap() >= 0.0);
                break losses;
            }
            Slice::Skipped(why) => panic!("skipped: {why}"),
        }
    };
    // Policy = reference at the first step: r = z₀ = 0, so each reply's loss is λ/2.
    assert!((losses[0] - 0.5).abs() < 1e-4, "{losses:?}");
    assert!(losses[4] < losses[0], "{losses:?}");
    let seqs = [good, bad].map(|r| tok.fit_exchange("what is 2 plus 2?", r, reference.context()));
    let pi = values(reply_logprobs(&policy, &seqs, &device.clone().autodiff()).0);
    let r = values(reply_logprobs(&reference, &seqs, &device).0);
    assert!(pi[0] > r[0] && pi[1] < r[1], "{pi:?} against {r:?}");
}
