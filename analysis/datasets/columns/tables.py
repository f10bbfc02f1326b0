"""The columns of the items, events and allocations data sets. Their rows are streamed as
tuples straight from the database (:mod:`analysis.datasets.streams`), in the order declared
here."""

from __future__ import annotations

from analysis.datasets import reads
from analysis.datasets.column import Column
from analysis.datasets.shape import TrialShape
from trials.event_types import CLIENT_TYPES, SERVER_TYPES, Sender


def item_table(shape: TrialShape) -> list[Column]:
    I = "item_responses"  # noqa: E741
    return [
        Column(
            "participant", "string", "Pseudonymous participant code", "participants.public_code"
        ),
        Column("arm", "string", "Arm allocated", "allocations.arm", allowed=tuple(shape.arms)),
        Column("stage", "string", "Quiz stage", f"{I}.stage"),
        Column("question", "string", "Question key in the quiz file", f"{I}.question_key"),
        Column(
            "position",
            "integer",
            "1-based position at which the participant saw the question",
            f"{I}.position",
        ),
        Column(
            "categories",
            "string",
            "Category tags, '; '-separated",
            f"{I}.categories",
            allowed=tuple(shape.categories),
        ),
        Column(
            "status",
            "string",
            "How the answer was graded",
            f"{I}.status",
            allowed=reads.ITEM_STATUSES,
        ),
        Column("correct", "boolean", "Fully correct (empty while pending)", f"{I}.correct"),
        Column("points", "number", "Points earned (0 while pending)", f"{I}.points", unit="points"),
        Column("max_points", "number", "Points possible", f"{I}.max_points", unit="points"),
        Column(
            "is_attention_check",
            "boolean",
            "An attention check (not scored)",
            f"{I}.is_attention_check",
        ),
        Column("response", "json", "The answer as given (JSON)", f"{I}.response"),
        Column(
            "graded_at",
            "datetime",
            "When the current grade was given",
            f"{I}.graded_at",
            unit="UTC",
        ),
    ]


def event_table(shape: TrialShape) -> list[Column]:
    return [
        Column(
            "event_id", "integer", "Event id (increases with arrival at the server)", "events.id"
        ),
        Column(
            "participant", "string", "Pseudonymous participant code", "participants.public_code"
        ),
        Column(
            "arm",
            "string",
            "Arm allocated (empty before allocation)",
            "allocations.arm",
            allowed=tuple(shape.arms),
        ),
        Column(
            "stage",
            "string",
            "Stage the event belongs to",
            "events.stage",
            allowed=tuple(s.key for s in shape.stages),
        ),
        Column(
            "type",
            "string",
            "Event type, from the registry in trials/event_types.py. Client-reported (sent by the"
            f" browser, evidence about it): {', '.join(sorted(CLIENT_TYPES))}. Server-only"
            f" (observed or derived by the server, never accepted from a browser):"
            f" {', '.join(sorted(SERVER_TYPES))}",
            "events.type",
        ),
        Column(
            "origin",
            "string",
            "Who reported it: client = the participant's browser (client-reported evidence,"
            " not verified, of a client-reported type only), server = the server",
            "events.origin",
            allowed=tuple(Sender),
        ),
        Column("client_seq", "integer", "Sequence number in the browser tab", "events.client_seq"),
        Column(
            "client_time",
            "datetime",
            "Client-reported: time on the participant's clock as the browser sent it; no"
            " outcome uses it (server_time does)",
            "events.client_time",
            unit="UTC",
        ),
        Column(
            "server_time",
            "datetime",
            "Time the server stored it (for a browser event: when its batch arrived)",
            "events.server_time",
            unit="UTC",
        ),
        Column("payload", "json", "Type-specific details (JSON)", "events.payload"),
    ]


def allocation_table(shape: TrialShape) -> list[Column]:
    A = "allocations"
    return [
        Column(
            "participant", "string", "Pseudonymous participant code", "participants.public_code"
        ),
        Column("arm", "string", "Arm allocated", f"{A}.arm", allowed=tuple(shape.arms)),
        Column("stratum", "string", "Randomization stratum", f"{A}.stratum"),
        Column("scheme", "string", "Randomization scheme", f"{A}.scheme"),
        Column(
            "sequence_number",
            "integer",
            "1-based position in the stratum's sequence",
            f"{A}.sequence_number",
        ),
        Column("allocated_at", "datetime", "Time of allocation", f"{A}.created_at", unit="UTC"),
    ]
