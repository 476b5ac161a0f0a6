// The reply cards: asking Pip, and every kind of feedback on its replies (thumbs, stars,
// "A is better than B" or a tie, a better answer written by the person). Model text always goes
// in with textContent.

import { $, button, call, notice, store } from "./store.js";

/// Asks for four replies to `prompt` and shows them as cards.
export async function generate(prompt) {
  prompt = prompt.trim();
  if (!prompt) { notice("Type a question for Pip first (or pick one of the examples)."); return; }
  if (!store.ready) { if (!store.crashed) notice("Pip is still loading; try again in a moment.", "info"); return; }
  $("generate").disabled = true;
  try {
    const replies = await call("generate", { prompt, n: 4 });
    if (replies.length && replies[0].shortened) {
      notice("That question is longer than Pip can read (about 70 tokens), so Pip answered its last part only.", "info");
    }
    showCards(prompt, replies.map((r) => ({ ...r, raterGave: [] })));
  } catch (err) {
    notice(err.message);
  } finally {
    $("generate").disabled = !store.ready;
  }
}

/// Puts `replies` on screen as the cards for `prompt`.
export function showCards(prompt, replies) {
  store.prompt = prompt;
  store.cards = replies.map((r, i) => ({ ...r, label: "ABCD"[i], rated: [] }));
  store.compareFirst = null;
  store.compareTie = false;
  $("compare-row").hidden = true;
  renderCards();
}

async function give(feedback, card, label) {
  try {
    const queued = await call("record", { feedback });
    if (card) { card.rated.push(label); renderCards(); }
    store.lastRated = card ? { card, label } : null;
    $("queue").textContent = queued > 1 ? `${queued} ratings waiting to train…` : "Training on your rating…";
  } catch (err) {
    notice(err.message);
  }
}

/// Takes the mark of the last rating off its card (after Undo), if the card is still shown.
export function unmarkLastRating() {
  const last = store.lastRated;
  store.lastRated = null;
  if (!last || !store.cards.includes(last.card)) return;
  const i = last.card.rated.lastIndexOf(last.label);
  if (i >= 0) last.card.rated.splice(i, 1);
  renderCards();
}

/// Draws the cards in `store.cards`.
export function renderCards() {
  const box = $("cards");
  box.replaceChildren();
  for (const card of store.cards) {
    const el = document.createElement("article");
    el.className = "reply-card";
    el.dataset.reply = card.reply;
    if (store.compareFirst === card) el.classList.add("selected");
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
    el.append(head, text, actions(card));
    if (card.editing) el.append(...editor(card));
    for (const [who, marks] of [["You rated", card.rated], ["The rater gave", card.raterGave]]) {
      if (!marks || !marks.length) continue;
      const r = document.createElement("div");
      r.className = "rated";
      r.textContent = `${who}: ${marks.join(" ")}`;
      el.append(r);
    }
    box.append(el);
  }
  writeHint();
}

/// A person who has disliked every reply shown is invited to write the one they want: thumbs
/// down alone teach what is not liked, and with a rare taste four replies may hold nothing
/// liked at all. A written answer is practised at once (SFT) and beats these replies.
function writeHint() {
  const disliked = (c) => c.rated.some((m) => m === "👎" || m === "1★" || m === "2★");
  const show = store.cards.length > 0 && store.cards.every(disliked) && !store.cards.some((c) => c.rated.includes("✎"));
  let el = $("write-hint");
  if (!show) { if (el) el.remove(); return; }
  if (!el) {
    el = document.createElement("p");
    el.id = "write-hint";
    el.className = "write-hint";
  }
  el.replaceChildren(
    "None of these is what you want? Write the answer you would like: Pip practises it at once, and learns that it beats these four. ",
    button("✎ Write it", "Write the answer you would like", () => demo(store.cards[0]), "primary"),
  );
  $("cards").after(el);
}

/// A person rates each card once per kind: a second thumbs or stars on the same reply would
/// count twice in the queue (the reward model keeps only the latest), so those buttons go
/// quiet once used.
function actions(card) {
  const row = document.createElement("div");
  row.className = "card-actions";
  const thumbed = card.rated.some((m) => m === "👍" || m === "👎");
  const starred = card.rated.some((m) => m.endsWith("★"));
  const once = (b, done, what) => {
    if (done) { b.disabled = true; b.title = `You already gave reply ${card.label} ${what}`; }
    return b;
  };
  row.append(
    once(button("👍", `Thumbs up for reply ${card.label}`, () => give({ kind: "thumbs", reply: card.reply, up: true }, card, "👍")), thumbed, "a thumb"),
    once(button("👎", `Thumbs down for reply ${card.label}`, () => give({ kind: "thumbs", reply: card.reply, up: false }, card, "👎")), thumbed, "a thumb"),
  );
  const stars = document.createElement("span");
  stars.className = "stars";
  for (let s = 1; s <= 5; s++) {
    stars.append(once(button("★", `${s} star${s > 1 ? "s" : ""} for reply ${card.label}`,
      () => give({ kind: "stars", reply: card.reply, stars: s }, card, `${s}★`), "star"), starred, "stars"));
  }
  const first = store.compareFirst;
  const verb = store.compareTie ? "is as good as" : "is better than";
  row.append(
    stars,
    button(first && first !== card ? `${first.label} ${verb} ${card.label}` : "A vs B…",
      "Compare this reply with another", () => compare(card), "compare"),
    button("✎ Write a better answer", `Write a better answer than reply ${card.label}`, () => demo(card), "write"),
  );
  return row;
}

function compare(card) {
  if (!store.compareFirst) {
    store.compareFirst = card;
    $("compare-row").hidden = false;
    $("compare-text").textContent = `Reply ${card.label} is better than… (pick the worse reply)`;
    renderCards();
    return;
  }
  const better = store.compareFirst;
  const tie = store.compareTie;
  store.compareFirst = null;
  store.compareTie = false;
  $("compare-row").hidden = true;
  if (better !== card) {
    give({ kind: "pair", better: better.reply, worse: card.reply, tie }, better, `${tie ? "tie with" : "better than"} ${card.label}`);
  }
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

/// Wires the prompt box, the examples and the compare row's buttons.
export function wireCards(presets) {
  for (const [label, text] of presets) {
    $("presets").append(button(label, `Ask: ${text}`, () => { $("prompt").value = text; generate(text); }, "chip"));
  }
  $("generate").addEventListener("click", () => generate($("prompt").value));
  $("prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && store.ready) generate($("prompt").value); });
  // "They are equally good": the next reply picked is the one tied with the first.
  $("compare-tie").addEventListener("click", () => {
    if (!store.compareFirst) return;
    store.compareTie = true;
    $("compare-text").textContent = `Reply ${store.compareFirst.label} is as good as… (pick the other reply)`;
    renderCards();
  });
  $("compare-cancel").addEventListener("click", () => { store.compareFirst = null; store.compareTie = false; $("compare-row").hidden = true; renderCards(); });
}
