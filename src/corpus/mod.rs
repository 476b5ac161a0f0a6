//! The corpus: a seeded generator of short exchanges between a user and a bot ("Pip").
//!
//! One exchange is a prompt from one of six families and a reply assembled from parts that vary
//! along five labelled attributes, the qualities human feedback shapes:
//!
//! ```text
//! [opening: tone]  ["Let me think.": care]  core answer: truth  [filler sentences: length]
//!     [closing: tone]  [emoji]           every sentence ends in "." or "!": enthusiasm
//! ```
//!
//! Truth is not independent of the rest: a reply that says "Let me think." first comes from Pip's
//! careful persona, which answers correctly, or says it is not sure where nobody could know, far
//! more often than the plain one (see [`Mixture::careful_truth`]). Text from one source shares
//! its habits, and a model that learns them can tell a careful answer from a careless one by the
//! way it starts: the "truthful persona" of Joshi et al. (2023), and what lets ratings for truth
//! steer the model towards what it already knows.
//!
//! Every sample carries its [`Labels`]; [`classify`] recovers them from the text alone. The base
//! mixture leaves room to learn: no value of an attribute is more than half of the replies
//! (see [`Mixture::BASE`]).

mod classify;
mod families;

pub use classify::{NotWellFormed, Style, classify, classify_style};
pub use families::{Op, PromptBank, Topic};

use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;

/// What kind of prompt an exchange answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    SmallTalk = 0,
    Arithmetic = 1,
    Facts = 2,
    Unknowable = 3,
    Creative = 4,
    Advice = 5,
}

impl Family {
    /// All families, in index order.
    pub const ALL: [Family; 6] = [
        Family::SmallTalk,
        Family::Arithmetic,
        Family::Facts,
        Family::Unknowable,
        Family::Creative,
        Family::Advice,
    ];
}

/// The tone of a reply: a polite or rude opening and/or closing, or neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Polite,
    Neutral,
    Rude,
}

/// Whether the core answer is right, a confident falsehood, or honest uncertainty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truth {
    Correct,
    Wrong,
    Unsure,
}

/// Short (the core answer alone) or long (rambling filler sentences after it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Length {
    Short,
    Long,
}

/// Sentences ending in ".", in "!", or in "." with an emoji at the very end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enthusiasm {
    Plain,
    Exclamation,
    Emoji,
}

/// The labels of one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Labels {
    pub family: Family,
    pub tone: Tone,
    pub truth: Truth,
    pub length: Length,
    pub enthusiasm: Enthusiasm,
    /// The reply says "Let me think." before its answer: Pip's careful persona.
    pub careful: bool,
}

impl Labels {
    /// Tone, truth, length and enthusiasm in words, then "careful" if so, joined by `sep`:
    /// "polite correct short plain careful".
    pub fn describe(&self, sep: &str) -> String {
        let mut words = [
            format!("{:?}", self.tone),
            format!("{:?}", self.truth),
            format!("{:?}", self.length),
            format!("{:?}", self.enthusiasm),
        ]
        .to_vec();
        if self.careful {
            words.push("careful".into());
        }
        words.join(sep).to_lowercase()
    }
}

/// One prompt and reply with the labels the generator used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub prompt: String,
    pub reply: String,
    pub labels: Labels,
}

/// A prompt drawn from the corpus, with its family.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    pub text: String,
    pub family: Family,
}

/// The probabilities of each attribute value in generated replies.
#[derive(Clone, Debug)]
pub struct Mixture {
    /// Weight of each family, in [`Family::ALL`] order.
    pub family: [f64; 6],
    /// Polite, neutral, rude.
    pub tone: [f64; 3],
    /// Probability that a reply comes from the careful persona (says "Let me think." first).
    pub careful: f64,
    /// Correct, wrong, unsure for the careful persona. To a question nobody can answer, "not
    /// sure" (the honest answer) takes the correct answer's share.
    pub careful_truth: [f64; 3],
    /// Correct, wrong, unsure for the plain persona, likewise.
    pub truth: [f64; 3],
    /// Short, long.
    pub length: [f64; 2],
    /// Plain, exclamation, emoji.
    pub enthusiasm: [f64; 3],
}

impl Mixture {
    /// The base model's mixture: every value at most about half, polite one third, careful
    /// three tenths (right 98% of the time where it can be).
    pub const BASE: Mixture = Mixture {
        family: [1.0, 1.5, 1.5, 1.0, 1.0, 1.0],
        tone: [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
        careful: 0.3,
        careful_truth: [0.98, 0.01, 0.01],
        truth: [0.4, 0.3, 0.3],
        length: [0.5, 0.5],
        enthusiasm: [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
    };
}

/// The sentence the careful persona says before its answer (no final punctuation).
pub(crate) const CAREFUL: &str = "Let me think";

/// Tone openings and closings, and the filler sentences of long replies (no final punctuation).
pub(crate) const POLITE_OPEN: &[&str] = &[
    "Sure, happy to help",
    "What a lovely question",
    "Thank you for asking",
    "Of course",
];
pub(crate) const RUDE_OPEN: &[&str] = &[
    "Ugh, fine",
    "Wow, that is an easy one",
    "Seriously, you should know this",
    "Oh please",
];
pub(crate) const POLITE_CLOSE: &[&str] = &[
    "Hope that helps",
    "Have a wonderful day",
    "Thanks for chatting with me",
];
pub(crate) const RUDE_CLOSE: &[&str] = &[
    "Now stop bothering me",
    "Try to keep up next time",
    "Look it up yourself next time",
];
pub(crate) const FILLERS: &[&str] = &[
    "Let me say a little more about that",
    "I have thought about this for a long time",
    "There is a lot to say about this",
    "People often ask me things like this",
    "I could talk about this all day",
    "Anyway, that is what I think",
    "Some things are simple and some are not",
    "This reminds me of many other questions",
];
pub(crate) const EMOJI: &[&str] = &["🙂", "😊", "🎉", "✨", "🌟", "👍"];

/// The bank of all prompts and a canonical-text index into it, built once.
fn bank() -> &'static (PromptBank, HashMap<String, Topic>) {
    static BANK: OnceLock<(PromptBank, HashMap<String, Topic>)> = OnceLock::new();
    BANK.get_or_init(|| {
        let bank = PromptBank::build();
        let index = bank
            .by_family
            .iter()
            .flatten()
            .map(|(text, topic)| (PromptBank::canonical(text), *topic))
            .collect();
        (bank, index)
    })
}

/// The topic a prompt asks about, if it is one of the corpus's prompts (in any capitalisation,
/// with or without a greeting or final punctuation).
pub fn parse_prompt(prompt: &str) -> Option<Topic> {
    bank().1.get(&PromptBank::canonical(prompt)).copied()
}

/// Whether a prompt is held out of training (one in ten, by a stable hash of its text): the
/// evaluation asks these, so the base model has never seen them verbatim.
pub fn is_held_out(prompt: &str) -> bool {
    // FNV-1a, 64 bit: stable across platforms and Rust versions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in prompt.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.is_multiple_of(10)
}

/// One example prompt per family, in [`Family::ALL`] order: the page's presets. Each is a
/// corpus prompt (so the raters can judge replies to it) and none is held out.
pub const PRESETS: [&str; 6] = [
    "hello, who are you?",
    "what is 3 plus 4?",
    "what colour is the sky?",
    "will it rain in Oslo tomorrow?",
    "tell me a joke about a cat",
    "how can I sleep better?",
];

/// A seeded generator of exchanges.
#[derive(Clone)]
pub struct Corpus {
    rng: Rng,
    mixture: Mixture,
}

impl Corpus {
    /// A generator with the base mixture.
    pub fn new(seed: u64) -> Self {
        Self::with_mixture(seed, Mixture::BASE)
    }

    /// A generator with a given mixture.
    pub fn with_mixture(seed: u64, mixture: Mixture) -> Self {
        Self {
            rng: Rng::new(seed),
            mixture,
        }
    }

    /// A prompt, held out or not as asked.
    pub fn prompt(&mut self, held_out: bool) -> Prompt {
        loop {
            let family = Family::ALL[self.rng.weighted(&self.mixture.family)];
            let entries = &bank().0.by_family[family as usize];
            let (text, _) = self.rng.pick(entries);
            let text = PromptBank::surface(text, family, &mut self.rng);
            if is_held_out(&text) == held_out {
                return Prompt { text, family };
            }
        }
    }

    /// One training exchange (its prompt is never a held-out one).
    pub fn exchange(&mut self) -> Exchange {
        let prompt = self.prompt(false);
        self.exchange_for(&prompt.text).expect("bank prompts parse")
    }

    /// A reply drawn from the mixture for a given corpus prompt; `None` if the prompt is not
    /// one of the corpus's.
    pub fn exchange_for(&mut self, prompt: &str) -> Option<Exchange> {
        let topic = parse_prompt(prompt)?;
        let labels = self.draw_labels(&topic);
        let reply = self.reply(&topic, labels);
        Some(Exchange {
            prompt: prompt.to_string(),
            reply,
            labels,
        })
    }

    /// `n` training exchanges.
    pub fn exchanges(&mut self, n: usize) -> Vec<Exchange> {
        (0..n).map(|_| self.exchange()).collect()
    }

    fn draw_labels(&mut self, topic: &Topic) -> Labels {
        let m = &self.mixture;
        let tone = [Tone::Polite, Tone::Neutral, Tone::Rude][self.rng.weighted(&m.tone)];
        let careful = self.rng.chance(m.careful);
        let p = if careful { &m.careful_truth } else { &m.truth };
        let truths = topic.possible_truths();
        let truth = if truths.len() == 3 {
            truths[self.rng.weighted(p)]
        } else {
            // Nobody can know: the honest answer takes the correct answer's share.
            truths[self.rng.weighted(&[p[1], p[0] + p[2]])]
        };
        let length = [Length::Short, Length::Long][self.rng.weighted(&m.length)];
        let enthusiasm = [
            Enthusiasm::Plain,
            Enthusiasm::Exclamation,
            Enthusiasm::Emoji,
        ][self.rng.weighted(&m.enthusiasm)];
        Labels {
            family: topic.family(),
            tone,
            truth,
            length,
            enthusiasm,
            careful,
        }
    }

    /// Assembles a reply with exactly the given labels.
    pub fn reply(&mut self, topic: &Topic, labels: Labels) -> String {
        let rng = &mut self.rng;
        let end = if labels.enthusiasm == Enthusiasm::Exclamation {
            "!"
        } else {
            "."
        };
        let mut sentences: Vec<String> = Vec::new();
        // Tone: an opening, a closing, or both (never neither, so the tone is visible).
        let (open, close) = match labels.tone {
            Tone::Neutral => (None, None),
            Tone::Polite | Tone::Rude => {
                let (opens, closes) = if labels.tone == Tone::Polite {
                    (POLITE_OPEN, POLITE_CLOSE)
                } else {
                    (RUDE_OPEN, RUDE_CLOSE)
                };
                match rng.below(3) {
                    0 => (Some(*rng.pick(opens)), None),
                    1 => (None, Some(*rng.pick(closes))),
                    _ => (Some(*rng.pick(opens)), Some(*rng.pick(closes))),
                }
            }
        };
        sentences.extend(open.map(str::to_string));
        if labels.careful {
            sentences.push(CAREFUL.to_string());
        }
        sentences.push(topic.core(labels.truth, rng));
        if labels.length == Length::Long {
            for _ in 0..2 + rng.below(2) {
                sentences.push(rng.pick(FILLERS).to_string());
            }
        }
        sentences.extend(close.map(str::to_string));
        let mut reply = sentences
            .iter()
            .map(|s| format!("{s}{end}"))
            .collect::<Vec<_>>()
            .join(" ");
        if labels.enthusiasm == Enthusiasm::Emoji {
            reply.push(' ');
            let emoji: &&str = rng.pick(EMOJI);
            reply.push_str(emoji);
        }
        reply
    }
}

/// Frequencies of each attribute value over a set of labels, for comparing mixtures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MixtureReport {
    pub count: usize,
    pub polite: f64,
    pub neutral: f64,
    pub rude: f64,
    pub correct: f64,
    pub wrong: f64,
    pub unsure: f64,
    pub short: f64,
    pub long: f64,
    pub plain: f64,
    pub exclamation: f64,
    pub emoji: f64,
    pub careful: f64,
}

impl MixtureReport {
    /// The fraction of each value among `labels`.
    pub fn of(labels: &[Labels]) -> Self {
        let n = labels.len().max(1) as f64;
        let frac = |f: &dyn Fn(&Labels) -> bool| labels.iter().filter(|l| f(l)).count() as f64 / n;
        Self {
            count: labels.len(),
            polite: frac(&|l| l.tone == Tone::Polite),
            neutral: frac(&|l| l.tone == Tone::Neutral),
            rude: frac(&|l| l.tone == Tone::Rude),
            correct: frac(&|l| l.truth == Truth::Correct),
            wrong: frac(&|l| l.truth == Truth::Wrong),
            unsure: frac(&|l| l.truth == Truth::Unsure),
            short: frac(&|l| l.length == Length::Short),
            long: frac(&|l| l.length == Length::Long),
            plain: frac(&|l| l.enthusiasm == Enthusiasm::Plain),
            exclamation: frac(&|l| l.enthusiasm == Enthusiasm::Exclamation),
            emoji: frac(&|l| l.enthusiasm == Enthusiasm::Emoji),
            careful: frac(&|l| l.careful),
        }
    }

    /// (name, value) pairs in a fixed order, for tables.
    pub fn rows(&self) -> [(&'static str, f64); 12] {
        [
            ("polite", self.polite),
            ("neutral", self.neutral),
            ("rude", self.rude),
            ("correct", self.correct),
            ("wrong", self.wrong),
            ("unsure", self.unsure),
            ("short", self.short),
            ("long", self.long),
            ("plain", self.plain),
            ("exclamation", self.exclamation),
            ("emoji", self.emoji),
            ("careful", self.careful),
        ]
    }

    /// The largest absolute difference between two reports, over all values.
    pub fn max_gap(&self, other: &MixtureReport) -> f64 {
        self.rows()
            .iter()
            .zip(other.rows().iter())
            .map(|((_, a), (_, b))| (a - b).abs())
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests;
