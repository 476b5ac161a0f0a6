// The page's one shared store, and its line to the engine.
//
// Every panel module reads and writes `store` and nothing else that another module owns; the
// fields are listed here. `call` sends a request to the engine's worker (worker.js) and
// resolves with its answer. `notice` shows a message above the page.

export const store = {
  /// The engine has loaded and is not crashed: controls may send requests.
  ready: false,
  /// The engine trapped; every request fails until it is restarted.
  crashed: false,
  /// "webgpu" or "cpu".
  backend: "cpu",
  /// The Settings panel's contents: `schema` (every setting: name, group, label, help, kind,
  /// min, max, default, advanced) and `values` (name → value now), from the engine.
  settings: null,
  /// The reply cards on screen, and the prompt they answer. A card: the engine's `prompt` and
  /// `reply` indices, `text`, `shortened` (the prompt was cut to fit), `label` (A–D), the
  /// person's marks `rated` and the autopilot rater's `raterGave`, its `score` when a rater
  /// gave one, and `editing` and `draft` while a better answer is being written.
  cards: [],
  prompt: "",
  /// The card picked first for "A vs B", until the second is picked; and whether "They are
  /// equally good" was pressed, so that the second pick records a tie with it.
  compareFirst: null,
  compareTie: false,
  /// The autopilot run in progress (`{stop, rounds}`), or null; and the rater it last used
  /// (`{rater, keyword, label}`, kept until Reset), by whose taste a comparison is measured.
  autopilot: null,
  autopilotRater: null,
  /// The comparison of methods in progress (`{stop}`), or null, and the last one finished (the
  /// engine's `Comparison`: rater, ratings, base_rate, prompts, base_answers, methods).
  comparing: null,
  comparison: null,
  /// Ratings given so far (the latest finished update's), and the engine's last status.
  ratings: 0,
  status: null,
  /// The charts (charts.js) and the latest finished update's report.
  charts: null,
  lastReport: null,
  /// One entry per finished update: {ratings, millis, stages: {sft, reward, ppo}} in
  /// milliseconds (scripts/bench_page.mjs reads it). Also: loadMs, the time to load.
  timings: [],
  loadMs: 0,
  /// The worker and the requests waiting for its answer.
  worker: null,
  pending: new Map(),
  nextId: 1,
};

export const $ = (id) => document.getElementById(id);

/// Sends request `type` to the engine's worker; resolves with its result.
export function call(type, payload = {}) {
  const id = store.nextId++;
  return new Promise((resolve, reject) => {
    store.pending.set(id, { resolve, reject });
    store.worker.postMessage({ id, type, ...payload });
  });
}

/// Shows `text` above the page ("error" stays, "info" fades after 6 s); "" hides it.
export function notice(text, kind = "error") {
  const el = $("notice");
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
  if (text && kind === "info") setTimeout(() => { if (el.textContent === text) el.hidden = true; }, 6000);
}

/// A button with a text, an accessible name and a click handler.
export function button(text, title, onClick, cls = "") {
  const b = document.createElement("button");
  b.textContent = text;
  b.title = title;
  b.setAttribute("aria-label", title);
  if (cls) b.className = cls;
  b.addEventListener("click", onClick);
  return b;
}
