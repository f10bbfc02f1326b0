// localStorage when the browser lets us use it; otherwise an in-memory stand-in with the same
// interface (Safari private windows, blocked site data). The tests use MemoryStorage too.

export class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  get length() {
    return this.map.size;
  }
  key(i) {
    return Array.from(this.map.keys())[i] ?? null;
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(String(k), String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}

export function safeStorage(win = globalThis) {
  try {
    const s = win.localStorage;
    const probe = "skilltrial:probe";
    s.setItem(probe, "1");
    s.removeItem(probe);
    return s;
  } catch {
    return new MemoryStorage();
  }
}

export function readJSON(storage, key) {
  try {
    const raw = storage.getItem(key);
    return raw == null ? null : JSON.parse(raw);
  } catch {
    return null;
  }
}

/** Returns false when the browser refused (quota full, storage blocked). */
export function writeJSON(storage, key, value) {
  try {
    storage.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false;
  }
}

export function removeKey(storage, key) {
  try {
    storage.removeItem(key);
  } catch {
    // Nothing to do: the entry is simply left behind.
  }
}
