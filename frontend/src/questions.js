// The question pages (screening, quiz, post-survey): autosave with stale-tab protection,
// Enter that never submits, "I don't know" that only the participant ticks, the quiz's
// progress line. The quiz is submitted only from its review screen (a page of its own).

import { AnswersSaver, IDK_SUFFIX, STATES, collectAnswers, isAnswered } from "./answers.js";

const MESSAGES = {
  [STATES.SAVED]: "Your answers are saved.",
  [STATES.DIRTY]: "",
  [STATES.SAVING]: "Saving…",
  [STATES.OFFLINE]: "Offline — your answers will be saved when the connection returns.",
  [STATES.ERROR]: "Not saved yet — we will try again.",
  [STATES.CHANGED]: "Not saved: your answers were changed in another tab or window.",
  [STATES.STAGE_OVER]: "This step is over.",
};

function start(form) {
  const status = document.getElementById("autosave-status");
  const notice = document.querySelector("[data-stale-notice]");
  const revisionInput = form.querySelector("input[name=revision]");
  const token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const getAnswers = () => collectAnswers(form.elements);

  async function post(body, { keepalive = false } = {}) {
    const response = await fetch(form.dataset.autosaveUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: JSON.stringify(body),
      credentials: "same-origin",
      keepalive,
    });
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    return { status: response.status, data };
  }

  const saver = new AnswersSaver({
    stage: form.dataset.stage,
    revision: form.dataset.revision,
    getAnswers,
    post,
    onState: (state) => {
      if (status && (MESSAGES[state] || state === STATES.DIRTY)) status.textContent = MESSAGES[state];
    },
    onRevision: (revision) => {
      revisionInput.value = revision;
      form.dataset.revision = revision;
    },
    onChanged: () => {
      notice.hidden = false;
      notice.querySelector("button").focus();
    },
    onStageOver: (url) => window.location.assign(url || window.location.href),
  });
  notice.querySelector("[data-load-latest]").addEventListener("click", () => window.location.reload());

  // "I don't know" beside a typed answer: while ticked, the answer is kept but read-only, so
  // what counts is never in doubt; unticking makes it editable again.
  function syncIdk(box) {
    const answer = form.elements.namedItem(box.name.slice(0, -IDK_SUFFIX.length));
    if (answer && "readOnly" in answer) {
      answer.readOnly = box.checked;
      answer.closest(".field")?.classList.toggle("idk-on", box.checked);
    }
  }
  const idkBoxes = [...form.querySelectorAll(`input[type=checkbox][name$="${IDK_SUFFIX}"]`)];
  idkBoxes.forEach(syncIdk);

  const progressText = document.querySelector("[data-progress-text]");
  const progressBar = document.querySelector("[data-progress] progress");
  const keys = [...form.querySelectorAll("[data-question]")].map((el) => el.dataset.question);
  function showProgress() {
    if (!progressText) return;
    const answers = getAnswers();
    const done = keys.filter((key) => isAnswered(answers, key)).length;
    progressText.textContent = `${done} of ${keys.length} answered`;
    if (progressBar) progressBar.value = done;
  }

  function changed(event) {
    if (event.target.name && event.target.name.endsWith(IDK_SUFFIX)) syncIdk(event.target);
    showProgress();
    saver.changed();
  }
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);

  // Enter in a one-line answer (or on a choice) would submit the form: it never does.
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target instanceof HTMLInputElement) event.preventDefault();
  });

  // Only a button submits, and only with every answer saved on the revision the form carries
  // (else the server would see this tab as outdated).
  let flushed = false;
  form.addEventListener("submit", async (event) => {
    if (saver.state === STATES.CHANGED) {
      event.preventDefault();
      notice.hidden = false;
      notice.querySelector("button").focus();
      return;
    }
    if (flushed || (!saver.dirty && !saver.inflight)) return;
    event.preventDefault();
    const submitter = event.submitter;
    await saver.save();
    if (saver.state === STATES.CHANGED || saver.state === STATES.STAGE_OVER) return;
    flushed = true;
    // Not from inside this event's dispatch (the browser ignores a submit requested then).
    window.setTimeout(() => form.requestSubmit(submitter?.form === form ? submitter : null), 0);
  });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") saver.leave();
  });
  window.addEventListener("pagehide", () => saver.leave());
  // Back from the browser's page cache: the revision it holds may be old; ask the server.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) window.location.reload();
  });
}

const form = document.querySelector("form[data-autosave-url]");
if (form) start(form);
