import { test } from "node:test";
import assert from "node:assert/strict";
import { EventQueue } from "../src/queue.js";
import { MemoryStorage } from "../src/storage.js";
import { backoffDelay } from "../src/util.js";
import { FakeClock, fakeServer } from "./helpers.js";

function makeQueue({ storage = new MemoryStorage(), clock = new FakeClock(), server, ...rest } = {}) {
  let n = 0;
  const queue = new EventQueue({
    storage,
    prefix: "skilltrial:p1",
    stage: "task1",
    send: (events) => server.post(events),
    now: clock.now,
    timers: clock,
    uuid: () => `id-${++n}-${Math.random().toString(16).slice(2)}`,
    backoff: { random: () => 1 },
    ...rest,
  });
  return { queue, storage, clock, server };
}

const ok = () => ({ status: 200, data: { stored: 1, duplicates: 0 } });

test("events are stored with an id, an increasing seq, a client time and the stage", () => {
  const { queue } = makeQueue({ server: fakeServer(ok) });
  const a = queue.enqueue("focus", { scope: "window" });
  const b = queue.enqueue("blur", { scope: "window" });
  assert.equal(b.seq, a.seq + 1);
  assert.notEqual(a.id, b.id);
  assert.equal(a.stage, "task1");
  assert.match(a.client_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.deepEqual(queue.pending().map((e) => e.type), ["focus", "blur"]);
});

test("unsent events and the seq counter survive a reload", () => {
  const storage = new MemoryStorage();
  const server = fakeServer(ok);
  makeQueue({ storage, server }).queue.enqueue("edit", { n: 1 });
  const { queue } = makeQueue({ storage, server }); // a new page on the same browser storage
  const next = queue.enqueue("edit", { n: 2 });
  assert.equal(next.seq, 2);
  assert.deepEqual(queue.pending().map((e) => e.payload.n), [1, 2]);
});

test("a flush sends pending events in order and removes them only after a 200", async () => {
  const server = fakeServer(ok);
  const { queue } = makeQueue({ server });
  for (let i = 0; i < 5; i++) queue.enqueue("edit", { i });
  const result = await queue.flush();
  assert.deepEqual(result, { ok: true, remaining: 0 });
  assert.equal(server.requests.length, 1);
  assert.deepEqual(server.requests[0].map((e) => e.payload.i), [0, 1, 2, 3, 4]);
  assert.equal(queue.size, 0);
});

test("batches hold at most 200 events", async () => {
  const server = fakeServer(ok);
  const { queue } = makeQueue({ server });
  for (let i = 0; i < 450; i++) queue.enqueue("edit", { i });
  await queue.flush();
  assert.deepEqual(server.requests.map((r) => r.length), [200, 200, 50]);
  assert.equal(queue.size, 0);
});

test("events stay queued on a server error and on a network failure", async () => {
  const server = fakeServer(() => ({ status: 503, data: null }));
  const { queue, clock } = makeQueue({ server });
  queue.enqueue("edit", {});
  assert.equal((await queue.flush()).ok, false);
  assert.equal(queue.size, 1);
  server.respond = () => {
    throw new TypeError("Failed to fetch");
  };
  await clock.advance(60_000);
  assert.equal((await queue.flush()).ok, false);
  assert.equal(queue.size, 1);
  server.respond = ok;
  await clock.advance(60_000);
  assert.equal((await queue.flush()).ok, true);
  assert.equal(queue.size, 0);
});

test("retries back off exponentially up to about 30 seconds", async () => {
  const clock = new FakeClock();
  const start = clock.now();
  const times = [];
  const server = fakeServer(() => {
    times.push(clock.now() - start);
    return { status: 0, data: null };
  });
  const { queue } = makeQueue({ server, clock, intervalMs: 250 });
  queue.enqueue("edit", {});
  queue.start();
  await clock.advance(5 * 60_000);
  queue.stop();
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  // With random() = 1 each wait is the whole step: 1, 2, 4, 8, 16 s, then 30 s (the cap).
  assert.deepEqual(gaps.slice(0, 7), [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.ok(gaps.every((g) => g <= 30000));
  assert.equal(queue.size, 1);
});

test("the backoff jitter stays between half and all of the step", () => {
  for (let f = 1; f < 12; f++) {
    const low = backoffDelay(f, { random: () => 0 });
    const high = backoffDelay(f, { random: () => 1 });
    assert.equal(low * 2, high);
    assert.ok(high <= 30000);
  }
  assert.equal(backoffDelay(0), 0);
});

test("the flush interval sends new events and honours the backoff", async () => {
  let failing = true;
  const server = fakeServer(() => (failing ? { status: 500, data: null } : ok()));
  const { queue, clock } = makeQueue({ server, intervalMs: 3000 });
  queue.start();
  queue.enqueue("edit", {});
  await clock.advance(3000);
  assert.equal(server.requests.length, 1); // failed: next try in 1 s, at the next tick
  failing = false;
  await clock.advance(3000);
  assert.equal(server.requests.length, 2);
  assert.equal(queue.size, 0);
  queue.stop();
});

test("coming back online retries at once", async () => {
  let failing = true;
  const server = fakeServer(() => (failing ? { status: 0, data: null } : ok()));
  const { queue } = makeQueue({ server });
  queue.enqueue("edit", {});
  await queue.flush();
  await queue.flush(); // inside the backoff: no request
  assert.equal(server.requests.length, 1);
  failing = false;
  await queue.online();
  assert.equal(server.requests.length, 2);
  assert.equal(queue.size, 0);
});

test("a rejected event is isolated by splitting the batch and then dropped, the rest is sent", async () => {
  const server = fakeServer((events) =>
    events.some((e) => e.payload.bad) ? { status: 400, data: { error: "invalid" } } : ok(),
  );
  const { queue } = makeQueue({ server });
  for (let i = 0; i < 10; i++) queue.enqueue("edit", { i, bad: i === 6 });
  await queue.flush();
  assert.equal(queue.size, 0);
  assert.equal(queue.dropped, 1);
  const stored = server.requests
    .filter((events) => !events.some((e) => e.payload.bad))
    .flatMap((events) => events.map((e) => e.payload.i));
  assert.deepEqual(stored, [0, 1, 2, 3, 4, 5, 7, 8, 9]);
});

test("403 and 409 keep the events (never dropped)", async () => {
  for (const status of [403, 409, 429]) {
    const server = fakeServer(() => ({ status, data: null }));
    const { queue } = makeQueue({ server });
    queue.enqueue("edit", {});
    await queue.flush();
    assert.equal(queue.size, 1, `status ${status}`);
  }
});

test("two tabs sharing storage lose no event, and the server receives each one", async () => {
  const storage = new MemoryStorage();
  const received = new Map();
  const server = fakeServer((events) => {
    for (const e of events) received.set(e.id, e);
    return ok();
  });
  const tabA = makeQueue({ storage, server }).queue;
  const tabB = makeQueue({ storage, server }).queue;
  const ids = [];
  for (let i = 0; i < 20; i++) ids.push((i % 2 ? tabA : tabB).enqueue("edit", { i }).id);
  await Promise.all([tabA.flush(), tabB.flush()]);
  assert.deepEqual([...received.keys()].sort(), [...ids].sort());
  assert.equal(tabA.size, 0);
});

test("when storage is full, events are kept in memory and still sent", async () => {
  const storage = new MemoryStorage();
  storage.setItem = () => {
    throw new Error("QuotaExceededError");
  };
  const server = fakeServer(ok);
  const { queue } = makeQueue({ storage, server });
  queue.enqueue("edit", { a: 1 });
  queue.enqueue("edit", { a: 2 });
  assert.equal(queue.size, 2);
  await queue.flush();
  assert.deepEqual(server.requests[0].map((e) => e.seq), [1, 2]);
  assert.equal(queue.size, 0);
});

test("concurrent flushes share one request", async () => {
  const server = fakeServer(ok);
  const { queue } = makeQueue({ server });
  queue.enqueue("edit", {});
  await Promise.all([queue.flush(), queue.flush(), queue.flush()]);
  assert.equal(server.requests.length, 1);
});

test("a beacon sends what fits, keeps the events, and the next flush resends them", async () => {
  const beacons = [];
  const server = fakeServer(ok);
  const { queue } = makeQueue({
    server,
    beaconBytes: 2000,
    beacon: (events) => {
      beacons.push(events);
      return true;
    },
  });
  for (let i = 0; i < 50; i++) queue.enqueue("edit", { text: "x".repeat(100), i });
  assert.equal(queue.beaconFlush(), true);
  assert.equal(beacons.length, 1);
  assert.ok(beacons[0].length > 0 && beacons[0].length < 50);
  assert.ok(JSON.stringify(beacons[0]).length <= 2000);
  assert.equal(queue.size, 50);
  await queue.flush();
  assert.equal(queue.size, 0);
});

test("batches are also limited in bytes, with at least one event each", () => {
  const events = [{ big: "y".repeat(5000) }, { small: 1 }, { small: 2 }];
  assert.equal(EventQueue.take(events, 200, 1000).length, 1);
  assert.equal(EventQueue.take(events.slice(1), 200, 1000).length, 2);
  assert.equal(EventQueue.take(events, 2, 1_000_000).length, 2);
});
