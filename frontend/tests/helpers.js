// Test doubles: a clock with timers that only move when told to, and a scripted server.

export class FakeClock {
  constructor(start = 1_700_000_000_000) {
    this.time = start;
    this.timers = new Map();
    this.nextId = 1;
    this.now = () => this.time;
    this.setTimeout = (fn, ms = 0) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.time + Math.max(0, ms), fn, every: null });
      return id;
    };
    this.clearTimeout = (id) => this.timers.delete(id);
    this.setInterval = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.time + ms, fn, every: ms });
      return id;
    };
    this.clearInterval = this.clearTimeout;
  }

  /** Moves time forward by `ms`, firing due timers in order and letting promises settle. */
  async advance(ms) {
    const end = this.time + ms;
    for (;;) {
      await settle();
      let nextId = null;
      let next = null;
      for (const [id, t] of this.timers) {
        if (t.at <= end && (next === null || t.at < next.at)) {
          next = t;
          nextId = id;
        }
      }
      if (next === null) break;
      this.time = next.at;
      if (next.every) next.at += next.every;
      else this.timers.delete(nextId);
      next.fn();
    }
    this.time = end;
    await settle();
  }
}

/** Lets pending promise callbacks run (several rounds of the event loop). */
export async function settle() {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A fake endpoint: `respond(body)` decides each answer; every request body is recorded. */
export function fakeServer(respond) {
  const server = {
    requests: [],
    respond,
    async post(body) {
      server.requests.push(structuredClone(body));
      return server.respond(body, server.requests.length);
    },
  };
  return server;
}

/** A promise with its resolve exposed, to hold a response back. */
export function deferred() {
  let resolve;
  const promise = new Promise((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
