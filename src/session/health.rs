//! Nothing breaks the model for good. Before each update the session keeps a snapshot of all it
//! learns (every trainer's model, optimiser state, β and running statistics, and the random
//! numbers); after the update's stages it checks the model, and an update that broke it is
//! rolled back to that snapshot. The same snapshot is what "Undo last rating" restores.
//!
//! The check, in order: every loss of the update finite; β and the reward statistics finite;
//! the policy's cross-entropy on [`PROBES`] fixed corpus exchanges finite, no more than
//! [`MAX_PROBE_RISE`] nats per token above its value after the last good update, and no more
//! than [`MAX_PROBE_DRIFT`] above the base model's. A policy that writes "with with with …"
//! has lost the language it was pretrained on: its cross-entropy on ordinary exchanges jumps
//! by tens of nats per token, where learning a taste moves it by hundredths an update
//! (docs/TUNING.md, "Roll-back").

use super::{Session, Trainers};
use crate::corpus::Corpus;
use crate::error::{Error, Result};
use crate::report::StageReport;
use crate::rng::Rng;
use crate::sft::{self, Demonstration};
use crate::tokenizer::Tokenizer;

/// Corpus exchanges the check reads the policy's cross-entropy on.
pub const PROBES: usize = 8;

/// The most the probe cross-entropy may rise in one update, in nats per token.
pub const MAX_PROBE_RISE: f64 = 0.5;

/// The most the probe cross-entropy may stand above the base model's, in nats per token.
pub const MAX_PROBE_DRIFT: f64 = 1.0;

/// The seed of the probe exchanges (the same for every session).
const PROBE_SEED: u64 = 0x9e1f_4ea1;

/// Everything an update changes, as it was before it.
#[derive(Clone)]
pub(super) struct Snapshot {
    trainers: Trainers,
    rng: Rng,
    corpus: Corpus,
    version: u32,
    updates_begun: usize,
    probe_nll: Option<f64>,
}

/// The probe exchanges, encoded as SFT encodes demonstrations.
pub(super) fn probes(tok: &Tokenizer, context: usize) -> Vec<(Vec<u32>, usize)> {
    let demos: Vec<Demonstration> = Corpus::new(PROBE_SEED)
        .exchanges(PROBES)
        .into_iter()
        .map(|e| Demonstration {
            prompt: e.prompt,
            reply: e.reply,
        })
        .collect();
    sft::encode(tok, &demos, context)
}

/// Why an update's stages left the model broken, if they did: a non-finite loss, β or
/// reward statistic, or a probe cross-entropy `probe` that is not finite, rose more than
/// [`MAX_PROBE_RISE`] above `before` (the last good model's) or stands more than
/// [`MAX_PROBE_DRIFT`] above `base` (the base model's).
pub fn verdict(
    stages: &[StageReport],
    beta: f64,
    moments: (f64, f64),
    probe: f64,
    [before, base]: [f64; 2],
) -> Option<String> {
    if let Some(s) = stages
        .iter()
        .find(|s| s.losses.iter().any(|l| !l.is_finite()))
    {
        return Some(format!(
            "a training step of the {:?} stage gave a loss that is not a number",
            s.stage
        ));
    }
    if !beta.is_finite() || !moments.0.is_finite() || !moments.1.is_finite() {
        return Some("the KL penalty or the reward statistics stopped being numbers".into());
    }
    if !probe.is_finite() {
        return Some("Pip's predictions stopped being numbers".into());
    }
    if probe > before + MAX_PROBE_RISE {
        return Some(format!(
            "Pip stopped writing ordinary sentences: its error on {PROBES} fixed example \
             replies jumped from {before:.2} to {probe:.2} nats per token in one update"
        ));
    }
    if probe > base + MAX_PROBE_DRIFT {
        return Some(format!(
            "Pip drifted too far from ordinary sentences: its error on {PROBES} fixed example \
             replies rose from {base:.2} (the base model) to {probe:.2} nats per token"
        ));
    }
    None
}

impl Session {
    /// What an update may change, as it is now.
    pub(super) fn capture(&self) -> Snapshot {
        Snapshot {
            trainers: self.trainers.clone(),
            rng: self.rng.clone(),
            corpus: self.corpus.clone(),
            version: self.version,
            updates_begun: self.updates_begun,
            probe_nll: self.probe_nll,
        }
    }

    pub(super) fn restore(&mut self, s: Snapshot) {
        self.trainers = s.trainers;
        self.rng = s.rng;
        self.corpus = s.corpus;
        self.version = s.version;
        self.probe_nll = s.probe_nll;
    }

    /// The policy's (or, with `reference`, the base model's) mean cross-entropy per reply token
    /// on the probe exchanges.
    pub(super) async fn probe(&self, reference: bool) -> f64 {
        let model = if reference {
            self.reference.clone()
        } else {
            self.policy()
        };
        let loss = sft::sft_loss(&model, &self.probes, &self.device);
        crate::read(loss).await[0] as f64
    }

    /// Checks the model after an update's stages; rolls it back to the snapshot taken before
    /// the update when they broke it. Returns the probe cross-entropy of the model kept, and
    /// why it rolled back.
    pub(super) async fn check(&mut self, stages: &[StageReport]) -> (f64, Option<String>) {
        let base = match self.base_probe_nll {
            Some(nll) => nll,
            None => {
                let nll = self.probe(true).await;
                self.base_probe_nll = Some(nll);
                nll
            }
        };
        let before = self
            .before
            .as_ref()
            .and_then(|s| s.probe_nll)
            .unwrap_or(base);
        let probe = self.probe(false).await;
        let moments = (
            self.trainers.reward.moments.mean,
            self.trainers.reward.moments.var,
        );
        let why = verdict(
            stages,
            self.trainers.ppo.kl.value,
            moments,
            probe,
            [before, base],
        );
        match (&why, self.before.clone()) {
            (Some(_), Some(snapshot)) => {
                self.restore(snapshot);
                (before, why)
            }
            _ => {
                self.probe_nll = Some(probe);
                (probe, why)
            }
        }
    }

    /// Undoes the last rating: the model as it was before its update, and the rating gone from
    /// the log. One level: the rating before it cannot be undone next. Refused while an update
    /// runs or ratings wait (wait, or cancel them first), and when there is nothing to undo.
    pub fn undo(&mut self) -> Result<()> {
        if self.update.is_some() || self.queued > 0 {
            return Err(Error::Feedback(
                "wait for the training to finish, or cancel the waiting ratings, then undo".into(),
            ));
        }
        let Some(snapshot) = self.before.take() else {
            return Err(Error::Feedback("there is no rating to undo".into()));
        };
        let keep = snapshot.updates_begun;
        self.restore(snapshot);
        self.updates_begun = keep;
        self.log.feedback.truncate(keep);
        Ok(())
    }

    /// Whether [`Session::undo`] has a rating to undo now.
    pub fn can_undo(&self) -> bool {
        self.before.is_some() && self.update.is_none() && self.queued == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::report::Stage;

    fn stage(losses: Vec<f64>) -> StageReport {
        StageReport {
            stage: Stage::Ppo,
            skipped: None,
            millis: 1.0,
            losses,
            metrics: Metrics::default(),
        }
    }

    #[test]
    fn the_verdict_names_what_broke() {
        let ok = [stage(vec![0.5, 0.4])];
        let fine = |probe: f64| verdict(&ok, 0.2, (0.0, 1.0), probe, [0.40, 0.38]);
        assert_eq!(fine(0.45), None);
        // A rise of 0.5 per token in one update is the limit; 0.9 is 0.52 above 0.38 but only
        // 0.5 above the last good 0.40.
        assert_eq!(fine(0.90), None);
        assert!(fine(0.91).unwrap().contains("jumped from 0.40 to 0.91"));
        assert!(fine(f64::NAN).unwrap().contains("stopped being numbers"));
        // Drift: 1.0 above the base model's is the limit, however slowly it came.
        let slow = |probe: f64| verdict(&ok, 0.2, (0.0, 1.0), probe, [1.2, 0.38]);
        assert_eq!(slow(1.38), None);
        assert!(slow(1.39).unwrap().contains("rose from 0.38"));
        let nan_loss = [stage(vec![0.5, f64::NAN])];
        let v = verdict(&nan_loss, 0.2, (0.0, 1.0), 0.4, [0.4, 0.4]).unwrap();
        assert!(
            v.contains("Ppo stage gave a loss that is not a number"),
            "{v}"
        );
        for (beta, moments) in [(f64::NAN, (0.0, 1.0)), (0.2, (f64::INFINITY, 1.0))] {
            let v = verdict(&ok, beta, moments, 0.4, [0.4, 0.4]).unwrap();
            assert!(v.contains("KL penalty"), "{v}");
        }
    }
}
