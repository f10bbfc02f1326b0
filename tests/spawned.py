"""Entry point of the worker processes of the concurrency tests.

They are started with the "spawn" method, not "fork": a forked child inherits every file
descriptor and thread of the test process (a live server, other connections), and after a full
suite run that broke their PostgreSQL connections ("server closed the connection
unexpectedly"). A spawned child starts clean, sets Django up itself, points at the test
database and only then unpickles the work (which imports the models). No Django import here.
"""

from __future__ import annotations

import os
import pickle
import traceback
from typing import Any


def run(db_name: str, payload: bytes, barrier: Any, results: Any, index: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skilltrial.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    settings.DATABASES["default"]["NAME"] = db_name
    connections["default"].settings_dict["NAME"] = db_name
    try:
        worker, job = pickle.loads(payload)  # noqa: S301 - our own test's data
        results.put((index, True, worker(job, barrier)))
    except BaseException:
        barrier.abort()  # do not leave the others waiting for a process that is gone
        results.put((index, False, traceback.format_exc()))
    finally:
        connections.close_all()
