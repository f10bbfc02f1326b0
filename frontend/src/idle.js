// Idle periods: no keyboard, mouse or touch activity for at least `thresholdMs`. Reported when
// activity resumes, with the length of the gap and when it started.

export class IdleTracker {
  constructor({ onIdle, thresholdMs = 60000, now = Date.now }) {
    Object.assign(this, { onIdle, thresholdMs, now });
    this.last = now();
  }

  activity() {
    const t = this.now();
    const gap = t - this.last;
    const since = this.last;
    this.last = t;
    if (gap >= this.thresholdMs) this.onIdle({ seconds: Math.round(gap / 1000), since });
  }
}
