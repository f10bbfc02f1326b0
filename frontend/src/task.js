// The coding stage page: one editor per task with Run and Check, autosave, the telemetry
// queue, the deadline, and the "I am done with this stage" form. Reads the page state that the
// server embeds with json_script; the server stays the authority on stage, arm and clock.

import { EventQueue } from "./queue.js";
import { STATES, TaskSaver, draftKey, draftToRestore } from "./autosave.js";
import { EditLog } from "./editlog.js";
import { IdleTracker } from "./idle.js";
import { createEditor, isExternal, userEventOf } from "./editor.js";
import { postJSON, sendBeaconForm } from "./api.js";
import { readJSON, safeStorage } from "./storage.js";
import { sha256Hex } from "./sha256.js";
import { isoTime, normalizeNewlines, withTimeout } from "./util.js";
import { renderChecks, renderMessage, renderRun, showSaveState } from "./ui.js";
import { COPY_TEXT_CHARS, assistantOrigin, setUpAssistant } from "./chat.js";
import { setUpDrawers } from "./drawer.js";

const RUN_TIMEOUT_MS = 90000; // a Run waits at most 30 s for a free runner, then runs 15 s at most
// A Check is never dropped for load: it waits its turn in the server's queue, however long.
const CHECK_TIMEOUT_MS = 30 * 60 * 1000;
const QUEUE_POLL_MS = 1500;
const PREVIEW_CHARS = 200;
// The server accepts requests until 5 s after a deadline (saves already on their way) and
// closes the stage only then; a reload before that shows the same stage again, at 0:00.
const SERVER_GRACE_MS = 6000;

function start() {
  const stateNode = document.getElementById("page-state");
  const form = document.querySelector("[data-stage-form]");
  if (!stateNode || !form) return;
  const page = JSON.parse(stateNode.textContent);
  const stage = typeof page.stage === "string" ? page.stage : page.stage && page.stage.key;
  const api = page.api || {};
  const prefix = `skilltrial:${page.participant_ref}`;
  const storage = safeStorage(window);
  const finishButton = form.querySelector("[data-finish]");
  const finishMessage = form.querySelector("[data-finish-message]");
  const finishDialog = document.querySelector("[data-finish-dialog]");
  let leaving = false;
  let finishing = false;

  const queue = new EventQueue({
    storage,
    prefix,
    stage,
    // Every 10 s: events wait in localStorage meanwhile (nothing is lost on a reload or a
    // closed tab: pagehide sends them by beacon), and a batch is then ~10 events, not ~3.
    intervalMs: 10000,
    send: (events) => postJSON(api.events, { events }),
    beacon: (events) => sendBeaconForm(api.events, { events }),
  });
  const emit = (type, payload, clientTime) => queue.enqueue(type, payload, clientTime);

  const navigation = performance.getEntriesByType?.("navigation")?.[0]?.type ?? null;
  emit("stage_view", {
    tasks: (page.tasks || []).map((t) => t.folder),
    remaining_seconds: page.remaining_seconds ?? null,
    navigation,
    viewport: { width: window.innerWidth, height: window.innerHeight },
  });

  // ---- tasks -------------------------------------------------------------------------------

  const sections = Array.from(form.querySelectorAll("[data-task-folder]"));
  const tasks = sections.map((section, position) => {
    const folder = section.dataset.taskFolder;
    const info = (page.tasks || []).find((t) => t.folder === folder) || (page.tasks || [])[position] || {};
    return setUpTask(section, info);
  });

  // The assistant's chat panel: only when the server put `assistant` in the page state (the
  // arm has it and this stage allows it); otherwise nothing is set up.
  const assistant = setUpAssistant({
    page,
    stage,
    tasks,
    emit,
    onStageOver: (url) => leave(url, { save: false }),
  });
  // Below 1400 px the assistant's panel is a drawer over the page (layout only).
  const drawers = assistant ? setUpDrawers({ storage, widthKey: `${prefix}:drawer-width` }) : null;

  function setUpTask(section, info) {
    const $ = (selector) => section.querySelector(selector);
    const textarea = $("[data-code-fallback]");
    const label = section.querySelector(`label[for="${textarea.id}"]`);
    const hint = $("[data-editor-hint]");
    const folder = info.folder ?? section.dataset.taskFolder;
    const serverCode = normalizeNewlines(typeof info.code === "string" ? info.code : textarea.value);
    const version = Number.isInteger(info.version) ? info.version : 0;
    const key = draftKey(prefix, stage, folder);
    dropRepeatedTitle($("[data-region=instructions]"), info.title);
    const restored = draftToRestore(readJSON(storage, key), { version, code: serverCode });

    const task = {
      folder,
      section,
      textarea,
      completed: Boolean(info.completed),
      busy: false,
      statusNode: $("[data-save-status]"),
      conflictNode: $("[data-conflict]"),
      runButton: $('[data-action="run"]'),
      checkButton: $('[data-action="check"]'),
      runStatus: $("[data-run-status]"),
      runOutput: $("[data-run-output]"),
      checkOutput: $("[data-check-output]"),
    };

    task.editor = createEditor({
      parent: $("[data-editor-host]"),
      doc: restored ?? serverCode,
      labelledBy: label ? label.id : "",
      describedBy: hint ? hint.id : "",
      onTransaction(tr) {
        if (isExternal(tr)) return;
        task.log.record(tr.changes, userEventOf(tr));
        task.saver.changed();
        // The hidden textarea always holds the current code (the form's field; tests read it).
        textarea.value = task.editor.getCode();
      },
      onFocusChange(focused) {
        emit(focused ? "focus" : "blur", { scope: "editor", task: folder });
        if (!focused && !leaving) {
          task.log.close();
          task.saver.save("blur");
        }
      },
      onRun: () => run(task),
      onCheck: () => check(task),
    });
    task.log = new EditLog({
      task: folder,
      emit,
      getDoc: task.editor.getCode,
      getVersion: () => task.saver.version,
    });
    task.saver = new TaskSaver({
      stage,
      task: folder,
      version,
      savedCode: serverCode,
      getCode: task.editor.getCode,
      post: (body) => postJSON(api.save, body),
      beacon: (body) => sendBeaconForm(api.save, body),
      storage,
      draftKey: key,
      maxChars: Number.isInteger(page.max_code_chars) ? page.max_code_chars : Infinity,
      onState: (state) => showSaveState(task.statusNode, state, task.saver),
      onConflict: () => {
        task.conflictNode.hidden = false;
      },
      onStageOver: (url) => leave(url, { save: false }),
    });

    // The editor's text is a tab stop already (contenteditable); saying so lets checkers such as
    // axe see that its scrolling box is reachable by keyboard. No extra tab stop.
    task.editor.view.contentDOM.setAttribute("tabindex", "0");
    // The editor replaces the textarea, which stays in the form (hidden) for the final POST.
    textarea.value = task.editor.getCode();
    textarea.hidden = true;
    $("[data-editor-host]").hidden = false;
    for (const node of section.querySelectorAll("[data-js-only]")) node.hidden = false;
    if (label) {
      label.removeAttribute("for");
      label.addEventListener("click", () => task.editor.view.focus());
    }
    if (version > 0) showSaveState(task.statusNode, STATES.SAVED);

    task.runButton.addEventListener("click", () => run(task));
    task.checkButton.addEventListener("click", () => check(task));
    $('[data-action="load-latest"]').addEventListener("click", () => {
      const latest = task.saver.loadLatest();
      task.conflictNode.hidden = true;
      if (!latest) return;
      task.log.close();
      task.editor.replaceCode(latest.code ?? "");
      textarea.value = task.editor.getCode();
      task.log.snapshot("load_latest");
      task.editor.view.focus();
    });
    $('[data-action="keep-mine"]').addEventListener("click", () => {
      task.conflictNode.hidden = true;
      task.saver.keepMine();
      task.editor.view.focus();
    });

    // Replay starts from the code as the editor received it.
    task.log.snapshot("load", serverCode);
    if (restored !== null) {
      task.log.snapshot("restore_draft");
      task.saver.changed();
      task.saver.save("autosave");
    }
    return task;
  }

  /** The card's heading names the task; instruction files usually open with the same title,
   *  which would then be shown twice, one under the other. */
  function dropRepeatedTitle(instructions, title) {
    const first = instructions ? instructions.firstElementChild : null;
    const norm = (text) => String(text ?? "").replace(/\s+/g, " ").trim().toLowerCase();
    if (first && /^H[1-6]$/.test(first.tagName) && norm(first.textContent) === norm(title)) {
      first.remove();
    }
  }

  function setBusy(task, busy, status) {
    task.busy = busy;
    task.runButton.disabled = busy;
    task.checkButton.disabled = busy;
    task.section.querySelector(".output-panel").setAttribute("aria-busy", String(busy));
    if (status !== undefined) task.runStatus.textContent = status;
  }

  function failureMessage(res) {
    if (res.data && typeof res.data.message === "string" && res.data.message) return res.data.message;
    if (res.status === 0) return "Could not reach the server. Check your connection, then try again.";
    if (res.status === 429 || res.status === 503) return "The server is busy. Please try again in a moment.";
    return `Something went wrong (error ${res.status}). Please try again.`;
  }

  function stageIsOver(res) {
    if (res.status === 409 && res.data && res.data.error === "stage_over") {
      leave(res.data.redirect, { save: false });
      return true;
    }
    return false;
  }

  /** The server stores the code of every Run and Check as a version of its own. Saving first
   *  (when there is anything to save) keeps this tab's autosave on the latest version, so its
   *  next save is not taken for another tab's; the sent code is remembered in case the save
   *  failed and the Run stores it. */
  async function saveBeforeRun(task) {
    task.log.close();
    if (task.saver.dirty && !task.saver.blocked) {
      await withTimeout(task.saver.save("autosave"), 5000, null);
    }
    const code = task.editor.getCode();
    if (code !== task.saver.savedCode) task.saver.remember(code);
    return code;
  }

  /** While a Run or Check request is pending, ask the server where it stands in the queue of
   *  runs and say so ("2 ahead of you"); stops when the request is answered. */
  function watchQueue(task, working) {
    let stopped = false;
    let timer = null;
    const poll = async () => {
      if (stopped || !api.queue) return;
      const res = await postJSON(api.queue, {}, { timeoutMs: 5000 });
      if (stopped) return;
      const position = res.status === 200 && res.data ? res.data.position : null;
      task.runStatus.textContent =
        typeof position === "number"
          ? `Waiting for a free runner: ${position === 0 ? "you are next" : `${position} ahead of you`}…`
          : working;
      timer = setTimeout(poll, QUEUE_POLL_MS);
    };
    timer = setTimeout(poll, QUEUE_POLL_MS);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  async function run(task) {
    if (task.busy || leaving) return;
    setBusy(task, true, "Running…");
    const code = await saveBeforeRun(task);
    const started = performance.now();
    const stopWatching = watchQueue(task, "Running…");
    const res = await postJSON(api.run, { stage, task: task.folder, code }, {
      timeoutMs: RUN_TIMEOUT_MS,
    });
    stopWatching();
    const ms = Math.round(performance.now() - started);
    // "run_shown": what this page showed and how long it waited. The run itself is the
    // server's own `run` event; a browser may not send that type (trials/event_types.py).
    emit("run_shown", { task: task.folder, ms, http_status: res.status, status: res.data?.status ?? null });
    if (stageIsOver(res)) return;
    const summary =
      res.status === 200 && res.data
        ? renderRun(task.runOutput, res.data)
        : renderMessage(task.runOutput, "Output", failureMessage(res));
    setBusy(task, false, `Run: ${summary}`);
  }

  async function check(task) {
    if (task.busy || leaving) return;
    setBusy(task, true, "Checking…");
    const code = await saveBeforeRun(task);
    const started = performance.now();
    const stopWatching = watchQueue(task, "Checking…");
    const res = await postJSON(api.check, { stage, task: task.folder, code }, {
      timeoutMs: CHECK_TIMEOUT_MS,
    });
    stopWatching();
    const ms = Math.round(performance.now() - started);
    const data = res.status === 200 && res.data && Array.isArray(res.data.tests) ? res.data : null;
    emit("check_shown", {
      task: task.folder,
      ms,
      http_status: res.status,
      passed: data ? data.passed : null,
      total: data ? data.total : null,
      all_passed: data ? Boolean(data.all_passed) : null,
    });
    if (stageIsOver(res)) return;
    let summary;
    if (data) {
      summary = renderChecks(task.checkOutput, data);
      if (data.all_passed) markCompleted(task);
    } else {
      summary = renderMessage(task.checkOutput, "Checks", failureMessage(res));
    }
    setBusy(task, false, `Check: ${summary}`);
  }

  function markCompleted(task) {
    task.completed = true;
    task.section.classList.add("completed");
    const badge = task.section.querySelector("[data-completed-badge]");
    if (badge) badge.hidden = false;
    const navState = document.querySelector(`[data-task-state="${CSS.escape(task.folder)}"]`);
    if (navState) navState.textContent = "Completed";
  }

  // ---- leaving the page --------------------------------------------------------------------

  /** The stage is over (time-out, finished elsewhere): stop editing, send what is pending, go.
   *  `notBefore` (a performance.now() time) holds the reload back until the server will have
   *  closed the stage. */
  async function leave(url, { save, notBefore = 0 }) {
    if (leaving) return;
    leaving = true;
    if (assistant) assistant.close();
    if (drawers) drawers.close();
    if (finishDialog && finishDialog.open) finishDialog.close();
    for (const task of tasks) {
      task.log.close();
      task.editor.setReadOnly(true);
    }
    if (save) {
      await withTimeout(Promise.all(tasks.map((t) => t.saver.save("autosave"))), 2500, null);
    }
    for (const task of tasks) task.saver.stop();
    await withTimeout(queue.flush({ force: true }), 1500, null);
    const wait = notBefore - performance.now();
    if (wait > 0) await new Promise((resolve) => window.setTimeout(resolve, wait));
    if (url) window.location.assign(url);
    else window.location.reload();
  }

  let hiddenFlushed = false;
  function pageHidden() {
    if (hiddenFlushed) return;
    hiddenFlushed = true;
    for (const task of tasks) task.saver.beaconSave();
    queue.beaconFlush();
  }

  document.addEventListener("visibilitychange", () => {
    for (const task of tasks) task.log.close(); // edits first: they happened before
    emit("visibility", { state: document.visibilityState });
    if (document.visibilityState === "hidden") {
      pageHidden();
    } else {
      hiddenFlushed = false;
      queue.flush();
    }
  });
  window.addEventListener("pagehide", () => {
    for (const task of tasks) task.log.close();
    pageHidden();
  });
  window.addEventListener("pageshow", (event) => {
    // Back from the browser's page cache: the server may have moved on; ask it.
    if (event.persisted) window.location.reload();
  });
  window.addEventListener("focus", () => emit("focus", { scope: "window" }));
  window.addEventListener("blur", () => emit("blur", { scope: "window" }));
  window.addEventListener("online", () => {
    queue.online();
    for (const task of tasks) task.saver.retryNow();
  });

  // Finishing before the time is up, or with a task whose checks have not all passed, asks
  // first: one click must not end a timed stage.
  const stageEnd =
    typeof page.remaining_seconds === "number" && Number.isFinite(page.remaining_seconds)
      ? performance.now() + page.remaining_seconds * 1000
      : null;
  let finishConfirmed = false;

  function finishQuestion() {
    const left = stageEnd === null ? null : Math.floor((stageEnd - performance.now()) / 1000);
    const open = tasks.filter((t) => !t.completed).length;
    const parts = [];
    if (left !== null && left > 0) {
      const minutes = Math.floor(left / 60);
      const time =
        minutes >= 1 ? `${minutes} minute${minutes === 1 ? "" : "s"}` : "less than a minute";
      parts.push(`You still have ${time} left in this stage`);
    }
    if (open > 0) {
      const what =
        tasks.length === 1
          ? "your task has not passed all its checks yet"
          : `${open} of ${tasks.length} tasks ${open === 1 ? "has" : "have"} not passed all their checks yet`;
      parts.push(parts.length ? `and ${what}` : what.charAt(0).toUpperCase() + what.slice(1));
    }
    return parts.length ? `${parts.join(", ")}.` : null;
  }

  if (finishDialog) {
    finishDialog.querySelector("[data-finish-cancel]").addEventListener("click", () => finishDialog.close());
    finishDialog.querySelector("[data-finish-confirm]").addEventListener("click", () => {
      finishConfirmed = true;
      finishDialog.close();
      form.requestSubmit(finishButton);
    });
    finishDialog.addEventListener("close", () => {
      if (!finishConfirmed && !leaving) finishButton.focus();
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (finishing || leaving) return;
    const conflicted = tasks.find((t) => t.saver.state === STATES.CONFLICT);
    if (conflicted) {
      finishMessage.textContent =
        "A task was changed in another tab or window. Choose which version to keep before finishing.";
      conflicted.conflictNode.querySelector("button").focus();
      return;
    }
    const tooLong = tasks.find((t) => t.saver.tooLong(t.editor.getCode()));
    if (tooLong) {
      finishMessage.textContent =
        "The code of a task is longer than the most a task can hold. Shorten it before finishing; your last saved version is kept.";
      tooLong.editor.view.focus();
      return;
    }
    const question = finishQuestion();
    if (question && finishDialog && !finishConfirmed) {
      finishDialog.querySelector("[data-finish-summary]").textContent = question;
      finishMessage.textContent = "";
      finishDialog.showModal();
      return;
    }
    finishConfirmed = false;
    finishing = true;
    finishButton.disabled = true;
    finishMessage.textContent = "Saving your work…";
    for (const task of tasks) task.log.close();
    await withTimeout(Promise.all(tasks.map((t) => t.saver.save("autosave"))), 8000, null);
    if (leaving) return; // the stage ended meanwhile; leave() is taking us on
    if (tasks.some((t) => t.saver.state === STATES.OFFLINE)) {
      finishing = false;
      finishButton.disabled = false;
      finishMessage.textContent =
        "Could not reach the server. Your work is kept in this browser; please try again in a moment.";
      return;
    }
    await withTimeout(queue.flush({ force: true }), 5000, null);
    for (const task of tasks) task.textarea.value = task.editor.getCode();
    leaving = true;
    form.submit();
  });

  // ---- telemetry: idle, copy, paste ----------------------------------------------------------

  const idle = new IdleTracker({
    onIdle: ({ seconds, since }) => emit("idle", { seconds, since: isoTime(since) }),
  });
  const activity = () => idle.activity();
  for (const type of ["keydown", "mousedown", "mousemove", "wheel", "touchstart", "pointerdown", "scroll"]) {
    document.addEventListener(type, activity, { capture: true, passive: true });
  }

  function placeOf(target) {
    const node = target instanceof Element ? target : target && target.parentElement;
    const section = node ? node.closest("[data-task-folder]") : null;
    const region = node ? node.closest("[data-region]") : null;
    return {
      task: section ? section.dataset.taskFolder : null,
      where: region ? region.dataset.region : "page",
    };
  }

  function editorSelection(target) {
    const place = placeOf(target);
    const task = tasks.find((t) => t.folder === place.task);
    if (!task || place.where !== "editor") return "";
    const { state } = task.editor.view;
    return state.selection.ranges.map((r) => state.sliceDoc(r.from, r.to)).join("\n");
  }

  async function recordText(type, text, place, extra) {
    const clientTime = Date.now();
    const sha256 = await sha256Hex(text);
    emit(type, { task: place.task, where: place.where, length: text.length, sha256, ...extra }, clientTime);
  }

  const onCopy = (event) => {
    // Bubble phase: the editor has already put its text on the clipboard.
    let text = "";
    try {
      text = event.clipboardData ? event.clipboardData.getData("text/plain") : "";
    } catch {
      text = "";
    }
    if (!text) text = editorSelection(event.target) || String(document.getSelection() ?? "");
    if (!text) return;
    // Text selected in an assistant's reply and copied with the keyboard or menu is marked
    // like the Copy button's copies, so a later paste of it is linked to the reply.
    // The text goes with it so that the server can check it against the stored reply (it
    // decides whether a later paste came from the assistant; `source` is only our claim).
    const origin = assistantOrigin(event.target) || assistantOrigin(document.getSelection()?.anchorNode);
    const evidence = origin && text.length <= COPY_TEXT_CHARS ? { text } : {};
    recordText("copy", text, placeOf(event.target), { cut: event.type === "cut", ...origin, ...evidence });
  };
  document.addEventListener("copy", onCopy);
  document.addEventListener("cut", onCopy);

  document.addEventListener(
    "paste",
    (event) => {
      const text = event.clipboardData ? event.clipboardData.getData("text/plain") : "";
      if (!text) return;
      recordText("paste", text, placeOf(event.target), {
        text_preview: text.slice(0, PREVIEW_CHARS),
        via: "clipboard",
      });
    },
    true,
  );

  // Text dragged in from outside the page counts as a paste; a drag inside the editor is a move.
  let dragFromPage = false;
  document.addEventListener("dragstart", () => {
    dragFromPage = true;
  }, true);
  document.addEventListener("dragend", () => {
    dragFromPage = false;
  }, true);
  document.addEventListener(
    "drop",
    (event) => {
      const text = event.dataTransfer ? event.dataTransfer.getData("text/plain") : "";
      if (!dragFromPage && text) {
        recordText("paste", text, placeOf(event.target), {
          text_preview: text.slice(0, PREVIEW_CHARS),
          via: "drop",
        });
      }
      dragFromPage = false;
    },
    true,
  );

  // ---- the deadline ------------------------------------------------------------------------

  // The base template's countdown.js shows the time and reloads 6 s after zero as a fallback.
  // Here: save a few seconds before the end, then at zero stop editing, flush and reload so the
  // server can close the stage.
  if (typeof page.remaining_seconds === "number" && Number.isFinite(page.remaining_seconds)) {
    const end = performance.now() + page.remaining_seconds * 1000;
    // The 5- and 1-minute warnings are countdown.js's (every timed page has them).
    const announce = document.querySelector("[data-time-announce]");
    let savedEarly = false;
    const tick = () => {
      const left = (end - performance.now()) / 1000;
      if (left <= 5 && !savedEarly) {
        savedEarly = true;
        for (const task of tasks) {
          task.log.close();
          task.saver.save("autosave");
        }
      }
      if (left <= 0) {
        const notice = document.querySelector("[data-time-up]");
        if (notice) notice.hidden = false;
        if (announce) announce.textContent = "Time is up. Saving your work.";
        leave(null, { save: true, notBefore: end + SERVER_GRACE_MS });
        return;
      }
      // Wake on the next second, and exactly at the 5 s and 0 s marks.
      const next = left > 5 ? left - 5 : left;
      window.setTimeout(tick, Math.min(1000, next * 1000 + 20));
    };
    tick();
  }

  queue.start();
  queue.flush();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
