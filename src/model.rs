//! The GPT: a decoder-only transformer in the style of GPT-2 and nanoGPT.
//!
//! Pre-LayerNorm blocks of causal multi-head self-attention and a GELU MLP, learned position
//! embeddings, the output projection tied to the token embedding (Press & Wolf 2017, as GPT-2 and
//! nanoGPT do), and a scalar head used as the PPO value function and the reward model's score.
//! Attention keeps an optional key/value cache so that sampling a reply costs one token's work
//! per step instead of re-reading the whole sequence.

use burn::module::Module;
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::prelude::*;
use burn::tensor::activation::{gelu, log_softmax, relu, softmax};

/// Shape of the model. Defaults chosen by measurement (see BENCHMARKS.md and docs/MODEL.md): this size
/// learns the corpus to ≥ 95% well-formed replies and trains a step in well under a second on
/// two CPU cores.
#[derive(Config, Debug, PartialEq)]
pub struct GptConfig {
    /// Token ids, special tokens included; must match the tokenizer (768, see tokenizer.rs).
    #[config(default = 768)]
    pub vocab_size: usize,
    /// Longest sequence (prompt + reply + markers) in tokens. Corpus exchanges measure 37
    /// tokens at the median, 65 at the 99th percentile and 74 at most (20 000 samples), so 96
    /// fits them all with room for a longer typed prompt.
    #[config(default = 96)]
    pub context: usize,
    /// Width of the residual stream (the suggestion; nanoGPT's "baby" Shakespeare model
    /// uses 384 for 10x the parameters).
    #[config(default = 128)]
    pub d_model: usize,
    /// Transformer blocks.
    #[config(default = 4)]
    pub n_layer: usize,
    /// Attention heads per block (head size d_model / n_head = 32).
    #[config(default = 4)]
    pub n_head: usize,
}

impl GptConfig {
    /// A freshly initialised model: weights N(0, 0.02), residual projections scaled by
    /// 1/sqrt(2 n_layer), biases zero, as in GPT-2 (Radford et al. 2019) and nanoGPT.
    pub fn init(&self, device: &Device) -> Gpt {
        assert_eq!(
            self.d_model % self.n_head,
            0,
            "d_model must divide into heads"
        );
        let normal = |std: f64| Initializer::Normal { mean: 0.0, std };
        let proj_std = 0.02 / (2.0 * self.n_layer as f64).sqrt();
        let linear = |i: usize, o: usize, std: f64| {
            LinearConfig::new(i, o)
                .with_initializer(normal(std))
                .init(device)
        };
        let d = self.d_model;
        let blocks = (0..self.n_layer)
            .map(|_| Block {
                ln_1: LayerNormConfig::new(d).init(device),
                attn_qkv: linear(d, 3 * d, 0.02),
                attn_proj: linear(d, d, proj_std),
                ln_2: LayerNormConfig::new(d).init(device),
                mlp_fc: linear(d, 4 * d, 0.02),
                mlp_proj: linear(4 * d, d, proj_std),
                n_head: self.n_head,
            })
            .collect();
        Gpt {
            wte: EmbeddingConfig::new(self.vocab_size, d)
                .with_initializer(normal(0.02))
                .init(device),
            wpe: EmbeddingConfig::new(self.context, d)
                .with_initializer(normal(0.02))
                .init(device),
            blocks,
            ln_f: LayerNormConfig::new(d).init(device),
            score_head: LinearConfig::new(d, 1)
                .with_initializer(Initializer::Zeros)
                .init(device),
            context: self.context,
        }
    }
}

/// One transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).
#[derive(Module, Debug)]
pub struct Block {
    ln_1: LayerNorm,
    attn_qkv: Linear,
    attn_proj: Linear,
    ln_2: LayerNorm,
    mlp_fc: Linear,
    mlp_proj: Linear,
    n_head: usize,
}

/// The language model with its scalar head.
#[derive(Module, Debug)]
pub struct Gpt {
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    /// Scalar head on the final hidden state: the value function in PPO, the score of the
    /// reward model. Initialised to zero so it starts neutral.
    score_head: Linear,
    context: usize,
}

/// Key/value tensors of earlier positions, one pair per block: `[B, n_head, T_past, head_size]`.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
}

impl KvCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some((k, _))) => k.dims()[2],
            _ => 0,
        }
    }

    /// True when nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Token ids with their positions and attention mask, ready for [`Gpt::forward`].
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[B, T]` token ids.
    pub tokens: Tensor<2, Int>,
    /// `[B, T]` position of each token within its own sequence.
    pub positions: Tensor<2, Int>,
    /// `[B, 1, T, T_past + T]`: true where a query may NOT look at a key (future or padding).
    pub mask: Tensor<4, Bool>,
}

impl Batch {
    /// Sequences padded on the right to the longest one (training and scoring). Padding comes
    /// after every real token, so the causal mask alone keeps it out of real positions.
    pub fn right_padded(seqs: &[Vec<u32>], device: &Device) -> Batch {
        let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let rows: Vec<Vec<u32>> = seqs
            .iter()
            .map(|s| {
                s.iter()
                    .copied()
                    .chain(std::iter::repeat(crate::tokenizer::PAD))
                    .take(t)
                    .collect()
            })
            .collect();
        let pads = vec![0; seqs.len()];
        Batch::build(&rows, &pads, 0, device)
    }

    /// Sequences padded on the left so that they all end together (prompts for sampling). Pad
    /// keys are masked and positions start at 0 on each sequence's first real token.
    pub fn left_padded(seqs: &[Vec<u32>], device: &Device) -> (Batch, Vec<usize>) {
        let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let pads: Vec<usize> = seqs.iter().map(|s| t - s.len()).collect();
        let rows: Vec<Vec<u32>> = seqs
            .iter()
            .zip(&pads)
            .map(|(s, &p)| {
                std::iter::repeat_n(crate::tokenizer::PAD, p)
                    .chain(s.iter().copied())
                    .collect()
            })
            .collect();
        (Batch::build(&rows, &pads, 0, device), pads)
    }

    /// General form: `rows` are `[B][T]` ids whose first absolute index is `past` (tokens
    /// before it are in a cache); `pads[b]` is the number of left-padding tokens of row b.
    pub fn build(rows: &[Vec<u32>], pads: &[usize], past: usize, device: &Device) -> Batch {
        let b = rows.len();
        let t = rows.first().map_or(0, Vec::len);
        let tk = past + t;
        let mut ids = Vec::with_capacity(b * t);
        let mut pos = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t * tk);
        for (row, &pad) in rows.iter().zip(pads) {
            assert_eq!(row.len(), t, "rows must have equal length");
            for (i, &id) in row.iter().enumerate() {
                let abs = past + i;
                ids.push(id as i32);
                pos.push(abs.saturating_sub(pad) as i32);
                // Query `abs` may see keys j <= abs that are not left padding.
                mask.extend((0..tk).map(|j| j > abs || j < pad));
            }
        }
        Batch {
            tokens: Tensor::from_data(TensorData::new(ids, [b, t]), device),
            positions: Tensor::from_data(TensorData::new(pos, [b, t]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, 1, t, tk]), device),
        }
    }
}

impl Block {
    fn forward(
        &self,
        x: Tensor<3>,
        mask: Tensor<4, Bool>,
        cache: &mut Option<(Tensor<4>, Tensor<4>)>,
        use_cache: bool,
    ) -> Tensor<3> {
        let c = x.dims()[2];
        let qkv = self.attn_qkv.forward(self.ln_1.forward(x.clone())); // [B, T, 3C]
        let part = |i: usize| self.heads(qkv.clone().slice(s![.., .., i * c..(i + 1) * c]));
        let (q, mut k, mut v) = (part(0), part(1), part(2)); // [B, nh, T, hs] each
        if use_cache {
            if let Some((k_past, v_past)) = cache.take() {
                k = Tensor::cat(vec![k_past, k], 2); // [B, nh, T_past + T, hs]
                v = Tensor::cat(vec![v_past, v], 2);
            }
            *cache = Some((k.clone(), v.clone()));
        }
        self.mlp(x + self.attend(q, k, v, mask))
    }

    /// The block's output `[B, 1, C]` at one position per row of a right-padded batch (given as
    /// flat indices `b * T + position` in `rows`), attending to every earlier position: all a
    /// head that reads one token needs from the top block. Keys and values come from every
    /// position; the query, attention output and MLP run at that position alone. `mask`
    /// `[B, 1, 1, T]`: true for the keys each query may not see.
    fn forward_at(&self, x: Tensor<3>, rows: Tensor<1, Int>, mask: Tensor<4, Bool>) -> Tensor<3> {
        let [b, t, c] = x.dims();
        let qkv = self.attn_qkv.forward(self.ln_1.forward(x.clone())); // [B, T, 3C]
        let at = |y: Tensor<3>, width: usize| {
            y.reshape([b * t, width])
                .select(0, rows.clone())
                .reshape([b, 1, width]) // [B, 1, width]
        };
        let q = self.heads(at(qkv.clone().slice(s![.., .., 0..c]), c)); // [B, nh, 1, hs]
        let part = |i: usize| self.heads(qkv.clone().slice(s![.., .., i * c..(i + 1) * c]));
        let (k, v) = (part(1), part(2)); // [B, nh, T, hs]
        self.mlp(at(x, c) + self.attend(q, k, v, mask)) // [B, 1, C]
    }

    /// `[B, T, C]` split into heads: `[B, nh, T, hs]`.
    fn heads(&self, y: Tensor<3>) -> Tensor<4> {
        let [b, t, c] = y.dims();
        let h = self.n_head;
        y.reshape([b, t, h, c / h]).swap_dims(1, 2)
    }

    /// Causal self-attention's output `[B, Tq, C]` (after the output projection) for queries
    /// `[B, nh, Tq, hs]` over keys and values `[B, nh, Tk, hs]`; `mask` `[B, 1, Tq, Tk]`.
    fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Tensor<4, Bool>) -> Tensor<3> {
        let [b, h, tq, hs] = q.dims();
        let tk = k.dims()[2];
        let att = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (hs as f64).sqrt()); // [B, nh, Tq, Tk]
        // -1e9 rather than -inf: a row of pure padding then averages instead of giving NaN.
        let att = att.mask_fill(mask.expand([b, h, tq, tk]), -1.0e9);
        let y = softmax(att, 3).matmul(v); // [B, nh, Tq, hs]
        let y = y.swap_dims(1, 2).reshape([b, tq, h * hs]); // [B, Tq, C]
        self.attn_proj.forward(y)
    }

    /// The MLP sub-block with its residual: `x + W2 gelu(W1 ln_2(x))`.
    fn mlp(&self, x: Tensor<3>) -> Tensor<3> {
        let m = self
            .mlp_proj
            .forward(gelu_safe(self.mlp_fc.forward(self.ln_2.forward(x.clone()))));
        x + m
    }
}

impl Gpt {
    /// The longest sequence the model takes.
    pub fn context(&self) -> usize {
        self.context
    }

    /// Final hidden states `[B, T, C]`. With a cache, `batch` holds only the new positions and
    /// their keys and values are appended to it.
    pub fn forward(&self, batch: &Batch, cache: Option<&mut KvCache>) -> Tensor<3> {
        let mut x =
            self.wte.forward(batch.tokens.clone()) + self.wpe.forward(batch.positions.clone()); // [B, T, C]
        let use_cache = cache.is_some();
        let mut scratch = KvCache::default();
        let cache = cache.unwrap_or(&mut scratch);
        cache.layers.resize(self.blocks.len(), None);
        for (block, layer_cache) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.forward(x, batch.mask.clone(), layer_cache, use_cache);
        }
        self.ln_f.forward(x)
    }

    /// The residual stream `[B, T, C]` after the embeddings and the first `blocks` blocks: the
    /// features a model with a frozen bottom computes once per sequence.
    pub fn features(&self, batch: &Batch, blocks: usize) -> Tensor<3> {
        let mut x =
            self.wte.forward(batch.tokens.clone()) + self.wpe.forward(batch.positions.clone()); // [B, T, C]
        for block in self.blocks.iter().take(blocks) {
            x = block.forward(x, batch.mask.clone(), &mut None, false);
        }
        x
    }

    /// Final hidden states `[B, T, C]` from the residual stream `x` after `first_block` blocks
    /// (see [`Gpt::features`]); `mask` as in [`Batch`].
    pub fn forward_from(
        &self,
        x: Tensor<3>,
        mask: Tensor<4, Bool>,
        first_block: usize,
    ) -> Tensor<3> {
        let mut x = x;
        for block in self.blocks.iter().skip(first_block) {
            x = block.forward(x, mask.clone(), &mut None, false);
        }
        self.ln_f.forward(x)
    }

    /// Final hidden states `[B, C]` at position `last[b]` of each row of a right-padded batch,
    /// from the residual stream `x` after `first_block` blocks (see [`Gpt::features`]); `mask`
    /// as in [`Batch`]. The same numbers as [`Gpt::forward_from`] read at `last` (up to float
    /// rounding), for a fraction of the top block's work: a scalar head on the last token (the
    /// reward model) needs nothing else.
    pub fn forward_last_from(
        &self,
        x: Tensor<3>,
        mask: Tensor<4, Bool>,
        first_block: usize,
        last: &[usize],
    ) -> Tensor<2> {
        let [b, t, c] = x.dims();
        let device = x.device();
        let n = self.blocks.len();
        let mut x = x;
        for block in self
            .blocks
            .iter()
            .take(n.saturating_sub(1))
            .skip(first_block)
        {
            x = block.forward(x, mask.clone(), &mut None, false);
        }
        let rows: Vec<i32> = last
            .iter()
            .enumerate()
            .map(|(i, &p)| (i * t + p) as i32)
            .collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [b]), &device);
        let x = match self.blocks.last() {
            Some(top) if first_block < n => {
                let keys: Vec<bool> = last
                    .iter()
                    .flat_map(|&p| (0..t).map(move |j| j > p))
                    .collect();
                let mask =
                    Tensor::<4, Bool>::from_data(TensorData::new(keys, [b, 1, 1, t]), &device);
                top.forward_at(x, rows, mask) // [B, 1, C]
            }
            _ => x.reshape([b * t, c]).select(0, rows).reshape([b, 1, c]),
        };
        self.ln_f.forward(x).reshape([b, c])
    }

    /// Transformer blocks.
    pub fn n_layer(&self) -> usize {
        self.blocks.len()
    }

    /// Next-token logits `[B, T, V]` from hidden states, through the tied embedding.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, t, c] = hidden.dims();
        let w = self.wte.weight.val(); // [V, C]
        let v = w.dims()[0];
        hidden
            .reshape([b * t, c])
            .matmul(w.transpose())
            .reshape([b, t, v]) // [B, T, V]
    }

    /// The scalar head itself (PPO gives it its own learning rate).
    pub fn score_head(&self) -> &Linear {
        &self.score_head
    }

    /// The scalar head at every position `[B, T]`.
    pub fn scores(&self, hidden: Tensor<3>) -> Tensor<2> {
        self.score_head.forward(hidden).squeeze_dim(2) // [B, T, 1] -> [B, T]
    }

    /// `logp[b, t] = log p(tokens[b, t+1] | tokens[b, ..=t])`, shape `[B, T-1]`, from hidden
    /// states of a right-padded batch. What SFT, PPO and DPO need, in one batched pass.
    pub fn token_logprobs(&self, hidden: Tensor<3>, tokens: Tensor<2, Int>) -> Tensor<2> {
        let (logp, _) = self.token_logprobs_and_entropy(hidden, tokens, Entropy::Skip);
        logp
    }

    /// As [`Gpt::token_logprobs`], plus the entropy of each predictive distribution `[B, T-1]`
    /// unless `entropy` is [`Entropy::Skip`] (PPO logs it, and may train on it).
    pub fn token_logprobs_and_entropy(
        &self,
        hidden: Tensor<3>,
        tokens: Tensor<2, Int>,
        entropy: Entropy,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        let [_, t, _] = hidden.dims();
        let logits = self.logits(hidden.slice(s![.., 0..t - 1, ..])); // [B, T-1, V]
        let logp_all = log_softmax(logits, 2); // [B, T-1, V]
        let targets = tokens.slice(s![.., 1..t]).unsqueeze_dim::<3>(2); // [B, T-1, 1]
        let of = |lp: Tensor<3>| {
            (lp.clone().exp() * lp).sum_dim(2).squeeze_dim::<2>(2).neg() // [B, T-1]
        };
        let ent = match entropy {
            Entropy::Skip => None,
            // A metric only: no gradient flows back through the [B, T-1, V] products.
            Entropy::Detached => Some(of(logp_all.clone().detach())),
            Entropy::Tracked => Some(of(logp_all.clone())),
        };
        (logp_all.gather(2, targets).squeeze_dim(2), ent) // [B, T-1]
    }

    /// The number of trainable parameters (the tied output projection counted once).
    pub fn num_parameters(&self) -> usize {
        self.num_params()
    }

    /// The number of token ids the model knows.
    pub fn vocab_size(&self) -> usize {
        self.wte.weight.val().dims()[0]
    }
}

/// Whether [`Gpt::token_logprobs_and_entropy`] computes the entropy, and with its gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entropy {
    Skip,
    Detached,
    Tracked,
}

/// Where [`gelu_safe`] hands over from burn's GELU to the identity (and, below its negative, to zero).
pub const GELU_LINEAR_FROM: f64 = 9.0;

/// GELU with a gradient that stays finite on WebGPU: the same values as burn's `gelu`
/// (`x Φ(x)`), computed as `gelu(clamp(x, -9, 9)) + relu(x - 9)`.
///
/// burn's GELU backward uses the derivative of the tanh approximation, `tanh(0.797885 x +
/// 0.0356774 x³)`; WGSL's `tanh` (SwiftShader's, at least) overflows to NaN once that argument
/// passes about 44, which is `x` ≈ 10.5, and the trained base model's top MLP has
/// pre-activations beyond it: one optimiser step on WebGPU then turned every weight to NaN.
/// Past ±9 GELU is the identity or zero to f32 precision (`gelu(9) = 9` exactly, `|gelu(-9)|
/// < 1e-17`), so the clamp changes no value, and the gradient there is the identity's 1 (the
/// `relu`) or 0, which is also what burn's backward gives (`tanh` is exactly 1 in f32 there).
/// For `|x| <= 9` the values and gradients are burn's own.
pub fn gelu_safe<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let c = GELU_LINEAR_FROM;
    gelu(x.clone().clamp(-c, c)) + relu(x.sub_scalar(c))
}

/// Masked mean over `[B, T]` values where `mask` is 1.0 (and 0.0 elsewhere).
pub fn masked_mean(values: Tensor<2>, mask: Tensor<2>) -> Tensor<1> {
    let n = mask.clone().sum().clamp_min(1.0);
    (values * mask).sum() / n
}

#[cfg(test)]
mod tests;
