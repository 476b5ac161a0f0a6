// The Compare panel: every rating so far replayed through each method ticked, each from the base
// model, in the engine's worker one slice per call (so ratings and training carry on meanwhile),
// then a table of what each method reached and each one's answers to the same prompts side by
// side. Measured by the autopilot's rater when it gave the ratings.

import { $, call, notice, store } from "./store.js";

export const METHOD_NAMES = { ppo: "PPO", dpo: "DPO", kto: "KTO", grpo: "GRPO", bon: "Best-of-N", sft: "SFT only" };

function pct(x) {
  return Number.isFinite(x) ? `${Math.round(100 * x)}%` : "–";
}

function cell(row, text, tag = "td") {
  const el = document.createElement(tag);
  el.textContent = text;
  row.append(el);
  return el;
}

/// The results: a table of measures, then the answers to the same prompts, method by method.
function render(c) {
  const box = $("cmp-result");
  box.replaceChildren();
  const who = c.rater ? `by the autopilot's taste (${store.autopilotRater?.label ?? c.rater})` : "with no rater to judge taste (rate with the autopilot to see a preferred rate)";
  const head = document.createElement("p");
  head.className = "hint";
  head.textContent = `${c.ratings} ratings replayed through each method from the base model, measured on held-out prompts ${who}.`;
  const table = document.createElement("table");
  table.className = "cmp-table";
  const hr = document.createElement("tr");
  for (const h of ["Method", "Rater’s 👍 rate", "Well-formed", "KL to base", "Diversity kept", "Time per update", "Ratings used"]) cell(hr, h, "th");
  table.append(hr);
  const base = document.createElement("tr");
  for (const t of ["Base model", pct(c.base_rate), "", "0", "", "", ""]) cell(base, t);
  table.append(base);
  for (const m of c.methods) {
    const tr = document.createElement("tr");
    const used = m.used === null ? "all" : `${m.used} of ${m.used + m.unused}`;
    const kept = m.diversity_kept === null ? "–" : pct(m.diversity_kept);
    for (const t of [METHOD_NAMES[m.method], pct(m.preferred), pct(m.well_formed), `${m.kl.toFixed(2)} nats`, kept, `${Math.round(m.millis_per_update)} ms`, used]) cell(tr, t);
    table.append(tr);
  }
  box.append(head, table);
  if (!c.prompts.length) return;
  const h = document.createElement("h3");
  h.textContent = "Their answers to the same prompts";
  const grid = document.createElement("table");
  grid.className = "cmp-answers";
  const top = document.createElement("tr");
  cell(top, "Prompt", "th");
  cell(top, "Base model", "th");
  for (const m of c.methods) cell(top, METHOD_NAMES[m.method], "th");
  grid.append(top);
  c.prompts.forEach((p, i) => {
    const tr = document.createElement("tr");
    cell(tr, p, "th");
    cell(tr, c.base_answers[i]);
    for (const m of c.methods) cell(tr, m.answers[i]);
    grid.append(tr);
  });
  box.append(h, grid);
}

async function compareMethods() {
  const methods = [...$("cmp-methods").querySelectorAll("input:checked")].map((el) => el.value);
  if (methods.length < 1) { notice("Tick at least one method to compare."); return; }
  if (store.ratings < 1) { notice("Give a few ratings first: the comparison replays them."); return; }
  const r = store.autopilotRater;
  const run = { stop: false };
  store.comparing = run;
  $("cmp-start").disabled = true;
  $("cmp-stop").disabled = false;
  $("cmp-progress").hidden = false;
  $("cmp-bar").style.width = "0%";
  try {
    await call("compareStart", { methods: methods.join(","), rater: r ? r.rater : "", keyword: r ? r.keyword : "", prompts: 24 });
    for (;;) {
      if (run.stop) { await call("compareStop"); $("cmp-status").textContent = "Comparison stopped."; break; }
      const step = await call("compareStep");
      if (step.event === "done") {
        store.comparison = step;
        render(step);
        $("cmp-status").textContent = "";
        $("cmp-bar").style.width = "100%";
        break;
      }
      const total = step.of * step.ratings;
      $("cmp-bar").style.width = `${Math.round((100 * (step.index * step.ratings + step.rating)) / Math.max(1, total))}%`;
      $("cmp-status").textContent = `${METHOD_NAMES[step.method]}: rating ${step.rating} of ${step.ratings} replayed (method ${step.index + 1} of ${step.of})…`;
    }
  } catch (err) {
    notice(`The comparison stopped: ${err.message}`);
    $("cmp-status").textContent = "";
  } finally {
    store.comparing = null;
    $("cmp-start").disabled = !store.ready;
    $("cmp-stop").disabled = true;
    setTimeout(() => { $("cmp-progress").hidden = true; }, 600);
  }
}

/// Asks a running comparison to stop after its slice.
export function stopComparison() {
  if (store.comparing) store.comparing.stop = true;
}

export function wireCompare() {
  $("cmp-start").addEventListener("click", compareMethods);
  $("cmp-stop").addEventListener("click", stopComparison);
}
