// The page's own benchmark, in Debian's headless Chromium (playwright-core): the wasm module's
// size, the time from opening the page to the first replies, and full RLHF updates timed the
// way `rlhf-playground bench` times them natively (default settings, after 20 ratings from
// the polite rater, the first a demonstration; the median of the next 5 updates). Prints one
// JSON object; with --native it also runs the native benchmark and gives the ratio.
// Usage: scripts/build_web.sh && node scripts/bench_page.mjs [cpu|webgpu] [--native]
//        [--set PATH=VALUE ...]  (a setting from the page's Settings panel, e.g. reward.steps=6
//        or method=dpo; passed to the native benchmark too)
import { launchChromium } from "./chromium.mjs";
import { spawn, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const backend = process.argv.includes("webgpu") ? "webgpu" : "cpu";
const history = 20;
const timed = 5;
const sets = process.argv.flatMap((a, i) => (process.argv[i - 1] === "--set" ? [a] : []));

const wasm = readFileSync(join(root, "pkg/rlhf_playground_bg.wasm"));
const port = 20000 + Math.floor(Math.random() * 20000);
const server = spawn("node", [join(root, "scripts/serve.mjs")], { env: { ...process.env, PORT: String(port) }, stdio: "ignore" });
await new Promise((r) => setTimeout(r, 700));

const browser = await launchChromium();
try {
  const page = browser.pages()[0] || await browser.newPage();
  const t0 = Date.now();
  await page.goto(`http://127.0.0.1:${port}/?backend=${backend}`);
  await page.waitForFunction(() => window.playground && window.playground.ready, null, { timeout: 600000 });
  const ready = (Date.now() - t0) / 1000;
  await page.waitForFunction(() => document.querySelectorAll(".reply-card").length === 4, null, { timeout: 600000 });
  const firstReply = (Date.now() - t0) / 1000;

  // Settings under "More" are in closed <details>: open them so that every input can be filled.
  await page.$$eval("#settings details", (els) => els.forEach((d) => { d.open = true; }));
  for (const kv of sets) {
    const [path, value] = kv.split("=");
    // A choice (the method) is a <select>; numbers and switches are inputs.
    if (await page.$(`#settings select[data-path='${path}']`)) await page.selectOption(`#settings select[data-path='${path}']`, value);
    else await page.fill(`#settings input[data-path='${path}']`, value);
  }
  if (sets.length) {
    await page.click("#apply-settings");
    await page.waitForTimeout(500);
  }
  const config = await page.evaluate(() => window.playground.settings.values);

  // History: one demonstration, then the polite rater's thumbs (autopilot, no pause).
  await page.click(".reply-card:nth-child(1) button.write");
  await page.fill(".reply-card:nth-child(1) textarea", "Sure, happy to help. 3 plus 4 is 7.");
  await page.click(".reply-card:nth-child(1) button.primary");
  await page.waitForFunction(() => window.playground.timings.length >= 1, null, { timeout: 600000 });
  await page.selectOption("#auto-rater", "polite");
  await page.selectOption("#auto-kind", "thumbs");
  await page.$eval("#auto-speed", (el) => { el.value = "0"; el.dispatchEvent(new Event("input")); });
  await page.click("#auto-start");
  await page.waitForFunction((n) => window.playground.timings.length >= n, history + timed, { timeout: 1800000 });
  await page.click("#auto-stop");
  const timings = await page.evaluate(() => window.playground.timings);
  const rows = timings.filter((t) => t.ratings > history).slice(0, timed);
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const col = (f) => Math.round(median(rows.map(f)));
  const out = {
    backend,
    settings: sets,
    browser: await page.evaluate(() => navigator.userAgent.match(/Chrome\/[\d.]+/)[0]),
    wasm_bytes: wasm.length,
    wasm_gzip_bytes: gzipSync(wasm, { level: 9 }).length,
    ready_s: ready,
    first_reply_s: firstReply,
    update: {
      after_ratings: history, updates: rows.length,
      total_ms: col((t) => t.millis), sft_ms: col((t) => t.stages.sft || 0),
      reward_ms: col((t) => t.stages.reward || 0), ppo_ms: col((t) => t.stages.ppo || 0),
      // The fresh samples and per-token log-probs after PPO, and the worker's messaging.
      other_ms: col((t) => t.millis - (t.stages.sft || 0) - (t.stages.reward || 0) - (t.stages.ppo || 0)),
    },
  };
  if (process.argv.includes("--native")) {
    const bin = join(root, "target/release/rlhf-playground");
    const native = JSON.parse(execFileSync(bin, ["bench", "--steps", "1", "--updates", String(timed), "--json", ...sets.flatMap((kv) => ["--set", kv])]).toString());
    out.native_update_ms = Math.round(native.update.total_ms);
    out.browser_native_ratio = Number((out.update.total_ms / native.update.total_ms).toFixed(2));
  }
  out.config = config;
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
  server.kill();
}
