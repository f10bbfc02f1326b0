// The progress of a long staff job (an export, the report): polls the job's status JSON and
// moves the bar; once the job has finished, reloads the page, which then offers the zip or
// shows the report (or the error).
(function () {
  const card = document.getElementById("job");
  if (!card) return;
  const url = card.dataset.statusUrl;
  if (card.dataset.state === "done" || card.dataset.state === "failed") return;
  const bar = document.getElementById("job-progress");
  const step = document.getElementById("job-step");
  const count = document.getElementById("job-count");
  const percent = document.getElementById("job-percent");
  const error = document.getElementById("job-error");

  function show(s) {
    if (s.total > 0) {
      bar.max = s.total;
      bar.value = Math.min(s.done, s.total);
    } else {
      bar.removeAttribute("value"); // indeterminate until the total is known
    }
    step.textContent = s.state === "pending" ? "waiting for a worker" : s.step;
    count.textContent = s.done.toLocaleString() + " / " + s.total.toLocaleString();
    percent.textContent = s.percent === null ? "" : String(s.percent);
    if (s.error) {
      error.textContent = s.error;
      error.hidden = false;
    }
  }

  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const s = await response.json();
        show(s);
        if (s.finished) {
          window.location.reload();
          return;
        }
      }
    } catch (e) {
      // a lost connection or a restarting server: try again on the next tick
    }
    window.setTimeout(poll, 1000);
  }
  window.setTimeout(poll, 500);
})();
