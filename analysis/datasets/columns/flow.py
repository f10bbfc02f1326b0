"""The participant's way through the trial: allocation, how far they got, the analysis
populations with their exclusions, non-compliance, duplicates and session moves."""

from __future__ import annotations

from analysis.datasets.columns.base import Computed, P, col
from analysis.datasets.people import Person
from analysis.datasets.population import (
    LARGE_PASTE_CHARS,
    OUTSIDE_HELP_QUESTIONS,
    PER_PROTOCOL_RULES,
    join,
)
from analysis.datasets.reads import COMPLETED
from analysis.datasets.shape import TrialShape
from trials.definition import DUPLICATE_SIGNALS
from trials.event_types import EventName


def allocation_columns(shape: TrialShape) -> list[Computed]:
    return [
        col(
            "allocated",
            "boolean",
            "Randomized (has an allocation)",
            "allocations",
            lambda p: p.allocated,
        ),
        col(
            "allocated_at",
            "datetime",
            "Time of allocation",
            "allocations.created_at",
            lambda p: p.alloc["created_at"] if p.alloc else None,
            unit="UTC",
        ),
        col(
            "allocation_sequence",
            "integer",
            "1-based position in the stratum's allocation sequence",
            "allocations.sequence_number",
            lambda p: p.alloc["sequence_number"] if p.alloc else None,
        ),
        col(
            "furthest_stage",
            "string",
            "Latest stage entered",
            "stage_records.stage",
            lambda p: p.furthest.key if p.furthest else "",
            allowed=tuple(s.key for s in shape.stages),
        ),
        col(
            "completed_trial",
            "boolean",
            "Reached the end of the trial",
            f"{P}.status",
            lambda p: p.row["status"] == COMPLETED,
        ),
    ]


def population_columns() -> list[Computed]:
    return [
        col(
            "itt",
            "boolean",
            "In the intention-to-treat population (everyone allocated, analysed as allocated;"
            ' when the plan says duplicates = "exclude", not those with duplicate_excluded)',
            "allocations",
            lambda p: p.allocated and not p.excluded_duplicate,
        ),
        col(
            "per_protocol",
            "boolean",
            "In the per-protocol population (allocated and every rule of the plan's"
            " [analysis.populations] per_protocol holds)",
            "derived",
            lambda p: p.allocated and not p.failed,
        ),
        col(
            "per_protocol_exclusions",
            "string",
            "Per-protocol rules the participant fails, '; '-separated",
            "derived",
            lambda p: join(p.failed),
            allowed=PER_PROTOCOL_RULES,
        ),
        col(
            "noncompliance_flags",
            "string",
            "'; '-separated: assistant_outside_arm (used an assistant the arm does not"
            " have), reported_outside_help (answered yes to"
            f" {', '.join(OUTSIDE_HELP_QUESTIONS)}), large_external_paste (pasted >="
            f" {LARGE_PASTE_CHARS} characters that the server did not match to the study's"
            " assistant)",
            "derived",
            lambda p: join(p.flags),
        ),
        col(
            "received_intervention",
            "boolean",
            "Entered the stage where the arms differ (the first stage with tools, else the"
            " first task stage)",
            "stage_records",
            lambda p: p.received_intervention,
        ),
        col(
            "lost_reason",
            "string",
            "Why an allocated participant did not finish (empty if finished or not allocated)",
            "derived",
            lambda p: p.lost_reason,
        ),
    ]


def _duplicate_of(p: Person, version: int) -> str:
    return p.duplicate.of_label(version) if p.duplicate else ""


def duplicate_columns(shape: TrialShape) -> list[Computed]:
    version = shape.trial.version
    return [
        col(
            "duplicate_flags",
            "string",
            "Why this entry looks like a repeat of an earlier one, '; '-separated: external_id"
            " (the same external id in an earlier version of the trial), browser (the same"
            " network address and browser as an earlier entry within the trial's"
            " [participants] duplicate_window_hours), address (the same address, another"
            " browser, within that window). The first entry of a group is not flagged",
            "participants.external_id, address_hash, browser_hash (keyed hashes)",
            lambda p: join(list(p.duplicate.signals)) if p.duplicate else "",
            allowed=DUPLICATE_SIGNALS,
        ),
        col(
            "duplicate_of",
            "string",
            "The earliest entry this one repeats: its participant code, as 'v<version>:<code>'"
            " when it is in another version",
            "derived",
            lambda p: _duplicate_of(p, version),
        ),
        col(
            "duplicate_excluded",
            "boolean",
            "Left out of the itt and per_protocol populations by the plan's rule (duplicates ="
            ' "exclude" and a flag among its duplicate_signals); false when the plan keeps'
            " duplicates",
            "derived",
            lambda p: p.excluded_duplicate,
        ),
    ]


def session_columns() -> list[Computed]:
    return [
        col(
            "session_resumes",
            "integer",
            "Times the session moved to another browser with the resume code",
            f"events[type={EventName.SESSION_RESUMED}]",
            lambda p: p.session_moves[EventName.SESSION_RESUMED],
            unit="count",
        ),
        col(
            "session_takeovers",
            "integer",
            "Times the session moved to another browser without the code, after the first"
            " had been idle (the trial's resume_idle_minutes)",
            f"events[type={EventName.SESSION_TAKEN_OVER}]",
            lambda p: p.session_moves[EventName.SESSION_TAKEN_OVER],
            unit="count",
        ),
    ]
