// Autosaves the answers of a question page (survey, quiz, screening): shortly after each
// change, and with sendBeacon when the page is hidden or closed. The server keeps the last
// saved answers; if time runs out they are what count.
(function () {
  const form = document.querySelector("form[data-autosave-url]");
  if (!form) return;
  const url = form.dataset.autosaveUrl;
  const stage = form.dataset.stage;
  const status = document.getElementById("autosave-status");
  const token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  let timer = null;
  let dirty = false;

  function answers() {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.name === "csrfmiddlewaretoken" || el.disabled) continue;
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) {
        if (el.type === "checkbox" && !(el.name in out)) out[el.name] = [];
        continue;
      }
      if (el.type === "checkbox") (out[el.name] = out[el.name] || []).push(el.value);
      else if (el.type !== "submit" && el.type !== "button") out[el.name] = el.value;
    }
    return out;
  }
  function say(text) { if (status) status.textContent = text; }

  async function save() {
    timer = null;
    if (!dirty) return;
    dirty = false;
    say("Saving…");
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token },
        body: JSON.stringify({ stage, answers: answers() }),
        credentials: "same-origin",
      });
      if (response.status === 409) { window.location.reload(); return; }
      say(response.ok ? "Your answers are saved." : "Not saved yet — we will try again.");
      if (!response.ok) { dirty = true; timer = setTimeout(save, 5000); }
    } catch (err) {
      dirty = true;
      say("Offline — your answers will be saved when the connection returns.");
      timer = setTimeout(save, 5000);
    }
  }
  function changed() {
    dirty = true;
    if (timer) clearTimeout(timer);
    timer = setTimeout(save, 1000);
  }
  function beacon() {
    if (!dirty || !navigator.sendBeacon) return;
    const data = new FormData();
    data.append("csrfmiddlewaretoken", token);
    data.append("payload", JSON.stringify({ stage, answers: answers() }));
    if (navigator.sendBeacon(url, data)) dirty = false;
  }
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  form.addEventListener("submit", () => { dirty = false; if (timer) clearTimeout(timer); });
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") beacon(); });
  window.addEventListener("pagehide", beacon);
})();
