"""One participant's rows: stage records, code, runs, checks, assistant turns and telemetry along
the planned timeline.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from analysis.synthetic.model import (
    ASSISTANT_TURNS_PER_TASK,
    SANDBOX,
    _answer,
    _geometric,
    _QuizModel,
)
from analysis.synthetic.population import _Person, _Record
from analysis.synthetic.world import _TaskModel, _World
from analysis.synthetic.writer import _RawEvent, _Rows
from quizzes.models import ItemResponse, QuizAttempt
from quizzes.quizfile import order_for_participant
from quizzes.selectors import participant_seed
from trials.assistant.base import estimate_cost
from trials.models import (
    AssistantTurn,
    CodeRun,
    CodeSnapshot,
    Participant,
    Stage,
    StageRecord,
    TaskState,
)


class _Log:
    """One participant's events. The browser stamps its events with its own clock (a little
    off) and sends them in batches, in order, so they reach the server a moment later."""

    def __init__(self, rand: random.Random) -> None:
        self.rand = rand
        self.skew = rand.gauss(0.0, 1.5)
        self.server_events: list[_RawEvent] = []
        self.client_events: list[_RawEvent] = []

    def server(self, t: float, stage: Stage | None, etype: str, payload: dict[str, Any]) -> None:
        self.server_events.append((t, stage.pk if stage else None, etype, "server", None, payload))

    def client(self, t: float, stage: Stage, etype: str, payload: dict[str, Any]) -> None:
        self.client_events.append((t, stage.pk, etype, "client", None, payload))

    def timeline(self) -> list[tuple[float, int | None, str, str, float | None, int | None, Any]]:
        """Every event as (server time, stage id, type, origin, client time, client seq,
        payload), in server-time order."""
        out: list[tuple[float, int | None, str, str, float | None, int | None, Any]] = [
            (t, stage_id, etype, origin, None, None, payload)
            for t, stage_id, etype, origin, _c, payload in self.server_events
        ]
        arrived = -math.inf
        self.client_events.sort(key=lambda e: e[0])
        for seq, (t, stage_id, etype, origin, _c, payload) in enumerate(self.client_events, 1):
            arrived = max(arrived, t + 0.2 + self.rand.random() * 4.0)
            out.append((arrived, stage_id, etype, origin, t + self.skew, seq, payload))
        out.sort(key=lambda e: e[0])
        return out


@dataclass
class _TaskPlan:
    """What happens on one task, decided before the edits are (their number depends on the
    other events)."""

    task: _TaskModel
    start: float
    end: float
    passed: float | None
    runs: list[float]
    failed_checks: list[float]
    window_switches: list[float]
    hidden: list[float]
    idle: float | None
    paste: float | None
    turns: list[tuple[float, int, bool]]  # time, assistant pool index, failed
    progress: float  # share of the script done when not passed
    periodic: int

    @property
    def length(self) -> float:
        return self.end - self.start

    def event_count(self, submitted: bool) -> int:
        if self.length <= 0:
            return 1  # the "load" snapshot only
        count = 3 + self.periodic  # focus, blur, load snapshot, periodic snapshots
        count += 2 * len(self.runs) + 2 * len(self.failed_checks)
        count += 3 if self.passed is not None else 0  # the passing check and task_completed
        count += 2 * len(self.window_switches) + 2 * len(self.hidden)
        count += (self.idle is not None) + 2 * (self.paste is not None)
        for _t, pool_index, failed in self.turns:
            count += 4 + (2 if not failed and self.task.assistant_pool[pool_index][2] else 0)
        return count + (1 if submitted else 0)


def _plan_task(
    rand: random.Random,
    task: _TaskModel,
    window: tuple[float, float, float | None],
    assistant: bool,
) -> _TaskPlan:
    start, end, passed = window
    length = end - start
    work_end = passed if passed is not None else end

    def within(low: float, high: float) -> float:
        return low + rand.random() * max(0.0, high - low)

    # Failed checks and runs happen before the task is done (the code is not finished yet).
    early = start + 0.85 * (work_end - start)
    runs = sorted(within(start + 5, early) for _ in range(_geometric(rand, 1.5)))
    checks = sorted(
        within(start + 10, early)
        for _ in range(_geometric(rand, 1.0 if passed is not None else 1.5))
    )
    switches = [within(start, end) for _ in range(_geometric(rand, 1.0))]
    hidden = [within(start, end) for _ in range(1 if rand.random() < 0.4 else 0)]
    turns: list[tuple[float, int, bool]] = []
    if assistant and task.assistant_pool and length > 60:
        for _ in range(_geometric(rand, ASSISTANT_TURNS_PER_TASK)):
            turns.append(
                (
                    within(start + 20, work_end - 20),
                    rand.randrange(len(task.assistant_pool)),
                    rand.random() < 0.02,
                )
            )
        turns.sort()
    if length <= 0:
        runs, checks, switches, hidden, turns = [], [], [], [], []
    return _TaskPlan(
        task=task,
        start=start,
        end=end,
        passed=passed,
        runs=runs,
        failed_checks=checks,
        window_switches=switches,
        hidden=hidden,
        idle=within(start, end) if length > 300 and rand.random() < 0.3 else None,
        paste=within(start, work_end) if length > 30 and rand.random() < 0.2 else None,
        turns=turns,
        progress=0.3 + 0.6 * rand.random(),
        periodic=int(length // 600),
    )


def _turn_payloads(
    turn: AssistantTurn, folder: str, context: dict[str, Any], blocks: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The server's request and response (or error) events of one assistant turn."""
    failed = turn.status == AssistantTurn.Status.FAILED
    request = {
        "task": folder,
        "turn": None,
        "question": turn.question,
        "provider": turn.provider,
        "model": turn.model,
        "context": context,
        "code_sha256": turn.code_sha256,
    }
    response: dict[str, Any] = {
        "task": folder,
        "turn": None,
        "status": str(turn.status),
        "reply": turn.reply,
        "code_blocks": [hashlib.sha256(b.encode()).hexdigest() for b in blocks]
        if not failed
        else [],
        "latency_ms": turn.latency_ms,
        "input_tokens": turn.input_tokens,
    }
    if not failed:
        response.update(output_tokens=turn.output_tokens, stop_reason="end_turn", model=turn.model)
    else:
        response.update(error_kind=turn.error_kind, error_message=turn.error_message)
    return request, response


def _program_run(
    rand: random.Random, pid: str, stage: Stage, folder: str, sha: str, version: int
) -> CodeRun:
    """A Run: a quarter end in an exception."""
    error = rand.random() < 0.25
    exc = rand.choice(["NameError", "TypeError", "AttributeError", "RuntimeError"])
    status = "error" if error else "ok"
    return CodeRun(
        participant_id=pid,
        stage=stage,
        task=folder,
        kind="run",
        code_sha256=sha,
        snapshot_version=version,
        stdout="" if error else "done\n",
        stderr=(
            "Traceback (most recent call last):\n"
            f'  File "main.py", line {5 + rand.randrange(20)}, in <module>\n'
            f"{exc}: synthetic error\n"
        )
        if error
        else "",
        exit_code=1 if error else 0,
        duration_ms=150 + int(rand.random() * 1500),
        status=status,
        exception_type=exc if error else "",
        sandbox=SANDBOX,
    )


def _check_run(
    rand: random.Random,
    pid: str,
    stage: Stage,
    task: _TaskModel,
    ok: bool,
    sha: str,
    version: int,
) -> CodeRun:
    """A Check: all tests pass when ``ok``, else a random number short of all."""
    total = len(task.test_names)
    passed = total if ok else rand.randrange(total)
    flags = [True] * passed + [False] * (total - passed)
    rand.shuffle(flags)
    results = [
        {"name": name, "passed": flag, "message": "" if flag else "not yet"}
        for name, flag in zip(task.test_names, flags, strict=True)
    ]
    return CodeRun(
        participant_id=pid,
        stage=stage,
        task=task.folder,
        kind="check",
        code_sha256=sha,
        snapshot_version=version,
        exit_code=0,
        duration_ms=300 + int(rand.random() * 2000),
        status="ok",
        sandbox=SANDBOX,
        tests_passed=passed,
        tests_total=total,
        test_results=results,
    )


def _actions(plan: _TaskPlan) -> list[tuple[float, str, bool]]:
    """Runs and checks in plan order: (time, kind, passed)."""
    actions: list[tuple[float, str, bool]] = [(t, "run", False) for t in plan.runs]
    actions += [(t, "check", False) for t in plan.failed_checks]
    if plan.passed is not None:
        actions.append((plan.passed, "check", True))
    return actions


def _saves(
    plan: _TaskPlan,
    record: _Record,
    actions: list[tuple[float, str, bool]],
    edit_times: list[float],
    texts: list[str],
    code_at: Callable[[float], str],
    final: str,
) -> list[tuple[float, str, str]]:
    """(time, source, code) of every save: two autosaves, one before every run and check, and
    the final save (the submission, or what the page saved before the participant went)."""
    saves: list[tuple[float, str, str]] = []
    if len(edit_times) >= 6:
        for k in (len(edit_times) // 3, 2 * len(edit_times) // 3):
            saves.append((edit_times[k] + 1.5, "autosave", texts[k]))
    for t, kind, _ok in actions:
        saves.append((t, kind, code_at(t)))
    if record.submitted and record.end is not None:
        saves.append((record.end, "submit", final))
    elif edit_times:
        saves.append((min(plan.end, edit_times[-1] + 2.0), "beacon", final))
    saves.sort(key=lambda s: s[0])
    return saves


class _Builder:
    """Builds the rows of one participant after the other into a :class:`_Rows`. Without
    ``telemetry``: no events, code versions, runs or assistant turns (task states, stage
    records and quiz answers only), for fast statistical tests."""

    def __init__(self, world: _World, origin: datetime, rows: _Rows, telemetry: bool) -> None:
        self.world = world
        self.origin = origin
        self.rows = rows
        self.telemetry = telemetry
        self.arm = ""  # of the participant being built

    def at(self, t: float | None) -> datetime | None:
        return None if t is None else self.origin + timedelta(seconds=t)

    def dt(self, t: float) -> datetime:
        return self.origin + timedelta(seconds=t)

    def person(self, person: _Person) -> None:
        self.arm = person.arm
        rand = random.Random(person.rand_seed)
        log = _Log(rand)
        pid = person.participant_id
        plans: dict[int, list[_TaskPlan]] = {}
        fixed = 0
        for record in person.records:
            info = record.stage
            fixed += 1 + self.leaves(person, record)
            if info.type == Stage.Type.TASK:
                assistant = (
                    person.arm in self.world.assistant_arms and "assistant" in info.row.tools
                )
                plans[info.index] = [
                    _plan_task(rand, task, window, assistant)
                    for task, window in zip(info.tasks, record.windows, strict=True)
                ]
                fixed += 1 + sum(p.event_count(record.submitted) for p in plans[info.index])
        edits_left = max(0, person.event_target - fixed)
        active = [p for ps in plans.values() for p in ps if p.length > 0]
        total_length = sum(p.length for p in active) or 1.0
        for record in person.records:
            info, stage = record.stage, record.stage.row
            log.server(record.start, stage, "stage_entered", {"stage": info.key})
            answers = dict(record.answers)
            if info.type == Stage.Type.TASK:
                log.client(
                    record.start + 1 + 2 * rand.random(),
                    stage,
                    "stage_view",
                    {
                        "tasks": [t.folder for t in info.tasks],
                        "remaining_seconds": int(info.limit) if info.limit else None,
                        "navigation": "navigate",
                    },
                )
                code: dict[str, str] = {}
                for plan in plans[info.index]:
                    share = plan.length / total_length if plan.length > 0 else 0.0
                    code[plan.task.folder] = self.task(
                        rand, log, pid, record, plan, round(edits_left * share)
                    )
                if record.submitted:
                    answers = {"code": code}
            elif info.type == Stage.Type.QUIZ and info.quiz is not None:
                answers = self.quiz(rand, person, record, info.quiz)
            elif info.type == Stage.Type.SURVEY and record.end_reason:
                answers = {}
                for question in info.row.config.get("questions", []):
                    value = _answer(question, rand, survey=True)
                    if value not in (None, "", []):
                        answers[question["key"]] = value
            if self.leaves(person, record) and record.end is not None:
                reason = record.end_reason or "withdrawn"
                log.server(record.end, stage, "stage_left", {"stage": info.key, "reason": reason})
            self.rows.records.append(
                StageRecord(
                    participant_id=pid,
                    stage=stage,
                    started_at=self.dt(record.start),
                    deadline=self.at(record.deadline),
                    ended_at=self.at(record.end),
                    end_reason=record.end_reason,
                    answers=answers,
                    draft={},
                )
            )
        if self.telemetry:
            self.flush(pid, log)

    @staticmethod
    def leaves(person: _Person, record: _Record) -> bool:
        """Whether leaving the stage is logged: passing on (also after a time-out) or
        withdrawing, as the services log it; declining and screen-outs are not."""
        if record.end is None:
            return False
        return record.end_reason in ("completed", "timed_out") or (
            not record.end_reason and person.status == Participant.Status.WITHDRAWN
        )

    def flush(self, pid: str, log: _Log) -> None:
        for n, (t, stage_id, etype, origin, client_t, seq, payload) in enumerate(log.timeline()):
            client_id = f"syn-{n:x}" if origin == "client" else f"srv-syn-{n:x}"
            self.rows.events.append(
                (
                    pid,
                    stage_id,
                    etype,
                    client_id,
                    seq,
                    self.at(client_t),
                    self.dt(t),
                    origin,
                    payload,
                )
            )

    # -- tasks ---------------------------------------------------------------------------

    def task(
        self,
        rand: random.Random,
        log: _Log,
        pid: str,
        record: _Record,
        plan: _TaskPlan,
        n_edits: int,
    ) -> str:
        """Edits, saves, runs, checks and assistant turns on one task; returns the final code.
        The steps draw from ``rand`` in a fixed order: the same seed, the same data."""
        task, stage = plan.task, record.stage.row
        folder = task.folder
        log.client(
            record.start + 2, stage, "snapshot", _snapshot_payload(folder, task.starter, 0, "load")
        )
        state = TaskState(
            participant_id=pid,
            stage=stage,
            task=folder,
            first_passed_at=self.at(plan.passed),
            submitted_at=self.at(record.end) if record.submitted else None,
        )
        self.rows.states.append(state)
        if not self.telemetry:
            state.runs = len(plan.runs)
            state.checks = len(plan.failed_checks) + (plan.passed is not None)
            return task.target if plan.passed is not None else task.starter
        if plan.length <= 0:
            return task.starter
        edit_times, changes, texts = self.edits(rand, plan, n_edits)

        def code_at(t: float) -> str:
            k = bisect.bisect_right(edit_times, t)
            return texts[k - 1] if k else task.starter

        actions = _actions(plan)
        final = texts[-1] if texts else task.starter
        saves = _saves(plan, record, actions, edit_times, texts, code_at, final)
        version_at, version_before = self._store_saves(log, pid, stage, folder, saves, state)
        self._edit_events(
            log, stage, folder, task.starter, edit_times, changes, texts, version_before
        )
        for j in range(plan.periodic):
            t = plan.start + (j + 1) * plan.length / (plan.periodic + 1)
            log.client(
                t,
                stage,
                "snapshot",
                _snapshot_payload(folder, code_at(t), version_before(t), "periodic"),
            )
        runs = checks = 0
        for t, kind, ok in sorted(actions):
            code = code_at(t)
            if kind == "run":
                runs += 1
            else:
                checks += 1
            self.code_run(rand, log, pid, stage, task, t, kind, ok, code, version_at[t])
        state.runs, state.checks = runs, checks
        self._attention_events(rand, log, stage, folder, plan)
        if plan.paste is not None:
            self.paste(log, stage, folder, plan.paste, task.snippet, where="instructions")
        for n, (t, pool_index, failed) in enumerate(plan.turns):
            self.assistant_turn(rand, log, pid, stage, task, t, pool_index, failed, n, code_at(t))
        if record.submitted and record.end is not None:
            log.server(record.end, stage, "task_submitted", {"task": folder})
        return final

    def _store_saves(
        self,
        log: _Log,
        pid: str,
        stage: Stage,
        folder: str,
        saves: list[tuple[float, str, str]],
        state: TaskState,
    ) -> tuple[dict[float, int], Callable[[float], int]]:
        """A snapshot row for every save that changed the code; returns the version at each
        save time and the version saved before any time."""
        version, saved_code = 0, None
        version_at: dict[float, int] = {}
        save_times: list[float] = []
        save_versions: list[int] = []
        for t, source, code in saves:
            if code != saved_code or version == 0:
                version += 1
                saved_code = code
                self.rows.snapshots.append(
                    CodeSnapshot(
                        participant_id=pid,
                        stage=stage,
                        task=folder,
                        version=version,
                        code=code,
                        source=source,
                        client_time=self.dt(t + log.skew)
                        if source in ("autosave", "beacon")
                        else None,
                        created_at=self.dt(t),
                    )
                )
            version_at[t] = version
            save_times.append(t)
            save_versions.append(version)
        state.latest_version = version

        def version_before(t: float) -> int:
            k = bisect.bisect_right(save_times, t)
            return save_versions[k - 1] if k else 0

        return version_at, version_before

    def _edit_events(
        self,
        log: _Log,
        stage: Stage,
        folder: str,
        starter: str,
        edit_times: list[float],
        changes: list[tuple[int, int, str]],
        texts: list[str],
        version_before: Callable[[float], int],
    ) -> None:
        for n, (t, change) in enumerate(zip(edit_times, changes, strict=True)):
            before = texts[n - 1] if n else starter
            start, end, text = change
            log.client(
                t,
                stage,
                "edit",
                {
                    "task": folder,
                    "changes": [[start, end, text]],
                    "version_hint": version_before(t),
                    "base_length": len(before),
                    "length": len(texts[n]),
                    "transactions": 1 + len(text) // 4,
                    "user_events": ["input.type"] if text else ["delete.backward"],
                },
            )

    def _attention_events(
        self, rand: random.Random, log: _Log, stage: Stage, folder: str, plan: _TaskPlan
    ) -> None:
        """Focus, switching away, hiding the page, idling."""
        log.client(
            plan.start + 1 + rand.random() * 3, stage, "focus", {"scope": "editor", "task": folder}
        )
        log.client(
            plan.end + 0.5 + rand.random() * 2, stage, "blur", {"scope": "editor", "task": folder}
        )
        for t in plan.window_switches:
            log.client(t, stage, "blur", {"scope": "window"})
            log.client(t + 5 + rand.random() * 60, stage, "focus", {"scope": "window"})
        for t in plan.hidden:
            log.client(t, stage, "visibility", {"state": "hidden"})
            log.client(t + 10 + rand.random() * 120, stage, "visibility", {"state": "visible"})
        if plan.idle is not None:
            seconds = 60 + int(rand.random() * 240)
            log.client(
                plan.idle,
                stage,
                "idle",
                {"seconds": seconds, "since": self.dt(plan.idle - seconds).isoformat()},
            )

    def edits(
        self, rand: random.Random, plan: _TaskPlan, n_edits: int
    ) -> tuple[list[float], list[tuple[int, int, str]], list[str]]:
        """Edit events from the starter towards the target: one script step each, with
        typing slips (a character typed and deleted again) to make up the number."""
        task = plan.task
        done = plan.passed is not None
        chosen = task.scripts[-1]
        needed = len(chosen.steps) if done else 0
        for script in task.scripts:
            steps = len(script.steps) if done else int(plan.progress * len(script.steps))
            steps = min(steps, len(script.steps) - (0 if done else 1))
            if steps <= max(n_edits, 1):
                chosen, needed = script, max(0, steps)
                break
        slips = max(0, n_edits - needed) // 2
        changes: list[tuple[int, int, str]] = []
        texts: list[str] = []
        slip_at = sorted(rand.randrange(max(1, needed)) for _ in range(slips))
        cursor, s = 0, 0
        for step_index in range(needed):
            while s < len(slip_at) and slip_at[s] == step_index:
                doc = chosen.docs[step_index]
                cursor = min(cursor, len(doc))
                char = rand.choice("etaoinsr")
                changes.append((cursor, cursor, char))
                texts.append(doc[:cursor] + char + doc[cursor:])
                changes.append((cursor, cursor + 1, ""))
                texts.append(doc)
                s += 1
            start, end, text = chosen.steps[step_index]
            changes.append((start, end, text))
            texts.append(chosen.docs[step_index + 1])
            cursor = start + len(text)
        if needed == 0:
            for _ in range(slips):
                char = rand.choice("etaoinsr")
                doc = task.starter
                changes.append((len(doc), len(doc), char))
                texts.append(doc + char)
                changes.append((len(doc), len(doc) + 1, ""))
                texts.append(doc)
        work_end = plan.passed - 2 if plan.passed is not None else plan.end
        low = plan.start + 3
        high = max(low + 1, work_end)
        times = sorted(low + rand.random() * (high - low) for _ in changes)
        if times and plan.failed_checks and done:
            # The last step (which completes the code) comes after every failed check.
            last_fail = max(max(plan.failed_checks), max(plan.runs, default=low))
            if times[-1] <= last_fail:
                times[-1] = (last_fail + high) / 2
        return times, changes, texts

    def code_run(
        self,
        rand: random.Random,
        log: _Log,
        pid: str,
        stage: Stage,
        task: _TaskModel,
        t: float,
        kind: str,
        ok: bool,
        code: str,
        version: int,
    ) -> None:
        total = len(task.test_names)
        sha = task.sha(code)
        if kind == "run":
            run = _program_run(rand, pid, stage, task.folder, sha, version)
            payload_extra: dict[str, Any] = {"tests_passed": None, "tests_total": None}
        else:
            run = _check_run(rand, pid, stage, task, ok, sha, version)
            payload_extra = {"tests_passed": run.tests_passed, "tests_total": total}
        # Stored when the sandbox is done; a first pass counts from the start (as code_run).
        run.created_at = self.dt(t + run.duration_ms / 1000)
        self.rows.runs.append(run)
        payload: dict[str, Any] = {
            "task": task.folder,
            "run_id": None,
            "code_sha256": sha,
            "version": version,
            "status": run.status,
            "exit_code": run.exit_code,
            "exception_type": run.exception_type,
            "duration_ms": run.duration_ms,
            **payload_extra,
            "first_pass": ok,
            "sandbox": SANDBOX,
        }
        self.rows.fixups.append((payload, "run_id", run))
        log.server(t + run.duration_ms / 1000, stage, kind, payload)
        if ok:
            log.server(
                t + run.duration_ms / 1000 + 0.001, stage, "task_completed", {"task": task.folder}
            )
        ms = run.duration_ms + 40 + int(rand.random() * 200)
        if kind == "run":
            client = {"task": task.folder, "ms": ms, "http_status": 200, "status": run.status}
        else:
            client = {
                "task": task.folder,
                "ms": ms,
                "http_status": 200,
                "passed": run.tests_passed,
                "total": total,
                "all_passed": ok,
            }
        # What the page showed: the browser's own record, never the run or check itself.
        log.client(t + ms / 1000, stage, f"{kind}_shown", client)

    def paste(
        self,
        log: _Log,
        stage: Stage,
        folder: str,
        t: float,
        text: str,
        *,
        where: str,
        turn: AssistantTurn | None = None,
    ) -> None:
        sha = hashlib.sha256(text.encode()).hexdigest()
        copy: dict[str, Any] = {
            "task": folder,
            "where": where,
            "length": len(text),
            "sha256": sha,
            "cut": False,
        }
        paste: dict[str, Any] = {
            "task": folder,
            "where": "editor",
            "length": len(text),
            "sha256": sha,
            "text_preview": text[:200],
            "via": "clipboard",
        }
        if turn is not None:
            copy.update(source="assistant", turn=None, via="button")
            paste.update(from_assistant=True, assistant_turn=None)
            self.rows.fixups.append((copy, "turn", turn))
            self.rows.fixups.append((paste, "assistant_turn", turn))
        log.client(t, stage, "copy", copy)
        log.client(t + 2 + 8 * log.rand.random(), stage, "paste", paste)

    def assistant_turn(
        self,
        rand: random.Random,
        log: _Log,
        pid: str,
        stage: Stage,
        task: _TaskModel,
        t: float,
        pool_index: int,
        failed: bool,
        number: int,
        code: str,
    ) -> None:
        question, reply, blocks = task.assistant_pool[pool_index]
        arm_settings = self.world.assistant_settings[self.arm]
        input_tokens = 400 + task.instructions_tokens + len(code) // 4 + 150 * number
        output_tokens = 0 if failed else len(reply) // 4 + 5
        latency = int((600 + output_tokens * 12) * math.exp(rand.gauss(0, 0.3)))
        context = {
            "system": arm_settings.system_prompt,
            "messages": [{"role": "user", "content": question}],
        }
        turn = AssistantTurn(
            participant_id=pid,
            stage=stage,
            task=task.folder,
            question=question,
            reply="" if failed else reply,
            status=AssistantTurn.Status.FAILED if failed else AssistantTurn.Status.COMPLETED,
            provider=arm_settings.provider,
            model=arm_settings.model,
            context=context,
            code_sha256=task.sha(code),
            input_tokens=input_tokens if not failed else 0,
            output_tokens=output_tokens,
            usage_estimated=arm_settings.provider == "scripted",
            cost_usd=estimate_cost(arm_settings, input_tokens, output_tokens)
            if not failed
            else 0.0,
            latency_ms=latency,
            first_text_ms=None if failed else 200 + int(rand.random() * 700),
            stop_reason="" if failed else "end_turn",
            error_kind="timeout" if failed else "",
            error_message="the provider did not answer in time" if failed else "",
            created_at=self.dt(t),
            finished_at=self.dt(t + latency / 1000),
        )
        self.rows.turns.append(turn)
        log.client(
            t - 15 - 30 * rand.random(), stage, "focus", {"scope": "assistant", "task": task.folder}
        )
        request, response = _turn_payloads(turn, task.folder, context, blocks)
        done = t + latency / 1000
        self.rows.fixups.append((request, "turn", turn))
        self.rows.fixups.append((response, "turn", turn))
        log.server(t, stage, "assistant_request", request)
        log.server(done, stage, "assistant_error" if failed else "assistant_response", response)
        log.client(
            done + 5 + 55 * rand.random(),
            stage,
            "blur",
            {"scope": "assistant", "task": task.folder},
        )
        if blocks and not failed and rand.random() < 0.6:
            self.paste(log, stage, task.folder, done + 3, blocks[0], where="assistant", turn=turn)

    # -- quiz ----------------------------------------------------------------------------

    def quiz(
        self, rand: random.Random, person: _Person, record: _Record, model: _QuizModel
    ) -> dict[str, Any]:
        pid = person.participant_id
        seed = participant_seed(Participant(id=pid, trial=self.world.trial))
        order, options = order_for_participant(model.quiz, seed)
        self.rows.attempts.append(
            QuizAttempt(
                participant_id=pid,
                stage=model.stage,
                seed=seed,
                question_order=order,
                option_order=options,
                created_at=self.dt(record.start + 1),
                submitted_at=self.at(record.end) if record.end_reason else None,
            )
        )
        if not record.end_reason or record.end is None:
            return {}
        theta = person.ability + (model.shift if person.arm != self.world.reference_arm else 0.0)
        fail_rate = self.world.rates.attention_fail
        answers: dict[str, Any] = {}
        position = {key: n for n, key in enumerate(order)}
        for item in model.items:
            question = item.question
            if question.attention_check:
                p_right = 1.0 - fail_rate
            elif question.scored and item.max_points:
                logit = model.discrimination * (theta - model.base - item.offset)
                p_right = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))
            else:
                p_right = 0.5
            if rand.random() < p_right:
                outcome = item.right[rand.randrange(len(item.right))]
            else:
                k = bisect.bisect_right(item.other_cum, rand.random())
                outcome = item.other[min(k, len(item.other) - 1)]
            answers.update(outcome.answers)
            human = outcome.status == ItemResponse.Status.HUMAN
            graded = record.end + (3600 * (2 + 46 * rand.random()) if human else 0.0)
            self.rows.items.append(
                ItemResponse(
                    participant_id=pid,
                    stage=model.stage,
                    question_key=question.key,
                    position=position[question.key],
                    response=outcome.response,
                    points=outcome.points,
                    max_points=item.max_points,
                    status=outcome.status,
                    correct=outcome.correct,
                    is_attention_check=question.attention_check,
                    categories=list(question.categories),
                    detail=outcome.detail,
                    graded_at=self.dt(graded),
                    created_at=self.dt(record.end),
                )
            )
        return answers


def _snapshot_payload(folder: str, code: str, version: int, reason: str) -> dict[str, Any]:
    return {
        "task": folder,
        "code": code,
        "length": len(code),
        "version_hint": version,
        "reason": reason,
    }
