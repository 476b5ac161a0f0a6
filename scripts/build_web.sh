#!/usr/bin/env bash
# Builds the page's engine: the wasm module (wasm-bindgen into pkg/, wasm-opt from npm's
# binaryen) and the chart library into www/vendor/, then the static build dist/. Installs what
# it needs on the way.
# Usage: scripts/build_web.sh
#   PROFILE=release  reuse the tests' wasm32 build (no fat LTO: quicker to build, larger)
#   WASM_OPT=-O2     binaryen's optimisation level (default -O1; "none" skips wasm-opt)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

profile="${PROFILE:-wasm}"
wasm_opt="${WASM_OPT:--O1}"

# wasm-bindgen's CLI must be exactly the version of the wasm-bindgen crate in Cargo.lock.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
  echo "==> cargo install wasm-bindgen-cli --version $want (about 2 minutes, once)"
  cargo install wasm-bindgen-cli --version "$want"
fi

# Node tools: uPlot (charts), binaryen (wasm-opt), playwright-core (tests), pinned in
# package-lock.json.
if ! command -v npm >/dev/null 2>&1; then
  echo "==> apt-get install nodejs npm"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq nodejs npm
fi
if [ ! -x node_modules/.bin/wasm-opt ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund
fi

echo "==> cargo build --profile $profile --lib --target wasm32-unknown-unknown"
cargo build --profile "$profile" --lib --target wasm32-unknown-unknown
wasm="target/wasm32-unknown-unknown/$profile/rlhf_playground.wasm"

echo "==> wasm-bindgen --target web --out-dir pkg"
wasm-bindgen --target web --out-dir pkg --no-typescript "$wasm"

# Debian's wasm-opt 108 emits a module that fails to load; npm's binaryen is current. The
# wasm features (SIMD128, bulk memory, ...) are read from the module's target_features
# section; --all-features would also enable ones Chromium rejects (compact imports).
if [ "$wasm_opt" != none ]; then
  echo "==> wasm-opt $wasm_opt (binaryen $(node_modules/.bin/wasm-opt --version | awk '{print $3}'))"
  node_modules/.bin/wasm-opt "$wasm_opt" pkg/rlhf_playground_bg.wasm -o pkg/rlhf_playground_bg.opt.wasm
  mv pkg/rlhf_playground_bg.opt.wasm pkg/rlhf_playground_bg.wasm
fi

mkdir -p www/vendor
cp node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css www/vendor/

# dist/: the page as one folder that any static host can serve as it is (www/, with the engine
# in dist/pkg/); where the host sends no headers, the page's <meta> tag carries its policy.
rm -rf dist && mkdir dist && cp -r www/. dist/ && cp -r pkg dist/pkg
raw=$(stat -c %s pkg/rlhf_playground_bg.wasm)
gz=$(gzip -9 -c pkg/rlhf_playground_bg.wasm | wc -c)
echo "page built: pkg/rlhf_playground_bg.wasm $((raw / 1024)) KB ($((gz / 1024)) KB gzipped)"
