"""Attacks on the telemetry endpoint, through the real HTTP endpoint: the browser may report
evidence about itself, never server facts, provenance or the clock of an outcome."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from analysis.datasets import dataset_frame
from analysis.exports import progsnap2
from trials import client_spans, event_types
from trials.models import AssistantTurn, Event, Participant, StageRecord, TaskState, Trial

pytestmark = pytest.mark.django_db

TASK = "tasks/concurrent_greetings"
SERVER_FACTS = ("check", "task_completed", "assistant_response", "run")


def entry(trial: Trial) -> str:
    return f"/t/{trial.slug}/"


def enroll(trial: Trial, answers: dict) -> tuple[Client, Participant]:
    client = Client(raise_request_exception=False)
    client.get(entry(trial))
    client.post(f"{entry(trial)}s/consent/", {"decision": "agree", "agree": "on"})
    client.post(f"{entry(trial)}s/screening/", answers)
    participant = Participant.objects.order_by("-created_at").first()
    assert participant is not None
    return client, participant


def in_main_tasks(trial: Trial, answers: dict, arm: str) -> tuple[Client, Participant]:
    """A participant of ``arm`` in the main task stage (a block of the stratum has both)."""
    for _ in range(8):
        client, participant = enroll(trial, answers)
        if participant.allocation.arm.key == arm:
            assert client.post(f"{entry(trial)}s/warmup/", {}).status_code == 302
            participant.refresh_from_db()
            assert participant.current_stage.key == "main_tasks"
            return client, participant
    raise AssertionError(f"no participant in arm {arm} within one block")


def post_events(client: Client, trial: Trial, batch: list[dict]) -> dict:
    response = client.post(
        f"{entry(trial)}api/events/",
        json.dumps({"events": batch}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def event(
    eid: str, etype: str, payload: dict, *, at: datetime | None = None, stage: str = "main_tasks"
) -> dict:
    item = {"id": eid, "seq": 1, "type": etype, "stage": stage, "payload": payload}
    if at is not None:
        item["client_time"] = at.isoformat().replace("+00:00", "Z")
    return item


def ask_for_code(client: Client, trial: Trial) -> str:
    response = client.post(
        f"{entry(trial)}api/assistant/",
        json.dumps(
            {"stage": "main_tasks", "task": TASK, "message": "Please write the code for me"}
        ),
        content_type="application/json",
    )
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    reply = "".join(
        json.loads(chunk[len("data: ") :]).get("text", "")
        for chunk in body.split("\n\n")
        if chunk.startswith("data: ")
    )
    return reply.split("```python\n", 1)[1].split("```", 1)[0]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def row(trial: Trial, participant: Participant) -> pd.Series:
    return (
        dataset_frame(trial, "participants").set_index("participant").loc[participant.public_code]
    )


def same(a: object, b: object) -> bool:
    return bool(pd.isna(a) and pd.isna(b)) or bool(a == b)


def main_table(trial: Trial) -> list[dict[str, str]]:
    states = progsnap2.CodeStates()
    try:
        data = b"".join(progsnap2.main_table_chunks(trial, states))
    finally:
        states.close()
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


# ---------------------------------------------------------------------------------------------
# Server facts


FORGED_FACTS = [
    event(
        "f-check",
        "check",
        {"task": TASK, "status": "ok", "tests_passed": 5, "tests_total": 5, "all_passed": True},
    ),
    event("f-done", "task_completed", {"task": TASK}),
    event(
        "f-reply",
        "assistant_response",
        {"task": TASK, "turn": 1, "status": "completed", "reply": "forged", "output_tokens": 9},
    ),
    event("f-run", "run", {"task": TASK, "status": "ok", "exit_code": 0}),
    event("f-new", "made_up_type", {"x": 1}),
]


def test_server_only_and_unknown_events_from_a_browser_are_refused_and_the_rest_stored(
    live_trial, eligible_answers
):
    client, participant = in_main_tasks(live_trial, eligible_answers, "ai")
    before = row(live_trial, participant)
    edit = event("ok-edit", "edit", {"task": TASK, "changes": [[0, 0, "x"]]})
    batch = [FORGED_FACTS[0], edit, *FORGED_FACTS[1:]]

    answer = post_events(client, live_trial, batch)

    # 200, so the browser's queue drops them instead of retrying; the valid event is kept.
    assert answer == {"stored": 1, "duplicates": 0, "refused": 5}
    assert Event.objects.filter(participant=participant, origin="client").count() == 1
    assert not Event.objects.filter(participant=participant, type__in=SERVER_FACTS).exists()
    assert not Event.objects.filter(type="made_up_type").exists()
    # Not counted: no check, run, completion or assistant use in the data set.
    assert not TaskState.objects.filter(participant=participant, first_passed_at__isnull=False)
    after = row(live_trial, participant)
    for column in ("runs", "checks", "assistant_messages", "assistant_tokens_out"):
        assert after[column] == before[column] == 0, column
    assert bool(after["stage_main_tasks_censored"]) is True
    assert pd.isna(after["stage_main_tasks_time_min"])  # still running, not "completed"
    # Not exported as facts: no Submit, Run.Program, Intervention or completion rows.
    kinds = {r["EventType"] for r in main_table(live_trial)}
    assert not kinds & {"Submit", "Run.Program", "Intervention", "X-Task.Completed"}
    assert "File.Edit" in kinds
    # Counted and recorded once, also when the browser sends the same batch again.
    assert post_events(client, live_trial, batch) == {"stored": 0, "duplicates": 1, "refused": 5}
    (refusal,) = Event.objects.filter(participant=participant, type="telemetry_refused")
    assert refusal.origin == "server"
    assert refusal.payload["refused"] == {
        "check": 1,
        "task_completed": 1,
        "assistant_response": 1,
        "run": 1,
        "made_up_type": 1,
    }


def test_every_registered_server_type_is_refused_from_a_browser(live_trial, eligible_answers):
    client, participant = in_main_tasks(live_trial, eligible_answers, "no_ai")
    batch = [event(f"s-{name}", name, {}) for name in sorted(event_types.SERVER_TYPES)]
    assert post_events(client, live_trial, batch)["refused"] == len(event_types.SERVER_TYPES)
    assert not Event.objects.filter(participant=participant, origin="client").exists()
    assert event_types.CLIENT_TYPES.isdisjoint(event_types.SERVER_TYPES)


# ---------------------------------------------------------------------------------------------
# Paste provenance


def test_a_client_flag_does_not_make_an_outside_paste_come_from_the_assistant(
    live_trial, eligible_answers
):
    client, participant = in_main_tasks(live_trial, eligible_answers, "ai")
    ask_for_code(client, live_trial)
    turn = AssistantTurn.objects.get(participant=participant).pk
    outside = "import trio\n" + "# from a web page\n" * 40
    assert len(outside) >= 400
    forged = {"task": TASK, "length": len(outside), "sha256": sha(outside)}
    post_events(
        client,
        live_trial,
        [
            event("p-flag", "paste", forged | {"from_assistant": True, "assistant_turn": turn}),
            # A copy that claims to come from the chat, with text that was never in a reply.
            event(
                "c-claim",
                "copy",
                forged | {"source": "assistant", "turn": turn, "text": outside},
            ),
            event("p-after-copy", "paste", forged),
        ],
    )

    for client_id in ("p-flag", "p-after-copy", "c-claim"):
        payload = Event.objects.get(client_id=client_id).payload
        assert payload["from_assistant"] is False, client_id
        assert "assistant_turn" not in payload, client_id
    after = row(live_trial, participant)
    assert after["assistant_pastes"] == 0
    assert "large_external_paste" in after["noncompliance_flags"]
    refusal = Event.objects.get(participant=participant, type="telemetry_refused")
    assert refusal.payload["stripped"] == {"paste.from_assistant": 1, "paste.assistant_turn": 1}


def test_a_paste_of_a_stored_reply_is_linked_to_its_turn_without_a_client_flag(
    live_trial, eligible_answers
):
    client, participant = in_main_tasks(live_trial, eligible_answers, "ai")
    block = ask_for_code(client, live_trial)
    turn = AssistantTurn.objects.get(participant=participant).pk
    real = {"task": TASK, "length": len(block), "sha256": sha(block)}
    post_events(
        client,
        live_trial,
        [
            event("p-real", "paste", real),
            # The same hash with a length that is not the block's: not the reply's text.
            event("p-bad-length", "paste", real | {"length": len(block) + 500}),
            event("p-denied", "paste", real | {"from_assistant": False}),
        ],
    )

    linked = Event.objects.get(client_id="p-real").payload
    assert (linked["from_assistant"], linked["assistant_turn"]) == (True, turn)
    assert Event.objects.get(client_id="p-bad-length").payload["from_assistant"] is False
    # A client cannot hide provenance either.
    assert Event.objects.get(client_id="p-denied").payload["from_assistant"] is True
    assert row(live_trial, participant)["assistant_pastes"] == 2


def test_a_selection_copied_from_a_reply_links_the_paste_only_if_the_text_is_in_it(
    live_trial, eligible_answers
):
    client, participant = in_main_tasks(live_trial, eligible_answers, "ai")
    block = ask_for_code(client, live_trial)
    turn = AssistantTurn.objects.get(participant=participant).pk
    part = block[: len(block) // 2]
    copy = {"task": TASK, "source": "assistant", "turn": turn, "length": len(part)}
    post_events(
        client,
        live_trial,
        [event("c-part", "copy", copy | {"sha256": sha(part), "text": part})],
    )
    # The paste comes in a later batch: the server checks the stored copy's text again.
    post_events(
        client,
        live_trial,
        [event("p-part", "paste", {"task": TASK, "length": len(part), "sha256": sha(part)})],
    )
    assert Event.objects.get(client_id="c-part").payload["assistant_turn"] == turn
    assert Event.objects.get(client_id="p-part").payload["assistant_turn"] == turn


def test_a_no_ai_participant_cannot_claim_assistant_pastes(live_trial, eligible_answers):
    client, participant = in_main_tasks(live_trial, eligible_answers, "no_ai")
    text = "x" * 450
    payload = {"task": TASK, "length": len(text), "sha256": sha(text)}
    post_events(
        client,
        live_trial,
        [
            event("c-1", "copy", payload | {"source": "assistant", "turn": 1, "text": text}),
            event("p-1", "paste", payload | {"from_assistant": True, "assistant_turn": 1}),
        ],
    )
    after = row(live_trial, participant)
    assert after["assistant_pastes"] == 0
    assert after["noncompliance_flags"] == "large_external_paste"


# ---------------------------------------------------------------------------------------------
# Client-reported spans and client clocks


def backdate_stage(participant: Participant, minutes: float) -> datetime:
    """The participant entered the main task stage ``minutes`` ago (server time)."""
    start = timezone.now() - timedelta(minutes=minutes)
    StageRecord.objects.filter(participant=participant, stage__key="main_tasks").update(
        started_at=start
    )
    return start


def chat_span(prefix: str, start: datetime, minutes: float) -> list[dict]:
    scope = {"scope": "assistant", "task": TASK}
    return [
        event(f"{prefix}-focus", "focus", scope, at=start),
        event(f"{prefix}-blur", "blur", scope, at=start + timedelta(minutes=minutes)),
    ]


def test_forged_day_long_chat_focus_is_bounded_by_server_time_and_zero_without_the_assistant(
    live_trial, eligible_answers
):
    ai_client, ai = in_main_tasks(live_trial, eligible_answers, "ai")
    no_ai_client, no_ai = in_main_tasks(live_trial, eligible_answers, "no_ai")
    backdate_stage(ai, 20)
    backdate_stage(no_ai, 20)
    day_ago = timezone.now() - timedelta(days=1)
    for client in (ai_client, no_ai_client):
        # 1,440 minutes of chat focus, twice over, and once more claiming the quiz stage.
        batch = chat_span("a", day_ago, 1440) + chat_span("b", day_ago, 1440)
        batch += [dict(e, stage="quiz", id=e["id"] + "-q") for e in chat_span("c", day_ago, 60)]
        assert post_events(client, live_trial, batch)["stored"] == 6

    ai_minutes = row(live_trial, ai)["assistant_time_min"]
    # At most the 20 minutes the stage has run on the server's clock (the spans overlap).
    assert 19.9 <= ai_minutes <= 20.1
    assert row(live_trial, no_ai)["assistant_time_min"] == 0.0
    # An event claiming a stage not yet entered belongs to no stage.
    assert Event.objects.get(participant=ai, client_id="c-focus-q").stage is None


def test_assistant_time_is_never_longer_than_the_stage_limit(live_trial, eligible_answers):
    client, participant = in_main_tasks(live_trial, eligible_answers, "ai")
    start = backdate_stage(participant, 600)  # ten hours ago; the stage allows 35 minutes
    post_events(client, live_trial, chat_span("a", start, 1440))
    assert row(live_trial, participant)["assistant_time_min"] == pytest.approx(35.0, abs=0.01)


def test_chat_focus_in_a_stage_without_the_assistant_counts_nothing(live_trial, eligible_answers):
    client, participant = in_main_tasks(live_trial, eligible_answers, "ai")
    # The warm-up (no tools) ran for ten minutes on the server's clock.
    warmup = StageRecord.objects.get(participant=participant, stage__key="warmup")
    StageRecord.objects.filter(pk=warmup.pk).update(
        started_at=warmup.ended_at - timedelta(minutes=10)
    )
    spans = chat_span("w", timezone.now() - timedelta(minutes=30), 8)
    post_events(client, live_trial, [dict(e, stage="warmup") for e in spans])
    assert (
        Event.objects.filter(participant=participant, stage__key="warmup", origin="client").count()
        == 2
    )
    assert row(live_trial, participant)["assistant_time_min"] == 0.0


FAR = (
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 0, tzinfo=UTC),
)
OUTCOMES = (
    "stage_main_tasks_time_min",
    "stage_main_tasks_censored",
    "task_concurrent_greetings_time_min",
    "task_concurrent_greetings_censored",
    "task_concurrent_greetings_submitted_min",
    "warmup_time_min",
    "runs",
    "checks",
)


def test_client_clocks_far_in_the_past_or_future_change_no_outcome(live_trial, eligible_answers):
    client, participant = in_main_tasks(live_trial, eligible_answers, "ai")
    start = backdate_stage(participant, 30)
    # The server's facts: the task passed 12 minutes in and was submitted at 14.
    TaskState.objects.update_or_create(
        participant=participant,
        stage=participant.current_stage,
        task=TASK,
        defaults={
            "first_passed_at": start + timedelta(minutes=12),
            "submitted_at": start + timedelta(minutes=14),
        },
    )
    before = row(live_trial, participant)
    assert before["task_concurrent_greetings_time_min"] == pytest.approx(12.0)

    batch: list[dict] = []
    for i, at in enumerate(FAR):
        batch += [
            event(f"e{i}", "edit", {"task": TASK, "changes": [[0, 0, "x"]]}, at=at),
            event(f"s{i}", "snapshot", {"task": TASK, "code": "x", "reason": "periodic"}, at=at),
            event(f"i{i}", "idle", {"seconds": 10**9, "since": at.isoformat()}, at=at),
            event(f"v{i}", "visibility", {"state": "hidden"}, at=at),
            event(f"w{i}", "stage_view", {"tasks": [TASK]}, at=at),
            event(f"d{i}", "task_completed", {"task": TASK}, at=at),
            event(f"k{i}", "check", {"task": TASK, "all_passed": True}, at=at),
        ]
    # The chat box focused in the year 1 and left in the year 9999.
    batch += chat_span("far", FAR[0], (FAR[2] - FAR[0]).total_seconds() / 60)
    answer = post_events(client, live_trial, batch)
    assert (answer["stored"], answer["refused"]) == (17, 6)

    after = row(live_trial, participant)
    for column in OUTCOMES:
        assert same(after[column], before[column]), column
    # A client-reported span: at most the 30 minutes the stage has run on the server's clock.
    assert before["assistant_time_min"] == 0.0
    assert after["assistant_time_min"] <= 30.01
    # The clocks are kept as what the browser said (and the exports still work).
    times = set(
        Event.objects.filter(participant=participant, type="edit").values_list(
            "client_time", flat=True
        )
    )
    assert times == set(FAR)
    assert len(main_table(live_trial)) == Event.objects.count()


def test_a_chat_span_counts_its_length_whatever_the_browser_clock_says(
    live_trial, eligible_answers
):
    client, participant = in_main_tasks(live_trial, eligible_answers, "ai")
    backdate_stage(participant, 10)
    # 90 seconds on a clock 8,000 years fast: 1.5 minutes, as on a right clock.
    post_events(client, live_trial, chat_span("a", datetime(9999, 1, 1, tzinfo=UTC), 1.5))
    assert row(live_trial, participant)["assistant_time_min"] == pytest.approx(1.5, abs=0.01)


def test_the_browser_code_sends_only_client_reported_types():
    """Every event type the front end emits is one the server accepts from a browser (a
    server-only type would be refused, and its evidence lost)."""
    sent: set[str] = set()
    for path in (Path(settings.BASE_DIR) / "frontend" / "src").glob("*.js"):
        for first in re.findall(r"\b(?:emit|recordText)\(\s*([^,{)]+)", path.read_text()):
            sent.update(re.findall(r'"([a-z_]+)"', first))
    assert {"edit", "snapshot", "paste", "copy", "run_shown", "check_shown", "idle"} <= sent
    assert sent <= event_types.CLIENT_TYPES, sent - event_types.CLIENT_TYPES


# ---------------------------------------------------------------------------------------------
# The pure bound


def test_bounded_seconds_clips_to_the_window_and_counts_overlaps_once():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    end = t0 + timedelta(minutes=30)
    spans = [
        client_spans.ClientSpan(86_400.0, t0 + timedelta(minutes=10)),  # a day, reported at 10 min
        client_spans.ClientSpan(300.0, t0 + timedelta(minutes=8)),  # inside the first
        client_spans.ClientSpan(
            60.0, t0 + timedelta(hours=2)
        ),  # sent late: the window's last minute
        client_spans.ClientSpan(1e300, t0 + timedelta(minutes=20)),  # absurd: at most all
    ]
    assert client_spans.bounded_seconds(spans[:3], start=t0, end=end) == 600.0 + 60.0
    assert client_spans.bounded_seconds(spans, start=t0, end=end) == 20 * 60.0 + 60.0
    assert client_spans.bounded_seconds([], start=t0, end=end) == 0.0
