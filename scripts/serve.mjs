// Serves the page on http://127.0.0.1:8080 (PORT to change): www/ at the root and the
// wasm-bindgen output at /pkg/. Only files under those two folders are served, with the right
// MIME types (application/wasm for the engine). No threads are used, so no COOP/COEP headers.
import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const www = join(root, "www");
const pkg = join(root, "pkg");
const port = Number(process.env.PORT || 8080);
const types = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8", ".wasm": "application/wasm",
  ".bpk": "application/octet-stream", ".svg": "image/svg+xml", ".png": "image/png",
};

createServer(async (req, res) => {
  try {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const [base, rest] = path.startsWith("/pkg/") ? [pkg, path.slice(5)] : [www, path.slice(1)];
    let file = normalize(join(base, rest || "index.html"));
    if (!file.startsWith(base)) throw Object.assign(new Error("outside"), { code: 403 });
    if ((await stat(file)).isDirectory()) file = join(file, "index.html");
    const body = await readFile(file);
    res.writeHead(200, {
      "content-type": types[extname(file)] || "application/octet-stream",
      "content-length": body.length,
      "cache-control": "no-cache",
    });
    res.end(body);
  } catch (err) {
    const code = err.code === 403 ? 403 : 404;
    res.writeHead(code, { "content-type": "text/plain; charset=utf-8" });
    res.end(code === 403 ? "forbidden" : "not found");
  }
}).listen(port, "127.0.0.1", () => {
  console.log(`RLHF Playground: open http://127.0.0.1:${port}/ (Ctrl-C to stop)`);
});
