// The page's wiring: starts the engine's worker, routes its messages to the panels, loads the
// model (WebGPU or the CPU), and handles a crashed engine and Reset. Each panel lives in its own
// module (cards, pipeline, charts, tokens, before/after, autopilot, compare, settings); the state they
// share is the one store in store.js.

import { Charts } from "./charts.js";
import { $, call, notice, store } from "./store.js";
import { generate, showCards, wireCards } from "./cards.js";
import { clearPipeline, onEvent, showStatus, wirePipeline } from "./pipeline.js";
import { renderTokens } from "./tokens.js";
import { wireBeforeAfter } from "./beforeafter.js";
import { stopAutopilot, wireAutopilot } from "./autopilot.js";
import { renderSettings, wireSettings } from "./settings.js";
import { stopComparison, wireCompare } from "./comparepanel.js";

// Visible to end-to-end tests and curious visitors (read-only use).
window.playground = store;

const PRESETS = [
  ["Small talk", "hello, who are you?"], ["Sums", "what is 3 plus 4?"], ["Facts", "what colour is the sky?"],
  ["Can't know", "will it rain in Oslo tomorrow?"], ["A joke", "tell me a joke about a cat"], ["Advice", "how can I sleep better?"],
];

function startWorker() {
  store.worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  store.worker.onmessage = onWorkerMessage;
  store.worker.onerror = (e) => crashed(e.message || "unknown error");
}

function onWorkerMessage(e) {
  const msg = e.data;
  if (msg.id && store.pending.has(msg.id)) {
    const p = store.pending.get(msg.id);
    store.pending.delete(msg.id);
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

// The engine trapped (a WebAssembly RuntimeError: the GPU device was lost, memory ran out, a
// bug): its state cannot be trusted any more, so every waiting call fails and the person is
// offered a fresh engine.
function crashed(why) {
  if (store.crashed) return;
  store.crashed = true;
  store.ready = false;
  setEnabled(false);
  stopAutopilot();
  stopComparison();
  for (const p of store.pending.values()) p.reject(new Error("the engine stopped"));
  store.pending.clear();
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
  store.worker.terminate();
  store.crashed = false;
  notice("");
  clearSession();
  startWorker();
  await load("cpu");
  if (store.ready && $("prompt").value.trim()) await generate($("prompt").value);
}

async function hasWebGpu() {
  if (!("gpu" in navigator)) return false;
  try { return !!(await navigator.gpu.requestAdapter()); } catch { return false; }
}

async function load(backend) {
  store.ready = false;
  setEnabled(false);
  $("loading").hidden = false;
  const t0 = performance.now();
  try {
    const r = await call("load", { backend });
    store.backend = r.backend;
    store.settings = r.settings;
    $("backend").textContent = r.backend === "webgpu" ? "running on WebGPU" : "running on the CPU (WebAssembly)";
    $("backend").dataset.backend = r.backend;
    $("use-gpu").checked = r.backend === "webgpu";
    if (r.fallback) notice(`WebGPU did not start (${r.fallback}), so Pip runs on the CPU instead. Everything still works, a little slower.`, "info");
    store.loadMs = performance.now() - t0;
    store.ready = true;
    setEnabled(true);
    renderSettings();
    setTimeout(() => { $("loading").hidden = true; }, 400);
  } catch (err) {
    $("loading-label").textContent = `Could not load the model: ${err.message}`;
  }
}

function setEnabled(on) {
  for (const id of ["generate", "ba-go", "auto-start", "cmp-start", "apply-settings", "reset"]) $(id).disabled = !on;
}

// Empties everything drawn from the session: charts, cards, token view, pipeline strip.
function clearSession() {
  store.ratings = 0;
  store.charts.clear();
  store.timings = [];
  showCards("", []);
  renderTokens([]);
  $("token-view").textContent = "No update yet.";
  clearPipeline();
}

async function reset() {
  stopAutopilot();
  stopComparison();
  store.autopilotRater = null;
  try {
    store.settings = await call("reset");
    renderSettings();
    clearSession();
    notice("Pip is back to the base model.", "info");
  } catch (err) {
    notice(err.message);
  }
}

async function main() {
  startWorker();
  store.charts = new Charts($("charts"));
  wireCards(PRESETS);
  wireBeforeAfter();
  wireAutopilot();
  wireCompare();
  wirePipeline();
  wireSettings();
  $("reset").addEventListener("click", reset);
  $("large-text").addEventListener("change", () => {
    document.documentElement.classList.toggle("large", $("large-text").checked);
    store.charts.resize();
  });
  // A new backend is a new engine from the base model: what the page shows of the old one goes.
  $("use-gpu").addEventListener("change", async () => {
    stopAutopilot();
    clearSession();
    await load($("use-gpu").checked ? "webgpu" : "cpu");
    if (store.ready && $("prompt").value.trim()) await generate($("prompt").value);
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
  const [, first] = PRESETS[1];
  if (store.ready) generate(first).then(() => { $("prompt").value = first; });
}

main();
