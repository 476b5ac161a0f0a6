// End-to-end check of the page in Debian's headless Chromium (driven by playwright-core):
// opens the page, waits for the model, generates, gives each kind of feedback, and checks
// that every stage reports, the policy changed, charts have points, the console stayed clean
// and no request left 127.0.0.1. Screenshots go to tests/artifacts/.
// Usage: node tests/e2e/page.mjs [cpu|webgpu]   (the page must be served on 127.0.0.1:8080)
// SMOKE=1 stops after the first rating (then checks the console and the requests).
// On WebGPU (SwiftShader in CI: software rendering, minutes per update with the real model) it
// first lightens the update through the Settings panel, then gives the same feedback.
import { launchChromium } from "../../scripts/chromium.mjs";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const backend = process.argv[2] || "cpu";
const gpu = backend === "webgpu";
const slow = gpu ? 900000 : 120000;
const url = process.env.PAGE_URL || "http://127.0.0.1:8080/";
const out = new URL("../artifacts/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });

const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); console.log(`${ok ? "ok  " : "FAIL"} ${what}`); };

const browser = await launchChromium();
const page = browser.pages()[0] || await browser.newPage();
const errors = [];
const foreign = [];
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
page.on("pageerror", (e) => errors.push(String(e)));
page.on("request", (r) => { const u = new URL(r.url()); if (!["127.0.0.1", ""].includes(u.hostname) && u.protocol !== "data:") foreign.push(r.url()); });
page.on("worker", (w) => w.on("console", (m) => { if (m.type() === "error") errors.push(`worker: ${m.text()}`); }));

const t0 = Date.now();
await page.goto(`${url}?backend=${backend}`);
await page.waitForFunction(() => window.playground && window.playground.ready, null, { timeout: slow });
await page.waitForFunction(() => document.querySelectorAll(".reply-card").length === 4, null, { timeout: slow });
const firstReply = (Date.now() - t0) / 1000;
console.log(`first replies after ${firstReply.toFixed(1)} s on ${await page.textContent("#backend")}`);
check(true, "replies appear");
check(await page.$eval("#backend", (el) => el.dataset.backend) === backend, `the page runs on ${backend}`);
await page.screenshot({ path: `${out}/page-${backend}-start.png`, fullPage: false });

const done = () => page.evaluate(() => window.playground.status && window.playground.status.queued === 0 && !window.playground.status.updating);
async function waitDone(ratings) {
  await page.waitForFunction((n) => window.playground.ratings >= n && window.playground.status.queued === 0 && !window.playground.status.updating, ratings, { timeout: gpu ? 1200000 : 300000 });
}
if (gpu) {
  // A lighter update, set the way a person would: through the Settings panel.
  for (const [path, v] of [["ppo.batch_size", 2], ["ppo.epochs", 1], ["reward.steps", 1], ["sft.steps", 1]]) {
    await page.fill(`#settings input[data-path='${path}']`, String(v));
  }
  await page.click("#apply-settings");
  await page.waitForFunction(() => window.playground.settings.values["ppo.batch_size"] === 2, null, { timeout: 60000 });
}
// The Settings panel is built from the engine's own list: every setting has its input.
{
  const panel = await page.evaluate(() => ({
    names: window.playground.settings.schema.map((s) => s.name).sort(),
    inputs: [...document.querySelectorAll("#settings [data-path]")].map((el) => el.dataset.path).sort(),
  }));
  check(panel.names.length >= 40 && JSON.stringify(panel.names) === JSON.stringify(panel.inputs),
    `every setting of the engine (${panel.names.length}) has an input in the Settings panel (${panel.inputs.length})`);
}
if (!gpu) {
  // A value out of range is refused with a message naming it, and nothing changes.
  await page.fill("#settings input[data-path='ppo.lr']", "5");
  await page.click("#apply-settings");
  await page.waitForFunction(() => /ppo\.lr must be between/.test(document.getElementById("notice").textContent), null, { timeout: 10000 });
  check(await page.evaluate(() => window.playground.settings.values["ppo.lr"] === 2e-4), "an out-of-range setting is refused and changes nothing");
  await page.fill("#settings input[data-path='ppo.lr']", "0.0002");
}
// Thumbs up on reply A, then stars, a pair and a demonstration.
await page.click(".reply-card:nth-child(1) button[aria-label^='Thumbs up']");
await waitDone(1);
const stages = await page.$$eval(".stage", (els) => els.map((e) => [e.dataset.stage, e.className, e.querySelector(".stage-info").textContent]));
console.log(stages);
check(stages.every(([, cls]) => /done|skipped/.test(cls)), "every stage reports after a thumbs up");
check(stages.find(([s]) => s === "ppo")[1].includes("done"), "PPO ran");
// Its reward and KL are numbers ("–" marks a value that is not finite: a NaN model).
check(/reward -?\d.* KL -?\d/.test(stages.find(([s]) => s === "ppo")[2]), "PPO's reward and KL are numbers");
// SMOKE=1 (the static build, dist/, served as a bare host would): loading, one rating through
// every stage and a clean console are what it must show; the rest is the same page.
if (!process.env.SMOKE) {
  {
    await page.click(".reply-card:nth-child(2) button[aria-label^='4 stars']");
    await page.click(".reply-card:nth-child(1) button.compare");
    await page.click(".reply-card:nth-child(3) button.compare");
    await page.click(".reply-card:nth-child(4) button.write");
    await page.fill(".reply-card:nth-child(4) textarea", "Sure, happy to help. 3 plus 4 is 7.");
    await page.click(".reply-card:nth-child(4) button.primary");
    await waitDone(4);
  }
  const points = await page.evaluate(() => ({ kl: window.playground.charts.points("kl"), acc: window.playground.charts.points("accuracy") }));
  check(points.kl >= 3, `charts have points (${JSON.stringify(points)})`);
  const changed = await page.evaluate(() => {
    const tokens = window.playground.lastReport.samples.flatMap((s) => s.tokens);
    return tokens.length > 0 && tokens.every((t) => Number.isFinite(t.logprob) && Number.isFinite(t.ref_logprob))
      && tokens.some((t) => t.logprob !== t.ref_logprob);
  });
  check(changed, "the policy's log-probs are numbers and differ from the reference's");
  await page.screenshot({ path: `${out}/page-${backend}-trained.png`, fullPage: true });

  // Another method, chosen as a person would, in the Settings panel: DPO learns from the
  // ratings so far directly, with no reward model, and says which ratings it could use.
  if (!gpu) {
    const method = async (m) => {
      await page.selectOption("#settings select[data-path='method']", m);
      await page.click("#apply-settings");
      await page.waitForFunction((m) => window.playground.settings.values.method === m, m, { timeout: 60000 });
    };
    await method("dpo");
    check((await page.textContent(".stage[data-stage='ppo'] .stage-name")) === "DPO", "the third stage is named after the method");
    await page.click(".reply-card:nth-child(2) button[aria-label^='Thumbs down']");
    await waitDone(5);
    const dpo = await page.textContent(".stage[data-stage='ppo'] .stage-info");
    const rm = await page.textContent(".stage[data-stage='reward'] .stage-info");
    console.log(`DPO: ${dpo} | reward model: ${rm}`);
    check(/margin -?\d.* used \d+ of 5 ratings/.test(dpo), `DPO says what it learnt from (${dpo})`);
    check(/skipped: DPO learns from pairs directly/.test(rm), `the reward model is skipped under DPO (${rm})`);
    await page.screenshot({ path: `${out}/page-${backend}-dpo.png`, fullPage: false });
    await method("ppo");

    // Compare methods on the 8 ratings so far: PPO and DPO, each replayed from the base model
    // in the worker, then the table and their answers to the same prompts side by side.
    // Each card takes one thumb: card A's thumbs are used up.
    check(await page.isDisabled(".reply-card:nth-child(1) button[aria-label^='Thumbs down']"), "a card rated with a thumb takes no second thumb");
    for (const [card, up] of [[3, true], [4, false]]) {
      await page.click(`.reply-card:nth-child(${card}) button[aria-label^='Thumbs ${up ? "up" : "down"}']`);
    }
    // "They are equally good" ties the first reply picked with the next one picked (D, not B).
    await page.click(".reply-card:nth-child(1) button.compare");
    await page.click("#compare-tie");
    await page.click(".reply-card:nth-child(4) button.compare");
    await page.waitForFunction(() => /tie with/.test(document.querySelector(".reply-card:nth-child(1) .rated").textContent), null, { timeout: 10000 }).catch(() => {});
    const tied = await page.textContent(".reply-card:nth-child(1) .rated");
    check(/tie with D/.test(tied), `the tie joins the two replies picked (${tied})`);
    await waitDone(8);
    const tc = Date.now();
    await page.click("#cmp-start");
    await page.waitForFunction(() => window.playground.comparison !== null, null, { timeout: 900000 });
    const cmp = await page.evaluate(() => window.playground.comparison);
    console.log(`compare: ${cmp.methods.map((m) => `${m.method} KL ${m.kl.toFixed(2)}, ${Math.round(100 * m.well_formed)}% well-formed`).join("; ")} in ${((Date.now() - tc) / 1000).toFixed(0)} s`);
    check(cmp.ratings === 8 && cmp.methods.map((m) => m.method).join() === "ppo,dpo", `both methods replayed the 8 ratings (${cmp.ratings}: ${cmp.methods.map((m) => m.method)})`);
    check(cmp.prompts.length >= 1 && cmp.methods.every((m) => m.answers.length === cmp.prompts.length && Number.isFinite(m.kl)),
      "each method answers the same prompts, with a KL");
    const rows = await page.$$eval(".cmp-table tr", (els) => els.map((e) => e.textContent));
    const answers = await page.$$eval(".cmp-answers tr", (els) => els.length);
    check(rows.length === 4 && /^PPO/.test(rows[2]) && /^DPO/.test(rows[3]) && answers === 1 + cmp.prompts.length,
      `the panel shows the table and the answers (${rows.length} rows, ${answers} answer rows)`);
    await page.locator(".comparepanel").screenshot({ path: `${out}/page-${backend}-compare.png` });

    // A person who dislikes all four replies is invited to write the one they want.
    check(!(await page.$("#write-hint")), "no invitation to write while some reply is liked");
    await page.click("#generate");
    await page.waitForFunction(() => window.playground.cards.length === 4 && window.playground.cards.every((c) => c.rated.length === 0), null, { timeout: 60000 });
    for (const card of [1, 2, 3, 4]) await page.click(`.reply-card:nth-child(${card}) button[aria-label^='Thumbs down']`);
    await page.waitForSelector("#write-hint", { timeout: 10000 });
    await page.locator("section.replies").screenshot({ path: `${out}/page-${backend}-write-hint.png` });
    await page.click("#write-hint button");
    check(await page.evaluate(() => document.activeElement.tagName === "TEXTAREA"), "after four thumbs down the page invites a written answer, and its button opens the editor");
    // Ratings waiting to train can be cancelled: the one training finishes, the rest go.
    await page.waitForSelector("#cancel-queue:not([hidden])", { timeout: 10000 });
    await page.click("#cancel-queue");
    await page.waitForFunction(() => /cancelled/.test(document.getElementById("notice").textContent), null, { timeout: 10000 });
    // 12 ratings given; the ones that had started training stay (one, or more on a slow page).
    const cancelled = Number((await page.textContent("#notice")).match(/(\d+) waiting/)[1]);
    const kept = 12 - cancelled;
    await waitDone(kept);
    await page.waitForTimeout(500);
    const after = await page.evaluate(() => ({ ratings: window.playground.ratings, status: window.playground.status }));
    check(cancelled >= 1 && after.ratings === kept && after.status.queued === 0 && after.status.ratings === kept && await page.isHidden("#cancel-queue"),
      `cancelling leaves the rating in training and drops the ${cancelled} waiting (${JSON.stringify(after)})`);

    // Undo: the last rating goes, with its point on the charts, and Pip is as it was before it.
    const updatesBefore = await page.evaluate(() => window.playground.charts.x.length);
    check(await page.isEnabled("#undo"), "Undo is offered once an update has finished");
    await page.click("#undo");
    await page.waitForFunction(() => /undone/.test(document.getElementById("notice").textContent), null, { timeout: 10000 });
    const undone = await page.evaluate(() => ({ status: window.playground.status, updates: window.playground.charts.x.length }));
    check(undone.status.ratings === kept - 1 && undone.status.version === after.status.version - 1 && !undone.status.canUndo && undone.updates === updatesBefore - 1
      && await page.isDisabled("#undo"), `Undo takes back the last rating and its point on the charts (${JSON.stringify(undone)})`);

    // Every learning rate at its largest allowed value wrecks Pip in one update ("with with
    // with ..."): the update is rolled back, the page says so, and Pip is as it was.
    for (const path of ["sft.lr", "ppo.lr", "reward.lr"]) await page.fill(`#settings input[data-path='${path}']`, "0.1");
    await page.click("#apply-settings");
    await page.waitForFunction(() => window.playground.settings.values["ppo.lr"] === 0.1, null, { timeout: 60000 });
    await page.click(".reply-card:nth-child(1) button[aria-label^='5 stars']");
    await waitDone(kept);
    const broken = await page.evaluate(() => ({
      notice: document.getElementById("notice").textContent, why: window.playground.lastReport.rolled_back,
      version: window.playground.status.version,
    }));
    check(/broke Pip, so its update was undone/.test(broken.notice) && /ordinary sentences/.test(broken.why) && broken.version === undone.status.version,
      `an update that breaks Pip is rolled back and the page says why (${JSON.stringify(broken)})`);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: `${out}/page-${backend}-rolled-back.png`, fullPage: false });
    for (const [path, v] of [["sft.lr", "0.0002"], ["ppo.lr", "0.0002"], ["reward.lr", "0.001"]]) await page.fill(`#settings input[data-path='${path}']`, v);
    await page.click("#apply-settings");
    await page.waitForFunction(() => window.playground.settings.values["ppo.lr"] === 2e-4, null, { timeout: 60000 });
  }

  // Autopilot, the classroom mode: from the base model again, the polite rater gives thumbs
  // for 6 rounds (24 ratings); the thumbs-up rate the page charts (the rater's verdict on each
  // update's 16 fresh PPO replies) must rise. Each point is a share of 16 replies, so the
  // check compares means of 4 points; 16 ratings were too few for the base model with the
  // careful persona to rise reliably (39% -> 45% in one run, 39% -> 61% at 20 in another).
  if (!gpu && !process.env.SKIP_AUTOPILOT) {
    await page.click("#reset");
    await page.waitForFunction(() => window.playground.charts.points("kl") === 0, null, { timeout: 60000 });
    await page.selectOption("#auto-rater", "polite");
    await page.selectOption("#auto-kind", "thumbs");
    await page.$eval("#auto-speed", (el) => { el.value = "0"; el.dispatchEvent(new Event("input")); });
    const ta = Date.now();
    await page.click("#auto-start");
    await page.waitForFunction(() => window.playground.ratings >= 24, null, { timeout: 600000 });
    await page.click("#auto-stop");
    await page.waitForFunction(() => window.playground.autopilot === null, null, { timeout: 300000 });
    await waitDone(24);
    const rates = await page.evaluate(() => window.playground.charts.data.rater[0]);
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(rates.slice(0, 4));
    const last = mean(rates.slice(-4));
    console.log(`autopilot: ${rates.length} updates in ${((Date.now() - ta) / 1000).toFixed(0)} s; ` +
      `rater's thumbs-up rate ${rates.map((r) => Math.round(100 * r)).join(" ")} %`);
    check(rates.length >= 24, `the rater chart has a point per update (${rates.length})`);
    check(last >= first + 0.15, `autopilot raises the polite rate the page shows (first 4 updates ${Math.round(100 * first)}%, last 4 ${Math.round(100 * last)}%)`);
    // The cards show what the rater gave: a thumb on each of the last round's four replies.
    const gave = await page.$$eval(".reply-card .rated", (els) => els.map((e) => e.textContent));
    check(gave.length === 4 && gave.every((t) => /^The rater gave: (👍|👎)$/u.test(t)),
      `each card shows the rater's thumb (${JSON.stringify(gave)})`);
    await page.screenshot({ path: `${out}/page-${backend}-autopilot.png`, fullPage: true });
  }
  // Recovery when the engine traps (e.g. the GPU device is lost): the worker reports it, the
  // page says so and offers a restart on the CPU, after which replies come back.
  if (!gpu) {
    await page.workers()[0].evaluate(() => self.postMessage({ type: "crashed", error: "RuntimeError: simulated trap" }));
    await page.waitForSelector("#notice:not([hidden]) button", { timeout: 10000 });
    const said = await page.textContent("#notice");
    check(/engine stopped/.test(said) && (await page.isDisabled("#generate")), "a trapped engine is reported and the controls wait");
    await page.click("#notice button");
    await page.waitForFunction(() => window.playground.ready && document.querySelectorAll(".reply-card").length === 4, null, { timeout: slow });
    check(await page.evaluate(() => window.playground.charts.points("kl") === 0 && window.playground.backend === "cpu"), "Restart brings a fresh engine on the CPU");
  }

  // Keyboard only: type a prompt and press Enter, Tab to a thumbs-up button, press Enter.
  if (!gpu) {
    await page.focus("#prompt");
    await page.keyboard.press("Control+A");
    await page.keyboard.type("what colour is the sky?");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => window.playground.prompt === "what colour is the sky?" && document.querySelectorAll(".reply-card").length === 4, null, { timeout: slow });
    let reached = false;
    for (let i = 0; i < 60 && !reached; i++) {
      await page.keyboard.press("Tab");
      reached = await page.evaluate(() => (document.activeElement.getAttribute("aria-label") || "").startsWith("Thumbs up"));
    }
    check(reached, "Tab reaches a thumbs-up button");
    if (reached) {
      await page.keyboard.press("Enter");
      await waitDone(1);
      check(await page.evaluate(() => window.playground.status.version >= 1), "Enter on it rates and trains");
    }
  }
    // Bad prompts: empty is refused with a message; one longer than the model reads is answered
    // from its end, and the page says so.
    await page.fill("#prompt", "   ");
    await page.click("#generate");
    check(/Type a question/.test(await page.textContent("#notice")), "an empty prompt gets a message");
    await page.fill("#prompt", "please tell me about the sky and the sea and the stars ".repeat(20) + "what is 3 plus 4?");
    await page.click("#generate");
    await page.waitForFunction(() => /longer than Pip can read/.test(document.getElementById("notice").textContent), null, { timeout: slow });
    check(await page.evaluate(() => document.querySelectorAll(".reply-card").length === 4), "a long prompt is answered from its end, with a note");
}
check(errors.length === 0, `no console errors (${errors.join(" | ")})`);
check(foreign.length === 0, `no request leaves 127.0.0.1 (${foreign.join(" ")})`);
await browser.close();
if (failures.length) { console.error(`${failures.length} check(s) failed`); process.exit(1); }
console.log("all page checks passed");
