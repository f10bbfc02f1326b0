// DOM rendering for the coding stage: run output, check results, save status. Text always goes
// in through textContent: program output and test messages are never parsed as HTML.

import { STATES } from "./autosave.js";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child == null || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function fill(container, ...children) {
  container.replaceChildren(...children.filter((child) => child != null && child !== false));
  container.hidden = false;
}

export const SAVE_TEXT = {
  [STATES.SAVED]: "Saved",
  [STATES.DIRTY]: "Saving…",
  [STATES.SAVING]: "Saving…",
  [STATES.OFFLINE]:
    "Offline — your work is kept in this browser and will be saved when the connection returns",
  [STATES.ERROR]: "Not saved yet — retrying. Your work is kept in this browser",
  [STATES.CONFLICT]: "Not saved: see the notice above the editor",
  [STATES.STAGE_OVER]: "This stage has ended",
};

/** `saver` (a TaskSaver) gives the limit and the server's reason for the final states. */
export function showSaveState(node, state, saver = null) {
  let text = SAVE_TEXT[state] ?? "";
  if (state === STATES.TOO_LONG) {
    const limit = saver && Number.isFinite(saver.maxChars) ? saver.maxChars.toLocaleString("en") : null;
    const why =
      saver && saver.refusal
        ? saver.refusal // the server's words, when it refused
        : `this code is longer than ${limit ? `${limit} characters` : "the limit"}, the most a task can hold`;
    text = `Not saved: ${why}. Shorten it to save it again. Your last saved version is kept.`;
  } else if (state === STATES.REFUSED) {
    const reason = saver && saver.refusal ? `: ${saver.refusal}` : "";
    text = `Not saved — the server refused this version${reason}. Your last saved version is kept.`;
  }
  node.textContent = text;
  node.dataset.state = state;
}

function formatMs(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** A one-line summary for the live region, and the full panel. */
export function renderRun(container, data) {
  const parts = [];
  let headline;
  if (data.status === "timeout" || data.timed_out) {
    headline = "Stopped: your program ran longer than the time limit";
  } else if (data.status === "busy") {
    headline = data.message || "The server is busy. Please try again in a moment.";
  } else if (data.exit_code === 0) {
    headline = "Finished";
    parts.push("exit code 0");
  } else {
    headline = "Finished with an error";
    if (data.exit_code != null) parts.push(`exit code ${data.exit_code}`);
  }
  const duration = formatMs(data.duration_ms);
  if (duration) parts.push(duration);
  const summary = [headline, ...parts].join(" · ");
  const stdout = data.stdout ?? "";
  const stderr = data.stderr ?? "";
  fill(
    container,
    el("h3", { class: "panel-title" }, "Output"),
    el("p", { class: "output-summary", "data-status": data.status ?? "" }, summary),
    data.status === "busy"
      ? null
      : el("pre", { class: "stdout", "aria-label": "Program output" }, stdout || "(no output)"),
    stderr ? el("p", { class: "stream-label" }, "Error output") : null,
    stderr ? el("pre", { class: "stderr", "aria-label": "Error output" }, stderr) : null,
    data.truncated ? el("p", { class: "note" }, "The output was very long and has been cut short.") : null,
    data.message && data.status !== "busy" ? el("p", { class: "note" }, data.message) : null,
  );
  return summary;
}

export function renderMessage(container, title, message) {
  container.replaceChildren(
    el("h3", { class: "panel-title" }, title),
    el("p", { class: "output-summary", "data-status": "error" }, message),
  );
  container.hidden = false;
  return message;
}

export function renderChecks(container, data) {
  const tests = Array.isArray(data.tests) ? data.tests : [];
  const passed = data.passed ?? tests.filter((t) => t.passed).length;
  const total = data.total ?? tests.length;
  const summary = data.all_passed ? "All checks passed" : `${passed} of ${total} checks passed`;
  container.replaceChildren(
    el("h3", { class: "panel-title" }, "Checks"),
    el("p", { class: data.all_passed ? "checks-summary all-passed" : "checks-summary" }, summary),
    el(
      "ul",
      { class: "checks" },
      ...tests.map((t) =>
        el(
          "li",
          { class: t.passed ? "pass" : "fail" },
          el("span", { class: "mark", "aria-hidden": "true" }, t.passed ? "✓" : "✗"),
          el("span", { class: "verdict" }, t.passed ? "Passed" : "Not yet"),
          el("span", { class: "name" }, t.name ?? ""),
          t.message ? el("span", { class: "message" }, t.message) : null,
        ),
      ),
    ),
  );
  container.hidden = false;
  return summary;
}
