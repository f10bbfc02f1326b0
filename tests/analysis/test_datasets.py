"""The tidy data sets, computed from participants walked through the sample trial."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from django.test import Client
from django.utils import timezone

from analysis.datasets import (
    DATASETS,
    UnknownDataset,
    analysis_input,
    dataset_columns,
    dataset_frame,
    dataset_row_count,
    iter_dataset_chunks,
    population,
)
from analysis.datasets.columns import participant_columns
from analysis.datasets.shape import trial_shape
from trials.event_types import EventName
from trials.models import AssistantTurn, Event, Participant, StageRecord, TaskState
from trials.services.events import event_log

pytestmark = pytest.mark.django_db

ENTRY = "/t/trio-skill-formation/"
QUIZ = {
    "nursery_exit": "b",  # 1 point, conceptual
    "start_soon_returns": "c",  # 1 point
    "attention": "c",
}


def enter(eligible_answers: dict, **ids: str) -> tuple[Client, Participant]:
    client = Client(raise_request_exception=False)
    client.get(ENTRY, ids)
    client.post(f"{ENTRY}s/consent/", {"decision": "agree", "agree": "on"})
    client.post(f"{ENTRY}s/screening/", eligible_answers)
    participant = Participant.objects.get(
        pk=client.cookies["stp_trio-skill-formation"].value.split(":")[0]
    )
    return client, participant


def finish(client: Client, *, quiz: dict, survey: dict) -> None:
    client.post(f"{ENTRY}s/warmup/", {})
    client.post(f"{ENTRY}s/main_tasks/", {})
    response = client.post(f"{ENTRY}s/quiz/", quiz)
    assert response.status_code == 302
    response = client.post(f"{ENTRY}s/post_survey/", survey)
    assert response.status_code == 302, response.content[:2000]


SURVEY = {
    "self_rated_learning": "4",
    "enjoyment": "5",
    "effort": "3",
    "outside_help": "no",
    "comments": '=HYPERLINK("x")',
}


def test_participants_one_row_each_with_declared_columns_and_types(live_trial, eligible_answers):
    client, done = enter(eligible_answers, PROLIFIC_PID="pid-secret-1")
    finish(client, quiz=QUIZ, survey=SURVEY)
    # The warm-up task passed 3 minutes in; the main tasks never passed (censored).
    warm = StageRecord.objects.get(participant=done, stage__key="warmup")
    TaskState.objects.filter(participant=done, stage__key="warmup").update(
        first_passed_at=warm.started_at + timedelta(minutes=3)
    )
    if not TaskState.objects.filter(participant=done, stage__key="warmup").exists():
        TaskState.objects.create(
            participant=done,
            stage=warm.stage,
            task="tasks/warmup",
            first_passed_at=warm.started_at + timedelta(minutes=3),
            runs=4,
            checks=2,
        )
    TaskState.objects.filter(participant=done, stage__key="warmup").update(
        submitted_at=warm.started_at + timedelta(minutes=4)
    )
    TaskState.objects.filter(participant=done, stage__key="main_tasks").update(submitted_at=None)
    # Two pastes (one from the assistant), 90 seconds in the chat box, two assistant turns.
    main = StageRecord.objects.get(participant=done, stage__key="main_tasks").stage
    event_log(done, "paste", stage=main, payload={"length": 30, "from_assistant": True})
    event_log(done, "paste", stage=main, payload={"length": 10})
    # The chat box's focus and blur (client-reported, 90 s apart on the browser's clock) count
    # inside the stage's server window: the stage ran 10 minutes; the blur arrived 5 in.
    main_record = StageRecord.objects.get(participant=done, stage=main)
    main_start = main_record.ended_at - timedelta(minutes=10)
    StageRecord.objects.filter(pk=main_record.pk).update(started_at=main_start)
    t0 = timezone.now() + timedelta(days=3)  # the browser's clock is off: it does not matter
    for kind, at in (("focus", t0), ("blur", t0 + timedelta(seconds=90))):
        event = Event.objects.create(
            participant=done,
            stage=main,
            type=kind,
            client_id=f"c-{kind}",
            client_time=at,
            payload={"scope": "assistant", "task": "tasks/fetch_all"},
        )
        Event.objects.filter(pk=event.pk).update(server_time=main_start + timedelta(minutes=5))
    for tokens in (100, 50):
        AssistantTurn.objects.create(
            participant=done,
            stage=main,
            task="tasks/fetch_all",
            question="?",
            provider="scripted",
            model="m",
            input_tokens=tokens,
            output_tokens=2 * tokens,
        )

    Client(raise_request_exception=False).get(ENTRY)  # entered, never consented
    declined = Client(raise_request_exception=False)
    declined.get(ENTRY)
    declined.post(f"{ENTRY}s/consent/", {"decision": "decline"})
    _, out = enter(eligible_answers | {"used_trio": "yes"})

    frame = dataset_frame(live_trial, "participants")
    columns = dataset_columns(live_trial, "participants")
    assert list(frame.columns) == [c.name for c in columns]
    assert len(frame) == 4 == dataset_row_count(live_trial, "participants")
    assert "prolific_pid" not in frame.columns
    assert "pid-secret-1" not in frame.to_csv()

    row = frame.set_index("participant").loc[done.public_code]
    assert row["arm"] in ("ai", "no_ai")
    assert row["itt"] and row["allocated"] and row["completed_trial"]
    assert row["baseline_coding_years"] == "4-6"
    assert row["warmup_time_min"] == pytest.approx(3.0)
    assert bool(row["stage_warmup_censored"]) is False
    assert bool(row["stage_main_tasks_censored"]) is True
    assert row["task_warmup_runs"] in (0, 4)
    assert row["task_warmup_submitted"]
    assert row["task_warmup_submitted_min"] == pytest.approx(4.0)
    assert pd.isna(row["task_fetch_all_submitted_min"])
    assert row["quiz_score"] == 2.0
    assert row["quiz_max"] == 27.0
    assert row["quiz_cat_conceptual"] >= 1.0
    assert bool(row["attention_passed"]) is True
    assert bool(row["quiz_final"]) is True
    assert row["pastes"] == 2 and row["paste_chars"] == 40 and row["assistant_pastes"] == 1
    assert row["assistant_messages"] == 2
    assert row["assistant_tokens_in"] == 150 and row["assistant_tokens_out"] == 300
    # Assistant time exists only for the arm with the assistant.
    assert row["assistant_time_min"] == pytest.approx(1.5 if row["arm"] == "ai" else 0.0)
    assert row["survey_outside_help"] == "no"
    assert row["furthest_stage"] == "debrief"
    assert bool(row["received_intervention"]) is True
    assert row["lost_reason"] == ""
    if row["arm"] == "no_ai":
        assert row["noncompliance_flags"] == "assistant_outside_arm"
        assert not row["per_protocol"]
    else:
        assert row["noncompliance_flags"] == ""
        assert row["per_protocol"]

    screened = frame.set_index("participant").loc[out.public_code]
    assert not screened["allocated"] and not screened["itt"]
    assert screened["screen_out_reasons"] == "Has used Trio before"
    assert screened["arm"] == ""
    assert pd.isna(screened["quiz_score"])
    statuses = sorted(frame["status"])
    assert statuses == ["completed", "consenting", "declined", "screened_out"]

    assert frame["quiz_score"].dtype == "Float64"
    assert frame["allocated"].dtype == "boolean"
    assert frame["runs"].dtype == "Int64"
    assert str(frame["enrolled_at"].dtype).startswith("datetime64")


def test_identifiers_only_when_asked(live_trial, eligible_answers):
    enter(eligible_answers, PROLIFIC_PID="pid-secret-2", STUDY_ID="s1", SESSION_ID="x1")
    plain = dataset_frame(live_trial, "participants")
    assert not [c for c in dataset_columns(live_trial, "participants") if c.identifier]
    full = dataset_frame(live_trial, "participants", identified=True)
    assert list(full["prolific_pid"]) == ["pid-secret-2"]
    assert {"participant_id", "study_id", "session_id", "completion_code"} <= set(full.columns)
    assert list(full.columns)[: len(plain.columns)] == list(plain.columns)


def test_timed_out_and_withdrawn_participants(live_trial, eligible_answers):
    client, p = enter(eligible_answers)
    client.post(f"{ENTRY}s/warmup/", {})
    # The main task stage ran out: its time is censored at the 35-minute limit.
    record = StageRecord.objects.get(participant=p, stage__key="main_tasks")
    start = timezone.now() - timedelta(minutes=50)
    StageRecord.objects.filter(pk=record.pk).update(
        started_at=start, deadline=start + timedelta(minutes=35)
    )
    Participant.objects.filter(pk=p.pk).update(
        stage_deadline=start + timedelta(minutes=35), status="withdrawn"
    )
    row = dataset_frame(live_trial, "participants").iloc[0]
    assert row["stage_main_tasks_time_min"] == pytest.approx(35.0)
    assert bool(row["stage_main_tasks_censored"]) is True
    assert bool(row["task_fetch_all_censored"]) is True
    assert row["lost_reason"] == "withdrew at main_tasks"
    assert not row["per_protocol"]
    assert "completed_quiz" in row["per_protocol_exclusions"]


def test_items_events_allocations(live_trial, eligible_answers):
    client, p = enter(eligible_answers)
    finish(client, quiz=QUIZ, survey=SURVEY)
    items = dataset_frame(live_trial, "items")
    assert list(items.columns) == [c.name for c in dataset_columns(live_trial, "items")]
    assert len(items) == 15 == dataset_row_count(live_trial, "items")
    first = items.set_index("question").loc["nursery_exit"]
    assert first["points"] == 1.0 and bool(first["correct"]) is True
    assert json.loads(first["response"]) == "b"
    assert "conceptual" in first["categories"]
    assert int(items["is_attention_check"].sum()) == 1

    events = dataset_frame(live_trial, "events")
    assert list(events.columns) == [c.name for c in dataset_columns(live_trial, "events")]
    assert len(events) == dataset_row_count(live_trial, "events") > 0
    assert set(events["participant"]) == {p.public_code}
    assert "stage_entered" in set(events["type"])
    assert events["event_id"].is_monotonic_increasing
    # Chunks carry the same rows and columns.
    chunks = list(iter_dataset_chunks(live_trial, "events", chunk_size=3))
    assert all(len(c) <= 3 for c in chunks)
    assert pd.concat(chunks, ignore_index=True).equals(events)

    allocations = dataset_frame(live_trial, "allocations")
    assert list(allocations["participant"]) == [p.public_code]
    assert list(allocations["sequence_number"]) == [1]


def test_empty_trial_and_unknown_dataset(live_trial):
    for name in DATASETS:
        frame = dataset_frame(live_trial, name)
        assert len(frame) == 0
        assert list(frame.columns) == [c.name for c in dataset_columns(live_trial, name)]
        assert [len(c) for c in iter_dataset_chunks(live_trial, name)] == [0]
    with pytest.raises(UnknownDataset, match="unknown data set 'people'"):
        dataset_frame(live_trial, "people")


def test_every_column_is_documented(live_trial):
    for name in DATASETS:
        for column in dataset_columns(live_trial, name, identified=True):
            assert column.type in ("string", "integer", "number", "boolean", "datetime", "json")
            assert column.description and column.source


def test_analysis_input_follows_the_frozen_plan(live_trial, eligible_answers):
    client, p = enter(eligible_answers)
    finish(client, quiz=QUIZ, survey=SURVEY)
    inp = analysis_input(live_trial)
    assert inp.reference_arm == "no_ai"
    assert inp.arm_labels == {"ai": "AI assistant", "no_ai": "No AI"}
    assert inp.outcomes["quiz_score"].column == "quiz_score"
    assert inp.outcomes["quiz_score"].max_points == 27.0
    time = inp.outcomes["completion_time"]
    assert (time.kind, time.column, time.censored_column, time.limit) == (
        "time",
        "stage_main_tasks_time_min",
        "stage_main_tasks_censored",
        35.0,
    )
    categories = inp.outcomes["category_scores"].categories
    assert set(categories) == {"conceptual", "code_reading", "debugging"}
    assert sum(c.max_points or 0 for c in categories.values()) >= 27.0
    assert inp.covariates == {"warmup_time": "warmup_time_min"}
    assert inp.frame["quiz_score"].dtype == "float64"
    assert list(inp.frame["participant"]) == [p.public_code]
    assert inp.items is not None and len(inp.items) == 15
    assert inp.meta["protocol_hash"] == live_trial.protocol_hash
    assert inp.meta["plan_changed"] is False
    assert inp.meta["synthetic"] is False
    assert inp.meta["snapshot"]["rows"] == 1


def test_each_participants_column_is_declared_with_its_computation(live_trial, eligible_answers):
    # The codebook's declarations and the values come from the same list, so a column's
    # value is whatever its own function computes for that participant, never its neighbour's.
    client, p = enter(eligible_answers)
    finish(client, quiz=QUIZ, survey=SURVEY)
    declared = participant_columns(trial_shape(live_trial), True)
    assert [c.column for c in declared] == dataset_columns(
        live_trial, "participants", identified=True
    )
    frame = dataset_frame(live_trial, "participants", identified=True)
    assert list(frame.columns) == [c.column.name for c in declared]
    row = frame.iloc[0]
    assert row["participant"] == p.public_code
    assert row["participant_id"] == p.pk
    assert row["survey_outside_help"] == "no"
    assert row["completed_trial"]


def test_session_moves_are_counted_by_event_type(live_trial, eligible_answers):
    _client, p = enter(eligible_answers)
    for i, name in enumerate([EventName.SESSION_RESUMED] * 2 + [EventName.SESSION_TAKEN_OVER]):
        Event.objects.create(participant=p, type=name, client_id=f"move{i}", origin="server")
    row = dataset_frame(live_trial, "participants").iloc[0]
    assert (row["session_resumes"], row["session_takeovers"]) == (2, 1)


def test_population_rules_are_pure():
    # The population rules must stay testable without a database: no Django, no project.
    tree = ast.parse(Path(population.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert not imported & {"django", "trials", "quizzes", "analysis", "pandas"}


START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_stage_time_is_censored_at_the_limit_unless_every_task_passed():
    passed = [START + timedelta(minutes=3), START + timedelta(minutes=5)]
    assert population.stage_time(START, None, 600, passed, START + timedelta(hours=1)) == (
        5.0,
        False,
    )
    late = START + timedelta(hours=1)
    assert population.stage_time(START, late, 600, [passed[0], None], late) == (10.0, True)
    # Still running and within its limit: no time yet, but censored.
    soon = START + timedelta(minutes=2)
    assert population.stage_time(START, None, 600, [None], soon) == (None, True)


def test_per_protocol_failures_follow_the_plan_order():
    failures = population.per_protocol_failures(
        ["no_noncompliance_flag", "completed_tasks", "passed_attention_check", "completed_quiz"],
        allocated=False,
        excluded_duplicate=True,
        completed_quiz=True,
        has_quiz_answers=True,
        attention_passed=None,
        stages_censored=[False, None],
        flags=["large_external_paste"],
    )
    assert failures == ["not_allocated", "duplicate", "no_noncompliance_flag", "completed_tasks"]
    assert not population.per_protocol_failures(
        ["passed_attention_check", "completed_tasks"],
        allocated=True,
        excluded_duplicate=False,
        completed_quiz=False,
        has_quiz_answers=True,
        attention_passed=True,
        stages_censored=[False],
        flags=[],
    )


def test_noncompliance_and_lost_reason():
    assert population.noncompliance_flags(
        used_assistant=True,
        arm_has_assistant=False,
        survey_answers={"outside_help": "yes"},
        large_external_pastes=1,
    ) == ["assistant_outside_arm", "reported_outside_help", "large_external_paste"]
    assert not population.noncompliance_flags(
        used_assistant=True, arm_has_assistant=True, survey_answers={}, large_external_pastes=0
    )
    lost = population.lost_reason
    assert lost(
        allocated=True, completed=False, withdrawn=True, furthest="quiz", at_last=False
    ) == ("withdrew at quiz")
    assert lost(allocated=True, completed=False, withdrawn=False, furthest=None, at_last=False) == (
        "did not finish (last stage: ?)"
    )
    assert (
        lost(allocated=True, completed=False, withdrawn=False, furthest="end", at_last=True) == ""
    )
    assert lost(allocated=False, completed=False, withdrawn=True, furthest="x", at_last=False) == ""
