"""The stage engine runs another app's stage type through trials.stage_kinds only: the hooks
registered for a type are what records its answers and lists its questions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from trials import stage_kinds
from trials.models import Arm, Participant, Stage, Trial
from trials.services import (
    participant_complete_stage,
    participant_consent,
    participant_enter,
    participant_screen,
    stage_questions,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def quiz_kind() -> Iterator[stage_kinds.StageKind | None]:
    # Whatever QuizzesConfig.ready() registered comes back after the test.
    registered = stage_kinds.stage_kind(Stage.Type.QUIZ)
    yield registered
    if registered is not None:
        stage_kinds.register_stage_kind(
            registered.type,
            record_responses=registered.record_responses,
            questions=registered.questions,
            staff_urls=registered.staff_urls,
        )


def _at_quiz(trial: Trial, answers: dict[str, Any]) -> Participant:
    participant = participant_enter(trial=trial, external_ids={"PROLIFIC_PID": "kinds"})
    participant = participant_consent(participant=participant, stage_key="consent", agreed=True)
    participant = participant_screen(
        participant=participant, stage_key="screening", answers=answers
    )
    for key in ("warmup", "main_tasks"):
        participant = participant_complete_stage(participant=participant, stage_key=key, answers={})
    return participant


def test_the_quizzes_app_registers_the_quiz_stage(quiz_kind):
    assert quiz_kind is not None
    assert quiz_kind.record_responses is not None and quiz_kind.questions is not None
    assert quiz_kind.staff_urls == "quizzes.manage_urls"


def test_the_engine_calls_the_registered_hooks(live_trial, eligible_answers, quiz_kind):
    recorded: list[tuple[str, str, dict[str, Any]]] = []

    def record(participant: Participant, stage: Stage, answers: dict[str, Any]) -> None:
        recorded.append((participant.pk, stage.key, answers))

    def questions(participant: Participant, stage: Stage) -> list[dict[str, Any]]:
        return [{"key": "from_the_hook", "stage": stage.key}]

    stage_kinds.register_stage_kind(Stage.Type.QUIZ, record_responses=record, questions=questions)
    participant = _at_quiz(live_trial, eligible_answers)
    assert stage_questions(participant, participant.current_stage) == [
        {"key": "from_the_hook", "stage": "quiz"}
    ]
    participant_complete_stage(participant=participant, stage_key="quiz", answers={"q1": "b"})
    assert recorded == [(participant.pk, "quiz", {"q1": "b"})]


def test_an_unregistered_stage_type_has_no_hooks(live_trial, eligible_answers, quiz_kind):
    stage_kinds.register_stage_kind(Stage.Type.QUIZ)
    participant = _at_quiz(live_trial, eligible_answers)
    assert stage_questions(participant, participant.current_stage) == []
    participant = participant_complete_stage(
        participant=participant, stage_key="quiz", answers={"q1": "b"}
    )
    assert participant.current_stage.key == "post_survey"


def test_the_arm_row_holds_the_assistant_settings_and_budget(live_trial):
    definition = {arm["key"]: arm for arm in live_trial.definition["arms"]}
    for arm in Arm.objects.filter(trial=live_trial):
        assert arm.settings == definition[arm.key].get("assistant", {})
        assert arm.budget == definition[arm.key].get("budget", {})
    assert any(arm.budget for arm in Arm.objects.filter(trial=live_trial))
