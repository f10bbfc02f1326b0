// Shows the time left in a timed stage. The deadline is the server's: this only counts down
// what the server said was left, and reloads at zero so the server can close the stage.
(function () {
  const el = document.querySelector("[data-remaining-seconds]");
  if (!el) return;
  const end = Date.now() + Number(el.dataset.remainingSeconds) * 1000;
  function show() {
    const left = Math.max(0, Math.round((end - Date.now()) / 1000));
    const m = Math.floor(left / 60), s = left % 60;
    el.textContent = `${m}:${String(s).padStart(2, "0")} left`;
    el.classList.toggle("low", left <= 120);
    if (left === 0) { window.setTimeout(() => window.location.reload(), 6000); return; }
    window.setTimeout(show, 1000);
  }
  show();
})();
