//! The page's wasm API (`src/web.rs`) in headless Chromium, through `wasm-bindgen-test`: the
//! same calls the page's worker makes, on burn flex (WebAssembly, the CPU fallback) and on
//! WebGPU (SwiftShader in CI).
//!
//! Run by scripts/test.sh: `cargo test --release --target wasm32-unknown-unknown --test web`
//! with `wasm-bindgen-test-runner` as the runner and Debian's chromedriver (tests/webdriver.json
//! holds the browser's flags).
#![cfg(target_arch = "wasm32")]

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use js_sys::{Array, Reflect};
use rlhf_playground::checkpoint::{self, BUNDLED_META, BUNDLED_WEIGHTS, ModelMeta};
use rlhf_playground::model::GptConfig;
use rlhf_playground::rng::Rng;
use rlhf_playground::sft::{self, Demonstration, SftConfig};
use rlhf_playground::tokenizer::{BUNDLED_JSON, Tokenizer};
use rlhf_playground::web::Engine;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(key)).expect("an object")
}

fn num(v: &JsValue, key: &str) -> f64 {
    get(v, key)
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number"))
}

fn text(v: &JsValue) -> String {
    v.as_string()
        .unwrap_or_else(|| format!("{v:?}"))
        .to_string()
}

fn feedback(json: &str) -> JsValue {
    js_sys::JSON::parse(json).expect("valid JSON")
}

/// An engine on `backend` with the bundled tokenizer and base-model metadata.
async fn create(backend: &str, weights: Vec<u8>) -> Result<Engine, JsValue> {
    Engine::create(
        backend.into(),
        BUNDLED_JSON.into(),
        BUNDLED_META.into(),
        weights,
    )
    .await
}

/// Runs queued work slice by slice, as the worker does; returns every event, the last `done`.
async fn run_update(engine: &Engine) -> Vec<JsValue> {
    let mut events = Vec::new();
    loop {
        let ev = JsFuture::from(engine.step())
            .await
            .expect("a training slice");
        if ev.is_null() {
            break;
        }
        events.push(ev);
    }
    events
}

/// The kinds of event ("progress", "stage", "done") and the stages reported, in order.
fn stages(events: &[JsValue]) -> Vec<(String, bool)> {
    events
        .iter()
        .filter(|e| text(&get(e, "event")) == "stage")
        .map(|e| (text(&get(e, "stage")), get(e, "skipped").is_string()))
        .collect()
}

#[wasm_bindgen_test]
async fn flex_generate_rate_and_update() {
    let engine = create("cpu", BUNDLED_WEIGHTS.to_vec())
        .await
        .expect("the engine loads the base model");
    assert_eq!(engine.backend(), "cpu");
    // A lighter update than the page's default keeps the test quick; the stages are the same.
    engine
        .apply_settings(
            r#"{"ppo.batch_size": 4, "ppo.minibatch_size": 4, "ppo.max_new_tokens": 16}"#.into(),
        )
        .expect("valid settings");

    let replies = JsFuture::from(engine.generate("what is 3 plus 4?".into(), 2))
        .await
        .expect("replies");
    let replies = Array::from(&replies);
    assert_eq!(replies.length(), 2);
    let first = replies.get(0);
    assert!(get(&first, "text").is_string());
    let reply = num(&first, "reply");

    let queued = engine
        .record(feedback(&format!(
            r#"{{"kind":"thumbs","reply":{reply},"up":true}}"#
        )))
        .expect("a thumbs up is recorded");
    assert_eq!(queued, 1);
    let events = run_update(&engine).await;
    let st = stages(&events);
    let names: Vec<&str> = st.iter().map(|(s, _)| s.as_str()).collect();
    // SFT trains on the thumbs-up reply (top-rated replies are demonstrations by default).
    assert_eq!(names, ["sft", "reward", "ppo"], "{st:?}");
    assert!(
        st.iter().all(|(_, skipped)| !skipped),
        "every stage ran: {st:?}"
    );
    let done = events.last().unwrap();
    assert_eq!(text(&get(done, "event")), "done");
    // The update's metrics: one object under the names the page and `--json` use.
    let metrics = get(done, "metrics");
    // objective/kl is a sampled estimate (the mean of log π − log π_ref over 4 replies), which
    // can come out below zero; approxkl, ½·mean((log π − log π_old)²), cannot.
    let kl = num(&metrics, "objective/kl");
    assert!(kl.is_finite(), "objective/kl = {kl}");
    let approx_kl = num(&metrics, "policy/approxkl_avg");
    assert!(
        approx_kl.is_finite() && approx_kl >= 0.0,
        "policy/approxkl_avg = {approx_kl}"
    );
    // The fresh samples carry per-token log-probs under the policy and the reference.
    let samples = Array::from(&get(done, "samples"));
    assert!(samples.length() > 0);
    let tokens = Array::from(&get(&samples.get(0), "tokens"));
    assert!(tokens.length() > 0);
    let t = tokens.get(0);
    assert!(num(&t, "logprob") <= 0.0 && num(&t, "ref_logprob") <= 0.0);
    let status = engine.status().unwrap();
    assert_eq!(num(&status, "queued"), 0.0);
    assert_eq!(num(&status, "version"), 1.0);

    // The autopilot's "A vs B, best against worst": in every round its first pair holds the
    // rater's favourite reply and its least favourite.
    let mut spread = 0;
    for prompt in [
        "how are you today?",
        "what is 7 plus 5?",
        "give me a tip for sleep",
        "hi!",
    ] {
        let out = JsFuture::from(engine.autopilot_round(
            "polite".into(),
            String::new(),
            "pairs_extremes".into(),
            prompt.into(),
            4,
        ))
        .await
        .expect("an autopilot round");
        let replies: Vec<(f64, f64)> = Array::from(&get(&out, "replies"))
            .iter()
            .map(|r| (num(&r, "reply"), num(&r, "score")))
            .collect();
        assert_eq!(replies.len(), 4);
        let score = |reply: f64| replies.iter().find(|r| r.0 == reply).unwrap().1;
        let best = replies.iter().map(|r| r.1).fold(f64::MIN, f64::max);
        let worst = replies.iter().map(|r| r.1).fold(f64::MAX, f64::min);
        spread += usize::from(best > worst);
        let pairs = Array::from(&get(&out, "feedback"));
        assert_eq!(pairs.length(), 2);
        let first = pairs.get(0);
        assert_eq!(text(&get(&first, "kind")), "pair");
        assert_eq!(score(num(&first, "better")), best, "{prompt}: {replies:?}");
        assert_eq!(score(num(&first, "worse")), worst, "{prompt}: {replies:?}");
    }
    assert!(
        spread > 0,
        "some round had replies the rater likes differently"
    );
    assert_eq!(num(&engine.status().unwrap(), "queued"), 8.0);
}

#[wasm_bindgen_test]
async fn bad_input_gets_a_clear_message() {
    let err = create("quantum", Vec::new())
        .await
        .err()
        .expect("an unknown backend is refused");
    assert!(text(&err).contains("unknown backend"), "{}", text(&err));
    let err = create("cpu", vec![1, 2, 3])
        .await
        .err()
        .expect("corrupt weights are refused");
    assert!(text(&err).contains("weights"), "{}", text(&err));

    let engine = create("cpu", BUNDLED_WEIGHTS.to_vec()).await.unwrap();
    let err = engine.record(feedback(r#"{"kind":"hug"}"#)).unwrap_err();
    assert!(
        text(&err).contains("not a piece of feedback"),
        "{}",
        text(&err)
    );
    let err = engine
        .record(feedback(r#"{"kind":"thumbs","reply":99,"up":true}"#))
        .unwrap_err();
    assert!(!text(&err).is_empty());
    let err = engine.apply_settings("{not json".into()).unwrap_err();
    assert!(text(&err).starts_with("settings"), "{}", text(&err));
    let values = |e: &Engine| js_sys::JSON::stringify(&get(&e.settings().unwrap(), "values"));
    let before = values(&engine).unwrap();
    for (bad, says) in [
        (r#"{"ppo.lr": -1}"#, "ppo.lr"),
        (r#"{"ppo.nope": 1}"#, "no setting"),
        (r#"{"ppo.epochs": 1.5}"#, "whole number"),
    ] {
        let err = engine.apply_settings(bad.into()).unwrap_err();
        assert!(text(&err).contains(says), "{bad}: {}", text(&err));
    }
    assert_eq!(
        values(&engine).unwrap(),
        before,
        "a refused setting changes nothing"
    );
    let err = JsFuture::from(engine.generate("   ".into(), 2))
        .await
        .unwrap_err();
    assert!(!text(&err).is_empty());
    let err = JsFuture::from(engine.autopilot_round(
        "polite".into(),
        String::new(),
        "pairs_sideways".into(),
        "hello".into(),
        4,
    ))
    .await
    .unwrap_err();
    assert!(
        text(&err).contains("unknown feedback kind"),
        "{}",
        text(&err)
    );
    assert_eq!(num(&engine.status().unwrap(), "queued"), 0.0);
}

/// WebGPU (SwiftShader in CI: correct but slow), so a tiny model with the real tokenizer: the
/// same kernels run (embedding, attention, MLP, AdamW, readback) at a size software rendering
/// finishes in seconds.
#[wasm_bindgen_test]
async fn webgpu_generate_and_update() {
    let gpu = get(&get(&js_sys::global(), "navigator"), "gpu");
    assert!(
        !gpu.is_undefined(),
        "this browser has no navigator.gpu; run Chromium with --enable-unsafe-webgpu"
    );
    let config = GptConfig::new()
        .with_d_model(32)
        .with_n_layer(2)
        .with_n_head(2);
    let model = config.init(&burn::tensor::Device::flex());
    let weights = checkpoint::to_bytes(&model, false).unwrap();
    let mut meta: ModelMeta = serde_json::from_str(BUNDLED_META).unwrap();
    meta.config = config;
    let engine = Engine::create(
        "webgpu".into(),
        BUNDLED_JSON.into(),
        serde_json::to_string(&meta).unwrap(),
        weights,
    )
    .await
    .expect("WebGPU starts and loads the model");
    assert_eq!(engine.backend(), "webgpu");
    let light = serde_json::json!({
        "sft.steps": 1, "reward.steps": 1, "ppo.batch_size": 2, "ppo.minibatch_size": 2,
        "ppo.epochs": 1, "ppo.max_new_tokens": 6, "sample.max_new_tokens": 6,
        "report_samples": 1,
    });
    engine
        .apply_settings(light.to_string())
        .expect("valid settings");

    let replies = Array::from(
        &JsFuture::from(engine.generate("what is 3 plus 4?".into(), 2))
            .await
            .expect("replies on WebGPU"),
    );
    assert_eq!(replies.length(), 2);
    let reply = num(&replies.get(0), "reply");
    engine
        .record(feedback(&format!(
            r#"{{"kind":"stars","reply":{reply},"stars":5}}"#
        )))
        .unwrap();
    let events = run_update(&engine).await;
    let st = stages(&events);
    assert!(
        st.iter().any(|(s, skipped)| s == "ppo" && !skipped),
        "PPO ran on WebGPU: {st:?}"
    );
    let done = events.last().unwrap();
    let metrics = get(done, "metrics");
    let loss = num(&metrics, "loss/value_avg");
    assert!(loss.is_finite(), "loss/value_avg = {loss}");
    // A minibatch whose loss is not finite is skipped (TRL's guard), which would also leave
    // the averages above at 0: none may be.
    assert_eq!(num(&metrics, "val/num_skipped_minibatches"), 0.0);
    for name in ["objective/kl", "objective/scores", "objective/entropy"] {
        let v = num(&metrics, name);
        assert!(v.is_finite(), "{name} = {v}");
    }
}

/// Collects every float parameter of a model, flattened.
struct Params(Vec<Tensor<1>>);

impl ModuleVisitor for Params {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let t = p.val();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

/// One SFT step of the trained base model on WebGPU leaves every weight finite. burn's GELU
/// backward overflowed WGSL's `tanh` on the base model's large MLP pre-activations, and one
/// step turned every weight to NaN there while flex was fine (`model::gelu_safe`).
#[wasm_bindgen_test]
async fn webgpu_training_step_keeps_the_base_model_finite() {
    let gpu = rlhf_playground::web::webgpu_device()
        .await
        .expect("WebGPU starts")
        .autodiff();
    let (model, _) = checkpoint::bundled(&gpu).expect("the base model loads");
    let demos = [Demonstration {
        prompt: "what is 3 plus 4?".into(),
        reply: "3 plus 4 is 7.".into(),
    }];
    let all = sft::encode(&Tokenizer::bundled(), &demos, model.context());
    let cfg = SftConfig::new();
    let mut optim = cfg.optimizer();
    let (model, loss) = sft::step(model, &mut optim, &all, &cfg, &mut Rng::new(1), &gpu).await;
    assert!(loss.is_finite(), "SFT loss {loss}");
    let mut params = Params(Vec::new());
    model.visit(&mut params);
    assert!(params.0.len() > 10);
    for (i, p) in params.0.into_iter().enumerate() {
        let v = rlhf_playground::read(p).await;
        let bad = v.iter().filter(|x| !x.is_finite()).count();
        assert_eq!(bad, 0, "parameter {i}: {bad} of {} not finite", v.len());
    }
    // And the model still reads: the loss after the step is finite and lower.
    let after = rlhf_playground::read(sft::sft_loss(&model, &all, &gpu)).await[0] as f64;
    assert!(after < loss, "SFT loss {loss} -> {after}");
}
