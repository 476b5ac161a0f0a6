#!/usr/bin/env bash
# All the tests: formatting, native unit and integration tests, and the wasm32 build.
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
