import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, webcrypto } from "node:crypto";
import { sha256Hex, sha256HexSync } from "../src/sha256.js";
import { IdleTracker } from "../src/idle.js";
import { normalizeNewlines, uuid4, withTimeout } from "../src/util.js";
import { MemoryStorage, readJSON, writeJSON } from "../src/storage.js";

const SAMPLES = ["", "abc", "a".repeat(55), "a".repeat(56), "a".repeat(64), "é 😀 trio\n".repeat(300)];

test("the pure SHA-256 matches Node's for texts around the block boundaries", () => {
  for (const text of SAMPLES) {
    const expected = createHash("sha256").update(text, "utf8").digest("hex");
    assert.equal(sha256HexSync(new TextEncoder().encode(text)), expected);
  }
});

test("sha256Hex gives the same digest with and without crypto.subtle", async () => {
  for (const text of SAMPLES) {
    assert.equal(await sha256Hex(text, webcrypto.subtle), await sha256Hex(text, null));
  }
});

test("uuid4 works without randomUUID (insecure contexts)", () => {
  const id = uuid4({ getRandomValues: (b) => webcrypto.getRandomValues(b) });
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(uuid4(null), uuid4(null));
});

test("idle is reported when activity resumes after 60 s or more", () => {
  let time = 0;
  const idles = [];
  const idle = new IdleTracker({ onIdle: (i) => idles.push(i), now: () => time });
  time = 59_000;
  idle.activity();
  time = 150_000;
  idle.activity();
  time = 151_000;
  idle.activity();
  assert.deepEqual(idles, [{ seconds: 91, since: 59_000 }]);
});

test("newlines are normalised as CodeMirror does", () => {
  assert.equal(normalizeNewlines("a\r\nb\rc\n"), "a\nb\nc\n");
});

test("withTimeout gives the fallback when the promise is slow", async () => {
  assert.equal(await withTimeout(new Promise(() => {}), 10, "late"), "late");
  assert.equal(await withTimeout(Promise.resolve("now"), 1000, "late"), "now");
});

test("storage helpers survive a broken storage", () => {
  const broken = new MemoryStorage();
  broken.setItem = () => {
    throw new Error("denied");
  };
  broken.getItem = () => "{not json";
  assert.equal(writeJSON(broken, "k", { a: 1 }), false);
  assert.equal(readJSON(broken, "k"), null);
});
