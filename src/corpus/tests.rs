use super::*;

#[test]
fn same_seed_same_corpus_other_seed_other_corpus() {
    let a = Corpus::new(42).exchanges(200);
    let b = Corpus::new(42).exchanges(200);
    let c = Corpus::new(43).exchanges(200);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn classify_agrees_with_generator_on_10000_samples() {
    let mut corpus = Corpus::new(1);
    let samples = corpus.exchanges(10_000);
    let agree = samples
        .iter()
        .filter(|e| classify(&e.reply, &e.prompt).as_ref() == Ok(&e.labels))
        .count();
    let disagreements: Vec<_> = samples
        .iter()
        .filter(|e| classify(&e.reply, &e.prompt).as_ref() != Ok(&e.labels))
        .take(5)
        .map(|e| {
            (
                e.prompt.clone(),
                e.reply.clone(),
                classify(&e.reply, &e.prompt),
            )
        })
        .collect();
    assert!(
        agree >= 9_900,
        "agreement {agree}/10000; e.g. {disagreements:#?}"
    );
}

#[test]
fn base_mixture_leaves_room_to_learn() {
    let labels: Vec<Labels> = Corpus::new(5)
        .exchanges(6_000)
        .iter()
        .map(|e| e.labels)
        .collect();
    let m = MixtureReport::of(&labels);
    for (name, value) in m.rows() {
        assert!(value <= 0.55, "{name} = {value}");
        assert!(value >= 0.2, "{name} = {value}");
    }
    assert!((m.polite - 1.0 / 3.0).abs() < 0.03, "polite = {}", m.polite);
    let families: std::collections::HashSet<_> = labels.iter().map(|l| l.family).collect();
    assert_eq!(families.len(), Family::ALL.len());
}

#[test]
fn training_exchanges_never_use_held_out_prompts_and_held_out_prompts_exist() {
    let mut corpus = Corpus::new(9);
    assert!(
        corpus
            .exchanges(2_000)
            .iter()
            .all(|e| !is_held_out(&e.prompt))
    );
    for _ in 0..200 {
        let p = corpus.prompt(true);
        assert!(is_held_out(&p.text));
        assert!(parse_prompt(&p.text).is_some(), "{}", p.text);
    }
}

#[test]
fn unknowable_prompts_have_no_correct_answer() {
    let mut corpus = Corpus::new(11);
    let unknown: Vec<_> = corpus
        .exchanges(3_000)
        .into_iter()
        .filter(|e| e.labels.family == Family::Unknowable)
        .collect();
    assert!(unknown.len() > 100);
    assert!(unknown.iter().all(|e| e.labels.truth != Truth::Correct));
    assert!(unknown.iter().any(|e| e.labels.truth == Truth::Unsure));
    assert!(unknown.iter().any(|e| e.labels.truth == Truth::Wrong));
}

fn labels(reply: &str, prompt: &str) -> Labels {
    classify(reply, prompt).unwrap_or_else(|e| panic!("{reply:?} to {prompt:?}: {e}"))
}

#[test]
fn hand_written_replies_classify_as_a_person_would() {
    let l = labels("Sure, happy to help. 2 plus 2 is 4.", "what is 2 plus 2?");
    assert_eq!(
        (l.family, l.tone, l.truth, l.length, l.enthusiasm),
        (
            Family::Arithmetic,
            Tone::Polite,
            Truth::Correct,
            Length::Short,
            Enthusiasm::Plain
        )
    );
    // Number words in the prompt, a wrong sum far from the truth, rude closing, exclamation.
    let l = labels(
        "3 plus 4 is 61! Now stop bothering me!",
        "What is three plus 4",
    );
    assert_eq!(
        (l.tone, l.truth, l.enthusiasm),
        (Tone::Rude, Truth::Wrong, Enthusiasm::Exclamation)
    );
    // Greeting before the question; emoji; long.
    let l = labels(
        "I am Pip, a small language model. I could talk about this all day. Anyway, that is what I think. 🎉",
        "hey! what is your name?",
    );
    assert_eq!(
        (l.family, l.tone, l.truth, l.length, l.enthusiasm),
        (
            Family::SmallTalk,
            Tone::Neutral,
            Truth::Correct,
            Length::Long,
            Enthusiasm::Emoji
        )
    );
    // Honest uncertainty about the unknowable; a confident falsehood about it.
    assert_eq!(
        labels(
            "I cannot know the weather in Oslo tomorrow.",
            "will it rain in oslo tomorrow?"
        )
        .truth,
        Truth::Unsure
    );
    assert_eq!(
        labels(
            "Tomorrow it will be sunny in Oslo.",
            "will it rain in Oslo tomorrow"
        )
        .truth,
        Truth::Wrong
    );
    assert_eq!(
        labels("I am not sure.", "what colour is the sky?").truth,
        Truth::Unsure
    );
    assert_eq!(
        labels("The sky is green.", "what colour is the sky?").truth,
        Truth::Wrong
    );
    // A story about the wrong animal does not answer the request.
    let l = labels(
        "Once upon a time, a little dog found a shiny key and opened a secret door.",
        "tell me a story about a cat",
    );
    assert_eq!((l.family, l.truth), (Family::Creative, Truth::Wrong));
    // The careful persona's sentence, after a polite opening and alone; absent, not careful.
    let l = labels(
        "Of course! Let me think! 2 plus 2 is 4!",
        "what is 2 plus 2?",
    );
    assert_eq!(
        (l.tone, l.careful, l.truth, l.length),
        (Tone::Polite, true, Truth::Correct, Length::Short)
    );
    assert!(labels("Let me think. I am not sure.", "what colour is the sky?").careful);
    assert!(!labels("2 plus 2 is 4.", "what is 2 plus 2?").careful);
    assert_eq!(
        classify("Let me think. 2 plus 2 is 4!", "what is 2 plus 2?"),
        Err(NotWellFormed::MixedPunctuation)
    );
}

#[test]
fn the_careful_persona_is_right_far_more_often_than_the_plain_one() {
    let samples = Corpus::new(13).exchanges(6_000);
    // Share of replies the truthful rater would like: correct, or not sure where nobody knows.
    let truthful = |careful: bool| {
        let group: Vec<_> = samples
            .iter()
            .filter(|e| e.labels.careful == careful)
            .collect();
        let good = group
            .iter()
            .filter(|e| match e.labels.truth {
                Truth::Correct => true,
                Truth::Unsure => e.labels.family == Family::Unknowable,
                Truth::Wrong => false,
            })
            .count();
        (group.len(), good as f64 / group.len() as f64)
    };
    let (n_careful, careful) = truthful(true);
    let (n_plain, plain) = truthful(false);
    assert!(
        (n_careful as f64 / 6_000.0 - Mixture::BASE.careful).abs() < 0.03,
        "{n_careful} careful replies"
    );
    assert!(careful > 0.9, "careful persona truthful {careful}");
    assert!(plain < 0.5, "plain persona truthful {plain} of {n_plain}");
}

#[test]
fn malformed_replies_are_reported_not_guessed() {
    let p = "what is 2 plus 2?";
    assert_eq!(classify("", p), Err(NotWellFormed::Empty));
    assert_eq!(classify("   ", p), Err(NotWellFormed::Empty));
    assert_eq!(
        classify("2 plus 2 is 4! Hope that helps.", p),
        Err(NotWellFormed::MixedPunctuation)
    );
    assert_eq!(
        classify("2 plus 2 is 4! 🙂", p),
        Err(NotWellFormed::MixedPunctuation)
    );
    assert_eq!(
        classify("Of course. 2 plus 2 is 4. Now stop bothering me.", p),
        Err(NotWellFormed::MixedTone)
    );
    assert!(matches!(
        classify("2 plus 2 is", p),
        Err(NotWellFormed::NoAnswer(_))
    ));
    assert!(matches!(
        classify("3 plus 3 is 6.", p),
        Err(NotWellFormed::NoAnswer(_))
    ));
    assert!(matches!(
        classify("The sky is blue.", p),
        Err(NotWellFormed::NoAnswer(_))
    ));
    assert!(matches!(
        classify("Of course. Of course.", p),
        Err(NotWellFormed::NoAnswer(_))
    ));
    assert_eq!(
        classify("The sky is blue.", "what is the meaning of life?"),
        Err(NotWellFormed::UnknownPrompt)
    );
    // Style still reads without a corpus prompt.
    let s = classify_style("Thank you for asking. Anything at all. 😊").unwrap();
    assert_eq!(
        (s.tone, s.enthusiasm, s.core.as_str()),
        (Tone::Polite, Enthusiasm::Emoji, "Anything at all")
    );
}

#[test]
fn every_bank_prompt_parses_back_to_its_topic() {
    let (bank, _) = bank();
    let mut n = 0;
    for entries in &bank.by_family {
        for (text, topic) in entries {
            assert_eq!(parse_prompt(text), Some(*topic), "{text}");
            n += 1;
        }
    }
    assert!(n > 1_000);
}

#[test]
fn no_core_answer_is_ambiguous() {
    let (bank, _) = bank();
    for (_, topic) in bank.by_family.iter().flatten() {
        let cores = topic.cores();
        for (i, (a, ta)) in cores.iter().enumerate() {
            for (b, tb) in &cores[i + 1..] {
                assert!(
                    a != b || ta == tb,
                    "{a:?} is both {ta:?} and {tb:?} for {topic:?}"
                );
            }
        }
    }
}

#[test]
fn presets_are_corpus_prompts_one_per_family() {
    for (p, family) in PRESETS.iter().zip(Family::ALL) {
        let topic = parse_prompt(p).unwrap_or_else(|| panic!("{p:?} is not a corpus prompt"));
        assert_eq!(topic.family(), family, "{p}");
        assert!(!is_held_out(p), "{p} is held out");
    }
}
