use super::*;
use crate::checkpoint;
use crate::rng::Rng;
use crate::sample::{SampleConfig, generate};
use crate::tokenizer::Tokenizer;

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

#[test]
fn gae_matches_hand_computed_values() {
    // γ = 1, λ = 0.95, reward only at the end:
    // A2 = 1 - 0.1 = 0.9; A1 = (0 + 0.1 - 0.2) + 0.95·0.9 = 0.755;
    // A0 = (0 + 0.2 - 0.5) + 0.95·0.755 = 0.41725.
    let (adv, ret) = gae(&[0.0, 0.0, 1.0], &[0.5, 0.2, 0.1], 1.0, 0.95);
    let want = [0.41725, 0.755, 0.9];
    for (a, w) in adv.iter().zip(want) {
        assert!(close(*a, w), "{adv:?}");
    }
    for (r, w) in ret.iter().zip([0.91725, 0.955, 1.0]) {
        assert!(close(*r, w), "{ret:?}");
    }
    // γ = 0.5, λ = 1: A1 = 2, A0 = 1 + 0.5·0 - 0 + 0.5·2 = 2.
    let (adv, _) = gae(&[1.0, 2.0], &[0.0, 0.0], 0.5, 1.0);
    assert!(close(adv[0], 2.0) && close(adv[1], 2.0), "{adv:?}");
    // λ = 0 is one-step TD: A_t = r_t + γ V_{t+1} - V_t.
    let (adv, _) = gae(&[0.0, 1.0], &[0.3, 0.4], 1.0, 0.0);
    assert!(close(adv[0], 0.1) && close(adv[1], 0.6), "{adv:?}");
}

#[test]
fn whitening_uses_masked_entries_only() {
    let w = whiten(&[1.0, 3.0, 100.0], &[1.0, 1.0, 0.0]);
    assert!(
        close(w[0], -1.0) && close(w[1], 1.0) && w[2] == 0.0,
        "{w:?}"
    );
}

fn t2(rows: &[&[f32]]) -> Tensor<2> {
    let w = rows[0].len();
    let v: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(v, [rows.len(), w]), &Device::flex())
}

fn scalar(t: Tensor<1>) -> f32 {
    t.into_scalar()
}

#[test]
fn clipped_losses_match_hand_computed_values() {
    let cfg = PpoConfig::new();
    // Two actions with ratios 1.5 and 0.5 (both outside [0.8, 1.2]) and a masked third whose
    // numbers would change every loss if they counted.
    let new = t2(&[&[1.5f32.ln(), 0.5f32.ln(), 5.0]]);
    let old = t2(&[&[0.0, 0.0, 0.0]]);
    let mask = t2(&[&[1.0, 1.0, 0.0]]);
    let new_v = t2(&[&[0.5, -0.1, 9.0]]);
    let old_v = t2(&[&[0.0, 0.0, 0.0]]);
    let ret = t2(&[&[1.0, 0.0, -9.0]]);
    let losses = |adv: f32| {
        clipped_losses(
            new.clone(),
            old.clone(),
            new_v.clone(),
            old_v.clone(),
            t2(&[&[adv, adv, 50.0]]),
            ret.clone(),
            mask.clone(),
            &cfg,
        )
    };
    // A = +1: pg1 = [-1.5, -0.5], pg2 = [-1.2, -0.8], max = [-1.2, -0.5], mean -0.85.
    let l = losses(1.0);
    assert!(close(scalar(l.pg_loss), -0.85));
    // Values: clipped [0.2, -0.1]; squared errors max([0.25, 0.01], [0.64, 0.01]) -> 0.325 / 2.
    assert!(close(scalar(l.v_loss), 0.1625));
    let kl = 0.5 * (1.5f32.ln().powi(2) + 0.5f32.ln().powi(2)) / 2.0;
    assert!(close(scalar(l.approx_kl), kl));
    assert!(close(scalar(l.clipfrac), 1.0));
    assert!(close(scalar(l.ratio), 1.0));
    // A = -1: pg1 = [1.5, 0.5], pg2 = [1.2, 0.8], max = [1.5, 0.8], mean 1.15.
    assert!(close(scalar(losses(-1.0).pg_loss), 1.15));
}

#[test]
fn minibatches_cover_every_reply_once_and_group_by_length() {
    let lengths = [30, 12, 55, 12, 40, 18, 61, 25, 33, 12, 47, 20];
    let mut rng = Rng::new(3);
    for group in [false, true] {
        let mut firsts = Vec::new();
        for _ in 0..20 {
            let mbs = minibatches(&lengths, 4, group, &mut rng);
            assert_eq!(mbs.len(), 3);
            let mut rows: Vec<usize> = mbs.concat();
            rows.sort_unstable();
            assert_eq!(
                rows,
                (0..lengths.len()).collect::<Vec<_>>(),
                "each reply once"
            );
            firsts.push(mbs[0].clone());
            // Grouped, the minibatches are runs of the sorted lengths: sorted by their shortest
            // reply, each one's longest is at most the next one's shortest.
            let mut spans: Vec<(usize, usize)> = mbs
                .iter()
                .map(|m| {
                    let l = m.iter().map(|&b| lengths[b]);
                    (l.clone().min().unwrap(), l.max().unwrap())
                })
                .collect();
            spans.sort_unstable();
            let runs = spans.windows(2).all(|w| w[0].1 <= w[1].0);
            if group {
                assert!(runs, "{mbs:?}");
            }
        }
        // Both ways the epoch's first minibatch varies from one epoch to the next.
        firsts.iter_mut().for_each(|f| f.sort_unstable());
        firsts.sort();
        firsts.dedup();
        assert!(
            firsts.len() > 1,
            "group {group}: always the same first minibatch"
        );
    }
    // Grouping pads less: the sum over minibatches of (size x longest) falls.
    let padded = |group: bool, rng: &mut Rng| -> usize {
        (0..50)
            .flat_map(|_| minibatches(&lengths, 4, group, rng))
            .map(|m| m.len() * m.iter().map(|&b| lengths[b]).max().unwrap())
            .sum()
    };
    let (random, grouped) = (padded(false, &mut rng), padded(true, &mut rng));
    assert!(grouped < random * 9 / 10, "{grouped} against {random}");
}

#[test]
fn kl_controller_moves_beta_towards_the_target() {
    let cfg = PpoConfig::new()
        .with_init_kl_coef(0.2)
        .with_kl_target(6.0)
        .with_kl_horizon(100.0);
    let mut up = KlController::new(&cfg);
    up.update(12.0, 10); // error clipped to +0.2: β · (1 + 0.2 · 10/100)
    assert!((up.value - 0.2 * 1.02).abs() < 1e-12);
    let mut down = KlController::new(&cfg);
    down.update(5.4, 10); // error -0.1
    assert!((down.value - 0.2 * 0.99).abs() < 1e-12);
    let mut fixed = KlController::new(&cfg.with_adaptive_kl(false));
    fixed.update(100.0, 10);
    assert_eq!(fixed.value, 0.2);
}

/// A batch of replies sampled from the bundled model for corpus-style prompts.
fn rollout(model: &Gpt, tok: &Tokenizer) -> (Vec<Vec<u32>>, Vec<usize>) {
    let prompts = [
        "hello",
        "what is 3 plus 4?",
        "what colour is the sky?",
        "tell me a joke",
    ];
    let ids: Vec<Vec<u32>> = prompts.iter().map(|p| tok.encode_prompt(p)).collect();
    let cfg = SampleConfig::new().with_max_new_tokens(24);
    let out = crate::block_on(generate(model, &ids, &cfg, &mut Rng::new(3), true));
    let mut seqs = Vec::new();
    let mut starts = Vec::new();
    for (p, o) in ids.iter().zip(out) {
        starts.push(p.len());
        seqs.push(o.sequence(p, false));
    }
    (seqs, starts)
}

#[test]
fn kl_is_zero_when_the_policy_is_the_reference() {
    let device = Device::flex();
    let tok = Tokenizer::bundled();
    let (model, _) = checkpoint::bundled(&device).unwrap();
    let (seqs, starts) = rollout(&model, &tok);
    let scores = vec![1.0, -1.0, 0.5, 0.0];
    let cfg = PpoConfig::new();
    let exp = crate::block_on(make_experience(
        &model,
        &model.clone(),
        None,
        seqs.clone(),
        starts.clone(),
        scores.clone(),
        &scores,
        0.2,
        &cfg,
    ));
    assert!(
        exp.kl_per_reply().iter().all(|&k| k == 0.0),
        "{:?}",
        exp.kl_per_reply()
    );
    // With no KL, the only reward is the score, at each reply's last action.
    let w = exp.t - 1;
    for (b, seq) in seqs.iter().enumerate() {
        let last = b * w + seq.len() - 2;
        for i in b * w..(b + 1) * w {
            let want = if i == last { scores[b] } else { 0.0 };
            assert_eq!(exp.rewards[i], want, "row {b} position {}", i - b * w);
        }
        // The mask covers exactly the reply's actions.
        let n: f32 = exp.mask[b * w..(b + 1) * w].iter().sum();
        assert_eq!(n as usize, seq.len() - starts[b]);
    }
    let m = iteration_stats(&exp, &[], 0.0);
    assert_eq!(m.kl, 0.0);
    assert_eq!(m.rlhf_reward, m.scores);
}

/// The bundled model on the autodiff device (to train), a frozen copy of it (the reference) and
/// a rollout sampled from it.
fn trainable() -> (Device, Gpt, Gpt, Vec<Vec<u32>>, Vec<usize>) {
    let device = Device::flex().autodiff();
    let (policy, _) = checkpoint::bundled(&device).unwrap();
    let reference = policy.valid();
    let (seqs, starts) = rollout(&reference, &Tokenizer::bundled());
    (device, policy, reference, seqs, starts)
}

/// Experience of `seqs` under `policy` against `reference`, the scores used as they are, β 0.2.
fn experience(
    policy: &Gpt,
    reference: &Gpt,
    seqs: &[Vec<u32>],
    starts: &[usize],
    scores: &[f32],
    cfg: &PpoConfig,
) -> Experience {
    crate::block_on(make_experience(
        &policy.valid(),
        reference,
        None,
        seqs.to_vec(),
        starts.to_vec(),
        scores.to_vec(),
        scores,
        0.2,
        cfg,
    ))
}

#[test]
fn the_first_minibatch_has_ratio_one_and_training_moves_the_policy() {
    let (device, policy, reference, seqs, starts) = trainable();
    let scores = [2.0, -2.0, 2.0, -2.0];
    let cfg = PpoConfig::new().with_minibatch_size(2).with_lr(1e-3);
    let exp = experience(&policy, &reference, &seqs, &starts, &scores, &cfg);
    let mut optim = cfg.optimizer();
    let mut policy = policy;
    let mut stats = Vec::new();
    for _epoch in 0..2 {
        // Minibatches of 2 replies, padded to their own length (not the batch's).
        for rows in [[3usize, 1], [0, 2]] {
            let (p, s) = crate::block_on(train_minibatch(
                policy, &mut optim, &exp, &rows, &cfg, &device,
            ));
            policy = p;
            stats.push(s);
        }
    }
    let first = stats[0];
    assert!((first.ratio - 1.0).abs() < 1e-5, "{first:?}");
    assert!(
        first.approx_kl < 1e-10 && first.clipfrac == 0.0,
        "{first:?}"
    );
    // Later minibatches see a policy that has moved.
    assert!(stats[2].approx_kl > 1e-8, "{stats:?}");
    let m = iteration_stats(&exp, &stats, 0.0);
    assert!(m.approxkl_avg > 0.0);
    assert_eq!(m.num_skipped_minibatches, 0);
    assert_eq!(m.minibatches, stats.len());
    // The replies with positive advantage became more likely than before.
    let after = experience(&policy, &reference, &seqs, &starts, &scores, &cfg);
    let kl = after.kl_per_reply();
    assert!(kl[0] > 0.0 && kl[2] > 0.0, "{kl:?}");
    assert!(kl[1] < 0.0 && kl[3] < 0.0, "{kl:?}");
}

/// Log-probs of `exp`'s sequences and the value head's outputs under `policy`.
fn logprobs_and_values(policy: &Gpt, exp: &Experience) -> (Vec<f32>, Vec<f32>) {
    let batch = Batch::right_padded(&exp.seqs, &policy.devices()[0]);
    let (logp, _, values) = crate::block_on(forward_stats(policy, &batch, true));
    (logp, values)
}

#[test]
fn the_value_loss_trains_only_the_value_head_unless_the_trunk_is_shared() {
    let (device, policy, reference, seqs, starts) = trainable();
    let scores = [2.0, -2.0, 2.0, -2.0];
    for shared in [false, true] {
        let cfg = PpoConfig::new()
            .with_minibatch_size(4)
            .with_value_through_trunk(shared);
        let mut exp = experience(&policy, &reference, &seqs, &starts, &scores, &cfg);
        // No advantage anywhere: the policy loss has no gradient, only the value loss does.
        exp.advantages.iter_mut().for_each(|a| *a = 0.0);
        let (logp_before, values_before) = logprobs_and_values(&policy.valid(), &exp);
        // Two steps: the head starts at zero, so only from the second step on can a value error
        // reach a shared trunk through it.
        let mut optim = cfg.optimizer();
        let mut after = policy.clone();
        for _ in 0..2 {
            let (p, stats) = crate::block_on(train_minibatch(
                after,
                &mut optim,
                &exp,
                &[0, 1, 2, 3],
                &cfg,
                &device,
            ));
            assert!(stats.v_loss > 0.0, "{stats:?}");
            after = p;
        }
        let (logp_after, values_after) = logprobs_and_values(&after.valid(), &exp);
        assert_ne!(
            values_before, values_after,
            "the value head learns (shared: {shared})"
        );
        if shared {
            assert_ne!(
                logp_before, logp_after,
                "a shared trunk moves the language model"
            );
        } else {
            assert_eq!(
                logp_before, logp_after,
                "a detached value head leaves it alone"
            );
        }
    }
}
