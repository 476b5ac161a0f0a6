//! The browser's door into the engine: a thin wasm-bindgen layer over [`Session`].
//!
//! Glue only: it converts between JavaScript values and the engine's types and forwards calls.
//! Everything it calls is tested natively. The page's worker (`www/worker.js`) owns one
//! [`Engine`] and calls it one request at a time; a second call while one is running gets a
//! "busy" error instead of corrupting state.

// Holding the session's `RefMut` across an await is the point: an async call (generate, a
// training slice) owns the session until it finishes, and a call that arrives meanwhile fails
// at `try_borrow_mut` with "busy" rather than interleaving.
#![allow(clippy::await_holding_refcell_ref)]

use crate::feedback::Feedback;
use crate::metrics::RaterStats;
use crate::model::GptConfig;
use crate::rater::Rater;
use crate::report::Event;
use crate::session::{Method, Session, SessionConfig};
use crate::settings;
use crate::simulate::{self, FeedbackKind, PairChoice};
use crate::tokenizer::Tokenizer;
use burn::prelude::*;
use js_sys::Promise;
use serde::Serialize;
use std::cell::{RefCell, RefMut};
use std::collections::VecDeque;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

fn js_err(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(js_err)
}

struct State {
    session: Session,
    /// Who gave each queued rating, oldest first (the session runs them in that order): the
    /// autopilot's rater, whose verdict on the update's rollouts joins its metrics, or none
    /// for a person's own rating.
    raters: VecDeque<Option<Rater>>,
    device: Device,
    tokenizer: String,
    model: GptConfig,
    weights: Vec<u8>,
}

/// One RLHF session in the browser.
#[wasm_bindgen]
pub struct Engine {
    state: Rc<RefCell<State>>,
    backend: String,
}

/// Installs the panic hook that prints Rust panics to the console.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// The state, or a clear error when another request is still running.
fn borrow(state: &Rc<RefCell<State>>) -> Result<RefMut<'_, State>, JsValue> {
    state
        .try_borrow_mut()
        .map_err(|_| js_err("busy: the engine is still working on the previous request"))
}

/// A built-in rater or a combination (`polite+!cheerful`, [`Rater::parse`]), or a keyword rule.
fn rater_named(name: &str, keyword: &str) -> Result<Rater, JsValue> {
    match name {
        "keyword" => Rater::keyword(keyword),
        spec => Rater::parse(spec),
    }
    .map_err(js_err)
}

thread_local! {
    /// The WebGPU device, once started: burn's wgpu runtime starts once per thread (a second
    /// `init_async` fails), so every engine of this worker shares it.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// The WebGPU device, started on first use.
pub async fn webgpu_device() -> Result<Device, JsValue> {
    if let Some(device) = WEBGPU.with(|d| d.borrow().clone()) {
        return Ok(device);
    }
    let device = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| js_err(format!("WebGPU could not start: {e}")))?;
    WEBGPU.with(|d| *d.borrow_mut() = Some(device.clone()));
    Ok(device)
}

impl Engine {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T, JsValue>) -> Result<T, JsValue> {
        let mut state = borrow(&self.state)?;
        f(&mut state)
    }
}

#[wasm_bindgen]
impl Engine {
    /// Loads the base model on `backend` ("webgpu" or "cpu") from the assets the page fetched:
    /// tokenizer.json, base.json and base.bpk.
    pub async fn create(
        backend: String,
        tokenizer_json: String,
        meta_json: String,
        weights: Vec<u8>,
    ) -> Result<Engine, JsValue> {
        let device = match backend.as_str() {
            "webgpu" => webgpu_device().await?,
            "cpu" => Device::flex(),
            other => return Err(js_err(format!("unknown backend {other:?}"))),
        };
        let tok = Tokenizer::from_json(&tokenizer_json).map_err(js_err)?;
        let meta: crate::checkpoint::ModelMeta =
            serde_json::from_str(&meta_json).map_err(|e| js_err(format!("base.json: {e}")))?;
        let cfg = SessionConfig::new();
        let session = Session::new(cfg, tok, &meta.config, &weights, &device).map_err(js_err)?;
        Ok(Engine {
            state: Rc::new(RefCell::new(State {
                session,
                raters: VecDeque::new(),
                device,
                tokenizer: tokenizer_json,
                model: meta.config,
                weights,
            })),
            backend,
        })
    }

    /// "webgpu" or "cpu".
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// Samples `n` replies to `prompt` and records them: `[{prompt, reply, text, shortened}]`
    /// (indices into the log, the reply's text, and whether the prompt was cut to fit).
    pub fn generate(&self, prompt: String, n: usize) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let mut s = borrow(&state)?;
            let out = s.session.generate(&prompt, n).await.map_err(js_err)?;
            to_js(&out)
        })
    }

    /// Records a piece of feedback (`{kind: "thumbs", reply, up}`, `{kind: "stars", reply,
    /// stars}`, `{kind: "pair", better, worse, tie}`, `{kind: "demonstration", prompt, text}`)
    /// and queues its update. Returns the number of updates waiting.
    pub fn record(&self, feedback: JsValue) -> Result<usize, JsValue> {
        let fb: Feedback = serde_wasm_bindgen::from_value(feedback)
            .map_err(|e| js_err(format!("not a piece of feedback: {e}")))?;
        self.with(|s| {
            s.session.record(fb).map_err(js_err)?;
            s.raters.push_back(None);
            Ok(s.session.queued())
        })
    }

    /// Runs the next slice of queued work and returns its event (`{event: "progress" |
    /// "stage" | "done", ...}`), or `null` when nothing is queued. A finished update's
    /// `metrics` include the autopilot rater's verdict on its rollouts (`rater/…`).
    pub fn step(&self) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let mut s = borrow(&state)?;
            let mut event = s.session.step().await;
            if let Some(Event::Done(report)) = &mut event
                && let Some(rater) = s.raters.pop_front().flatten()
            {
                // A built-in rater or a keyword rule cannot fail; the report is never lost.
                report.metrics.rater = RaterStats::of(&report.judged(), &rater).ok().flatten();
            }
            match event {
                Some(event) => to_js(&event),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// Cancels the ratings still waiting to train (not the one training); returns how many.
    pub fn cancel_queued(&self) -> Result<usize, JsValue> {
        self.with(|s| {
            let n = s.session.cancel_queued();
            // Who gave them: the newest entries of the queue.
            let keep = s.raters.len().saturating_sub(n);
            s.raters.truncate(keep);
            Ok(n)
        })
    }

    /// Undoes the last rating: the model and the log as they were before it (refused, with a
    /// message, while an update runs or ratings wait, and when there is nothing to undo).
    pub fn undo(&self) -> Result<(), JsValue> {
        self.with(|s| s.session.undo().map_err(js_err))
    }

    /// Updates waiting to run, whether one is part-way done, and whether the last rating can
    /// be undone.
    pub fn status(&self) -> Result<JsValue, JsValue> {
        self.with(|s| {
            to_js(&serde_json::json!({
                "queued": s.session.queued(),
                "updating": s.session.is_updating(),
                "version": s.session.version(),
                "ratings": s.session.log.feedback.len(),
                "canUndo": s.session.can_undo(),
            }))
        })
    }

    /// One reply from the reference (base) model and one from the policy: `[before, after]`.
    pub fn before_after(&self, prompt: String) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let mut s = borrow(&state)?;
            let pair = s.session.before_after(&prompt).await.map_err(js_err)?;
            to_js(&pair)
        })
    }

    /// One autopilot round: samples `n` replies to `prompt`, lets the rater (`polite`,
    /// `truthful`, `short`, `cheerful`, or `keyword` with `keyword` set) give `kind` feedback
    /// ("thumbs", "stars", "pairs" in sampled order, or "pairs_extremes": the best reply against
    /// the worst, then the two in between), records it and returns `{replies, feedback}`.
    pub fn autopilot_round(
        &self,
        rater: String,
        keyword: String,
        kind: String,
        prompt: String,
        n: usize,
    ) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let rater = rater_named(&rater, &keyword)?;
            let (kind, pairs) = match kind.as_str() {
                "pairs_extremes" => (FeedbackKind::Pairs, PairChoice::Extremes),
                name => (
                    FeedbackKind::from_name(name)
                        .ok_or_else(|| js_err(format!("unknown feedback kind {kind:?}")))?,
                    PairChoice::InOrder,
                ),
            };
            let mut s = borrow(&state)?;
            let feedback = simulate::round(&mut s.session, &rater, kind, pairs, &prompt, n)
                .await
                .map_err(js_err)?;
            for fb in &feedback {
                s.session.record(fb.clone()).map_err(js_err)?;
                s.raters.push_back(Some(rater.clone()));
            }
            let log = &s.session.log;
            let first = log.replies.len().saturating_sub(n);
            let replies: Vec<serde_json::Value> = (first..log.replies.len())
                .map(|i| {
                    let r = &log.replies[i];
                    let score = rater.score(&prompt, &r.text).unwrap_or(0.0);
                    serde_json::json!({"prompt": r.prompt, "reply": i, "text": r.text, "score": score})
                })
                .collect();
            to_js(&serde_json::json!({ "replies": replies, "feedback": feedback }))
        })
    }

    /// The rater's score of one reply, for the page's display of what a rater likes.
    pub fn rater_score(
        rater: String,
        keyword: String,
        prompt: String,
        reply: String,
    ) -> Result<f64, JsValue> {
        rater_named(&rater, &keyword)?
            .score(&prompt, &reply)
            .map_err(js_err)
    }

    /// A corpus prompt for the autopilot's next round.
    pub fn corpus_prompt(&self) -> Result<String, JsValue> {
        self.with(|s| Ok(s.session.corpus_prompt()))
    }

    /// The example prompts, one per corpus family.
    pub fn presets() -> Vec<String> {
        crate::corpus::PRESETS
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    /// Every setting (`schema`: name, group, label, help, kind, range, default, whether it is
    /// advanced) and its value now (`values`: name → value), for the Settings panel.
    pub fn settings(&self) -> Result<JsValue, JsValue> {
        self.with(|s| {
            let values = settings::values(s.session.config());
            to_js(&serde_json::json!({ "schema": settings::schema(), "values": values }))
        })
    }

    /// Changes settings from a JSON object of name → value (e.g. `{"ppo.lr": 3e-4}`), checked
    /// first: an unknown name, a value of the wrong kind or out of range is refused with a
    /// message naming it, and nothing changes.
    pub fn apply_settings(&self, changes: String) -> Result<(), JsValue> {
        let changes = serde_json::from_str(&changes)
            .map_err(|e| js_err(format!("settings: not an object of name → value: {e}")))?;
        self.with(|s| {
            let cfg = settings::apply(s.session.config(), &changes).map_err(js_err)?;
            s.session.set_config(cfg).map_err(js_err)
        })
    }

    /// Starts over from the base model, keeping the settings.
    pub fn reset(&self) -> Result<(), JsValue> {
        self.with(|s| {
            let tok = Tokenizer::from_json(&s.tokenizer).map_err(js_err)?;
            let cfg = s.session.config().clone();
            s.session = Session::new(cfg, tok, &s.model, &s.weights, &s.device).map_err(js_err)?;
            s.raters.clear();
            Ok(())
        })
    }

    /// The session's prompts, replies and feedback as versioned JSON (to save or export).
    pub fn export_log(&self) -> Result<String, JsValue> {
        self.with(|s| serde_json::to_string(&s.session.log).map_err(js_err))
    }

    /// Starts a comparison of `methods` (comma-separated: "ppo,dpo") on this session's ratings
    /// so far, each replayed from the base model with the current settings and measured on
    /// `eval` held-out prompts; `rater` (as in [`Engine::autopilot_round`], or "" when a person
    /// rated) measures the preferred rate. Step it with [`Comparing::step`]; this engine is free
    /// meanwhile.
    pub fn compare(
        &self,
        methods: String,
        rater: String,
        keyword: String,
        eval: usize,
    ) -> Result<Comparing, JsValue> {
        let methods = methods
            .split(',')
            .map(|m| Method::from_name(m.trim()).ok_or_else(|| js_err(format!("no method {m:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let rater = match rater.as_str() {
            "" => None,
            name => Some(rater_named(name, &keyword)?),
        };
        self.with(|s| {
            let log = s.session.log.clone();
            // The answers shown side by side: to the last three prompts asked.
            let shown: Vec<String> = log.prompts.iter().rev().take(3).rev().cloned().collect();
            let cfg = s.session.config().clone();
            let comparer =
                simulate::Comparer::new(log, methods, rater, eval.clamp(1, 200), shown, cfg.seed)
                    .map_err(js_err)?;
            Ok(Comparing {
                comparer: Rc::new(RefCell::new(comparer)),
                fresh: Rc::new(Fresh {
                    cfg,
                    tok: s.session.tokenizer().clone(),
                    model: s.model.clone(),
                    weights: s.weights.clone(),
                    device: s.device.clone(),
                }),
            })
        })
    }
}

/// What a comparison needs to start a fresh session with a method.
struct Fresh {
    cfg: SessionConfig,
    tok: Tokenizer,
    model: GptConfig,
    weights: Vec<u8>,
    device: Device,
}

/// A comparison of methods in progress ([`Engine::compare`]).
#[wasm_bindgen]
pub struct Comparing {
    comparer: Rc<RefCell<simulate::Comparer>>,
    fresh: Rc<Fresh>,
}

#[wasm_bindgen]
impl Comparing {
    /// One slice of the comparison: `{event: "progress", method, index, of, rating, ratings}`,
    /// or `{event: "done", rater, ratings, base_rate, prompts, base_answers, methods: [{method,
    /// preferred, well_formed, kl, diversity_kept, millis_per_update, used, unused, answers}]}`.
    pub fn step(&self) -> Promise {
        let (comparer, f) = (self.comparer.clone(), self.fresh.clone());
        future_to_promise(async move {
            let mut c = comparer
                .try_borrow_mut()
                .map_err(|_| js_err("busy: the comparison is still working"))?;
            let fresh = |m: Method| {
                let cfg = f.cfg.clone().with_method(m);
                Session::new(cfg, f.tok.clone(), &f.model, &f.weights, &f.device)
            };
            let step = c.step(&fresh).await.map_err(js_err)?;
            to_js(&step)
        })
    }
}
