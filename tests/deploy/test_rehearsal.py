"""A rehearsal of a deployment on several machines, on loopback: PostgreSQL, Redis, two app
servers (gunicorn with uvicorn workers, on two ports), two runner workers (``-Q runs``) and a
results worker (``-Q results``), each its own process group as on its own host.

100 participants enroll and work through the sample trial's tasks (autosave, telemetry, Run,
Check) spread over both app servers, moving to the other one when theirs stops answering (what
a load balancer does). Meanwhile one runner worker is killed with SIGKILL while it runs a Check,
and later one app server. Afterwards: every acknowledged save and event is stored exactly once,
every Run and Check that was submitted (its code stored) has exactly one result, every answered
Check's verdict is the stored one, and every participant resumes on the surviving server.

The runner workers connect to PostgreSQL as a role that may only read the trials table, and
have no SECRET_KEY of the app's and no LLM key: they run code and fetch a trial's frozen files
by protocol hash, nothing else.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from tests.builders import ELIGIBLE, SAMPLE, launched_trial
from tests.processes import POSTGRES_ONLY
from trials.models import CodeRun, CodeSnapshot, Event, Participant, Trial

HOST = "127.0.0.1"
REDIS_DB_URL = "redis://127.0.0.1:6379/11"
RUNNER_ROLE = "skilltrial_rehearsal_runner"
TASK = "tasks/concurrent_greetings"
CSRF = "r" * 32
PARTICIPANTS = 100


def _redis_up() -> bool:
    try:
        with socket.create_connection((HOST, 6379), timeout=1):
            return True
    except OSError:
        return False


pytestmark = [
    *POSTGRES_ONLY,
    pytest.mark.skipif(not _redis_up(), reason="needs Redis on 127.0.0.1:6379"),
    pytest.mark.django_db(transaction=True),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _db_url(user: str) -> str:
    db = connection.settings_dict
    return f"postgres://{user}@{db['HOST'] or HOST}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class Fleet:
    """The processes of the rehearsal, each in a process group of its own."""

    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with (self.logs / f"{name}.log").open("wb") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(
                argv,
                cwd=settings.BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, name: str) -> None:
        """SIGKILL to the process and everything it started (its group), as a host dying."""
        proc = self.procs[name]
        pids = _descendants(proc.pid) | {proc.pid}
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _runs_code(fleet: Fleet, name: str) -> bool:
    """Whether the worker has a sandboxed program running (a process below its pool)."""
    pids = _descendants(fleet.procs[name].pid)
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"bwrap" in cmd or b"sandbox" in cmd or b"checker" in cmd or b"main.py" in cmd:
            return True
    return False


def _runner_role() -> None:
    """The role runner workers connect as (``manage.py runner_role``): it reads the trials
    table and nothing else."""
    call_command("runner_role", RUNNER_ROLE, stdout=io.StringIO())


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "DJANGO_SETTINGS", "SECRET_KEY", "ANTHROPIC", "OPENAI"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="skilltrial.settings",
        REDIS_URL=REDIS_DB_URL,
        CELERY_BROKER_URL="",
        CELERY_RESULT_BACKEND="",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def _start_fleet(fleet: Fleet, tmp: Path) -> list[int]:
    ports = [_free_port(), _free_port()]
    app_env = _env(DATABASE_URL=_db_url("postgres"), SECRET_KEY=settings.SECRET_KEY)
    for i, port in enumerate(ports, 1):
        fleet.start(
            f"app{i}",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "skilltrial.asgi:application",
                "-k",
                "uvicorn_worker.UvicornWorker",
                "-w",
                "1",
                "-b",
                f"{HOST}:{port}",
                "--graceful-timeout",
                "2",
            ],
            {**app_env, "DB_POOL_SIZE": "6"},
        )
    # Runner workers: their own var folder (a SECRET_KEY of their own, unused), read-only
    # database role, no LLM key; a short visibility time-out, so a message taken by a worker
    # that died goes back to the queue after 10 s.
    short = {"CELERY_VISIBILITY_TIMEOUT": "10", "CELERY_UNACKED_KEY": "runs"}
    for i in (1, 2):
        fleet.start(
            f"runner{i}",
            _celery("runs", f"runner{i}", concurrency=4),
            _env(
                DATABASE_URL=_db_url(RUNNER_ROLE),
                SKILLTRIAL_VAR_DIR=str(tmp / f"runner{i}-var"),
                DB_POOL_SIZE="0",
                **short,
            ),
        )
    fleet.start(
        "results",
        _celery("results", "results", concurrency=2),
        {**app_env, "DB_POOL_SIZE": "0", **short},
    )
    return ports


def _celery(queue: str, name: str, *, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "skilltrial",
        "worker",
        "-Q",
        queue,
        "-n",
        f"{name}@rehearsal",
        "-c",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "-l",
        "WARNING",
    ]


class Down(Exception):
    """The app server did not answer (refused, reset, closed)."""


@dataclass
class Servers:
    ports: list[int]
    dead: set[int] = field(default_factory=set)

    def pick(self, index: int) -> int:
        alive = [p for p in self.ports if p not in self.dead]
        return alive[index % len(alive)]


@dataclass
class Person:
    """One simulated participant: their cookies and what the servers acknowledged."""

    index: int
    servers: Servers
    cookies: dict[str, str] = field(default_factory=dict)
    saves: dict[int, str] = field(default_factory=dict)  # version -> code
    events: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    lost: int = 0  # requests whose server died before answering
    latest_code: str = ""

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
        port = self.servers.pick(self.index)
        conn = http.client.HTTPConnection(HOST, port, timeout=120)
        cookie = "; ".join(f"{k}={v}" for k, v in {**self.cookies, "csrftoken": CSRF}.items())
        try:
            conn.request(method, path, body=body, headers={**headers, "Cookie": cookie})
            response = conn.getresponse()
            data = response.read()
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            if _down(port):
                self.servers.dead.add(port)
            raise Down(str(exc)) from exc
        finally:
            conn.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, data

    def form(self, path: str, fields: dict[str, Any]) -> int:
        body = urlencode({**fields, "csrfmiddlewaretoken": CSRF})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status: int = self.retrying(lambda: self.request("POST", path, body.encode(), headers))[0]
        return status

    def api(self, slug: str, name: str, payload: dict[str, Any]) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", "X-CSRFToken": CSRF}
        status, data = self.request(
            "POST", f"/t/{slug}/api/{name}/", json.dumps(payload).encode(), headers
        )
        return status, json.loads(data) if data else None

    def retrying(self, call: Callable[[], Any]) -> Any:
        for _ in range(3):
            try:
                return call()
            except Down:
                self.lost += 1
        raise AssertionError("no app server answered three times")


def _down(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return False
    except OSError:
        return True


def _wait_until(condition: Callable[[], bool], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _enroll(person: Person, slug: str) -> None:
    status = person.retrying(
        lambda: person.request("GET", f"/t/{slug}/?PROLIFIC_PID=rh{person.index:04d}", None, {})
    )[0]
    assert status in (200, 302), status
    assert person.form(f"/t/{slug}/s/consent/", {"decision": "agree", "agree": "on"}) == 302
    assert person.form(f"/t/{slug}/s/screening/", ELIGIBLE) == 302
    assert person.form(f"/t/{slug}/s/warmup/", {}) == 302


def _save(person: Person, slug: str, code: str) -> None:
    base = max(person.saves, default=0)
    for _ in range(5):
        body = {"stage": "main_tasks", "task": TASK, "code": code, "base_version": base}
        try:
            status, data = person.api(slug, "save", body)
        except Down:
            person.lost += 1
            continue
        if status == 409:
            if data["code"] != code:  # a Run stored a newer version meanwhile: save on it
                base = data["version"]
                continue
            status, data = 200, {"version": data["version"]}  # a retry of a stored save
        assert status == 200, data
        person.saves[data["version"]] = code
        person.latest_code = code
        return
    raise AssertionError("no app server stored the save")


def _events(person: Person, slug: str, round_: int) -> None:
    ids = [f"rh{person.index}-{round_}-{n}" for n in range(3)]
    batch = {
        "events": [
            {
                "id": eid,
                "seq": round_ * 3 + n,
                "type": "edit",
                "stage": "main_tasks",
                "payload": {"task": TASK, "changes": [[0, 0, "x"]]},
            }
            for n, eid in enumerate(ids)
        ]
    }
    for _ in range(3):
        try:
            status, data = person.api(slug, "events", batch)
        except Down:
            person.lost += 1
            continue  # the batch is retried whole, as the browser does
        assert status == 200, data
        person.events += ids
        return
    raise AssertionError("no app server stored the events")


def _run_or_check(person: Person, slug: str, kind: str, code: str) -> None:
    """A Run or Check is not retried: once sent, its result is the queues' to record."""
    try:
        status, data = person.api(slug, kind, {"stage": "main_tasks", "task": TASK, "code": code})
    except Down:
        person.lost += 1
        person.latest_code = code
        return
    assert status == 200, data
    person.latest_code = code
    person.checks.append({"kind": kind, "version": data["version"], "answer": data})


def _work(person: Person, slug: str, solution: str, checking: threading.Event) -> None:
    _enroll(person, slug)
    _save(person, slug, f"# rehearsal {person.index} draft\n")
    _events(person, slug, 0)
    _run_or_check(person, slug, "run", f"print('rehearsal {person.index}')\n")
    _save(person, slug, f"# rehearsal {person.index} before check\n")
    checking.set()
    # Half pass, half fail (the starter's stub): both verdicts must come back as stored.
    good = person.index % 2 == 0
    code = (solution if good else "def nothing():\n    pass\n") + f"# check {person.index}\n"
    _run_or_check(person, slug, "check", code)
    _events(person, slug, 1)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    redis.Redis.from_url(REDIS_DB_URL).flushdb()
    fleet = Fleet(tmp_path)
    yield fleet
    fleet.stop_all()


def test_a_fleet_loses_nothing_when_a_runner_worker_and_an_app_server_die(
    fleet: Fleet, tmp_path: Path
) -> None:
    trial = launched_trial()
    _runner_role()
    ports = _start_fleet(fleet, tmp_path)
    for port in ports:
        _wait_until(lambda port=port: not _down(port), f"app server on {port}", 60)
    servers = Servers(ports)
    solution = (SAMPLE / TASK / "solution.py").read_text()
    people = [Person(i, servers) for i in range(PARTICIPANTS)]
    checking = threading.Event()
    with ThreadPoolExecutor(max_workers=25) as pool:
        futures = [pool.submit(_work, p, trial.slug, solution, checking) for p in people]
        checking.wait(timeout=300)
        _wait_until(lambda: _runs_code(fleet, "runner1"), "runner1 to run a Check", 120)
        fleet.kill("runner1")
        time.sleep(3)
        fleet.kill("app2")
        for future in futures:
            future.result(timeout=600)
    _verify(trial, people, fleet)
    print(
        f"rehearsal: {PARTICIPANTS} participants, {sum(p.lost for p in people)} requests met a "
        f"dead server, {sum(len(p.checks) for p in people)} Runs/Checks answered, "
        f"{CodeRun.objects.filter(participant__trial=trial).count()} recorded"
    )


def _verify(trial: Trial, people: list[Person], fleet: Fleet) -> None:
    participants = {p.external_id: p for p in Participant.objects.filter(trial=trial)}
    assert len(participants) == PARTICIPANTS
    assert sum(p.lost for p in people) > 0, "no request met a dead server: nothing was tested"
    submitted = CodeSnapshot.objects.filter(
        participant__trial=trial, source__in=("run", "check")
    ).values_list("participant_id", "source", "version")

    def all_recorded() -> bool:
        return CodeRun.objects.filter(participant__trial=trial).count() >= len(submitted)

    try:
        _wait_until(all_recorded, "every submitted Run and Check to be recorded", 180)
    except AssertionError as exc:
        recorded = CodeRun.objects.filter(participant__trial=trial).count()
        raise AssertionError(
            f"{exc}: {len(submitted)} submitted, {recorded} recorded\n"
            + fleet.log("runner2")
            + fleet.log("results")
        ) from None
    runs = list(
        CodeRun.objects.filter(participant__trial=trial).values_list(
            "participant_id", "kind", "snapshot_version", "tests_passed", "tests_total"
        )
    )
    # Exactly one result per submitted Run and Check, none without a submission.
    assert sorted((p, k, v) for p, k, v, *_ in runs) == sorted(submitted)
    by_key = {(p, k, v): (passed, total) for p, k, v, passed, total in runs}
    for person in people:
        participant = participants[f"rh{person.index:04d}"]
        _verify_person(trial, person, participant, by_key)


def _verify_person(
    trial: Trial,
    person: Person,
    participant: Participant,
    by_key: dict[tuple[str, str, int], tuple[int | None, int | None]],
) -> None:
    for version, code in person.saves.items():
        assert CodeSnapshot.objects.get(participant=participant, version=version).code == code
    stored = Event.objects.filter(participant=participant, client_id__in=person.events)
    assert stored.count() == len(person.events) == len(set(person.events))
    for check in person.checks:
        passed, total = by_key[(participant.pk, check["kind"], check["version"])]
        if check["kind"] == "check":
            assert (passed, total) == (check["answer"]["passed"], check["answer"]["total"])
            assert check["answer"]["all_passed"] == (person.index % 2 == 0)
    # Resuming on the surviving server: the task page shows the last code they sent.
    status, page = person.retrying(
        lambda: person.request("GET", f"/t/{trial.slug}/s/main_tasks/", None, {})
    )
    assert status == 200
    assert person.latest_code.splitlines()[-1].encode() in page
