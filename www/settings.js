// The Settings panel, built from the engine's own list of settings (settings.rs): each group
// (a stage, sampling, the session) shows its main settings at once and the rest under "More".
// Apply sends the changed values; the engine checks them and refuses a bad one with a message.

import { $, call, notice, store } from "./store.js";
import { nameStages } from "./pipeline.js";
import { METHOD_NAMES } from "./comparepanel.js";

/// A choice's value as the page names it (the methods by name, anything else in capitals).
const choiceName = (v) => METHOD_NAMES[v] ?? String(v).toUpperCase();

function input(s, value) {
  if (s.kind === "choice") {
    const el = document.createElement("select");
    el.dataset.path = s.name;
    el.id = `setting-${s.name}`;
    for (const option of s.options) el.add(new Option(choiceName(option), option, false, option === value));
    return el;
  }
  const el = document.createElement("input");
  el.dataset.path = s.name;
  el.id = `setting-${s.name}`;
  if (s.kind === "bool") {
    el.type = "checkbox";
    el.checked = !!value;
    return el;
  }
  el.type = "number";
  el.value = value;
  el.step = s.kind === "int" ? "1" : "any";
  if (s.min !== null) el.min = s.min;
  if (s.max !== null) el.max = s.max;
  return el;
}

function row(s, value) {
  const el = document.createElement("div");
  el.className = "setting";
  const name = document.createElement("label");
  name.className = "setting-name";
  name.htmlFor = `setting-${s.name}`;
  name.textContent = s.label;
  const help = document.createElement("span");
  help.className = "setting-help";
  const shown = (v) => (s.kind === "bool" ? (v ? "on" : "off") : s.kind === "choice" ? choiceName(v) : String(v));
  const range = s.min !== null ? ` (${s.min} to ${s.max}; default ${shown(s.default)})` : ` (default: ${shown(s.default)})`;
  help.textContent = s.help + range;
  el.append(name, input(s, value), help);
  return el;
}

/// The groups only some methods read (the others read every group).
const USED_BY = { "Reward model": ["ppo", "grpo", "bon"], PPO: ["ppo"], DPO: ["dpo"], KTO: ["kto"], GRPO: ["grpo"], "Best-of-N": ["bon"] };

/// Draws the panel from `store.settings`: the session's group (with the method) first, and the
/// groups the current method does not read dimmed, saying so.
export function renderSettings() {
  const box = $("settings");
  box.replaceChildren();
  const { schema, values } = store.settings;
  const groups = [...new Set(schema.map((s) => s.group))];
  groups.sort((a, b) => (b === "Session") - (a === "Session"));
  for (const group of groups) {
    const set = document.createElement("fieldset");
    set.className = "settings-group";
    const legend = document.createElement("legend");
    legend.textContent = group;
    const unused = USED_BY[group] && !USED_BY[group].includes(values.method);
    if (unused) {
      set.classList.add("unused");
      legend.textContent = `${group} (not used by ${values.method.toUpperCase()})`;
    }
    const grid = document.createElement("div");
    grid.className = "settings-grid";
    const more = document.createElement("details");
    const summary = document.createElement("summary");
    const extra = document.createElement("div");
    extra.className = "settings-grid";
    for (const s of schema.filter((s) => s.group === group)) {
      (s.advanced ? extra : grid).append(row(s, values[s.name]));
    }
    summary.textContent = `More ${group} settings (${extra.childElementCount})`;
    more.append(summary, extra);
    set.append(legend);
    if (grid.childElementCount) set.append(grid);
    if (extra.childElementCount) set.append(more);
    box.append(set);
  }
  nameStages(values.method);
}

async function applySettings() {
  const changes = {};
  for (const el of $("settings").querySelectorAll("input, select")) {
    const name = el.dataset.path;
    const now = store.settings.values[name];
    if (el.tagName === "SELECT") {
      if (el.value !== now) changes[name] = el.value;
      continue;
    }
    if (el.type === "checkbox") {
      if (el.checked !== now) changes[name] = el.checked;
      continue;
    }
    const v = Number(el.value);
    if (el.value.trim() === "" || !Number.isFinite(v)) {
      notice(`${name}: “${el.value}” is not a number.`);
      return;
    }
    if (v !== now) changes[name] = v;
  }
  if (!Object.keys(changes).length) { notice("No setting changed.", "info"); return; }
  try {
    store.settings = await call("applySettings", { changes });
    renderSettings();
    notice("Settings applied: they take effect from the next update.", "info");
  } catch (err) {
    notice(`Settings not applied: ${err.message}`);
  }
}

export function wireSettings() {
  $("apply-settings").addEventListener("click", applySettings);
}
