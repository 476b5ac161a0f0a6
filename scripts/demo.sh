#!/usr/bin/env bash
# The demo: builds the page (the engine compiled to WebAssembly) and serves it on
# http://127.0.0.1:8080 (PORT to change). Open that address in a browser; Ctrl-C stops it.
# Usage: scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export SKIP_BROWSER=1   # the page opens in your own browser; Chromium is only for the tests
source scripts/setup.sh
bash scripts/build_web.sh
echo
echo "The command-line tool: cargo build --release, then target/release/rlhf-playground --help"
exec node scripts/serve.mjs
