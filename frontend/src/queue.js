// The telemetry queue. Every event is written to localStorage before anything is sent, under
// its own key, so that it survives a reload, a crash or a lost connection, and so that two
// tabs of the same participant (which share localStorage) never overwrite each other's
// events. An event leaves the queue only after the server answered 200 for a batch holding
// it; the server stores each event id once, so sending one twice is harmless.
//
// Pure: storage, transport, clock, timers and ids are injected; the tests run it in Node.

import { backoffDelay, isoTime, uuid4 } from "./util.js";

const MAX_BATCH = 200; // the server's limit per request
const MAX_BATCH_BYTES = 512 * 1024;
// sendBeacon refuses bodies once ~64 KiB are queued by the page; the saves go first.
const BEACON_BYTES = 40 * 1024;
// 4xx answers that say "this content will never be accepted": the batch is split until the
// offending event is alone, and that event is then dropped so it cannot block the rest.
// Every other failure (network, 5xx, 403, 408, 409, 429) keeps the events and retries.
const REJECTED = new Set([400, 413, 422]);

export class EventQueue {
  /**
   * @param {object} o
   * @param {Storage} o.storage  localStorage or a stand-in
   * @param {string} o.prefix    key prefix, unique per participant
   * @param {string} o.stage     stage key stamped on each event
   * @param {(events: object[]) => Promise<{status: number, data: any}>} o.send
   * @param {((events: object[]) => boolean)|null} [o.beacon]
   */
  constructor({
    storage,
    prefix,
    stage,
    send,
    beacon = null,
    now = Date.now,
    uuid = uuid4,
    timers = globalThis,
    intervalMs = 3000,
    maxBatch = MAX_BATCH,
    maxBatchBytes = MAX_BATCH_BYTES,
    beaconBytes = BEACON_BYTES,
    backoff = {},
  }) {
    Object.assign(this, { storage, stage, send, beacon, now, uuid, timers, intervalMs });
    Object.assign(this, { maxBatch, maxBatchBytes, beaconBytes, backoff });
    this.eventPrefix = `${prefix}:ev:`;
    this.seqKey = `${prefix}:seq`;
    this.memory = new Map(); // events the storage refused (quota full)
    this.lastSeq = 0;
    this.failures = 0;
    this.nextAttemptAt = 0;
    this.batchLimit = maxBatch;
    this.inflight = null;
    this.interval = null;
    this.dropped = 0;
  }

  /** Adds an event and returns it. `clientTime` (ms) defaults to now. */
  enqueue(type, payload, clientTime = undefined, stage = this.stage) {
    const event = {
      id: this.uuid(),
      seq: this.nextSeq(),
      type,
      client_time: isoTime(clientTime ?? this.now()),
      stage,
      payload: payload ?? {},
    };
    try {
      this.storage.setItem(this.eventPrefix + event.id, JSON.stringify(event));
    } catch {
      this.memory.set(event.id, event);
    }
    return event;
  }

  nextSeq() {
    let stored = 0;
    try {
      stored = Number.parseInt(this.storage.getItem(this.seqKey) ?? "0", 10) || 0;
    } catch {
      stored = 0;
    }
    const seq = Math.max(stored, this.lastSeq) + 1;
    this.lastSeq = seq;
    try {
      this.storage.setItem(this.seqKey, String(seq));
    } catch {
      // Kept in memory only; ids, not seqs, make events unique.
    }
    return seq;
  }

  /** Unsent events of this participant (any tab, any earlier page), oldest first. */
  pending() {
    const byId = new Map(this.memory);
    const keys = [];
    try {
      for (let i = 0; i < this.storage.length; i++) {
        const key = this.storage.key(i);
        if (key && key.startsWith(this.eventPrefix)) keys.push(key);
      }
    } catch {
      // Storage unreadable: only the in-memory events remain.
    }
    for (const key of keys) {
      try {
        const event = JSON.parse(this.storage.getItem(key));
        if (event && event.id) byId.set(event.id, event);
      } catch {
        this.removeKey(key); // corrupt entry: it could never be sent
      }
    }
    // Seq first; the client time orders events of two tabs that drew the same seq.
    return Array.from(byId.values()).sort(
      (a, b) => a.seq - b.seq || (a.client_time < b.client_time ? -1 : a.client_time > b.client_time ? 1 : 0),
    );
  }

  get size() {
    return this.pending().length;
  }

  removeKey(key) {
    try {
      this.storage.removeItem(key);
    } catch {
      // Left for a later flush; the server dedupes.
    }
  }

  remove(ids) {
    for (const id of ids) {
      this.memory.delete(id);
      this.removeKey(this.eventPrefix + id);
    }
  }

  /** The first events that fit in `count` events and `bytes` of JSON (at least one). */
  static take(events, count, bytes) {
    const batch = [];
    let size = 2;
    for (const event of events) {
      if (batch.length >= count) break;
      const n = JSON.stringify(event).length + 1;
      if (batch.length > 0 && size + n > bytes) break;
      batch.push(event);
      size += n;
    }
    return batch;
  }

  /**
   * Sends pending events in batches until the queue is empty or a batch fails. Concurrent
   * calls share one run. `force` ignores the backoff wait (used before leaving the page).
   * Resolves to {ok, remaining}.
   */
  flush({ force = false } = {}) {
    if (this.inflight) return this.inflight;
    this.inflight = this.flushNow(force).finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  async flushNow(force) {
    for (let round = 0; round < 50; round++) {
      const events = this.pending();
      if (events.length === 0) return { ok: true, remaining: 0 };
      if (!force && this.now() < this.nextAttemptAt) return { ok: false, remaining: events.length };
      const batch = EventQueue.take(events, this.batchLimit, this.maxBatchBytes);
      let status = 0;
      try {
        ({ status } = await this.send(batch));
      } catch {
        status = 0;
      }
      if (status === 200) {
        this.remove(batch.map((e) => e.id));
        this.failures = 0;
        this.nextAttemptAt = 0;
        this.batchLimit = Math.min(this.maxBatch, this.batchLimit * 2);
      } else if (REJECTED.has(status)) {
        if (batch.length > 1) {
          this.batchLimit = Math.ceil(batch.length / 2);
        } else {
          this.remove([batch[0].id]);
          this.dropped += 1;
        }
      } else {
        this.failures += 1;
        this.nextAttemptAt = this.now() + backoffDelay(this.failures, this.backoff);
        return { ok: false, remaining: this.pending().length };
      }
    }
    return { ok: false, remaining: this.pending().length };
  }

  /** The connection is back: forget the backoff and send now. */
  online() {
    this.failures = 0;
    this.nextAttemptAt = 0;
    return this.flush();
  }

  /** Sends what fits in one beacon (page being hidden or closed). Keeps the events: without
   *  an answer we cannot know they arrived, and the next flush resends them. */
  beaconFlush() {
    if (!this.beacon) return false;
    const batch = EventQueue.take(this.pending(), this.maxBatch, this.beaconBytes);
    if (batch.length === 0) return true;
    try {
      return Boolean(this.beacon(batch));
    } catch {
      return false;
    }
  }

  /** Flushes every `intervalMs` (honouring the backoff). */
  start() {
    if (this.interval == null) {
      this.interval = this.timers.setInterval(() => {
        this.flush();
      }, this.intervalMs);
    }
  }

  stop() {
    if (this.interval != null) this.timers.clearInterval(this.interval);
    this.interval = null;
  }
}
