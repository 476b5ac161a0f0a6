use super::*;
use crate::rater::{Rater, Taste};
use crate::reward::RewardData;
use crate::sft::Demonstration;
use crate::simulate::{FeedbackKind, round};

/// A small, fast configuration: fewer steps than the defaults, same code paths.
fn small() -> SessionConfig {
    let mut cfg = SessionConfig::new();
    cfg.reward.steps = 2;
    cfg.ppo.batch_size = 4;
    cfg.ppo.minibatch_size = 2;
    cfg.ppo.epochs = 2;
    cfg.ppo.max_new_tokens = 24;
    cfg.sft.steps = 2;
    cfg.sft.batch_size = 2;
    cfg
}

fn session(cfg: SessionConfig) -> Session {
    Session::bundled(cfg, &Device::flex()).unwrap()
}

#[test]
fn bad_feedback_is_refused_and_queues_nothing() {
    let mut s = session(small());
    assert!(s.record(Feedback::Thumbs { reply: 0, up: true }).is_err());
    assert!(crate::block_on(s.generate("", 2)).is_err());
    assert!(crate::block_on(s.generate("hello", 0)).is_err());
    assert!(crate::block_on(s.generate(&"x".repeat(5000), 1)).is_err());
    assert_eq!(s.queued(), 0);
    assert!(s.log.prompts.is_empty());
    assert!(crate::block_on(s.step()).is_none());
}

#[test]
fn one_rating_runs_every_stage_in_slices() {
    // Without the early stop on approximate KL, so that every minibatch runs and the slices
    // can be counted whatever the base model's first update does.
    let mut cfg = small();
    cfg.ppo.early_stop_kl = 0.0;
    // The reference's confidence on; with no pairs among the ratings it is not used.
    cfg.reward.confidence_weight = 20.0;
    let mut s = session(cfg);
    let replies = crate::block_on(s.generate("what is 3 plus 4?", 2)).unwrap();
    assert_eq!(replies.len(), 2);
    // A thumbs down: no demonstration and no top-rated reply, so SFT has nothing to learn.
    s.record(Feedback::Thumbs {
        reply: replies[0].reply,
        up: false,
    })
    .unwrap();
    assert_eq!(s.queued(), 1);
    let mut events = Vec::new();
    while let Some(e) = crate::block_on(s.step()) {
        events.push(e);
    }
    let Some(Event::Done(report)) = events.last().cloned() else {
        panic!("no report: {events:?}")
    };
    let stages: Vec<Stage> = report.stages.iter().map(|s| s.stage).collect();
    assert_eq!(stages, [Stage::Sft, Stage::Reward, Stage::Ppo]);
    assert_eq!(
        report.stages[0].skipped.as_deref(),
        Some("no demonstrations or top-rated replies yet")
    );
    assert!(report.stages[1].skipped.is_none() && report.stages[2].skipped.is_none());
    // Reward: 1 evaluation slice + 2 steps; PPO: 1 rollout + 2 epochs x 2 minibatches.
    let progress = |st: Stage| {
        events
            .iter()
            .filter(|e| matches!(e, Event::Progress { stage, .. } if *stage == st))
            .count()
    };
    assert_eq!(progress(Stage::Reward), 2);
    assert_eq!(progress(Stage::Ppo), 4);
    assert_eq!(report.stages[1].losses.len(), 2);
    assert_eq!(report.stages[2].losses.len(), 4);
    // The update's metrics are its stages' own, the fresh samples' KL and the check that ends
    // the update, and PPO's are numbers.
    let (reward, ppo) = (&report.stages[1].metrics, &report.stages[2].metrics);
    let health = report.metrics.health.clone().expect("the check's metrics");
    assert!(!health.rolled_back && health.probe_nll.is_finite());
    let samples = Metrics {
        samples: SampleStats::of(&report.samples),
        health: Some(health),
        ..Default::default()
    };
    assert!(samples.samples.as_ref().is_some_and(|s| s.kl.is_finite()));
    assert_eq!(
        report.metrics,
        Metrics::default().merge(reward).merge(ppo).merge(&samples)
    );
    let p = report.metrics.ppo.as_ref().expect("PPO's metrics");
    for (name, v) in [
        ("objective/kl", p.kl),
        ("objective/entropy", p.entropy),
        ("objective/scores", p.scores),
        ("objective/rlhf_reward", p.rlhf_reward),
        ("policy/approxkl_avg", p.approxkl_avg),
        ("policy/clipfrac_avg", p.clipfrac_avg),
        ("loss/policy_avg", p.policy_avg),
        ("loss/value_avg", p.value_avg),
        ("val/ratio", p.ratio),
    ] {
        assert!(v.is_finite(), "{name} = {v}");
    }
    assert_eq!((p.minibatches, p.num_replies), (4, 4));
    let r = report
        .metrics
        .reward
        .as_ref()
        .expect("the reward model's metrics");
    assert!(
        r.confidence_agreement.is_none() && r.confidence_weight.is_none(),
        "the confidence reported for thumbs only: {r:?}"
    );
    assert_eq!(report.version, 1);
    assert_eq!(report.ratings, 1);
    assert_eq!(s.version(), 1);
    assert_eq!(report.rollouts.len(), 4);
    // Samples after the update: per-token log-probs of the policy and the reference.
    assert_eq!(report.samples.len(), 2);
    let sample = &report.samples[0];
    assert_eq!(sample.tokens.last().unwrap().text, "⏎");
    assert!(
        sample
            .tokens
            .iter()
            .all(|t| t.logprob <= 0.0 && t.ref_logprob <= 0.0)
    );
    assert!(
        report
            .samples
            .iter()
            .any(|s| s.tokens.iter().any(|t| t.logprob != t.ref_logprob))
    );
    assert!(!s.is_updating() && s.queued() == 0);
}

#[test]
fn the_early_stop_on_approximate_kl_ends_the_epochs() {
    // The first minibatch of the first epoch has ratio 1 and approximate KL 0, so a tiny
    // positive target lets it pass and stops after the second, which has moved.
    let mut cfg = small();
    cfg.ppo.early_stop_kl = 1e-12;
    let mut s = session(cfg);
    let replies = crate::block_on(s.generate("what is 3 plus 4?", 2)).unwrap();
    s.record(Feedback::Thumbs {
        reply: replies[0].reply,
        up: true,
    })
    .unwrap();
    let report = crate::block_on(s.update()).expect("a report");
    let ppo = report
        .stages
        .iter()
        .find(|st| st.stage == Stage::Ppo)
        .unwrap();
    assert_eq!(ppo.losses.len(), 2, "2 epochs x 2 minibatches cut to 2");
}

#[test]
fn a_seed_reproduces_a_session() {
    let run = || {
        let mut s = session(small().with_seed(9));
        let r = crate::block_on(s.generate("hello", 2)).unwrap();
        s.record(Feedback::Pair {
            better: r[0].reply,
            worse: r[1].reply,
            tie: false,
        })
        .unwrap();
        let report = crate::block_on(s.update()).unwrap();
        (
            r.iter().map(|g| g.text.clone()).collect::<Vec<_>>(),
            report
                .stages
                .iter()
                .map(|s| s.losses.clone())
                .collect::<Vec<_>>(),
            report.rollouts,
        )
    };
    assert_eq!(run(), run());
}

#[test]
fn a_demonstration_is_learned_by_sft() {
    let mut cfg = small();
    cfg.sft.steps = 6;
    cfg.sft.lr = 1e-3;
    let mut s = session(cfg);
    let prompt = "what is 3 plus 4?";
    let demo = "3 plus 4 is 7. Hope that helps.";
    crate::block_on(s.generate(prompt, 1)).unwrap();
    let seq = sft::encode(
        s.tokenizer(),
        &[Demonstration {
            prompt: prompt.into(),
            reply: demo.into(),
        }],
        96,
    );
    let loss = |m: &Gpt| -> f32 { sft::sft_loss(m, &seq, &Device::flex()).into_scalar() };
    let before = loss(&s.policy());
    s.record(Feedback::Demonstration {
        prompt: 0,
        text: demo.into(),
    })
    .unwrap();
    let report = crate::block_on(s.update()).unwrap();
    assert!(report.stages[0].skipped.is_none());
    assert_eq!(report.stages[0].losses.len(), 6);
    let after = loss(&s.policy());
    assert!(after < before * 0.8, "{before} -> {after}");
    // The reference does not move.
    assert_eq!(loss(s.reference()), before);
}

#[test]
fn a_toy_simulation_raises_the_raters_score() {
    // 12 thumbs ratings by the rater who likes short replies, with the default stages except
    // shorter rollouts and fewer reward-model steps (fast enough for CI): the policy's short
    // share on 60 held-out prompts must rise clearly.
    let mut cfg = SessionConfig::new();
    cfg.ppo.max_new_tokens = 32;
    cfg.reward.steps = 4;
    let mut s = session(cfg.with_seed(1));
    let rater = Rater::Taste(Taste::Short);
    let prompts = crate::simulate::eval_prompts(60, 1);
    let sample = s.cfg.sample.clone();
    let measure = |m: &Gpt, s: &Session| {
        crate::block_on(crate::simulate::measure(
            m,
            s.reference(),
            s.tokenizer(),
            &prompts,
            &rater,
            &sample,
            5,
        ))
        .unwrap()
    };
    let base = measure(&s.policy(), &s);
    let mut corpus = crate::simulate::round_prompts(1);
    let mut ratings = 0;
    while ratings < 12 {
        let p = corpus.prompt(false).text;
        let fbs = crate::block_on(round(
            &mut s,
            &rater,
            FeedbackKind::Thumbs,
            crate::simulate::PairChoice::InOrder,
            &p,
            4,
        ))
        .unwrap();
        for fb in fbs {
            s.record(fb).unwrap();
            crate::block_on(s.update()).unwrap();
            ratings += 1;
        }
    }
    let tuned = measure(&s.policy(), &s);
    eprintln!(
        "short rate {:.2} -> {:.2}, {tuned:?}",
        base.preferred, tuned.preferred
    );
    assert!(
        tuned.preferred > base.preferred + 0.15,
        "short rate {:.2} -> {:.2}",
        base.preferred,
        tuned.preferred
    );
    assert!(tuned.well_formed > 0.85, "{tuned:?}");
    assert!(tuned.kl > 0.0 && tuned.kl < 10.0, "{tuned:?}");
}

#[test]
fn settings_are_checked_before_they_apply() {
    let mut s = session(small());
    let mut bad = small();
    bad.ppo.lr = 5.0;
    let err = s.set_config(bad).unwrap_err().to_string();
    assert!(err.contains("ppo.lr"), "{err}");
    assert_eq!(s.cfg.ppo.lr, small().ppo.lr);
    let mut bad = small();
    bad.sample.top_p = 0.0;
    assert!(
        s.set_config(bad)
            .unwrap_err()
            .to_string()
            .contains("sample.top_p")
    );
    let mut good = small();
    good.ppo.init_kl_coef = 0.5;
    s.set_config(good).unwrap();
    assert_eq!(s.kl_coef(), 0.5);
    // A bad configuration cannot start a session either.
    let mut bad = small();
    bad.reward.steps = 1000;
    assert!(Session::bundled(bad, &Device::flex()).is_err());
    assert!(SessionConfig::new().validate().is_ok());
    // Refused as a setting, not as feedback.
    let mut bad = small();
    bad.ppo.epochs = 0;
    assert!(matches!(s.set_config(bad), Err(Error::Config(m)) if m.contains("ppo.epochs")));
}

#[test]
fn settings_given_during_an_update_apply_once_it_has_finished() {
    let mut s = session(small());
    let r = crate::block_on(s.generate("hello", 2)).unwrap();
    s.record(Feedback::Thumbs {
        reply: r[0].reply,
        up: true,
    })
    .unwrap();
    assert!(crate::block_on(s.step()).is_some() && s.is_updating());
    let mut cfg = small();
    cfg.ppo.init_kl_coef = 0.5;
    s.set_config(cfg).unwrap();
    // Shown at once, applied after the update: it runs under one set of settings.
    assert_eq!(s.config().ppo.init_kl_coef, 0.5);
    assert_eq!(s.kl_coef(), 0.2);
    let report = crate::block_on(s.update()).expect("the update finishes");
    assert_eq!(report.metrics.ppo.expect("PPO ran").kl_coef, 0.2);
    assert_eq!(s.kl_coef(), 0.5);
    assert_eq!(s.cfg.ppo.init_kl_coef, 0.5);
}

#[test]
fn feedback_given_during_an_update_queues_its_own_update() {
    let mut s = session(small());
    let r = crate::block_on(s.generate("hello", 2)).unwrap();
    s.record(Feedback::Thumbs {
        reply: r[0].reply,
        up: true,
    })
    .unwrap();
    // The first slice starts the update; a rating arrives while it runs.
    assert!(crate::block_on(s.step()).is_some());
    assert!(s.is_updating());
    s.record(Feedback::Thumbs {
        reply: r[1].reply,
        up: false,
    })
    .unwrap();
    assert_eq!(s.queued(), 1);
    let mut done = Vec::new();
    while let Some(e) = crate::block_on(s.step()) {
        if let Event::Done(report) = e {
            // The thumbs-up reply is a top-rated reply: SFT learns from it in both updates.
            assert!(report.stages[0].skipped.is_none(), "{:?}", report.stages[0]);
            done.push((report.ratings, report.version));
        }
    }
    assert_eq!(done, vec![(1, 1), (2, 2)]);
    assert_eq!(s.log.feedback.len(), 2);
}

#[test]
fn top_rated_replies_are_imitated_only_when_enabled() {
    let mut s = session(small());
    let r: Vec<usize> = crate::block_on(s.generate("hello, who are you?", 4))
        .unwrap()
        .iter()
        .map(|g| g.reply)
        .collect();
    // What SFT would train on if an update began now.
    let demos = |s: &mut Session| {
        s.begin();
        s.trainers.sft.demonstrations()
    };
    let give = |s: &mut Session, fb: Feedback| s.record(fb).unwrap();
    give(
        &mut s,
        Feedback::Thumbs {
            reply: r[0],
            up: false,
        },
    );
    give(
        &mut s,
        Feedback::Stars {
            reply: r[1],
            stars: 3,
        },
    );
    give(
        &mut s,
        Feedback::Pair {
            better: r[2],
            worse: r[3],
            tie: true,
        },
    );
    assert_eq!(demos(&mut s), 0, "nothing rated highly yet");
    give(
        &mut s,
        Feedback::Thumbs {
            reply: r[0],
            up: true,
        },
    );
    give(
        &mut s,
        Feedback::Stars {
            reply: r[1],
            stars: 4,
        },
    );
    give(
        &mut s,
        Feedback::Pair {
            better: r[2],
            worse: r[3],
            tie: false,
        },
    );
    assert_eq!(
        demos(&mut s),
        3,
        "a thumbs up, 4 stars and a preferred reply"
    );
    s.cfg.sft_top_rated = false;
    assert_eq!(demos(&mut s), 0, "off: only written demonstrations");
}

#[test]
fn a_long_prompt_is_shortened_and_says_so() {
    let mut s = session(small());
    let short = crate::block_on(s.generate("what is 3 plus 4?", 1)).unwrap();
    assert!(!short[0].shortened);
    let long =
        "please tell me about the sky and the sea and the stars ".repeat(20) + "what is 3 plus 4?";
    assert!(long.len() < crate::feedback::MAX_TEXT_CHARS);
    let out = crate::block_on(s.generate(&long, 2)).unwrap();
    assert!(
        out.iter().all(|g| g.shortened),
        "a prompt beyond the context is shortened"
    );
    let ids = s.prompt_ids(&long);
    assert!(ids.len() < s.tok.encode_prompt(&long).len());
    assert!(
        ids.len() + 24 <= s.reference.context(),
        "room is left for the reply"
    );
    // The end of the prompt is what the model reads.
    assert_eq!(*ids.last().unwrap(), crate::tokenizer::BOT);
    let read = s.tok.decode(&ids[1..ids.len() - 1]);
    assert!(read.ends_with("what is 3 plus 4?"), "{read:?}");
}

#[test]
fn blocks_the_reward_model_trained_are_never_shared_with_the_reference() {
    // Two blocks train, then one: the second-to-top block has left the base model, so the
    // rollout's shared pass must not take it from the reference.
    let mut cfg = small();
    cfg.reward.train_blocks = 2;
    let mut s = session(cfg.clone());
    let replies = crate::block_on(s.generate("hello", 2)).unwrap();
    for (r, up) in replies.iter().zip([true, false]) {
        s.record(Feedback::Thumbs { reply: r.reply, up }).unwrap();
    }
    while crate::block_on(s.step()).is_some() {}
    cfg.reward.train_blocks = 1;
    s.set_config(cfg).unwrap();
    assert_eq!(s.trainers.reward.own_blocks(), 2);
    let tok = Tokenizer::bundled();
    let text = ("hello".to_string(), "Hello! I am Pip.".to_string());
    let seqs = vec![crate::reward::encode(&tok, &text, s.reference.context())];
    let device = Device::flex();
    let rm = s.trainers.reward.model();
    let own = crate::block_on(crate::read(crate::reward::score_ids(
        &rm, &seqs, None, &device,
    )))[0];
    let shared = |blocks: usize| {
        crate::block_on(crate::reward::scores_and_reference_logprobs(
            &rm,
            &s.reference,
            &seqs,
            blocks,
            &device,
        ))
        .0[0]
    };
    assert!((shared(s.trainers.reward.own_blocks()) - own).abs() < 1e-4);
    // Sharing the trained block would have scored with the base model's copy of it.
    assert!((shared(1) - own).abs() > 1e-4, "{} vs {own}", shared(1));
}

#[test]
fn the_reference_confidence_adds_to_the_score_and_favours_the_right_sum() {
    let cfg = small();
    let mut s = session(cfg.clone());
    // One pair among the ratings (the confidence weighs in only with pairs), and as if every
    // comparison so far had preferred the reply the reference finds likelier.
    let replies = crate::block_on(s.generate("what is 2 plus 2?", 2)).unwrap();
    s.record(Feedback::Pair {
        better: replies[0].reply,
        worse: replies[1].reply,
        tie: false,
    })
    .unwrap();
    s.trainers.reward.confidence.agreement = 1.0;
    let texts: Vec<(String, String)> = ["7 plus 4 is 11.", "7 plus 4 is 10."]
        .iter()
        .map(|r| ("what is seven plus 4?".to_string(), r.to_string()))
        .collect();
    let scores_at = |s: &mut Session, weight: f64| {
        let mut c = cfg.clone();
        c.reward.confidence_weight = weight;
        s.set_config(c).unwrap();
        crate::block_on(s.reward_scores(&texts))
    };
    let (r0, r1, r2) = (
        scores_at(&mut s, 0.0),
        scores_at(&mut s, 1.0),
        scores_at(&mut s, 2.0),
    );
    let bonus = |r: &[f32], i: usize| r[i] - r0[i];
    for i in 0..2 {
        // A mean log-prob: below zero, and in proportion to the weight.
        assert!(bonus(&r1, i) < 0.0, "{r0:?} {r1:?}");
        assert!(
            (bonus(&r2, i) - 2.0 * bonus(&r1, i)).abs() < 1e-4,
            "{r1:?} {r2:?}"
        );
    }
    // The base model knows its sums: it is surer of the right one than of the wrong one.
    assert!(bonus(&r1, 0) > bonus(&r1, 1), "{r0:?} {r1:?}");
    // When the comparisons disagree with the reference's confidence, it adds nothing.
    s.trainers.reward.confidence.agreement = -0.5;
    assert_eq!(scores_at(&mut s, 2.0), r0);
    // A negative weight would reward unlikely text: refused.
    let mut c = cfg.clone();
    c.reward.confidence_weight = -1.0;
    assert!(s.set_config(c).is_err());
}

/// What the reward stage does first when the confidence can weigh in: the reference's
/// confidence in `data`'s texts and its agreement with `data`'s comparisons.
fn agree(s: &mut Session, data: &RewardData) {
    let prior = s.cfg.reward.confidence_prior;
    let (reference, tok, device) = (&s.reference, &s.tok, &s.device);
    crate::block_on(
        s.trainers
            .reward
            .confidence
            .update(data, reference, tok, prior, device),
    );
}

/// The confidence's weight in PPO's score now.
fn weight(s: &Session) -> f64 {
    s.trainers.reward.confidence_weight(s.log.pair_share())
}

#[test]
fn ratings_that_follow_the_reference_confidence_give_it_weight_and_others_none() {
    // (the preferred reply is the one the reference is surer of, the ratings are pairs)
    for (follow, pairs) in [(true, true), (false, true), (true, false)] {
        let mut cfg = small();
        cfg.reward.confidence_weight = 20.0;
        let mut s = session(cfg);
        let prompt = "what is seven plus 4?";
        let replies = crate::block_on(s.generate(prompt, 4)).unwrap();
        let texts: Vec<(String, String)> = replies
            .iter()
            .map(|r| (prompt.to_string(), r.text.clone()))
            .collect();
        let data = RewardData {
            texts: texts.clone(),
            ..Default::default()
        };
        agree(&mut s, &data);
        assert_eq!(weight(&s), 0.0, "no comparison yet");
        let conf = |t: &(String, String)| s.trainers.reward.confidence.get(t).unwrap();
        // The replies the reference is surest and least sure of.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by(|&a, &b| conf(&texts[a]).total_cmp(&conf(&texts[b])));
        let (least, most) = (order[0], order[order.len() - 1]);
        assert!(conf(&texts[least]) < conf(&texts[most]));
        let (up, down) = if follow { (most, least) } else { (least, most) };
        let (better, worse) = (replies[up].reply, replies[down].reply);
        if pairs {
            let tie = false;
            s.record(Feedback::Pair { better, worse, tie }).unwrap();
        } else {
            s.record(Feedback::Thumbs {
                reply: better,
                up: true,
            })
            .unwrap();
            s.record(Feedback::Thumbs {
                reply: worse,
                up: false,
            })
            .unwrap();
        }
        // What the update's reward stage does first.
        let data = RewardData::from_log(&s.log, &s.cfg.reward);
        agree(&mut s, &data);
        let agreement = s.trainers.reward.confidence.agreement;
        assert_eq!(agreement > 0.0, follow, "{agreement}");
        // Thumbs and stars teach the reward model enough on their own: the confidence
        // weighs in only in proportion to the pairs among the ratings.
        assert_eq!(weight(&s) > 0.0, follow && pairs);
        if pairs {
            // The update reports the agreement and the weight it used.
            let mut last = None;
            while let Some(e) = crate::block_on(s.step()) {
                last = Some(e);
            }
            let Some(Event::Done(report)) = last else {
                panic!("no report")
            };
            let r = report.metrics.reward.expect("the reward model's metrics");
            let agreement = r.confidence_agreement.expect("reported with pairs");
            assert!((agreement - s.trainers.reward.confidence.agreement).abs() < 1e-9);
            assert_eq!(
                r.confidence_weight.expect("reported with pairs") > 0.0,
                follow
            );
        }
    }
}

#[test]
fn the_queue_is_bounded_and_waiting_ratings_can_be_cancelled() {
    let mut s = session(small());
    let replies = crate::block_on(s.generate("what is 3 plus 4?", 2)).unwrap();
    let pair = Feedback::Pair {
        better: replies[0].reply,
        worse: replies[1].reply,
        tie: false,
    };
    // A click storm: the first MAX_QUEUED ratings queue, the rest are refused with a message.
    let mut refused = 0;
    for _ in 0..50 {
        if let Err(e) = s.record(pair.clone()) {
            assert!(e.to_string().contains("already waiting"), "{e}");
            refused += 1;
        }
    }
    assert_eq!(
        (s.queued(), refused),
        (Session::MAX_QUEUED, 50 - Session::MAX_QUEUED)
    );
    // One update starts; cancelling drops the 19 still waiting from the log, not that one.
    let first = crate::block_on(s.step());
    assert!(first.is_some() && s.is_updating());
    assert_eq!(s.cancel_queued(), Session::MAX_QUEUED - 1);
    assert_eq!((s.queued(), s.log.feedback.len()), (0, 1));
    let report = crate::block_on(s.update()).expect("the update in flight finishes");
    assert_eq!((report.ratings, s.version()), (1, 1));
    assert!(crate::block_on(s.step()).is_none());
    // Ratings are taken again.
    s.record(pair).unwrap();
    assert_eq!(s.queued(), 1);
}

#[test]
fn each_method_runs_its_own_stage_and_says_which_it_does_not_use() {
    let stages = |method: Method| {
        let mut cfg = small().with_method(method).with_reply_pool(4);
        cfg.dpo.steps = 2;
        cfg.kto.steps = 2;
        cfg.grpo.prompts = 2;
        cfg.grpo.group_size = 2;
        cfg.grpo.max_new_tokens = 24;
        (cfg.bon.prompts, cfg.bon.n, cfg.bon.threshold) = (2, 2, 0.0);
        let mut s = session(cfg);
        let replies = crate::block_on(s.generate("what is 3 plus 4?", 2)).unwrap();
        s.record(Feedback::Pair {
            better: replies[0].reply,
            worse: replies[1].reply,
            tie: false,
        })
        .unwrap();
        let report = crate::block_on(s.update()).unwrap();
        // The second round ranks its pool of 4 by what the method has learnt and shows 2.
        let shown = crate::block_on(s.generate("what is 3 plus 4?", 2)).unwrap();
        assert_eq!(shown.len(), 2);
        report
            .stages
            .iter()
            .map(|st| (st.stage, st.skipped.clone(), st.metrics.clone()))
            .collect::<Vec<_>>()
    };
    let ppo = stages(Method::Ppo);
    assert_eq!(
        ppo.iter().map(|s| s.0).collect::<Vec<_>>(),
        [Stage::Sft, Stage::Reward, Stage::Ppo]
    );
    assert!(ppo[1].1.is_none() && ppo[2].2.ppo.is_some());
    for (method, stage) in [(Method::Dpo, Stage::Dpo), (Method::Kto, Stage::Kto)] {
        let got = stages(method);
        assert_eq!(
            got.iter().map(|s| s.0).collect::<Vec<_>>(),
            [Stage::Sft, Stage::Reward, stage]
        );
        let why = got[1].1.as_deref().unwrap_or_default();
        assert!(why.contains("no reward model"), "{method:?}: {why}");
        let direct = got[2].2.direct.as_ref().expect("the method's metrics");
        assert_eq!((direct.used, direct.unused), (1, 0), "{method:?}");
        assert!(got[2].2.ppo.is_none());
    }
    let grpo = stages(Method::Grpo);
    assert_eq!(
        grpo.iter().map(|s| s.0).collect::<Vec<_>>(),
        [Stage::Sft, Stage::Reward, Stage::Grpo]
    );
    assert!(grpo[1].1.is_none() && grpo[2].2.grpo.is_some(), "{grpo:?}");
    // Best-of-N keeps every finished reply at threshold 0 and fine-tunes on them.
    let bon = stages(Method::Bon);
    assert_eq!(
        bon.iter().map(|s| s.0).collect::<Vec<_>>(),
        [Stage::Sft, Stage::Reward, Stage::Bon]
    );
    let stats = bon[2].2.bon.as_ref().expect("best-of-N's metrics");
    assert_eq!(stats.candidates, 4, "{bon:?}");
    assert!(
        stats.accepted >= 1 && stats.kept == stats.accepted,
        "{stats:?}"
    );
    let sft = stages(Method::Sft);
    assert!(sft[1].1.is_some() && sft[2].1.as_deref() == Some("SFT only: no RL stage"));
}

#[test]
fn best_of_n_says_so_when_the_reward_model_likes_nothing_yet_and_remembers_what_it_kept() {
    let mut cfg = small().with_method(Method::Bon);
    (cfg.bon.prompts, cfg.bon.n, cfg.bon.steps) = (2, 3, 1);
    cfg.bon.threshold = 1.0; // σ(r) < 1 for every finite score: nothing is accepted
    let mut s = session(cfg.clone());
    let replies = crate::block_on(s.generate("what is 3 plus 4?", 2)).unwrap();
    let (good, bad) = (replies[0].reply, replies[1].reply);
    s.record(Feedback::Thumbs {
        reply: good,
        up: true,
    })
    .unwrap();
    s.record(Feedback::Thumbs {
        reply: bad,
        up: false,
    })
    .unwrap();
    let report = crate::block_on(s.update()).unwrap();
    let stage = &report.stages[2];
    assert_eq!(stage.stage, Stage::Bon);
    let why = stage.skipped.as_deref().unwrap_or_default();
    assert!(why.contains("believes you like"), "{why}");
    // Accepting everything that finished: the kept replies are remembered into the next update,
    // judged again there.
    cfg.bon.threshold = 0.0;
    s.set_config(cfg).unwrap();
    s.record(Feedback::Thumbs {
        reply: good,
        up: true,
    })
    .unwrap();
    let first = crate::block_on(s.update())
        .unwrap()
        .metrics
        .bon
        .expect("kept replies");
    assert!(
        first.accepted >= 1 && first.kept == first.accepted,
        "{first:?}"
    );
    s.record(Feedback::Thumbs {
        reply: bad,
        up: false,
    })
    .unwrap();
    let second = crate::block_on(s.update())
        .unwrap()
        .metrics
        .bon
        .expect("kept replies");
    assert!(second.kept > second.accepted, "{first:?} then {second:?}");
}

/// A rating for the next test: a thumbs up on a fresh reply.
fn rate(s: &mut Session) {
    let r = crate::block_on(s.generate("what is 3 plus 4?", 1)).unwrap();
    s.record(Feedback::Thumbs {
        reply: r[0].reply,
        up: true,
    })
    .unwrap();
}

#[test]
fn an_update_that_breaks_the_model_is_rolled_back_and_training_goes_on() {
    // The command: every learning rate at its largest allowed value wrecks Pip in one
    // update ("with with with ...").
    let mut cfg = small();
    (cfg.sft.lr, cfg.ppo.lr, cfg.reward.lr) = (0.1, 0.1, 0.1);
    let mut s = session(cfg);
    let base = crate::block_on(s.probe(true));
    rate(&mut s);
    let report = crate::block_on(s.update()).unwrap();
    let why = report.rolled_back.expect("rolled back");
    assert!(why.contains("stopped writing ordinary sentences"), "{why}");
    let health = report.metrics.health.expect("the check's metrics");
    assert!(health.rolled_back && health.probe_nll == base);
    // The model is the base model again: same cross-entropy, and the rating stays logged.
    assert_eq!(crate::block_on(s.probe(false)), base);
    assert_eq!((s.version(), s.log.feedback.len()), (0, 1));
    // With sane settings the next rating trains.
    s.set_config(small()).unwrap();
    rate(&mut s);
    let report = crate::block_on(s.update()).unwrap();
    assert!(report.rolled_back.is_none());
    assert!(!report.metrics.health.unwrap().rolled_back);
    assert_eq!(s.version(), 1);
    assert_ne!(crate::block_on(s.probe(false)), base);
}

#[test]
fn a_nan_in_the_middle_of_an_update_is_rolled_back() {
    use burn::module::{Module, ModuleMapper, Param};
    struct Poison;
    impl ModuleMapper for Poison {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            p.map(|t| t * f32::NAN)
        }
    }
    let mut s = session(small());
    rate(&mut s);
    crate::block_on(s.update()).unwrap();
    let good = crate::block_on(s.probe(false));
    rate(&mut s);
    // One slice of the second update, then its policy's weights are made NaN.
    assert!(crate::block_on(s.step()).is_some() && s.is_updating());
    let policy = s.trainers.ppo.take_policy();
    s.trainers.ppo.put_policy(policy.map(&mut Poison));
    assert!(crate::block_on(s.probe(false)).is_nan());
    let report = crate::block_on(s.update()).unwrap();
    let why = report.rolled_back.expect("rolled back");
    assert!(
        why.contains("not a number") || why.contains("numbers"),
        "{why}"
    );
    assert_eq!(crate::block_on(s.probe(false)), good);
    assert!(
        report
            .samples
            .iter()
            .all(|r| r.tokens.iter().all(|t| t.logprob.is_finite()))
    );
    // Training goes on from the restored model.
    rate(&mut s);
    assert!(crate::block_on(s.update()).unwrap().rolled_back.is_none());
    assert_eq!(s.version(), 2);
}

#[test]
fn undo_restores_the_model_and_the_log_from_before_the_last_rating() {
    let mut s = session(small());
    assert!(!s.can_undo());
    assert!(
        s.undo()
            .unwrap_err()
            .to_string()
            .contains("no rating to undo")
    );
    rate(&mut s);
    crate::block_on(s.update()).unwrap();
    let after_first = crate::block_on(s.probe(false));
    rate(&mut s);
    // The random numbers as the second update found them.
    let rng_before_second = s.rng.clone().next_u64();
    // Not while a rating waits.
    assert!(!s.can_undo() && s.undo().is_err());
    crate::block_on(s.update()).unwrap();
    assert_ne!(crate::block_on(s.probe(false)), after_first);
    assert!(s.can_undo());
    s.undo().unwrap();
    assert_eq!(crate::block_on(s.probe(false)), after_first);
    assert_eq!((s.version(), s.log.feedback.len()), (1, 1));
    assert_eq!(s.rng.clone().next_u64(), rng_before_second);
    // One level only.
    assert!(s.undo().is_err());
    // The next rating is the second again.
    rate(&mut s);
    assert_eq!(crate::block_on(s.update()).unwrap().ratings, 2);
}
