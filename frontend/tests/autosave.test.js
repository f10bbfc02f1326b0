import { test } from "node:test";
import assert from "node:assert/strict";
import { STATES, TaskSaver, draftKey, draftToRestore } from "../src/autosave.js";
import { MemoryStorage, readJSON } from "../src/storage.js";
import { FakeClock, deferred, fakeServer } from "./helpers.js";

/** A server that keeps versions like the real one: a save must be based on the latest. */
function versionedServer(initial = { version: 0, code: "start" }) {
  const db = { ...initial, log: [] };
  const server = fakeServer((body) => {
    if (body.base_version !== db.version) {
      return { status: 409, data: { error: "conflict", version: db.version, code: db.code } };
    }
    db.version += 1;
    db.code = body.code;
    db.log.push(body.code);
    return { status: 200, data: { version: db.version } };
  });
  server.db = db;
  return server;
}

function makeSaver({ server, clock = new FakeClock(), storage = new MemoryStorage(), code = "start", version = 0, ...rest }) {
  const editor = { code };
  const states = [];
  const saver = new TaskSaver({
    stage: "task1",
    task: "tasks/one",
    version,
    savedCode: code,
    getCode: () => editor.code,
    post: (body) => server.post(body),
    storage,
    draftKey: draftKey("skilltrial:p1", "task1", "tasks/one"),
    now: clock.now,
    timers: clock,
    backoff: { random: () => 1 },
    onState: (s) => states.push(s),
    ...rest,
  });
  const type = (text) => {
    editor.code = text;
    saver.changed();
  };
  return { saver, editor, clock, storage, states, type, server };
}

test("saves 1.5 s after typing stops, with the base version and the code", async () => {
  const server = versionedServer();
  const { saver, clock, type } = makeSaver({ server });
  type("a");
  await clock.advance(1000);
  type("ab");
  await clock.advance(1000);
  assert.equal(server.requests.length, 0);
  await clock.advance(600);
  assert.equal(server.requests.length, 1);
  const body = server.requests[0];
  assert.deepEqual(
    { stage: body.stage, task: body.task, base_version: body.base_version, code: body.code, source: body.source },
    { stage: "task1", task: "tasks/one", base_version: 0, code: "ab", source: "autosave" },
  );
  assert.equal(saver.version, 1);
  assert.equal(saver.state, STATES.SAVED);
});

test("saves at least every 10 s while typing goes on", async () => {
  const server = versionedServer();
  const { clock, type } = makeSaver({ server });
  let text = "";
  for (let i = 0; i < 25; i++) {
    text += "x";
    type(text);
    await clock.advance(1000); // never a 1.5 s pause
  }
  assert.equal(server.requests.length, 2);
  assert.deepEqual(server.requests.map((r) => r.code.length), [10, 20]); // at 10 s and 20 s
});

test("the draft is kept in storage until saved, on top of its base version", async () => {
  const server = versionedServer();
  const { clock, storage, type } = makeSaver({ server });
  const key = draftKey("skilltrial:p1", "task1", "tasks/one");
  type("draft");
  assert.deepEqual(
    { base: readJSON(storage, key).base_version, code: readJSON(storage, key).code },
    { base: 0, code: "draft" },
  );
  await clock.advance(2000);
  assert.equal(readJSON(storage, key), null);
});

test("typing during a save keeps the draft on the new version and saves again", async () => {
  const server = versionedServer();
  const hold = deferred();
  const inner = server.respond;
  server.respond = async (body, n) => {
    if (n === 1) await hold.promise;
    return inner(body, n);
  };
  const { saver, clock, storage, type } = makeSaver({ server });
  type("one");
  await clock.advance(1600); // save 1 in flight
  type("one two");
  hold.resolve();
  await clock.advance(10);
  assert.equal(saver.version, 1);
  assert.equal(readJSON(storage, draftKey("skilltrial:p1", "task1", "tasks/one")).base_version, 1);
  await clock.advance(2000);
  assert.deepEqual(server.db.log, ["one", "one two"]);
  assert.equal(saver.state, STATES.SAVED);
});

test("offline: says so, keeps the draft, retries with backoff and saves when back", async () => {
  const server = versionedServer();
  const online = server.respond;
  server.respond = () => ({ status: 0, data: null });
  const { saver, clock, storage, type } = makeSaver({ server });
  type("offline work");
  await clock.advance(1600);
  assert.equal(saver.state, STATES.OFFLINE);
  assert.equal(readJSON(storage, draftKey("skilltrial:p1", "task1", "tasks/one")).code, "offline work");
  await clock.advance(1000); // first retry
  assert.equal(server.requests.length, 2);
  server.respond = online;
  await clock.advance(60_000);
  assert.equal(saver.state, STATES.SAVED);
  assert.deepEqual(server.db.log, ["offline work"]);
});

test("a newer version from another tab is never overwritten: conflict, then the participant chooses", async () => {
  const server = versionedServer();
  const conflicts = [];
  const tabA = makeSaver({ server, onConflict: (c) => conflicts.push(c) });
  const tabB = makeSaver({ server, clock: tabA.clock });
  tabB.type("from tab B");
  await tabB.clock.advance(1600);
  assert.equal(server.db.version, 1);
  tabA.type("from tab A");
  await tabA.clock.advance(1600);
  assert.equal(tabA.saver.state, STATES.CONFLICT);
  assert.deepEqual(conflicts, [{ version: 1, code: "from tab B" }]);
  assert.equal(server.db.code, "from tab B");
  // No more automatic saves while the conflict is open, however much is typed.
  tabA.type("from tab A, more");
  await tabA.clock.advance(30_000);
  assert.equal(server.db.code, "from tab B");
  // "Load the latest version".
  const latest = tabA.saver.loadLatest();
  assert.deepEqual(latest, { version: 1, code: "from tab B" });
  tabA.editor.code = latest.code;
  assert.equal(tabA.saver.state, STATES.SAVED);
  assert.equal(tabA.saver.version, 1);
  tabA.type("from tab B, edited in A");
  await tabA.clock.advance(1600);
  assert.deepEqual(server.db.log, ["from tab B", "from tab B, edited in A"]);
});

test("a Run of unchanged code, stored as a newer version, is not taken for another tab's", async () => {
  // The server stores the code of every Run and Check as a version. A Run of the starter
  // code (before any save) makes version 1 = the code this tab started from.
  const server = versionedServer();
  const { saver, clock, type } = makeSaver({ server });
  server.db.version = 1; // the Run's version, holding "start"
  type("start, then edited");
  await clock.advance(1600);
  assert.equal(saver.state, STATES.SAVED);
  assert.equal(saver.version, 2);
  assert.deepEqual(server.db.log, ["start, then edited"]);
});

test("a Run's code remembered as sent is adopted when the server stored it", async () => {
  const server = versionedServer();
  const { saver, clock, type } = makeSaver({ server });
  type("run me");
  saver.remember("run me"); // the page sent it with Run (say the autosave failed)
  server.db.version = 1;
  server.db.code = "run me";
  type("run me, then more");
  await clock.advance(1600);
  assert.equal(saver.state, STATES.SAVED);
  assert.deepEqual(server.db.log, ["run me, then more"]);
});

test("keeping this tab's code saves it on top of the newer version", async () => {
  const server = versionedServer({ version: 3, code: "other tab" });
  const { saver, clock, type } = makeSaver({ server, code: "old", version: 2 });
  type("mine");
  await clock.advance(1600);
  assert.equal(saver.state, STATES.CONFLICT);
  await saver.keepMine();
  assert.equal(server.db.code, "mine");
  assert.equal(server.requests.at(-1).base_version, 3);
  assert.equal(saver.state, STATES.SAVED);
});

test("the tab's own beacon save is not mistaken for another tab's", async () => {
  const server = versionedServer();
  const beacons = [];
  const { saver, clock, type } = makeSaver({
    server,
    beacon: (body) => {
      beacons.push(body);
      server.post(body); // the server stores it; the page never sees the answer
      return true;
    },
  });
  type("typed then hidden");
  assert.equal(saver.beaconSave(), true);
  assert.equal(saver.beaconSave(), true); // pagehide after visibilitychange: not sent twice
  assert.equal(beacons.length, 1);
  assert.equal(beacons[0].source, "beacon");
  assert.equal(server.db.version, 1);
  await clock.advance(1600); // the debounced save, on the old base version
  assert.equal(saver.state, STATES.SAVED);
  assert.equal(saver.version, 1);
  type("typed then hidden, and more");
  await clock.advance(1600);
  assert.equal(saver.state, STATES.SAVED);
  assert.deepEqual(server.db.log, ["typed then hidden", "typed then hidden, and more"]);
});

test("a save whose answer was lost (stored, then timed out) is recognised afterwards", async () => {
  const server = versionedServer();
  const real = server.respond;
  let lose = true;
  server.respond = (body, n) => {
    const answer = real(body, n);
    if (lose) {
      lose = false;
      return { status: 0, data: null };
    }
    return answer;
  };
  const { saver, clock, type } = makeSaver({ server });
  type("v1");
  await clock.advance(1600);
  assert.equal(saver.state, STATES.OFFLINE);
  type("v1 and more");
  await clock.advance(5000);
  assert.equal(saver.state, STATES.SAVED);
  assert.deepEqual(server.db.log, ["v1", "v1 and more"]);
});

test("stage over: stops saving and reports where to go", async () => {
  const server = fakeServer(() => ({ status: 409, data: { error: "stage_over", redirect: "/t/x/next/" } }));
  const redirects = [];
  const { saver, clock, type } = makeSaver({ server, onStageOver: (url) => redirects.push(url) });
  type("late");
  await clock.advance(1600);
  assert.equal(saver.state, STATES.STAGE_OVER);
  assert.deepEqual(redirects, ["/t/x/next/"]);
  type("later");
  await clock.advance(30_000);
  assert.equal(server.requests.length, 1);
});

test("an explicit save resolves only after the current code is stored", async () => {
  const server = versionedServer();
  const { saver, type } = makeSaver({ server });
  type("abc");
  const first = saver.save("blur");
  type("abcd");
  const second = saver.save("autosave");
  await Promise.all([first, second]);
  assert.equal(server.db.code, "abcd");
  assert.equal(saver.state, STATES.SAVED);
});

test("nothing is sent when the code equals the saved code", async () => {
  const server = versionedServer();
  const { saver, clock, type } = makeSaver({ server });
  type("changed");
  type("start");
  await clock.advance(5000);
  await saver.save("blur");
  assert.equal(server.requests.length, 0);
  assert.equal(saver.state, STATES.SAVED);
});

test("a draft is restored only if the server still has the version it was based on", () => {
  const server = { version: 4, code: "saved" };
  assert.equal(draftToRestore({ base_version: 4, code: "saved + typed" }, server), "saved + typed");
  assert.equal(draftToRestore({ base_version: 3, code: "older draft" }, server), null);
  assert.equal(draftToRestore({ base_version: 4, code: "saved" }, server), null);
  assert.equal(draftToRestore(null, server), null);
  assert.equal(draftToRestore({ base_version: 4 }, server), null);
});

test("conflict codes with Windows newlines compare as the editor holds them", async () => {
  const server = fakeServer(() => ({ status: 409, data: { error: "conflict", version: 7, code: "a\r\nb" } }));
  const { saver, editor } = makeSaver({ server });
  editor.code = "a\nb";
  editor.code = "a\nb"; // same as the server's newer version once newlines are normalised
  saver.savedCode = "x";
  await saver.save("autosave");
  assert.equal(saver.version, 7);
  assert.equal(saver.state, STATES.SAVED);
});

test("a 400 for code that is too long is final: shown once, not retried, the saved version kept", async () => {
  // A server without a length limit of its own in the client: the client was given none.
  const server = fakeServer((body) =>
    body.code.length > 20
      ? { status: 400, data: { error: "refused", message: "the code is longer than 20 characters" } }
      : { status: 200, data: { version: 1 } },
  );
  const { saver, clock, storage, type, states } = makeSaver({ server });
  type("x".repeat(50));
  await clock.advance(2000);
  assert.equal(server.requests.length, 1);
  assert.equal(saver.state, STATES.TOO_LONG);
  assert.equal(saver.refusal, "the code is longer than 20 characters");
  await clock.advance(120_000); // no retry, however long
  assert.equal(server.requests.length, 1);
  assert.ok(!states.includes(STATES.ERROR) && !states.includes(STATES.OFFLINE), states.join());
  // Nothing saved is lost: the server's version stays the base, the long code stays as a draft.
  assert.equal(saver.version, 0);
  assert.equal(readJSON(storage, draftKey("skilltrial:p1", "task1", "tasks/one")).code.length, 50);
  // Shortened, it saves again.
  type("short");
  await clock.advance(2000);
  assert.equal(server.requests.length, 2);
  assert.equal(saver.state, STATES.SAVED);
});

test("code over the known limit is never sent, and saves again once short enough", async () => {
  const server = versionedServer();
  const { saver, clock, type } = makeSaver({ server, maxChars: 10 });
  type("y".repeat(11));
  await clock.advance(5000);
  assert.equal(await saver.save("blur"), STATES.TOO_LONG);
  assert.equal(server.requests.length, 0);
  type("y".repeat(10));
  await clock.advance(2000);
  assert.equal(server.requests.length, 1);
  assert.equal(saver.state, STATES.SAVED);
});

test("another 400 is final too, with the server's reason", async () => {
  const server = fakeServer(() => ({ status: 400, data: { error: "bad_request", message: "'code' must be text" } }));
  const { saver, clock, type } = makeSaver({ server });
  type("abc");
  await clock.advance(60_000);
  assert.equal(server.requests.length, 1);
  assert.equal(saver.state, STATES.REFUSED);
  assert.equal(saver.refusal, "'code' must be text");
});
