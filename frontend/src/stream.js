// Asking the assistant: one POST whose answer is a stream of server-sent events
// (`data: {json}` messages separated by a blank line): {"type": "start", "turn"}, then
// {"type": "delta", "text"}..., then {"type": "done", "turn", "stop_reason"} or
// {"type": "error", "message"}. A refusal (wrong arm or stage, budget, spend cap, the stage is
// over) is an ordinary JSON answer with a status and a `message` to show.
//
// Pure apart from the injected fetch: runs in Node for the tests.

/** Splits a text/event-stream into messages and hands each `data:` payload, parsed as JSON,
 *  to `onMessage`. Comments, other fields and malformed JSON are ignored. */
export class SSEParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = "";
  }

  push(chunk) {
    this.buffer += chunk;
    for (;;) {
      const match = /\r?\n\r?\n/.exec(this.buffer);
      if (!match) break;
      const block = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      this.dispatch(block);
    }
  }

  /** The stream ended: a last message without its blank line still counts. */
  end() {
    if (this.buffer.trim()) this.dispatch(this.buffer);
    this.buffer = "";
  }

  dispatch(block) {
    const data = block
      .split(/\r?\n/)
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).replace(/^ /, ""))
      .join("\n");
    if (!data) return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message && typeof message === "object" && typeof message.type === "string") {
      this.onMessage(message);
    }
  }
}

/**
 * POSTs the question and reads the streamed answer, calling `onMessage` for each message.
 * Never throws. Resolves to one of:
 *   {outcome: "finished", last}        the stream ended with a "done" or "error" message
 *   {outcome: "refused", status, data} a JSON (or other) answer instead of a stream
 *   {outcome: "stopped"}               `signal` was aborted (the participant pressed Stop)
 *   {outcome: "unreachable"}           no answer at all (offline, server down)
 *   {outcome: "interrupted", reason}   the stream broke off, or was silent for `idleMs`
 */
export async function askAssistant({
  url,
  body,
  csrfToken = "",
  signal = null,
  onMessage = () => {},
  fetchImpl = globalThis.fetch,
  idleMs = 120000,
  timers = globalThis,
}) {
  const controller = new AbortController();
  let timedOut = false;
  let timer = null;
  const arm = () => {
    if (timer !== null) timers.clearTimeout(timer);
    timer = timers.setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, idleMs);
  };
  const stop = () => controller.abort();
  if (signal) {
    if (signal.aborted) return { outcome: "stopped" };
    signal.addEventListener("abort", stop);
  }
  const stopped = () => Boolean(signal && signal.aborted);
  try {
    arm();
    let response;
    try {
      response = await fetchImpl(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "text/event-stream",
          "X-CSRFToken": csrfToken,
          "X-Requested-With": "XMLHttpRequest",
        },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
    } catch {
      if (stopped()) return { outcome: "stopped" };
      return timedOut ? { outcome: "interrupted", reason: "timeout" } : { outcome: "unreachable" };
    }
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || !type.startsWith("text/event-stream") || !response.body) {
      let data = null;
      try {
        data = await response.json();
      } catch {
        data = null;
      }
      return { outcome: "refused", status: response.status, data };
    }
    let last = null;
    const parser = new SSEParser((message) => {
      if (message.type === "done" || message.type === "error") last = message;
      onMessage(message);
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        arm();
        const { done, value } = await reader.read();
        if (done) break;
        parser.push(decoder.decode(value, { stream: true }));
        if (last) break;
      }
      parser.push(decoder.decode());
      parser.end();
    } catch {
      if (stopped()) return { outcome: "stopped" };
      return { outcome: "interrupted", reason: timedOut ? "timeout" : "network" };
    }
    if (last) {
      reader.cancel().catch(() => {});
      return { outcome: "finished", last };
    }
    if (stopped()) return { outcome: "stopped" };
    return { outcome: "interrupted", reason: "ended" };
  } finally {
    if (timer !== null) timers.clearTimeout(timer);
    if (signal) signal.removeEventListener("abort", stop);
  }
}
