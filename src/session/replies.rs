//! What a session shows a person: replies to rate, before/after, the fresh samples after an
//! update with their per-token change, and PPO's score of any reply.

use super::Session;
use crate::error::{Error, Result};
use crate::model::{Batch, Gpt};
use crate::report::{Generated, SampleReport, TokenChange};
use crate::rng::Rng;
use crate::sample::generate;
use crate::tokenizer::END;

impl Session {
    /// The most replies [`Session::generate`] samples at once.
    pub const MAX_REPLIES: usize = 16;

    /// `<|user|> prompt <|bot|>`, shortened from the front when it would leave too little room
    /// for the reply ([`crate::tokenizer::Tokenizer::fit_prompt`]).
    pub fn prompt_ids(&self, prompt: &str) -> Vec<u32> {
        self.tok.fit_prompt(prompt, self.reference.context()).0
    }

    /// Samples `n` replies to `prompt` from the current policy and records them, so that
    /// feedback can refer to them. With a `reply_pool` larger than `n`, Pip writes that many and
    /// shows the `n` most worth rating ([`Session::pick`]).
    pub async fn generate(&mut self, prompt: &str, n: usize) -> Result<Vec<Generated>> {
        if !(1..=Self::MAX_REPLIES).contains(&n) {
            return Err(Error::Feedback(format!(
                "ask for 1 to {} replies, not {n}",
                Self::MAX_REPLIES
            )));
        }
        let p = self.log.add_prompt(prompt)?;
        let (prompt_ids, shortened) = self.tok.fit_prompt(prompt, self.reference.context());
        let pool = self.cfg.reply_pool.max(n);
        let ids = vec![prompt_ids; pool];
        let out = generate(&self.policy(), &ids, &self.cfg.sample, &mut self.rng, true).await;
        let texts: Vec<String> = out.iter().map(|o| self.tok.decode(&o.tokens)).collect();
        let shown = match pool > n {
            true => self.pick(prompt, &texts, n).await,
            false => (0..n).collect(),
        };
        let mut replies = Vec::new();
        for i in shown {
            let reply = self.log.add_reply(p, &texts[i], self.version)?;
            replies.push(Generated {
                prompt: p,
                reply,
                text: texts[i].clone(),
                shortened,
            });
        }
        Ok(replies)
    }

    /// Which `n` of the candidate replies `texts` to `prompt` to show: distinct ones, half of
    /// them those the method rates highest now (the reward model's score for PPO and GRPO, the
    /// implicit reward log π/π_ref for the others), alternating with ones drawn at random from the rest,
    /// so that a person with a rare taste sees replies near it early and each pair shown puts
    /// a favourite beside an ordinary reply. Before there is anything to rank by, the first `n`.
    async fn pick(&mut self, prompt: &str, texts: &[String], n: usize) -> Vec<usize> {
        let mut distinct: Vec<usize> = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            if !distinct.iter().any(|&j| texts[j] == *t) {
                distinct.push(i);
            }
        }
        // Too few distinct replies: show them, then repeats.
        if distinct.len() <= n {
            let rest = (0..texts.len()).filter(|i| !distinct.contains(i));
            return distinct.iter().copied().chain(rest).take(n).collect();
        }
        let exchanges: Vec<(String, String)> = distinct
            .iter()
            .map(|&i| (prompt.to_string(), texts[i].clone()))
            .collect();
        let scores = match self.cfg.method {
            m if m.uses_reward_model() && !self.trainers.reward.is_fitted() => {
                return distinct[..n].to_vec();
            }
            m if m.uses_reward_model() => self.reward_scores(&exchanges).await,
            _ if self.version == 0 => return distinct[..n].to_vec(),
            _ => self.log_ratios(&exchanges).await,
        };
        let mut ranked: Vec<usize> = (0..distinct.len()).collect();
        ranked.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let best = n.div_ceil(2);
        let mut rest: Vec<usize> = ranked[best..].to_vec();
        let mut shown = Vec::with_capacity(n);
        for k in 0..n {
            let pick = if k % 2 == 0 && k / 2 < best {
                ranked[k / 2]
            } else {
                rest.swap_remove(self.rng.below(rest.len()))
            };
            shown.push(distinct[pick]);
        }
        shown
    }

    /// log π(y|x) − log π_ref(y|x) of each exchange: the implicit reward DPO and KTO train.
    async fn log_ratios(&self, exchanges: &[(String, String)]) -> Vec<f32> {
        let context = self.reference.context();
        let seqs: Vec<(Vec<u32>, usize)> = exchanges
            .iter()
            .map(|(prompt, reply)| self.tok.fit_exchange(prompt, reply, context))
            .collect();
        let policy = self.policy();
        let pi = crate::read(crate::sft::reply_logprobs(&policy, &seqs, &self.device).0).await;
        let reference = &self.reference;
        let r = crate::read(crate::sft::reply_logprobs(reference, &seqs, &self.device).0).await;
        pi.iter().zip(&r).map(|(a, b)| a - b).collect()
    }

    /// One reply to `prompt` from the reference and one from the policy, drawn with the same
    /// random numbers (before / after).
    pub async fn before_after(&mut self, prompt: &str) -> Result<(String, String)> {
        crate::feedback::check_text("prompt", prompt)?;
        let ids = vec![self.prompt_ids(prompt)];
        let seed = self.rng.next_u64();
        let sample = &self.cfg.sample;
        let before = generate(&self.reference, &ids, sample, &mut Rng::new(seed), true).await;
        let after = generate(&self.policy(), &ids, sample, &mut Rng::new(seed), true).await;
        Ok((
            self.tok.decode(&before[0].tokens),
            self.tok.decode(&after[0].tokens),
        ))
    }

    /// A corpus prompt from the session's own stream (the autopilot's next question).
    pub fn corpus_prompt(&mut self) -> String {
        self.corpus.prompt(false).text
    }

    /// PPO's scores of (prompt, reply) texts: the reward model's, plus the reference's
    /// confidence, normalised by the running statistics of its rollout scores.
    pub async fn reward_scores(&self, texts: &[(String, String)]) -> Vec<f32> {
        if texts.is_empty() {
            return Vec::new();
        }
        let (seqs, starts) = self.tok.encode_exchanges(texts, self.reference.context());
        let pair_share = self.log.pair_share();
        let scored = (self.trainers.reward)
            .score(&self.reference, &seqs, &starts, pair_share)
            .await;
        self.trainers.reward.normalise(&scored.scores)
    }

    /// Fresh replies to the latest prompt with their reward and per-token change.
    pub(super) async fn samples(&mut self) -> Vec<SampleReport> {
        let n = self.cfg.report_samples;
        let Some(prompt) = self.log.prompts.last().cloned() else {
            return Vec::new();
        };
        if n == 0 {
            return Vec::new();
        }
        let p = self.prompt_ids(&prompt);
        let policy = self.policy();
        let prompts = vec![p.clone(); n];
        let out = generate(&policy, &prompts, &self.cfg.sample, &mut self.rng, true).await;
        let seqs: Vec<Vec<u32>> = out.iter().map(|o| o.sequence(&p, true)).collect();
        let (changes, rewards) = self.token_changes(&policy, &seqs, p.len()).await;
        out.iter()
            .zip(changes)
            .zip(rewards)
            .map(|((o, tokens), reward)| SampleReport {
                prompt: prompt.clone(),
                reply: self.tok.decode(&o.tokens),
                reward,
                tokens,
            })
            .collect()
    }

    /// Per-token log-probs of `seqs` (all sharing a prompt of `start` tokens) under `policy` and
    /// the reference, and PPO's scores of them (unnormalised).
    async fn token_changes(
        &self,
        policy: &Gpt,
        seqs: &[Vec<u32>],
        start: usize,
    ) -> (Vec<Vec<TokenChange>>, Vec<f32>) {
        let batch = Batch::right_padded(seqs, &self.device);
        let lp =
            crate::read(policy.token_logprobs(policy.forward(&batch, None), batch.tokens.clone()))
                .await;
        let starts = vec![start; seqs.len()];
        let pair_share = self.log.pair_share();
        let scored = (self.trainers.reward)
            .score(&self.reference, seqs, &starts, pair_share)
            .await;
        let w = scored.width;
        let changes = seqs
            .iter()
            .enumerate()
            .map(|(b, s)| {
                let texts = self.tok.token_texts(&s[start..]);
                (start..s.len())
                    .zip(texts)
                    .map(|(i, text)| {
                        let j = b * w + i - 1; // position predicting token i
                        TokenChange {
                            text: if s[i] == END { "⏎".to_string() } else { text },
                            logprob: lp[j],
                            ref_logprob: scored.ref_logprobs[j],
                        }
                    })
                    .collect()
            })
            .collect();
        (changes, scored.scores)
    }
}
