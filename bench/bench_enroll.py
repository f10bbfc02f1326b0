"""Enrollment throughput and latency against the production server (bench/server.py: gunicorn
with uvicorn's ASGI workers on PostgreSQL), many simultaneous participants, all on loopback,
beside its limit measured in the same run and server.

    .venv/bin/python bench/bench_enroll.py [--enrollments 1000] [--clients 50] [--workers 4] \
        [--server production|sync]

Each run drops and recreates a dedicated database (default ``skilltrial_bench``), migrates it,
imports and launches the sample trial with the management commands, starts the server with a
bench-only URL added (bench/limit_urls.py: a minimal Django view that does only the allocation),
measures that view's rate with ``--clients`` threads (the limit), then lets ``--clients``
threads enroll ``--enrollments`` new participants through the pages. One enrollment is the whole
path a person takes up to allocation: entry link with a Prolific id, consent page, consent POST,
screening page, screening POST (the one that allocates) redirected to the warm-up task.

It prints allocations per second (allocations / wall time of the whole run) and latency
percentiles, then checks the database: one allocation per participant, no duplicate, gap-free
sequence numbers in each stratum, arms equal to the stratum's permuted-block schedule. A
timing is a figure, not a verdict; the exit status is non-zero only if an enrollment failed or a
check on the data did not hold. The server is stopped on the way out, whatever happened.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.server import CONFIGS, HOST, serve  # noqa: E402
from bench.setup import ELIGIBLE, manage, recreate_database  # noqa: E402
from trials.randomization import ArmWeight, BlockSchedule  # noqa: E402 - pure, no Django

SLUG = "trio-skill-formation"
STUDY_DIR = ROOT / "studies" / SLUG
CODING_YEARS = ("1-3", "4-6", "7+")
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class EnrollmentFailed(RuntimeError):
    pass


# --- database and server -------------------------------------------------------------------


# --- one participant's browser ----------------------------------------------------------------


class Browser:
    """A cookie jar and a loopback connection: one person's browser, enough for these pages."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        # Sync gunicorn workers close the connection after each response; http.client reopens.
        self.conn = http.client.HTTPConnection(HOST, port, timeout=120)

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        except (http.client.HTTPException, OSError):
            self.conn.close()
            raise
        for header in response.msg.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                self.cookies[name] = morsel.coded_value
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return response.status, response.getheader("Location", ""), text

    def expect(
        self,
        method: str,
        path: str,
        status: int,
        location: str | None = None,
        form: dict[str, str] | None = None,
    ) -> str:
        got, got_location, text = self.request(method, path, form)
        if got != status or (location is not None and got_location != location):
            raise EnrollmentFailed(
                f"{method} {path}: expected {status} {location or ''}, got {got} {got_location}"
            )
        return text


def csrf_token(page: str) -> str:
    match = CSRF_RE.search(page)
    if match is None:
        raise EnrollmentFailed("no CSRF token on the page")
    return match.group(1)


def enroll(port: int, prolific_pid: str, coding_years: str) -> float:
    """One participant from the entry link to allocation; returns the allocating POST's time."""
    browser = Browser(port)
    base = f"/t/{SLUG}"
    browser.expect(
        "GET", f"{base}/?{urlencode({'PROLIFIC_PID': prolific_pid})}", 302, f"{base}/s/consent/"
    )
    page = browser.expect("GET", f"{base}/s/consent/", 200)
    form = {"csrfmiddlewaretoken": csrf_token(page), "agree": "on", "decision": "agree"}
    browser.expect("POST", f"{base}/s/consent/", 302, f"{base}/s/screening/", form)
    page = browser.expect("GET", f"{base}/s/screening/", 200)
    answers = ELIGIBLE | {"coding_years": coding_years, "csrfmiddlewaretoken": csrf_token(page)}
    started = time.perf_counter()
    browser.expect("POST", f"{base}/s/screening/", 302, f"{base}/s/warmup/", answers)
    return time.perf_counter() - started


# --- the load ------------------------------------------------------------------------------


@dataclass
class Results:
    enrollment: list[float] = field(default_factory=list)
    allocating_post: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_load(port: int, enrollments: int, clients: int, run_id: str) -> tuple[Results, float]:
    results = Results()
    next_index = iter(range(enrollments))
    take = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client() -> None:
        start.wait()
        while True:
            with take:
                index = next(next_index, None)
            if index is None:
                return
            began = time.perf_counter()
            try:
                post = enroll(port, f"{run_id}-{index:05d}", CODING_YEARS[index % 3])
            except Exception as exc:
                with results.lock:
                    results.errors.append(f"enrollment {index}: {type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - began
            with results.lock:
                results.enrollment.append(elapsed)
                results.allocating_post.append(post)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - began


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    # Nearest rank: the smallest value with at least q of the data at or below it.
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))]


def describe(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{name:<28} p50 {percentile(ms, 0.50):7.1f} ms   p95 {percentile(ms, 0.95):7.1f} ms   "
        f"max {max(ms):7.1f} ms   mean {statistics.fmean(ms):7.1f} ms"
    )


# --- checks on the stored data ---------------------------------------------------------------


def verify(url: str, expected: int) -> list[str]:
    """What must hold in the database after the run; returns the problems found."""
    problems: list[str] = []
    with psycopg.connect(url) as conn:
        seed, definition = conn.execute(
            "SELECT randomization_seed, definition FROM trials_trial WHERE slug = %s AND "
            "status = 'live'",
            [SLUG],
        ).fetchone() or (None, None)
        if seed is None:
            return ["the trial is not live"]
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT participant_id) FROM trials_allocation"
        ).fetchone() or (0, 0)
        print(f"allocations in the database: {total} ({distinct} distinct participants)")
        if total != expected:
            problems.append(f"expected {expected} allocations, found {total}")
        if distinct != total:
            problems.append(f"{total - distinct} duplicate allocation(s)")
        unallocated = conn.execute(
            "SELECT count(*) FROM trials_participant p LEFT JOIN trials_allocation a "
            "ON a.participant_id = p.id WHERE a.id IS NULL"
        ).fetchone()
        if unallocated and unallocated[0]:
            problems.append(f"{unallocated[0]} participant(s) without an allocation")
        arms = [
            ArmWeight(key, weight)
            for key, weight in conn.execute(
                "SELECT key, weight FROM trials_arm a JOIN trials_trial t ON a.trial_id = t.id "
                'WHERE t.slug = %s AND t.status = %s ORDER BY a."order"',
                [SLUG, "live"],
            )
        ]
        by_stratum: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for stratum, number, arm_key in conn.execute(
            "SELECT a.stratum, a.sequence_number, arm.key FROM trials_allocation a "
            "JOIN trials_arm arm ON a.arm_id = arm.id"
        ):
            by_stratum[stratum].append((number, arm_key))
    block_sizes = definition["randomization"]["block_sizes"]
    for stratum in sorted(by_stratum):
        rows = sorted(by_stratum[stratum])
        numbers = [number for number, _ in rows]
        gap_free = numbers == list(range(1, len(rows) + 1))
        schedule = BlockSchedule(arms, block_sizes, seed, stratum)
        realised = [arm_key for _, arm_key in rows]
        on_schedule = realised == [schedule.arm_at(i) for i in range(len(rows))]
        counts = ", ".join(f"{k} {n}" for k, n in sorted(Counter(realised).items()))
        print(
            f"  {stratum:<22} n={len(rows):<5} sequence 1..{max(numbers)} "
            f"{'gap-free' if gap_free else 'WITH GAPS OR DUPLICATES'}, "
            f"{'arms follow the block schedule' if on_schedule else 'ARMS OFF SCHEDULE'} ({counts})"
        )
        if not gap_free:
            problems.append(f"stratum {stratum}: sequence numbers are not 1..{len(rows)}")
        if not on_schedule:
            problems.append(f"stratum {stratum}: arms differ from the permuted-block schedule")
    return problems


# --- main ----------------------------------------------------------------------------------


def run_limit(port: int, count: int, clients: int) -> tuple[list[float], float, list[str]]:
    """``count`` POSTs to the minimal allocating view from ``clients`` threads: the limit."""
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    numbers = iter(range(count))
    start = threading.Barrier(clients + 1)

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=120)
        start.wait()
        while True:
            with lock:
                if next(numbers, None) is None:
                    break
            began = time.perf_counter()
            try:
                conn.request("POST", "/bench/allocate/")
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                ok, response = False, None
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
            with lock:
                if ok:
                    times.append(time.perf_counter() - began)
                elif response is not None:
                    errors.append(f"HTTP {response.status}")
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return times, time.perf_counter() - began, errors


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--enrollments", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4, help="server worker processes")
    parser.add_argument("--server", choices=CONFIGS, default="production")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/skilltrial_bench"
        ),
        help="a dedicated PostgreSQL database: it is DROPPED and recreated",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    env = os.environ | {
        "DATABASE_URL": args.database_url,
        "DJANGO_SETTINGS_MODULE": "bench.limit_settings",
        "DEBUG": "0",
        "ALLOWED_HOSTS": HOST,
        "LOG_LEVEL": "WARNING",
    }
    print(f"database {args.database_url} (dropped and recreated)")
    recreate_database(args.database_url)
    for command in (("migrate", "--noinput"), ("collectstatic", "--noinput", "-v0")):
        manage(env, *command)
    manage(env, "import_trial", str(STUDY_DIR))
    manage(env, "launch_trial", SLUG)
    print(f"load average before: {os.getloadavg()}")
    with serve(env, config=args.server, workers=args.workers) as server:
        print(f"server: {server.describe()}; {args.clients} concurrent clients")
        limit, limit_wall, limit_errors = run_limit(server.port, args.enrollments, args.clients)
        results, wall = run_load(server.port, args.enrollments, args.clients, f"b{os.getpid()}")
        if results.errors or limit_errors:
            print("--- server log (tail) ---\n" + server.log_tail(), file=sys.stderr)
    print(f"load average after:  {os.getloadavg()}")
    return report(args, results, wall, (limit, limit_wall, limit_errors))


def report(
    args: argparse.Namespace,
    results: Results,
    wall: float,
    limit_run: tuple[list[float], float, list[str]],
) -> int:
    limit, limit_wall, limit_errors = limit_run
    done = len(results.enrollment)
    print(f"\nwall time {wall:.2f} s; {done} enrollments completed, {len(results.errors)} failed")
    for error in (results.errors + limit_errors)[:10]:
        print(f"  {error}")
    if limit:
        print(f"limit, the minimal allocating view: {len(limit) / limit_wall:.1f} allocations/s")
        print(describe("minimal allocating view", limit))
    if done:
        rate = done / wall
        print(f"full enrollment: {rate:.1f} allocations/s", end="")
        print(f" = {100 * rate * limit_wall / len(limit):.0f}% of the limit" if limit else "")
        print(describe("full enrollment (5 requests)", results.enrollment))
        print(describe("allocating POST alone", results.allocating_post))
    print()
    problems = verify(args.database_url, args.enrollments + len(limit))
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if not problems:
        print(
            "checks: one allocation per participant, no duplicates, gap-free sequences, "
            "arms on the block schedule"
        )
    return 1 if problems or results.errors or limit_errors else 0


if __name__ == "__main__":
    sys.exit(main())
