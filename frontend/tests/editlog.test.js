import { test } from "node:test";
import assert from "node:assert/strict";
import { EditorState, Transaction } from "@codemirror/state";
import { EditLog, splitChanges } from "../src/editlog.js";
import { applyChanges, replay } from "../src/replay.js";
import { FakeClock } from "./helpers.js";

// A small seeded generator (mulberry32) so a failure can be reproduced.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ["a", "x = 1\n", "    ", "await trio.sleep(1)", "\n", "é", "😀", "\t", "async with trio.open_nursery() as n:\n"];

function randomChanges(random, length) {
  const count = 1 + Math.floor(random() * 3);
  const points = Array.from({ length: count * 2 }, () => Math.floor(random() * (length + 1))).sort((a, b) => a - b);
  const changes = [];
  for (let i = 0; i < count; i++) {
    const from = points[2 * i];
    const to = random() < 0.5 ? from : points[2 * i + 1];
    const insert = random() < 0.3 ? "" : PIECES[Math.floor(random() * PIECES.length)];
    if (from === to && insert === "") continue;
    changes.push({ from, to, insert });
  }
  return changes;
}

function session(seed, maxChars = undefined) {
  const random = rng(seed);
  const clock = new FakeClock();
  const starter = "import trio\n\nasync def main():\n    pass\n\ntrio.run(main)\n";
  let state = EditorState.create({ doc: starter });
  const events = [];
  let seq = 0;
  const log = new EditLog({
    task: "tasks/one",
    emit: (type, payload, time) => events.push({ seq: ++seq, type, payload, time }),
    getDoc: () => state.doc.toString(),
    getVersion: () => 0,
    now: clock.now,
    timers: clock,
    maxChars,
  });
  return { random, clock, starter, events, log, get state() { return state; }, set state(s) { state = s; } };
}

test("the edit events replay the document exactly, from the starter", async () => {
  for (const [seed, maxChars] of [[1], [2], [3], [42], [2024], [5, 7], [6, 1], [8, 30]]) {
    const s = session(seed, maxChars);
    s.log.snapshot("load");
    for (let step = 0; step < 400; step++) {
      const changes = randomChanges(s.random, s.state.doc.length);
      if (changes.length === 0) continue;
      const userEvent = s.random() < 0.1 ? "undo" : "input.type";
      const tr = s.state.update({ changes, annotations: Transaction.userEvent.of(userEvent) });
      s.state = tr.state;
      s.log.record(tr.changes, userEvent);
      await s.clock.advance(Math.floor(s.random() * 700));
    }
    s.log.close();
    const edits = s.events.filter((e) => e.type === "edit");
    assert.ok(edits.length > 20, "edits are batched, not one per keystroke, but still frequent");
    if (maxChars === undefined) assert.ok(edits.length < 400);
    else for (const e of edits) assert.ok(e.payload.changes.reduce((n, c) => n + c[2].length, 0) <= maxChars);
    // From the starter, ignoring snapshots: edits alone are enough.
    assert.equal(replay(edits, s.starter), s.state.doc.toString(), `seed ${seed}`);
    // With the snapshots, from nothing.
    assert.equal(replay(s.events, ""), s.state.doc.toString(), `seed ${seed}`);
  }
});

test("an edit window closes about a second after its first change, with the window's times", async () => {
  const s = session(7);
  const type = (text) => {
    const tr = s.state.update({ changes: { from: s.state.doc.length, insert: text }, annotations: Transaction.userEvent.of("input.type") });
    s.state = tr.state;
    s.log.record(tr.changes, "input.type");
  };
  const t0 = s.clock.now();
  type("a");
  await s.clock.advance(400);
  type("b");
  await s.clock.advance(400);
  type("c");
  assert.equal(s.events.length, 0);
  await s.clock.advance(300);
  assert.equal(s.events.length, 2); // the edit, and the first periodic snapshot
  const [edit, snapshot] = s.events;
  assert.equal(edit.type, "edit");
  assert.deepEqual(edit.payload.changes, [[s.starter.length, s.starter.length, "abc"]]);
  assert.equal(edit.payload.transactions, 3);
  assert.deepEqual(edit.payload.user_events, ["input.type"]);
  assert.equal(edit.payload.started, new Date(t0).toISOString());
  assert.equal(edit.time, t0 + 800); // client time of the last change in the window
  assert.equal(edit.payload.base_length, s.starter.length);
  assert.equal(edit.payload.length, s.starter.length + 3);
  assert.equal(snapshot.type, "snapshot");
  assert.equal(snapshot.payload.code, s.starter + "abc");
});

test("a snapshot follows every ~15 s of editing, not while idle", async () => {
  const s = session(9);
  s.log.snapshot("load");
  for (let i = 0; i < 60; i++) {
    const tr = s.state.update({ changes: { from: 0, insert: "x" } });
    s.state = tr.state;
    s.log.record(tr.changes, "input.type");
    await s.clock.advance(1000);
  }
  await s.clock.advance(120_000); // idle: no snapshots
  const snapshots = s.events.filter((e) => e.type === "snapshot");
  assert.equal(snapshots[0].payload.reason, "load");
  const periodic = snapshots.filter((e) => e.payload.reason === "periodic");
  assert.ok(periodic.length >= 3 && periodic.length <= 4, `got ${periodic.length}`);
  for (let i = 1; i < snapshots.length; i++) {
    assert.ok(snapshots[i].time - snapshots[i - 1].time >= 15000);
  }
});

test("changes apply from last to first, in the coordinates before the edit", () => {
  assert.equal(applyChanges("hello world", [[0, 5, "HELLO"], [6, 11, "there"]]), "HELLO there");
  assert.equal(applyChanges("abc", [[1, 1, "X"], [2, 3, ""]]), "aXb");
  assert.throws(() => replay([{ type: "edit", seq: 1, payload: { changes: [], base_length: 5 } }], "abc"));
});

test("a long paste is split into edit events that each fit the server's payload limit", () => {
  const doc = "0123456789";
  const changes = [[1, 2, "A".repeat(25)], [5, 5, "bb"], [8, 10, "C".repeat(9)]];
  const parts = splitChanges(changes, 10);
  let out = doc;
  for (const part of parts) {
    assert.ok(part.reduce((n, c) => n + c[2].length, 0) <= 10);
    out = applyChanges(out, part);
  }
  assert.equal(out, applyChanges(doc, changes));
  assert.deepEqual(splitChanges(changes, 100), [changes]);
});
