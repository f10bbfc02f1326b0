// Autosave of a question page's answers (screening, quiz, post-survey).
//
// The answers are sent in one format, the server's draft format (trials/answers.py): a text or
// a single choice as a string, multiple choice as a list, "I don't know" beside a typed answer
// as `true`, and an empty answer left out — never `""`, `[]` or `false`, so an unticked box
// cannot come back ticked after a reload.
//
// Every save is based on the revision of the answers this tab last saw. If another tab saved
// since, the server refuses (409 answers_changed) and sends the newer answers: this tab stops
// saving and tells the participant, instead of overwriting them.
//
// Pure: the transport and the timers are injected; the tests run it in Node.

import { backoffDelay } from "./util.js";

export const IDK_SUFFIX = "__idk";
const NOT_ANSWERS = new Set(["csrfmiddlewaretoken", "revision", "step"]);

/** Save states shown to the participant. */
export const STATES = Object.freeze({
  SAVED: "saved",
  DIRTY: "dirty",
  SAVING: "saving",
  OFFLINE: "offline",
  ERROR: "error",
  CHANGED: "changed", // another tab saved newer answers; this tab no longer saves
  STAGE_OVER: "stage_over",
});

/** The answers of a form's elements ({name, type, value, checked, disabled}), in draft format. */
export function collectAnswers(elements) {
  const out = {};
  for (const el of elements) {
    if (!el.name || NOT_ANSWERS.has(el.name) || el.disabled) continue;
    const type = el.type || "";
    if (type === "submit" || type === "button" || type === "reset") continue;
    if (type === "checkbox" && el.name.endsWith(IDK_SUFFIX)) {
      if (el.checked) out[el.name] = true;
    } else if (type === "checkbox") {
      if (el.checked) (out[el.name] = out[el.name] || []).push(el.value);
    } else if (type === "radio") {
      if (el.checked) out[el.name] = el.value;
    } else if (typeof el.value === "string" && el.value !== "") {
      out[el.name] = el.value;
    }
  }
  return out;
}

function sameValue(a, b) {
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return false;
    const sorted = [...b].sort();
    return [...a].sort().every((v, i) => v === sorted[i]);
  }
  return a === b;
}

/** Whether two sets of answers in draft format say the same. */
export function sameAnswers(a, b) {
  const keys = Object.keys(a || {});
  if (keys.length !== Object.keys(b || {}).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && sameValue(a[key], b[key]));
}

/** Whether question `key` has an answer ("I don't know" is one: it was chosen). */
export function isAnswered(answers, key) {
  return answers[key + IDK_SUFFIX] === true || Object.hasOwn(answers, key);
}

export class AnswersSaver {
  constructor({
    stage,
    revision,
    getAnswers,
    post,
    timers = globalThis,
    now = Date.now,
    debounceMs = 800,
    backoff = {},
    onState = () => {},
    onRevision = () => {},
    onChanged = () => {},
    onStageOver = () => {},
  }) {
    Object.assign(this, { stage, revision, getAnswers, post, timers, now, debounceMs, backoff });
    Object.assign(this, { onState, onRevision, onChanged, onStageOver });
    this.saved = getAnswers(); // what the page was rendered with: the server's answers
    this.state = STATES.SAVED;
    this.timer = null;
    this.inflight = null;
    this.failures = 0;
  }

  get blocked() {
    return this.state === STATES.CHANGED || this.state === STATES.STAGE_OVER;
  }

  get dirty() {
    return !sameAnswers(this.getAnswers(), this.saved);
  }

  setState(state) {
    if (this.state !== state) {
      this.state = state;
      this.onState(state);
    }
  }

  schedule(ms) {
    if (this.timer != null) this.timers.clearTimeout(this.timer);
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.save();
    }, Math.max(0, ms));
  }

  /** Call after every change of an answer. */
  changed() {
    if (this.blocked) return;
    if (!this.dirty) {
      if (!this.inflight) this.setState(STATES.SAVED);
      return;
    }
    if (this.state === STATES.SAVED) this.setState(STATES.DIRTY);
    if (!this.inflight) this.schedule(this.debounceMs);
  }

  /** Saves now if the answers differ from the server's; resolves with the state once the
   *  answers current at call time are saved, or the attempt failed. */
  async save({ keepalive = false } = {}) {
    if (this.timer != null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    for (let attempt = 0; attempt < 3; attempt++) {
      while (this.inflight) await this.inflight;
      if (this.blocked) return this.state;
      const answers = this.getAnswers();
      if (sameAnswers(answers, this.saved)) {
        this.setState(STATES.SAVED);
        return this.state;
      }
      this.inflight = this.send(answers, keepalive);
      let again;
      try {
        again = await this.inflight;
      } finally {
        this.inflight = null;
      }
      if (!again) return this.state;
    }
    return this.state;
  }

  adopt(revision, answers) {
    this.revision = revision;
    this.saved = answers;
    this.failures = 0;
    this.onRevision(revision);
  }

  /** One request; resolves true when the caller should look again at once. */
  async send(answers, keepalive) {
    this.setState(STATES.SAVING);
    const body = { stage: this.stage, answers, revision: this.revision };
    let status = 0;
    let data = null;
    try {
      ({ status, data } = await this.post(body, { keepalive }));
    } catch {
      status = 0;
    }
    if (status === 200 && data && typeof data.revision === "string") {
      this.adopt(data.revision, answers);
      if (this.dirty) {
        this.setState(STATES.DIRTY);
        this.schedule(this.debounceMs);
      } else {
        this.setState(STATES.SAVED);
      }
      return false;
    }
    if (status === 409 && data && data.error === "answers_changed") {
      const theirs = data.answers || {};
      if (sameAnswers(theirs, answers) || sameAnswers(theirs, this.getAnswers())) {
        // The newer revision holds exactly this tab's answers (its own save whose reply was
        // lost, or the same choice made in both tabs): adopting it overwrites nobody.
        this.adopt(String(data.revision), theirs);
        return true;
      }
      if (this.timer != null) this.timers.clearTimeout(this.timer);
      this.timer = null;
      this.setState(STATES.CHANGED);
      this.onChanged({ revision: data.revision, answers: theirs });
      return false;
    }
    if (status === 409 && data && data.error === "stage_over") {
      this.setState(STATES.STAGE_OVER);
      this.onStageOver(data.redirect);
      return false;
    }
    this.failures += 1;
    const transient = status === 0 || status === 408 || status === 429 || status >= 500;
    this.setState(transient ? STATES.OFFLINE : STATES.ERROR);
    this.schedule(backoffDelay(this.failures, this.backoff));
    return false;
  }

  /** The page is being hidden or closed: send what is unsaved, with a request that outlives it. */
  leave() {
    if (this.blocked || this.inflight || !this.dirty) return;
    this.save({ keepalive: true });
  }
}
