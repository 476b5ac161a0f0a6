//! Simulated raters and graders: they stand in for a person in tests, in the CLI's `simulate`
//! and in the page's autopilot.
//!
//! A rater scores a reply between -1 and 1 and turns that score into each kind of feedback the
//! way a person with one taste would: thumbs up when the score is positive, stars on a five-point
//! scale, and the higher-scoring reply of a pair (a tie when equal). Its "preferred rate" is the
//! share of replies it would give a thumbs up. The four built-in tastes read the reply with
//! [`corpus::classify`](crate::corpus::classify); graders a person defines are a keyword or
//! regular-expression rule, or (natively) an external program.

use crate::corpus::{
    Enthusiasm, Family, Length, Tone, Truth, classify, classify_style, parse_prompt,
};
use crate::error::Error;
use serde::{Deserialize, Serialize};

/// The four built-in tastes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Taste {
    /// Likes polite replies; dislikes rude ones most and plain ones a little.
    Polite,
    /// Likes correct answers, and "not sure" where the bot cannot know; dislikes confident
    /// falsehoods most, and "not sure" to a question with an answer a little.
    Truthful,
    /// Likes replies that stop after the answer.
    Short,
    /// Likes exclamation marks and emoji.
    Cheerful,
}

impl Taste {
    /// All tastes, in the order the CLI and page list them.
    pub const ALL: [Taste; 4] = [
        Taste::Polite,
        Taste::Truthful,
        Taste::Short,
        Taste::Cheerful,
    ];

    /// The name used on the command line and the page.
    pub fn name(self) -> &'static str {
        match self {
            Taste::Polite => "polite",
            Taste::Truthful => "truthful",
            Taste::Short => "short",
            Taste::Cheerful => "cheerful",
        }
    }

    /// The taste with this name.
    pub fn from_name(name: &str) -> Option<Taste> {
        Taste::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Score of `reply` to `prompt`, in [-1, 1]. Replies that do not parse as a reply (garbled,
    /// mixed tone, no answer) get -1 from every taste: nobody likes them.
    pub fn score(self, prompt: &str, reply: &str) -> f64 {
        if self == Taste::Truthful {
            return match classify(reply, prompt) {
                Ok(l) => match (l.truth, l.family) {
                    (Truth::Correct, _) => 1.0,
                    (Truth::Unsure, Family::Unknowable) => 1.0,
                    (Truth::Unsure, _) => -0.5,
                    (Truth::Wrong, _) => -1.0,
                },
                // A prompt from outside the corpus cannot be fact-checked: no opinion, unless
                // the reply is garbled.
                Err(_) if parse_prompt(prompt).is_none() => {
                    if classify_style(reply).is_ok() {
                        0.0
                    } else {
                        -1.0
                    }
                }
                Err(_) => -1.0,
            };
        }
        // Tone, length and enthusiasm are read off the reply alone, so these tastes also judge
        // replies to prompts of a person's own.
        let ok = match parse_prompt(prompt) {
            Some(_) => classify(reply, prompt).is_ok(),
            None => true,
        };
        let style = match classify_style(reply) {
            Ok(s) if ok => s,
            _ => return -1.0,
        };
        match self {
            Taste::Polite => match style.tone {
                Tone::Polite => 1.0,
                Tone::Neutral => -0.5,
                Tone::Rude => -1.0,
            },
            Taste::Short => match style.length {
                Length::Short => 1.0,
                Length::Long => -1.0,
            },
            Taste::Cheerful => match style.enthusiasm {
                Enthusiasm::Emoji => 1.0,
                Enthusiasm::Exclamation => 0.5,
                Enthusiasm::Plain => -1.0,
            },
            Taste::Truthful => unreachable!("handled above"),
        }
    }
}

/// A rater: one of the built-in tastes or a rule a person defined.
#[derive(Clone, Debug)]
pub enum Rater {
    Taste(Taste),
    /// `matched` when the reply matches the expression, else `other`.
    Regex {
        pattern: regex::Regex,
        matched: f64,
        other: f64,
    },
    /// An external program (native only): gets `{"prompt": ..., "reply": ...}` on stdin and
    /// prints a number between -1 and 1.
    #[cfg(not(target_arch = "wasm32"))]
    Command {
        command: String,
        timeout: std::time::Duration,
    },
}

/// Longest regular expression or keyword accepted, in characters.
pub const MAX_RULE_CHARS: usize = 200;

impl Rater {
    /// A regular-expression rule: +1 when the reply matches, -1 when it does not.
    pub fn regex(pattern: &str) -> Result<Rater, Error> {
        if pattern.trim().is_empty() {
            return Err(Error::Grader("the rule is empty".into()));
        }
        if pattern.chars().count() > MAX_RULE_CHARS {
            return Err(Error::Grader(format!(
                "the rule is longer than {MAX_RULE_CHARS} characters"
            )));
        }
        let pattern = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| Error::Grader(format!("not a valid regular expression: {e}")))?;
        Ok(Rater::Regex {
            pattern,
            matched: 1.0,
            other: -1.0,
        })
    }

    /// A keyword rule (the page's): the word anywhere in the reply, ignoring case.
    pub fn keyword(word: &str) -> Result<Rater, Error> {
        let word = word.trim();
        if word.is_empty() {
            return Err(Error::Grader("the keyword is empty".into()));
        }
        Rater::regex(&format!("(?i){}", regex::escape(word)))
    }

    /// A short description, for tables and the page.
    pub fn describe(&self) -> String {
        match self {
            Rater::Taste(t) => t.name().to_string(),
            Rater::Regex { pattern, .. } => format!("regex {}", pattern.as_str()),
            #[cfg(not(target_arch = "wasm32"))]
            Rater::Command { command, .. } => format!("command {command}"),
        }
    }

    /// Score of `reply` to `prompt`, in [-1, 1].
    pub fn score(&self, prompt: &str, reply: &str) -> Result<f64, Error> {
        match self {
            Rater::Taste(t) => Ok(t.score(prompt, reply)),
            Rater::Regex {
                pattern,
                matched,
                other,
            } => Ok(if pattern.is_match(reply) {
                *matched
            } else {
                *other
            }),
            #[cfg(not(target_arch = "wasm32"))]
            Rater::Command { command, timeout } => run_command(command, *timeout, prompt, reply),
        }
    }

    /// Whether the rater would give `reply` a thumbs up.
    pub fn prefers(&self, prompt: &str, reply: &str) -> Result<bool, Error> {
        Ok(self.score(prompt, reply)? > 0.0)
    }
}

/// Thumbs up for a positive score.
pub fn thumbs(score: f64) -> bool {
    score > 0.0
}

/// Stars from a score: -1 → 1 star, -0.5 → 2, 0 → 3, 0.5 → 4, 1 → 5.
pub fn stars(score: f64) -> u8 {
    (1.0 + 2.0 * (score.clamp(-1.0, 1.0) + 1.0)).round() as u8
}

/// The preferred reply of a pair: `Some(true)` for the first, `Some(false)` for the second,
/// `None` for a tie.
pub fn prefer(a: f64, b: f64) -> Option<bool> {
    if a == b { None } else { Some(a > b) }
}

/// Runs a grader program with the exchange on stdin and reads its score from stdout.
#[cfg(not(target_arch = "wasm32"))]
fn run_command(
    command: &str,
    timeout: std::time::Duration,
    prompt: &str,
    reply: &str,
) -> Result<f64, Error> {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let fail = |what: String| Error::Grader(format!("grader command `{command}`: {what}"));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("could not start it: {e}")))?;
    let input = serde_json::json!({ "prompt": prompt, "reply": reply }).to_string();
    if let Some(mut stdin) = child.stdin.take() {
        // A grader may exit without reading its input; that is not an error in itself.
        let _ = stdin.write_all(input.as_bytes());
    }
    let start = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "gave no answer within {:.1} s",
                    timeout.as_secs_f64()
                )));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(2)),
            Err(e) => return Err(fail(e.to_string())),
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    if !status.success() {
        return Err(fail(format!("exited with {status}: {}", err.trim())));
    }
    let value: f64 = out.trim().parse().map_err(|_| {
        fail(format!(
            "printed {:?}, not a number between -1 and 1",
            out.trim()
        ))
    })?;
    if !(-1.0..=1.0).contains(&value) {
        return Err(fail(format!("printed {value}, outside -1 to 1")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUM: &str = "what is 2 plus 2?";

    #[test]
    fn tastes_score_what_they_like() {
        let p = Taste::Polite;
        assert_eq!(p.score(SUM, "Sure, happy to help. 2 plus 2 is 4."), 1.0);
        assert_eq!(p.score(SUM, "2 plus 2 is 4."), -0.5);
        assert_eq!(p.score(SUM, "Ugh, fine. 2 plus 2 is 4."), -1.0);
        assert_eq!(p.score(SUM, "Sure, happy to help. plus plus"), -1.0);
        let t = Taste::Truthful;
        assert_eq!(t.score(SUM, "2 plus 2 is 4."), 1.0);
        assert_eq!(t.score(SUM, "2 plus 2 is 5."), -1.0);
        assert_eq!(t.score(SUM, "I am not sure."), -0.5);
        let weather = "what will the weather be in Oslo tomorrow?";
        if parse_prompt(weather).is_some() {
            assert_eq!(t.score(weather, "I am not sure."), 1.0);
        }
        let s = Taste::Short;
        assert_eq!(s.score(SUM, "2 plus 2 is 4."), 1.0);
        assert_eq!(
            s.score(SUM, "2 plus 2 is 4. I could talk about this all day."),
            -1.0
        );
        let c = Taste::Cheerful;
        assert_eq!(c.score(SUM, "2 plus 2 is 4!"), 0.5);
        assert_eq!(c.score(SUM, "2 plus 2 is 4. 🎉"), 1.0);
        assert_eq!(c.score(SUM, "2 plus 2 is 4."), -1.0);
        // A person's own prompt: style still judged, truth not.
        let own = "how do magnets work?";
        let reply = "Sure, happy to help. They pull on iron.";
        assert_eq!(p.score(own, reply), 1.0);
        assert_eq!(t.score(own, reply), 0.0);
        assert_eq!(
            t.score(own, "Sure, happy to help. No. Now stop bothering me."),
            -1.0
        );
        for taste in Taste::ALL {
            assert_eq!(taste.score(SUM, ""), -1.0);
            assert_eq!(Taste::from_name(taste.name()), Some(taste));
        }
    }

    #[test]
    fn scores_become_each_kind_of_feedback() {
        assert_eq!([-1.0, -0.5, 0.0, 0.5, 1.0].map(stars), [1, 2, 3, 4, 5]);
        assert!(thumbs(0.5) && !thumbs(0.0) && !thumbs(-1.0));
        assert_eq!(prefer(1.0, -1.0), Some(true));
        assert_eq!(prefer(-1.0, 0.5), Some(false));
        assert_eq!(prefer(0.5, 0.5), None);
    }

    #[test]
    fn rules_match_and_bad_rules_are_refused() {
        let r = Rater::regex(r"(?i)\bhope\b").unwrap();
        assert_eq!(r.score("hi", "Hope that helps.").unwrap(), 1.0);
        assert_eq!(r.score("hi", "Hopeful.").unwrap(), -1.0);
        let k = Rater::keyword("a.b").unwrap();
        assert!(k.prefers("hi", "A.B!").unwrap());
        assert!(!k.prefers("hi", "axb").unwrap());
        assert!(matches!(Rater::regex("("), Err(Error::Grader(m)) if m.contains("not a valid")));
        assert!(Rater::regex("  ").is_err());
        assert!(Rater::keyword("").is_err());
        assert!(Rater::regex(&"a".repeat(500)).is_err());
    }

    #[test]
    fn grader_commands_score_and_fail_clearly() {
        let cmd = |c: &str| Rater::Command {
            command: c.into(),
            timeout: std::time::Duration::from_millis(2000),
        };
        // The program sees the JSON exchange on stdin.
        let r = cmd("grep -q '\"reply\":\"yes\"' && echo 0.75 || echo -0.25");
        assert_eq!(r.score("q", "yes").unwrap(), 0.75);
        assert_eq!(r.score("q", "no").unwrap(), -0.25);
        let e = cmd("echo banana").score("q", "r").unwrap_err();
        assert!(matches!(e, Error::Grader(_)), "{e:?}");
        assert!(e.to_string().contains("not a number"), "{e}");
        let e = cmd("echo 3").score("q", "r").unwrap_err();
        assert!(e.to_string().contains("outside -1 to 1"), "{e}");
        let e = cmd("echo oops >&2; exit 4").score("q", "r").unwrap_err();
        assert!(
            e.to_string().contains("exited") && e.to_string().contains("oops"),
            "{e}"
        );
        let slow = Rater::Command {
            command: "sleep 5".into(),
            timeout: std::time::Duration::from_millis(200),
        };
        let e = slow.score("q", "r").unwrap_err();
        assert!(e.to_string().contains("no answer within"), "{e}");
    }
}
