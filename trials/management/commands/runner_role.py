"""Create (or update) the PostgreSQL role runner workers connect as: it may read the trials
table (a launched trial's frozen files, fetched by protocol hash) and nothing else."""

from __future__ import annotations

import os
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from trials.models import Trial

NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class Command(BaseCommand):
    help = (
        "Create or update the PostgreSQL role of the runner workers: LOGIN, SELECT on the "
        "trials table only. The password comes from the environment variable named by "
        "--password-env (none: the server's own authentication rules apply)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="role name (lower case letters, digits, _)")
        parser.add_argument(
            "--password-env",
            default="",
            help="name of an environment variable that holds the role's password",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                f"runner_role needs PostgreSQL (DATABASE_URL); this database is {connection.vendor}"
            )
        role: str = options["role"]
        if not NAME.match(role):
            raise CommandError(f"role name {role!r}: use lower case letters, digits and _ only")
        password = os.environ.get(options["password_env"], "") if options["password_env"] else ""
        if options["password_env"] and not password:
            raise CommandError(f"environment variable {options['password_env']} is empty or unset")
        table = Trial._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            verb = "ALTER" if cursor.fetchone() else "CREATE"
            # Identifiers cannot be parameters; the name was checked against NAME above.
            cursor.execute(f"{verb} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
            if password:
                cursor.execute(f"ALTER ROLE {role} PASSWORD %s", [password])
            cursor.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
            cursor.execute(f"GRANT SELECT ON {table} TO {role}")
        self.stdout.write(f"role {role}: may log in and read {table}, nothing else")
