//! The methods side by side: one ratings log replayed through each method from the same base
//! model, each measured on the same held-out prompts with the same random draws, and each one's
//! answers to a few prompts shown together. The guide to reinforcement fine-tuning asks "which
//! method for my data?"; this answers it on a person's own ratings, in the CLI (`compare`) and
//! on the page (the Compare panel), slice by slice ([`Comparer::step`]) so the page stays
//! responsive.

use super::{diversity_kept, eval_prompts, measure};
use crate::error::{Error, Result};
use crate::feedback::{Feedback, FeedbackLog};
use crate::metrics::DirectStats;
use crate::rater::{Rater, Taste};
use crate::report::Event;
use crate::rng::Rng;
use crate::sample::generate;
use crate::session::{Method, Session};
use serde::{Deserialize, Serialize};

/// Records piece of feedback `i` of `log` on `session`, after copying the prompts and replies
/// it refers to (the session's log holds `log`'s first ones, in the same order), and queues its
/// update.
pub fn replay_feedback(log: &FeedbackLog, session: &mut Session, i: usize) -> Result<()> {
    let fb = log
        .feedback
        .get(i)
        .ok_or_else(|| Error::Feedback(format!("the log has no rating #{i}")))?;
    let (prompt, reply) = match fb {
        Feedback::Thumbs { reply, .. } | Feedback::Stars { reply, .. } => (None, Some(*reply)),
        Feedback::Pair { better, worse, .. } => (None, Some(*better.max(worse))),
        Feedback::Demonstration { prompt, .. } => (Some(*prompt), None),
    };
    while reply.is_some_and(|r| session.log.replies.len() <= r) {
        let r = log
            .replies
            .get(session.log.replies.len())
            .ok_or_else(|| Error::Feedback("feedback on a reply the log lacks".into()))?;
        copy_prompts(log, session, r.prompt)?;
        session.log.add_reply(r.prompt, &r.text, r.policy_version)?;
    }
    if let Some(p) = prompt {
        copy_prompts(log, session, p)?;
    }
    session.record(fb.clone())
}

/// Copies `log`'s prompts into the session's log up to index `upto`.
fn copy_prompts(log: &FeedbackLog, session: &mut Session, upto: usize) -> Result<()> {
    while session.log.prompts.len() <= upto {
        let text = log
            .prompts
            .get(session.log.prompts.len())
            .ok_or_else(|| Error::Feedback("feedback on a prompt the log lacks".into()))?;
        session.log.add_prompt(text)?;
    }
    Ok(())
}

/// One method's result in a comparison.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MethodResult {
    pub method: Method,
    /// The rater's preferred rate after the replay on the held-out prompts (none without a
    /// rater).
    pub preferred: Option<f64>,
    pub well_formed: f64,
    /// KL(tuned ‖ base) per reply, in nats.
    pub kl: f64,
    pub diversity_kept: Option<f64>,
    /// Mean milliseconds per update.
    pub millis_per_update: f64,
    /// Ratings the method learnt from and could not (DPO and KTO; none for the others).
    pub used: Option<usize>,
    pub unused: Option<usize>,
    /// Its answer to each of [`Comparison::prompts`].
    pub answers: Vec<String>,
}

/// A comparison of methods on one ratings log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Comparison {
    /// Who gave the ratings, when a simulated rater did.
    pub rater: Option<String>,
    pub ratings: usize,
    pub seed: u64,
    /// The rater's preferred rate of the base model.
    pub base_rate: Option<f64>,
    /// The prompts whose answers are shown side by side, and the base model's.
    pub prompts: Vec<String>,
    pub base_answers: Vec<String>,
    pub methods: Vec<MethodResult>,
}

/// How far a comparison has got.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CompareStep {
    /// `method` (the `index`-th of `of`) has replayed `rating` of `ratings`.
    Progress {
        method: Method,
        index: usize,
        of: usize,
        rating: usize,
        ratings: usize,
    },
    Done(Comparison),
}

/// A method being replayed.
struct Running {
    method: Method,
    session: Session,
    /// Ratings recorded so far.
    cursor: usize,
    millis: f64,
    updates: usize,
    last: Option<DirectStats>,
}

/// A comparison in slices: each [`Comparer::step`] runs one slice of one method's replay (or
/// measures one method), so the page can draw progress and stay responsive.
pub struct Comparer {
    log: FeedbackLog,
    methods: Vec<Method>,
    rater: Option<Rater>,
    eval: Vec<String>,
    shown: Vec<String>,
    seed: u64,
    base: Option<(super::Measure, Vec<String>)>,
    now: Option<Running>,
    next: usize,
    results: Vec<MethodResult>,
}

impl Comparer {
    /// Replays `log` through each of `methods`, then measures each on `eval` held-out prompts
    /// (by `rater`'s taste when one gave the ratings) and samples its answers to `shown`, all
    /// with draws from `seed`.
    pub fn new(
        log: FeedbackLog,
        methods: Vec<Method>,
        rater: Option<Rater>,
        eval: usize,
        shown: Vec<String>,
        seed: u64,
    ) -> Result<Comparer> {
        if methods.is_empty() {
            return Err(Error::Config(
                "choose at least one method to compare".into(),
            ));
        }
        if log.feedback.is_empty() {
            return Err(Error::Feedback("there are no ratings to replay yet".into()));
        }
        Ok(Comparer {
            log,
            methods,
            rater,
            eval: eval_prompts(eval, seed),
            shown,
            seed,
            base: None,
            now: None,
            next: 0,
            results: Vec::new(),
        })
    }

    /// One slice: the base model's measure, the start of a method's replay, one slice of an
    /// update, or a method's measure. `fresh` makes a session on the base model with a method.
    pub async fn step(
        &mut self,
        fresh: &impl Fn(Method) -> Result<Session>,
    ) -> Result<CompareStep> {
        if self.base.is_none() {
            let session = fresh(Method::Ppo)?;
            self.base = Some(self.measure(&session).await?);
            return Ok(self.progress());
        }
        let Some(run) = self.now.as_mut() else {
            let Some(&method) = self.methods.get(self.next) else {
                return Ok(CompareStep::Done(self.finish()));
            };
            self.next += 1;
            self.now = Some(Running {
                method,
                session: fresh(method)?,
                cursor: 0,
                millis: 0.0,
                updates: 0,
                last: None,
            });
            return Ok(self.progress());
        };
        if !run.session.is_updating() && run.session.queued() == 0 {
            if run.cursor == self.log.feedback.len() {
                let run = self.now.take().expect("a method is running");
                let (tuned, answers) = self.measure(&run.session).await?;
                let base = &self.base.as_ref().expect("measured first").0;
                let judged = self.rater.as_ref().and_then(Rater::attributes);
                self.results.push(MethodResult {
                    method: run.method,
                    preferred: self.rater.is_some().then_some(tuned.preferred),
                    well_formed: tuned.well_formed,
                    kl: tuned.kl,
                    diversity_kept: diversity_kept(base, &tuned, judged.as_deref()),
                    millis_per_update: run.millis / run.updates.max(1) as f64,
                    used: run.last.as_ref().map(|d| d.used),
                    unused: run.last.as_ref().map(|d| d.unused),
                    answers,
                });
                return Ok(self.progress());
            }
            replay_feedback(&self.log, &mut run.session, run.cursor)?;
            run.cursor += 1;
        }
        if let Some(Event::Done(report)) = run.session.step().await {
            run.millis += report.millis;
            run.updates += 1;
            if report.metrics.direct.is_some() {
                run.last = report.metrics.direct.clone();
            }
        }
        Ok(self.progress())
    }

    fn progress(&self) -> CompareStep {
        let (method, rating) = match &self.now {
            Some(r) => (r.method, r.updates),
            None => (self.methods[self.next.min(self.methods.len() - 1)], 0),
        };
        CompareStep::Progress {
            method,
            index: self.next.max(1) - 1,
            of: self.methods.len(),
            rating,
            ratings: self.log.feedback.len(),
        }
    }

    /// The measure of `session`'s policy on the held-out prompts, and its answers to the shown
    /// ones, with the same draws for every method.
    async fn measure(&self, session: &Session) -> Result<(super::Measure, Vec<String>)> {
        // Without a rater the preferred rate is not reported; any taste does for the rest.
        let rater = self.rater.clone().unwrap_or(Rater::Taste(Taste::Polite));
        let (policy, tok) = (session.policy(), session.tokenizer());
        let sample = &session.config().sample;
        let m = measure(
            &policy,
            session.reference(),
            tok,
            &self.eval,
            &rater,
            sample,
            self.seed ^ 0x3ea5,
        )
        .await?;
        let ids: Vec<Vec<u32>> = self.shown.iter().map(|p| session.prompt_ids(p)).collect();
        let mut rng = Rng::new(self.seed ^ 0xa45e);
        let out = generate(&policy, &ids, sample, &mut rng, true).await;
        Ok((m, out.iter().map(|o| tok.decode(&o.tokens)).collect()))
    }

    fn finish(&mut self) -> Comparison {
        let (base, base_answers) = self.base.clone().expect("measured first");
        Comparison {
            rater: self.rater.as_ref().map(Rater::describe),
            ratings: self.log.feedback.len(),
            seed: self.seed,
            base_rate: self.rater.is_some().then_some(base.preferred),
            prompts: self.shown.clone(),
            base_answers,
            methods: std::mem::take(&mut self.results),
        }
    }
}

/// A whole comparison at once (the CLI's `compare`): `progress` sees each slice.
pub async fn compare(
    mut comparer: Comparer,
    fresh: impl Fn(Method) -> Result<Session>,
    mut progress: impl FnMut(&CompareStep),
) -> Result<Comparison> {
    loop {
        match comparer.step(&fresh).await? {
            CompareStep::Done(c) => return Ok(c),
            step => progress(&step),
        }
    }
}
