"""Telemetry intake against its limit: batches of browser events through the production server
versus a COPY of identical rows into the same table, in the same run.

    .venv/bin/python bench/bench_telemetry.py [--clients 50] [--seconds 20] [--batches 10,30]

It drops and recreates a dedicated database (``BENCH_DATABASE_URL``, default
``skilltrial_bench``), launches the sample trial, starts the server the README's production
section documents (bench/server.py), brings ``--clients`` participants into the Trio tasks and
lets each post batches of edit events back to back for ``--seconds`` seconds, once per batch
size. The browser flushes every 10 s; a participant typing steadily sends ~10-30 events per
batch, so those are the default sizes. Then it COPYs the same number of identical rows into the
events table with psycopg (the limit) and prints events per second for each, the ratio and the
load average. It checks that every acknowledged event is stored exactly once; the exit status
is non-zero only if one is not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx2 as httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_load import STAGE, STUDY, TASK, Person, _headers, bring_everyone_in  # noqa: E402
from bench.server import CONFIGS, HOST, serve  # noqa: E402
from bench.setup import manage, recreate_database  # noqa: E402

SLUG = "trio-skill-formation"


async def post_for(
    client: httpx.AsyncClient, person: Person, size: int, until: float, acked: list[str]
) -> None:
    n = 0
    while time.perf_counter() < until:
        n += 1
        stamp = datetime.now(UTC).isoformat()
        ids = [f"{person.pid}-b{size}-{n}-{i}" for i in range(size)]
        events = [
            {"id": i, "type": "edit", "client_time": stamp, "stage": STAGE,
             "payload": {"task": TASK, "changes": [[0, 0, "x"]]}}
            for i in ids
        ]  # fmt: skip
        response = await client.post(
            f"/t/{SLUG}/api/events/", json={"events": events}, headers=_headers(person)
        )
        if response.status_code == 200 and response.json()["stored"] == size:
            acked.extend(ids)


async def intake(
    base: str, people: list[Person], size: int, seconds: float
) -> tuple[int, float, list[str]]:
    acked: list[str] = []
    limits = httpx.Limits(max_connections=len(people) + 10)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        began = time.perf_counter()
        until = began + seconds
        await asyncio.gather(*(post_for(client, p, size, until, acked) for p in people))
        elapsed = time.perf_counter() - began
    return len(acked), elapsed, acked


def copy_rows(database_url: str, count: int) -> float:
    """Seconds to COPY ``count`` edit events like the ones posted into the events table."""
    payload = json.dumps({"task": TASK, "changes": [[0, 0, "x"]]})
    with psycopg.connect(database_url) as conn:
        participant, stage = conn.execute(
            "SELECT p.id, p.current_stage_id FROM trials_participant p LIMIT 1"
        ).fetchone() or (None, None)
        now = datetime.now(UTC)
        began = time.perf_counter()
        with conn.cursor().copy(
            "COPY trials_event (participant_id, stage_id, type, client_id, client_seq, "
            "client_time, server_time, origin, payload) FROM STDIN"
        ) as copy:
            for i in range(count):
                copy.write_row(
                    (participant, stage, "edit", f"copy-{i}", i, now, now, "client", payload)
                )
        conn.commit()
        return time.perf_counter() - began


def verify(database_url: str, acked: list[str]) -> list[str]:
    with psycopg.connect(database_url) as conn:
        stored = Counter(
            client_id
            for (client_id,) in conn.execute(
                "SELECT client_id FROM trials_event WHERE client_id = ANY(%s)", [acked]
            )
        )
    wrong = [i for i in acked if stored[i] != 1]
    return [f"{len(wrong)} acknowledged events not stored exactly once"] if wrong else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batches", default="10,30", help="batch sizes, comma-separated")
    parser.add_argument("--server", choices=CONFIGS, default="production")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/skilltrial_bench"
        ),
        help="a dedicated PostgreSQL database: it is DROPPED and recreated",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.batches.split(",")]
    env = os.environ | {
        "DATABASE_URL": args.database_url,
        "DEBUG": "0",
        "ALLOWED_HOSTS": HOST,
        "LOG_LEVEL": "WARNING",
    }
    recreate_database(args.database_url)
    for command in (("migrate", "--noinput"), ("collectstatic", "--noinput", "-v0")):
        manage(env, *command)
    manage(env, "import_trial", str(STUDY))
    manage(env, "launch_trial", SLUG)
    print(f"load average before: {os.getloadavg()}")
    runs = []
    everything: list[str] = []
    with serve(env, config=args.server, workers=args.workers) as server:
        base = f"http://{HOST}:{server.port}"
        print(f"server: {server.describe()}; {args.clients} clients posting back to back")
        people = bring_everyone_in(base, args.clients, args.database_url)
        for size in sizes:
            count, elapsed, acked = asyncio.run(intake(base, people, size, args.seconds))
            runs.append((size, count, elapsed))
            everything += acked
    copy_seconds = copy_rows(args.database_url, max(count for _, count, _ in runs))
    copy_rate = max(count for _, count, _ in runs) / copy_seconds
    print(f"load average after:  {os.getloadavg()}")
    print(f"\nCOPY of identical rows: {copy_rate:,.0f} events/s (the limit)")
    for size, count, elapsed in runs:
        rate = count / elapsed
        print(
            f"batches of {size:>3}: {rate:>8,.0f} events/s ({rate / size:,.0f} requests/s) "
            f"= {100 * rate / copy_rate:.1f}% of COPY"
        )
    problems = verify(args.database_url, everything)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
