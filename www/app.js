// The page's wiring: talks to the engine in worker.js, draws cards, the pipeline strip, the
// token view and the charts. Model text always goes in with textContent, never as HTML.

import { Charts } from "./charts.js";

const $ = (id) => document.getElementById(id);
let worker = null;
const pending = new Map();
let nextId = 1;
const state = {
  ready: false, backend: "cpu", config: null, cards: [], prompt: "", compareFirst: null,
  autopilot: null, ratings: 0, charts: null, lastStages: {}, crashed: false,
  // One entry per finished update: {ratings, millis, stages: {sft, reward, ppo}}
  // in milliseconds (scripts/bench_page.mjs reads it).
  timings: [],
};
// Visible to end-to-end tests and curious visitors (read-only use).
window.playground = state;

function call(type, payload = {}) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, type, ...payload });
  });
}

function notice(text, kind = "error") {
  const el = $("notice");
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
  if (text && kind !== "error") setTimeout(() => { if (el.textContent === text) el.hidden = true; }, 6000);
}

function startWorker() {
  worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  worker.onmessage = onWorkerMessage;
  worker.onerror = (e) => crashed(e.message || "unknown error");
}

// The engine trapped (a WebAssembly RuntimeError: the GPU device was lost, memory ran out, a
// bug): its state cannot be trusted any more, so every waiting call fails and the person is
// offered a fresh engine.
function crashed(why) {
  if (state.crashed) return;
  state.crashed = true;
  state.ready = false;
  setEnabled(false);
  if (state.autopilot) state.autopilot.stop = true;
  for (const p of pending.values()) p.reject(new Error("the engine stopped"));
  pending.clear();
  const el = $("notice");
  const restart = document.createElement("button");
  restart.className = "primary";
  restart.textContent = "Restart on the CPU";
  restart.addEventListener("click", restartEngine);
  el.replaceChildren(
    `Pip's engine stopped (${why}). This can happen when the GPU is reset or the tab runs out of memory. ` +
    "Restart loads the base model again on the CPU; the ratings given so far are not kept. ",
    restart,
  );
  el.dataset.kind = "error";
  el.hidden = false;
  restart.focus();
}

async function restartEngine() {
  worker.terminate();
  state.crashed = false;
  notice("");
  clearSession();
  startWorker();
  await load("cpu");
  if (state.ready && $("prompt").value.trim()) await generate($("prompt").value);
}

function onWorkerMessage(e) {
  const msg = e.data;
  if (msg.id && pending.has(msg.id)) {
    const p = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result); else p.reject(new Error(msg.error));
    return;
  }
  if (msg.type === "loading") {
    $("loading-label").textContent = msg.label;
    $("loading-bar").style.width = `${Math.round(msg.fraction * 100)}%`;
  } else if (msg.type === "event") {
    onEvent(msg.event);
  } else if (msg.type === "status") {
    showStatus(msg.status);
  } else if (msg.type === "crashed") {
    crashed(msg.error);
  } else if (msg.type === "error") {
    notice(`Training stopped: ${msg.error}`);
  }
}

// ---------------------------------------------------------------- loading and backends

async function hasWebGpu() {
  if (!("gpu" in navigator)) return false;
  try { return !!(await navigator.gpu.requestAdapter()); } catch { return false; }
}

async function load(backend) {
  state.ready = false;
  setEnabled(false);
  $("loading").hidden = false;
  const t0 = performance.now();
  try {
    const r = await call("load", { backend });
    state.backend = r.backend;
    state.config = JSON.parse(r.config);
    $("backend").textContent = r.backend === "webgpu" ? "running on WebGPU" : "running on the CPU (WebAssembly)";
    $("backend").dataset.backend = r.backend;
    $("use-gpu").checked = r.backend === "webgpu";
    if (r.fallback) notice(`WebGPU did not start (${r.fallback}), so Pip runs on the CPU instead. Everything still works, a little slower.`, "info");
    state.loadMs = performance.now() - t0;
    state.ready = true;
    setEnabled(true);
    renderSettings();
    setTimeout(() => { $("loading").hidden = true; }, 400);
  } catch (err) {
    $("loading-label").textContent = `Could not load the model: ${err.message}`;
  }
}

function setEnabled(on) {
  for (const id of ["generate", "ba-go", "auto-start", "apply-settings", "reset"]) $(id).disabled = !on;
}

// ---------------------------------------------------------------- generating and rating

async function generate(prompt) {
  prompt = prompt.trim();
  if (!prompt) { notice("Type a question for Pip first (or pick one of the examples)."); return; }
  if (!state.ready) { if (!state.crashed) notice("Pip is still loading; try again in a moment.", "info"); return; }
  $("generate").disabled = true;
  try {
    const replies = await call("generate", { prompt, n: 4 });
    if (replies.length && replies[0].shortened) {
      notice("That question is longer than Pip can read (about 70 tokens), so Pip answered its last part only.", "info");
    }
    state.prompt = prompt;
    state.cards = replies.map((r, i) => ({ ...r, label: "ABCD"[i], rated: [] }));
    state.compareFirst = null;
    renderCards();
  } catch (err) {
    notice(err.message);
  } finally {
    $("generate").disabled = !state.ready;
  }
}

async function give(feedback, card, label) {
  try {
    const queued = await call("record", { feedback });
    if (card) { card.rated.push(label); renderCards(); }
    $("queue").textContent = queued > 1 ? `${queued} ratings waiting to train…` : "Training on your rating…";
  } catch (err) {
    notice(err.message);
  }
}

function button(text, title, onClick, cls = "") {
  const b = document.createElement("button");
  b.textContent = text;
  b.title = title;
  b.setAttribute("aria-label", title);
  if (cls) b.className = cls;
  b.addEventListener("click", onClick);
  return b;
}

function renderCards() {
  const box = $("cards");
  box.replaceChildren();
  for (const card of state.cards) {
    const el = document.createElement("article");
    el.className = "reply-card";
    el.dataset.reply = card.reply;
    if (state.compareFirst === card) el.classList.add("selected");
    const head = document.createElement("div");
    head.className = "card-head";
    head.textContent = `Reply ${card.label}`;
    if (card.score !== undefined) {
      const s = document.createElement("span");
      s.className = `rater-verdict ${card.score > 0 ? "up" : "down"}`;
      s.textContent = card.score > 0 ? "rater: 👍" : "rater: 👎";
      head.append(s);
    }
    const text = document.createElement("p");
    text.className = "reply-text";
    text.textContent = card.text || "(an empty reply)";
    const actions = document.createElement("div");
    actions.className = "card-actions";
    actions.append(
      button("👍", `Thumbs up for reply ${card.label}`, () => give({ kind: "thumbs", reply: card.reply, up: true }, card, "👍")),
      button("👎", `Thumbs down for reply ${card.label}`, () => give({ kind: "thumbs", reply: card.reply, up: false }, card, "👎")),
    );
    const stars = document.createElement("span");
    stars.className = "stars";
    for (let s = 1; s <= 5; s++) {
      stars.append(button("★", `${s} star${s > 1 ? "s" : ""} for reply ${card.label}`,
        () => give({ kind: "stars", reply: card.reply, stars: s }, card, `${s}★`), "star"));
    }
    actions.append(stars);
    actions.append(button(state.compareFirst && state.compareFirst !== card ? `${state.compareFirst.label} is better than ${card.label}` : "A vs B…",
      "Compare this reply with another", () => compare(card), "compare"));
    actions.append(button("✎ Write a better answer", `Write a better answer than reply ${card.label}`, () => demo(card), "write"));
    el.append(head, text, actions);
    if (card.editing) el.append(...editor(card));
    if (card.rated.length) {
      const r = document.createElement("div");
      r.className = "rated";
      r.textContent = `You rated: ${card.rated.join(" ")}`;
      el.append(r);
    }
    if (card.raterGave && card.raterGave.length) {
      const r = document.createElement("div");
      r.className = "rated";
      r.textContent = `The rater gave: ${card.raterGave.join(" ")}`;
      el.append(r);
    }
    box.append(el);
  }
}

function compare(card) {
  if (!state.compareFirst) {
    state.compareFirst = card;
    $("compare-row").hidden = false;
    $("compare-text").textContent = `Reply ${card.label} is better than… (pick the worse reply)`;
    renderCards();
    return;
  }
  const better = state.compareFirst;
  state.compareFirst = null;
  $("compare-row").hidden = true;
  if (better !== card) give({ kind: "pair", better: better.reply, worse: card.reply, tie: false }, better, `better than ${card.label}`);
  renderCards();
}

// The card's answer editor stays open (and keeps its text) across re-renders, which happen
// whenever a rating is recorded.
function demo(card) {
  if (card.draft === undefined) card.draft = card.text;
  card.editing = true;
  renderCards();
  const area = document.querySelector(`.reply-card[data-reply="${card.reply}"] textarea`);
  if (area) area.focus();
}

function editor(card) {
  const area = document.createElement("textarea");
  area.maxLength = 2000;
  area.value = card.draft;
  area.setAttribute("aria-label", `Your better answer than reply ${card.label}`);
  area.addEventListener("input", () => { card.draft = area.value; });
  const send = button("Teach Pip this answer", "Send your answer as a demonstration", async () => {
    const text = card.draft.trim();
    if (!text) { notice("Your answer is empty: write what Pip should have said."); return; }
    card.editing = false;
    await give({ kind: "demonstration", prompt: card.prompt, text }, card, "✎");
  }, "primary");
  return [area, send];
}

// ---------------------------------------------------------------- the pipeline strip

const STAGE_NAMES = { sft: "SFT", reward: "Reward model", ppo: "PPO" };

function stageEl(stage) {
  return document.querySelector(`.stage[data-stage="${stage}"]`);
}

function fmt(x, digits = 3) {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}

function onEvent(ev) {
  if (ev.event === "progress") {
    const el = stageEl(ev.stage);
    if (!el) return;
    document.querySelectorAll(".stage").forEach((s) => { if (s !== el && s.classList.contains("active")) { s.classList.remove("active"); } });
    el.classList.add("active");
    el.classList.remove("done", "skipped");
    el.querySelector(".stage-bar div").style.width = `${Math.round((100 * ev.step) / Math.max(1, ev.steps))}%`;
    el.querySelector(".stage-info").textContent = `step ${ev.step} of ${ev.steps}`;
  } else if (ev.event === "stage") {
    const el = stageEl(ev.stage);
    if (!el) return;
    el.classList.remove("active");
    el.classList.add(ev.skipped ? "skipped" : "done");
    el.querySelector(".stage-bar div").style.width = "100%";
    const m = ev.metrics;
    let info;
    if (ev.skipped) info = `skipped: ${ev.skipped}`;
    else if (ev.stage === "sft") info = `loss ${fmt(m["sft/loss"])} · ${Math.round(ev.millis)} ms`;
    else if (ev.stage === "reward") info = `loss ${fmt(m.loss)} · accuracy ${Number.isFinite(m.eval_accuracy) ? Math.round(100 * m.eval_accuracy) + "% (unseen)" : Number.isFinite(m.accuracy) ? Math.round(100 * m.accuracy) + "%" : "–"}${m.confidence_weight > 0 ? ` · trust in base ${fmt(m.confidence_weight, 1)}` : ""} · ${Math.round(ev.millis)} ms`;
    else info = `reward ${fmt(m["objective/scores"], 2)} · KL ${fmt(m["objective/kl"], 2)} · clip ${fmt(m["policy/clipfrac_avg"], 3)} · ${Math.round(ev.millis)} ms`;
    el.querySelector(".stage-info").textContent = info;
    state.lastStages[ev.stage] = ev.skipped ? {} : m;
  } else if (ev.event === "done") {
    state.ratings = ev.ratings;
    const stages = { ...state.lastStages };
    if (ev.rater_rate !== undefined) stages.rater = { preferred: ev.rater_rate };
    state.charts.add(ev.ratings, stages);
    state.lastStages = {};
    state.lastReport = ev;
    state.timings.push({
      ratings: ev.ratings, millis: ev.millis,
      stages: Object.fromEntries(ev.stages.map((s) => [s.stage, s.millis])),
    });
    renderTokens(ev.samples);
    document.querySelectorAll(".stage").forEach((s) => s.classList.remove("active"));
  }
}

function showStatus(st) {
  const waiting = st.queued + (st.updating ? 1 : 0);
  $("queue").textContent = waiting === 0
    ? `${st.ratings} rating${st.ratings === 1 ? "" : "s"} so far; Pip has been updated ${st.version} time${st.version === 1 ? "" : "s"}.`
    : `Training… ${waiting} update${waiting === 1 ? "" : "s"} to go (${st.queued} waiting in the queue).`;
  state.status = st;
}

// ---------------------------------------------------------------- token view

function renderTokens(samples) {
  const box = $("token-view");
  box.replaceChildren();
  if (!samples || !samples.length) { box.textContent = "No fresh reply this time."; return; }
  for (const s of samples) {
    const line = document.createElement("p");
    line.className = "token-line";
    const p = document.createElement("span");
    p.className = "token-prompt";
    p.textContent = `${s.prompt} → `;
    line.append(p);
    for (const t of s.tokens) {
      const span = document.createElement("span");
      span.className = "tok";
      span.textContent = t.text;
      const d = t.logprob - t.ref_logprob;
      const a = Math.min(1, Math.abs(d) / 2) * 0.75;
      span.style.background = d >= 0 ? `rgba(22, 163, 74, ${a})` : `rgba(220, 38, 38, ${a})`;
      const ratio = Math.exp(d);
      span.dataset.tip = `"${t.text}": log p now ${t.logprob.toFixed(2)}, base ${t.ref_logprob.toFixed(2)} ` +
        `(${ratio >= 1 ? ratio.toFixed(1) + "× more" : (1 / ratio).toFixed(1) + "× less"} likely)`;
      span.tabIndex = 0;
      span.setAttribute("aria-label", span.dataset.tip);
      line.append(span);
    }
    const r = document.createElement("span");
    r.className = "token-reward";
    r.textContent = ` reward ${s.reward.toFixed(2)}`;
    line.append(r);
    box.append(line);
  }
}

// ---------------------------------------------------------------- before / after

async function beforeAfter() {
  const prompt = $("ba-prompt").value.trim();
  if (!prompt) { notice("Type a prompt to compare."); return; }
  $("ba-go").disabled = true;
  try {
    const [before, after] = await call("beforeAfter", { prompt });
    $("ba-before").textContent = before || "(an empty reply)";
    $("ba-after").textContent = after || "(an empty reply)";
  } catch (err) {
    notice(err.message);
  } finally {
    $("ba-go").disabled = !state.ready;
  }
}

// ---------------------------------------------------------------- autopilot

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

async function waitIdle() {
  for (;;) {
    const st = state.status;
    if (st && st.queued === 0 && !st.updating) return;
    await sleep(100);
  }
}

// Shows on the cards what the autopilot's rater gave: its thumbs or stars, or which reply it
// preferred in each pair (or a tie).
function markAutopilotFeedback(feedback) {
  const card = (reply) => state.cards.find((c) => c.reply === reply);
  for (const fb of feedback) {
    if (fb.kind === "thumbs" && card(fb.reply)) card(fb.reply).raterGave.push(fb.up ? "👍" : "👎");
    else if (fb.kind === "stars" && card(fb.reply)) card(fb.reply).raterGave.push(`${fb.stars}★`);
    else if (fb.kind === "pair") {
      const a = card(fb.better), b = card(fb.worse);
      if (!a || !b) continue;
      if (fb.tie) { a.raterGave.push(`tie with ${b.label}`); b.raterGave.push(`tie with ${a.label}`); }
      else { a.raterGave.push(`better than ${b.label}`); b.raterGave.push(`worse than ${a.label}`); }
    }
  }
}

async function autopilot() {
  const rater = $("auto-rater").value;
  const keyword = $("auto-keyword").value;
  const kind = $("auto-kind").value;
  if (rater === "keyword" && !keyword.trim()) { notice("Type the word the rater likes."); return; }
  const run = { stop: false, rounds: 0 };
  state.autopilot = run;
  $("auto-start").disabled = true;
  $("auto-stop").disabled = false;
  try {
    while (!run.stop) {
      const prompt = state.presetsQueue.length ? state.presetsQueue.shift() : null;
      const p = prompt || await call("corpusPrompt");
      $("prompt").value = p;
      const out = await call("autopilot", { rater, keyword, kind, prompt: p, n: 4 });
      state.prompt = p;
      state.cards = out.replies.map((r, i) => ({ ...r, label: "ABCD"[i], rated: [], raterGave: [] }));
      markAutopilotFeedback(out.feedback);
      renderCards();
      run.rounds += 1;
      $("auto-status").textContent = `Round ${run.rounds}: the rater gave ${out.feedback.length} rating${out.feedback.length === 1 ? "" : "s"}. Training…`;
      await sleep(50);
      await waitIdle();
      $("auto-status").textContent = `Round ${run.rounds} done (${state.ratings} ratings so far).`;
      await sleep(Number($("auto-speed").value));
    }
  } catch (err) {
    notice(`Autopilot stopped: ${err.message}`);
  } finally {
    state.autopilot = null;
    $("auto-start").disabled = !state.ready;
    $("auto-stop").disabled = true;
  }
}

// ---------------------------------------------------------------- settings

const SETTINGS = [
  ["ppo.init_kl_coef", "β (KL penalty)", "How strongly PPO is pulled back towards the base model. Higher = safer, slower learning.", "number", 0.01],
  ["ppo.kl_target", "KL target (nats)", "The adaptive controller nudges β so the KL per reply heads for this.", "number", 0.5],
  ["ppo.adaptive_kl", "Adaptive β", "Let β adapt towards the KL target (Ziegler et al. 2019).", "checkbox"],
  ["ppo.lr", "PPO learning rate", "Size of each PPO step. Too large and replies fall apart.", "number", 1e-5],
  ["ppo.epochs", "PPO epochs", "Passes over each batch of fresh replies.", "number", 1],
  ["ppo.batch_size", "PPO replies per update", "Fresh replies PPO writes and learns from per rating.", "number", 1],
  ["reward.lr", "Reward model learning rate", "Size of each reward-model step.", "number", 1e-4],
  ["reward.steps", "Reward model steps per rating", "How many times the reward model practises on your ratings per update.", "number", 1],
  ["reward.confidence_weight", "Most trust in the base model", "PPO's reward adds up to this times the base model's mean log-probability of the reply's words (Pip learnt its facts in pretraining and is surer of right answers than of wrong ones), all of it once your ratings prefer the reply the base model finds likelier more often than not, none if they do not. It counts in proportion to the pairs among your ratings: thumbs and stars teach the reward model enough alone. 0 = the reward model alone.", "number", 1],
  ["sft.lr", "SFT learning rate", "Size of each step on your written answers and best-rated replies.", "number", 1e-5],
  ["sft.steps", "SFT steps per rating", "How many times Pip practises your written answers and best-rated replies per update.", "number", 1],
  ["sft_top_rated", "Imitate best-rated replies", "SFT also practises replies you gave 👍, 4–5 ★ or preferred in a pair. Off = RLHF exactly as in InstructGPT (only written answers).", "checkbox"],
  ["sample.temperature", "Temperature", "Randomness of the replies you see: 0 = always the likeliest word.", "number", 0.1],
  ["seed", "Seed", "Makes a session repeatable; applies after Reset.", "number", 1],
];

function getPath(obj, path) { return path.split(".").reduce((o, k) => o[k], obj); }
function setPath(obj, path, v) {
  const keys = path.split(".");
  const last = keys.pop();
  keys.reduce((o, k) => o[k], obj)[last] = v;
}

function renderSettings() {
  const box = $("settings");
  box.replaceChildren();
  for (const [path, label, help, type, step] of SETTINGS) {
    const row = document.createElement("label");
    row.className = "setting";
    const name = document.createElement("span");
    name.className = "setting-name";
    name.textContent = label;
    const input = document.createElement("input");
    input.type = type;
    input.dataset.path = path;
    if (type === "checkbox") input.checked = !!getPath(state.config, path);
    else { input.value = getPath(state.config, path); input.step = step; }
    const h = document.createElement("span");
    h.className = "setting-help";
    h.textContent = help;
    row.append(name, input, h);
    box.append(row);
  }
}

async function applySettings() {
  const cfg = structuredClone(state.config);
  for (const input of $("settings").querySelectorAll("input")) {
    const path = input.dataset.path;
    if (input.type === "checkbox") { setPath(cfg, path, input.checked); continue; }
    const v = Number(input.value);
    if (input.value.trim() === "" || !Number.isFinite(v)) {
      notice(`${path}: “${input.value}” is not a number.`);
      return;
    }
    setPath(cfg, path, v);
  }
  try {
    state.config = JSON.parse(await call("setConfig", { json: JSON.stringify(cfg) }));
    renderSettings();
    notice("Settings applied: they take effect from the next update.", "info");
  } catch (err) {
    notice(`Settings not applied: ${err.message}`);
  }
}

// Empties everything drawn from the session: charts, cards, token view, pipeline strip.
function clearSession() {
  state.ratings = 0;
  state.charts.clear();
  state.timings = [];
  state.cards = [];
  renderCards();
  renderTokens([]);
  $("token-view").textContent = "No update yet.";
  document.querySelectorAll(".stage").forEach((s) => {
    s.classList.remove("active", "done", "skipped");
    s.querySelector(".stage-bar div").style.width = "0%";
    s.querySelector(".stage-info").textContent = "waiting";
  });
}

async function reset() {
  if (state.autopilot) state.autopilot.stop = true;
  try {
    state.config = JSON.parse(await call("reset"));
    clearSession();
    notice("Pip is back to the base model.", "info");
  } catch (err) {
    notice(err.message);
  }
}

// ---------------------------------------------------------------- start

async function main() {
  startWorker();
  state.charts = new Charts($("charts"));
  state.presetsQueue = [];
  const presets = [
    ["Small talk", "hello, who are you?"], ["Sums", "what is 3 plus 4?"], ["Facts", "what colour is the sky?"],
    ["Can't know", "will it rain in Oslo tomorrow?"], ["A joke", "tell me a joke about a cat"], ["Advice", "how can I sleep better?"],
  ];
  for (const [label, text] of presets) {
    $("presets").append(button(label, `Ask: ${text}`, () => { $("prompt").value = text; generate(text); }, "chip"));
  }
  $("generate").addEventListener("click", () => generate($("prompt").value));
  $("prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && state.ready) generate($("prompt").value); });
  $("compare-tie").addEventListener("click", () => {
    const a = state.compareFirst;
    const b = state.cards.find((c) => c !== a);
    state.compareFirst = null;
    $("compare-row").hidden = true;
    if (a && b) give({ kind: "pair", better: a.reply, worse: b.reply, tie: true }, a, `tie with ${b.label}`);
    renderCards();
  });
  $("compare-cancel").addEventListener("click", () => { state.compareFirst = null; $("compare-row").hidden = true; renderCards(); });
  $("ba-go").addEventListener("click", beforeAfter);
  $("auto-start").addEventListener("click", autopilot);
  $("auto-stop").addEventListener("click", () => { if (state.autopilot) state.autopilot.stop = true; $("auto-status").textContent = "Stopping after this round…"; });
  $("auto-rater").addEventListener("change", () => { $("auto-keyword-label").hidden = $("auto-rater").value !== "keyword"; });
  $("auto-speed").addEventListener("input", () => { $("auto-speed-v").textContent = `${(Number($("auto-speed").value) / 1000).toFixed(1)} s`; });
  $("apply-settings").addEventListener("click", applySettings);
  $("reset").addEventListener("click", reset);
  $("large-text").addEventListener("change", () => {
    document.documentElement.classList.toggle("large", $("large-text").checked);
    state.charts.resize();
  });
  $("use-gpu").addEventListener("change", async () => {
    if (state.autopilot) state.autopilot.stop = true;
    await load($("use-gpu").checked ? "webgpu" : "cpu");
  });
  const gpu = await hasWebGpu();
  if (!gpu) {
    $("use-gpu").disabled = true;
    $("use-gpu").parentElement.title = "This browser offers no WebGPU adapter, so Pip runs on the CPU.";
  }
  const params = new URLSearchParams(location.search);
  const wanted = params.get("backend") || (gpu ? "webgpu" : "cpu");
  if (wanted === "webgpu" && !gpu) notice("This browser has no WebGPU, so Pip runs on the CPU (WebAssembly). Everything works; training is a little slower.", "info");
  await load(wanted === "webgpu" && gpu ? "webgpu" : "cpu");
  if (state.ready) generate(presets[1][1]).then(() => { $("prompt").value = presets[1][1]; });
}

main();
