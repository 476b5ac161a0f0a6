// The pipeline strip: SFT → reward model → PPO (or DPO, KTO, GRPO or best-of-N: the method setting) lighting
// up slice by slice as an update runs, each stage's numbers when it finishes, and the queue line
// above it.

import { $, call, notice, store } from "./store.js";
import { renderTokens } from "./tokens.js";
import { unmarkLastRating } from "./cards.js";

/// The third box shows whichever method trains the policy.
function stageEl(stage) {
  const box = ["dpo", "kto", "grpo", "bon"].includes(stage) ? "ppo" : stage;
  return document.querySelector(`.stage[data-stage="${box}"]`);
}

const METHOD_NAMES = { ppo: "PPO", dpo: "DPO", kto: "KTO", grpo: "GRPO", bon: "Best-of-N", sft: "RL step (off: SFT only)" };

/// Names the third box after the method (the `method` setting).
export function nameStages(method) {
  const el = stageEl("ppo");
  if (el) el.querySelector(".stage-name").textContent = METHOD_NAMES[method] ?? "PPO";
}

/// Which ratings a direct method could not use, in words.
const UNUSABLE = {
  dpo: "a thumbs or stars with no rating apart on the same prompt, or a tie",
  kto: "3 stars, or a tie",
};

function fmt(x, digits = 3) {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}

function percent(x) {
  return `${Math.round(100 * x)}%`;
}

/// What a finished stage shows, from its metrics (names as in `--json`: metrics.rs).
function summary(ev) {
  const m = ev.metrics;
  const ms = `${Math.round(ev.millis)} ms`;
  if (ev.skipped) return `skipped: ${ev.skipped}`;
  if (ev.stage === "sft") return `loss ${fmt(m["sft/loss"])} · ${ms}`;
  if (ev.stage === "reward") {
    const unseen = m["reward/eval_accuracy"], batch = m["reward/accuracy"];
    const acc = Number.isFinite(unseen) ? `${percent(unseen)} (unseen)` : Number.isFinite(batch) ? percent(batch) : "–";
    const trust = m["reward/confidence_weight"] > 0 ? ` · trust in base ${fmt(m["reward/confidence_weight"], 1)}` : "";
    return `loss ${fmt(m["reward/loss"])} · accuracy ${acc}${trust} · ${ms}`;
  }
  if (ev.stage === "dpo" || ev.stage === "kto") {
    const used = m["direct/used"], unused = m["direct/unused"];
    const left = unused > 0 ? ` (${unused} it could not: ${UNUSABLE[ev.stage]})` : "";
    const z0 = ev.stage === "kto" ? ` · z₀ ${fmt(m["direct/kl"], 2)}` : "";
    return `loss ${fmt(m["direct/loss"])} · margin ${fmt(m["rewards/margins"], 2)}${z0} · used ${used} of ${used + unused} ratings${left} · ${ms}`;
  }
  if (ev.stage === "grpo") {
    const flat = m["grpo/frac_reward_zero_std"] > 0 ? ` · ${percent(m["grpo/frac_reward_zero_std"])} of groups all alike` : "";
    return `reward ${fmt(m["grpo/reward"], 2)} · KL ${fmt(m["grpo/kl"], 3)}/token · clip ${fmt(m["grpo/clip_ratio"], 3)}${flat} · ${ms}`;
  }
  if (ev.stage === "bon") {
    return `kept ${m["bon/accepted"]} of ${m["bon/candidates"]} new replies · learnt from ${m["bon/kept"]} · loss ${fmt(m["bon/loss"])} · ${ms}`;
  }
  return `reward ${fmt(m["objective/scores"], 2)} · KL ${fmt(m["objective/kl"], 2)} · clip ${fmt(m["policy/clipfrac_avg"], 3)} · ${ms}`;
}

/// Draws one event of an update: a slice's progress, a finished stage, the finished update.
export function onEvent(ev) {
  if (ev.event === "progress") {
    const el = stageEl(ev.stage);
    if (!el) return;
    document.querySelectorAll(".stage.active").forEach((s) => { if (s !== el) s.classList.remove("active"); });
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
    el.querySelector(".stage-info").textContent = summary(ev);
  } else if (ev.event === "done") {
    if (ev.rolled_back) {
      notice(`Rating ${ev.ratings} broke Pip, so its update was undone and Pip is as it was before. ${ev.rolled_back}. ` +
        "Smaller learning rates in Settings will let it train.", "warn");
    }
    store.ratings = ev.ratings;
    store.charts.add(ev.ratings, ev.metrics);
    store.lastReport = ev;
    store.timings.push({
      ratings: ev.ratings, millis: ev.millis,
      stages: Object.fromEntries(ev.stages.map((s) => [s.stage, s.millis])),
    });
    renderTokens(ev.samples);
    document.querySelectorAll(".stage").forEach((s) => s.classList.remove("active"));
  }
}

/// The queue line: ratings so far, or how many updates are still to run.
export function showStatus(st) {
  const waiting = st.queued + (st.updating ? 1 : 0);
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  $("queue").textContent = waiting === 0
    ? `${plural(st.ratings, "rating")} so far; Pip has been updated ${plural(st.version, "time")}.`
    : `Training… ${plural(waiting, "update")} to go (${st.queued} waiting in the queue).`;
  $("cancel-queue").hidden = st.queued === 0;
  $("undo").disabled = !st.canUndo;
  store.status = st;
}

/// Undoes the last rating: the engine restores Pip and the log; the charts and the card follow.
async function undo() {
  try {
    const st = await call("undo");
    store.charts.dropAfter(st.ratings);
    store.ratings = st.ratings;
    unmarkLastRating();
    notice(`Your last rating was undone: Pip is as it was after rating ${st.ratings}.`, "info");
  } catch (err) {
    notice(err.message);
  }
}

/// Drops the ratings still waiting to train (the engine refuses more than 20 waiting).
async function cancelQueued() {
  try {
    const n = await call("cancelQueued");
    notice(n ? `${n} waiting rating${n === 1 ? "" : "s"} cancelled: Pip will not train on ${n === 1 ? "it" : "them"}.` : "No rating was waiting.", "info");
  } catch (err) {
    notice(err.message);
  }
}

export function wirePipeline() {
  $("cancel-queue").addEventListener("click", cancelQueued);
  $("undo").addEventListener("click", undo);
}

/// Back to "waiting" on every stage.
export function clearPipeline() {
  document.querySelectorAll(".stage").forEach((s) => {
    s.classList.remove("active", "done", "skipped");
    s.querySelector(".stage-bar div").style.width = "0%";
    s.querySelector(".stage-info").textContent = "waiting";
  });
}
