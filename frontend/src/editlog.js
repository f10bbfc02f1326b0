// Records a task's edits as telemetry fine-grained enough to replay the code exactly.
//
// CodeMirror describes each transaction's edit as a ChangeSet. The transactions of a short
// window (~1 s from the first keystroke) are composed into one ChangeSet, which maps the
// document at the start of the window to the document at its end, and sent as one `edit`
// event: `changes` is a list of [fromA, toA, insertedText], ascending and non-overlapping, with
// positions in the document as it was *before* the window (UTF-16 code units, lines joined
// with "\n"). Applying them from last to first (see replay.js) reproduces the document.
// A `snapshot` event with the whole code is sent on load, after every ~15 s of editing and
// whenever the code is replaced from outside (another tab's version), so a replay can resync.
//
// Needs only @codemirror/state (no DOM): the tests drive it with real ChangeSets in Node.

import { isoTime } from "./util.js";

// The server refuses event payloads over 64 kB of JSON (where a non-ASCII character can take
// 6 bytes or 12), so a big paste goes out as several edit events of at most this much text.
const MAX_EVENT_CHARS = 8000;

/**
 * Splits one window's changes (ascending, positions before the window) into a sequence of
 * change lists that can be applied one after the other, each from last to first. Changes at
 * the end of the document go first, so the positions of the earlier ones stay valid; a single
 * long insertion is cut into consecutive insertions.
 */
export function splitChanges(changes, maxChars) {
  const total = changes.reduce((n, [, , text]) => n + text.length, 0);
  if (total <= maxChars) return [changes];
  const parts = [];
  let part = [];
  let size = 0;
  for (let i = changes.length - 1; i >= 0; i--) {
    const [from, to, text] = changes[i];
    if (text.length > maxChars) {
      if (part.length) parts.push(part.reverse());
      part = [];
      size = 0;
      parts.push([[from, to, text.slice(0, maxChars)]]);
      for (let at = maxChars; at < text.length; at += maxChars) {
        parts.push([[from + at, from + at, text.slice(at, at + maxChars)]]);
      }
      continue;
    }
    if (size + text.length > maxChars && part.length) {
      parts.push(part.reverse());
      part = [];
      size = 0;
    }
    part.push([from, to, text]);
    size += text.length;
  }
  if (part.length) parts.push(part.reverse());
  return parts;
}

export class EditLog {
  constructor({
    task,
    emit,
    getDoc,
    getVersion,
    now = Date.now,
    timers = globalThis,
    windowMs = 1000,
    snapshotMs = 15000,
    maxChars = MAX_EVENT_CHARS,
  }) {
    Object.assign(this, { task, emit, getDoc, getVersion, now, timers, windowMs, snapshotMs, maxChars });
    this.pending = null;
    this.timer = null;
    this.lastSnapshotAt = -Infinity;
  }

  /** One transaction's changes (a ChangeSet) and its user event ("input.type", "undo"...). */
  record(changes, userEvent = null) {
    if (changes.empty) return;
    const t = this.now();
    if (!this.pending) {
      this.pending = { changes, started: t, last: t, transactions: 0, userEvents: new Set() };
      this.timer = this.timers.setTimeout(() => this.close(), this.windowMs);
    } else {
      this.pending.changes = this.pending.changes.compose(changes);
      this.pending.last = t;
    }
    this.pending.transactions += 1;
    if (userEvent) this.pending.userEvents.add(userEvent);
  }

  /** Sends the open window now (before a run, a blur, leaving the page...). */
  close() {
    if (this.timer != null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    if (!batch) return;
    this.pending = null;
    const changes = [];
    batch.changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
      changes.push([fromA, toA, inserted.toString()]);
    });
    let length = batch.changes.length;
    for (const part of splitChanges(changes, this.maxChars)) {
      const baseLength = length;
      for (const [from, to, text] of part) length += text.length - (to - from);
      this.emit(
        "edit",
        {
          task: this.task,
          changes: part,
          version_hint: this.getVersion(),
          base_length: baseLength,
          length,
          started: isoTime(batch.started),
          transactions: batch.transactions,
          user_events: Array.from(batch.userEvents),
        },
        batch.last,
      );
    }
    if (batch.last - this.lastSnapshotAt >= this.snapshotMs) this.snapshot("periodic");
  }

  /** The whole code, so a replay can start or resync here. Closes the open window first. */
  snapshot(reason, code = undefined) {
    if (this.pending) {
      this.close();
      if (reason === "periodic") return; // close() just sent one if it was due
    }
    const t = this.now();
    const text = code ?? this.getDoc();
    this.lastSnapshotAt = t;
    this.emit(
      "snapshot",
      { task: this.task, code: text, length: text.length, version_hint: this.getVersion(), reason },
      t,
    );
  }
}
