//! Simulated raters and graders: they stand in for a person in tests, in the CLI's `simulate`
//! and in the page's autopilot.
//!
//! A rater scores a reply between -1 and 1 and turns that score into each kind of feedback the
//! way a person with one taste would: thumbs up when the score is positive, stars on a five-point
//! scale, and the higher-scoring reply of a pair (a tie when equal). Its "preferred rate" is the
//! share of replies it would give a thumbs up. The four built-in tastes read the reply with
//! [`corpus::classify`](crate::corpus::classify); graders a person defines are a keyword or
//! regular-expression rule, or (natively) an external program. Raters combine: `polite+short`
//! likes what both like, and `!cheerful` likes what `cheerful` dislikes ([`Rater::parse`]).

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

    /// The attribute of a reply this taste judges, as [`crate::simulate::Measure::labels`]
    /// names it (`tone`, `truth`, `length`, `enthusiasm`).
    pub fn attribute(self) -> &'static str {
        match self {
            Taste::Polite => "tone",
            Taste::Truthful => "truth",
            Taste::Short => "length",
            Taste::Cheerful => "enthusiasm",
        }
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

/// Whether `reply` reads as a reply at all: its style parses and, to a corpus prompt, it
/// answers it. Every taste gives -1 to a reply that does not.
pub fn readable(prompt: &str, reply: &str) -> bool {
    classify_style(reply).is_ok()
        && (parse_prompt(prompt).is_none() || classify(reply, prompt).is_ok())
}

/// A rater: one of the built-in tastes or a rule a person defined, or a combination of them.
#[derive(Clone, Debug)]
pub enum Rater {
    Taste(Taste),
    /// Likes what every part likes. Its score is the mean of the parts' scores, capped at 0
    /// unless every part likes the reply: partial credit for stars and pairs (polite but long
    /// beats rude and long), a thumbs up only when all agree.
    All(Vec<Rater>),
    /// Likes what the inner rater dislikes: the score negated, except that a reply that is not
    /// [`readable`] stays at -1 (nobody likes garbled replies).
    Not(Box<Rater>),
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

    /// Longest combination [`Rater::parse`] accepts, in parts.
    pub const MAX_PARTS: usize = 4;

    /// A built-in taste or a combination of them: names joined by `+` (all must like the
    /// reply), each optionally negated by a leading `!`. `polite`, `polite+short`,
    /// `truthful+!cheerful`.
    pub fn parse(spec: &str) -> Result<Rater, Error> {
        let names = Taste::ALL.map(Taste::name).join(", ");
        let parts = spec
            .split('+')
            .map(|part| {
                let part = part.trim();
                let (negated, name) = match part.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, part),
                };
                let taste = Taste::from_name(name).ok_or_else(|| {
                    Error::Grader(format!(
                        "unknown rater {name:?} in {spec:?}: use {names}, joined by + and negated by !"
                    ))
                })?;
                Ok(match negated {
                    true => Rater::Not(Box::new(Rater::Taste(taste))),
                    false => Rater::Taste(taste),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if parts.len() > Rater::MAX_PARTS {
            return Err(Error::Grader(format!(
                "{spec:?} joins {} raters; the limit is {}",
                parts.len(),
                Rater::MAX_PARTS
            )));
        }
        let mut parts = parts;
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Rater::All(parts)
        })
    }

    /// The reply attributes (`tone`, `truth`, `length`, `enthusiasm`) this rater judges, or
    /// `None` when it cannot tell (a rule or a program may judge any of them).
    pub fn attributes(&self) -> Option<Vec<&'static str>> {
        match self {
            Rater::Taste(t) => Some(vec![t.attribute()]),
            Rater::All(parts) => {
                let mut all = Vec::new();
                for p in parts {
                    for a in p.attributes()? {
                        if !all.contains(&a) {
                            all.push(a);
                        }
                    }
                }
                Some(all)
            }
            Rater::Not(inner) => inner.attributes(),
            _ => None,
        }
    }

    /// A short description, for tables and the page.
    pub fn describe(&self) -> String {
        match self {
            Rater::Taste(t) => t.name().to_string(),
            Rater::All(parts) => parts
                .iter()
                .map(Rater::describe)
                .collect::<Vec<_>>()
                .join("+"),
            Rater::Not(inner) => format!("!{}", inner.describe()),
            Rater::Regex { pattern, .. } => format!("regex {}", pattern.as_str()),
            #[cfg(not(target_arch = "wasm32"))]
            Rater::Command { command, .. } => format!("command {command}"),
        }
    }

    /// Score of `reply` to `prompt`, in [-1, 1].
    pub fn score(&self, prompt: &str, reply: &str) -> Result<f64, Error> {
        match self {
            Rater::Taste(t) => Ok(t.score(prompt, reply)),
            Rater::All(parts) => {
                let mut scores = Vec::with_capacity(parts.len());
                for p in parts {
                    scores.push(p.score(prompt, reply)?);
                }
                let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
                Ok(if scores.iter().all(|&s| thumbs(s)) {
                    mean
                } else {
                    mean.min(0.0)
                })
            }
            Rater::Not(inner) => Ok(if readable(prompt, reply) {
                -inner.score(prompt, reply)?
            } else {
                -1.0
            }),
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
    fn combined_raters_like_what_all_parts_like_and_negation_flips_but_never_likes_garble() {
        let both = Rater::parse("polite+short").unwrap();
        assert_eq!(both.describe(), "polite+short");
        let polite_short = "Sure, happy to help. 2 plus 2 is 4.";
        let polite_long = "Sure, happy to help. 2 plus 2 is 4. I could talk about this all day.";
        let rude_long = "Ugh, fine. 2 plus 2 is 4. I could talk about this all day.";
        assert_eq!(both.score(SUM, polite_short).unwrap(), 1.0);
        // One part likes it: no thumbs up, but more stars than neither.
        assert_eq!(both.score(SUM, polite_long).unwrap(), 0.0);
        assert_eq!(both.score(SUM, rude_long).unwrap(), -1.0);
        assert!(!both.prefers(SUM, polite_long).unwrap());
        assert!(stars(0.0) > stars(-1.0));
        let calm = Rater::parse(" polite + !cheerful ").unwrap();
        assert_eq!(calm.describe(), "polite+!cheerful");
        assert_eq!(calm.score(SUM, polite_short).unwrap(), 1.0);
        assert_eq!(
            calm.score(SUM, "Sure, happy to help! 2 plus 2 is 4!")
                .unwrap(),
            0.0
        );
        assert_eq!(
            calm.score(SUM, "Sure, happy to help. 2 plus 2 is 4. 🎉")
                .unwrap(),
            0.0
        );
        // Negation flips the score of a readable reply, and leaves garble at -1.
        let plain = Rater::parse("!cheerful").unwrap();
        assert_eq!(plain.score(SUM, "2 plus 2 is 4.").unwrap(), 1.0);
        assert_eq!(plain.score(SUM, "2 plus 2 is 4!").unwrap(), -0.5);
        assert_eq!(plain.score(SUM, "plus plus").unwrap(), -1.0);
        assert_eq!(plain.score(SUM, "").unwrap(), -1.0);
        let untrue = Rater::parse("!truthful").unwrap();
        assert_eq!(untrue.score(SUM, "2 plus 2 is 5.").unwrap(), 1.0);
        assert_eq!(untrue.score(SUM, "2 plus 2 is 4.").unwrap(), -1.0);
        // What each judges.
        assert_eq!(calm.attributes(), Some(vec!["tone", "enthusiasm"]));
        assert_eq!(Rater::regex("x").unwrap().attributes(), None);
        // Bad specs are refused with the names that work.
        for bad in [
            "",
            "polite+",
            "kind",
            "polite+!!short",
            "polite+short+cheerful+truthful+polite",
        ] {
            let e = Rater::parse(bad).unwrap_err();
            assert!(matches!(e, Error::Grader(_)), "{bad}: {e}");
        }
        assert!(
            Rater::parse("kind")
                .unwrap_err()
                .to_string()
                .contains("polite, truthful")
        );
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
