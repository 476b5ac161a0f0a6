#!/usr/bin/env bash
# Installs what building and testing the project needs, on a fresh machine.
# Safe to run again: every step checks first. Sourced by demo.sh and test.sh.
set -euo pipefail

need_cmd() { command -v "$1" >/dev/null 2>&1; }

if ! need_cmd cargo; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "error: Rust (cargo) is not installed. Install it with rustup (https://rustup.rs), then rerun." >&2
    exit 1
  fi
fi

# The browser build of the engine.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "==> rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# rustfmt for the format check.
if ! cargo fmt --version >/dev/null 2>&1; then
  echo "==> rustup component add rustfmt"
  rustup component add rustfmt
fi

# Debian's Chromium and ChromeDriver for the page's tests (playwright-core and
# wasm-bindgen-test-runner drive them; neither downloads a browser of its own).
if [ "${SKIP_BROWSER:-0}" != 1 ] && ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
  echo "==> apt-get install chromium chromium-driver (for the page's tests)"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium chromium-driver fonts-noto-color-emoji
fi
