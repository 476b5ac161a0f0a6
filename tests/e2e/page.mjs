// End-to-end check of the page in Debian's headless Chromium (driven by playwright-core):
// opens the page, waits for the model, generates, gives each kind of feedback, and checks
// that every stage reports, the policy changed, charts have points, the console stayed clean
// and no request left 127.0.0.1. Screenshots go to tests/artifacts/.
// Usage: node tests/e2e/page.mjs [cpu|webgpu]   (the page must be served on 127.0.0.1:8080)
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const backend = process.argv[2] || "cpu";
const url = process.env.PAGE_URL || "http://127.0.0.1:8080/";
const out = new URL("../artifacts/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });

const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); console.log(`${ok ? "ok  " : "FAIL"} ${what}`); };

const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "rlhf-chrome-")), {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1366, height: 768 },
  args: ["--headless", "--no-sandbox", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--enable-unsafe-webgpu"],
});
const page = browser.pages()[0] || await browser.newPage();
const errors = [];
const foreign = [];
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
page.on("pageerror", (e) => errors.push(String(e)));
page.on("request", (r) => { const u = new URL(r.url()); if (!["127.0.0.1", ""].includes(u.hostname) && u.protocol !== "data:") foreign.push(r.url()); });
page.on("worker", (w) => w.on("console", (m) => { if (m.type() === "error") errors.push(`worker: ${m.text()}`); }));

const t0 = Date.now();
await page.goto(`${url}?backend=${backend}`);
await page.waitForFunction(() => window.playground && window.playground.ready, null, { timeout: 120000 });
await page.waitForFunction(() => document.querySelectorAll(".reply-card").length === 4, null, { timeout: 120000 });
const firstReply = (Date.now() - t0) / 1000;
console.log(`first replies after ${firstReply.toFixed(1)} s on ${await page.textContent("#backend")}`);
check(firstReply < 120, "replies appear");
await page.screenshot({ path: `${out}/page-${backend}-start.png`, fullPage: false });

const done = () => page.evaluate(() => window.playground.status && window.playground.status.queued === 0 && !window.playground.status.updating);
async function waitDone(ratings) {
  await page.waitForFunction((n) => window.playground.ratings >= n && window.playground.status.queued === 0 && !window.playground.status.updating, ratings, { timeout: 300000 });
}
// Thumbs up on reply A, then stars, a pair and a demonstration.
await page.click(".reply-card:nth-child(1) button[aria-label^='Thumbs up']");
await waitDone(1);
const stages = await page.$$eval(".stage", (els) => els.map((e) => [e.dataset.stage, e.className, e.querySelector(".stage-info").textContent]));
console.log(stages);
check(stages.every(([, cls]) => /done|skipped/.test(cls)), "every stage reports after a thumbs up");
check(stages.find(([s]) => s === "ppo")[1].includes("done"), "PPO ran");
await page.click(".reply-card:nth-child(2) button[aria-label^='4 stars']");
await page.click(".reply-card:nth-child(1) button.compare");
await page.click(".reply-card:nth-child(3) button.compare");
await page.click(".reply-card:nth-child(4) button.write");
await page.fill(".reply-card:nth-child(4) textarea", "Sure, happy to help. 3 plus 4 is 7.");
await page.click(".reply-card:nth-child(4) button.primary");
await waitDone(4);
const points = await page.evaluate(() => ({ kl: window.playground.charts.points("kl"), acc: window.playground.charts.points("accuracy") }));
check(points.kl >= 3, `charts have points (${JSON.stringify(points)})`);
const changed = await page.evaluate(() => window.playground.lastReport.samples.some((s) => s.tokens.some((t) => t.logprob !== t.ref_logprob)));
check(changed, "the policy's log-probs differ from the reference's");
await page.screenshot({ path: `${out}/page-${backend}-trained.png`, fullPage: true });
check(errors.length === 0, `no console errors (${errors.join(" | ")})`);
check(foreign.length === 0, `no request leaves 127.0.0.1 (${foreign.join(" ")})`);
await browser.close();
if (failures.length) { console.error(`${failures.length} check(s) failed`); process.exit(1); }
console.log("all page checks passed");
