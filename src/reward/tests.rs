use super::*;
use crate::checkpoint;
use crate::corpus::{Corpus, Tone, classify};
use crate::feedback::{Feedback, FeedbackLog};
use crate::model::Batch;

fn log_with(replies: &[(&str, &str)]) -> FeedbackLog {
    let mut log = FeedbackLog::new();
    for (p, r) in replies {
        let pi = log.add_prompt(p).unwrap();
        log.add_reply(pi, r, 0).unwrap();
    }
    log
}

/// One preference: a friendly greeting over a rude one, to the same prompt.
fn friendly_over_rude() -> FeedbackLog {
    let mut log = log_with(&[
        ("hello", "Hello! I am Pip."),
        ("hello", "Ugh, fine. Hello."),
    ]);
    log.add(Feedback::Pair {
        better: 0,
        worse: 1,
        tie: false,
    })
    .unwrap();
    log
}

#[test]
fn feedback_becomes_weighted_comparisons() {
    let mut log = log_with(&[
        ("hi", "a"),
        ("hi", "b"),
        ("what is 2 plus 2?", "c"),
        ("what is 2 plus 2?", "d"),
    ]);
    log.add(Feedback::Thumbs { reply: 0, up: true }).unwrap();
    log.add(Feedback::Thumbs {
        reply: 1,
        up: false,
    })
    .unwrap();
    log.add(Feedback::Stars { reply: 2, stars: 4 }).unwrap();
    log.add(Feedback::Pair {
        better: 3,
        worse: 2,
        tie: true,
    })
    .unwrap();
    log.add(Feedback::Demonstration {
        prompt: 0,
        text: "hello there".into(),
    })
    .unwrap();
    let cfg = RewardConfig::new().with_cross_prompt_weight(0.5);
    let data = RewardData::from_log(&log, &cfg);
    let has = |c: usize, r: usize, target: f32, weight: f32, newest: usize| {
        data.pairs.contains(&Comparison {
            chosen: c,
            rejected: r,
            target,
            weight,
            newest,
        })
    };
    // Up beats down on the same prompt, fully weighted.
    assert!(has(0, 1, 1.0, 1.0, 1));
    // 4 stars (u = 0.75) against a thumbs-down on another prompt: gap 0.75, halved.
    assert!(has(2, 1, 1.0, 0.375, 2));
    // Against a thumbs-up (u = 1): the up wins by 0.25, halved.
    assert!(has(0, 2, 1.0, 0.125, 2));
    // The tie is a comparison with target 1/2.
    assert!(has(3, 2, 0.5, 1.0, 3));
    // The demonstration (text 4) beats both sampled replies to its prompt.
    assert_eq!(data.texts[4], ("hi".to_string(), "hello there".to_string()));
    assert!(has(4, 0, 1.0, 1.0, 4) && has(4, 1, 1.0, 1.0, 4));
    assert_eq!(data.pairs.len(), 6);
    // Pointwise targets for every thumbs/stars-rated reply.
    assert_eq!(data.points, vec![(0, 1.0, 0), (1, 0.0, 1), (2, 0.75, 2)]);
}

#[test]
fn pairs_imply_comparisons_between_their_preferred_and_rejected_replies() {
    let mut log = log_with(&[
        ("hi", "a"),
        ("hi", "b"),
        ("hi", "c"),
        ("hi", "d"),
        ("what is 2 plus 2?", "e"),
        ("what is 2 plus 2?", "f"),
        ("what is 2 plus 2?", "g"),
        ("what is 2 plus 2?", "h"),
    ]);
    let pair = |better, worse, tie| Feedback::Pair { better, worse, tie };
    for fb in [
        pair(0, 1, false),
        pair(3, 2, false),
        pair(4, 5, false),
        pair(6, 7, true),
    ] {
        log.add(fb).unwrap();
    }
    let cfg = |w: f64| {
        RewardConfig::new()
            .with_cross_prompt_weight(0.5)
            .with_implied_pair_weight(w)
    };
    let off = RewardData::from_log(&log, &cfg(0.0));
    assert_eq!(
        off.pairs.len(),
        4,
        "only the explicit pairs: {:?}",
        off.pairs
    );
    let on = RewardData::from_log(&log, &cfg(0.4));
    let implied: Vec<(usize, usize, f32, usize)> = on.pairs[4..]
        .iter()
        .map(|c| (c.chosen, c.rejected, c.weight, c.newest))
        .collect();
    // Each preferred reply (0, 3, 4) against each rejected one of another pair (1, 2, 5): the
    // same prompt at 0.4, another prompt at 0.4 x 0.5; the tie (6 = 7) implies nothing.
    let mut want = vec![
        (0, 2, 0.4, 1),
        (0, 5, 0.2, 2),
        (3, 1, 0.4, 1),
        (3, 5, 0.2, 2),
        (4, 1, 0.2, 2),
        (4, 2, 0.2, 2),
    ];
    let mut got = implied.clone();
    got.sort_by_key(|c| (c.0, c.1));
    want.sort_by_key(|c| (c.0, c.1));
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.0, g.1, g.3), (w.0, w.1, w.3));
        assert!((g.2 - w.2).abs() < 1e-6, "{g:?} against {w:?}");
    }
    assert!(on.pairs[4..].iter().all(|c| c.target == 1.0));
}

#[test]
fn a_later_rating_of_the_same_reply_replaces_the_earlier_one() {
    let mut log = log_with(&[("hi", "a"), ("hi", "b")]);
    log.add(Feedback::Thumbs {
        reply: 0,
        up: false,
    })
    .unwrap();
    log.add(Feedback::Thumbs { reply: 1, up: true }).unwrap();
    log.add(Feedback::Thumbs { reply: 0, up: true }).unwrap();
    let data = RewardData::from_log(&log, &RewardConfig::new());
    assert!(data.pairs.is_empty(), "{:?}", data.pairs);
    assert_eq!(data.points, vec![(0, 1.0, 2), (1, 1.0, 1)]);
}

#[test]
fn the_bradley_terry_gradient_raises_the_chosen_score() {
    // d loss / d r_chosen = -(1 - σ(r_c - r_r)) < 0: gradient descent raises the chosen score
    // and lowers the rejected one, by equal amounts.
    let device = Device::flex().autodiff();
    let r = Tensor::<1>::from_data([0.3f32, 0.5], &device).require_grad();
    let d = r.clone().slice(s![0..1]) - r.clone().slice(s![1..2]);
    let loss = log_sigmoid(d).neg().sum();
    let grads = loss.backward();
    let g: Vec<f32> = r.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
    let expected = -(1.0 - 1.0 / (1.0 + (0.2f32).exp())); // -(1 - σ(-0.2))
    assert!((g[0] - expected).abs() < 1e-6, "{g:?} vs {expected}");
    assert!((g[1] + expected).abs() < 1e-6);

    // Through the model: a few steps on one comparison put the chosen reply ahead.
    let (model, _) = checkpoint::bundled(&device).unwrap();
    let tok = Tokenizer::bundled();
    let log = friendly_over_rude();
    let cfg = RewardConfig::new().with_steps(5).with_pointwise_weight(0.0);
    let data = RewardData::from_log(&log, &cfg);
    let mut optim = cfg.optimizer();
    let mut rng = Rng::new(1);
    let mut cache = FeatureCache::default();
    let mut model = model;
    let mut losses = Vec::new();
    for _ in 0..cfg.steps {
        let (m, l, _) = crate::block_on(step(
            model, &mut optim, &tok, &data, &cfg, &mut cache, &mut rng, &device,
        ));
        model = m;
        losses.push(l);
    }
    // A zero-initialised head scores everything 0: the first loss is ln 2.
    assert!(
        (losses[0] - std::f64::consts::LN_2).abs() < 1e-4,
        "{losses:?}"
    );
    let s = crate::block_on(score_texts(
        &model.valid(),
        &tok,
        &data.texts,
        &Device::flex(),
    ));
    assert!(s[0] > s[1], "{s:?}");
    assert!(losses[4] < losses[0]);
}

fn tone(l: &crate::corpus::Labels) -> Option<bool> {
    match l.tone {
        Tone::Polite => Some(true),
        Tone::Rude => Some(false),
        Tone::Neutral => None,
    }
}

#[test]
fn the_reward_model_generalises_on_a_separable_preference_set() {
    // 24 labelled comparisons (polite over rude), default settings; accuracy measured on 200
    // comparisons of unseen prompts and replies.
    let acc = held_out_accuracy(RewardConfig::new().train_blocks, 24, &tone);
    assert!(acc >= 0.9, "held-out accuracy {acc}");
}

#[test]
fn running_moments_normalise_scores() {
    let mut m = RunningMoments::default();
    m.update(&[1.0, 3.0], 0.9);
    assert_eq!((m.mean, m.var, m.count), (2.0, 1.0, 2));
    assert!((m.normalise(3.0, 0.1) - 1.0).abs() < 1e-6);
    // The floor: a spread under it is not blown up.
    assert!((m.normalise(3.0, 2.0) - 0.5).abs() < 1e-6);
    m.update(&[12.0, 12.0], 0.9);
    assert!((m.mean - 3.0).abs() < 1e-9 && (m.var - 0.9).abs() < 1e-9);
    // Constant scores do not divide by zero.
    let mut c = RunningMoments::default();
    c.update(&[5.0, 5.0], 0.9);
    assert_eq!(c.normalise(5.5, 1.0), 0.5);
}

/// Exchanges with a preferred and a dispreferred reply to the same held-out corpus prompt, by
/// the given labelling of replies (`Some(true)` preferred, `Some(false)` dispreferred).
fn labelled_pairs(
    seed: u64,
    n: usize,
    judge: impl Fn(&crate::corpus::Labels) -> Option<bool>,
) -> Vec<(String, String, String)> {
    let mut corpus = Corpus::new(seed);
    let mut out = Vec::new();
    while out.len() < n {
        let p = corpus.prompt(true).text;
        let (mut good, mut bad) = (None, None);
        for _ in 0..40 {
            let e = corpus.exchange_for(&p).unwrap();
            match judge(&e.labels) {
                Some(true) => good = Some(e.reply),
                Some(false) => bad = Some(e.reply),
                None => {}
            }
        }
        if let (Some(a), Some(b)) = (good, bad) {
            assert!(classify(&a, &p).is_ok() && classify(&b, &p).is_ok());
            out.push((p, a, b));
        }
    }
    out
}

/// Held-out accuracy of a reward model fitted on `n` comparisons, with `train_blocks` blocks
/// training (steps: 6 per label-set size, as in a session's few updates).
fn held_out_accuracy(
    train_blocks: usize,
    n: usize,
    judge: &dyn Fn(&crate::corpus::Labels) -> Option<bool>,
) -> f64 {
    let device = Device::flex().autodiff();
    let tok = Tokenizer::bundled();
    let (mut model, _) = checkpoint::bundled(&device).unwrap();
    let mut log = FeedbackLog::new();
    for (p, a, b) in labelled_pairs(5, n, judge) {
        let pi = log.add_prompt(&p).unwrap();
        let a = log.add_reply(pi, &a, 0).unwrap();
        let b = log.add_reply(pi, &b, 0).unwrap();
        log.add(Feedback::Pair {
            better: a,
            worse: b,
            tie: false,
        })
        .unwrap();
    }
    let cfg = RewardConfig::new().with_train_blocks(train_blocks);
    let data = RewardData::from_log(&log, &cfg);
    let mut optim = cfg.optimizer();
    let mut rng = Rng::new(2);
    let mut cache = FeatureCache::default();
    for _ in 0..30 {
        model = crate::block_on(step(
            model, &mut optim, &tok, &data, &cfg, &mut cache, &mut rng, &device,
        ))
        .0;
    }
    let test = labelled_pairs(99, 200, judge);
    let texts: Vec<(String, String)> = test
        .iter()
        .flat_map(|(p, a, b)| [(p.clone(), a.clone()), (p.clone(), b.clone())])
        .collect();
    let s = crate::block_on(score_texts(&model.valid(), &tok, &texts, &Device::flex()));
    s.chunks(2).filter(|c| c[0] > c[1]).count() as f64 / 200.0
}

/// The measurement behind `RewardConfig::train_blocks` (docs/TUNING.md): held-out accuracy
/// on 200 comparisons after fitting 8 or 32, for each number of training blocks.
/// Run: cargo test --release --lib -- --ignored reward_generalisation --nocapture
#[test]
#[ignore]
fn reward_generalisation_by_trained_blocks() {
    use crate::corpus::{Family, Truth};
    let truth = |l: &crate::corpus::Labels| match (l.family, l.truth) {
        (Family::Facts | Family::Arithmetic, Truth::Correct) => Some(true),
        (Family::Facts | Family::Arithmetic, Truth::Wrong) => Some(false),
        _ => None,
    };
    // The truthful rater's taste: a right answer, or "not sure" where nobody can know.
    let liked = |l: &crate::corpus::Labels| {
        Some(matches!(
            (l.family, l.truth),
            (_, Truth::Correct) | (Family::Unknowable, Truth::Unsure)
        ))
    };
    let careful = |l: &crate::corpus::Labels| Some(l.careful);
    println!("| task | labels | 0 (head only) | 1 | 2 | 4 (all) |");
    for (name, judge) in [
        ("polite > rude", &tone as &dyn Fn(&_) -> _),
        ("correct > wrong", &truth),
        ("careful > plain", &careful),
        ("truthful: liked > disliked", &liked),
    ] {
        for n in [8, 32] {
            let accs: Vec<String> = [0, 1, 2, 4]
                .iter()
                .map(|&b| format!("{:.1}%", 100.0 * held_out_accuracy(b, n, judge)))
                .collect();
            println!("| {name} | {n} | {} |", accs.join(" | "));
        }
    }
}

#[test]
fn sharing_the_frozen_bottom_gives_the_same_scores_and_reference_logprobs() {
    // A reward model whose top block has trained (so it differs from the reference there),
    // scored three ways: alone in full, from cached frozen features, and sharing one pass
    // through the frozen bottom with the reference.
    let device = Device::flex().autodiff();
    let (model, _) = checkpoint::bundled(&device).unwrap();
    let (reference, _) = checkpoint::bundled(&Device::flex()).unwrap();
    let tok = Tokenizer::bundled();
    let log = friendly_over_rude();
    let cfg = RewardConfig::new();
    let data = RewardData::from_log(&log, &cfg);
    let mut optim = cfg.optimizer();
    let (mut rng, mut cache) = (Rng::new(3), FeatureCache::default());
    let mut model = model;
    for _ in 0..3 {
        model = crate::block_on(step(
            model, &mut optim, &tok, &data, &cfg, &mut cache, &mut rng, &device,
        ))
        .0;
    }
    let rm = model.valid();
    let texts = [
        ("what is 2 plus 2?", "2 plus 2 is 4."),
        ("hello", "Hello! I am Pip. Have a wonderful day! 🌟"),
        ("what colour is the sky?", "Ugh."),
    ];
    let seqs: Vec<Vec<u32>> = texts
        .iter()
        .map(|(p, r)| encode(&tok, &(p.to_string(), r.to_string()), rm.context()))
        .collect();
    let flex = Device::flex();
    let alone: Vec<f32> = crate::block_on(crate::read(score_ids(&rm, &seqs, None, &flex)));
    let mut fresh = FeatureCache::default();
    let cached: Vec<f32> = crate::block_on(crate::read(score_ids(
        &rm,
        &seqs,
        Some((&mut fresh, cfg.train_blocks)),
        &flex,
    )));
    let (shared, ref_lp) = crate::block_on(scores_and_reference_logprobs(
        &rm,
        &reference,
        &seqs,
        cfg.train_blocks,
        &flex,
    ));
    let batch = Batch::right_padded(&seqs, &flex);
    let want_lp: Vec<f32> = crate::block_on(crate::read(
        reference.token_logprobs(reference.forward(&batch, None), batch.tokens.clone()),
    ));
    // Training moved the scores away from the zero-initialised head's 0.
    assert!(alone.iter().any(|s| s.abs() > 1e-3), "{alone:?}");
    for i in 0..seqs.len() {
        assert!(
            (alone[i] - cached[i]).abs() < 1e-4,
            "{alone:?} vs {cached:?}"
        );
        assert!(
            (alone[i] - shared[i]).abs() < 1e-4,
            "{alone:?} vs {shared:?}"
        );
    }
    assert_eq!(ref_lp.len(), want_lp.len());
    for (a, b) in ref_lp.iter().zip(&want_lp) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn every_batch_holds_the_newest_feedback_s_comparisons() {
    // Forty thumbs on replies to one prompt, up and down in turn: the last one (up) makes the
    // only comparisons the model has not been fitted on, 20 of 400.
    let texts: Vec<(String, String)> = (0..40).map(|i| ("q".into(), format!("r{i}"))).collect();
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(p, r)| (p.as_str(), r.as_str()))
        .collect();
    let mut log = log_with(&refs);
    for i in 0..40 {
        log.add(Feedback::Thumbs {
            reply: i,
            up: i % 2 == 1,
        })
        .unwrap();
    }
    let cfg = RewardConfig::new().with_fresh_pairs(4);
    let data = RewardData {
        fresh_from: 39,
        ..RewardData::from_log(&log, &cfg)
    };
    let fresh: Vec<usize> = (0..data.pairs.len())
        .filter(|&i| data.pairs[i].newest == 39)
        .collect();
    assert_eq!(fresh.len(), 20, "the new up against each of the 20 downs");
    assert_eq!(data.pairs.len(), 400);
    let mut rng = Rng::new(3);
    for _ in 0..20 {
        let (texts, pairs, _) = draw_batch(&data, cfg.batch_pairs, cfg.fresh_pairs, &mut rng);
        assert_eq!(pairs.len(), cfg.batch_pairs);
        let with_newest = pairs
            .iter()
            .filter(|(c, r, _, _)| texts[*c] == 39 || texts[*r] == 39)
            .count();
        assert!(
            with_newest >= cfg.fresh_pairs,
            "{with_newest} of {} comparisons hold the newest rating",
            pairs.len()
        );
    }
    // Drawn from all of them instead, the newest rating is in few batches.
    let mut hits = 0;
    for _ in 0..20 {
        let (texts, pairs, _) = draw_batch(&data, cfg.batch_pairs, 0, &mut rng);
        hits += pairs
            .iter()
            .filter(|(c, r, _, _)| texts[*c] == 39 || texts[*r] == 39)
            .count();
    }
    // About 20 * 8 * 20 / 400 = 8 expected.
    assert!(hits < 20 * cfg.fresh_pairs / 2, "{hits}");
}

#[test]
fn a_tie_weighs_tie_weight_and_a_preference_one() {
    let mut log = log_with(&[("hi", "a"), ("hi", "b"), ("hi", "c"), ("hi", "d")]);
    log.add(Feedback::Pair {
        better: 0,
        worse: 1,
        tie: false,
    })
    .unwrap();
    log.add(Feedback::Pair {
        better: 2,
        worse: 3,
        tie: true,
    })
    .unwrap();
    let cfg = RewardConfig::new()
        .with_implied_pair_weight(0.0)
        .with_tie_weight(0.25);
    let data = RewardData::from_log(&log, &cfg);
    let got: Vec<(usize, usize, f32, f32)> = data
        .pairs
        .iter()
        .map(|c| (c.chosen, c.rejected, c.target, c.weight))
        .collect();
    assert_eq!(got, vec![(0, 1, 1.0, 1.0), (2, 3, 0.5, 0.25)]);
}

#[test]
fn reference_confidence_is_the_mean_log_prob_of_the_reply_tokens() {
    // Width 4 (sequences of up to 5 tokens). Row 0: prompt of 2 tokens, reply of 3: positions
    // 1, 2 and 3 emit its tokens. Row 1: a prompt of 3 tokens and no reply.
    let lp = [-9.0, -1.0, -2.0, -3.0, -5.0, -5.0, -5.0, -5.0];
    let seqs = vec![vec![1, 2, 3, 4, 5], vec![1, 2, 3]];
    let c = reference_confidence(&lp, 4, &seqs, &[2, 3]);
    assert_eq!(c, vec![-2.0, 0.0]);
    assert_eq!(with_confidence(&[1.0, 0.5], &c, 0.5), vec![0.0, 0.5]);
    assert_eq!(with_confidence(&[1.0, 0.5], &c, 0.0), vec![1.0, 0.5]);
}

#[test]
fn confidence_agreement_is_a_weighted_kendall_tau_with_a_prior() {
    let pair = |chosen, rejected, target, weight| Comparison {
        chosen,
        rejected,
        target,
        weight,
        newest: 0,
    };
    let conf = [-0.2, -0.5, -0.9];
    // 0 over 1 and 1 over 2 agree (weight 1 + 0.5), 2 over 0 disagrees (weight 0.5), and the
    // tie is left out: (1 + 0.5 - 0.5) / (2 + prior).
    let pairs = [
        pair(0, 1, 1.0, 1.0),
        pair(1, 2, 1.0, 0.5),
        pair(2, 0, 1.0, 0.5),
        pair(0, 2, 0.5, 1.0),
    ];
    assert!((confidence_agreement(&pairs, &conf, 0.0) - 0.5).abs() < 1e-9);
    assert!((confidence_agreement(&pairs, &conf, 2.0) - 0.25).abs() < 1e-9);
    assert_eq!(confidence_agreement(&[], &conf, 8.0), 0.0);
    assert_eq!(confidence_agreement(&[], &conf, 0.0), 0.0);
    // Always against the likelier reply: -1.
    assert_eq!(
        confidence_agreement(&[pair(2, 0, 1.0, 1.0)], &conf, 0.0),
        -1.0
    );
}
