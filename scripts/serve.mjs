// Serves the page on http://127.0.0.1:8080 (PORT to change): www/ at the root and the
// wasm-bindgen output at /pkg/, or with --dist the static build dist/ (scripts/build_web.sh).
// GET and HEAD only; nothing outside those folders (no `..`, no dotfiles, no symlink that leads
// out), with the right MIME types (application/wasm for the engine), `nosniff` and the page's
// Content-Security-Policy. No threads are used, so no COOP/COEP headers.
// Usage: node scripts/serve.mjs [--dist [--plain]]
//   --plain  send no security headers, as a bare static host would: the policy then comes from
//            the page's own <meta> tag (how tests check that dist/ works anywhere).
import { createServer } from "node:http";
import { readFile, realpath, stat } from "node:fs/promises";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/// The page's Content-Security-Policy: its own origin only, WebAssembly allowed to compile, no
/// plugins, no framing. www/index.html carries the same policy as a <meta> tag, less
/// `frame-ancestors`, which a <meta> tag cannot set (tests/serve.mjs checks that they agree).
export const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; object-src 'none'; " +
  "base-uri 'self'; form-action 'none'; frame-ancestors 'none'";

const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8", ".wasm": "application/wasm",
  ".bpk": "application/octet-stream", ".svg": "image/svg+xml", ".png": "image/png",
};

/// Whether `file` is `root` or lies below it (a separator after the prefix: `/a/www-x` is not
/// inside `/a/www`).
function inside(root, file) {
  return file === root || file.startsWith(root.endsWith(sep) ? root : root + sep);
}

class Refusal extends Error {
  constructor(code, text) { super(text); this.code = code; }
}

/// The file a URL path names under `mounts` ([[prefix, folder]], the longest prefix first), or
/// a Refusal.
async function locate(mounts, path) {
  if (path.includes("\0")) throw new Refusal(400, "bad request");
  // Dotfiles and dot segments (`.git`, `..`, also arriving encoded) are never served.
  if (path.split("/").some((s) => s.startsWith("."))) throw new Refusal(404, "not found");
  const mount = mounts.find(([prefix]) => path.startsWith(prefix));
  if (!mount) throw new Refusal(404, "not found");
  const root = resolve(mount[1]);
  let file = normalize(join(root, path.slice(mount[0].length)));
  if (!inside(root, file)) throw new Refusal(403, "forbidden");
  try {
    if ((await stat(file)).isDirectory()) file = join(file, "index.html");
    // A symlink may point anywhere: what it resolves to must be inside too.
    if (!inside(await realpath(root), await realpath(file))) throw new Refusal(403, "forbidden");
  } catch (err) {
    throw err instanceof Refusal ? err : new Refusal(404, "not found");
  }
  return file;
}

/// A request handler for `mounts`; `headers: false` leaves out the security headers.
export function handler(mounts, { headers = true } = {}) {
  const security = headers
    ? { "x-content-type-options": "nosniff", "content-security-policy": CSP, "referrer-policy": "no-referrer" }
    : {};
  return async (req, res) => {
    try {
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8", ...security });
        res.end("method not allowed");
        return;
      }
      let path;
      try {
        path = decodeURIComponent(new URL(req.url, "http://x").pathname);
      } catch {
        throw new Refusal(400, "bad request");
      }
      const file = await locate(mounts, path);
      const body = await readFile(file);
      res.writeHead(200, {
        "content-type": TYPES[extname(file)] || "application/octet-stream",
        "content-length": body.length,
        "cache-control": "no-cache",
        ...security,
      });
      res.end(req.method === "HEAD" ? undefined : body);
    } catch (err) {
      const code = err instanceof Refusal ? err.code : 404;
      res.writeHead(code, { "content-type": "text/plain; charset=utf-8", ...security });
      res.end(err instanceof Refusal ? err.message : "not found");
    }
  };
}

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));

/// What `scripts/serve.mjs` serves: www/ and pkg/, or dist/.
export function mounts(dist) {
  return dist ? [["/", join(root, "dist")]] : [["/pkg/", join(root, "pkg")], ["/", join(root, "www")]];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dist = process.argv.includes("--dist");
  const plain = process.argv.includes("--plain");
  const port = Number(process.env.PORT || 8080);
  createServer(handler(mounts(dist), { headers: !plain })).listen(port, "127.0.0.1", () => {
    console.log(`RLHF Playground: open http://127.0.0.1:${port}/ (Ctrl-C to stop)`);
  });
}
