#!/usr/bin/env python3
"""Runs `rlhf-playground simulate` for every rater, feedback kind and seed of docs/RESULTS.md's
tables and prints them as Markdown (mean and spread over seeds).

Usage: cargo build --release && scripts/rlhf_tables.py [--seeds 3] [--ratings 40] [--out DIR]
       [--set KEY=VALUE ...] [--only thumbs --only polite ...] [--pairs extremes] [--replies 4]
       [--model DIR]
Each run's JSON is kept under --out (default target/rlhf-tables) and reused when present, so an
interrupted run continues where it stopped. About 45 s per run on a 2-core machine.
"""
import argparse
import json
import pathlib
import statistics
import subprocess

root = pathlib.Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--seeds", type=int, default=3)
ap.add_argument("--ratings", type=int, default=40)
ap.add_argument("--out", default=str(root / "target" / "rlhf-tables"))
ap.add_argument("--regex", default="(?i)thank")
ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                help="a session setting passed to every run (simulate --set)")
ap.add_argument("--pairs", default="in-order", choices=["in-order", "extremes"],
                help="which replies of a round a pair compares (simulate --pairs)")
ap.add_argument("--replies", type=int, default=4,
                help="replies sampled per round (simulate --replies)")
ap.add_argument("--model", help="a model folder that `pretrain --out DIR` wrote (default: the built-in one)")
ap.add_argument("--only", action="append", default=[],
                help="run only these tables (thumbs, pairs, stars, regex) and raters")
args = ap.parse_args()
out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)
binary = root / "target" / "release" / "rlhf-playground"

RATERS = ["polite", "truthful", "short", "cheerful"]
runs = []  # (table, row label, feedback, argv)
for feedback in ["thumbs", "pairs", "stars"]:
    for rater in RATERS:
        runs.append((feedback, rater, feedback, ["--rater", rater]))
runs.append(("regex", f"regex `{args.regex}`", "thumbs", ["--grader-regex", args.regex]))


def run(label, feedback, who, seed):
    name = f"{label}-{feedback}-{seed}".replace(" ", "_").replace("`", "")
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    path = out / f"{name}.json"
    if not path.exists():
        cmd = [str(binary), *(["--model", args.model] if args.model else []), "simulate", *who, "--feedback", feedback, "--ratings",
               str(args.ratings), "--seed", str(seed), "--replies", str(args.replies), "--json"]
        if feedback == "pairs" and args.pairs != "in-order":
            cmd += ["--pairs", args.pairs]
        for kv in args.set:
            cmd += ["--set", kv]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        path.write_text(res.stdout.strip().splitlines()[-1])
    return json.loads(path.read_text())


def fmt(xs, scale=100.0, digits=0):
    m = statistics.mean(xs) * scale
    s = (statistics.stdev(xs) * scale) if len(xs) > 1 else 0.0
    return f"{m:.{digits}f} ± {s:.{digits}f}"


tables = {}
for table, label, feedback, who in runs:
    only_tables = [o for o in args.only if o in ("thumbs", "pairs", "stars", "regex")]
    only_raters = [o for o in args.only if o not in only_tables]
    if (only_tables and table not in only_tables) or (
        only_raters and table != "regex" and label not in only_raters
    ):
        continue
    rs = [run(label, feedback, who, seed) for seed in range(1, args.seeds + 1)]
    tables.setdefault(table, []).append((label, rs))

for table, rows in tables.items():
    print(f"\n#### {table}\n")
    print("| rater | base preferred % | tuned preferred % | tuned well-formed % | KL (nats/reply) | runs reaching 85% |")
    print("|---|---|---|---|---|---|")
    for label, rs in rows:
        reached = sum(r["tuned_rate"] >= 0.85 for r in rs)
        print(
            f"| {label} | {fmt([r['base_rate'] for r in rs])} | {fmt([r['tuned_rate'] for r in rs])} "
            f"| {fmt([r['well_formed'] for r in rs])} | {fmt([r['kl'] for r in rs], 1.0, 2)} "
            f"| {reached}/{len(rs)} |"
        )
