// The token view: a fresh reply after the latest update, each token coloured by how much
// likelier (green) or less likely (red) the policy finds it than the base model did.

import { $ } from "./store.js";

/// Draws the samples of an update's report (`[{prompt, reply, reward, tokens}]`).
export function renderTokens(samples) {
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
    for (const t of s.tokens) line.append(token(t));
    const r = document.createElement("span");
    r.className = "token-reward";
    r.textContent = ` reward ${s.reward.toFixed(2)}`;
    line.append(r);
    box.append(line);
  }
}

function token(t) {
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
  return span;
}
