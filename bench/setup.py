"""What the benchmarks share to set a trial up: a dedicated database dropped and recreated,
management commands, the sample trial's eligible screening answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]

ELIGIBLE = {
    "python_years": "4+",
    "python_frequency": "daily",
    "tried_ai_assistant": "yes",
    "used_trio": "no",
    "async_experience": "3",
    "used_asyncio": "no",
}
"""Screening answers that pass the sample trial's eligibility rules (add ``coding_years``,
the stratum)."""


def recreate_database(url: str) -> None:
    """Drop and create the database of ``url``; refuses PostgreSQL's own databases."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1"):
        raise SystemExit(f"refusing to drop database {name!r}: give a dedicated bench database")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
