//! Batched sampling of replies: temperature, top-k and top-p (nucleus), stopping at `<|end|>`,
//! with the key/value cache so each new token costs one position's work.
//!
//! Every read of model output goes through `into_data_async`: on WebGPU in the browser a
//! synchronous readback panics, so the same async code runs everywhere (natively it is driven
//! by [`crate::block_on`]). The random draws happen on the CPU from our own seeded [`Rng`], so a
//! seed reproduces the same replies on every backend.

use crate::model::{Batch, Gpt, KvCache};
use crate::rng::Rng;
use crate::settings::config;
use crate::tokenizer::{END, PAD};
use burn::prelude::*;

config! {
    /// How to pick each next token.
    pub struct SampleConfig in "Sampling" {
        /// Randomness of the replies you see: 0 = always the likeliest word, 1 = the model's own odds.
        temperature: f64 = 1.0 in 0.0..=10.0, "Temperature", basic;
        /// Sample only among the k likeliest words (0 = all).
        top_k: usize = 0 in 0..=100_000, "Top-k", advanced;
        /// Sample only among the likeliest words that together reach this probability (Holtzman et al. 2020).
        top_p: f64 = 1.0 in 1e-3..=1.0, "Top-p", advanced;
        /// Longest reply you see, in tokens (the model's context also bounds it).
        max_new_tokens: usize = 64 in 1..=96, "Longest reply", advanced;
    }
}

/// One sampled reply.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampled {
    /// Reply token ids, without the final `<|end|>`.
    pub tokens: Vec<u32>,
    /// Whether the model ended the reply itself (rather than running out of room).
    pub finished: bool,
}

impl Sampled {
    /// `prompt` followed by the reply and its `<|end|>`: always when `close`, else only when the
    /// model ended the reply itself.
    pub fn sequence(&self, prompt: &[u32], close: bool) -> Vec<u32> {
        let mut s = prompt.to_vec();
        s.extend(&self.tokens);
        if close || self.finished {
            s.push(END);
        }
        s
    }
}

/// Samples one reply per prompt (prompts are `<|user|> ... <|bot|>` token ids).
pub async fn generate(
    model: &Gpt,
    prompts: &[Vec<u32>],
    cfg: &SampleConfig,
    rng: &mut Rng,
    use_cache: bool,
) -> Vec<Sampled> {
    let device = model
        .devices()
        .first()
        .cloned()
        .unwrap_or_else(Device::flex);
    let b = prompts.len();
    if b == 0 {
        return Vec::new();
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let room = model
        .context()
        .saturating_sub(longest)
        .min(cfg.max_new_tokens);
    let mut out: Vec<Sampled> = vec![
        Sampled {
            tokens: Vec::new(),
            finished: false
        };
        b
    ];
    if room == 0 {
        return out;
    }
    let (first, pads) = Batch::left_padded(prompts, &device);
    let mut rows: Vec<Vec<u32>> = prompts
        .iter()
        .zip(&pads)
        .map(|(p, &pad)| {
            std::iter::repeat_n(PAD, pad)
                .chain(p.iter().copied())
                .collect()
        })
        .collect();
    let mut cache = KvCache::default();
    let mut batch = first;
    for step in 0..room {
        let hidden = if use_cache {
            model.forward(&batch, Some(&mut cache))
        } else {
            model.forward(&batch, None)
        };
        let t = hidden.dims()[1];
        let last = hidden.slice(s![.., t - 1..t, ..]); // [B, 1, C]
        let logits = model.logits(last).reshape([b, model.vocab_size()]); // [B, V]
        let data = logits.into_data_async().await.expect("reading logits back");
        let logits: Vec<f32> = data.try_to_vec::<f32>().expect("f32 logits");
        let next = pick_next(&mut out, &logits, cfg, rng);
        if out.iter().all(|o| o.finished) || step + 1 == room {
            break;
        }
        for (row, &tok) in rows.iter_mut().zip(&next) {
            row.push(tok);
        }
        batch = if use_cache {
            let past = rows[0].len() - 1;
            let new: Vec<Vec<u32>> = next.iter().map(|&t| vec![t]).collect();
            Batch::build(&new, &pads, past, &device)
        } else {
            Batch::build(&rows, &pads, 0, &device)
        };
    }
    out
}

/// Picks each unfinished reply's next token from its row of `logits` (`[B * V]`), in order:
/// a reply that picks `<|end|>` is finished. Returns the tokens to feed next (padding where a
/// reply is finished).
fn pick_next(out: &mut [Sampled], logits: &[f32], cfg: &SampleConfig, rng: &mut Rng) -> Vec<u32> {
    let v = logits.len() / out.len();
    let mut next = vec![PAD; out.len()];
    for (i, o) in out.iter_mut().enumerate() {
        if o.finished {
            continue;
        }
        let tok = pick(&logits[i * v..(i + 1) * v], cfg, rng);
        if tok == END {
            o.finished = true;
        } else {
            o.tokens.push(tok);
            next[i] = tok;
        }
    }
    next
}

/// Picks a token id from one row of logits under the sampling settings.
pub fn pick(logits: &[f32], cfg: &SampleConfig, rng: &mut Rng) -> u32 {
    // Never sample padding or a second prompt marker.
    let allowed = |i: usize| {
        i != PAD as usize
            && i != crate::tokenizer::USER as usize
            && i != crate::tokenizer::BOT as usize
    };
    if cfg.temperature <= 0.0 {
        let best = (0..logits.len())
            .filter(|&i| allowed(i))
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap_or(END as usize);
        return best as u32;
    }
    let mut cand: Vec<(usize, f64)> = (0..logits.len())
        .filter(|&i| allowed(i))
        .map(|i| (i, logits[i] as f64 / cfg.temperature))
        .collect();
    cand.sort_by(|a, b| b.1.total_cmp(&a.1));
    if cfg.top_k > 0 {
        cand.truncate(cfg.top_k);
    }
    let max = cand[0].1;
    let mut probs: Vec<f64> = cand.iter().map(|(_, l)| (l - max).exp()).collect();
    let z: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= z);
    if cfg.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if acc >= cfg.top_p {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
    }
    cand[rng.weighted(&probs)].0 as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_top_k_and_top_p_pick_from_the_right_sets() {
        let mut rng = Rng::new(0);
        // ids 0-2 are PAD/USER/BOT and are never picked, even when most likely.
        let logits = [9.0, 9.0, 9.0, 0.0, 2.0, 1.0, -1.0];
        let greedy = SampleConfig::new().with_temperature(0.0);
        assert_eq!(pick(&logits, &greedy, &mut rng), 4);
        let top2 = SampleConfig::new().with_top_k(2);
        for _ in 0..200 {
            assert!([4, 5].contains(&pick(&logits, &top2, &mut rng)));
        }
        // p(4) = 0.66 of the allowed mass: top_p 0.5 keeps only it.
        let nucleus = SampleConfig::new().with_top_p(0.5);
        for _ in 0..200 {
            assert_eq!(pick(&logits, &nucleus, &mut rng), 4);
        }
        let all = SampleConfig::new();
        let seen: std::collections::HashSet<u32> =
            (0..2000).map(|_| pick(&logits, &all, &mut rng)).collect();
        assert_eq!(seen, [3, 4, 5, 6].into_iter().collect());
    }
}
