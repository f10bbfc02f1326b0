"""A registry of stage kinds: how another app plugs the runtime of a stage type into trials.

trials runs the stage engine but knows nothing of what a quiz is; the quizzes app registers
the quiz stage's hooks here from ``QuizzesConfig.ready()`` (``register_stage_kind("quiz",
...)``), so trials never imports quizzes. A stage type nobody registered has no hooks: its
answers are kept on the stage record only and it lists no questions of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: this module is imported while the apps load
    from trials.models import Participant, Stage

RecordResponses = Callable[["Participant", "Stage", dict[str, Any]], None]
StageQuestions = Callable[["Participant", "Stage"], list[dict[str, Any]]]


@dataclass(frozen=True)
class StageKind:
    """The hooks of one stage type. ``record_responses`` runs inside the transaction that
    closes the stage (with the final answers, or the last autosave when time ran out);
    ``questions`` lists the questions the stage shows this participant; ``staff_urls`` names a
    URLconf module (dotted path, imported by Django's ``include``, so trials never imports
    it) whose pages join the staff dashboard's ``manage:`` namespace."""

    type: str
    record_responses: RecordResponses | None = None
    questions: StageQuestions | None = None
    staff_urls: str | None = None


_KINDS: dict[str, StageKind] = {}


def register_stage_kind(
    type: str,
    *,
    record_responses: RecordResponses | None = None,
    questions: StageQuestions | None = None,
    staff_urls: str | None = None,
) -> StageKind:
    """Register (or replace: ``ready()`` may run twice in tests) the hooks of ``type``."""
    # Keyed by the plain string: stage rows carry the type as stored, not as an enum member.
    kind = StageKind(str(type), record_responses, questions, staff_urls)
    _KINDS[kind.type] = kind
    return kind


def stage_kind(type: str) -> StageKind | None:
    return _KINDS.get(str(type))


def staff_url_modules() -> list[str]:
    """Every registered stage kind's staff URLconf module, in registration order."""
    return [kind.staff_urls for kind in _KINDS.values() if kind.staff_urls]
