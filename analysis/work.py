"""Long staff jobs as Celery tasks on the ``jobs`` queue: an export bundle
(``analysis.export``), the analysis report (``analysis.report``) and a synthesis
(``analysis.synthesize``).

A job is an :class:`~analysis.models.Job` row whose id is the task's id. The row holds
everything a page needs, on whichever app server it is asked: the state, the progress
(``done`` of ``total`` and the step's name, saved at most every :data:`SAVE_EVERY_SECONDS`),
the error, and the output, in pieces (:class:`~analysis.models.JobChunk`: the zip, the report's
page and file). Pages start a job (:func:`start_export`, :func:`start_report`) and poll
:func:`job_status`; the command line runs one here (:func:`create_job`, :func:`run_job`).

Running a job twice stores its output once (a message is redelivered when its worker dies):
a job that has finished is not run again, and a run claims the row by raising ``attempt``
(compare-and-set), writes its pieces under that number and finishes only if it still owns the
row; pieces of a lost run are deleted. A synthesis, which adds participants to the trial, is
never run a second time: a redelivered synthesis fails with a note saying so.

With no broker (eager mode) the task runs in the caller, in the request that started it, by
the same code.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from analysis import cache
from analysis.exports import ExportError, bundle_filename, bundle_stream, expected_rows
from analysis.models import DataExport, Job, JobChunk
from analysis.synthetic import (
    SyntheticEffects,
    SyntheticError,
    SyntheticProgress,
    synthesize_trial,
)
from trials.models import Trial

__all__ = [
    "CHUNK_BYTES",
    "SAVE_EVERY_SECONDS",
    "create_job",
    "current_report",
    "job_for",
    "job_status",
    "output_chunks",
    "output_text",
    "report_links",
    "run_job",
    "start_export",
    "start_report",
    "start_synthesis",
    "user_jobs",
]

log = logging.getLogger(__name__)

SAVE_EVERY_SECONDS = 0.5
CHUNK_BYTES = 1024 * 1024
# A pending or running job whose row has not moved for this long lost its worker (and its
# message: redelivery comes after CELERY_VISIBILITY_TIMEOUT, shorter than this).
STALE = timedelta(hours=3)
# Expected failures: their message is for the user as it is.
USER_ERRORS = (ExportError, SyntheticError, PermissionDenied)

Progress = Callable[[int, int, str], None]
User = AbstractBaseUser | AnonymousUser | None


def _eager() -> bool:
    return bool(settings.CELERY_TASK_ALWAYS_EAGER)


def _user_id(user: User) -> Any:
    return user.pk if user is not None and user.is_authenticated else None


class _Reporter:
    """Progress of one run: to the caller's callback at once, to the row at most every
    :data:`SAVE_EVERY_SECONDS` (compare-and-set on the run's attempt)."""

    def __init__(self, job_id: uuid.UUID, attempt: int, listener: Progress | None) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.listener = listener
        self.state = (0, 0, "")
        self._saved_at = 0.0

    def __call__(self, done: int, total: int, step: str) -> None:
        self.state = (done, total, step[:120])
        if self.listener is not None:
            self.listener(done, total, step)
        now = time.monotonic()
        if now - self._saved_at >= SAVE_EVERY_SECONDS:
            self._saved_at = now
            self.save()

    def save(self) -> None:
        done, total, step = self.state
        Job.objects.filter(pk=self.job_id, attempt=self.attempt, state=Job.State.RUNNING).update(
            done=max(done, 0), total=max(total, 0), step=step, updated_at=timezone.now()
        )


class _OutputFile:
    """One output file of a run, written in pieces of :data:`CHUNK_BYTES`."""

    def __init__(self, job_id: uuid.UUID, attempt: int, name: str) -> None:
        self.job_id, self.attempt, self.name = job_id, attempt, name
        self.pending = bytearray()
        self.seq = 0
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.pending += data
        self.size += len(data)
        self.digest.update(data)
        if len(self.pending) >= CHUNK_BYTES:
            self._flush()

    def _flush(self) -> None:
        JobChunk.objects.create(
            job_id=self.job_id,
            attempt=self.attempt,
            name=self.name,
            seq=self.seq,
            data=bytes(self.pending),
        )
        self.seq += 1
        self.pending = bytearray()

    def close(self) -> dict[str, Any]:
        if self.pending or not self.seq:
            self._flush()
        return {"bytes": self.size, "sha256": self.digest.hexdigest()}


class _Run:
    """What a runner gets: the job, its progress reporter and its output files."""

    def __init__(self, job: Job, attempt: int, listener: Progress | None) -> None:
        self.job = job
        self.attempt = attempt
        self.progress = _Reporter(job.pk, attempt, listener)
        self.files: dict[str, dict[str, Any]] = {}

    def write(self, name: str, chunks: Iterator[bytes]) -> None:
        out = _OutputFile(self.job.pk, self.attempt, name)
        for chunk in chunks:
            out.write(chunk)
        self.files[name] = out.close()

    def discard(self) -> None:
        JobChunk.objects.filter(job_id=self.job.pk, attempt=self.attempt).delete()


# --- the runners: one per kind, each returns the job's result (JSON) -----------------------


def _run_export(run: _Run) -> dict[str, Any]:
    job = run.job
    fmt = str(job.params["format"])
    identified = bool(job.params.get("identified"))
    total = sum(expected_rows(job.trial, fmt).values())
    rows: dict[str, int] = {}
    run.progress(0, total, "starting")

    def on_rows(done: int, _of: int, dataset: str) -> None:
        rows[dataset] = done
        run.progress(sum(rows.values()), max(total, sum(rows.values())), dataset)

    stream = bundle_stream(
        job.trial,
        fmt,
        identified=identified,
        user=job.user,
        progress=on_rows,
        channel=DataExport.Channel.WEB,
    )
    run.write("bundle.zip", stream)
    return {
        "filename": bundle_filename(job.trial, fmt, identified=identified),
        "content_type": "application/zip",
        "rows": sum(rows.values()),
    }


def report_links(trial: Trial) -> list[tuple[str, str]]:
    """The links at the top of the report's web page (absolute: the page is also shown at
    its job's address)."""
    report = reverse("analysis:report", args=[trial.slug]) + f"?version={trial.version}"
    return [
        ("Download (self-contained HTML)", f"{report}&download=1"),
        (
            "Results as JSON",
            reverse("analysis:results", args=[trial.slug]) + f"?version={trial.version}",
        ),
        ("Trial dashboard", reverse("manage:trial_detail", args=[trial.slug, trial.version])),
    ]


def _run_report(run: _Run) -> dict[str, Any]:
    trial = run.job.trial
    steps = len(cache.REPORT_STEPS)

    def on_step(index: int, name: str) -> None:
        run.progress(index, steps, name)

    seed = int(run.job.params.get("seed", 0))
    current, parts = cache.report_parts(
        trial, links=report_links(trial), seed=seed, on_step=on_step
    )
    if isinstance(parts, cache.ReportParts):
        run.write("page.html", iter([parts.page.encode("utf-8")]))
        run.write("file.html", iter([parts.file.encode("utf-8")]))
        return {"fingerprint": current, "content_type": "text/html; charset=utf-8"}
    # The analysis cannot run on this state of the data: that is the report's answer.
    return {"fingerprint": current, "unavailable": str(parts)}


def _run_synthesis(run: _Run) -> dict[str, Any]:
    if run.attempt > 1:
        raise SyntheticError(
            "this synthesis was interrupted (its worker was lost) and is not run twice: the "
            "participants it added may be incomplete; remove them with purge_synthetic and "
            "start again"
        )
    params = run.job.params
    participants = int(params["participants"])
    run.progress(0, participants, "drawing and allocating the participants")

    def on_batch(p: SyntheticProgress) -> None:
        run.progress(
            p.participants_done,
            p.participants_total,
            f"writing participants ({p.events_written:,} events, "
            f"{p.events_per_second:,.0f} events/s)",
        )

    summary = synthesize_trial(
        run.job.trial,
        participants=participants,
        seed=int(params["seed"]),
        effects=SyntheticEffects(**params.get("effects", {})),
        events_per_participant=int(params.get("events_per_participant", 200)),
        progress=on_batch,
    )
    return {"summary": asdict(summary)}


RUNNERS: dict[str, Callable[[_Run], dict[str, Any]]] = {
    Job.Kind.EXPORT: _run_export,
    Job.Kind.REPORT: _run_report,
    Job.Kind.SYNTHESIS: _run_synthesis,
}


# --- running a job: claim, run, finish (each step compare-and-set) ------------------------


def _claim(job_id: uuid.UUID) -> int | None:
    """Take the row for a new run: the run's attempt number, or None when the job has
    finished (or is unknown, or another run took it at the same moment)."""
    job = Job.objects.filter(pk=job_id, state__in=Job.ACTIVE).only("attempt").first()
    if job is None:
        return None
    now = timezone.now()
    attempt = job.attempt + 1
    taken = Job.objects.filter(pk=job_id, state__in=Job.ACTIVE, attempt=job.attempt).update(
        state=Job.State.RUNNING, attempt=attempt, started_at=now, updated_at=now, done=0
    )
    return attempt if taken else None


def _finish(run: _Run, result: dict[str, Any]) -> bool:
    done, total, _ = run.progress.state
    total = max(done, total)
    fingerprint = str(result.pop("fingerprint", ""))
    now = timezone.now()
    return bool(
        Job.objects.filter(pk=run.job.pk, attempt=run.attempt, state=Job.State.RUNNING).update(
            state=Job.State.DONE,
            done=total,
            total=total,
            step="done",
            fingerprint=fingerprint,
            result={**result, "files": run.files},
            finished_at=now,
            updated_at=now,
        )
    )


def _fail(run: _Run, error: Exception) -> None:
    message = str(error) if isinstance(error, USER_ERRORS) else f"{type(error).__name__}: {error}"
    now = timezone.now()
    Job.objects.filter(pk=run.job.pk, attempt=run.attempt, state=Job.State.RUNNING).update(
        state=Job.State.FAILED, error=message[:500], finished_at=now, updated_at=now
    )


def run_job(job_id: uuid.UUID | str, *, progress: Progress | None = None) -> str:
    """Run the job unless it has finished already; return its state afterwards.
    ``progress(done, total, step)`` hears every step (the command line's progress bar)."""
    job_id = uuid.UUID(str(job_id))
    attempt = _claim(job_id)
    if attempt is None:
        return str(Job.objects.filter(pk=job_id).values_list("state", flat=True).first())
    job = Job.objects.select_related("trial", "user").get(pk=job_id)
    JobChunk.objects.filter(job_id=job_id).exclude(attempt=attempt).delete()  # a lost run's
    run = _Run(job, attempt, progress)
    try:
        result = RUNNERS[job.kind](run)
    except Exception as exc:
        if not isinstance(exc, USER_ERRORS):
            log.exception("job %s (%s) failed", job_id, job.kind)
        _fail(run, exc)
        run.discard()
        return Job.State.FAILED
    if not _finish(run, result):
        run.discard()  # a newer run owns the job: its output counts, not this one's
    return str(Job.objects.values_list("state", flat=True).get(pk=job_id))


@shared_task(name="analysis.export", acks_late=True, reject_on_worker_lost=True)
def export_task(job_id: str) -> str:
    """An export bundle into the job's output (``bundle.zip``)."""
    return run_job(job_id)


@shared_task(name="analysis.report", acks_late=True, reject_on_worker_lost=True)
def report_task(job_id: str) -> str:
    """The analysis report (``page.html``, ``file.html``) of the trial's data now."""
    return run_job(job_id)


@shared_task(name="analysis.synthesize", acks_late=True, reject_on_worker_lost=True)
def synthesize_task(job_id: str) -> str:
    """Synthetic participants into a live trial (the summary in the job's result)."""
    return run_job(job_id)


TASKS: dict[str, Any] = {
    Job.Kind.EXPORT: export_task,
    Job.Kind.REPORT: report_task,
    Job.Kind.SYNTHESIS: synthesize_task,
}


def _enqueue(job: Job) -> None:
    task = TASKS[job.kind]
    job_id = str(job.pk)
    if _eager():
        # apply(), not an eager apply_async (see trials.work): the same task, in this thread.
        task.apply((job_id,), task_id=job_id)
        job.refresh_from_db()
        return
    transaction.on_commit(lambda: task.apply_async((job_id,), task_id=job_id))


# --- starting jobs -------------------------------------------------------------------------


def create_job(
    *, kind: str, trial: Trial, user: User = None, params: dict[str, Any], key: str = ""
) -> Job:
    """A pending job row (the command line runs it here with :func:`run_job`)."""
    return Job.objects.create(
        kind=kind, trial=trial, user_id=_user_id(user), params=params, key=key
    )


def _prune_outputs() -> None:
    days = int(getattr(settings, "JOB_OUTPUT_DAYS", 7))
    cutoff = timezone.now() - timedelta(days=days)
    old = Job.objects.filter(kind=Job.Kind.EXPORT, finished_at__lt=cutoff, chunks__isnull=False)
    JobChunk.objects.filter(job__in=list(old.values_list("pk", flat=True)[:100])).delete()


def start_export(*, trial: Trial, user: User, fmt: str, identified: bool) -> Job:
    """Start the export bundle of ``trial`` for ``user``. Preconditions: the format is known
    and, for ``identified``, the user holds the identifiers permission (checked again by the
    export itself)."""
    _prune_outputs()
    params = {"format": fmt, "identified": identified}
    job = create_job(kind=Job.Kind.EXPORT, trial=trial, user=user, params=params)
    _enqueue(job)
    return job


def start_synthesis(*, trial: Trial, user: User, params: dict[str, Any]) -> Job:
    job = create_job(kind=Job.Kind.SYNTHESIS, trial=trial, user=user, params=params)
    _enqueue(job)
    return job


def _report_key(trial: Trial, seed: int) -> str:
    return f"report:{trial.pk}:{seed}"


def current_report(trial: Trial, fingerprint: str, *, seed: int = 0) -> Job | None:
    """The finished report job of exactly this state of the trial's data, if any."""
    return (
        Job.objects.filter(
            key=_report_key(trial, seed), state=Job.State.DONE, fingerprint=fingerprint
        )
        .order_by("-finished_at")
        .first()
    )


def start_report(*, trial: Trial, user: User, seed: int = 0) -> Job:
    """The report job computing the trial's report now: the one already pending or running
    (one per trial and seed, by a constraint), else a new one."""
    key = _report_key(trial, seed)
    now = timezone.now()
    Job.objects.filter(key=key, state__in=Job.ACTIVE, updated_at__lt=now - STALE).update(
        state=Job.State.FAILED, error="no progress for hours: its worker was lost", finished_at=now
    )
    for _ in range(3):
        try:
            with transaction.atomic():
                job = create_job(
                    kind=Job.Kind.REPORT, trial=trial, user=user, params={"seed": seed}, key=key
                )
        except IntegrityError:
            active = Job.objects.filter(key=key, state__in=Job.ACTIVE).first()
            if active is not None:
                return active
            continue  # it finished in the meantime: try again
        _enqueue(job)
        return job
    raise RuntimeError(f"could not start the report job {key}")


# --- reading jobs --------------------------------------------------------------------------


def job_for(user: User, job_id: uuid.UUID) -> Job:
    """The job as ``user`` (a staff member) may see it. An export's bundle is its starter's
    alone: for anyone else it does not exist. Raises Job.DoesNotExist."""
    job = Job.objects.select_related("trial").get(pk=job_id)
    if job.kind == Job.Kind.EXPORT and job.user_id != _user_id(user):
        raise Job.DoesNotExist(f"no job {job_id}")
    return job


def user_jobs(user: User, trial: Trial, kind: str) -> QuerySet[Job]:
    """The jobs of ``kind`` that ``user`` started on ``trial``, newest first."""
    return Job.objects.filter(kind=kind, trial=trial, user_id=_user_id(user) or 0)


def job_status(job: Job) -> dict[str, Any]:
    return {
        "id": str(job.pk),
        "kind": job.kind,
        "state": job.state,
        "done": job.done,
        "total": job.total,
        "percent": job.percent,
        "step": job.step,
        "error": job.error,
        "finished": job.finished,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def output_chunks(job: Job, name: str) -> Iterator[bytes]:
    """The job's output file ``name``, piece by piece (one piece in memory at a time)."""
    pieces = JobChunk.objects.filter(job=job, attempt=job.attempt, name=name)
    for pk in list(pieces.order_by("seq").values_list("pk", flat=True)):
        data = JobChunk.objects.values_list("data", flat=True).get(pk=pk)
        yield bytes(data)


def output_text(job: Job, name: str) -> str:
    return b"".join(output_chunks(job, name)).decode("utf-8")
