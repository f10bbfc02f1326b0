"""deploy/: the compose file and the process list agree with the code (every queue a task is
routed to has a worker; runner workers get no app secret and a read-only role) and every
variable they set is documented in the README."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

from skilltrial.celery import app

ROOT = Path(settings.BASE_DIR)
COMPOSE = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
PROCFILE = dict(
    line.split(": ", 1)
    for line in (ROOT / "deploy" / "Procfile").read_text().splitlines()
    if line and not line.startswith("#")
)
README = (ROOT / "README.md").read_text()


def _queue(argv: list[str]) -> str | None:
    return argv[argv.index("-Q") + 1] if "-Q" in argv else None


def _routed_queues() -> set[str]:
    app.loader.import_default_modules()
    routes: dict[str, dict[str, str]] = settings.CELERY_TASK_ROUTES
    queues = {route["queue"] for route in routes.values()}
    return queues | {settings.CELERY_TASK_DEFAULT_QUEUE}


def test_every_queue_has_a_worker_in_compose_and_in_the_procfile() -> None:
    services: dict[str, Any] = COMPOSE["services"]
    in_compose = {
        _queue(s["command"]) for s in services.values() if isinstance(s.get("command"), list)
    }
    in_procfile = {_queue(shlex.split(line)) for line in PROCFILE.values()}
    assert _routed_queues() <= in_compose
    assert _routed_queues() <= in_procfile
    # Every task of the project is routed to one of those queues.
    for name in app.tasks:
        if name.startswith(("trials.", "skilltrial.", "analysis.", "quizzes.")):
            queue = settings.CELERY_TASK_ROUTES.get(name, {}).get("queue")
            assert (queue or settings.CELERY_TASK_DEFAULT_QUEUE) in in_compose, name


def test_runner_workers_get_no_secret_and_a_read_only_role() -> None:
    runs = COMPOSE["services"]["runs"]["environment"]
    assert "SECRET_KEY" not in runs
    assert not any(key.startswith(("ANTHROPIC", "OPENAI")) for key in runs)
    assert runs["DATABASE_URL"].startswith("postgres://skilltrial_runner:")
    assert "runner_role skilltrial_runner" in " ".join(COMPOSE["services"]["migrate"]["command"])
    assert "SECRET_KEY" not in PROCFILE["runs"]


def test_every_variable_set_for_a_process_is_documented_in_the_readme() -> None:
    names: set[str] = set()
    for service in COMPOSE["services"].values():
        names |= set((service.get("environment") or {}).keys())
    for line in PROCFILE.values():
        names |= set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", line))
    names -= {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}  # the postgres image's own
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert not missing, f"not in README.md: {missing}"
