"""The coding stage on the server: autosave with versions, Run and Check in the real
sandbox, completion on the first passing check, telemetry, and who may call what."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from trials.models import CodeRun, CodeSnapshot, Event, Participant, TaskState
from trials.tasks import load_task

pytestmark = pytest.mark.django_db

ENTRY = "/t/trio-skill-formation/"
API = ENTRY + "api/"
TASKS = ["tasks/warmup", "tasks/concurrent_greetings", "tasks/fetch_all"]


@pytest.fixture
def participant_client(live_trial, eligible_answers) -> Client:
    client = Client(raise_request_exception=False)
    client.get(ENTRY)
    client.post(f"{ENTRY}s/consent/", {"decision": "agree", "agree": "on"})
    client.post(f"{ENTRY}s/screening/", eligible_answers)
    return client


def post(client: Client, name: str, body: dict) -> tuple[int, dict]:
    response = client.post(API + name + "/", json.dumps(body), content_type="application/json")
    return response.status_code, response.json()


def to_main_tasks(client: Client) -> None:
    assert client.post(f"{ENTRY}s/warmup/", {"code_0": "x = 1"}).status_code == 302


@pytest.mark.parametrize("folder", TASKS)
def test_reference_solution_passes_and_starter_fails(participant_client, live_trial, folder):
    task = load_task(live_trial.files, folder)
    if folder != "tasks/warmup":
        to_main_tasks(participant_client)
    stage = "warmup" if folder == "tasks/warmup" else "main_tasks"
    status, solved = post(
        participant_client, "check", {"stage": stage, "task": folder, "code": task.solution}
    )
    assert status == 200, solved
    assert solved["all_passed"], solved["tests"]
    assert solved["first_pass"] is True
    status, starter = post(
        participant_client, "check", {"stage": stage, "task": folder, "code": task.starter}
    )
    assert status == 200
    assert not starter["all_passed"]
    assert starter["first_pass"] is False
    assert starter["total"] == solved["total"] >= 3


def test_run_shows_output_and_records_the_run(participant_client):
    status, data = post(
        participant_client,
        "run",
        {
            "stage": "warmup",
            "task": "tasks/warmup",
            "code": "print('hello')\nraise KeyError('k')\n",
        },
    )
    assert status == 200
    assert data["stdout"] == "hello\n"
    assert "KeyError" in data["stderr"]
    assert data["status"] == "error" and data["exit_code"] == 1
    run = CodeRun.objects.get()
    assert (run.kind, run.exception_type, run.sandbox in ("bwrap", "fallback")) == (
        "run",
        "KeyError",
        True,
    )
    event = Event.objects.get(type="run", origin="server")
    assert event.payload["exception_type"] == "KeyError"
    assert CodeSnapshot.objects.get().source == "run"


def test_first_pass_is_recorded_once_with_server_time(participant_client, live_trial):
    solution = load_task(live_trial.files, "tasks/warmup").solution
    before = timezone.now()
    body = {"stage": "warmup", "task": "tasks/warmup", "code": solution}
    assert post(participant_client, "check", body)[1]["first_pass"] is True
    assert post(participant_client, "check", body)[1]["first_pass"] is False
    state = TaskState.objects.get(task="tasks/warmup")
    assert before <= state.first_passed_at <= timezone.now()
    assert state.checks == 2
    assert Event.objects.filter(type="task_completed").count() == 1


def test_hidden_tests_cannot_be_read_by_participant_code(participant_client, live_trial):
    sneaky = "print(open('tests.py').read())\n"
    status, data = post(
        participant_client, "check", {"stage": "warmup", "task": "tasks/warmup", "code": sneaky}
    )
    assert status == 200
    assert "FileNotFoundError" in json.dumps(data)
    hidden = load_task(live_trial.files, "tasks/warmup").tests
    assert "def test_" not in json.dumps(data)
    assert hidden[:40] not in json.dumps(data)


def test_autosave_keeps_every_version_and_resumes_after_reload(participant_client):
    body = {"stage": "warmup", "task": "tasks/warmup", "source": "autosave"}
    assert post(participant_client, "save", body | {"code": "a = 1", "base_version": 0}) == (
        200,
        {"version": 1},
    )
    assert post(participant_client, "save", body | {"code": "a = 2", "base_version": 1}) == (
        200,
        {"version": 2},
    )
    assert list(CodeSnapshot.objects.values_list("code", flat=True)) == ["a = 1", "a = 2"]
    page = participant_client.get(f"{ENTRY}s/warmup/")
    state = page.context["page_state"]
    assert state["tasks"][0]["code"] == "a = 2"
    assert state["tasks"][0]["version"] == 2


def test_a_second_tab_cannot_silently_overwrite_the_first(participant_client):
    body = {"stage": "warmup", "task": "tasks/warmup", "source": "autosave"}
    post(participant_client, "save", body | {"code": "from tab one", "base_version": 0})
    status, data = post(
        participant_client, "save", body | {"code": "from tab two", "base_version": 0}
    )
    assert status == 409
    assert data == {"error": "conflict", "version": 1, "code": "from tab one"}
    assert list(CodeSnapshot.objects.values_list("code", flat=True)) == ["from tab one"]


def test_beacon_saves_arrive_as_a_form(participant_client):
    payload = {
        "stage": "warmup",
        "task": "tasks/warmup",
        "code": "b = 1",
        "base_version": 0,
        "source": "beacon",
    }
    response = participant_client.post(API + "save/", {"payload": json.dumps(payload)})
    assert response.status_code == 200
    assert CodeSnapshot.objects.get().source == "beacon"


def test_endpoints_only_serve_the_current_coding_stage(participant_client, live_trial):
    ok_body = {"stage": "warmup", "task": "tasks/warmup", "code": "x", "base_version": 0}
    # A task of a later stage, a later stage, and an unknown task are refused.
    status, data = post(participant_client, "save", ok_body | {"task": "tasks/fetch_all"})
    assert (status, data["error"]) == (400, "refused")
    status, data = post(participant_client, "run", ok_body | {"stage": "main_tasks"})
    assert (status, data["error"]) == (409, "stage_over")
    # After the deadline the stage is over: nothing more is stored.
    Participant.objects.update(stage_deadline=timezone.now() - timedelta(minutes=2))
    status, data = post(participant_client, "save", ok_body)
    assert (status, data["error"]) == (409, "stage_over")
    assert not CodeSnapshot.objects.exists()
    assert Participant.objects.get().current_stage.key == "main_tasks"


def test_calls_without_a_participant_or_with_bad_bodies_are_refused(participant_client, live_trial):
    assert Client().post(API + "save/", "{}", content_type="application/json").status_code == 403
    assert participant_client.get(API + "save/").status_code == 405
    response = participant_client.post(API + "save/", "{not json", content_type="application/json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["message"]
    status, data = post(participant_client, "save", {"stage": "warmup", "task": 7})
    assert status == 400 and "field 'task'" in data["message"]
    status, data = post(
        participant_client, "save", {"stage": "warmup", "task": "tasks/warmup", "code": "x"}
    )
    assert status == 400 and "base_version" in data["message"]


def _event(i: int, **extra) -> dict:
    return {
        "id": f"e-{i}",
        "seq": i,
        "type": "edit",
        "client_time": "2026-11-27T10:00:00.000Z",
        "stage": "warmup",
        "payload": {"task": "tasks/warmup", "changes": [[0, 0, "x"]]},
    } | extra


def test_events_are_stored_once_even_when_a_batch_is_retried(participant_client):
    batch = {"events": [_event(i) for i in range(5)]}
    assert post(participant_client, "events", batch) == (200, {"stored": 5, "duplicates": 0})
    batch["events"].append(_event(5, type="paste", payload={"length": 3}))
    assert post(participant_client, "events", batch) == (200, {"stored": 1, "duplicates": 5})
    stored = Event.objects.filter(origin="client").order_by("client_seq")
    assert [e.client_seq for e in stored] == [0, 1, 2, 3, 4, 5]
    assert all(e.server_time is not None and e.stage.key == "warmup" for e in stored)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"id": ""}, "events[0].id"),
        ({"type": "Drop Table"}, "events[0].type"),
        ({"client_time": "yesterday"}, "events[0].client_time"),
        ({"payload": [1, 2]}, "events[0].payload"),
        ({"payload": {"x": "nul\x00"}}, "NUL"),
        ({"seq": "one"}, "events[0].seq"),
    ],
)
def test_malformed_events_are_refused_by_field(participant_client, bad, message):
    status, data = post(participant_client, "events", {"events": [_event(0, **bad)]})
    assert status == 400
    assert message in data["message"]
    assert not Event.objects.filter(origin="client").exists()


def test_stage_changes_are_logged_by_the_server(participant_client):
    types = list(Event.objects.filter(origin="server").values_list("type", "payload__stage"))
    assert types == [
        ("stage_entered", "consent"),
        ("stage_left", "consent"),
        ("stage_entered", "screening"),
        ("stage_left", "screening"),
        ("stage_entered", "warmup"),
    ]


def test_finishing_the_stage_stores_the_final_code_as_a_submission(participant_client):
    to_main_tasks(participant_client)
    snapshot = CodeSnapshot.objects.get(task="tasks/warmup")
    assert (snapshot.code, snapshot.source) == ("x = 1", "submit")
    assert TaskState.objects.get(task="tasks/warmup").submitted_at is not None
    assert Event.objects.filter(type="task_submitted").count() == 1


def test_runs_report_their_version_and_only_a_real_change_elsewhere_conflicts(participant_client):
    body = {"stage": "warmup", "task": "tasks/warmup", "source": "autosave"}
    run_body = {"stage": "warmup", "task": "tasks/warmup"}
    assert post(participant_client, "save", body | {"code": "a = 1", "base_version": 0})[0] == 200
    status, run = post(participant_client, "run", run_body | {"code": "b = 1"})
    assert (status, run["version"]) == (200, 2)  # the page learns the version its run stored
    # A tab still based on version 1 while version 2 holds other code: a conflict.
    assert post(participant_client, "save", body | {"code": "c = 1", "base_version": 1})[0] == 409
    # Back to the code of version 1 (version 3): a save based on version 1 changes nothing
    # that anyone else wrote, so it is accepted.
    assert post(participant_client, "run", run_body | {"code": "a = 1"})[1]["version"] == 3
    assert post(participant_client, "save", body | {"code": "d = 1", "base_version": 1}) == (
        200,
        {"version": 4},
    )


def test_the_queue_endpoint_says_where_a_waiting_run_stands(participant_client):
    """Nothing waits: no position. (The ordering itself is tested on the slot pool in
    tests/trials/runner/test_fair_queue.py.)"""
    status, body = post(participant_client, "queue", {})
    assert status == 200
    assert body == {"position": None}


def test_a_check_body_cannot_carry_its_own_verdict_or_job(participant_client, live_trial):
    """Verdict fields, a job id or a protocol hash sent with a Check are ignored: the verdict
    is the runs queue's, of the code sent, against the live protocol's tests."""
    to_main_tasks(participant_client)
    task = load_task(live_trial.files, "tasks/concurrent_greetings")
    forged = {
        "stage": "main_tasks",
        "task": task.folder,
        "code": task.starter,
        "all_passed": True,
        "tests": [{"name": "x", "passed": True, "message": ""}],
        "job": "00000000-0000-0000-0000-000000000000",
        "trial": "0" * 64,
        "status": "ok",
    }
    status, answer = post(participant_client, "check", forged)
    assert status == 200
    assert answer["all_passed"] is False and answer["first_pass"] is False
    run = CodeRun.objects.get(kind="check")
    assert str(run.job) != forged["job"] and run.tests_passed < run.tests_total
    assert not TaskState.objects.filter(first_passed_at__isnull=False).exists()
