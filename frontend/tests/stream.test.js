import { test } from "node:test";
import assert from "node:assert/strict";
import { SSEParser, askAssistant } from "../src/stream.js";

const sse = (...messages) => messages.map((m) => `data: ${JSON.stringify(m)}\n\n`).join("");

test("the SSE parser joins messages split anywhere and skips what is not a message", () => {
  const text = `: comment\n\n${sse({ type: "start", turn: 7 }, { type: "delta", text: "Hé 😀\n\n" })}data: not json\n\n${sse({ type: "done", turn: 7 })}`;
  for (const size of [1, 2, 5, 17, text.length]) {
    const seen = [];
    const parser = new SSEParser((m) => seen.push(m));
    for (let i = 0; i < text.length; i += size) parser.push(text.slice(i, i + size));
    parser.end();
    assert.deepEqual(seen, [
      { type: "start", turn: 7 },
      { type: "delta", text: "Hé 😀\n\n" },
      { type: "done", turn: 7 },
    ]);
  }
  const last = [];
  const parser = new SSEParser((m) => last.push(m));
  parser.push('data: {"type": "done"}'); // no blank line at the end
  parser.end();
  assert.deepEqual(last, [{ type: "done" }]);
});

/** A fetch whose answer body is `chunks` (strings), each after `gapMs`, honouring the signal. */
function streamingFetch(chunks, { status = 200, type = "text/event-stream", gapMs = 0, hang = false } = {}) {
  const calls = [];
  const fetchImpl = async (url, init) => {
    calls.push({ url, init, body: JSON.parse(init.body) });
    const encoder = new TextEncoder();
    const body = new ReadableStream({
      async start(controller) {
        const abort = () => controller.error(new DOMException("aborted", "AbortError"));
        init.signal.addEventListener("abort", abort);
        for (const chunk of chunks) {
          if (gapMs) await new Promise((resolve) => setTimeout(resolve, gapMs));
          if (init.signal.aborted) return;
          controller.enqueue(encoder.encode(chunk));
        }
        if (!hang) controller.close();
      },
    });
    return new Response(body, { status, headers: { "Content-Type": type } });
  };
  return { fetchImpl, calls };
}

test("a streamed answer: every message, the request as the server expects it", async () => {
  const text = sse({ type: "start", turn: 3 }, { type: "delta", text: "Use " }, { type: "delta", text: "a nursery." }, { type: "done", turn: 3, stop_reason: "end_turn" });
  const { fetchImpl, calls } = streamingFetch([text.slice(0, 30), text.slice(30)]);
  const seen = [];
  const result = await askAssistant({
    url: "/t/x/api/assistant/",
    body: { stage: "main", task: "tasks/a", message: "How?", code: "import trio\n" },
    csrfToken: "tok",
    onMessage: (m) => seen.push(m),
    fetchImpl,
  });
  assert.equal(result.outcome, "finished");
  assert.equal(result.last.type, "done");
  assert.equal(seen.filter((m) => m.type === "delta").map((m) => m.text).join(""), "Use a nursery.");
  assert.equal(calls[0].init.method, "POST");
  assert.equal(calls[0].init.headers["X-CSRFToken"], "tok");
  assert.deepEqual(calls[0].body, { stage: "main", task: "tasks/a", message: "How?", code: "import trio\n" });
});

test("an error message ends the stream calmly", async () => {
  const { fetchImpl } = streamingFetch([sse({ type: "start", turn: 1 }, { type: "error", turn: 1, message: "Not available." })]);
  const result = await askAssistant({ url: "/a", body: {}, fetchImpl });
  assert.deepEqual(result, { outcome: "finished", last: { type: "error", turn: 1, message: "Not available." } });
});

test("refusals are JSON answers with a status and a message", async () => {
  for (const status of [403, 409, 429, 503]) {
    const fetchImpl = async () =>
      new Response(JSON.stringify({ error: "x", message: "Not now." }), {
        status,
        headers: { "Content-Type": "application/json" },
      });
    const result = await askAssistant({ url: "/a", body: {}, fetchImpl });
    assert.deepEqual(result, { outcome: "refused", status, data: { error: "x", message: "Not now." } });
  }
  const html = async () => new Response("<h1>Server Error</h1>", { status: 500, headers: { "Content-Type": "text/html" } });
  assert.deepEqual(await askAssistant({ url: "/a", body: {}, fetchImpl: html }), { outcome: "refused", status: 500, data: null });
});

test("offline: unreachable; a stream that breaks off or ends early: interrupted", async () => {
  const offline = async () => {
    throw new TypeError("Failed to fetch");
  };
  assert.deepEqual(await askAssistant({ url: "/a", body: {}, fetchImpl: offline }), { outcome: "unreachable" });
  const { fetchImpl } = streamingFetch([sse({ type: "start", turn: 1 }, { type: "delta", text: "Half" })]);
  assert.deepEqual(await askAssistant({ url: "/a", body: {}, fetchImpl }), { outcome: "interrupted", reason: "ended" });
  const broken = async () =>
    new Response(
      new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(sse({ type: "start", turn: 1 })));
          controller.error(new TypeError("network error"));
        },
      }),
      { headers: { "Content-Type": "text/event-stream" } },
    );
  assert.deepEqual(await askAssistant({ url: "/a", body: {}, fetchImpl: broken }), { outcome: "interrupted", reason: "network" });
});

test("Stop aborts the request; the text so far has been delivered", async () => {
  const chunks = [sse({ type: "start", turn: 2 }), ...Array.from({ length: 50 }, (_, i) => sse({ type: "delta", text: `w${i} ` }))];
  const { fetchImpl } = streamingFetch(chunks, { gapMs: 5 });
  const controller = new AbortController();
  const seen = [];
  const result = await askAssistant({
    url: "/a",
    body: {},
    signal: controller.signal,
    fetchImpl,
    onMessage: (m) => {
      seen.push(m);
      if (seen.length === 4) controller.abort();
    },
  });
  assert.deepEqual(result, { outcome: "stopped" });
  assert.ok(seen.length >= 4 && seen.length < 10, seen.length);
  const already = new AbortController();
  already.abort();
  assert.deepEqual(await askAssistant({ url: "/a", body: {}, signal: already.signal, fetchImpl }), { outcome: "stopped" });
});

test("a stream silent for longer than idleMs is given up", async () => {
  const { fetchImpl } = streamingFetch([sse({ type: "start", turn: 1 })], { hang: true });
  const result = await askAssistant({ url: "/a", body: {}, fetchImpl, idleMs: 30 });
  assert.deepEqual(result, { outcome: "interrupted", reason: "timeout" });
});
