"""The Celery application: every piece of work that is not a quick database write.

Queues (``CELERY_TASK_ROUTES`` in the settings):

- ``runs``: participant code in the sandbox (Run, Check, quiz code answers, import-time checks
  of solutions). Runner workers (``celery -A skilltrial worker -Q runs``) need the sandbox and
  read-only database access to fetch a trial's files by protocol hash, nothing else.
- ``results``: recording what a run gave back (a quick write, apart from the runner so that
  runner workers hold no write access and an app server that dies mid-wait loses nothing).
- ``jobs``: long staff work (exports, the analysis report, synthesis, quiz code grading).

With ``REDIS_URL`` unset (the embedded default, ``make demo`` and the test suite) the same tasks
run in the calling thread (Celery's eager mode): the same code path, no outside service.
Tasks are acknowledged late and requeued when their worker is lost, and each one is idempotent,
so a worker killed mid-task loses nothing and its result is stored once.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skilltrial.settings")

# The modules that define tasks (``trials.tasks`` is the coding tasks of a trial, not Celery's).
TASK_MODULES = ["skilltrial.jobs", "trials.sandboxing", "trials.work", "analysis.work"]

app = Celery("skilltrial", include=TASK_MODULES)
app.config_from_object("django.conf:settings", namespace="CELERY")
