// Steps or plays through one participant's code history (frames built on the server).
// Each frame belongs to one task: showing a frame shows that task's code at that moment and
// selects the task in the list; choosing another task in the list jumps to that task's
// latest moment at or before the current one (or its first moment if it has none yet).
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
  let timer = null;

  function lastCodeFor(task, upto) {
    for (let i = upto; i >= 0; i--) if (frames[i].task === task) return frames[i].code;
    return "";
  }
  function taskAt(i) {
    // A frame without a task (a stage change, say) shows the task shown last before it.
    for (let k = i; k >= 0; k--) if (frames[k].task) return frames[k].task;
    return tasks[0] || "";
  }
  function show(i) {
    const f = frames[i];
    if (f === undefined) return;
    const task = taskAt(i);
    slider.value = String(i);
    if (task) select.value = task;
    code.textContent = lastCodeFor(task, i);
    code.dataset.task = task;
    caption.textContent = `${new Date(f.t).toISOString().slice(11, 19)} UTC — ${f.label}${f.task ? " (" + f.task + ")" : ""}`;
    [...timeline.children].forEach((li, k) => li.toggleAttribute("aria-current", k === i));
    const current = timeline.children[i];
    if (current) current.scrollIntoView({ block: "nearest" });
  }
  function jumpToTask(task) {
    const at = Number(slider.value);
    for (let i = at; i >= 0; i--) if (frames[i].task === task) return show(i);
    const first = frames.findIndex((f) => f.task === task);
    if (first >= 0) show(first);
  }
  frames.forEach((f, i) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button"; b.className = "secondary";
    b.dataset.kind = f.kind;
    b.dataset.task = f.task;
    b.textContent = `${new Date(f.t).toISOString().slice(11, 19)} ${f.label}${f.task ? " · " + f.task : ""}`;
    b.addEventListener("click", () => show(i));
    li.append(b);
    timeline.append(li);
  });
  slider.max = String(Math.max(0, frames.length - 1));
  slider.addEventListener("input", () => show(Number(slider.value)));
  select.addEventListener("change", () => jumpToTask(select.value));
  document.getElementById("replay-prev").addEventListener("click", () => show(Math.max(0, Number(slider.value) - 1)));
  document.getElementById("replay-next").addEventListener("click", () => show(Math.min(frames.length - 1, Number(slider.value) + 1)));
  play.addEventListener("click", () => {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "Play"; return; }
    play.textContent = "Pause";
    timer = setInterval(() => {
      const next = Number(slider.value) + 1;
      if (next >= frames.length) { clearInterval(timer); timer = null; play.textContent = "Play"; return; }
      show(next);
    }, 400);
  });
  show(0);
})();
