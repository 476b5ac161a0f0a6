use super::*;

fn t2(v: &[f32], rows: usize) -> Tensor<2> {
    let cols = v.len() / rows;
    Tensor::from_data(TensorData::new(v.to_vec(), [rows, cols]), &Device::flex())
}

fn scalar(x: Tensor<1>) -> f32 {
    x.into_scalar()
}

#[test]
fn advantages_are_scores_against_their_group_and_an_equal_group_gets_none() {
    // Group 1: scores 1, 2, 3, 6: mean 3, sample variance (4 + 1 + 0 + 9) / 3 = 14/3.
    // Group 2: all equal.
    let a = group_advantages(&[1.0, 2.0, 3.0, 6.0, 0.5, 0.5, 0.5, 0.5], 4);
    let std = (14.0f32 / 3.0).sqrt();
    let want = [-2.0 / std, -1.0 / std, 0.0, 3.0 / std, 0.0, 0.0, 0.0, 0.0];
    for (got, want) in a.iter().zip(want) {
        assert!((got - want).abs() < 1e-6, "{a:?}");
    }
    assert!((want[0] + 0.925_820_1).abs() < 1e-6);
    // Within a group the advantages sum to 0.
    assert!(a[..4].iter().sum::<f32>().abs() < 1e-5);
}

#[test]
fn the_grpo_loss_is_the_clipped_objective_per_reply_plus_the_kl_term() {
    // Two replies: the first has 2 actions and Â = 1, the second 1 action (and a padded
    // position) and Â = −0.5. On the first step π = π_old, so the ratio is 1.
    let mask = t2(&[1.0, 1.0, 1.0, 0.0], 2);
    let adv = t2(&[1.0, 1.0, -0.5, -0.5], 2);
    let new = t2(&[-1.0, -2.0, -0.5, -9.0], 2);
    // π_ref = π: no KL. Per reply: −Â; the loss is their mean, (−1 + 0.5) / 2.
    let l = grpo_loss(
        new.clone(),
        new.clone(),
        new.clone(),
        adv.clone(),
        mask.clone(),
        0.2,
        0.04,
    );
    assert!((scalar(l.loss) + 0.25).abs() < 1e-6);
    assert!(scalar(l.kl).abs() < 1e-7 && scalar(l.clipfrac) == 0.0);
    // log π_ref − log π = −0.5 on every action: KL per token e^−0.5 + 0.5 − 1 = 0.106531.
    let reference = t2(&[-1.5, -2.5, -1.0, -9.5], 2);
    let l = grpo_loss(
        new.clone(),
        new.clone(),
        reference,
        adv.clone(),
        mask.clone(),
        0.2,
        0.5,
    );
    let k = (-0.5f32).exp() + 0.5 - 1.0;
    assert!((k - 0.106_530_66).abs() < 1e-6);
    assert!((scalar(l.loss) - (-0.25 + 0.5 * k)).abs() < 1e-6);
    assert!((scalar(l.kl) - k).abs() < 1e-6);
    // A ratio of e^0.5 ≈ 1.65 on the first reply is clipped at 1.2 for Â > 0: −1.2 per token.
    let old = t2(&[-1.5, -2.5, -0.5, -9.0], 2);
    let l = grpo_loss(new.clone(), old, new, adv, mask, 0.2, 0.0);
    assert!((scalar(l.loss) - (-1.2 + 0.5) / 2.0).abs() < 1e-6);
    assert!((scalar(l.clipfrac) - 2.0 / 3.0).abs() < 1e-6);
    // The same ratio with Â < 0 is not held back by the clip (min picks the unclipped term):
    // −Â · ratio = e^0.5 per token, and no clipping is counted.
    let neg = t2(&[-1.0, -1.0, 0.0, 0.0], 2);
    let old = t2(&[-1.5, -2.5, -0.5, -9.0], 2);
    let new = t2(&[-1.0, -2.0, -0.5, -9.0], 2);
    let l = grpo_loss(
        new.clone(),
        old,
        new,
        neg,
        t2(&[1.0, 1.0, 1.0, 0.0], 2),
        0.2,
        0.0,
    );
    assert!((scalar(l.loss) - 0.5f32.exp() / 2.0).abs() < 1e-6);
    assert_eq!(scalar(l.clipfrac), 0.0);
}
