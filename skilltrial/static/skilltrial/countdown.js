// Shows the time left in a timed stage. The deadline is the server's: this only counts down
// what the server said was left, and reloads at zero so the server can close the stage.
// At 5 minutes and at 1 minute a warning appears under the header; it is a polite live region,
// so screen readers read it out once, and it stays visible.
(function () {
  const el = document.querySelector("[data-remaining-seconds]");
  if (!el) return;
  const warning = document.querySelector("[data-time-warning]");
  const end = Date.now() + Number(el.dataset.remainingSeconds) * 1000;
  const marks = [
    [60, "1 minute left", "Less than 1 minute left in this step. Your work is saved as you go."],
    [300, "5 minutes left", "Less than 5 minutes left in this step."],
  ];
  let shown = null;
  function warn(left) {
    const mark = marks.find(([at]) => left <= at && left > 0);
    const at = mark ? mark[0] : null;
    if (!warning || at === shown) return;
    shown = at;
    warning.dataset.level = at === null ? "" : String(at);
    // Entering a band exactly at its mark says "5 minutes left"; a page loaded inside it says
    // "less than".
    const exact = mark && left >= at - 2;
    warning.textContent = mark ? (exact ? `${mark[1]} in this step.` : mark[2]) : "";
  }
  function show() {
    const left = Math.max(0, Math.round((end - Date.now()) / 1000));
    const m = Math.floor(left / 60), s = left % 60;
    el.textContent = `${m}:${String(s).padStart(2, "0")} left`;
    el.classList.toggle("low", left <= 300);
    warn(left);
    if (left === 0) { window.setTimeout(() => window.location.reload(), 6000); return; }
    window.setTimeout(show, 1000);
  }
  show();
})();
