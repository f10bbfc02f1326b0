// The assistant's chat panel, one conversation per task, for arms whose page state carries
// `assistant` (the server adds it only for the arm that has the assistant, and only in stages
// that allow it; the template renders the panel under the same condition). Without it this
// module does nothing at all.
//
// A question goes to the server with the editor's current code; the reply streams in
// (stream.js) and is shown as Markdown (markdown.js: DOM nodes only, never HTML). Each code
// block has a Copy button, recorded as a `copy` event with `source: "assistant"`, the turn,
// the SHA-256 of the copied text and (up to COPY_TEXT_CHARS) the text itself. These are only
// claims: the server checks the text against the replies it stored and decides by itself
// whether a later paste came from the assistant (trials/services/assistant.py).

import { highlightCode, classHighlighter } from "@lezer/highlight";
import { pythonLanguage } from "@codemirror/lang-python";
import { parseMarkdown, renderMarkdown } from "./markdown.js";
import { askAssistant } from "./stream.js";
import { csrfToken } from "./api.js";
import { sha256Hex } from "./sha256.js";

export const MAX_QUESTION_CHARS = 4000; // the server's limit (trials/services/assistant.py)
export const COPY_TEXT_CHARS = 8000; // copied chat text sent as evidence (trials/services/assistant.py)
const RENDER_EVERY_MS = 50;
const PYTHON = new Set(["python", "py", "python3", "pycon"]);
const HIGHLIGHT_LIMIT = 20000;
const TRANSIENT_MS = 5000; // "answered", "copied": said, then cleared; problems stay

const TEXT = {
  empty: "Please type a question first.",
  tooLong: `Please keep a message under ${MAX_QUESTION_CHARS} characters.`,
  sending: "Sending your question…",
  answering: "The assistant is answering…",
  answered: "The assistant has answered.",
  stopped: "Stopped. The answer so far is kept.",
  stoppedNote: "You stopped this answer.",
  unreachable: "Could not reach the server. Check your connection, then try again.",
  interrupted: "The answer was cut off because the connection was lost. You can ask again.",
  timeout: "The assistant took too long to answer. Please try again in a moment.",
  failed:
    "The assistant is not available right now. Please try again in a moment, or carry on " +
    "without it — your work is saved.",
  busy: "Please wait for this answer, or press Stop.",
  noAnswer: "No answer was recorded for this question.",
  cutShort: "This answer was cut short by a problem with the assistant.",
  emptyAnswer: "The assistant gave no answer.",
  copied: "Copied to the clipboard.",
  copyFailed: "Could not copy automatically. Select the code and press Ctrl+C (Cmd+C on a Mac).",
};

/** Sets up a chat panel for each task that has one. Returns null when this page has no
 *  assistant, else an object whose `close()` stops any answer and disables the panels. */
export function setUpAssistant({ page, stage, tasks, emit, onStageOver }) {
  const config = page && page.assistant;
  if (!config || typeof config !== "object" || typeof config.url !== "string" || !config.url) {
    return null;
  }
  const history = config.history && typeof config.history === "object" ? config.history : {};
  const chats = [];
  for (const task of tasks) {
    const panel = task.section.querySelector("[data-assistant-panel]");
    if (!panel) continue;
    chats.push(
      new Chat({
        panel,
        url: config.url,
        stage,
        folder: task.folder,
        getCode: () => task.editor.getCode(),
        emit,
        onStageOver,
        history: Array.isArray(history[task.folder]) ? history[task.folder] : [],
      }),
    );
  }
  return {
    chats,
    close() {
      for (const chat of chats) chat.close();
    },
  };
}

/** For a copy the participant makes by selecting text in a reply: {source, turn} or null. */
export function assistantOrigin(node) {
  const element = node instanceof Element ? node : node && node.parentElement;
  const message = element ? element.closest(".chat-msg.from-assistant") : null;
  if (!message) return null;
  return { source: "assistant", turn: turnOf(message) };
}

function turnOf(message) {
  const turn = Number.parseInt(message.dataset.turn ?? "", 10);
  return Number.isInteger(turn) ? turn : null;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

/** Python code with the editor's colours (lezer's class highlighter; see task.css). */
function fillCode(target, text, lang) {
  if (PYTHON.has(lang) && text.length <= HIGHLIGHT_LIMIT) {
    try {
      const parts = [];
      highlightCode(
        text,
        pythonLanguage.parser.parse(text),
        classHighlighter,
        (piece, classes) => {
          if (!classes) {
            parts.push(document.createTextNode(piece));
            return;
          }
          const span = el("span", classes, piece);
          parts.push(span);
        },
        () => parts.push(document.createTextNode("\n")),
      );
      target.replaceChildren(...parts);
      return;
    } catch {
      // Plain text below.
    }
  }
  target.textContent = text;
}

/** Puts `text` on the clipboard: the async Clipboard API, else a hidden textarea and
 *  execCommand (plain-http pages have no navigator.clipboard). */
async function writeClipboard(text, returnFocusTo) {
  if (navigator.clipboard && typeof navigator.clipboard.writeText === "function") {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Fall back below.
    }
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.readOnly = true;
  area.tabIndex = -1;
  area.setAttribute("aria-hidden", "true");
  Object.assign(area.style, { position: "fixed", top: "0", left: "0", width: "1px", height: "1px", opacity: "0" });
  // The page records copies it sees; this one is recorded by the Copy button, with its turn.
  area.addEventListener("copy", (event) => event.stopPropagation());
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  if (returnFocusTo) returnFocusTo.focus();
  return ok;
}

class Chat {
  constructor({ panel, url, stage, folder, getCode, emit, onStageOver, history }) {
    Object.assign(this, { panel, url, stage, folder, getCode, emit, onStageOver });
    const $ = (selector) => panel.querySelector(selector);
    this.log = $("[data-chat-log]");
    this.emptyNote = $("[data-chat-empty]");
    this.input = $("[data-chat-input]");
    this.sendButton = $("[data-chat-send]");
    this.stopButton = $("[data-chat-stop]");
    this.status = $("[data-chat-status]");
    this.controller = null;
    this.busy = false;
    this.closed = false;
    // The conversation stays scrolled to its end (as it grows, and when the window or the
    // panel changes size) unless the participant has scrolled up to read.
    this.pinned = true;
    this.log.addEventListener("scroll", () => {
      this.pinned = this.atEnd();
    }, { passive: true });
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(() => {
        if (this.pinned) this.log.scrollTop = this.log.scrollHeight;
      }).observe(this.log);
    }

    for (const node of panel.querySelectorAll("[data-chat-only]")) node.hidden = false;
    for (const node of panel.querySelectorAll("[data-chat-nojs]")) node.hidden = true;
    this.restore(history);

    this.sendButton.addEventListener("click", () => this.send());
    this.stopButton.addEventListener("click", () => this.stop());
    this.input.addEventListener("keydown", (event) => {
      if (event.isComposing || event.keyCode === 229) return; // an input method is composing
      if (event.key === "Enter" && !event.shiftKey && !event.altKey) {
        event.preventDefault();
        if (this.busy) this.say(TEXT.busy);
        else this.send();
      } else if (event.key === "Escape" && this.busy) {
        event.preventDefault();
        this.stop();
      }
    });
    this.input.addEventListener("focus", () => this.emit("focus", { scope: "assistant", task: folder }));
    this.input.addEventListener("blur", () => this.emit("blur", { scope: "assistant", task: folder }));
  }

  // ---- the conversation --------------------------------------------------------------------

  restore(history) {
    for (let i = 0; i < history.length; i++) {
      const entry = history[i];
      if (!entry || typeof entry.content !== "string") continue;
      if (entry.role === "user") {
        this.addUser(entry.content);
        const next = history[i + 1];
        if (!next || next.role !== "assistant") {
          this.addReply({ turn: entry.turn }).finish("", TEXT.noAnswer);
        }
      } else if (entry.role === "assistant") {
        // `turn` and `status` are used when the server sends them (see chat.history()).
        const note = entry.status === "stopped" ? TEXT.stoppedNote : entry.status === "failed" ? TEXT.cutShort : null;
        this.addReply({ turn: entry.turn }).finish(entry.content, note);
      }
    }
    this.scrollToEnd(true);
  }

  append(node) {
    if (this.emptyNote) this.emptyNote.hidden = true;
    this.log.append(node);
    return node;
  }

  addUser(text) {
    const message = el("div", "chat-msg from-user");
    message.append(el("p", "chat-who", "You"), el("div", "chat-text", text));
    return this.append(message);
  }

  addReply({ turn = null } = {}) {
    const message = el("div", "chat-msg from-assistant");
    if (Number.isInteger(turn)) message.dataset.turn = String(turn);
    const body = el("div", "chat-text md");
    const note = el("p", "chat-note");
    note.hidden = true;
    message.append(el("p", "chat-who", "Assistant"), body, note);
    this.append(message);
    return new Reply(this, message, body, note);
  }

  /** A code block of a reply: the code, and (once the reply is complete) a Copy button. A
   *  block cut off before its first line (a stopped answer) is left out. */
  codeBlock(block, message, final) {
    if (final && !block.text) return document.createDocumentFragment();
    const wrapper = el("div", "chat-code");
    const head = el("div", "chat-code-head");
    head.append(el("span", "chat-code-lang", block.lang || "code"));
    if (final) {
      const button = el("button", "chat-copy secondary", "Copy");
      button.type = "button";
      button.append(el("span", "visually-hidden", " code"));
      button.addEventListener("click", () => this.copy(block.text, button, message));
      head.append(button);
    }
    const pre = el("pre");
    const code = el("code");
    fillCode(code, block.text, block.lang);
    pre.append(code);
    wrapper.append(head, pre);
    return wrapper;
  }

  async copy(text, button, message) {
    const ok = await writeClipboard(text, button);
    if (!ok) {
      this.say(TEXT.copyFailed, "error");
      return;
    }
    const sha256 = await sha256Hex(text);
    this.emit("copy", {
      task: this.folder,
      where: "assistant",
      source: "assistant",
      turn: turnOf(message),
      length: text.length,
      sha256,
      cut: false,
      via: "button",
      ...(text.length <= COPY_TEXT_CHARS ? { text } : {}),
    });
    button.firstChild.textContent = "Copied";
    this.say(TEXT.copied, "", true);
    clearTimeout(button.resetTimer);
    button.resetTimer = setTimeout(() => {
      button.firstChild.textContent = "Copy";
    }, 2000);
  }

  // ---- asking ------------------------------------------------------------------------------

  async send() {
    if (this.busy || this.closed) return;
    const question = this.input.value.trim();
    if (!question) {
      this.say(TEXT.empty, "error");
      this.input.focus();
      return;
    }
    if (question.length > MAX_QUESTION_CHARS) {
      this.say(TEXT.tooLong, "error");
      return;
    }
    this.busy = true;
    const asked = this.addUser(question);
    const reply = this.addReply();
    this.input.value = "";
    this.scrollToEnd(true);
    this.setStreaming(true);
    this.say(TEXT.sending);
    const controller = new AbortController();
    this.controller = controller;
    let text = "";
    const result = await askAssistant({
      url: this.url,
      body: { stage: this.stage, task: this.folder, message: question, code: this.getCode() },
      csrfToken: csrfToken(),
      signal: controller.signal,
      onMessage: (message) => {
        if (message.type === "start") {
          reply.setTurn(message.turn);
          this.say(TEXT.answering);
        } else if (message.type === "delta" && typeof message.text === "string") {
          text += message.text;
          reply.update(text);
        }
      },
    });
    this.controller = null;
    this.busy = false;
    this.setStreaming(false);
    if (this.closed) {
      reply.finish(text, text ? null : TEXT.noAnswer);
      return;
    }
    switch (result.outcome) {
      case "finished":
        if (result.last.type === "done") {
          reply.finish(text, text ? null : TEXT.emptyAnswer);
          this.say(TEXT.answered, "", true);
        } else {
          const message = typeof result.last.message === "string" && result.last.message ? result.last.message : TEXT.failed;
          reply.finish(text, message, "error");
          this.say(message, "error");
        }
        break;
      case "stopped":
        reply.finish(text, TEXT.stoppedNote);
        this.say(TEXT.stopped);
        break;
      case "interrupted": {
        const message = result.reason === "timeout" ? TEXT.timeout : TEXT.interrupted;
        reply.finish(text, message, "error");
        this.say(message, "error");
        break;
      }
      default:
        // Refused or unreachable: nothing was asked. The question goes back into the box.
        asked.remove();
        reply.remove();
        if (this.emptyNote && !this.log.querySelector(".chat-msg")) this.emptyNote.hidden = false;
        if (!this.input.value.trim()) this.input.value = question;
        this.refused(result);
    }
  }

  refused(result) {
    if (result.outcome === "unreachable") {
      this.say(TEXT.unreachable, "error");
      return;
    }
    const data = result.data && typeof result.data === "object" ? result.data : {};
    if (result.status === 409 && data.error === "stage_over") {
      this.onStageOver(data.redirect);
      return;
    }
    if (typeof data.message === "string" && data.message) {
      this.say(data.message, "error");
    } else if (result.status === 429 || result.status === 503) {
      this.say(TEXT.failed, "error");
    } else {
      this.say(`Something went wrong (error ${result.status}). Please try again.`, "error");
    }
  }

  stop() {
    if (this.controller) this.controller.abort();
  }

  /** The stage is over: stop any answer; no more questions. */
  close() {
    this.closed = true;
    this.stop();
    this.input.disabled = true;
    this.sendButton.disabled = true;
  }

  setStreaming(on) {
    const hidden = on ? this.sendButton : this.stopButton;
    const shown = on ? this.stopButton : this.sendButton;
    const hadFocus = document.activeElement === hidden;
    shown.hidden = false;
    hidden.hidden = true;
    if (hadFocus) (on ? shown : this.input).focus();
    this.panel.classList.toggle("streaming", on);
  }

  /** The panel's status line (a live region). `transient` messages clear themselves. */
  say(text, tone = "", transient = false) {
    clearTimeout(this.sayTimer);
    this.status.textContent = text;
    this.status.dataset.tone = tone;
    if (transient) {
      this.sayTimer = setTimeout(() => {
        if (this.status.textContent === text) this.status.textContent = "";
      }, TRANSIENT_MS);
    }
  }

  atEnd() {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 48;
  }

  scrollToEnd(force = false) {
    if (force || this.pinned) {
      this.log.scrollTop = this.log.scrollHeight;
      this.pinned = true;
    }
  }
}

/** One reply: re-rendered from its whole text as it streams (at most every 50 ms); the Copy
 *  buttons appear when it is complete (or stopped). */
class Reply {
  constructor(chat, message, body, note) {
    Object.assign(this, { chat, message, body, note });
    this.timer = null;
    this.text = "";
    message.setAttribute("aria-busy", "true");
    body.append(el("span", "chat-waiting", "…"));
  }

  setTurn(turn) {
    if (Number.isInteger(turn)) this.message.dataset.turn = String(turn);
  }

  update(text) {
    this.text = text;
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.render(false);
    }, RENDER_EVERY_MS);
  }

  render(final) {
    const fragment = document.createDocumentFragment();
    renderMarkdown(document, fragment, parseMarkdown(this.text), {
      codeBlock: (block) => this.chat.codeBlock(block, this.message, final),
    });
    this.body.replaceChildren(fragment);
    this.chat.scrollToEnd();
  }

  finish(text, note, tone = "") {
    clearTimeout(this.timer);
    this.timer = null;
    this.text = text;
    this.render(true);
    this.body.hidden = !text;
    if (note) {
      this.note.textContent = note;
      this.note.dataset.tone = tone;
      this.note.hidden = false;
    }
    this.message.removeAttribute("aria-busy");
    this.chat.scrollToEnd();
  }

  remove() {
    clearTimeout(this.timer);
    this.message.remove();
  }
}
