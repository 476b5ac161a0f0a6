// Debian's headless Chromium for the page's tests, benchmark and screenshot, driven by
// playwright-core (which never downloads a browser of its own): a fresh profile each time,
// no background traffic, and WebGPU enabled (SwiftShader when there is no GPU).
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function launchChromium() {
  return chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "rlhf-chromium-")), {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1366, height: 768 },
    args: ["--headless", "--no-sandbox", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--enable-unsafe-webgpu"],
  });
}
