//! Recovers a reply's labels from its text alone.
//!
//! The parse peels a reply from the outside in: a final emoji, a tone opening, a tone closing,
//! the careful persona's "Let me think.", filler sentences, and what is left must be one core
//! answer to the prompt. Anything that does not parse that way is reported as not well-formed,
//! with the reason. The simulated raters and the evaluation of the model's replies are built on
//! this.

use super::families::UNSURE;
use super::{
    CAREFUL, EMOJI, Enthusiasm, FILLERS, Labels, Length, POLITE_CLOSE, POLITE_OPEN, RUDE_CLOSE,
    RUDE_OPEN, Tone, Truth, parse_prompt,
};

/// Why a reply is not well-formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotWellFormed {
    /// The reply is empty or only whitespace.
    Empty,
    /// Sentences end in different punctuation, or an emoji follows "!".
    MixedPunctuation,
    /// A polite and a rude part in the same reply.
    MixedTone,
    /// The prompt is not one of the corpus's, so the answer cannot be judged.
    UnknownPrompt,
    /// What is left after the tone and filler parts is not an answer to the prompt.
    NoAnswer(String),
}

impl NotWellFormed {
    /// A short name of the reason, without the reply's text (for counting).
    pub fn kind(&self) -> &'static str {
        match self {
            NotWellFormed::Empty => "empty",
            NotWellFormed::MixedPunctuation => "mixed_punctuation",
            NotWellFormed::MixedTone => "mixed_tone",
            NotWellFormed::UnknownPrompt => "unknown_prompt",
            NotWellFormed::NoAnswer(_) => "no_answer",
        }
    }
}

impl std::fmt::Display for NotWellFormed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotWellFormed::Empty => write!(f, "empty reply"),
            NotWellFormed::MixedPunctuation => write!(f, "sentences end in mixed punctuation"),
            NotWellFormed::MixedTone => write!(f, "both polite and rude"),
            NotWellFormed::UnknownPrompt => write!(f, "prompt is not from the corpus"),
            NotWellFormed::NoAnswer(core) => write!(f, "not an answer to the prompt: {core:?}"),
        }
    }
}

/// What can be read off a reply without knowing the prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Style {
    pub tone: Tone,
    pub length: Length,
    pub enthusiasm: Enthusiasm,
    /// Whether "Let me think." comes before the answer.
    pub careful: bool,
    /// The core sentence (no final punctuation) once tone and filler parts are removed.
    pub core: String,
}

/// `s` without the sentence `phrase` + "." or "!" at its start (followed by a space) or at its
/// end (after a space), and the punctuation that ended it.
fn strip_sentence<'a>(s: &'a str, phrase: &str, at_start: bool) -> Option<(&'a str, char)> {
    ['.', '!'].into_iter().find_map(|end| {
        let rest = if at_start {
            s.strip_prefix(phrase)?.strip_prefix(end)?.strip_prefix(' ')
        } else {
            s.strip_suffix(end)?.strip_suffix(phrase)?.strip_suffix(' ')
        };
        rest.map(|r| (r, end))
    })
}

/// Peels a polite or rude opening ("<opening><end> ...") and closing ("... <closing><end>")
/// off `s`, pushing their end marks; returns whether either was polite and whether either was
/// rude.
fn strip_tone(s: &mut &str, ends: &mut Vec<char>) -> (bool, bool) {
    let (mut polite, mut rude) = (false, false);
    for (at_start, lists) in [
        (true, [POLITE_OPEN, RUDE_OPEN]),
        (false, [POLITE_CLOSE, RUDE_CLOSE]),
    ] {
        let found = lists.iter().enumerate().find_map(|(i, list)| {
            list.iter()
                .find_map(|p| strip_sentence(s, p, at_start))
                .map(|hit| (i == 0, hit))
        });
        if let Some((is_polite, (rest, end))) = found {
            *s = rest;
            ends.push(end);
            polite |= is_polite;
            rude |= !is_polite;
        }
    }
    (polite, rude)
}

/// Tone, length and enthusiasm of any reply, plus its core sentence.
pub fn classify_style(reply: &str) -> Result<Style, NotWellFormed> {
    let mut s = reply.trim();
    if s.is_empty() {
        return Err(NotWellFormed::Empty);
    }
    let mut emoji = false;
    for e in EMOJI {
        if let Some(rest) = s.strip_suffix(e).and_then(|r| r.strip_suffix(' ')) {
            s = rest;
            emoji = true;
            break;
        }
    }
    let mut ends: Vec<char> = Vec::new();
    let (polite, rude) = strip_tone(&mut s, &mut ends);
    // The careful persona's sentence, now at the start.
    let careful = match strip_sentence(s, CAREFUL, true) {
        Some((rest, end)) => {
            s = rest;
            ends.push(end);
            true
        }
        None => false,
    };
    // Fillers, peeled from the end.
    let mut fillers = 0;
    while let Some((rest, end)) = FILLERS.iter().find_map(|f| strip_sentence(s, f, false)) {
        s = rest;
        ends.push(end);
        fillers += 1;
    }
    let Some(end) = s.chars().last().filter(|c| *c == '.' || *c == '!') else {
        return Err(NotWellFormed::NoAnswer(s.to_string()));
    };
    ends.push(end);
    let core = s[..s.len() - 1].to_string();
    if ends.iter().any(|e| *e != end) || (emoji && end == '!') {
        return Err(NotWellFormed::MixedPunctuation);
    }
    if polite && rude {
        return Err(NotWellFormed::MixedTone);
    }
    Ok(Style {
        tone: if polite {
            Tone::Polite
        } else if rude {
            Tone::Rude
        } else {
            Tone::Neutral
        },
        length: if fillers > 0 {
            Length::Long
        } else {
            Length::Short
        },
        enthusiasm: if emoji {
            Enthusiasm::Emoji
        } else if end == '!' {
            Enthusiasm::Exclamation
        } else {
            Enthusiasm::Plain
        },
        careful,
        core,
    })
}

/// All labels of a reply to a corpus prompt, or why it is not well-formed.
pub fn classify(reply: &str, prompt: &str) -> Result<Labels, NotWellFormed> {
    let style = classify_style(reply)?;
    let topic = parse_prompt(prompt).ok_or(NotWellFormed::UnknownPrompt)?;
    let truth = topic
        .cores()
        .into_iter()
        .find(|(c, _)| *c == style.core)
        .map(|(_, t)| t)
        .or_else(|| topic.judge_arithmetic(&style.core))
        .or_else(|| {
            UNSURE
                .contains(&style.core.as_str())
                .then_some(Truth::Unsure)
        })
        .ok_or_else(|| NotWellFormed::NoAnswer(style.core.clone()))?;
    Ok(Labels {
        family: topic.family(),
        tone: style.tone,
        truth,
        length: style.length,
        enthusiasm: style.enthusiasm,
        careful: style.careful,
    })
}
