// Small pure helpers shared by the queue, the autosave and the page. No DOM, no CodeMirror:
// everything here runs in Node for the tests.

/** A random (version 4) UUID. crypto.randomUUID exists only in secure contexts (https or
 *  localhost), so a study served over plain http on a lab network falls back to
 *  getRandomValues, which exists everywhere. */
export function uuid4(cryptoObj = globalThis.crypto) {
  if (cryptoObj && typeof cryptoObj.randomUUID === "function") {
    try {
      return cryptoObj.randomUUID();
    } catch {
      // Not a secure context: fall through.
    }
  }
  const b = new Uint8Array(16);
  if (cryptoObj && typeof cryptoObj.getRandomValues === "function") cryptoObj.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Milliseconds to wait before retry number `failures` (1 = first retry): exponential from
 *  `baseMs`, capped at `capMs`, with "equal jitter" (half fixed, half random) so that many
 *  browsers coming back online after a server restart do not retry in lockstep. */
export function backoffDelay(failures, { baseMs = 1000, capMs = 30000, random = Math.random } = {}) {
  if (failures <= 0) return 0;
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(failures - 1, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export function isoTime(ms) {
  return new Date(ms).toISOString();
}

/** Text as the editor holds it: CodeMirror splits lines on \r\n, \r and \n and joins with \n. */
export function normalizeNewlines(text) {
  return String(text ?? "").replace(/\r\n?/g, "\n");
}

/** Resolves with `promise`'s value, or with `fallback` after `ms`, whichever comes first. */
export function withTimeout(promise, ms, fallback, timers = globalThis) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = timers.setTimeout(() => resolve(fallback), ms);
  });
  return Promise.race([promise, timeout]).finally(() => timers.clearTimeout(timer));
}
