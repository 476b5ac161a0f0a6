// Before and after: the base model's reply and Pip's reply now to the same prompt, drawn with
// the same random numbers.

import { $, call, notice, store } from "./store.js";

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
    $("ba-go").disabled = !store.ready;
  }
}

export function wireBeforeAfter() {
  $("ba-go").addEventListener("click", beforeAfter);
}
