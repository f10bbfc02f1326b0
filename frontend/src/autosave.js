// Autosave of one task's code. The server keeps every version and accepts a save only on top
// of the version this tab last saw (`base_version`), so two tabs can never silently overwrite
// each other: a save against an outdated version is refused with the newer code, and the
// participant chooses what to keep.
//
// The latest unsaved code also lives in localStorage (the "draft") until the server has it,
// so a reload, a crash or a lost connection loses nothing typed.
//
// Pure: transport, storage, clock and timers are injected; the tests run it in Node.

import { backoffDelay, isoTime, normalizeNewlines } from "./util.js";
import { readJSON, removeKey, writeJSON } from "./storage.js";

/** Save states shown to the participant. */
export const STATES = Object.freeze({
  SAVED: "saved", // the server has exactly what the editor shows
  DIRTY: "dirty", // changed; a save is scheduled
  SAVING: "saving",
  OFFLINE: "offline", // the server could not be reached (or failed); retrying with backoff
  ERROR: "error", // the server refused for another reason; retrying with backoff
  CONFLICT: "conflict", // another tab saved a newer version; waiting for the participant
  // Longer than the server accepts (it answers 400): not sent, not retried; the last saved
  // version stays on the server and this code in the browser, until it is made shorter.
  TOO_LONG: "too_long",
  REFUSED: "refused", // the server refused the save for another stated reason (400): final
  STAGE_OVER: "stage_over",
});

const RETRY = "retry";

export function draftKey(prefix, stage, task) {
  return `${prefix}:draft:${stage}:${task}`;
}

/** The code to put back in the editor after a reload, or null. A draft counts only if it was
 *  written on top of the version the server still has: otherwise someone saved since, and
 *  restoring it would undo their save. */
export function draftToRestore(draft, { version, code }) {
  if (!draft || typeof draft.code !== "string" || draft.base_version !== version) return null;
  return draft.code === code ? null : draft.code;
}

export class TaskSaver {
  constructor({
    stage,
    task,
    version,
    savedCode,
    getCode,
    post,
    beacon = null,
    storage,
    draftKey: key,
    maxChars = Infinity,
    now = Date.now,
    timers = globalThis,
    debounceMs = 1500,
    maxWaitMs = 10000,
    backoff = {},
    onState = () => {},
    onConflict = () => {},
    onStageOver = () => {},
  }) {
    Object.assign(this, { stage, task, version, savedCode, getCode, post, beacon, storage });
    Object.assign(this, { now, timers, debounceMs, maxWaitMs, backoff, maxChars });
    Object.assign(this, { onState, onConflict, onStageOver });
    this.draftKey = key;
    this.state = STATES.SAVED;
    this.timer = null;
    this.firstDirtyAt = null;
    this.failures = 0;
    this.nextAttemptAt = 0;
    this.inflight = null;
    this.conflict = null;
    this.refusal = ""; // the server's reason, in the REFUSED state
    // Code sent without a confirmed answer (beacons, timed-out requests). If the server's newer
    // version turns out to hold one of these, that version is our own save, not another tab's.
    this.unconfirmed = [];
  }

  get dirty() {
    return this.getCode() !== this.savedCode;
  }

  /** Code the server would refuse for its length: never sent. */
  tooLong(code) {
    return code.length > this.maxChars;
  }

  get blocked() {
    return this.state === STATES.CONFLICT || this.state === STATES.STAGE_OVER;
  }

  setState(state) {
    if (this.state !== state) {
      this.state = state;
      this.onState(state);
    }
  }

  writeDraft() {
    writeJSON(this.storage, this.draftKey, {
      base_version: this.version,
      code: this.getCode(),
      time: isoTime(this.now()),
    });
  }

  clearTimer() {
    if (this.timer != null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  schedule(ms) {
    this.clearTimer();
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.save("autosave");
    }, Math.max(0, ms));
  }

  /** Call after every edit. Saves ~debounceMs after typing stops, and at least every
   *  maxWaitMs while typing goes on. */
  changed() {
    this.writeDraft();
    if (this.blocked) return;
    const t = this.now();
    if (!this.dirty) {
      this.markClean();
      return;
    }
    if (this.tooLong(this.getCode())) {
      this.clearTimer();
      this.setState(STATES.TOO_LONG);
      return;
    }
    if (this.firstDirtyAt == null) this.firstDirtyAt = t;
    if ([STATES.SAVED, STATES.TOO_LONG, STATES.REFUSED].includes(this.state)) this.setState(STATES.DIRTY);
    let wait = Math.min(this.debounceMs, this.firstDirtyAt + this.maxWaitMs - t);
    wait = Math.max(wait, this.nextAttemptAt - t);
    if (this.inflight) return; // the in-flight save reschedules when it ends
    this.schedule(wait);
  }

  markClean() {
    this.clearTimer();
    this.firstDirtyAt = null;
    removeKey(this.storage, this.draftKey);
    this.setState(STATES.SAVED);
  }

  /**
   * Saves now if the code differs from the server's. Resolves with the resulting state once
   * the code current at call time (or later) is saved, or the attempt failed.
   * `source` is "autosave" or "blur".
   */
  async save(source = "autosave") {
    this.clearTimer();
    for (let attempt = 0; attempt < 3; attempt++) {
      while (this.inflight) await this.inflight;
      if (this.blocked) return this.state;
      const code = this.getCode();
      if (code === this.savedCode) {
        this.markClean();
        return this.state;
      }
      if (this.tooLong(code)) {
        this.setState(STATES.TOO_LONG);
        return this.state;
      }
      this.inflight = this.send(code, source);
      let result;
      try {
        result = await this.inflight;
      } finally {
        this.inflight = null;
      }
      if (result !== RETRY) return result;
    }
    return this.state;
  }

  async send(code, source) {
    this.setState(STATES.SAVING);
    const body = {
      stage: this.stage,
      task: this.task,
      base_version: this.version,
      code,
      client_time: isoTime(this.now()),
      source,
    };
    let status = 0;
    let data = null;
    try {
      ({ status, data } = await this.post(body));
    } catch {
      status = 0;
    }
    if (status === 200 && data && Number.isInteger(data.version)) {
      this.version = data.version;
      this.savedCode = code;
      this.failures = 0;
      this.nextAttemptAt = 0;
      this.unconfirmed = [];
      this.refusal = "";
      if (this.getCode() === code) {
        this.markClean();
      } else {
        // Typed while saving: the draft now sits on the new version.
        this.writeDraft();
        this.firstDirtyAt = this.now();
        this.setState(STATES.DIRTY);
        this.schedule(this.debounceMs);
      }
      return this.state;
    }
    if (status === 409 && data && data.error === "stage_over") {
      this.clearTimer();
      this.setState(STATES.STAGE_OVER);
      this.onStageOver(data.redirect);
      return this.state;
    }
    if (status === 409 && data && data.error === "conflict") {
      return this.handleConflict(data);
    }
    if (status === 400 || status === 413) {
      // A refusal that sending again cannot change (too long, malformed): say so once and stop.
      // The server still has the last version it accepted; the draft keeps this code.
      this.clearTimer();
      this.writeDraft();
      const message = data && typeof data.message === "string" ? data.message : "";
      this.refusal = message;
      this.setState(status === 413 || /longer than/.test(message) ? STATES.TOO_LONG : STATES.REFUSED);
      return this.state;
    }
    // Unreachable, 5xx, 403, timeout... The request may still have been stored (a timeout after
    // the server committed), so remember the code as possibly saved.
    this.remember(code);
    this.failures += 1;
    this.nextAttemptAt = this.now() + backoffDelay(this.failures, this.backoff);
    const transient = status === 0 || status === 408 || status === 429 || status >= 500;
    this.setState(transient ? STATES.OFFLINE : STATES.ERROR);
    this.schedule(this.nextAttemptAt - this.now());
    return this.state;
  }

  /** Code sent to the server outside the autosave (Run and Check store it as a version). */
  remember(code) {
    if (!this.unconfirmed.includes(code)) this.unconfirmed.push(code);
    if (this.unconfirmed.length > 8) this.unconfirmed.shift();
  }

  handleConflict(data) {
    const serverCode = typeof data.code === "string" ? normalizeNewlines(data.code) : null;
    const serverVersion = Number.isInteger(data.version) ? data.version : null;
    if (serverCode !== null && serverVersion !== null) {
      if (
        serverCode === this.getCode() ||
        serverCode === this.savedCode ||
        this.unconfirmed.includes(serverCode)
      ) {
        // The newer version is this tab's own (a beacon, a Run or Check, which the server
        // stores as a version, or a save whose answer was lost), holds exactly what the editor
        // shows, or holds exactly the code this tab's edits started from (a Run of unchanged
        // code stores it again): adopting it overwrites nobody's work.
        this.version = serverVersion;
        this.savedCode = serverCode;
        this.unconfirmed = [];
        this.failures = 0;
        this.nextAttemptAt = 0;
        return RETRY;
      }
    }
    this.clearTimer();
    this.conflict = { version: serverVersion, code: serverCode };
    this.writeDraft();
    this.setState(STATES.CONFLICT);
    this.onConflict(this.conflict);
    return this.state;
  }

  /** The participant chose "Load the latest version": returns {version, code} for the editor
   *  to show; this tab's code is replaced, never merged. */
  loadLatest() {
    const latest = this.conflict;
    if (!latest) return null;
    this.conflict = null;
    this.version = latest.version;
    this.savedCode = latest.code ?? "";
    this.unconfirmed = [];
    this.markClean();
    return latest;
  }

  /** The participant chose to keep this tab's code: save it on top of the newer version. */
  keepMine() {
    const latest = this.conflict;
    if (!latest) return Promise.resolve(this.state);
    this.conflict = null;
    this.version = latest.version;
    this.savedCode = latest.code ?? "";
    this.firstDirtyAt = this.now();
    this.setState(STATES.DIRTY);
    return this.save("autosave");
  }

  /** Page being hidden or closed: send the unsaved code with sendBeacon. */
  beaconSave() {
    if (!this.beacon || this.blocked || !this.dirty) return false;
    const code = this.getCode();
    if (this.tooLong(code)) return false;
    this.writeDraft();
    if (this.unconfirmed.includes(code)) return true; // already sent (visibilitychange, then pagehide)
    const body = {
      stage: this.stage,
      task: this.task,
      base_version: this.version,
      code,
      client_time: isoTime(this.now()),
      source: "beacon",
    };
    let sent = false;
    try {
      sent = Boolean(this.beacon(body));
    } catch {
      sent = false;
    }
    if (sent) this.remember(code);
    return sent;
  }

  /** The connection is back: retry now instead of waiting out the backoff. */
  retryNow() {
    this.failures = 0;
    this.nextAttemptAt = 0;
    if (!this.blocked && this.dirty && this.state !== STATES.REFUSED) return this.save("autosave");
    return Promise.resolve(this.state);
  }

  /** The stage ended: no more saves from this page. */
  stop() {
    this.clearTimer();
    this.setState(STATES.STAGE_OVER);
  }
}
