"""The population rules of the participants data set, pure (no Django): times and censoring,
non-compliance, the per-protocol rules and why an allocated participant was lost.

The intention-to-treat population is everyone allocated, analysed as allocated, except the
duplicates the plan excludes; per protocol adds the plan's ``[analysis.populations]
per_protocol`` rules (:data:`PER_PROTOCOL_RULES`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

# A paste of at least this many characters that did not come from the study's own assistant
# is flagged as possible outside help (the reference study's reason to look at recordings).
LARGE_PASTE_CHARS = 400
# Survey questions whose "yes" is a self-report of outside help.
OUTSIDE_HELP_QUESTIONS = ("outside_help",)
ERROR_STATUSES = ("error", "timeout")
# Stage end reasons that count as having completed a quiz.
QUIZ_DONE = ("completed", "timed_out")
PER_PROTOCOL_RULES = (
    "completed_quiz",
    "passed_attention_check",
    "completed_tasks",
    "no_noncompliance_flag",
    "not_allocated",
    "duplicate",
)


def join(values: Iterable[str]) -> str:
    return "; ".join(values)


def minutes(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0) / 60.0


def stage_time(
    started: datetime,
    ended: datetime | None,
    limit: int | None,
    passed: Sequence[datetime | None],
    now: datetime,
) -> tuple[float | None, bool]:
    """(minutes, censored) for a stage or a task, from its start and first passes."""
    if passed and all(p is not None for p in passed):
        return minutes(started, max(p for p in passed if p is not None)), False
    stop = ended
    if limit:
        cap = started + timedelta(seconds=limit)
        stop = cap if stop is None else min(stop, cap)
        if stop > now:
            stop = None  # still running: no time yet
    return minutes(started, stop), True


def noncompliance_flags(
    *,
    used_assistant: bool,
    arm_has_assistant: bool,
    survey_answers: dict[str, object],
    large_external_pastes: int,
) -> list[str]:
    flags = []
    if used_assistant and not arm_has_assistant:
        flags.append("assistant_outside_arm")
    if any(survey_answers.get(k) == "yes" for k in OUTSIDE_HELP_QUESTIONS):
        flags.append("reported_outside_help")
    if large_external_pastes:
        flags.append("large_external_paste")
    return flags


def per_protocol_failures(
    rules: Iterable[str],
    *,
    allocated: bool,
    excluded_duplicate: bool,
    completed_quiz: bool,
    has_quiz_answers: bool,
    attention_passed: bool | None,
    stages_censored: Iterable[bool | None],
    flags: Sequence[str],
) -> list[str]:
    """The per-protocol rules the participant fails, in the plan's order after the fixed
    ones (``not_allocated``, ``duplicate``)."""
    failed = []
    if not allocated:
        failed.append("not_allocated")
    if excluded_duplicate:
        failed.append("duplicate")
    censored = list(stages_censored)
    for rule in rules:
        ok = True
        if rule == "completed_quiz":
            ok = completed_quiz
        elif rule == "passed_attention_check":
            ok = attention_passed is not False and has_quiz_answers
        elif rule == "completed_tasks":
            ok = all(c is False for c in censored)
        elif rule == "no_noncompliance_flag":
            ok = not flags
        if not ok:
            failed.append(rule)
    return failed


def lost_reason(
    *, allocated: bool, completed: bool, withdrawn: bool, furthest: str | None, at_last: bool
) -> str:
    """Why an allocated participant did not finish (empty if finished or not allocated);
    ``furthest`` is the latest stage entered, ``at_last`` whether that is the last stage."""
    if not allocated or completed:
        return ""
    where = furthest if furthest is not None else "?"
    if withdrawn:
        return f"withdrew at {where}"
    if furthest is not None and at_last:
        return ""
    return f"did not finish (last stage: {where})"
