//! The engine's one error type. Every refusal is addressed to the person who can fix it and
//! says what to change; the variant says where it came from, so a caller (the CLI, the page)
//! can tell a bad setting from bad feedback without reading the message.

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A setting out of its range, unknown or of the wrong type (`--set`, the page's Settings).
    Config(String),
    /// Feedback, a prompt or an imported log that the session refuses; nothing was recorded.
    Feedback(String),
    /// The model's files: weights, tokenizer or metadata that do not load or do not match.
    Weights(String),
    /// A grader (a rule, a keyword or a grader program) that could not score a reply.
    Grader(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config(m) | Error::Feedback(m) | Error::Weights(m) | Error::Grader(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for Error {}

/// The engine's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
