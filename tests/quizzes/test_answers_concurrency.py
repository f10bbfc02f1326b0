"""Tabs of one participant saving quiz answers at the same moment, each in its own process with
its own PostgreSQL connection, all based on the same revision: exactly one save is stored, every
other is refused with 409 and the stored answers, so no tab's answer is silently replaced.

PostgreSQL only (SQLite serialises every writer, so there is no race to lose). Without the row
lock in ``answers_save_draft`` (``select_for_update`` made a no-op in every process by a
throwaway ``sitecustomize``), two saves of one round were both answered 200, the second
overwriting the first: the test failed in its second round."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from tests.builders import ELIGIBLE
from tests.processes import POSTGRES_ONLY, run_in_processes
from tests.trials.test_concurrency import SAMPLE_TRIAL, SLUG
from trials.definition import load_trial_dir
from trials.models import StageRecord, Trial
from trials.services import trial_import, trial_launch
from trials.services.answers import revision_of

pytestmark = POSTGRES_ONLY

TABS = 4
ROUNDS = 15


@pytest.fixture
def trial(transactional_db: None) -> Trial:
    return trial_launch(trial=trial_import(definition=load_trial_dir(SAMPLE_TRIAL)).trial)


def _save_worker(job: tuple[str, int], barrier: Any) -> list[tuple[int, Any, Any]]:
    """Round after round: every tab reads the current revision, then all save on it at once."""
    cookie, tab = job
    client = Client(raise_request_exception=False)
    client.cookies[f"stp_{SLUG}"] = cookie
    connections["default"].ensure_connection()
    outcomes = []
    for round_ in range(ROUNDS):
        barrier.wait()
        record = StageRecord.objects.get(stage__key="quiz", ended_at__isnull=True)
        revision = revision_of(record.draft_saved_at)
        answers = {"start_time": f"{round_}.{tab}"}
        barrier.wait()
        response = client.post(
            f"/t/{SLUG}/api/answers/",
            json.dumps({"stage": "quiz", "answers": answers, "revision": revision}),
            content_type="application/json",
        )
        outcomes.append((response.status_code, answers, response.json()))
    return outcomes


def test_racing_saves_on_one_revision_store_one_and_refuse_the_others(trial: Trial) -> None:
    client = Client()
    client.get(f"/t/{SLUG}/")
    client.post(f"/t/{SLUG}/s/consent/", {"agree": "on", "decision": "agree"})
    client.post(f"/t/{SLUG}/s/screening/", ELIGIBLE)
    client.post(f"/t/{SLUG}/s/warmup/", {})
    assert client.post(f"/t/{SLUG}/s/main_tasks/", {})["Location"] == f"/t/{SLUG}/s/quiz/"
    cookie = client.cookies[f"stp_{SLUG}"].value

    by_tab = run_in_processes(_save_worker, [(cookie, tab) for tab in range(TABS)])

    for round_ in range(ROUNDS):
        outcomes = [tab[round_] for tab in by_tab]
        assert Counter(status for status, _, _ in outcomes) == {200: 1, 409: TABS - 1}, round_
        winner = next(answers for status, answers, _ in outcomes if status == 200)
        for status, _, body in outcomes:
            if status == 409:
                assert body["error"] == "answers_changed" and body["answers"] == winner
    assert StageRecord.objects.get(stage__key="quiz").draft == winner
