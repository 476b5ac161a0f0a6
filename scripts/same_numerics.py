#!/usr/bin/env python3
"""Checks that two runs computed the same numbers: `simulate --json` or `bench --json` outputs
before and after a change that must not change the engine's numerics (a refactor).

Timing fields are left out (they differ on every run); every other value must be equal, and
numbers are compared as numbers (16 equals 16.0). Prints a hash of each file's timing-free
content, and the first differences.

Usage: scripts/same_numerics.py BEFORE.json AFTER.json
  e.g. target/release/rlhf-playground simulate --rater polite --ratings 12 --seed 1 --json > after.json
"""
import hashlib
import json
import sys

TIMING = {"seconds", "millis", "stage_millis", "ms", "train_step_ms", "train_tokens_per_s",
          "train_gflops", "gen_tokens_per_s_cache", "gen_tokens_per_s_no_cache", "total_ms",
          "sft_ms", "reward_ms", "ppo_rollout_ms", "ppo_train_ms", "samples_ms"}


def canonical(v):
    """`v` without its timing fields, every number a float."""
    if isinstance(v, dict):
        return {k: canonical(x) for k, x in v.items() if k not in TIMING}
    if isinstance(v, list):
        return [canonical(x) for x in v]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return v


def differences(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'the first' if k in a else 'the second'}")
            else:
                out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = [] if len(a) == len(b) else [f"{path}: {len(a)} against {len(b)} entries"]
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: {a!r} against {b!r}"]


def digest(v):
    return hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()[:16]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = (canonical(json.load(open(p))) for p in sys.argv[1:])
    print(f"{sys.argv[1]}: {digest(a)}\n{sys.argv[2]}: {digest(b)}")
    diff = differences(a, b)
    for d in diff[:20]:
        print("  ", d)
    print("the same numbers" if not diff else f"{len(diff)} differences")
    sys.exit(1 if diff else 0)


if __name__ == "__main__":
    main()
