#!/usr/bin/env python3
"""Runs `rlhf-playground simulate` for every rater, feedback kind and seed of docs/RESULTS.md's
tables and prints them as Markdown (mean and spread over seeds).

Usage: cargo build --release && scripts/rlhf_tables.py [--seeds 3] [--first-seed 1] [--ratings 40]
       [--out DIR] [--set KEY=VALUE ...] [--only thumbs --only polite ...] [--pairs extremes]
       [--replies 4] [--model DIR] [--raters polite,polite+short,...] [--combined]
       [--methods ppo,dpo,kto,grpo,bon,sft]
With --methods, each method runs into its own folder under --out (OUT/ppo, OUT/dpo, ...) and the
tables get a row per rater and method. RLHF_BIN=PATH runs another binary than target/release's.
Each table gives, over the seeds, the preferred rate's mean ± standard deviation and its 10th
percentile (linear interpolation between the sorted runs, as numpy's default), the well-formed
share, KL to the base model and the diversity kept.
Each run's JSON is kept under --out (default target/rlhf-tables) and reused when present, so an
interrupted run continues where it stopped. About 45 s per run on a 2-core machine.
"""
import argparse
import os
import json
import pathlib
import statistics
import subprocess

root = pathlib.Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--seeds", type=int, default=3)
ap.add_argument("--first-seed", type=int, default=1,
                help="seeds run are first-seed .. first-seed + seeds - 1 (choose on 11-20, report 1-10)")
ap.add_argument("--raters", default="polite,truthful,short,cheerful",
                help="comma-separated rater specs (simulate --rater), e.g. polite+short,truthful+!cheerful")
ap.add_argument("--combined", action="store_true",
                help="the combined raters of the README's table instead of --raters")
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
ap.add_argument("--methods", default="",
                help="comma-separated methods (simulate --method), each into OUT/METHOD; default: the session's")
ap.add_argument("--only", action="append", default=[],
                help="run only these tables (thumbs, pairs, stars, regex) and raters")
args = ap.parse_args()
out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)
binary = pathlib.Path(os.environ["RLHF_BIN"]) if "RLHF_BIN" in os.environ else root / "target" / "release" / "rlhf-playground"

# Combined tastes whose base rate is 8-20% (seed 11's held-out prompts: 17.5, 11.5, 17, 12%).
COMBINED = ["polite+short", "polite+!cheerful", "short+!cheerful", "truthful+polite+short"]
RATERS = COMBINED if args.combined else args.raters.split(",")
METHODS = [m for m in args.methods.split(",") if m] or [None]
runs = []  # (table, row label, feedback, argv, method)
for feedback in ["thumbs", "pairs", "stars"]:
    for rater in RATERS:
        for method in METHODS:
            runs.append((feedback, rater, feedback, ["--rater", rater], method))
for method in METHODS:
    runs.append(("regex", f"regex `{args.regex}`", "thumbs", ["--grader-regex", args.regex], method))


def run(label, feedback, who, seed, method):
    name = f"{label}-{feedback}-{seed}".replace(" ", "_").replace("`", "")
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    folder = out / method if method else out
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    if not path.exists():
        if method:
            who = [*who, "--method", method]
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
for table, label, feedback, who, method in runs:
    only_tables = [o for o in args.only if o in ("thumbs", "pairs", "stars", "regex")]
    only_raters = [o for o in args.only if o not in only_tables]
    if (only_tables and table not in only_tables) or (
        only_raters and table != "regex" and label not in only_raters
    ):
        continue
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    rs = [run(label, feedback, who, seed, method) for seed in seeds]
    tables.setdefault(table, []).append((f"{label} ({method})" if method else label, rs))

def p10(xs):
    xs = sorted(xs)
    pos = 0.1 * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


for table, rows in tables.items():
    print(f"\n#### {table} (seeds {args.first_seed}-{args.first_seed + args.seeds - 1})\n")
    print("| rater | base preferred % | tuned preferred % | 10th percentile % | well-formed % | KL (nats/reply) | diversity kept | runs reaching 85% |")
    print("|---|---|---|---|---|---|---|---|")
    for label, rs in rows:
        reached = sum(r["tuned_rate"] >= 0.85 for r in rs)
        kept = [r["diversity_kept"] for r in rs if r.get("diversity_kept") is not None]
        print(
            f"| {label} | {fmt([r['base_rate'] for r in rs])} | {fmt([r['tuned_rate'] for r in rs])} "
            f"| {100 * p10([r['tuned_rate'] for r in rs]):.0f} "
            f"| {fmt([r['well_formed'] for r in rs])} | {fmt([r['kl'] for r in rs], 1.0, 2)} "
            f"| {fmt(kept, 1.0, 2) if kept else '-'} | {reached}/{len(rs)} |"
        )
