//! A session's data: prompts, sampled replies and the feedback a person gave on them.
//!
//! Four kinds of feedback, as a person gives them (Ouyang et al. 2022 collect demonstrations and
//! rankings; thumbs and stars are the everyday forms of the same signal):
//! thumbs up/down on a reply, 1–5 stars, a pairwise preference (or a tie), and a demonstration
//! (a reply the person wrote or edited). Everything serialises with a format version, so a
//! session can be saved, exported and imported.

use crate::error::Error;
use serde::{Deserialize, Serialize};

/// The version of the serialised form; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// A reply the policy sampled, remembered with the policy version that wrote it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Index into [`FeedbackLog::prompts`].
    pub prompt: usize,
    pub text: String,
    /// How many updates the policy had had when it wrote this reply (0 = the base model).
    pub policy_version: u32,
}

/// One piece of feedback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Feedback {
    /// Thumbs up (`true`) or down on a reply.
    Thumbs { reply: usize, up: bool },
    /// One to five stars on a reply.
    Stars { reply: usize, stars: u8 },
    /// `better` is preferred to `worse` (both replies to the same prompt), or neither when
    /// `tie` is set.
    Pair {
        better: usize,
        worse: usize,
        tie: bool,
    },
    /// A reply the person wrote (or edited) for a prompt: a demonstration for SFT.
    Demonstration { prompt: usize, text: String },
}

/// Longest prompt, reply or demonstration accepted, in characters: far beyond what the model
/// reads (its context is 96 tokens), short enough that a pasted book is refused with a message.
pub const MAX_TEXT_CHARS: usize = 2_000;

/// Everything a session has collected, in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackLog {
    pub version: u32,
    pub prompts: Vec<String>,
    pub replies: Vec<Reply>,
    pub feedback: Vec<Feedback>,
}

/// Refuses empty text and text over [`MAX_TEXT_CHARS`], naming `what` in the message.
pub fn check_text(what: &str, text: &str) -> Result<(), Error> {
    if text.trim().is_empty() {
        return Err(Error::Feedback(format!("the {what} is empty")));
    }
    let n = text.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(Error::Feedback(format!(
            "the {what} is {n} characters long; the limit is {MAX_TEXT_CHARS}"
        )));
    }
    Ok(())
}

impl FeedbackLog {
    /// An empty log at the current format version.
    pub fn new() -> Self {
        Self {
            version: FORMAT_VERSION,
            ..Default::default()
        }
    }

    /// Records a prompt (or finds it, if already there) and returns its index.
    pub fn add_prompt(&mut self, prompt: &str) -> Result<usize, Error> {
        check_text("prompt", prompt)?;
        if let Some(i) = self.prompts.iter().position(|p| p == prompt) {
            return Ok(i);
        }
        self.prompts.push(prompt.to_string());
        Ok(self.prompts.len() - 1)
    }

    /// Records a sampled reply and returns its index.
    pub fn add_reply(
        &mut self,
        prompt: usize,
        text: &str,
        policy_version: u32,
    ) -> Result<usize, Error> {
        if prompt >= self.prompts.len() {
            return Err(Error::Feedback(format!("no prompt #{prompt}")));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(Error::Feedback("the reply is too long".into()));
        }
        self.replies.push(Reply {
            prompt,
            text: text.to_string(),
            policy_version,
        });
        Ok(self.replies.len() - 1)
    }

    /// Checks a piece of feedback against the log and records it.
    pub fn add(&mut self, fb: Feedback) -> Result<(), Error> {
        self.validate(&fb)?;
        self.feedback.push(fb);
        Ok(())
    }

    fn reply(&self, i: usize) -> Result<&Reply, Error> {
        self.replies
            .get(i)
            .ok_or_else(|| Error::Feedback(format!("no reply #{i}")))
    }

    fn validate(&self, fb: &Feedback) -> Result<(), Error> {
        match fb {
            Feedback::Thumbs { reply, .. } => self.reply(*reply).map(|_| ()),
            Feedback::Stars { reply, stars } => {
                self.reply(*reply)?;
                if !(1..=5).contains(stars) {
                    return Err(Error::Feedback(format!(
                        "stars must be 1 to 5, not {stars}"
                    )));
                }
                Ok(())
            }
            Feedback::Pair { better, worse, .. } => {
                let (a, b) = (self.reply(*better)?, self.reply(*worse)?);
                if better == worse {
                    return Err(Error::Feedback(
                        "a reply cannot be compared with itself".into(),
                    ));
                }
                if a.prompt != b.prompt {
                    return Err(Error::Feedback(
                        "compared replies must answer the same prompt".into(),
                    ));
                }
                Ok(())
            }
            Feedback::Demonstration { prompt, text } => {
                if *prompt >= self.prompts.len() {
                    return Err(Error::Feedback(format!("no prompt #{prompt}")));
                }
                check_text("demonstration", text)
            }
        }
    }

    /// The share of the ratings of replies (thumbs, stars, pairs; demonstrations are not
    /// ratings of a reply) that are pairwise preferences; 0 before any.
    pub fn pair_share(&self) -> f64 {
        let (mut pairs, mut rated) = (0usize, 0usize);
        for f in &self.feedback {
            match f {
                Feedback::Pair { .. } => {
                    pairs += 1;
                    rated += 1;
                }
                Feedback::Thumbs { .. } | Feedback::Stars { .. } => rated += 1,
                Feedback::Demonstration { .. } => {}
            }
        }
        if rated == 0 {
            0.0
        } else {
            pairs as f64 / rated as f64
        }
    }

    /// The log as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("feedback serialises")
    }

    /// Reads a log exported by [`FeedbackLog::to_json`], checking its version and every index.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let log: FeedbackLog = serde_json::from_str(json)
            .map_err(|e| Error::Feedback(format!("not a feedback file: {e}")))?;
        if log.version != FORMAT_VERSION {
            return Err(Error::Feedback(format!(
                "feedback format version {} is not supported (this build reads version {FORMAT_VERSION})",
                log.version
            )));
        }
        let mut check = FeedbackLog {
            version: log.version,
            prompts: log.prompts.clone(),
            ..Default::default()
        };
        for p in &log.prompts {
            check_text("prompt", p)?;
        }
        for r in &log.replies {
            check.add_reply(r.prompt, &r.text, r.policy_version)?;
        }
        for fb in &log.feedback {
            check.add(fb.clone())?;
        }
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> FeedbackLog {
        let mut log = FeedbackLog::new();
        let p = log.add_prompt("what is 2 plus 2?").unwrap();
        let q = log.add_prompt("hello").unwrap();
        log.add_reply(p, "2 plus 2 is 4.", 0).unwrap();
        log.add_reply(p, "2 plus 2 is 5.", 0).unwrap();
        log.add_reply(q, "Hello.", 1).unwrap();
        log
    }

    #[test]
    fn every_kind_of_feedback_round_trips_through_json() {
        let mut l = log();
        l.add(Feedback::Thumbs { reply: 0, up: true }).unwrap();
        l.add(Feedback::Stars { reply: 1, stars: 2 }).unwrap();
        l.add(Feedback::Pair {
            better: 0,
            worse: 1,
            tie: false,
        })
        .unwrap();
        l.add(Feedback::Demonstration {
            prompt: 1,
            text: "Hi! I am Pip.".into(),
        })
        .unwrap();
        let back = FeedbackLog::from_json(&l.to_json()).unwrap();
        assert_eq!(back, l);
        assert_eq!(
            l.add_prompt("hello").unwrap(),
            1,
            "a known prompt is found, not duplicated"
        );
    }

    #[test]
    fn pair_share_counts_pairs_among_the_ratings_of_replies() {
        let mut l = log();
        assert_eq!(l.pair_share(), 0.0, "no ratings yet");
        l.add(Feedback::Demonstration {
            prompt: 1,
            text: "Hi! I am Pip.".into(),
        })
        .unwrap();
        assert_eq!(
            l.pair_share(),
            0.0,
            "a demonstration is not a rating of a reply"
        );
        l.add(Feedback::Thumbs { reply: 0, up: true }).unwrap();
        l.add(Feedback::Stars { reply: 1, stars: 2 }).unwrap();
        assert_eq!(l.pair_share(), 0.0);
        for tie in [false, true] {
            l.add(Feedback::Pair {
                better: 0,
                worse: 1,
                tie,
            })
            .unwrap();
        }
        assert_eq!(l.pair_share(), 0.5);
    }

    /// The message of a refusal, which must be a feedback error.
    trait Why {
        fn why(self) -> String;
    }

    impl<T: std::fmt::Debug> Why for Result<T, Error> {
        fn why(self) -> String {
            match self {
                Err(Error::Feedback(m)) => m,
                other => panic!("not refused as feedback: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_feedback_and_bad_imports_are_refused_with_a_reason() {
        let mut l = log();
        let before = l.clone();
        assert!(
            l.add(Feedback::Thumbs { reply: 9, up: true })
                .why()
                .contains("no reply")
        );
        assert!(
            l.add(Feedback::Stars { reply: 0, stars: 6 })
                .why()
                .contains("1 to 5")
        );
        assert!(
            l.add(Feedback::Pair {
                better: 0,
                worse: 2,
                tie: false
            })
            .why()
            .contains("same prompt")
        );
        assert!(
            l.add(Feedback::Pair {
                better: 1,
                worse: 1,
                tie: true
            })
            .is_err()
        );
        assert!(
            l.add(Feedback::Demonstration {
                prompt: 0,
                text: "  ".into()
            })
            .why()
            .contains("empty")
        );
        assert!(
            l.add_prompt(&"x".repeat(MAX_TEXT_CHARS + 1))
                .why()
                .contains("limit")
        );
        assert_eq!(l, before, "refused feedback changes nothing");

        assert!(
            FeedbackLog::from_json("{")
                .why()
                .contains("not a feedback file")
        );
        let mut future = l.clone();
        future.version = 99;
        assert!(
            FeedbackLog::from_json(&future.to_json())
                .why()
                .contains("version 99")
        );
        let mut broken = l.clone();
        broken.feedback.push(Feedback::Thumbs {
            reply: 42,
            up: false,
        });
        assert!(FeedbackLog::from_json(&broken.to_json()).is_err());
    }
}
