//! The reward model's training set: every piece of feedback in the log as weighted comparisons
//! and pointwise targets ([`RewardData::from_log`]), and the batches a fitting step draws.

use crate::feedback::{Feedback, FeedbackLog};
use crate::rng::Rng;
use crate::tokenizer::Tokenizer;
use std::collections::HashSet;

use super::RewardConfig;

/// One comparison: `chosen` should score above `rejected` (indices into [`RewardData::texts`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub chosen: usize,
    pub rejected: usize,
    /// 1 for a preference, ½ for a tie.
    pub target: f32,
    pub weight: f32,
    /// The newest piece of feedback (index in the log) this comparison depends on: tells which
    /// comparisons the reward model has not been trained on yet.
    pub newest: usize,
}

/// The reward model's training set, rebuilt from the whole log at each update.
#[derive(Clone, Debug, Default)]
pub struct RewardData {
    /// (prompt, reply) texts to score.
    pub texts: Vec<(String, String)>,
    pub pairs: Vec<Comparison>,
    /// (text, target u in [0, 1], newest feedback index) for the pointwise term.
    pub points: Vec<(usize, f32, usize)>,
    /// Comparisons whose `newest` is at least this are fresh: the reward model has not been
    /// fitted on them yet (the session sets it; 0 counts every comparison as fresh).
    pub fresh_from: usize,
}

impl RewardData {
    /// Turns every piece of feedback in `log` into comparisons and pointwise targets.
    pub fn from_log(log: &FeedbackLog, cfg: &RewardConfig) -> RewardData {
        let n = log.replies.len();
        let mut data = RewardData {
            texts: log
                .replies
                .iter()
                .map(|r| (log.prompts[r.prompt].clone(), r.text.clone()))
                .collect(),
            ..Default::default()
        };
        // The latest thumbs or stars of each reply, on the common scale u.
        let mut rated: Vec<Option<(f32, usize)>> = vec![None; n];
        for (i, fb) in log.feedback.iter().enumerate() {
            match fb {
                Feedback::Thumbs { reply, up } => {
                    rated[*reply] = Some((if *up { 1.0 } else { 0.0 }, i));
                }
                Feedback::Stars { reply, stars } => {
                    rated[*reply] = Some(((*stars as f32 - 1.0) / 4.0, i));
                }
                Feedback::Pair { better, worse, tie } => data.pairs.push(Comparison {
                    chosen: *better,
                    rejected: *worse,
                    target: if *tie { 0.5 } else { 1.0 },
                    weight: if *tie { cfg.tie_weight as f32 } else { 1.0 },
                    newest: i,
                }),
                Feedback::Demonstration { prompt, text } => {
                    data.texts
                        .push((log.prompts[*prompt].clone(), text.clone()));
                    let demo = data.texts.len() - 1;
                    for (j, r) in log.replies.iter().enumerate() {
                        if r.prompt == *prompt && r.text != *text {
                            data.pairs.push(Comparison {
                                chosen: demo,
                                rejected: j,
                                target: 1.0,
                                weight: 1.0,
                                newest: i,
                            });
                        }
                    }
                }
            }
        }
        if cfg.implied_pair_weight > 0.0 {
            data.add_implied_pairs(log, cfg);
        }
        let rated: Vec<(usize, f32, usize)> = rated
            .iter()
            .enumerate()
            .filter_map(|(j, r)| r.map(|(u, i)| (j, u, i)))
            .collect();
        for (a, &(ja, ua, ia)) in rated.iter().enumerate() {
            data.points.push((ja, ua, ia));
            for &(jb, ub, ib) in &rated[a + 1..] {
                if ua == ub {
                    continue;
                }
                let same = log.replies[ja].prompt == log.replies[jb].prompt;
                let (chosen, rejected) = if ua > ub { (ja, jb) } else { (jb, ja) };
                let w = (ua - ub).abs()
                    * if same {
                        1.0
                    } else {
                        cfg.cross_prompt_weight as f32
                    };
                data.pairs.push(Comparison {
                    chosen,
                    rejected,
                    target: 1.0,
                    weight: w,
                    newest: ia.max(ib),
                });
            }
        }
        data
    }

    /// The comparisons explicit pairs imply (`RewardConfig::implied_pair_weight`): every
    /// preferred reply against every rejected reply of another pair.
    fn add_implied_pairs(&mut self, log: &FeedbackLog, cfg: &RewardConfig) {
        let outcomes: Vec<(usize, usize, usize)> = log
            .feedback
            .iter()
            .enumerate()
            .filter_map(|(i, fb)| match fb {
                Feedback::Pair {
                    better,
                    worse,
                    tie: false,
                } => Some((*better, *worse, i)),
                _ => None,
            })
            .collect();
        // The comparisons the person made, either way round: nothing to imply there.
        let direct: HashSet<(usize, usize)> = outcomes
            .iter()
            .flat_map(|&(w, l, _)| [(w, l), (l, w)])
            .collect();
        for (a, &(win, _, ia)) in outcomes.iter().enumerate() {
            for (b, &(_, lose, ib)) in outcomes.iter().enumerate() {
                if a == b || win == lose || direct.contains(&(win, lose)) {
                    continue;
                }
                let same = log.replies[win].prompt == log.replies[lose].prompt;
                let w = cfg.implied_pair_weight * if same { 1.0 } else { cfg.cross_prompt_weight };
                self.pairs.push(Comparison {
                    chosen: win,
                    rejected: lose,
                    target: 1.0,
                    weight: w as f32,
                    newest: ia.max(ib),
                });
            }
        }
    }
}

/// Token ids of a (prompt, reply) exchange, cut to the context.
pub fn encode(tok: &Tokenizer, text: &(String, String), context: usize) -> Vec<u32> {
    let (mut ids, _) = tok.encode_exchange(&text.0, &text.1);
    ids.truncate(context);
    ids
}

/// Draws one step's batch: up to `batch_pairs` comparisons and as many pointwise targets, and
/// the distinct texts they need. Returns (texts, pairs as local indices, points as local indices).
#[allow(clippy::type_complexity)]
pub fn draw_batch(
    data: &RewardData,
    batch_pairs: usize,
    fresh_pairs: usize,
    rng: &mut Rng,
) -> (Vec<usize>, Vec<(usize, usize, f32, f32)>, Vec<(usize, f32)>) {
    let n = data.pairs.len();
    let pair_idx: Vec<usize> = if n <= batch_pairs {
        (0..n).collect()
    } else {
        // The newest feedback's comparisons first (up to `fresh_pairs` of them), so that every
        // rating is in the batches of the update it starts; the rest drawn from all of them.
        let k = fresh_pairs.min(batch_pairs);
        let fresh: Vec<usize> = if k == 0 {
            Vec::new()
        } else {
            (0..n)
                .filter(|&i| data.pairs[i].newest >= data.fresh_from)
                .collect()
        };
        let mut idx: Vec<usize> = if fresh.len() <= k {
            fresh
        } else {
            (0..k).map(|_| fresh[rng.below(fresh.len())]).collect()
        };
        while idx.len() < batch_pairs {
            idx.push(rng.below(n));
        }
        idx
    };
    // The pointwise term is a helper: half as many targets as comparisons, once there are any.
    let points_n = if data.pairs.is_empty() {
        batch_pairs
    } else {
        batch_pairs.div_ceil(2)
    };
    let point_idx: Vec<usize> = if data.points.len() <= points_n {
        (0..data.points.len()).collect()
    } else {
        (0..points_n)
            .map(|_| rng.below(data.points.len()))
            .collect()
    };
    let mut texts: Vec<usize> = Vec::new();
    let mut local = |t: usize| match texts.iter().position(|&x| x == t) {
        Some(i) => i,
        None => {
            texts.push(t);
            texts.len() - 1
        }
    };
    let pairs = pair_idx
        .iter()
        .map(|&i| {
            let c = &data.pairs[i];
            (local(c.chosen), local(c.rejected), c.target, c.weight)
        })
        .collect();
    let points = point_idx
        .iter()
        .map(|&i| {
            let (t, u, _) = data.points[i];
            (local(t), u)
        })
        .collect();
    (texts, pairs, points)
}
