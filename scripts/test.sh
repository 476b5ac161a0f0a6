#!/usr/bin/env bash
# All the tests: formatting, native unit and integration tests, the wasm32 build, and the page
# end to end in headless Chromium.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check

# One optimised profile serves tests, benchmarks and the CLI (see Cargo.toml).
echo "==> cargo test --release"
cargo test --release

echo "==> cargo bench --no-run (the benchmarks compile)"
cargo bench --no-run

echo "==> cargo build --release --lib --target wasm32-unknown-unknown"
cargo build --release --lib --target wasm32-unknown-unknown
echo "wasm32 build: ok"

# The page, end to end: the tests' wasm32 build above (no fat LTO, no wasm-opt: this checks the
# engine and the page, not the optimiser), served on 127.0.0.1, driven in headless Chromium.
PROFILE=release WASM_OPT=none bash scripts/build_web.sh
# The page's server (Node is installed by now): what it serves, what it refuses, its headers.
echo "==> node tests/serve.mjs"
node tests/serve.mjs
port=$((20000 + RANDOM % 20000))
PORT=$port node scripts/serve.mjs >/dev/null &
server=$!
trap 'kill $server 2>/dev/null' EXIT
sleep 1
echo "==> node tests/e2e/page.mjs cpu"
PAGE_URL="http://127.0.0.1:$port/" node tests/e2e/page.mjs cpu
# The same page on WebGPU. Headless Chromium's adapter is SwiftShader (software), so the real
# model takes minutes: 1.5-3 minutes to the first replies and 4-8 in all on this 2-core
# machine, with a lighter update set through the Settings panel.
echo "==> node tests/e2e/page.mjs webgpu"
PAGE_URL="http://127.0.0.1:$port/" node tests/e2e/page.mjs webgpu

# The static build, dist/, served as a bare static host would (no headers: the policy comes
# from the page's <meta> tag): it loads, trains and keeps the console clean.
dist_port=$((port + 1))
PORT=$dist_port node scripts/serve.mjs --dist --plain >/dev/null &
dist_server=$!
trap 'kill $server $dist_server 2>/dev/null' EXIT
sleep 1
echo "==> SMOKE=1 node tests/e2e/page.mjs cpu (dist/)"
SMOKE=1 PAGE_URL="http://127.0.0.1:$dist_port/" node tests/e2e/page.mjs cpu

# The wasm API itself (tests/web.rs) in headless Chromium, on flex and on WebGPU (SwiftShader):
# wasm-bindgen-test-runner (installed with wasm-bindgen-cli above) serves the test module and
# drives Chromium through Debian's chromedriver; tests/webdriver.json holds the browser flags.
echo "==> cargo test --release --target wasm32-unknown-unknown --test web"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/tests/webdriver.json" \
  WASM_BINDGEN_TEST_TIMEOUT=900 \
  cargo test --release --target wasm32-unknown-unknown --test web
