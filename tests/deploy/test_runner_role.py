"""``manage.py runner_role``: the database role of runner workers reads a launched trial's
files and nothing else."""

from __future__ import annotations

import io

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

ROLE = "skilltrial_test_runner"


@pytest.mark.postgres
@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="database roles are PostgreSQL's (set DATABASE_URL=postgres://...)",
)
@pytest.mark.django_db(transaction=True)
def test_the_runner_role_reads_the_trials_table_and_nothing_else(live_trial):
    out = io.StringIO()
    call_command("runner_role", ROLE, stdout=out)
    assert "nothing else" in out.getvalue()
    db = connection.settings_dict
    dsn = f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} dbname={db['NAME']}"
    with psycopg.connect(f"{dsn} user={ROLE}") as runner:
        files = runner.execute(
            "SELECT files FROM trials_trial WHERE protocol_hash = %s", [live_trial.protocol_hash]
        ).fetchone()
        assert files is not None and "tasks/concurrent_greetings/tests.py" in files[0]
        for statement in (
            "SELECT count(*) FROM trials_participant",
            "SELECT count(*) FROM trials_coderun",
            "UPDATE trials_trial SET title = 'x'",
            "SELECT count(*) FROM auth_user",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                runner.execute(statement)
            runner.rollback()
    call_command("runner_role", ROLE, stdout=io.StringIO())  # again: an update, not an error


def test_a_bad_role_name_or_database_is_refused_by_name(db):
    with pytest.raises(CommandError, match=r"role name|needs PostgreSQL"):
        call_command("runner_role", "Robert'); DROP TABLE x;--")
    if connection.vendor != "postgresql":
        with pytest.raises(CommandError, match="needs PostgreSQL"):
            call_command("runner_role", "runner")
