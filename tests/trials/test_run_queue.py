"""A Run or Check through the queues (trials/work.py, trials/sandboxing.py): what travels in a
message, recording it twice, one run per participant in flight, the runner's view of a trial,
and where a waiting run stands in the Redis queue."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid

import pytest
import redis
from django.core.cache import cache

from tests.builders import SAMPLE, enroll
from trials import work
from trials.models import CodeRun, Event, TaskState, Trial
from trials.sandbox_requests import Ran
from trials.sandboxing import execute, trial_files
from trials.services import coding

TASK = "tasks/concurrent_greetings"
SOLUTION = (SAMPLE / TASK / "solution.py").read_text()
HIDDEN_TESTS = (SAMPLE / TASK / "tests.py").read_text()


def _pending(trial: Trial, kind: str, code: str = SOLUTION) -> coding.PendingRun:
    participant = enroll(trial, through=["warmup"])
    stage, task = coding.coding_task(
        participant=participant, stage_key="main_tasks", task_folder=TASK
    )
    return coding.code_run_begin(
        participant=participant, stage=stage, task=task, code=code, kind=kind
    )


@pytest.mark.django_db
def test_a_check_message_names_the_trial_and_task_and_never_holds_the_tests(live_trial):
    pending = _pending(live_trial, "check")
    sent = json.dumps([pending.sandbox_request(), pending.message()])
    assert pending.sandbox_request()["trial"] == live_trial.protocol_hash
    assert "tests" not in pending.sandbox_request()
    # Not one line of the hidden tests (the sample's test functions) travels in a message.
    for line in HIDDEN_TESTS.splitlines():
        if line.strip().startswith(("def ", "assert ")):
            assert line.strip() not in sent


@pytest.mark.django_db
def test_the_runner_gets_a_launched_trials_files_by_hash_and_nothing_else(live_trial):
    assert trial_files(live_trial.protocol_hash)[f"{TASK}/tests.py"] == HIDDEN_TESTS
    with pytest.raises(LookupError, match="no launched trial"):
        trial_files("0" * 64)
    draft = Trial.objects.create(
        slug="draft-only",
        title="Draft",
        definition={},
        files={"x": "y"},
        definition_hash="d" * 64,
        protocol_hash="d" * 64,
        randomization_scheme="simple",
    )
    with pytest.raises(LookupError):
        trial_files(draft.protocol_hash)


@pytest.mark.django_db
def test_recording_a_check_twice_stores_it_once(live_trial):
    """A requeued message (its worker died after recording, before acknowledging) records the
    same job again: one CodeRun, one event, the counters and the completion counted once."""
    pending = _pending(live_trial, "check")
    answer = execute(pending.sandbox_request())
    assert answer["all_passed"], answer
    first = work.record_run.apply((answer, pending.message())).get()
    again = work.record_run.apply((answer, pending.message())).get()
    participant = pending.participant
    assert first["run"] == again["run"]
    assert first["first_pass"] and again["first_pass"]
    assert CodeRun.objects.filter(participant=participant).count() == 1
    assert Event.objects.filter(participant=participant, type="check").count() == 1
    assert Event.objects.filter(participant=participant, type="task_completed").count() == 1
    state = TaskState.objects.get(participant=participant, task=TASK)
    assert state.checks == 1 and state.first_passed_at == pending.started


@pytest.mark.django_db
def test_a_replayed_recording_stores_nothing_and_touches_only_its_own_participant(live_trial):
    """The verdict comes from the runs queue only (the browser never sends one; the queues are
    the server's own, out of a participant's reach). Replaying one job's recording stores no
    new run and changes nothing for another participant whose Check failed."""
    passing = _pending(live_trial, "check")
    failing = _pending(live_trial, "check", code="def nothing():\n    pass\n")
    good = execute(passing.sandbox_request())
    work.record_run.apply((good, passing.message())).get()
    bad = execute(failing.sandbox_request())
    assert not bad["all_passed"]
    recorded = work.record_run.apply((bad, failing.message())).get()
    assert recorded["first_pass"] is False
    # Replaying the first job's recording changes nothing for either participant.
    work.record_run.apply((good, passing.message())).get()
    assert not TaskState.objects.filter(
        participant=failing.participant, first_passed_at__isnull=False
    ).exists()
    assert CodeRun.objects.count() == 2


def test_one_run_per_participant_is_in_flight_at_a_time():
    cache.clear()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert work.take_turn("p1", first)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(work.take_turn("p1", second)))
    waiter.start()
    time.sleep(0.5)
    assert got == [], "a second run of the same participant started while one was in flight"
    assert work.take_turn("p2", str(uuid.uuid4()))  # someone else is not held up
    work.give_turn_back("p1", second)  # not the holder's job: changes nothing
    time.sleep(0.3)
    assert got == []
    work.give_turn_back("p1", first)
    waiter.join(timeout=5)
    assert got == [True]
    cache.clear()


def test_a_recorded_run_gives_the_turn_back(monkeypatch):
    cache.clear()
    job = str(uuid.uuid4())
    assert work.take_turn("p9", job)
    monkeypatch.setattr(coding, "pending_run", lambda message: object())
    monkeypatch.setattr(coding, "code_run_record", lambda pending, ran: _outcome())
    answer = dict.fromkeys(Ran.__dataclass_fields__)
    work.record_run.apply((answer, {"participant": "p9", "job": job})).get()
    assert work.take_turn("p9", str(uuid.uuid4()))  # free again
    cache.clear()


def _outcome() -> coding.RunOutcome:
    run = CodeRun(kind="run", status="ok", duration_ms=1, stdout="", stderr="")
    return coding.RunOutcome(run=run, tests=[], first_pass=False, message="")


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _redis_up(), reason="needs Redis on 127.0.0.1:6379")
@pytest.mark.django_db
def test_the_queue_position_is_read_from_the_runs_queue_in_redis(settings, live_trial):
    url = "redis://127.0.0.1:6379/12"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = url
    client = redis.Redis.from_url(url)
    client.flushdb()
    participant = enroll(live_trial)
    job = str(uuid.uuid4())
    cache.clear()
    assert work.queue_position(participant) is None  # nothing in flight
    assert work.take_turn(participant.pk, job)

    def message(task_id: str) -> str:
        return json.dumps({"body": "", "headers": {"id": task_id}, "properties": {}})

    # Three older messages (pushed first: workers take from the right), then ours, then two.
    for _ in range(3):
        client.lpush("runs", message(str(uuid.uuid4())))
    client.lpush("runs", message(job))
    for _ in range(2):
        client.lpush("runs", message(str(uuid.uuid4())))
    assert work.queue_position(participant) == 3
    client.rpop("runs")
    client.rpop("runs")
    assert work.queue_position(participant) == 1
    client.rpop("runs")
    client.rpop("runs")  # ours, taken by a worker
    assert work.queue_position(participant) is None
    client.flushdb()
    client.close()
    cache.clear()
