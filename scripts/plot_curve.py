#!/usr/bin/env python3
"""Draws the base model's loss curve (from www/assets/base.json) as docs/loss.svg.

Plain SVG written by hand, so no plotting package is needed. Usage: scripts/plot_curve.py
"""
import json
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent
meta = json.loads((root / "www/assets/base.json").read_text())
curve = meta["curve"]  # [step, training loss (mean since last point), held-out loss]
W, H, L, R, T, B = 640, 300, 60, 20, 30, 45
steps = [c[0] for c in curve]
ymax = 2.0
xmax = max(steps)


def x(s):
    return L + (W - L - R) * s / xmax


def y(v):
    return T + (H - T - B) * (1 - min(v, ymax) / ymax)


def path(idx):
    return " ".join(f"{'M' if i == 0 else 'L'}{x(c[0]):.1f},{y(c[idx]):.1f}" for i, c in enumerate(curve))


parts = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
    f'<rect width="{W}" height="{H}" fill="white"/>',
    f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14">Base model pretraining: cross-entropy per reply token (nats)</text>',
]
for v in [0.0, 0.5, 1.0, 1.5, 2.0]:
    parts.append(f'<line x1="{L}" x2="{W - R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
    parts.append(f'<text x="{L - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
for s in range(0, xmax + 1, 300):
    parts.append(f'<text x="{x(s):.1f}" y="{H - B + 18}" text-anchor="middle">{s}</text>')
parts.append(f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">optimiser step (32 exchanges each)</text>')
parts.append(f'<path d="{path(1)}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
parts.append(f'<path d="{path(2)}" fill="none" stroke="#d62728" stroke-width="2" stroke-dasharray="6 3"/>')
parts.append(f'<text x="{W - R - 150}" y="{T + 20}" fill="#1f77b4">training</text>')
parts.append(f'<text x="{W - R - 150}" y="{T + 38}" fill="#d62728">held-out prompts</text>')
parts.append("</svg>")
(root / "docs/loss.svg").write_text("\n".join(parts) + "\n")
print("wrote docs/loss.svg")
