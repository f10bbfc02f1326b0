"""Checks through the queues: throughput with one and with two runner worker processes, and a
participant's Check latency while an export of 10,000 participants runs.

    .venv/bin/python bench/bench_queues.py [--checks 48] [--concurrency 4] \\
        [--export-participants 10000]

Loopback only. It drops and recreates a dedicated database (``BENCH_DATABASE_URL``, default
``skilltrial_bench``) and empties Redis database 13, launches the sample trial, and starts the
deployment of the README's "Several machines": the production app server with ``REDIS_URL``, a
results worker, and runner workers (``-Q runs``, ``--concurrency`` processes each).

1. **Throughput**: ``--checks`` participants press Check at once (the sample's reference
   solution, ~2.7 s of mostly sleeping Trio code each); with 1 runner worker, then with 2. The
   limit beside each: the same number of Checks through the sandbox directly, in one process,
   with as many at once as the workers have processes (no HTTP, no queue, no recording).
2. **Latency under an export**: ``--export-participants`` synthetic participants are added,
   and 4 participants press Check one after another, first with nothing else running, then while
   ``manage.py export_data`` writes the CSV bundle of the whole trial (what the jobs worker does
   when an experimenter downloads it), on the same 2-core machine. p50/p95 of both.

Every answered Check is then looked up in the database: recorded exactly once.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import psycopg
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_load import SLUG, STAGE, TASK, Person, _headers, bring_in  # noqa: E402
from bench.server import HOST, serve  # noqa: E402
from bench.setup import manage, recreate_database  # noqa: E402

print = functools.partial(print, flush=True)  # progress shows as it happens

REDIS_URL = "redis://127.0.0.1:6379/13"
SOLUTION = (ROOT / "studies" / SLUG / TASK / "solution.py").read_text()
TESTS = (ROOT / "studies" / SLUG / TASK / "tests.py").read_text()


@contextmanager
def workers(env: dict[str, str], queue: str, count: int, concurrency: int) -> Iterator[None]:
    """``count`` Celery worker processes on ``queue``, stopped on the way out."""
    procs = []
    with tempfile.TemporaryFile() as log:
        for i in range(count):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "skilltrial", "worker", "-Q", queue]
                    + ["-c", str(concurrency), "-n", f"{queue}{i}@bench", "-l", "WARNING"]
                    + ["--without-gossip", "--without-mingle"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        try:
            yield
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def check(base: str, person: Person, tag: str) -> tuple[float, int, dict]:
    body = {"stage": STAGE, "task": TASK, "code": SOLUTION + f"# {tag}\n"}
    started = time.perf_counter()
    response = httpx.post(
        f"{base}/t/{SLUG}/api/check/", json=body, headers=_headers(person), timeout=600
    )
    return time.perf_counter() - started, response.status_code, response.json()


def burst(base: str, people: list[Person], tag: str) -> tuple[float, list[dict]]:
    """Everyone presses Check at once; seconds until the last answer, and the answers."""
    started = time.perf_counter()
    with ThreadPoolExecutor(len(people)) as pool:
        answers = list(pool.map(lambda p: check(base, p, tag), people))
    seconds = time.perf_counter() - started
    bad = [(status, data) for _, status, data in answers if status != 200 or not data["all_passed"]]
    if bad:
        raise SystemExit(f"{len(bad)} Checks did not pass: {bad[:3]}")
    return seconds, [data for _, _, data in answers]


def direct(checks: int, parallel: int) -> float:
    """Seconds for ``checks`` Checks through the sandbox itself, ``parallel`` at a time."""
    from trials.judge import judge_code  # deferred: the bench's own process needs no Django

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        verdicts = list(
            pool.map(
                lambda i: judge_code(tests_source=TESTS, code=SOLUTION, tag=f"direct{i}"),
                range(checks),
            )
        )
    if not all(v.all_passed for v in verdicts):
        raise SystemExit("a direct Check of the reference solution failed")
    return time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_after_another(base: str, people: list[Person], seconds: float, tag: str) -> list[float]:
    """Each of ``people`` presses Check again as soon as the last one is answered."""
    until = time.perf_counter() + seconds
    latencies: list[float] = []

    def loop(person: Person) -> None:
        n = 0
        while time.perf_counter() < until:
            took, status, data = check(base, person, f"{tag}-{person.pid}-{n}")
            if status != 200:
                raise SystemExit(f"a Check answered {status}: {data}")
            latencies.append(took)
            n += 1

    with ThreadPoolExecutor(len(people)) as pool:
        list(pool.map(loop, people))
    return latencies


def throughput(env: dict[str, str], base: str, people: list[Person], args: argparse.Namespace):
    print(f"load average: {os.getloadavg()}")
    for count in (1, 2):
        parallel = count * args.concurrency
        limit = direct(len(people), parallel)
        with workers(env, "runs", count, args.concurrency):
            burst(base, people[:2], f"warm{count}")  # the workers are up and have the files
            seconds, _ = burst(base, people, f"burst{count}")
        rate, limit_rate = len(people) / seconds, len(people) / limit
        print(
            f"{count} runner worker(s) x {args.concurrency}: {len(people)} Checks in "
            f"{seconds:.1f} s = {rate:.2f}/s; the sandbox directly, {parallel} at a time: "
            f"{limit:.1f} s = {limit_rate:.2f}/s; ratio {rate / limit_rate:.2f}"
        )
        yield rate


def latency_under_export(env: dict[str, str], base: str, people: list[Person], args) -> None:
    print(f"adding {args.export_participants:,} synthetic participants ...", flush=True)
    started = time.perf_counter()
    manage(env, "synthesize", SLUG, "--participants", str(args.export_participants), "--seed", "1")
    print(f"  done in {time.perf_counter() - started:.0f} s")
    with workers(env, "runs", 2, args.concurrency):
        one_after_another(base, people, 5, "warm")
        quiet = one_after_another(base, people, args.seconds, "quiet")
        with tempfile.TemporaryDirectory() as out:
            export = subprocess.Popen(
                [sys.executable, "manage.py", "export_data", SLUG, "--format", "csv"]
                + ["--out", str(Path(out) / "bundle")],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            exporting_since = time.perf_counter()
            busy: list[float] = []
            while export.poll() is None:
                busy += one_after_another(base, people, 5, f"export{len(busy)}")
            export_seconds = time.perf_counter() - exporting_since
    print(f"load average: {os.getloadavg()}")
    print(
        f"Check latency, {len(people)} participants one Check after another: nothing else "
        f"running p50 {statistics.median(quiet):.2f} s p95 {pct(quiet, 0.95):.2f} s "
        f"(n={len(quiet)}); during the export ({export_seconds:.0f} s, exit "
        f"{export.returncode}) p50 {statistics.median(busy):.2f} s p95 {pct(busy, 0.95):.2f} s "
        f"(n={len(busy)}); p95 ratio {pct(busy, 0.95) / pct(quiet, 0.95):.2f}"
    )


def verify(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        snapshots, runs, doubles = conn.execute(
            "SELECT (SELECT count(*) FROM trials_codesnapshot WHERE source = 'check' AND"
            "  participant_id IN (SELECT id FROM trials_participant WHERE NOT is_synthetic)),"
            " (SELECT count(*) FROM trials_coderun WHERE kind = 'check' AND job IS NOT NULL),"
            " (SELECT count(*) FROM (SELECT job FROM trials_coderun WHERE job IS NOT NULL"
            "   GROUP BY job HAVING count(*) > 1) d)"
        ).fetchone()
    problems = []
    if snapshots != runs:
        problems.append(f"{snapshots} Checks submitted, {runs} recorded")
    if doubles:
        problems.append(f"{doubles} Checks recorded twice")
    print(f"verified: {runs} Checks submitted and recorded once each")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--export-participants", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/skilltrial_bench"
        ),
        help="a dedicated PostgreSQL database: it is DROPPED and recreated",
    )
    args = parser.parse_args()
    if not (2 <= args.checks <= 400 and 1 <= args.concurrency <= 16):
        parser.error("--checks 2..400 and --concurrency 1..16 (a bounded load)")
    env = os.environ | {
        "DATABASE_URL": args.database_url,
        "REDIS_URL": REDIS_URL,
        "DEBUG": "0",
        "ALLOWED_HOSTS": HOST,
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "0",
    }
    redis.Redis.from_url(REDIS_URL).flushdb()
    recreate_database(args.database_url)
    for command in (("migrate", "--noinput"), ("collectstatic", "--noinput", "-v0")):
        manage(env, *command)
    # With a broker, the import's and the launch's checks of the solutions run on the runs
    # queue: a worker must be there to take them.
    with workers(env, "runs", 1, args.concurrency):
        manage(env, "import_trial", str(ROOT / "studies" / SLUG))
        manage(env, "launch_trial", SLUG)
    with serve(env | {"DB_POOL_SIZE": "8"}, workers=2) as server, workers(env, "results", 1, 2):
        base = f"http://{HOST}:{server.port}"
        print(f"server: {server.describe()}, REDIS_URL={REDIS_URL}")
        with ThreadPoolExecutor(8) as pool:
            people = list(pool.map(lambda i: bring_in(base, f"q{i:04d}"), range(args.checks)))
        one, two = throughput(env, base, people, args)
        print(f"Check throughput, 2 runner workers / 1: {two / one:.2f}")
        latency_under_export(env, base, people[:4], args)
    problems = verify(args.database_url)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
