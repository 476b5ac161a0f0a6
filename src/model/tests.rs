use super::*;
use crate::checkpoint;
use crate::pretrain::lm_loss;
use crate::rng::Rng;
use crate::sample::{SampleConfig, generate};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Tolerance;

fn tiny() -> GptConfig {
    GptConfig::new()
        .with_vocab_size(37)
        .with_context(16)
        .with_d_model(16)
        .with_n_layer(2)
        .with_n_head(2)
}

fn dev() -> Device {
    Device::flex()
}

fn model(cfg: &GptConfig, seed: u64) -> Gpt {
    let d = dev();
    d.seed(seed);
    cfg.init(&d)
}

fn seqs(cfg: &GptConfig, lens: &[usize], seed: u64) -> Vec<Vec<u32>> {
    let mut rng = Rng::new(seed);
    lens.iter()
        .map(|&n| {
            (0..n)
                .map(|_| 4 + rng.below(cfg.vocab_size - 4) as u32)
                .collect()
        })
        .collect()
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn shapes_of_hidden_logits_scores_and_logprobs() {
    let cfg = tiny();
    let m = model(&cfg, 1);
    let batch = Batch::right_padded(&seqs(&cfg, &[5, 9, 7], 2), &dev());
    let hidden = m.forward(&batch, None);
    assert_eq!(hidden.dims(), [3, 9, 16]);
    assert_eq!(m.logits(hidden.clone()).dims(), [3, 9, 37]);
    assert_eq!(m.scores(hidden.clone()).dims(), [3, 9]);
    let (lp, ent) = m.token_logprobs_and_entropy(hidden, batch.tokens.clone(), Entropy::Tracked);
    assert_eq!(lp.dims(), [3, 8]);
    let ent = floats(ent.unwrap());
    // Entropy of a distribution over 37 tokens lies in [0, ln 37].
    assert!(ent.iter().all(|&e| e >= -1e-5 && e <= (37f32).ln() + 1e-4));
    assert!(floats(lp).iter().all(|&l| l <= 0.0));
}

#[test]
fn batched_logprobs_equal_a_naive_one_sequence_at_a_time_computation() {
    let cfg = tiny();
    let m = model(&cfg, 3);
    let data = seqs(&cfg, &[4, 11, 8], 4);
    let batch = Batch::right_padded(&data, &dev());
    let lp = floats(m.token_logprobs(m.forward(&batch, None), batch.tokens.clone()));
    let t = 11;
    for (b, s) in data.iter().enumerate() {
        for i in 0..s.len() - 1 {
            // Naive: the prefix alone, full softmax, pick the next token.
            let prefix = Batch::right_padded(&[s[..=i].to_vec()], &dev());
            let logits = floats(m.logits(m.forward(&prefix, None)));
            let row = &logits[i * 37..(i + 1) * 37];
            let max = row.iter().cloned().fold(f32::MIN, f32::max);
            let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
            let naive = row[s[i + 1] as usize] - lse;
            let got = lp[b * (t - 1) + i];
            assert!(
                (naive - got).abs() < 1e-4,
                "seq {b} pos {i}: {naive} vs {got}"
            );
        }
    }
}

#[test]
fn the_last_token_forward_equals_the_full_forward_read_at_the_last_token() {
    // Three blocks so that both the full blocks and the top block's one-position path run, from
    // every starting depth; rows of different lengths, so padding follows the shorter ones.
    let cfg = tiny().with_n_layer(3);
    let m = model(&cfg, 5);
    let data = seqs(&cfg, &[3, 12, 7, 1], 6);
    let batch = Batch::right_padded(&data, &dev());
    let last: Vec<usize> = data.iter().map(|s| s.len() - 1).collect();
    let full = floats(m.forward(&batch, None)); // [B, T, C]
    let (t, c) = (12, 16);
    for first in 0..=3 {
        let x = m.features(&batch, first);
        let got = floats(m.forward_last_from(x, batch.mask.clone(), first, &last)); // [B, C]
        for (b, &p) in last.iter().enumerate() {
            for k in 0..c {
                let (want, have) = (full[(b * t + p) * c + k], got[b * c + k]);
                assert!(
                    (want - have).abs() < 1e-4,
                    "from block {first}, row {b}, channel {k}: {want} vs {have}"
                );
            }
        }
    }
}

#[test]
fn left_padding_does_not_change_a_sequence_s_outputs() {
    let cfg = tiny();
    let m = model(&cfg, 5);
    let data = seqs(&cfg, &[3, 8], 6);
    let (batch, pads) = Batch::left_padded(&data, &dev());
    assert_eq!(pads, vec![5, 0]);
    let both = floats(m.logits(m.forward(&batch, None)));
    let alone = floats(m.logits(m.forward(&Batch::right_padded(&data[..1], &dev()), None)));
    // Row 0's real tokens sit at positions 5..8 of the padded batch.
    for i in 0..3 {
        for v in 0..37 {
            let a = alone[i * 37 + v];
            let b = both[(5 + i) * 37 + v];
            assert!((a - b).abs() < 1e-4, "pos {i} tok {v}: {a} vs {b}");
        }
    }
}

#[test]
fn greedy_generation_is_the_same_with_and_without_the_kv_cache() {
    let cfg = tiny().with_context(24);
    let m = model(&cfg, 7);
    let prompts = seqs(&cfg, &[3, 6, 5], 8);
    let sc = SampleConfig::new()
        .with_temperature(0.0)
        .with_max_new_tokens(16);
    let with = crate::block_on(generate(&m, &prompts, &sc, &mut Rng::new(0), true));
    let without = crate::block_on(generate(&m, &prompts, &sc, &mut Rng::new(0), false));
    assert_eq!(with, without);
    assert!(with.iter().any(|s| s.tokens.len() > 3), "{with:?}");
    // Sampling at temperature 1 with the same seed reproduces itself.
    let sc = SampleConfig::new();
    let a = crate::block_on(generate(&m, &prompts, &sc, &mut Rng::new(9), true));
    let b = crate::block_on(generate(&m, &prompts, &sc, &mut Rng::new(9), true));
    assert_eq!(a, b);
}

#[test]
fn save_and_load_round_trip_bit_exact_and_half_precision_is_close() {
    let cfg = tiny();
    let m = model(&cfg, 11);
    let data = seqs(&cfg, &[6, 9], 12);
    let batch = Batch::right_padded(&data, &dev());
    let before = m.logits(m.forward(&batch, None)).into_data();
    let bytes = checkpoint::to_bytes(&m, false).unwrap();
    let back = checkpoint::from_bytes(&cfg, &bytes, &dev()).unwrap();
    let after = back.logits(back.forward(&batch, None)).into_data();
    assert_eq!(before, after, "f32 round trip must be bit-exact");
    assert_eq!(checkpoint::to_bytes(&back, false).unwrap(), bytes);

    let half = checkpoint::to_bytes(&m, true).unwrap();
    // f16 saves 2 bytes per parameter (the rest is names and shapes).
    let saved = bytes.len() - half.len();
    assert!(
        saved >= m.num_parameters() * 2 * 9 / 10,
        "{} vs {}",
        half.len(),
        bytes.len()
    );
    let h = checkpoint::from_bytes(&cfg, &half, &dev()).unwrap();
    // Saving the loaded half model again gives the same bytes (f16 -> f32 -> f16 is exact).
    assert_eq!(checkpoint::to_bytes(&h, true).unwrap(), half);
    h.logits(h.forward(&batch, None))
        .into_data()
        .assert_approx_eq::<f32>(&before, Tolerance::absolute(2e-2));
    assert!(checkpoint::from_bytes(&cfg, b"not a checkpoint", &dev()).is_err());
    assert!(checkpoint::from_bytes(&cfg.clone().with_d_model(32), &bytes, &dev()).is_err());
}

#[test]
fn gradients_match_finite_differences() {
    let cfg = tiny();
    let ad = dev().autodiff();
    ad.seed(13);
    let m = cfg.init(&ad);
    let data = seqs(&cfg, &[7, 10], 14);
    let loss = lm_loss(&m, &data, &ad);
    let grads = loss.backward();
    let analytic: Vec<f32> = floats(m.blocks[0].attn_qkv.weight.grad(&grads).unwrap());
    let base = m.valid();
    let w = floats(base.blocks[0].attn_qkv.weight.val());
    let shape = base.blocks[0].attn_qkv.weight.val().dims();
    let eps = 1e-2f32;
    let loss_at = |idx: usize, delta: f32| -> f64 {
        let mut w2 = w.clone();
        w2[idx] += delta;
        let mut m2 = base.clone();
        m2.blocks[0].attn_qkv.weight = m2.blocks[0]
            .attn_qkv
            .weight
            .clone()
            .map(|_| Tensor::from_data(TensorData::new(w2.clone(), shape), &dev()));
        let l: f32 = lm_loss(&m2, &data, &dev()).into_scalar();
        l as f64
    };
    let mut checked = 0;
    for idx in (0..w.len()).step_by(37).take(20) {
        let numeric = (loss_at(idx, eps) - loss_at(idx, -eps)) / (2.0 * eps as f64);
        let a = analytic[idx] as f64;
        let err = (numeric - a).abs() / (numeric.abs() + a.abs()).max(1e-3);
        assert!(err < 0.05, "param {idx}: numeric {numeric} vs analytic {a}");
        checked += 1;
    }
    assert_eq!(checked, 20);
}

#[test]
fn loss_falls_on_a_fixed_batch() {
    let cfg = tiny();
    let ad = dev().autodiff();
    ad.seed(15);
    let mut m = cfg.init(&ad);
    let mut optim = AdamWConfig::new().init();
    let data = seqs(&cfg, &[12, 12, 9, 14], 16);
    let first: f32 = lm_loss(&m, &data, &ad).into_scalar();
    // Uniform over 37 tokens is ln 37 = 3.61: a fresh model starts near it.
    assert!((first - 37f32.ln()).abs() < 0.3, "{first}");
    for _ in 0..40 {
        let loss = lm_loss(&m, &data, &ad);
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        m = optim.step(1e-2, m, grads);
    }
    let last: f32 = lm_loss(&m, &data, &ad).into_scalar();
    assert!(last < first * 0.5, "{first} -> {last}");
}

/// `gelu_safe` is burn's GELU in value and gradient everywhere (its reason to exist is that
/// burn's backward overflows WGSL's `tanh` past x ≈ 10.5; tests/web.rs checks that on WebGPU),
/// and past ±9 its gradient is the identity's 1 or 0, never anything the `tanh` computed.
#[test]
fn gelu_safe_has_gelu_s_values_and_gradients() {
    let ad = dev().autodiff();
    let xs: Vec<f32> = (-120..=120).map(|i| i as f32 * 0.25 + 0.013).collect();
    let n = xs.len();
    let input = || Tensor::<1>::from_data(TensorData::new(xs.clone(), [n]), &ad).require_grad();
    let (a, b) = (input(), input());
    let ya = gelu(a.clone());
    let yb = gelu_safe(b.clone());
    let (va, vb) = (floats(ya.clone()), floats(yb.clone()));
    // Weighted sums, so that each position's gradient is its own derivative times a weight.
    let w = Tensor::<1>::from_data(
        TensorData::new(xs.iter().map(|x| 1.0 + x.abs()).collect::<Vec<f32>>(), [n]),
        &ad,
    );
    let ga = floats(a.grad(&(ya * w.clone()).sum().backward()).unwrap());
    let gb = floats(b.grad(&(yb * w).sum().backward()).unwrap());
    for i in 0..n {
        let x = xs[i];
        assert!(
            (va[i] - vb[i]).abs() <= 1e-6 * va[i].abs().max(1.0),
            "gelu({x}) = {} but gelu_safe gives {}",
            va[i],
            vb[i]
        );
        assert!(
            (ga[i] - gb[i]).abs() <= 1e-5 * ga[i].abs().max(1.0),
            "gradient at {x}: gelu {} against gelu_safe {}",
            ga[i],
            gb[i]
        );
        let weight = 1.0 + x.abs();
        if x > GELU_LINEAR_FROM as f32 {
            assert_eq!(gb[i], weight, "the identity's slope at {x}");
        } else if x < -GELU_LINEAR_FROM as f32 {
            assert_eq!(gb[i], 0.0, "zero slope at {x}");
        }
    }
}
