//! A byte-level BPE tokenizer, trained on the corpus with Hugging Face's `tokenizers` crate.
//!
//! Byte-level (as in GPT-2) means every string, emoji and unusual script included, encodes to
//! tokens and decodes back to exactly itself: nothing maps to an "unknown" token. Four special
//! tokens frame an exchange: `<|pad|> <|user|> <|bot|> <|end|>`, with fixed ids 0–3.
//! Text is always encoded with special tokens disabled, so a person who types "<|end|>" gets
//! those characters, not a control token.

use crate::corpus::Corpus;
use crate::error::Error;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

/// Padding (never attended to, never predicted).
pub const PAD: u32 = 0;
/// Starts the user's prompt.
pub const USER: u32 = 1;
/// Starts the bot's reply.
pub const BOT: u32 = 2;
/// Ends the bot's reply.
pub const END: u32 = 3;
/// The special tokens' texts, in id order.
pub const SPECIALS: [&str; 4] = ["<|pad|>", "<|user|>", "<|bot|>", "<|end|>"];

/// The tokenizer the project ships, as committed under `www/`.
pub const BUNDLED_JSON: &str = include_str!("../www/assets/tokenizer.json");

/// A trained byte-level BPE tokenizer.
#[derive(Clone)]
pub struct Tokenizer {
    inner: HfTokenizer,
}

impl Tokenizer {
    /// Trains a tokenizer with `vocab_size` entries on `samples` corpus exchanges drawn from
    /// `seed`. The result is deterministic for given arguments.
    pub fn train(vocab_size: usize, samples: usize, seed: u64) -> Result<Self, Error> {
        let mut corpus = Corpus::new(seed);
        let texts: Vec<String> = corpus
            .exchanges(samples)
            .into_iter()
            .flat_map(|e| [e.prompt, e.reply])
            .collect();
        let specials = SPECIALS
            .iter()
            .map(|s| AddedToken::from(*s, true))
            .collect();
        let mut trainer = TrainerWrapper::BpeTrainer(
            BpeTrainerBuilder::new()
                .vocab_size(vocab_size)
                .min_frequency(2)
                .show_progress(false)
                .special_tokens(specials)
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .build(),
        );
        let mut inner = HfTokenizer::new(BPE::default());
        let byte_level = ByteLevel::new(false, false, true);
        inner.with_pre_tokenizer(Some(byte_level));
        inner.with_decoder(Some(byte_level));
        inner.train(&mut trainer, texts.iter()).map_err(err)?;
        Self::from_inner(inner)
    }

    /// Loads a tokenizer from its JSON (as written by [`Tokenizer::to_json`]).
    pub fn from_json(json: &str) -> Result<Self, Error> {
        Self::from_inner(HfTokenizer::from_bytes(json.as_bytes()).map_err(err)?)
    }

    /// The tokenizer committed with the project.
    pub fn bundled() -> Self {
        Self::from_json(BUNDLED_JSON).expect("the bundled tokenizer.json is valid")
    }

    fn from_inner(mut inner: HfTokenizer) -> Result<Self, Error> {
        for (id, s) in SPECIALS.iter().enumerate() {
            if inner.token_to_id(s) != Some(id as u32) {
                return Err(err(format!("special token {s} must have id {id}")));
            }
        }
        // Special-token strings inside text are plain text, never control tokens.
        inner.set_encode_special_tokens(true);
        Ok(Self { inner })
    }

    /// The JSON form, as the page loads it.
    pub fn to_json(&self) -> String {
        self.inner.to_string(false).expect("tokenizer serialises")
    }

    /// The number of token ids.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of a text. Never fails: every byte sequence has an encoding.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.inner
            .encode(text, false)
            .expect("byte-level BPE encodes any text")
            .get_ids()
            .to_vec()
    }

    /// The text of token ids; special tokens are dropped. Byte sequences that are not valid
    /// UTF-8 (a reply cut inside an emoji) decode with U+FFFD in their place.
    pub fn decode(&self, ids: &[u32]) -> String {
        let ids: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&i| i as usize >= SPECIALS.len())
            .collect();
        self.inner.decode(&ids, true).unwrap_or_default()
    }

    /// The text of each token alone, for per-token views.
    pub fn token_texts(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&i| self.inner.decode(&[i], false).unwrap_or_default())
            .collect()
    }

    /// `<|user|> prompt <|bot|>`: what the model continues to write a reply.
    pub fn encode_prompt(&self, prompt: &str) -> Vec<u32> {
        let mut ids = vec![USER];
        ids.extend(self.encode(prompt));
        ids.push(BOT);
        ids
    }

    /// `<|user|> prompt <|bot|> reply <|end|>`, and where the reply starts.
    pub fn encode_exchange(&self, prompt: &str, reply: &str) -> (Vec<u32>, usize) {
        let mut ids = self.encode_prompt(prompt);
        let start = ids.len();
        ids.extend(self.encode(reply));
        ids.push(END);
        (ids, start)
    }

    /// [`Tokenizer::encode_exchange`] of each (prompt, reply) text, cut to `context` tokens,
    /// with the index of each reply's first token.
    pub fn encode_exchanges(
        &self,
        texts: &[(String, String)],
        context: usize,
    ) -> (Vec<Vec<u32>>, Vec<usize>) {
        texts
            .iter()
            .map(|(prompt, reply)| {
                let (mut ids, start) = self.encode_exchange(prompt, reply);
                ids.truncate(context);
                (ids, start)
            })
            .unzip()
    }

    /// `<|user|> prompt <|bot|> reply <|end|>` for a model reading `context` tokens, the prompt
    /// shortened as [`Tokenizer::fit_prompt`] shortens it for sampling and the whole cut to the
    /// context; and where the reply starts. The same as [`Tokenizer::encode_exchange`] for a
    /// prompt that fits; the reply keeps at least 24 tokens of room.
    pub fn fit_exchange(&self, prompt: &str, reply: &str, context: usize) -> (Vec<u32>, usize) {
        let (mut ids, _) = self.fit_prompt(prompt, context);
        let start = ids.len();
        ids.extend(self.encode(reply));
        ids.push(END);
        ids.truncate(context);
        (ids, start)
    }

    /// `<|user|> prompt <|bot|>` for a model reading `context` tokens, shortened from the front
    /// when it would leave fewer than 24 tokens of room for the reply (the end of a long prompt
    /// is usually the question); and whether it had to be shortened.
    pub fn fit_prompt(&self, prompt: &str, context: usize) -> (Vec<u32>, bool) {
        let ids = self.encode_prompt(prompt);
        let limit = context.saturating_sub(24).max(8);
        if ids.len() <= limit {
            return (ids, false);
        }
        let body = &ids[1..ids.len() - 1];
        let mut out = vec![USER];
        out.extend_from_slice(&body[body.len() - (limit - 2)..]);
        out.push(BOT);
        (out, true)
    }
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Weights(format!("tokenizer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok() -> Tokenizer {
        Tokenizer::bundled()
    }

    #[test]
    fn round_trips_unicode_emoji_empty_and_far_outside_text() {
        let t = tok();
        for s in [
            "",
            "what is 2 plus 2?",
            "Sure, happy to help. 2 plus 2 is 4! 🎉",
            "Ünïcödé façade — naïve café",
            "日本語のテキストと한국어",
            "👩‍👩‍👧‍👦🏳️‍🌈 zero\u{200b}width",
            "tabs\tand\nnewlines\r\n  double  spaces ",
            "<|end|> <|user|> typed by a person",
            "\u{0}\u{7f} control bytes",
        ] {
            let ids = t.encode(s);
            assert_eq!(t.decode(&ids), s, "ids {ids:?}");
            assert!(ids.iter().all(|&i| (i as usize) < t.vocab_size()));
            assert!(
                ids.iter().all(|&i| i >= SPECIALS.len() as u32),
                "special id in {s:?}"
            );
        }
    }

    #[test]
    fn special_tokens_have_fixed_ids_and_frame_an_exchange() {
        let t = tok();
        let (ids, start) = t.encode_exchange("hi", "Hello.");
        assert_eq!(ids[0], USER);
        assert_eq!(ids[start - 1], BOT);
        assert_eq!(*ids.last().unwrap(), END);
        assert_eq!(t.decode(&ids[start..]), "Hello.");
        assert!((512..=1024).contains(&t.vocab_size()), "{}", t.vocab_size());
    }

    #[test]
    fn compresses_corpus_text_and_survives_a_json_round_trip() {
        let t = tok();
        let text = "Thank you for asking. The opposite of hot is cold. Hope that helps.";
        assert!(
            t.encode(text).len() * 3 < text.len(),
            "{:?}",
            t.encode(text)
        );
        let back = Tokenizer::from_json(&t.to_json()).unwrap();
        assert_eq!(back.encode(text), t.encode(text));
        assert!(Tokenizer::from_json("{not json").is_err());
    }

    #[test]
    fn training_is_deterministic() {
        let a = Tokenizer::train(600, 2_000, 3).unwrap();
        let b = Tokenizer::train(600, 2_000, 3).unwrap();
        assert_eq!(a.to_json(), b.to_json());
    }

    #[test]
    fn an_exchange_is_framed_as_its_prompt_was_for_sampling() {
        let t = tok();
        // A prompt that fits: the same as the plain framing.
        let (prompt, reply) = ("what is 2 plus 2?", "2 plus 2 is 4.");
        assert_eq!(
            t.fit_exchange(prompt, reply, 96),
            t.encode_exchange(prompt, reply)
        );
        // A prompt longer than the context: shortened from the front as for sampling, the
        // reply after it with room to spare and its <|end|>.
        let long = format!("{} what is 2 plus 2?", "blah ".repeat(200));
        let (ids, start) = t.fit_exchange(&long, reply, 96);
        let (prompt_ids, shortened) = t.fit_prompt(&long, 96);
        assert!(shortened);
        assert_eq!((&ids[..start], start), (&prompt_ids[..], prompt_ids.len()));
        assert_eq!(&ids[start..], &t.encode_exchange("", reply).0[2..]);
        assert_eq!(*ids.last().unwrap(), END);
    }
}
