#!/usr/bin/env bash
# The demo: builds the command-line tool and shows the committed base model answering.
# (The in-browser page comes with a later milestone.) Usage: scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "==> cargo build --release (the first build takes several minutes on 2 cores)"
cargo build --release

bin=target/release/rlhf-playground
for prompt in "what is 2 plus 2?" "will it rain in Oslo tomorrow?" "tell me a joke about a cat" "how can I sleep better?"; do
  echo
  echo "==> $bin generate --prompt \"$prompt\" -n 4"
  "$bin" generate --prompt "$prompt" -n 4
done
echo
echo "Try your own: $bin generate --prompt \"what colour is the sky?\" -n 4   (see $bin --help)"
