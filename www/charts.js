// Charts over ratings, drawn with uPlot (served from vendor/, installed from npm by the build).
// Each chart plots metrics of the finished updates under the names `--json` uses (metrics.rs:
// TRL's, namespaced by stage) and explains them in plain words.

import uPlot from "./vendor/uPlot.esm.js";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];

export const CHARTS = [
  {
    id: "accuracy", title: "Reward model accuracy",
    help: "How often the reward model ranks the preferred reply of a pair above the other. " +
      "reward/eval_accuracy counts only pairs it had not been trained on yet: the honest number.",
    series: ["reward/accuracy", "reward/eval_accuracy"], percent: true,
  },
  {
    id: "scores", title: "Reward of fresh replies",
    help: "objective/scores: the reward model's mean score of the replies PPO just wrote " +
      "(plus the bonus for words the base model was sure of, when that setting is on). " +
      "Rises as Pip learns what you like (as the reward model sees it).",
    series: ["objective/scores", "objective/rlhf_reward"],
  },
  {
    id: "rater", title: "Rater's thumbs-up rate",
    help: "rater/preferred: the share of PPO's (or GRPO's, or best-of-N's) fresh replies the autopilot's rater would give a " +
      "thumbs up (autopilot only; with DPO, KTO or SFT only, of the replies shown after the update).",
    series: ["rater/preferred"], percent: true,
  },
  {
    id: "kl", title: "KL to the base model",
    help: "objective/kl: how far Pip has moved from the base model, in nats per reply, on PPO's " +
      "fresh replies. samples/kl: the same on the replies shown after each update, whatever the method. " +
      "The KL penalty (β) keeps this small so Pip does not forget how to write.",
    series: ["objective/kl", "samples/kl"],
  },
  {
    id: "losses", title: "PPO losses",
    help: "loss/policy_avg: the clipped policy objective (lower = replies with high advantage " +
      "became likelier). loss/value_avg: how wrong the value head's predictions of reward were.",
    series: ["loss/policy_avg", "loss/value_avg"],
  },
  {
    id: "entropy", title: "Entropy",
    help: "objective/entropy: how unsure Pip is when picking each word, summed over a reply. " +
      "A collapse towards 0 means Pip always says the same thing.",
    series: ["objective/entropy"],
  },
];

export class Charts {
  constructor(container) {
    this.container = container;
    this.x = [];
    this.data = {};
    this.plots = {};
    for (const c of CHARTS) {
      const box = document.createElement("figure");
      box.className = "chart";
      const cap = document.createElement("figcaption");
      cap.textContent = c.title + " ";
      const info = document.createElement("span");
      info.className = "info";
      info.textContent = "?";
      info.dataset.tip = c.help;
      info.tabIndex = 0;
      info.setAttribute("aria-label", c.help);
      cap.append(info);
      const area = document.createElement("div");
      box.append(cap, area);
      container.append(box);
      this.data[c.id] = c.series.map(() => []);
      const opts = {
        width: 320, height: 170,
        legend: { show: true, live: false },
        cursor: { show: true },
        scales: { x: { time: false }, ...(c.percent ? { y: { range: [0, 1] } } : {}) },
        axes: [
          // Whole ratings only on the x axis (no "0.5 ratings" ticks while there are few points).
          { label: "ratings", size: 36, labelSize: 14, stroke: "#475569", grid: { stroke: "#e2e8f0" },
            incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500] },
          { size: 54, stroke: "#475569", grid: { stroke: "#e2e8f0" },
            values: c.percent ? (u, v) => v.map((x) => `${Math.round(x * 100)}%`) : undefined },
        ],
        series: [{ label: "ratings" }, ...c.series.map((s, i) => ({
          label: s, stroke: COLORS[i], width: 2, points: { show: true, size: 5 }, spanGaps: true,
        }))],
      };
      this.plots[c.id] = new uPlot(opts, [[], ...this.data[c.id]], area);
    }
    this.resize();
    new ResizeObserver(() => this.resize()).observe(container);
  }

  resize() {
    const first = this.container.querySelector(".chart");
    if (!first) return;
    const w = Math.max(240, first.clientWidth - 8);
    for (const p of Object.values(this.plots)) p.setSize({ width: w, height: Math.round(w * 0.5) });
  }

  /// Adds one update's metrics (its report's `metrics`: metric name → value).
  add(ratings, metrics) {
    this.x.push(ratings);
    for (const c of CHARTS) {
      c.series.forEach((name, i) => {
        const v = metrics[name];
        this.data[c.id][i].push(Number.isFinite(v) ? v : null);
      });
      this.plots[c.id].setData([this.x, ...this.data[c.id]]);
    }
  }

  /// Forgets the updates after rating `ratings` (an undone rating).
  dropAfter(ratings) {
    const keep = this.x.filter((x) => x <= ratings).length;
    this.x.length = keep;
    for (const c of CHARTS) {
      for (const s of this.data[c.id]) s.length = keep;
      this.plots[c.id].setData([this.x, ...this.data[c.id]]);
    }
  }

  /// Points drawn so far on chart `id` (for tests).
  points(id) {
    return this.data[id].reduce((n, s) => n + s.filter((v) => v !== null).length, 0);
  }

  clear() {
    this.x = [];
    for (const c of CHARTS) {
      this.data[c.id] = c.series.map(() => []);
      this.plots[c.id].setData([[], ...this.data[c.id]]);
    }
  }
}
