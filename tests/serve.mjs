// Tests of scripts/serve.mjs: what it serves and what it refuses (other methods, traversal,
// encoded slashes and dots, dotfiles, symlinks out of the folder, a sibling folder sharing the
// prefix), its headers, and that the page's <meta> policy is the header's.
// Usage: node tests/serve.mjs
import { createServer, request } from "node:http";
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CSP, handler } from "../scripts/serve.mjs";

const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); console.log(`${ok ? "ok  " : "FAIL"} ${what}`); };

// A tree to serve: site/ (the root), site/pkg/ mounted at /pkg/, and what must stay unreachable
// beside them: a secret file, a sibling folder whose name starts like the root's, a dotfile and
// a symlink that points out.
const dir = mkdtempSync(join(tmpdir(), "serve-test-"));
mkdirSync(join(dir, "site", "sub"), { recursive: true });
mkdirSync(join(dir, "pkg"));
mkdirSync(join(dir, "site-private"));
writeFileSync(join(dir, "site", "index.html"), "<p>home</p>");
writeFileSync(join(dir, "site", "sub", "index.html"), "<p>sub</p>");
writeFileSync(join(dir, "site", "app.js"), "export {};");
writeFileSync(join(dir, "site", ".env"), "SECRET=1");
writeFileSync(join(dir, "pkg", "engine.wasm"), Buffer.from([0, 97, 115, 109]));
writeFileSync(join(dir, "secret.txt"), "secret");
writeFileSync(join(dir, "site-private", "x.txt"), "private");
symlinkSync(join(dir, "secret.txt"), join(dir, "site", "link.txt"));

const server = createServer(handler([["/pkg/", join(dir, "pkg")], ["/", join(dir, "site")]]));
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}`;

// fetch() would normalise `..` and `%2e%2e` before sending, so raw requests go out as written.
function raw(method, path) {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: server.address().port, method, path }, (res) => {
      let body = "";
      res.on("data", (d) => { body += d; });
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}
const home = await raw("GET", "/");
check(home.status === 200 && home.body === "<p>home</p>", "GET / serves index.html");
check(home.headers["x-content-type-options"] === "nosniff", "nosniff is sent");
check(home.headers["content-security-policy"] === CSP, "the Content-Security-Policy is sent");
check(home.headers["content-type"] === "text/html; charset=utf-8", "HTML as HTML");
check((await raw("GET", "/sub/")).body === "<p>sub</p>", "a folder serves its index.html");
check((await raw("GET", "/pkg/engine.wasm")).headers["content-type"] === "application/wasm", "wasm as application/wasm");
const head = await raw("HEAD", "/app.js");
check(head.status === 200 && head.body === "" && head.headers["content-length"] === "10", "HEAD: headers, no body");
for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
  const r = await raw(method, "/");
  check(r.status === 405 && r.headers.allow === "GET, HEAD", `${method} is refused (405, Allow: GET, HEAD)`);
}
for (const path of [
  "/../secret.txt", "/..%2fsecret.txt", "/%2e%2e/secret.txt", "/%2e%2e%2fsecret.txt", "/sub/..%2f..%2fsecret.txt",
  "/pkg/..%2f..%2fsecret.txt", "/pkg%2f..%2f..%2fsecret.txt", "/..%5csecret.txt", "/../site-private/x.txt",
  "/%2e%2e%2fsite-private%2fx.txt", "/.env", "/%2eenv", "/link.txt", "/nothing-here", "/%00", "/%E0%A4%A",
]) {
  const r = await raw("GET", path);
  check(r.status >= 400 && !/secret|private|SECRET/.test(r.body), `GET ${path} is refused (${r.status})`);
}

// The page's own <meta> policy is the header's, less frame-ancestors (which a <meta> cannot set).
const index = readFileSync(new URL("../www/index.html", import.meta.url), "utf8");
const meta = index.match(/http-equiv="Content-Security-Policy" content="([^"]*)"/);
const expected = CSP.split("; ").filter((d) => !d.startsWith("frame-ancestors")).join("; ");
check(meta && meta[1] === expected, "www/index.html's <meta> policy matches the header's");

server.close();
if (failures.length) { console.error(`${failures.length} check(s) failed`); process.exit(1); }
console.log("all server checks passed");
