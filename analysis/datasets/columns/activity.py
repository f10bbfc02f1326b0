"""What the participant did while coding: runs, checks, errors, pastes and the assistant."""

from __future__ import annotations

from analysis.datasets.columns.base import Computed, col
from analysis.datasets.people import Person
from trials.event_types import EventName

PASTE = EventName.PASTE


def _turns(p: Person, key: str) -> int:
    return int((p.turn[key] or 0) if p.turn else 0)


def activity_columns() -> list[Computed]:
    return [
        col(
            "runs",
            "integer",
            "Program runs, all tasks",
            "task_states.runs",
            lambda p: p.runs,
            unit="count",
        ),
        col(
            "checks",
            "integer",
            "Hidden-test checks, all tasks",
            "task_states.checks",
            lambda p: p.checks,
            unit="count",
        ),
        col(
            "errors",
            "integer",
            "Runs and checks that ended in an error or a time-out",
            "code_runs.status",
            lambda p: p.errors,
            unit="count",
        ),
        *_paste_columns(),
        *_assistant_columns(),
    ]


def _paste_columns() -> list[Computed]:
    return [
        col(
            "pastes",
            "integer",
            "Paste (and drop) events (client-reported)",
            f"events[type={PASTE}]",
            lambda p: p.paste.count,
            unit="count",
        ),
        col(
            "paste_chars",
            "integer",
            "Characters pasted, as the browser reported them (client-reported)",
            f"events[type={PASTE}].payload.length",
            lambda p: p.paste.chars,
            unit="characters",
        ),
        col(
            "assistant_pastes",
            "integer",
            "Pastes the server matched to an assistant reply stored for the participant (the"
            " reply or one of its code blocks by SHA-256 and length, or text copied from the"
            " chat that the server found in a reply); what the browser claims is ignored",
            f"events[type={PASTE}].payload.from_assistant (set by the server), assistant_turns",
            lambda p: p.paste.from_assistant,
            unit="count",
        ),
    ]


def _assistant_columns() -> list[Computed]:
    return [
        col(
            "assistant_messages",
            "integer",
            "Questions sent to the assistant",
            "assistant_turns",
            lambda p: _turns(p, "n"),
            unit="count",
        ),
        col(
            "assistant_tokens_in",
            "integer",
            "Input tokens of the assistant's calls",
            "assistant_turns.input_tokens",
            lambda p: _turns(p, "tin"),
            unit="tokens",
        ),
        col(
            "assistant_tokens_out",
            "integer",
            "Output tokens of the assistant's replies",
            "assistant_turns.output_tokens",
            lambda p: _turns(p, "tout"),
            unit="tokens",
        ),
        col(
            "assistant_time_min",
            "number",
            "Client-reported, bounded by server time: minutes with the assistant's message"
            " box focused (focus to blur as the browser measured them), only for arms with"
            " the assistant in stages that allow it, and only inside each stage's"
            " server-observed window (from its server-stamped start to its end or time limit,"
            " never after the server received the blur); overlapping spans count once",
            f"events[type={EventName.FOCUS}|{EventName.BLUR}, scope=assistant, origin=client],"
            " stage_records",
            lambda p: p.assistant_minutes,
            unit="minutes",
        ),
    ]
