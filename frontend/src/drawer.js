// The assistant's panel as a drawer below 1400 px (task.css): opened from the task's heading,
// closed with its Hide button or Escape, as wide as the participant drags its left edge (or
// moves it with the arrow keys). From 1400 px it is a column and none of this shows. Layout
// only: what the panel does is chat.js.

const WIDE = "(min-width: 1400px)";
const STEP = 32;
const MIN_WIDTH = 280;

export function setUpDrawers({ root = document, storage = null, widthKey = "" } = {}) {
  const panels = Array.from(root.querySelectorAll("[data-assistant-panel]"));
  if (!panels.length) return null;
  const host = root.querySelector("main") || document.documentElement;
  const wide = window.matchMedia ? window.matchMedia(WIDE) : { matches: true };
  const maxWidth = () => Math.max(MIN_WIDTH, Math.floor(window.innerWidth * 0.9));
  let width = Number(storage && widthKey ? storage.getItem(widthKey) : NaN);

  const drawers = panels.map((panel) => {
    const section = panel.closest("[data-task-folder]") || root;
    const toggle = section.querySelector("[data-assistant-toggle]");
    const close = panel.querySelector("[data-assistant-close]");
    const handle = panel.querySelector("[data-drawer-handle]");
    for (const node of [toggle, close, handle]) if (node) node.hidden = false;
    return { panel, toggle, close, handle };
  });

  function setWidth(px, { remember = true } = {}) {
    if (!Number.isFinite(px) || px <= 0) return;
    width = Math.round(Math.min(maxWidth(), Math.max(MIN_WIDTH, px)));
    host.style.setProperty("--drawer-width", `${width}px`);
    for (const { handle } of drawers) {
      if (!handle) continue;
      handle.setAttribute("aria-valuenow", String(width));
      handle.setAttribute("aria-valuemin", String(MIN_WIDTH));
      handle.setAttribute("aria-valuemax", String(maxWidth()));
      handle.setAttribute("aria-valuetext", `${width} pixels wide`);
    }
    if (remember && storage && widthKey) {
      try {
        storage.setItem(widthKey, String(width));
      } catch {
        // storage full or refused: the width is only a comfort
      }
    }
  }

  function show(drawer, open, { focus = true } = {}) {
    for (const other of drawers) {
      if (other !== drawer && open) show(other, false, { focus: false });
    }
    drawer.panel.classList.toggle("open", open);
    if (drawer.toggle) {
      drawer.toggle.setAttribute("aria-expanded", String(open));
      drawer.toggle.textContent = open ? "Hide the AI assistant" : "Open the AI assistant";
    }
    if (!focus) return;
    if (open) {
      const input = drawer.panel.querySelector("[data-chat-input]");
      (input && !input.closest("[hidden]") ? input : drawer.panel.querySelector("[data-chat-log]"))?.focus();
    } else if (drawer.toggle) {
      drawer.toggle.focus();
    }
  }

  const initial = (() => {
    const rect = { width: Math.min(480, window.innerWidth) };
    return Number.isFinite(width) && width > 0 ? width : rect.width;
  })();
  setWidth(initial, { remember: false });

  for (const drawer of drawers) {
    const { panel, toggle, close, handle } = drawer;
    toggle?.addEventListener("click", () => show(drawer, !panel.classList.contains("open")));
    close?.addEventListener("click", () => show(drawer, false));
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !event.defaultPrevented && !wide.matches && panel.classList.contains("open")) {
        event.preventDefault();
        show(drawer, false);
      }
    });
    if (!handle) continue;
    handle.addEventListener("keydown", (event) => {
      const delta = { ArrowLeft: STEP, ArrowRight: -STEP, Home: maxWidth(), End: -maxWidth() }[event.key];
      if (delta === undefined) return;
      event.preventDefault();
      setWidth(width + delta);
    });
    handle.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      handle.setPointerCapture?.(event.pointerId);
      const move = (e) => setWidth(window.innerWidth - e.clientX, { remember: false });
      const up = (e) => {
        handle.removeEventListener("pointermove", move);
        handle.removeEventListener("pointerup", up);
        handle.removeEventListener("pointercancel", up);
        setWidth(window.innerWidth - e.clientX);
      };
      handle.addEventListener("pointermove", move);
      handle.addEventListener("pointerup", up);
      handle.addEventListener("pointercancel", up);
    });
  }
  return {
    open: (index = 0) => show(drawers[index], true),
    close: () => drawers.forEach((d) => show(d, false, { focus: false })),
  };
}
