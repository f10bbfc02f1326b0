"""Writes for the coding stage: autosaved code versions, Run and Check in the sandbox.

The sandbox run happens outside any database transaction (it takes seconds); only the short
writes before and after it are transactional.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from trials import runner
from trials.event_types import EventName, RunPayload, task_payload
from trials.models import CodeRun, CodeSnapshot, Participant, Stage, TaskState
from trials.sandbox_requests import Ran, check_request, run_request
from trials.services.errors import StageConflict, TrialError
from trials.services.events import event_log
from trials.services.stages import (
    DEADLINE_GRACE,
    participant_complete_stage,
    participant_sync_clock,
)
from trials.tasks import Task, exception_type, load_task

logger = logging.getLogger("skilltrial.coding")

MAX_CODE_CHARS = 200_000


class SaveConflict(TrialError):
    """Another tab saved a newer version since the one this edit was based on."""

    def __init__(self, state: TaskState, code: str) -> None:
        super().__init__("this task was changed in another tab or window")
        self.version = state.latest_version
        self.code = code


def coding_task(
    *, participant: Participant, stage_key: str, task_folder: str
) -> tuple[Stage, Task]:
    """The participant's current coding stage and one of its tasks; raises StageConflict when
    the participant is not (or no longer) in that stage."""
    participant = participant_sync_clock(participant=participant)
    stage = participant.current_stage
    if stage is None or stage.key != stage_key or stage.type != Stage.Type.TASK:
        raise StageConflict("this stage is over")
    if task_folder not in stage.config.get("tasks", []):
        raise TrialError(f"task {task_folder!r} is not part of this stage")
    return stage, load_task(participant.trial.files, task_folder)


def _state(participant: Participant, stage: Stage, task: str) -> TaskState:
    try:
        state, _ = TaskState.objects.get_or_create(
            participant=participant, task=task, defaults={"stage": stage}
        )
    except IntegrityError:  # created by a concurrent request
        state = TaskState.objects.get(participant=participant, task=task)
    return state


def _locked_state(participant: Participant, stage: Stage, task: str) -> TaskState:
    """The task's state row, locked until the transaction ends (one statement once it
    exists; the first save of a task creates it, and a row just inserted is ours alone)."""
    state = TaskState.objects.select_for_update().filter(participant=participant, task=task).first()
    if state is not None:
        return state
    try:
        with transaction.atomic():
            return TaskState.objects.create(participant=participant, task=task, stage=stage)
    except IntegrityError:  # created by a concurrent request, which has committed since
        return TaskState.objects.select_for_update().get(participant=participant, task=task)


def latest_code(participant: Participant, task: Task) -> tuple[str, int]:
    snapshot = (
        CodeSnapshot.objects.filter(participant=participant, task=task.folder)
        .order_by("-version")
        .first()
    )
    if snapshot is None:
        return task.starter, 0
    return snapshot.code, snapshot.version


def _clean(code: str) -> str:
    if len(code) > MAX_CODE_CHARS:
        raise TrialError(f"the code is longer than {MAX_CODE_CHARS} characters")
    return code.replace("\x00", "")


def code_save(
    *,
    participant: Participant,
    stage: Stage,
    task: Task,
    code: str,
    base_version: int | None,
    source: str,
    client_time: datetime | None = None,
) -> CodeSnapshot:
    """Store a new version of the code. With ``base_version`` (an autosave from the editor)
    the save is compare-and-set: if another tab saved since, raise SaveConflict and store
    nothing, so that no tab silently overwrites another. Identical code is not stored twice."""
    code = _clean(code)
    with transaction.atomic():
        state = _locked_state(participant, stage, task.folder)
        current = (
            CodeSnapshot.objects.filter(
                participant=participant, task=task.folder, version=state.latest_version
            ).first()
            if state.latest_version
            else None
        )
        if base_version is not None and base_version != state.latest_version:
            if current is not None and current.code == code:
                return current  # the other tab saved exactly this
            base = CodeSnapshot.objects.filter(
                participant=participant, task=task.folder, version=base_version
            ).first()
            base_code = base.code if base else task.starter
            # Only a change made elsewhere is a conflict: a newer version with the same code
            # as this tab's base (stored by this tab's own Run or Check) is not.
            if current is None or current.code != base_code:
                raise SaveConflict(state, current.code if current else task.starter)
        if current is not None and current.code == code:
            return current
        version = state.latest_version + 1
        snapshot = CodeSnapshot.objects.create(
            participant=participant,
            stage=stage,
            task=task.folder,
            version=version,
            code=code,
            source=source,
            client_time=client_time,
        )
        TaskState.objects.filter(pk=state.pk).update(latest_version=version)
    return snapshot


@dataclass(frozen=True)
class RunOutcome:
    run: CodeRun
    tests: list[dict[str, Any]]
    first_pass: bool
    message: str


def runner_limits() -> runner.Limits:
    """The configured limits of one participant run (settings RUNNER_*)."""
    return runner.Limits(
        cpu_seconds=settings.RUNNER_CPU_SECONDS,
        wall_seconds=settings.RUNNER_WALL_SECONDS,
        memory_bytes=settings.RUNNER_MEMORY_BYTES,
    )


def run_tag(participant: Participant) -> str:
    """Names a participant's runs in the machine's run queue: one of their runs at a time."""
    return f"p{participant.pk}"


def queue_position(*, participant: Participant) -> int | None:
    """How many runs are ahead of this participant's waiting Run or Check (None: none waits)."""
    return runner.queue_position(run_tag(participant))


@dataclass(frozen=True)
class PendingRun:
    """A Run or Check whose code is stored and which waits for the sandbox."""

    participant: Participant
    stage: Stage
    task: Task
    snapshot: CodeSnapshot
    kind: str
    started: datetime
    """When it was submitted: a passing Check completes the task at this moment."""
    job: str
    """Names this Run or Check: recording it twice stores it once."""

    def sandbox_request(self) -> dict[str, Any]:
        """What the runner is asked (``trials.sandboxing``): a Check names its trial by
        protocol hash and its task by folder, never the tests."""
        tag = run_tag(self.participant)
        if self.kind == CodeRun.Kind.CHECK:
            return check_request(
                protocol_hash=self.participant.trial.protocol_hash,
                task=self.task.folder,
                code=self.snapshot.code,
                tag=tag,
            )
        return run_request(code=self.snapshot.code, tag=tag)

    def message(self) -> dict[str, Any]:
        """Ids in, for the recording step (which may run in another process)."""
        return {
            "participant": str(self.participant.pk),
            "stage": self.stage.pk,
            "task": self.task.folder,
            "snapshot": self.snapshot.pk,
            "kind": self.kind,
            "started": self.started.isoformat(),
            "job": self.job,
        }


def pending_run(message: dict[str, Any]) -> PendingRun:
    """The PendingRun a ``message()`` names, reloaded."""
    participant = Participant.objects.select_related("trial").get(pk=message["participant"])
    started = datetime.fromisoformat(message["started"])
    return PendingRun(
        participant=participant,
        stage=Stage.objects.get(pk=message["stage"], trial_id=participant.trial_id),
        task=load_task(participant.trial.files, message["task"]),
        snapshot=CodeSnapshot.objects.get(pk=message["snapshot"], participant=participant),
        kind=message["kind"],
        started=started,
        job=message["job"],
    )


def code_run_begin(
    *, participant: Participant, stage: Stage, task: Task, code: str, kind: str, job: str = ""
) -> PendingRun:
    """Store the code the run is about (a new version unless unchanged) and stamp the time.
    Then the sandbox runs it (``PendingRun.sandbox_request``, no database) and
    ``code_run_record`` records what came back: the Run or Check is three steps, so that no
    request worker waits on the sandbox and a runner holds no write access."""
    started = timezone.now()
    snapshot = code_save(
        participant=participant, stage=stage, task=task, code=code, base_version=None, source=kind
    )
    return PendingRun(
        participant=participant,
        stage=stage,
        task=task,
        snapshot=snapshot,
        kind=kind,
        started=started,
        job=job or str(uuid.uuid4()),
    )


def code_run_record(pending: PendingRun, ran: Ran) -> RunOutcome:
    """Record what the sandbox gave back, and the task's completion if this was the first
    Check that passed, submitted in time. Recording the same job again (a requeued message)
    stores nothing and answers what was stored."""
    participant, stage, task, kind = pending.participant, pending.stage, pending.task, pending.kind
    started = pending.started
    in_time = (
        participant.stage_deadline is None or started <= participant.stage_deadline + DEADLINE_GRACE
    )
    # The sandbox ran outside any transaction (seconds); only the record is transactional.
    try:
        with transaction.atomic():
            run = _store_run(pending, ran)
            first_pass = _count_run(
                participant, stage, task, kind, started if in_time else None, ran
            )
            _log_run(pending, run, ran, first_pass)
    except IntegrityError:
        stored = CodeRun.objects.filter(job=pending.job).first()
        if stored is None:
            raise
        run = stored
        return RunOutcome(
            run=run,
            tests=run.test_results,
            first_pass=TaskState.objects.filter(
                participant=participant, task=task.folder, first_passed_at=started
            ).exists()
            and ran.all_passed,
            message=ran.message,
        )
    return RunOutcome(run=run, tests=ran.tests, first_pass=first_pass, message=ran.message)


def _log_run(pending: PendingRun, run: CodeRun, ran: Ran, first_pass: bool) -> None:
    participant, stage, task, kind = pending.participant, pending.stage, pending.task, pending.kind
    event_log(
        participant,
        EventName.CHECK if kind == CodeRun.Kind.CHECK else EventName.RUN,
        stage=stage,
        payload=RunPayload(
            task=task.folder,
            run_id=run.pk,
            code_sha256=run.code_sha256,
            version=pending.snapshot.version,
            status=ran.status,
            exit_code=ran.exit_code,
            exception_type=run.exception_type,
            duration_ms=run.duration_ms,
            tests_passed=run.tests_passed,
            tests_total=run.tests_total,
            first_pass=first_pass,
            sandbox=ran.sandbox,
        ).as_dict(),
    )
    if first_pass:
        event_log(
            participant,
            EventName.TASK_COMPLETED,
            stage=stage,
            payload=task_payload(task.folder),
        )


def _store_run(pending: PendingRun, ran: Ran) -> CodeRun:
    participant, stage, task, kind = pending.participant, pending.stage, pending.task, pending.kind
    snapshot = pending.snapshot
    is_check = kind == CodeRun.Kind.CHECK
    return CodeRun.objects.create(
        participant=participant,
        stage=stage,
        task=task.folder,
        kind=kind,
        code_sha256=hashlib.sha256(snapshot.code.encode()).hexdigest(),
        snapshot_version=snapshot.version,
        stdout=ran.stdout,
        stderr=ran.stderr,
        exit_code=ran.exit_code,
        duration_ms=round(ran.duration * 1000),
        output_truncated=ran.truncated,
        status=ran.status,
        exception_type=exception_type(ran.stderr) if kind == CodeRun.Kind.RUN else "",
        sandbox=ran.sandbox,
        tests_passed=sum(1 for t in ran.tests if t["passed"]) if is_check else None,
        tests_total=len(ran.tests) if is_check else None,
        test_results=ran.tests,
        job=pending.job,
    )


def _count_run(
    participant: Participant,
    stage: Stage,
    task: Task,
    kind: str,
    started_in_time: datetime | None,
    ran: Ran,
) -> bool:
    """Count the run on the task and, for the first all-passing check submitted in time
    (``started_in_time``: when it was submitted; None when too late), stamp completion by
    compare-and-set. True when this run completed the task."""
    counter = "checks" if kind == CodeRun.Kind.CHECK else "runs"
    state = _state(participant, stage, task.folder)
    TaskState.objects.filter(pk=state.pk).update(**{counter: F(counter) + 1})
    if not (ran.all_passed and started_in_time is not None):
        return False
    return (
        TaskState.objects.filter(pk=state.pk, first_passed_at__isnull=True).update(
            first_passed_at=started_in_time
        )
        == 1
    )


def task_stage_finish(
    *, participant: Participant, stage: Stage, code: dict[str, str]
) -> Participant:
    """The participant finishes a coding stage: store the final code of each task (submission
    is an event of its own, apart from completion, which is the first passing check) and move
    on. After the deadline nothing new is stored: the stage has timed out and the last
    autosaved code counts."""
    participant = participant_sync_clock(participant=participant)
    if participant.current_stage_id != stage.pk:
        return participant
    now = timezone.now()
    for folder, text in code.items():
        task = load_task(participant.trial.files, folder)
        code_save(
            participant=participant,
            stage=stage,
            task=task,
            code=text,
            base_version=None,
            source="submit",
        )
        TaskState.objects.filter(
            participant=participant, task=folder, submitted_at__isnull=True
        ).update(submitted_at=now)
        event_log(participant, EventName.TASK_SUBMITTED, stage=stage, payload=task_payload(folder))
    return participant_complete_stage(
        participant=participant, stage_key=stage.key, answers={"code": code}
    )
