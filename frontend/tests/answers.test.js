import { test } from "node:test";
import assert from "node:assert/strict";
import { AnswersSaver, STATES, collectAnswers, isAnswered, sameAnswers } from "../src/answers.js";
import { FakeClock, fakeServer } from "./helpers.js";

const el = (name, type, value, checked = false) => ({ name, type, value, checked, disabled: false });

test("an unticked box is left out, never sent as [] (which the form would render ticked)", () => {
  const answers = collectAnswers([
    el("csrfmiddlewaretoken", "hidden", "t"),
    el("revision", "hidden", "12"),
    el("pick", "radio", "a"),
    el("pick", "radio", "b", true),
    el("many", "checkbox", "a", true),
    el("many", "checkbox", "b"),
    el("many", "checkbox", "c", true),
    el("none", "checkbox", "a"),
    el("when", "text", "3.50"),
    el("when__idk", "checkbox", "on"),
    el("out", "textarea", "\n  kept  \n"),
    el("why", "textarea", ""),
    el("why__idk", "checkbox", "on", true),
    el("step", "submit", "review"),
  ]);
  assert.deepEqual(answers, {
    pick: "b",
    many: ["a", "c"],
    when: "3.50",
    out: "\n  kept  \n",
    why__idk: true,
  });
  assert.ok(isAnswered(answers, "why") && isAnswered(answers, "pick") && !isAnswered(answers, "none"));
});

test("answers compare as the server stores them (choices in any order)", () => {
  assert.ok(sameAnswers({ many: ["c", "a"], x: "1" }, { x: "1", many: ["a", "c"] }));
  assert.ok(!sameAnswers({ x: "1" }, { x: "1", y__idk: true }));
  assert.ok(!sameAnswers({ x: "1 " }, { x: "1" }));
});

/** A server that keeps revisions like the real one. */
function revisionServer(initial = {}) {
  const db = { revision: "0", answers: initial };
  const server = fakeServer((body) => {
    if (body.revision !== db.revision) {
      return {
        status: 409,
        data: { error: "answers_changed", revision: db.revision, answers: db.answers },
      };
    }
    db.revision = String(Number(db.revision) + 1);
    db.answers = body.answers;
    return { status: 200, data: { saved: true, revision: db.revision } };
  });
  server.db = db;
  return server;
}

function makeSaver(server, page, clock = new FakeClock(), extra = {}) {
  const states = [];
  const changed = [];
  const saver = new AnswersSaver({
    stage: "quiz",
    revision: server.db.revision,
    getAnswers: () => structuredClone(page.answers),
    post: (body) => server.post(body),
    timers: clock,
    now: clock.now,
    onState: (s) => states.push(s),
    onChanged: (c) => changed.push(c),
    ...extra,
  });
  return { saver, states, changed, clock };
}

test("a change is saved after a pause, on top of the revision the server gave", async () => {
  const server = revisionServer();
  const page = { answers: {} };
  const { saver, clock } = makeSaver(server, page);
  page.answers = { when: "3" };
  saver.changed();
  await clock.advance(1000);
  assert.equal(saver.state, STATES.SAVED);
  page.answers = { when: "3", pick: "a" };
  saver.changed();
  await clock.advance(1000);
  assert.deepEqual(server.db.answers, { when: "3", pick: "a" });
  assert.deepEqual(
    server.requests.map((r) => r.revision),
    ["0", "1"],
  );
});

test("a stale tab is told and never overwrites the newer answers", async () => {
  const server = revisionServer();
  const first = makeSaver(server, { answers: {} });
  const secondPage = { answers: {} };
  const second = makeSaver(server, secondPage);
  first.saver.getAnswers = () => ({ pick: "b" });
  first.saver.changed();
  await first.clock.advance(1000);
  secondPage.answers = { when: "3" };
  second.saver.changed();
  await second.clock.advance(1000);
  assert.equal(second.saver.state, STATES.CHANGED);
  assert.deepEqual(second.changed, [{ revision: "1", answers: { pick: "b" } }]);
  assert.deepEqual(server.db.answers, { pick: "b" });
  // It stays quiet: further edits send nothing.
  secondPage.answers = { when: "4" };
  second.saver.changed();
  await second.clock.advance(60_000);
  assert.equal(server.requests.length, 2);
});

test("a newer revision holding this tab's own answers (a lost reply) is adopted", async () => {
  const server = revisionServer();
  const page = { answers: {} };
  const { saver, clock } = makeSaver(server, page);
  server.db.revision = "7"; // the save went through; its reply was lost
  server.db.answers = { when: "3" };
  page.answers = { when: "3" };
  saver.changed();
  await clock.advance(1000);
  assert.equal(saver.state, STATES.SAVED);
  assert.equal(saver.revision, "7");
});

test("offline: retried with backoff, then saved", async () => {
  let up = false;
  const server = revisionServer();
  const real = server.respond;
  server.respond = (body, n) => (up ? real(body, n) : { status: 0, data: null });
  const page = { answers: {} };
  const { saver, clock } = makeSaver(server, page);
  page.answers = { word: "x" };
  saver.changed();
  await clock.advance(1000);
  assert.equal(saver.state, STATES.OFFLINE);
  up = true;
  await clock.advance(30_000);
  assert.equal(saver.state, STATES.SAVED);
  assert.deepEqual(server.db.answers, { word: "x" });
});
