"""A study's busiest hour: N participants coding at once, against the production server.

    .venv/bin/python bench/bench_load.py [--participants 500] [--duration 180] \\
        [--server production|sync] [--workers 4] [--askers 50]

Loopback only, bounded in count and time. It drops and recreates a dedicated database
(``BENCH_DATABASE_URL``, default ``skilltrial_bench``), imports and launches a copy of the
sample trial whose assistant arm talks to a loopback LLM server (the Anthropic wire protocol,
streamed at ``--token-rate`` tokens a second, three tokens per event), starts the server the
README's production section documents (``bench/server.py``; ``--server sync`` is the
configuration before it: gunicorn sync workers), brings ``--participants`` people through entry,
consent, screening and the warm-up into the Trio tasks, and then offers the load of the task
stage for ``--duration`` seconds, each participant on their own clock with a random phase:

- an autosave every 5 s (new code each time, compare-and-set on the last version),
- a telemetry batch of 10 events every 10 s,
- a Run every 60 s (a Trio program whose own time is about 0.5 s),
- a reload of the task page every 90 s,
- and, a third of the way in, ``--askers`` participants of the assistant arm ask at once and
  read the streamed reply to the end.

An action that falls due while the participant's previous one of the same kind is still
waiting is counted as offered and not handled (the page would wait too). Requests time out
after 30 s. It prints, per kind: offered, handled, errors, p50/p95/p99; the share of the whole
offered load handled; Run p95 beside the program's own time measured in the same run; the
machine's load average before and after. Then it checks the database: every acknowledged
autosave stored with its code, every acknowledged event stored exactly once, every answered Run
recorded. The exit status is non-zero only when a check on the data fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.server import CONFIGS, HOST, serve  # noqa: E402
from bench.setup import ELIGIBLE, manage, recreate_database  # noqa: E402
from tests.fakes.llm_server import FakeLLMServer, Reply  # noqa: E402

SLUG = "trio-skill-formation"
STUDY = ROOT / "studies" / SLUG
STAGE = "main_tasks"
TASK = "tasks/concurrent_greetings"
TIMEOUT = 30.0
CSRF = "b" * 32  # an unmasked CSRF secret, sent as cookie and header alike
PROGRAM = (
    "import trio\n\n\nasync def main():\n    await trio.sleep(0.5)\n    print('done')\n\n\n"
    "trio.run(main)\n"
)
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
INTERVALS = {"autosave": 5.0, "telemetry": 10.0, "run": 60.0, "page": 90.0}
KINDS = ("autosave", "telemetry", "page", "run", "assistant_first_byte", "assistant_reply")


# --- the trial and the participants ---------------------------------------------------------


def study_copy(folder: Path, llm: FakeLLMServer) -> Path:
    """The sample trial with its assistant arm on the loopback LLM server."""
    target = folder / "trial"
    shutil.copytree(STUDY, target)
    toml = target / "trial.toml"
    text = toml.read_text()
    start = text.index("[arms.assistant]")
    end = text.index("[[arms]]", start)
    table = (
        '[arms.assistant]\nprovider = "anthropic"\nmodel = "bench-model"\n'
        f'base_url = "{llm.anthropic_base_url}"\napi_key_env = "BENCH_LLM_KEY"\n'
        "timeout_seconds = 60\n\n"
    )
    toml.write_text(text[:start] + table + text[end:])
    return target


@dataclass
class Person:
    pid: str
    cookies: dict[str, str] = field(default_factory=dict)
    arm: str = ""
    version: int = 0


def _headers(person: Person, form: bool = False) -> dict[str, str]:
    cookies = {**person.cookies, "csrftoken": CSRF}
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    headers["X-CSRFToken"] = CSRF
    if form:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return headers


def _keep_cookies(person: Person, response: httpx.Response) -> None:
    for name, value in response.cookies.items():
        person.cookies[name] = value


def bring_in(base: str, pid: str) -> Person:
    """Entry link, consent, screening (allocation) and the warm-up, as a browser would."""
    person = Person(pid)
    with httpx.Client(base_url=base, timeout=120) as client:
        steps: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", f"/t/{SLUG}/?PROLIFIC_PID={pid}", None),
            ("POST", f"/t/{SLUG}/s/consent/", {"agree": "on", "decision": "agree"}),
            ("POST", f"/t/{SLUG}/s/screening/", ELIGIBLE | {"coding_years": "4-6"}),
            ("POST", f"/t/{SLUG}/s/warmup/", {}),
        ]
        for method, path, form in steps:
            data = None if form is None else form | {"csrfmiddlewaretoken": CSRF}
            response = client.request(
                method, path, data=data, headers=_headers(person, form is not None)
            )
            _keep_cookies(person, response)
            if response.status_code != 302:
                raise RuntimeError(f"{pid}: {method} {path} answered {response.status_code}")
        if not response.headers["location"].endswith(f"/s/{STAGE}/"):
            raise RuntimeError(f"{pid}: after the warm-up: {response.headers['location']}")
    return person


def bring_everyone_in(base: str, count: int, database_url: str) -> list[Person]:
    run = f"load{os.getpid()}"
    with ThreadPoolExecutor(16) as pool:
        people = list(pool.map(lambda i: bring_in(base, f"{run}-{i:05d}"), range(count)))
    with psycopg.connect(database_url) as conn:
        arms = dict(
            conn.execute(
                "SELECT p.prolific_pid, arm.key FROM trials_participant p "
                "JOIN trials_allocation a ON a.participant_id = p.id "
                "JOIN trials_arm arm ON arm.id = a.arm_id"
            ).fetchall()
        )
    for person in people:
        person.arm = arms[person.pid]
    return people


# --- the load --------------------------------------------------------------------------------


@dataclass
class Tally:
    offered: Counter[str] = field(default_factory=Counter)
    handled: Counter[str] = field(default_factory=Counter)
    busy: Counter[str] = field(default_factory=Counter)
    errors: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    saves: list[tuple[str, int, str]] = field(default_factory=list)
    events: dict[str, str] = field(default_factory=dict)
    runs: Counter[str] = field(default_factory=Counter)

    def done(self, kind: str, began: float) -> None:
        self.handled[kind] += 1
        self.seconds[kind].append(time.perf_counter() - began)

    def failed(self, kind: str, why: str) -> None:
        self.errors[kind][why] += 1


class Clock:
    """One participant's actions: due times on a fixed schedule (open loop), one in flight per
    kind."""

    def __init__(self, client: httpx.AsyncClient, person: Person, tally: Tally) -> None:
        self.client, self.person, self.tally = client, person, tally
        self.in_flight: set[str] = set()
        self.n = 0
        self.code = PROGRAM

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(
            f"/t/{SLUG}/api/{path}/", json=body, headers=_headers(self.person)
        )

    async def autosave(self) -> None:
        self.n += 1
        code = f"# autosave {self.n} of {self.person.pid}\n{PROGRAM}"
        self.code = code
        body = {"stage": STAGE, "task": TASK, "code": code, "base_version": self.person.version}
        response = await self.post("save", body)
        if response.status_code != 200:
            raise _Answer(response.status_code)
        self.person.version = response.json()["version"]
        self.tally.saves.append((self.person.pid, self.person.version, code))

    async def telemetry(self) -> None:
        self.n += 1
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ids = [f"{self.person.pid}-{self.n}-{i}" for i in range(10)]
        events = [
            {"id": i, "type": "edit", "client_time": stamp, "stage": STAGE,
             "payload": {"task": TASK, "changes": [[0, 0, "x"]]}}
            for i in ids
        ]  # fmt: skip
        response = await self.post("events", {"events": events})
        if response.status_code != 200:
            raise _Answer(response.status_code)
        for client_id in ids:
            self.tally.events[client_id] = self.person.pid

    async def run(self) -> None:
        # The editor's code as it stands (the last autosave's): usually no new version.
        response = await self.post("run", {"stage": STAGE, "task": TASK, "code": self.code})
        if response.status_code == 503:
            self.tally.busy["run"] += 1
        if response.status_code != 200:
            raise _Answer(response.status_code)
        self.person.version = max(self.person.version, response.json()["version"])
        self.tally.runs[self.person.pid] += 1

    async def page(self) -> None:
        response = await self.client.get(f"/t/{SLUG}/s/{STAGE}/", headers=_headers(self.person))
        if response.status_code != 200:
            raise _Answer(response.status_code)

    async def act(self, kind: str) -> None:
        self.tally.offered[kind] += 1
        if kind in self.in_flight:
            self.tally.failed(kind, "previous still waiting")
            return
        self.in_flight.add(kind)
        began = time.perf_counter()
        try:
            await asyncio.wait_for(getattr(self, kind)(), TIMEOUT)
            self.tally.done(kind, began)
        except _Answer as answer:
            self.tally.failed(kind, f"HTTP {answer.status}")
        except (TimeoutError, httpx.TimeoutException):
            self.tally.failed(kind, "time-out")
        except httpx.HTTPError as exc:
            self.tally.failed(kind, type(exc).__name__)
        finally:
            self.in_flight.discard(kind)


class _Answer(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


async def participant(clock: Clock, until: float, rng: random.Random) -> None:
    now = time.perf_counter()
    due = {kind: now + rng.uniform(0, every) for kind, every in INTERVALS.items()}
    tasks: set[asyncio.Task[None]] = set()
    while True:
        kind = min(due, key=due.__getitem__)
        if due[kind] >= until:
            break
        await asyncio.sleep(max(0.0, due[kind] - time.perf_counter()))
        task = asyncio.create_task(clock.act(kind))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        due[kind] += INTERVALS[kind]
    if tasks:
        await asyncio.wait(tasks)


async def ask(clock: Clock, tally: Tally) -> None:
    """One question, the streamed reply read to the end."""
    body = {"stage": STAGE, "task": TASK, "message": "How does a nursery start two tasks?"}
    tally.offered["assistant_first_byte"] += 1
    tally.offered["assistant_reply"] += 1
    began = time.perf_counter()
    try:
        async with clock.client.stream(
            "POST", f"/t/{SLUG}/api/assistant/", json=body, headers=_headers(clock.person)
        ) as response:
            if response.status_code != 200:
                raise _Answer(response.status_code)
            first = True
            async for line in response.aiter_lines():
                if first and line.startswith("data: "):
                    tally.done("assistant_first_byte", began)
                    first = False
                if line.startswith("data: ") and '"type": "done"' in line:
                    tally.done("assistant_reply", began)
    except _Answer as answer:
        tally.failed("assistant_reply", f"HTTP {answer.status}")
    except httpx.HTTPError as exc:
        tally.failed("assistant_reply", type(exc).__name__)


async def offer_load(base: str, people: list[Person], args: argparse.Namespace) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=4 * len(people), max_keepalive_connections=len(people))
    timeout = httpx.Timeout(TIMEOUT + 5, connect=TIMEOUT)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        clocks = [Clock(client, person, tally) for person in people]
        rng = random.Random(args.seed)
        until = time.perf_counter() + args.duration
        everyone = [participant(c, until, random.Random(rng.random())) for c in clocks]
        askers = [c for c in clocks if c.person.arm == "ai"][: args.askers]

        async def questions() -> None:
            await asyncio.sleep(args.duration / 3)
            await asyncio.gather(*(ask(c, tally) for c in askers))

        await asyncio.gather(*everyone, questions())
    return tally


# --- the limit, the figures and the checks ---------------------------------------------------


def own_time(repeats: int = 5) -> list[float]:
    """The Run program's own wall time, started directly with this interpreter: the limit."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", PROGRAM], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - began)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))]


def report(tally: Tally, limit: list[float]) -> None:
    columns = f"{'offered':>8}{'handled':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
    print(f"\n{'kind':<22}{columns}  errors")
    for kind in KINDS:
        seconds = [s * 1000 for s in tally.seconds.get(kind, [])]
        figures = (
            f"{pct(seconds, .5):9.0f}{pct(seconds, .95):9.0f}{pct(seconds, .99):9.0f}"
            if seconds else f"{'-':>9}{'-':>9}{'-':>9}"
        )  # fmt: skip
        errors = ", ".join(f"{why} {n}" for why, n in tally.errors.get(kind, {}).items())
        print(f"{kind:<22}{tally.offered[kind]:>8}{tally.handled[kind]:>8}{figures}  {errors}")
    offered = sum(tally.offered[k] for k in INTERVALS)
    handled = sum(tally.handled[k] for k in INTERVALS)
    print(f"\nhandled {handled} of {offered} offered requests: {100 * handled / offered:.1f}%")
    if tally.seconds.get("run"):
        run_p95 = pct(tally.seconds["run"], 0.95)
        own = statistics.median(limit)
        print(
            f"Run p95 {run_p95 * 1000:.0f} ms; the program's own time {own * 1000:.0f} ms "
            f"(direct, median of {len(limit)}); target: under own time + 1 s = "
            f"{(own + 1) * 1000:.0f} ms"
        )


def verify(database_url: str, tally: Tally) -> list[str]:
    problems = []
    with psycopg.connect(database_url) as conn:
        stored = {
            (pid, version): code
            for pid, version, code in conn.execute(
                "SELECT p.prolific_pid, s.version, s.code FROM trials_codesnapshot s "
                "JOIN trials_participant p ON p.id = s.participant_id WHERE s.task = %s",
                [TASK],
            )
        }
        events = Counter(
            client_id
            for (client_id,) in conn.execute(
                "SELECT client_id FROM trials_event WHERE client_id = ANY(%s)",
                [list(tally.events)],
            )
        )
        runs = dict(
            conn.execute(
                "SELECT p.prolific_pid, count(*) FROM trials_coderun r JOIN trials_participant p "
                "ON p.id = r.participant_id WHERE r.kind = 'run' GROUP BY p.prolific_pid"
            ).fetchall()
        )
    lost = [s for s in tally.saves if stored.get((s[0], s[1])) != s[2]]
    if lost:
        problems.append(f"{len(lost)} acknowledged autosaves not stored as acknowledged")
    missing = [i for i in tally.events if events[i] != 1]
    if missing:
        problems.append(f"{len(missing)} acknowledged events not stored exactly once")
    unrecorded = [pid for pid, n in tally.runs.items() if runs.get(pid, 0) < n]
    if unrecorded:
        problems.append(f"{len(unrecorded)} participants with answered Runs not recorded")
    print(
        f"checked: {len(tally.saves)} acknowledged autosaves, {len(tally.events)} acknowledged "
        f"events, {sum(tally.runs.values())} answered Runs"
    )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--participants", type=int, default=500)
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--askers", type=int, default=50)
    parser.add_argument("--token-rate", type=float, default=50.0, help="LLM tokens a second")
    parser.add_argument("--reply-tokens", type=int, default=300)
    parser.add_argument("--server", choices=CONFIGS, default="production")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server-log", help="write the server's whole log to this file")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/skilltrial_bench"
        ),
        help="a dedicated PostgreSQL database: it is DROPPED and recreated",
    )
    args = parser.parse_args()
    if not (1 <= args.participants <= 2000 and 1 <= args.duration <= 1800):
        parser.error("participants 1..2000 and duration 1..1800 s (a bounded load)")
    return run(args)


def run(args: argparse.Namespace) -> int:
    env = os.environ | {
        "DATABASE_URL": args.database_url,
        "DEBUG": "0",
        "ALLOWED_HOSTS": HOST,
        "LOG_LEVEL": "WARNING",
        "BENCH_LLM_KEY": "bench-key",
    }
    words = " ".join(f"w{i}" for i in range(args.reply_tokens))
    with FakeLLMServer() as llm, tempfile.TemporaryDirectory() as folder:
        # Providers send a few tokens per event (here 3): --token-rate tokens a second.
        llm.default = Reply(words, chunk_words=3, delay=3 / args.token_rate)
        recreate_database(args.database_url)
        for command in (("migrate", "--noinput"), ("collectstatic", "--noinput", "-v0")):
            manage(env, *command)
        manage(env, "import_trial", str(study_copy(Path(folder), llm)))
        manage(env, "launch_trial", SLUG)
        limit = own_time()
        with serve(env, config=args.server, workers=args.workers) as server:
            base = f"http://{HOST}:{server.port}"
            print(f"server: {server.describe()}")
            began = time.perf_counter()
            people = bring_everyone_in(base, args.participants, args.database_url)
            print(
                f"{len(people)} participants in the task stage in "
                f"{time.perf_counter() - began:.0f} s "
                f"({Counter(p.arm for p in people)}); offering the load for {args.duration:.0f} s"
            )
            print(f"load average before: {os.getloadavg()}")
            tally = asyncio.run(offer_load(base, people, args))
            print(f"load average after:  {os.getloadavg()}")
            report(tally, limit)
            if args.server_log:
                Path(args.server_log).write_text(server.log_tail(10**9))
            elif tally.errors:
                print("--- server log (tail) ---\n" + server.log_tail(2000))
    problems = verify(args.database_url, tally)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
