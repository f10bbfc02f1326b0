from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from trials.models import Participant
from trials.replay import Mark, ReplayError, apply_changes, build_replay
from trials.roles import EXPERIMENTER

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


# Within the Basic Multilingual Plane a Python character is one UTF-16 code unit, so the
# expected result can be computed with plain string slicing.
BMP = st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"])


@st.composite
def edit_session(draw):
    """A starting text and a list of transactions, each a list of non-overlapping changes
    expressed, as CodeMirror does, in the coordinates of the text before the transaction."""
    text = draw(st.text(BMP, max_size=30))
    start = text
    transactions = []
    for _ in range(draw(st.integers(0, 12))):
        cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=4)))
        changes = []
        for a, b in zip(cuts[::2], cuts[1::2], strict=False):
            changes.append([a, b, draw(st.text(BMP, max_size=5))])
        if not changes:
            pos = draw(st.integers(0, len(text)))
            changes = [[pos, pos, draw(st.text(BMP, min_size=1, max_size=5))]]
        # the expected result, computed independently: rebuild left to right
        out, last = [], 0
        for a, b, ins in changes:
            out.append(text[last:a])
            out.append(ins)
            last = b
        out.append(text[last:])
        text = "".join(out)
        transactions.append(changes)
    return start, transactions, text


@given(edit_session())
def test_replaying_every_edit_rebuilds_the_text_exactly(session):
    start, transactions, expected = session
    text = start
    for changes in transactions:
        text = apply_changes(text, changes)
    assert text == expected


def test_a_change_outside_the_text_is_an_error():
    with pytest.raises(ReplayError):
        apply_changes("abc", [[2, 9, "x"]])


def test_build_replay_follows_edits_and_counts_resyncs():
    marks = [
        Mark(T0 + timedelta(seconds=2), "t", "edit", "edit", changes=[[5, 5, "!"]]),
        Mark(T0 + timedelta(seconds=1), "t", "edit", "edit", changes=[[0, 0, "hello"]]),
        Mark(T0 + timedelta(seconds=3), "t", "snapshot", "snapshot", text="hello!"),
        Mark(T0 + timedelta(seconds=4), "t", "run", "run: ok"),
        Mark(T0 + timedelta(seconds=5), "t", "snapshot", "snapshot", text="something else"),
    ]
    replay = build_replay({"t": ""}, marks)
    assert [f.code for f in replay.frames] == [
        "hello",
        "hello!",
        "hello!",
        "hello!",
        "something else",
    ]
    assert replay.resyncs == 1
    assert replay.errors == 0


@pytest.mark.django_db
def test_replay_page_shows_the_code_history_runs_and_pastes(client, live_trial, eligible_answers):
    browser = Client()
    browser.get("/t/trio-skill-formation/")
    browser.post("/t/trio-skill-formation/s/consent/", {"decision": "agree", "agree": "on"})
    browser.post("/t/trio-skill-formation/s/screening/", eligible_answers)
    starter_len = len(live_trial.files["tasks/warmup/starter.py"])
    events = [
        {
            "id": "a",
            "seq": 1,
            "type": "edit",
            "client_time": "2026-11-27T10:00:01Z",
            "stage": "warmup",
            "payload": {
                "task": "tasks/warmup",
                "changes": [[starter_len, starter_len, "\n# mine\n"]],
            },
        },
        {
            "id": "b",
            "seq": 2,
            "type": "paste",
            "client_time": "2026-11-27T10:00:02Z",
            "stage": "warmup",
            "payload": {"task": "tasks/warmup", "length": 7, "sha256": "0" * 64},
        },
    ]
    response = browser.post(
        "/t/trio-skill-formation/api/events/",
        json.dumps({"events": events}),
        content_type="application/json",
    )
    assert response.status_code == 200
    browser.post(
        "/t/trio-skill-formation/api/run/",
        json.dumps({"stage": "warmup", "task": "tasks/warmup", "code": "print(2)"}),
        content_type="application/json",
    )
    code = Participant.objects.get().public_code
    url = f"/manage/trials/trio-skill-formation/v1/p/{code}/"
    assert client.get(url).status_code == 302  # login first
    user = User.objects.create_user("exp", password="pw-12345-xyz")
    user.groups.add(Group.objects.get(name=EXPERIMENTER))
    client.login(username="exp", password="pw-12345-xyz")
    page = client.get(url)
    assert page.status_code == 200
    frames = page.context["frames"]
    assert any(f["kind"] == "edit" and f["code"].endswith("# mine\n") for f in frames)
    assert any(f["kind"] == "paste" for f in frames)
    assert any(f["kind"] == "run" and "run: ok" in f["label"] for f in frames)
    assert b"replay-frames" in page.content
    assert client.get("/manage/trials/trio-skill-formation/v1/p/NOPE/").status_code == 404


def test_positions_count_utf16_code_units_like_the_editor():
    # "😀" is one Python character but two UTF-16 code units in the browser.
    assert apply_changes("a😀b", [[3, 3, "!"]]) == "a😀!b"
    assert apply_changes("😀😀", [[2, 4, "x"]]) == "😀x"
    with pytest.raises(ReplayError):
        apply_changes("😀", [[1, 1, "x"]])  # would split the emoji
