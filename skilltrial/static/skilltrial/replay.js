// Steps or plays through one participant's code history (frames built on the server).
(function () {
  const data = document.getElementById("replay-frames");
  if (!data) return;
  const frames = JSON.parse(data.textContent);
  const slider = document.getElementById("replay-slider");
  const code = document.getElementById("replay-code");
  const caption = document.getElementById("replay-caption");
  const timeline = document.getElementById("replay-timeline");
  const select = document.getElementById("replay-task");
  const play = document.getElementById("replay-play");
  const tasks = [...new Set(frames.map((f) => f.task).filter(Boolean))];
  for (const t of tasks) select.add(new Option(t, t));
  let shown = frames.map((_, i) => i);
  let timer = null;

  function lastCodeFor(task, upto) {
    for (let i = upto; i >= 0; i--) if (frames[i].task === task) return frames[i].code;
    return "";
  }
  function show(pos) {
    const i = shown[pos];
    if (i === undefined) return;
    const f = frames[i];
    slider.value = String(pos);
    code.textContent = lastCodeFor(select.value || f.task, i);
    caption.textContent = `${new Date(f.t).toISOString().slice(11, 19)} UTC — ${f.label}${f.task ? " (" + f.task + ")" : ""}`;
    [...timeline.children].forEach((li, k) => li.toggleAttribute("aria-current", k === pos));
    const current = timeline.children[pos];
    if (current) current.scrollIntoView({ block: "nearest" });
  }
  function rebuild() {
    timeline.replaceChildren();
    shown.forEach((i, pos) => {
      const f = frames[i];
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button"; b.className = "secondary";
      b.textContent = `${new Date(f.t).toISOString().slice(11, 19)} ${f.label}`;
      b.addEventListener("click", () => show(pos));
      li.append(b);
      timeline.append(li);
    });
    slider.max = String(Math.max(0, shown.length - 1));
  }
  slider.addEventListener("input", () => show(Number(slider.value)));
  select.addEventListener("change", () => show(Number(slider.value)));
  document.getElementById("replay-prev").addEventListener("click", () => show(Math.max(0, Number(slider.value) - 1)));
  document.getElementById("replay-next").addEventListener("click", () => show(Math.min(shown.length - 1, Number(slider.value) + 1)));
  play.addEventListener("click", () => {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "Play"; return; }
    play.textContent = "Pause";
    timer = setInterval(() => {
      const next = Number(slider.value) + 1;
      if (next >= shown.length) { clearInterval(timer); timer = null; play.textContent = "Play"; return; }
      show(next);
    }, 400);
  });
  rebuild();
  show(0);
})();
