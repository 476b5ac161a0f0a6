// The engine's home: a Web Worker, so the page never freezes while the model trains.
//
// Protocol. The page posts {id, type, ...}; the worker answers {id, ok, result} or
// {id, ok: false, error}. While updates are queued it also posts {type: "event", event} for
// every slice of work (progress, a finished stage, a finished update) and {type: "status"}.
// Every call into the engine goes through one promise chain, so calls never overlap; training
// runs one slice per link of the chain, so a rating sent mid-update is recorded at once.

import init, { Engine } from "./pkg/rlhf_playground.js";

let engine = null;
// A comparison of methods in progress (Engine.compare), stepped by the page one slice a call.
let comparing = null;
let chain = Promise.resolve();
let pumping = false;

function enqueue(fn) {
  const run = chain.then(fn);
  chain = run.catch(() => {});
  return run;
}

function post(msg) {
  self.postMessage(msg);
}

// A trap inside the wasm module (WebGPU device lost, out of memory, a bug) leaves the engine
// unusable; the page offers a fresh one.
function trapped(err) {
  if (!(err instanceof WebAssembly.RuntimeError)) return false;
  post({ type: "crashed", error: String(err.message || err) });
  return true;
}

async function fetchAsset(url, kind, onProgress) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`could not load ${url}: ${res.status}`);
  if (kind === "text") return res.text();
  const total = Number(res.headers.get("content-length")) || 0;
  const reader = res.body.getReader();
  const parts = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    got += value.length;
    if (total) onProgress(got / total);
  }
  const out = new Uint8Array(got);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

async function status() {
  post({ type: "status", status: engine.status() });
}

// One slice of training, then yield to other messages; continues while work is queued.
function pump() {
  if (pumping || !engine) return;
  pumping = true;
  const next = () => enqueue(async () => {
    const event = await engine.step();
    if (event) post({ type: "event", event });
    await status();
    return event;
  }).then((event) => {
    if (event) setTimeout(next, 0); else pumping = false;
  }, (err) => {
    pumping = false;
    if (!trapped(err)) post({ type: "error", error: String(err) });
  });
  next();
}

const handlers = {
  async load({ backend }) {
    post({ type: "loading", label: "Loading the WebAssembly engine…", fraction: 0.05 });
    await init({ module_or_path: new URL("./pkg/rlhf_playground_bg.wasm", import.meta.url) });
    post({ type: "loading", label: "Loading the tokenizer…", fraction: 0.15 });
    const tokenizer = await fetchAsset("assets/tokenizer.json", "text");
    const meta = await fetchAsset("assets/base.json", "text");
    post({ type: "loading", label: "Loading the base model's weights…", fraction: 0.25 });
    const weights = await fetchAsset("assets/base.bpk", "bytes", (f) =>
      post({ type: "loading", label: "Loading the base model's weights…", fraction: 0.25 + 0.6 * f }));
    post({ type: "loading", label: backend === "webgpu" ? "Starting WebGPU…" : "Starting the CPU engine…", fraction: 0.9 });
    let used = backend;
    let fallback = null;
    try {
      engine = await Engine.create(backend, tokenizer, meta, weights);
    } catch (err) {
      if (backend !== "webgpu") throw err;
      fallback = String(err);
      used = "cpu";
      engine = await Engine.create("cpu", tokenizer, meta, weights);
    }
    post({ type: "loading", label: "Ready", fraction: 1 });
    return { backend: used, fallback, settings: engine.settings() };
  },
  async generate({ prompt, n }) { return engine.generate(prompt, n); },
  async record({ feedback }) {
    const queued = engine.record(feedback);
    pump();
    return queued;
  },
  async beforeAfter({ prompt }) { return engine.before_after(prompt); },
  async autopilot({ rater, keyword, kind, prompt, n }) {
    const out = await engine.autopilot_round(rater, keyword, kind, prompt, n);
    pump();
    return out;
  },
  async raterScore({ rater, keyword, prompt, reply }) {
    return Engine.rater_score(rater, keyword, prompt, reply);
  },
  async corpusPrompt() { return engine.corpus_prompt(); },
  async applySettings({ changes }) { engine.apply_settings(JSON.stringify(changes)); return engine.settings(); },
  async reset() { engine.reset(); await status(); return engine.settings(); },
  async exportLog() { return engine.export_log(); },
  async cancelQueued() { const n = engine.cancel_queued(); await status(); return n; },
  async undo() { engine.undo(); await status(); return engine.status(); },
  async compareStart({ methods, rater, keyword, prompts }) {
    if (comparing) comparing.free();
    comparing = engine.compare(methods, rater, keyword, prompts);
    return true;
  },
  async compareStep() {
    if (!comparing) throw new Error("no comparison is running");
    const step = await comparing.step();
    if (step.event === "done") { comparing.free(); comparing = null; }
    return step;
  },
  async compareStop() {
    if (comparing) { comparing.free(); comparing = null; }
    return true;
  },
};

self.onmessage = (e) => {
  const msg = e.data;
  const handler = handlers[msg.type];
  if (!handler) {
    post({ id: msg.id, ok: false, error: `unknown request ${msg.type}` });
    return;
  }
  if (msg.type !== "load" && !engine) {
    post({ id: msg.id, ok: false, error: "the model is still loading" });
    return;
  }
  enqueue(() => handler(msg)).then(
    (result) => post({ id: msg.id, ok: true, result }),
    (err) => {
      trapped(err);
      post({ id: msg.id, ok: false, error: String(err && err.message ? err.message : err) });
    },
  );
};
