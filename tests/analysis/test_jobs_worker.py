"""A real Celery worker (``celery -A skilltrial worker -Q jobs``) on Redis runs an export job
started from the web page: the app server (this process, with a broker configured) only
queues it; the worker's progress, state and zip reach the page through the database.

PostgreSQL only (the worker is another process on the test database) and Redis on
127.0.0.1:6379; skipped otherwise."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client

from analysis import work
from analysis.exports import bundle_stream
from analysis.models import Job
from tests.analysis.test_exports import fill_trial, unzip
from tests.builders import launched_trial
from trials.roles import STATISTICIAN

REDIS_URL = "redis://127.0.0.1:6379/7"
# Only there so a worker that never answers fails the test instead of hanging it.
HANG_GUARD_SECONDS = 120


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="the worker is another process on the test database: PostgreSQL only "
        "(set DATABASE_URL=postgres://...)",
    ),
    pytest.mark.skipif(not _redis_up(), reason="needs Redis on 127.0.0.1:6379"),
    pytest.mark.django_db(transaction=True),
]


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{db['USER']}{password}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "DJANGO_SETTINGS", "CELERY_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="skilltrial.settings",
        REDIS_URL=REDIS_URL,
        DATABASE_URL=_database_url(),
        DB_POOL_SIZE="0",
        SECRET_KEY=settings.SECRET_KEY,
        LOG_LEVEL="WARNING",
    )
    log = (tmp_path / "worker.log").open("wb")
    argv = [sys.executable, "-m", "celery", "-A", "skilltrial", "worker", "-Q", "jobs"]
    argv += ["-P", "solo", "-n", "jobs@test", "--without-gossip", "--without-mingle"]
    proc = subprocess.Popen(
        argv, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        broker.flushdb()
        broker.close()


def _wait_until_finished(job: Job, proc: subprocess.Popen[bytes], log: Path) -> list[Any]:
    """The states the job's status went through until it finished."""
    seen: list[Any] = []
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while time.monotonic() < deadline:
        job.refresh_from_db()
        seen.append((job.state, job.done, job.total))
        if job.finished:
            return seen
        assert proc.poll() is None, "the worker died:\n" + log.read_text(errors="replace")
        time.sleep(0.2)
    pytest.fail("the worker did not finish the job:\n" + log.read_text(errors="replace"))


def _data(zipped: bytes) -> dict[str, bytes]:
    return {k: v for k, v in unzip(zipped).items() if k != "manifest.json"}  # not its time


def test_a_real_worker_runs_the_export_and_the_page_serves_its_zip(
    worker, tmp_path, settings, monkeypatch
):
    trial = launched_trial()
    fill_trial(trial, participants=3)
    user = User.objects.create_user("stan", password="pw-12345-xyz")
    user.groups.add(Group.objects.get_or_create(name=STATISTICIAN)[0])
    client = Client()
    client.force_login(user)
    # This process is an app server with a broker: the page only queues the task.
    settings.CELERY_TASK_ALWAYS_EAGER = False
    sender = Celery("app-server", broker=REDIS_URL, set_as_current=False)
    sent: list[str] = []

    def send(args: tuple[str], task_id: str) -> None:
        sender.send_task("analysis.export", args=args, task_id=task_id, queue="jobs")
        sent.append(task_id)

    monkeypatch.setattr(work.export_task, "apply_async", send)
    started = client.post(f"/exports/{trial.slug}/v1/download/", {"format": "csv"})
    assert started.status_code == 302
    job = Job.objects.get()
    assert sent == [str(job.pk)]

    seen = _wait_until_finished(job, worker, tmp_path / "worker.log")
    assert job.state == "done", job.error
    assert seen[-1][1] == seen[-1][2] > 0
    status = client.get(f"/analysis/jobs/{job.pk}/status/").json()
    assert status["state"] == "done" and status["done"] == status["total"]
    served = b"".join(client.get(f"/analysis/jobs/{job.pk}/download/").streaming_content)
    direct = b"".join(bundle_stream(trial, "csv"))
    assert _data(served) == _data(direct)
    sender.close()
