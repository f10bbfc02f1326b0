from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.builders import ELIGIBLE
from tests.fakes.llm_server import llm_server  # noqa: F401 - a fixture for every test
from trials.definition import TrialDefinition, load_trial_dir
from trials.models import Participant, Trial
from trials.services import trial_import, trial_launch

SAMPLE_DIR = Path(settings.BASE_DIR) / "studies" / "trio-skill-formation"

ELIGIBLE_ANSWERS = ELIGIBLE  # one definition, in tests/builders.py


@pytest.fixture(autouse=True)
def _jobs_inline(settings: Any) -> None:
    """Jobs run in the test's own thread (after commit), where the test database is; the
    thread backend is tested on its own (tests/quizzes/test_quiz_flow.py)."""
    settings.JOBS_BACKEND = "inline"


@pytest.fixture
def sample_definition() -> TrialDefinition:
    return load_trial_dir(SAMPLE_DIR)


@pytest.fixture
def trial_dir(tmp_path: Path) -> Path:
    """A writable copy of the sample trial folder, for tests that change it."""
    target = tmp_path / "trial"
    shutil.copytree(SAMPLE_DIR, target)
    return target


@pytest.fixture
def live_trial(db: None, sample_definition: TrialDefinition) -> Trial:
    return trial_launch(trial=trial_import(definition=sample_definition).trial)


@pytest.fixture
def eligible_answers() -> dict[str, Any]:
    return dict(ELIGIBLE_ANSWERS)


def at_stage(participant: Participant) -> str | None:
    participant.refresh_from_db()
    return participant.current_stage.key if participant.current_stage else None
