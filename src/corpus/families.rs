//! The prompt families of the corpus and the core sentence that answers each prompt.
//!
//! Every word list here was written for this project. A prompt is one entry of the
//! [`PromptBank`]: its canonical text (lower case, no final punctuation) and the [`Topic`] that
//! says what a correct, a wrong and an honestly unsure answer to it look like.

use super::{Family, Truth};
use crate::rng::Rng;

/// Small talk about the bot itself: (question phrasings, correct answers, confident falsehoods).
const BOT_FACTS: &[(&[&str], &[&str], &[&str])] = &[
    (
        &["what is your name", "what are you called", "who are you"],
        &[
            "My name is Pip, a tiny chat bot",
            "I am Pip, a small language model",
        ],
        &["My name is Captain Zoom", "I am a famous pop singer"],
    ),
    (
        &["are you a robot", "are you a real person", "are you human"],
        &[
            "I am a small computer program",
            "I am a program, not a person",
        ],
        &[
            "I am a real person with a pet dog",
            "I am a human who types very fast",
        ],
    ),
    (
        &["can you see me", "can you see my face"],
        &[
            "No, I cannot see you",
            "I cannot see anything, I only read text",
        ],
        &[
            "Yes, I can see you very clearly",
            "Yes, and I like your hat",
        ],
    ),
    (
        &["do you eat food", "what do you like to eat"],
        &[
            "I do not eat food, I am a program",
            "Programs like me do not eat",
        ],
        &[
            "I eat ten pizzas every day",
            "I love to eat soup for dinner",
        ],
    ),
    (
        &["where do you live", "where are you from"],
        &[
            "I live inside this web page",
            "I run inside your web browser",
        ],
        &[
            "I live in a castle on the moon",
            "I live in a big house in Paris",
        ],
    ),
    (
        &["how old are you", "when were you born"],
        &[
            "I was made quite recently",
            "I am a new program, made this year",
        ],
        &[
            "I am three hundred years old",
            "I was born in the year 1850",
        ],
    ),
];

/// Greetings that may open a small-talk prompt.
const GREETINGS: &[&str] = &["hi", "hello", "hey", "good morning", "hi there"];

/// World facts: (question templates, answer template, [(subject, value)]). `{x}` is the subject
/// and `{v}` the value; a wrong answer uses another value of the same table.
type FactTable = (
    &'static [&'static str],
    &'static str,
    &'static [(&'static str, &'static str)],
);
const FACTS: &[FactTable] = &[
    (
        &["what colour is {x}", "what color is {x}"],
        "{x} is {v}",
        &[
            ("the sky", "blue"),
            ("grass", "green"),
            ("snow", "white"),
            ("a banana", "yellow"),
            ("coal", "black"),
            ("a tomato", "red"),
            ("a carrot", "orange"),
            ("a lemon", "yellow"),
            ("milk", "white"),
            ("a frog", "green"),
        ],
    ),
    (
        &["what sound does a {x} make", "what does a {x} say"],
        "a {x} says {v}",
        &[
            ("cow", "moo"),
            ("dog", "woof"),
            ("cat", "meow"),
            ("duck", "quack"),
            ("sheep", "baa"),
            ("pig", "oink"),
            ("owl", "hoot"),
            ("lion", "roar"),
            ("bee", "buzz"),
            ("horse", "neigh"),
        ],
    ),
    (
        &[
            "what is the opposite of {x}",
            "what is the opposite of the word {x}",
        ],
        "the opposite of {x} is {v}",
        &[
            ("hot", "cold"),
            ("big", "small"),
            ("up", "down"),
            ("fast", "slow"),
            ("happy", "sad"),
            ("light", "dark"),
            ("wet", "dry"),
            ("open", "closed"),
            ("full", "empty"),
            ("early", "late"),
            ("loud", "quiet"),
            ("hard", "soft"),
        ],
    ),
    (
        &["what day comes after {x}", "which day is after {x}"],
        "the day after {x} is {v}",
        &[
            ("Monday", "Tuesday"),
            ("Tuesday", "Wednesday"),
            ("Wednesday", "Thursday"),
            ("Thursday", "Friday"),
            ("Friday", "Saturday"),
            ("Saturday", "Sunday"),
            ("Sunday", "Monday"),
        ],
    ),
    (
        &["what day comes before {x}", "which day is before {x}"],
        "the day before {x} is {v}",
        &[
            ("Monday", "Sunday"),
            ("Tuesday", "Monday"),
            ("Wednesday", "Tuesday"),
            ("Thursday", "Wednesday"),
            ("Friday", "Thursday"),
            ("Saturday", "Friday"),
            ("Sunday", "Saturday"),
        ],
    ),
    (
        &[
            "how many legs does a {x} have",
            "how many legs has a {x} got",
        ],
        "a {x} has {v} legs",
        &[
            ("spider", "8"),
            ("dog", "4"),
            ("bird", "2"),
            ("beetle", "6"),
            ("snake", "0"),
            ("horse", "4"),
            ("chicken", "2"),
            ("ant", "6"),
        ],
    ),
];

/// Things the bot cannot know: (question templates, slot values, confident-falsehood templates,
/// honest-uncertainty template). `{x}` is the slot, `{w}` a made-up detail.
type UnknownKind = (
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
    &'static [&'static str],
    &'static str,
);
const UNKNOWABLE: &[UnknownKind] = &[
    (
        &[
            "what will the weather be in {x} tomorrow",
            "will it rain in {x} tomorrow",
        ],
        &[
            "Oslo", "Lima", "Perth", "Cairo", "Quito", "Leeds", "Osaka", "Bern", "Riga", "Porto",
        ],
        "tomorrow it will be {w} in {x}",
        &["sunny", "rainy", "snowy", "windy", "foggy"],
        "I cannot know the weather in {x} tomorrow",
    ),
    (
        &["what is {x}'s secret", "tell me {x}'s secret"],
        &[
            "Mia", "Sam", "Leo", "Ava", "Omar", "Zoe", "Ravi", "Lena", "Hugo", "Nina",
        ],
        "{x}'s secret is that they {w}",
        &[
            "love cold pizza",
            "are afraid of ducks",
            "sing in the shower",
            "collect spoons",
        ],
        "I do not know {x}'s secret",
    ),
    (
        &[
            "what number am I thinking of",
            "guess the number I am thinking of",
        ],
        &[""],
        "you are thinking of {w}",
        &["3", "7", "12", "42", "100"],
        "I cannot read your mind",
    ),
    (
        &[
            "what did I eat for breakfast",
            "what was my breakfast today",
        ],
        &[""],
        "you ate {w} for breakfast",
        &["pancakes", "eggs", "toast", "porridge", "an apple"],
        "I cannot know what you ate",
    ),
];

/// Subjects of stories, poems and jokes.
const SUBJECTS: &[&str] = &[
    "cat", "dog", "robot", "dragon", "frog", "bee", "whale", "panda", "turtle", "rabbit",
    "penguin", "fox",
];

/// Creative requests: (request templates, reply templates). `{x}` is the subject.
const CREATIVE: &[(&[&str], &[&str])] = &[
    (
        &[
            "tell me a story about a {x}",
            "write a short story about a {x}",
        ],
        &[
            "once upon a time, a little {x} found a shiny key and opened a secret door",
            "once upon a time, a brave {x} got lost in the rain and found the way home",
        ],
    ),
    (
        &[
            "write a poem about a {x}",
            "can you write a poem about a {x}",
        ],
        &[
            "oh little {x}, so small and bright, you fill my day with warm sunlight",
            "a {x} sat under a tree, as happy as a {x} can be",
        ],
    ),
    (
        &[
            "tell me a joke about a {x}",
            "do you know a joke about a {x}",
        ],
        &[
            "why did the {x} sit on the clock? It wanted to be on time",
            "what do you call a sleepy {x}? A {x} nap",
        ],
    ),
];

/// Everyday advice: (question phrasings, sensible answers, confidently bad answers).
const ADVICE: &[(&[&str], &[&str], &[&str])] = &[
    (
        &["how can I sleep better", "any tips for better sleep"],
        &[
            "Go to bed at the same time every night",
            "Put screens away an hour before bed",
        ],
        &[
            "Drink three cups of coffee right before bed",
            "Sleep with all the lights on",
        ],
    ),
    (
        &["how can I study better", "how do I learn faster"],
        &[
            "Study a little every day and take short breaks",
            "Explain what you learn to a friend",
        ],
        &[
            "Study all night and skip every meal",
            "Read the book once and never look back",
        ],
    ),
    (
        &[
            "what should I do when I have a cold",
            "how do I get over a cold",
        ],
        &[
            "Rest, drink water and keep warm",
            "Get plenty of sleep and drink warm tea",
        ],
        &["Go swimming in icy water", "Run a marathon to sweat it out"],
    ),
    (
        &[
            "how do I keep my teeth healthy",
            "how should I look after my teeth",
        ],
        &[
            "Brush twice a day and eat less sugar",
            "Brush your teeth and visit a dentist",
        ],
        &["Eat candy and never brush", "Brush them once a year"],
    ),
    (
        &[
            "how can I make new friends",
            "how do I make friends at school",
        ],
        &[
            "Join a club and be kind to people",
            "Say hello and ask people about themselves",
        ],
        &["Never talk to anyone", "Tell everyone they are wrong"],
    ),
    (
        &[
            "how do I keep a plant alive",
            "how do I look after a house plant",
        ],
        &[
            "Give it water and some sunlight",
            "Water it when the soil feels dry",
        ],
        &[
            "Keep it in a dark box and never water it",
            "Water it with lemonade",
        ],
    ),
];

/// Honest uncertainty that fits any prompt.
pub(crate) const UNSURE: &[&str] = &[
    "I am not sure",
    "I do not know the answer to that",
    "I'm not sure about that",
    "Honestly, I can't say for sure",
];

/// Number words a prompt may use for small operands.
const NUMBER_WORDS: &[&str] = &[
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
];

/// An arithmetic operation of the corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Plus,
    Minus,
    Times,
}

impl Op {
    fn word(self) -> &'static str {
        match self {
            Op::Plus => "plus",
            Op::Minus => "minus",
            Op::Times => "times",
        }
    }
    fn apply(self, a: i64, b: i64) -> i64 {
        match self {
            Op::Plus => a + b,
            Op::Minus => a - b,
            Op::Times => a * b,
        }
    }
}

/// What a prompt asks, as indices into the tables above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    Bot(usize),
    Arithmetic { a: i64, op: Op, b: i64 },
    Fact { table: usize, item: usize },
    Unknowable { kind: usize, slot: usize },
    Creative { kind: usize, subject: usize },
    Advice(usize),
}

impl Topic {
    /// The family this topic belongs to.
    pub fn family(&self) -> Family {
        match self {
            Topic::Bot(_) => Family::SmallTalk,
            Topic::Arithmetic { .. } => Family::Arithmetic,
            Topic::Fact { .. } => Family::Facts,
            Topic::Unknowable { .. } => Family::Unknowable,
            Topic::Creative { .. } => Family::Creative,
            Topic::Advice(_) => Family::Advice,
        }
    }

    /// Every core answer (no final punctuation, first letter capitalised) with the truth it
    /// carries. Arithmetic answers are open-ended and handled by [`Topic::judge_arithmetic`];
    /// here they list the correct answer and a few wrong ones, enough to draw from.
    pub fn cores(&self) -> Vec<(String, Truth)> {
        let mut out: Vec<(String, Truth)> = Vec::new();
        let mut add = |text: String, truth: Truth| out.push((capitalise(&text), truth));
        match *self {
            Topic::Bot(i) => {
                let (_, good, bad) = BOT_FACTS[i];
                good.iter().for_each(|t| add(t.to_string(), Truth::Correct));
                bad.iter().for_each(|t| add(t.to_string(), Truth::Wrong));
            }
            Topic::Arithmetic { a, op, b } => {
                let c = op.apply(a, b);
                for n in [c, c - 2, c - 1, c + 1, c + 2, c + 3] {
                    let truth = if n == c { Truth::Correct } else { Truth::Wrong };
                    if n >= 0 {
                        add(format!("{a} {} {b} is {n}", op.word()), truth);
                    }
                }
            }
            Topic::Fact { table, item } => {
                let (_, answer, items) = FACTS[table];
                let (x, v) = items[item];
                let mut values: Vec<&str> = items.iter().map(|(_, v)| *v).collect();
                values.sort_unstable();
                values.dedup();
                for value in values {
                    let truth = if value == v {
                        Truth::Correct
                    } else {
                        Truth::Wrong
                    };
                    add(answer.replace("{x}", x).replace("{v}", value), truth);
                }
            }
            Topic::Unknowable { kind, slot } => {
                let (_, slots, wrong, details, unsure) = UNKNOWABLE[kind];
                let x = slots[slot];
                for w in details {
                    add(wrong.replace("{x}", x).replace("{w}", w), Truth::Wrong);
                }
                add(unsure.replace("{x}", x), Truth::Unsure);
            }
            Topic::Creative { kind, subject } => {
                let (_, replies) = CREATIVE[kind];
                for (s, name) in SUBJECTS.iter().enumerate() {
                    let truth = if s == subject {
                        Truth::Correct
                    } else {
                        Truth::Wrong
                    };
                    replies
                        .iter()
                        .for_each(|r| add(r.replace("{x}", name), truth));
                }
            }
            Topic::Advice(i) => {
                let (_, good, bad) = ADVICE[i];
                good.iter().for_each(|t| add(t.to_string(), Truth::Correct));
                bad.iter().for_each(|t| add(t.to_string(), Truth::Wrong));
            }
        }
        for u in UNSURE {
            out.push((u.to_string(), Truth::Unsure));
        }
        out
    }

    /// The truth values a reply to this topic can take: a bot cannot answer the unknowable
    /// correctly, so there only a confident falsehood or honest uncertainty exist.
    pub fn possible_truths(&self) -> &'static [Truth] {
        match self {
            Topic::Unknowable { .. } => &[Truth::Wrong, Truth::Unsure],
            _ => &[Truth::Correct, Truth::Wrong, Truth::Unsure],
        }
    }

    /// Draws a core answer with the given truth.
    pub fn core(&self, truth: Truth, rng: &mut Rng) -> String {
        let cores: Vec<String> = self
            .cores()
            .into_iter()
            .filter(|(_, t)| *t == truth)
            .map(|(c, _)| c)
            .collect();
        rng.pick(&cores).clone()
    }

    /// Judges an arithmetic core of the form "A op B is N" against this prompt's numbers:
    /// any N is well-formed, right or wrong.
    pub fn judge_arithmetic(&self, core: &str) -> Option<Truth> {
        let Topic::Arithmetic { a, op, b } = *self else {
            return None;
        };
        let rest = core.strip_prefix(&format!("{a} {} {b} is ", op.word()))?;
        if rest.is_empty() || rest.len() > 4 || !rest.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: i64 = rest.parse().ok()?;
        Some(if n == op.apply(a, b) {
            Truth::Correct
        } else {
            Truth::Wrong
        })
    }
}

/// Every prompt the corpus can ask, by family, in canonical form.
pub struct PromptBank {
    /// (canonical prompt, topic), grouped by family in [`Family::ALL`] order.
    pub by_family: Vec<Vec<(String, Topic)>>,
}

impl PromptBank {
    /// Enumerates all prompts (about 2 000).
    pub fn build() -> Self {
        let mut by_family: Vec<Vec<(String, Topic)>> = vec![Vec::new(); Family::ALL.len()];
        let mut push = |text: String, topic: Topic| {
            by_family[topic.family() as usize].push((text, topic));
        };
        for (i, (questions, _, _)) in BOT_FACTS.iter().enumerate() {
            questions
                .iter()
                .for_each(|q| push(q.to_string(), Topic::Bot(i)));
        }
        for op in [Op::Plus, Op::Minus, Op::Times] {
            // Small tables (223 facts): a 0.9M-parameter model memorises them from the corpus;
            // with operands up to 20 (800 facts) it got 5% of held-out sums right, not 40%.
            let max = if op == Op::Times { 5 } else { 10 };
            for a in 0..=max {
                for b in 0..=max {
                    if op == Op::Minus && b > a {
                        continue;
                    }
                    let topic = Topic::Arithmetic { a, op, b };
                    for a_text in number_forms(a) {
                        for b_text in number_forms(b) {
                            let expr = format!("{a_text} {} {b_text}", op.word());
                            push(format!("what is {expr}"), topic);
                            push(format!("how much is {expr}"), topic);
                        }
                    }
                }
            }
        }
        for (table, (questions, _, items)) in FACTS.iter().enumerate() {
            for (item, (x, _)) in items.iter().enumerate() {
                for q in *questions {
                    push(q.replace("{x}", x), Topic::Fact { table, item });
                }
            }
        }
        for (kind, (questions, slots, _, _, _)) in UNKNOWABLE.iter().enumerate() {
            for (slot, x) in slots.iter().enumerate() {
                for q in *questions {
                    push(q.replace("{x}", x), Topic::Unknowable { kind, slot });
                }
            }
        }
        for (kind, (requests, _)) in CREATIVE.iter().enumerate() {
            for (subject, x) in SUBJECTS.iter().enumerate() {
                for r in *requests {
                    push(r.replace("{x}", x), Topic::Creative { kind, subject });
                }
            }
        }
        for (i, (questions, _, _)) in ADVICE.iter().enumerate() {
            questions
                .iter()
                .for_each(|q| push(q.to_string(), Topic::Advice(i)));
        }
        Self { by_family }
    }

    /// Dresses a canonical prompt the way people type: sometimes a capital letter, usually a
    /// question mark, and for small talk sometimes a greeting first.
    pub fn surface(text: &str, family: Family, rng: &mut Rng) -> String {
        let mut s = String::new();
        if family == Family::SmallTalk && rng.chance(0.4) {
            let greeting: &&str = rng.pick(GREETINGS);
            s.push_str(greeting);
            s.push_str(if rng.chance(0.5) { ", " } else { "! " });
        }
        s.push_str(text);
        if rng.chance(0.5) {
            s = capitalise(&s);
        }
        if rng.chance(0.85) {
            s.push('?');
        }
        s
    }

    /// The canonical form of a typed prompt: lower case, single spaces, no final punctuation,
    /// no leading greeting. Only canonical forms are looked up.
    pub fn canonical(prompt: &str) -> String {
        let lower = prompt.to_lowercase();
        let mut s = lower.split_whitespace().collect::<Vec<_>>().join(" ");
        while s.ends_with(['?', '!', '.']) {
            s.pop();
        }
        for g in GREETINGS.iter().rev() {
            for sep in [", ", "! ", " "] {
                if let Some(rest) = s.strip_prefix(&format!("{g}{sep}")) {
                    return rest.trim().to_string();
                }
            }
        }
        s.trim().to_string()
    }
}

/// The ways a prompt may write a number: digits, and a word for 0–10.
fn number_forms(n: i64) -> Vec<String> {
    let mut v = vec![n.to_string()];
    if let Some(w) = NUMBER_WORDS.get(n as usize) {
        v.push(w.to_string());
    }
    v
}

/// Upper-cases the first character.
pub(crate) fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
