// Takes the README's screenshots: docs/page.png, the page at 1366x768 in Debian's headless
// Chromium after a few ratings; and, with `compare`, docs/compare.png, the Compare panel after
// the autopilot's polite-and-calm rater gave 8 thumbs and PPO, DPO and GRPO replayed them. Serve
// the page first (scripts/demo.sh, or node scripts/serve.mjs after scripts/build_web.sh).
// Usage: node scripts/screenshot.mjs [compare]
import { launchChromium } from "./chromium.mjs";

const url = process.env.PAGE_URL || "http://127.0.0.1:8080/";
const browser = await launchChromium();
const page = browser.pages()[0] || await browser.newPage();
await page.goto(`${url}?backend=cpu`);
await page.waitForFunction(() => document.querySelectorAll(".reply-card").length === 4, null, { timeout: 120000 });
const rate = async (n) => {
  await page.waitForFunction((k) => window.playground.ratings >= k && window.playground.status &&
    window.playground.status.queued === 0 && !window.playground.status.updating, n, { timeout: 300000 });
};
const cards = await page.$$eval(".reply-card .reply-text", (els) => els.map((e) => e.textContent));
// A person who likes politeness: thumbs up for polite replies and down for the others on
// replies A-C, and a better answer written for reply D (so SFT has something to practise).
const polite = /^(Sure, happy to help|What a lovely question|Thank you for asking|Of course)|(Hope that helps|Have a wonderful day|Thanks for chatting with me)[.!]/;
for (let i = 0; i < 3; i++) {
  const up = polite.test(cards[i]);
  await page.click(`.reply-card:nth-child(${i + 1}) button[aria-label^='Thumbs ${up ? "up" : "down"}']`);
}
await page.click(".reply-card:nth-child(4) button.write");
await page.fill(".reply-card:nth-child(4) textarea", "Sure, happy to help. 3 plus 4 is 7. Have a wonderful day!");
await page.click(".reply-card:nth-child(4) button.primary");
await rate(4);
await page.click("#ba-go");
await page.waitForFunction(() => document.getElementById("ba-after").textContent !== "—", null, { timeout: 60000 });
await page.evaluate(() => document.getElementById("replies-h").scrollIntoView());
await page.screenshot({ path: new URL("../docs/page.png", import.meta.url).pathname });
console.log("wrote docs/page.png");

if (process.argv.includes("compare")) {
  // From the base model: the autopilot rates two rounds (8 thumbs), then three methods replay them.
  await page.click("#reset");
  await page.waitForFunction(() => window.playground.ratings === 0, null, { timeout: 60000 });
  await page.selectOption("#auto-rater", "polite+!cheerful");
  await page.selectOption("#auto-kind", "thumbs");
  await page.$eval("#auto-speed", (el) => { el.value = "0"; el.dispatchEvent(new Event("input")); });
  await page.click("#auto-start");
  // The fifth update means the second round is under way; Stop ends the run after it.
  await page.waitForFunction(() => window.playground.ratings >= 5, null, { timeout: 600000 });
  await page.click("#auto-stop");
  await page.waitForFunction(() => window.playground.autopilot === null, null, { timeout: 600000 });
  await rate(8);
  for (const m of ["kto", "grpo"]) await page.check(`#cmp-methods input[value='${m}']`);
  await page.click("#cmp-start");
  await page.waitForFunction(() => window.playground.comparison !== null, null, { timeout: 1200000 });
  await page.locator(".comparepanel").screenshot({ path: new URL("../docs/compare.png", import.meta.url).pathname });
  console.log("wrote docs/compare.png");
}
await browser.close();
