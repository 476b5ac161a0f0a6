// The autopilot: a simulated person (one of the built-in raters, or one who likes a word)
// asks, rates each round's replies and lets every rating train, round after round.

import { $, call, notice, store } from "./store.js";
import { renderCards, showCards } from "./cards.js";

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

/// Waits until the engine has trained on every queued rating; gives up when the run is asked
/// to stop or the engine has crashed (the training would never finish).
async function waitIdle(run) {
  for (;;) {
    const st = store.status;
    if (st && st.queued === 0 && !st.updating) return;
    if (store.crashed) throw new Error("the engine stopped");
    if (run.stop) return;
    await sleep(100);
  }
}

// Shows on the cards what the rater gave: its thumbs or stars, or which reply it preferred in
// each pair (or a tie).
function markFeedback(feedback) {
  const card = (reply) => store.cards.find((c) => c.reply === reply);
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
  store.autopilot = run;
  store.autopilotRater = { rater, keyword, label: $("auto-rater").selectedOptions[0].textContent };
  $("auto-start").disabled = true;
  $("auto-stop").disabled = false;
  try {
    while (!run.stop) {
      const prompt = await call("corpusPrompt");
      $("prompt").value = prompt;
      const out = await call("autopilot", { rater, keyword, kind, prompt, n: 4 });
      showCards(prompt, out.replies.map((r) => ({ ...r, raterGave: [] })));
      markFeedback(out.feedback);
      renderCards();
      run.rounds += 1;
      const n = out.feedback.length;
      $("auto-status").textContent = `Round ${run.rounds}: the rater gave ${n} rating${n === 1 ? "" : "s"}. Training…`;
      await sleep(50);
      await waitIdle(run);
      $("auto-status").textContent = `Round ${run.rounds} done (${store.ratings} ratings so far).`;
      await sleep(Number($("auto-speed").value));
    }
  } catch (err) {
    notice(`Autopilot stopped: ${err.message}`);
  } finally {
    store.autopilot = null;
    $("auto-start").disabled = !store.ready;
    $("auto-stop").disabled = true;
  }
}

/// Asks a running autopilot to stop after its round.
export function stopAutopilot() {
  if (store.autopilot) store.autopilot.stop = true;
}

export function wireAutopilot() {
  $("auto-start").addEventListener("click", autopilot);
  $("auto-stop").addEventListener("click", () => { stopAutopilot(); $("auto-status").textContent = "Stopping after this round…"; });
  $("auto-rater").addEventListener("change", () => { $("auto-keyword-label").hidden = $("auto-rater").value !== "keyword"; });
  $("auto-speed").addEventListener("input", () => { $("auto-speed-v").textContent = `${(Number($("auto-speed").value) / 1000).toFixed(1)} s`; });
}
