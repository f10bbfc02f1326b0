"""The saved answers of a question page (screening, quiz, post-survey): their one format, the
autosave that never lets an outdated tab overwrite newer answers, and what the page shows.

The draft format is the same one the page's script sends and the form's initial values take:
``{key: "text"}`` for one-line, long-text and single-choice answers, ``{key: ["a", "c"]}`` for
multiple choice, ``{"<key>__idk": True}`` when "I don't know" is ticked beside a typed answer.
An empty answer is absent, never ``""``, ``[]`` or ``False`` — so nothing the participant did
not choose can come back ticked after a reload.

Every save moves the draft to a new *revision* (the time it was saved, in microseconds, kept
strictly increasing). A tab sends the revision it last saw; a save or a submit based on an older
revision is refused (``AnswersChanged``, HTTP 409) with the newer answers, so the tab can show
them instead of silently replacing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from trials.definition import question_choices
from trials.models import Participant, Stage, StageRecord
from trials.services import StageConflict, TrialError, participant_sync_clock, stage_questions

IDK_SUFFIX = "__idk"
TEXT_LIMITS = {"numeric": 50, "number": 50, "long_text": 10_000, "free_text": 10_000}
CODE_TYPES = ("predict_output", "code_writing")
SHORT_LIMIT = 500
LIST_LIMIT = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICKED = (True, "on", "true", "1")


class AnswersChanged(Exception):
    """The answers were saved from another tab (or window) since this one last saw them."""

    def __init__(self, answers: dict[str, Any], revision: str) -> None:
        super().__init__("these answers were changed in another tab or window")
        self.answers = answers
        self.revision = revision


@dataclass(frozen=True)
class SavedAnswers:
    answers: dict[str, Any]
    revision: str


# --- the draft format (pure) ------------------------------------------------------------------


def _text_limit(qtype: str) -> int:
    if qtype in CODE_TYPES:
        return 10_000
    return TEXT_LIMITS.get(qtype, SHORT_LIMIT)


def draft_clean(questions: list[dict[str, Any]], answers: dict[str, Any]) -> dict[str, Any]:
    """The answers in the draft format: only the questions' keys, only offered choices, only
    non-empty answers, "I don't know" only when explicitly ``True``/``"on"``. Text is kept
    exactly as typed (spaces, blank lines), within the form's length limits."""
    out: dict[str, Any] = {}
    for question in questions:
        key, qtype = question["key"], question["type"]
        value = answers.get(key)
        offered = [c["value"] for c in question_choices(question)]
        if qtype == "multi_choice":
            if isinstance(value, list) and len(value) <= LIST_LIMIT:
                picked = [v for v in offered if v in value]
                if picked:
                    out[key] = picked
        elif offered:
            if isinstance(value, str) and value in offered:
                out[key] = value
        elif (
            isinstance(value, str) and 0 < len(value) <= _text_limit(qtype) and "\x00" not in value
        ):
            # A posted form sends line breaks as CRLF, the page's script as LF (as the field
            # holds them): one format, so the same answer is the same draft.
            out[key] = value.replace("\r\n", "\n").replace("\r", "\n")
        if question.get("idk") and not offered and answers.get(key + IDK_SUFFIX) in _TICKED:
            out[key + IDK_SUFFIX] = True
    return out


def answer_state(question: dict[str, Any], answers: dict[str, Any]) -> str:
    """``"answered"``, ``"idk"`` or ``"unanswered"``, for the review screen and the progress."""
    key = question["key"]
    value = answers.get(key)
    if answers.get(key + IDK_SUFFIX) is True or value == "idk" or value == ["idk"]:
        return "idk"
    return "answered" if value not in (None, "", []) else "unanswered"


def revision_of(saved_at: datetime | None) -> str:
    if saved_at is None:
        return "0"
    return str((saved_at - _EPOCH) // timedelta(microseconds=1))


# --- reads and writes ---------------------------------------------------------------------------


def _open_record(participant: Participant, stage: Stage) -> StageRecord | None:
    return StageRecord.objects.filter(
        participant=participant, stage=stage, ended_at__isnull=True
    ).first()


def stage_answers(
    *, participant: Participant, stage: Stage, questions: list[dict[str, Any]]
) -> SavedAnswers:
    """The saved answers of the participant's open stage (cleaned: drafts saved before the
    format was fixed may hold ``[]`` for an unticked box) and their revision."""
    record = _open_record(participant, stage)
    if record is None:
        return SavedAnswers({}, "0")
    return SavedAnswers(
        draft_clean(questions, dict(record.draft)), revision_of(record.draft_saved_at)
    )


def answers_save_draft(
    *,
    participant: Participant,
    stage: Stage,
    questions: list[dict[str, Any]],
    answers: dict[str, Any],
    base_revision: str | None,
) -> str:
    """Store the answers of the participant's current question stage; returns the new revision.

    ``base_revision`` is the revision the tab last saw; if the saved answers have moved on since,
    nothing is stored and ``AnswersChanged`` carries the newer ones. ``None`` (a client that
    does not say) skips that check. The stage record is locked while it is compared and
    written, so of two tabs saving at once exactly one wins and the other is told.
    Raises StageConflict when the stage is over."""
    draft = draft_clean(questions, answers)
    with transaction.atomic():
        record = (
            StageRecord.objects.select_for_update()
            .filter(participant=participant, stage=stage, ended_at__isnull=True)
            .first()
        )
        if record is None:
            raise StageConflict("this step is over")
        current = revision_of(record.draft_saved_at)
        if base_revision is not None and base_revision != current:
            raise AnswersChanged(draft_clean(questions, dict(record.draft)), current)
        if draft == record.draft and record.draft_saved_at is not None:
            return current  # nothing new: another tab showing these answers stays current
        saved_at = timezone.now()
        if record.draft_saved_at is not None and saved_at <= record.draft_saved_at:
            # Two saves within one clock tick must still be two revisions.
            saved_at = record.draft_saved_at + timedelta(microseconds=1)
        record.draft, record.draft_saved_at = draft, saved_at
        record.save(update_fields=["draft", "draft_saved_at"])
    return revision_of(saved_at)


def answers_autosave(
    *, participant: Participant, stage_key: str, answers: dict[str, Any], base_revision: str | None
) -> str:
    """The page's autosave: the current question stage's answers (see ``answers_save_draft``).
    Nothing is stored once the stage is over (StageConflict), its deadline included."""
    participant = participant_sync_clock(participant=participant)
    stage = participant.current_stage
    if stage is None or stage.key != stage_key:
        raise StageConflict("this step is not the current one")
    questions = stage_questions(participant, stage)
    if not questions:
        raise TrialError(f"stage '{stage_key}' has no questions to save")
    return answers_save_draft(
        participant=participant,
        stage=stage,
        questions=questions,
        answers=answers,
        base_revision=base_revision,
    )
