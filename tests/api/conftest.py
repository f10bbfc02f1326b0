"""Factories for the API tests: users with roles and tokens, and participants walked through
the real services (enter, consent, screen and allocate, stages), so every row the API serves
was made the way production makes it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from analysis import synthetic
from tests.builders import enroll
from trials.models import Event, Participant, Trial
from trials.roles import EXPERIMENTER, GRADER, STATISTICIAN
from trials.services import (
    participant_consent,
    participant_enter,
    participant_screen,
)
from trials.services.events import event_log

STAGES_AFTER_SCREENING = ("warmup", "main_tasks", "quiz", "post_survey")
_numbers = itertools.count(1)


def identifiers_permission() -> Permission:
    return Permission.objects.get(content_type__app_label="analysis", codename="export_identifiers")


def make_user(role: str | None, *, identifiers: bool = False) -> User:
    user = User.objects.create_user(f"user{next(_numbers)}", password="pw-12345-xyz")
    if role is not None:
        user.groups.add(Group.objects.get(name=role))
    if identifiers:
        user.user_permissions.add(identifiers_permission())
    return user


def token_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def statistician() -> APIClient:
    return token_client(make_user(STATISTICIAN))


@pytest.fixture
def experimenter() -> APIClient:
    return token_client(make_user(EXPERIMENTER))


@pytest.fixture
def grader() -> APIClient:
    return token_client(make_user(GRADER))


@pytest.fixture
def identifier_reader() -> APIClient:
    return token_client(make_user(STATISTICIAN, identifiers=True))


def client_event(participant: Participant, type_: str, **payload: Any) -> Event:
    event = event_log(participant, type_, stage=participant.current_stage, payload=payload)
    Event.objects.filter(pk=event.pk).update(origin="client", client_seq=event.pk)
    event.refresh_from_db()
    return event


@pytest.fixture
def populated(live_trial: Trial, eligible_answers: dict[str, Any]) -> dict[str, Any]:
    """The sample trial with participants in both arms: some finished, one mid-way, one
    declined, one screened out; plus a few browser events."""
    finished = [enroll(live_trial, eligible_answers, through=STAGES_AFTER_SCREENING)]
    while len({p.allocation.arm.key for p in finished}) < 2:
        finished.append(enroll(live_trial, eligible_answers, through=STAGES_AFTER_SCREENING))
    midway = enroll(live_trial, eligible_answers, through=("warmup",))
    declined = participant_consent(
        participant=participant_enter(trial=live_trial, external_ids={"PROLIFIC_PID": "PIDNO"}),
        stage_key="consent",
        agreed=False,
    )
    screened_out = participant_screen(
        participant=participant_consent(
            participant=participant_enter(trial=live_trial, external_ids={}),
            stage_key="consent",
            agreed=True,
        ),
        stage_key="screening",
        answers=eligible_answers | {"used_trio": "yes"},
    )
    client_event(midway, "paste", task="tasks/concurrent_greetings", length=42)
    client_event(midway, "focus", scope="assistant", task="tasks/concurrent_greetings")
    return {
        "trial": live_trial,
        "finished": finished,
        "midway": midway,
        "declined": declined,
        "screened_out": screened_out,
        "everyone": [*finished, midway, declined, screened_out],
    }


@pytest.fixture
def synthetic_trial(live_trial: Trial, eligible_answers: dict[str, Any]) -> Trial:
    """The sample trial with two dozen synthetic participants (analysis.synthetic, the
    project's generator for tests and benchmarks) and one real one."""
    synthetic.synthesize_trial(live_trial, participants=24, seed=7, events_per_participant=12)
    enroll(live_trial, eligible_answers, through=STAGES_AFTER_SCREENING)
    return live_trial


def get_all(client: APIClient, url: str, **params: Any) -> list[dict[str, Any]]:
    """Every row of a cursor-paginated endpoint, following `next`."""
    rows: list[dict[str, Any]] = []
    response = client.get(url, params)
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        rows.extend(body["results"])
        if not body["next"]:
            return rows
        response = client.get(body["next"])
