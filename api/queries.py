"""Query parameters of the API, parsed strictly: a malformed value is a 400 that names the
parameter, never a silent default and never a 500. Each endpoint has one input serializer;
the OpenAPI schema documents the same serializers, so the schema and the parser agree."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from django.http import QueryDict
from rest_framework import serializers

from quizzes.models import ItemResponse
from trials.models import Participant, Trial

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
KEY_PATTERN = r"^[a-z][a-z0-9_]*$"
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_.]*$"
CODE_PATTERN = r"^[A-Za-z0-9]+$"
MAX_VERSION = 2**31 - 1

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
_UTC_MIN = datetime.min.replace(tzinfo=UTC)
_UTC_MAX = datetime.max.replace(tzinfo=UTC)


def parse_rfc3339(value: str) -> datetime | None:
    """An RFC 3339 date-time (what OpenAPI's ``format: date-time`` means) as an aware UTC
    datetime, or None if the text is not one. Stricter than ``fromisoformat``: a date alone,
    a missing offset or a space separator are refused rather than guessed at."""
    match = _RFC3339.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = (match.group(7) or "")[:6].ljust(6, "0")
    if match.group(8):
        offset = timedelta(0)
    else:
        off_h, off_m = int(match.group(10)), int(match.group(11))
        if off_h > 23 or off_m > 59:
            return None
        offset = timedelta(hours=off_h, minutes=off_m)
        if match.group(9) == "-":
            offset = -offset
    # A leap second (23:59:60) is valid RFC 3339; Python has no such second.
    second = min(second, 59) if second == 60 and minute == 59 else second
    try:
        local = datetime(
            year, month, day, hour, minute, second, int(fraction), tzinfo=timezone(offset)
        )
    except ValueError:
        return None
    try:
        return local.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
        return _UTC_MIN if local.year == 1 else _UTC_MAX


class DateTimeParam(serializers.DateTimeField):
    default_error_messages = {
        "invalid": (
            "not an RFC 3339 date-time such as 2025-03-01T09:30:00Z "
            "(with an offset, URL-encode '+' as %2B)"
        )
    }

    def to_internal_value(self, value: Any) -> datetime:
        parsed = parse_rfc3339(value) if isinstance(value, str) else None
        if parsed is None:
            self.fail("invalid")
        assert parsed is not None
        return parsed


class BooleanParam(serializers.BooleanField):
    """Only ``true`` or ``false``: ``identified=1`` or ``identified=yes`` is an error, so a
    typo can never silently mean the opposite of what was asked."""

    default_error_messages = {"invalid": "expected true or false"}

    def to_internal_value(self, data: Any) -> bool:
        if data in ("true", True):
            return True
        if data in ("false", False):
            return False
        self.fail("invalid")
        raise AssertionError  # pragma: no cover - fail() raises


def _key(help_text: str, *, pattern: str = KEY_PATTERN, max_length: int = 40) -> Any:
    return serializers.RegexField(
        pattern, required=False, max_length=max_length, help_text=help_text
    )


class IdentifiedQuery(serializers.Serializer[Any]):
    identified = BooleanParam(
        required=False,
        default=False,
        help_text=(
            "Include identifiers (participant_id, prolific_pid, study_id, session_id, "
            "completion_code). Needs the permission analysis.export_identifiers; the response "
            "then carries the header X-Skilltrial-Identified: true."
        ),
    )


class VersionQuery(serializers.Serializer[Any]):
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_VERSION,
        help_text="Trial version (default: the live version, else the newest launched, "
        "else the newest draft).",
    )


class TrialListQuery(serializers.Serializer[Any]):
    slug = _key("Only versions of this trial", pattern=SLUG_PATTERN, max_length=80)
    status = serializers.ChoiceField(
        choices=Trial.Status.choices, required=False, help_text="Only trials in this status"
    )


class ScopeQuery(serializers.Serializer[Any]):
    """Filters every row-level endpoint shares: which trial, which arm, which time window."""

    version = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_VERSION,
        help_text="Trial version: with `trial`, that version instead of the default one; "
        "alone, rows of every trial at this version.",
    )
    trial = _key(
        "Trial slug (rows of its default version, or of `version`)",
        pattern=SLUG_PATTERN,
        max_length=80,
    )
    arm = _key("Arm key: only participants allocated to this arm")
    since = DateTimeParam(required=False, help_text="From this time on (inclusive), RFC 3339")
    until = DateTimeParam(required=False, help_text="Before this time (exclusive), RFC 3339")


class ParticipantQuery(ScopeQuery, IdentifiedQuery):
    stage = _key("Stage key: only participants currently at this stage")
    status = serializers.ChoiceField(choices=Participant.Status.choices, required=False)


class AllocationQuery(ScopeQuery):
    stratum = serializers.CharField(required=False, max_length=200, allow_blank=True)


class EventQuery(ScopeQuery):
    stage = _key("Stage key: only events logged at this stage")
    type = _key("Event type, e.g. paste or run", pattern=EVENT_TYPE_PATTERN)
    participant = _key(
        "Participant code (the pseudonymous public code)", pattern=CODE_PATTERN, max_length=16
    )


class ItemQuery(ScopeQuery):
    stage = _key("Quiz stage key")
    question = _key("Question key", pattern=r"^[A-Za-z0-9_.-]+$", max_length=80)
    status = serializers.ChoiceField(choices=ItemResponse.Status.choices, required=False)
    participant = _key("Participant code", pattern=CODE_PATTERN, max_length=16)


class DatasetQuery(VersionQuery, IdentifiedQuery):
    format = serializers.ChoiceField(
        choices=[("json", "json"), ("csv", "csv")],
        required=False,
        default="json",
        help_text="json: one page of records; csv: the whole data set, streamed",
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=10_000, help_text="Records per page (json)"
    )
    offset = serializers.IntegerField(
        required=False, min_value=0, default=0, help_text="Records to skip (json)"
    )


class CodebookQuery(VersionQuery, IdentifiedQuery):
    pass


EXPORT_FORMATS = ("csv", "parquet", "json", "progsnap2")


class ExportQuery(VersionQuery, IdentifiedQuery):
    format = serializers.ChoiceField(
        choices=[(f, f) for f in EXPORT_FORMATS],
        required=False,
        default="csv",
        help_text="Format of the data files inside the zip bundle",
    )


def parse_query(serializer_class: type[serializers.Serializer[Any]], query: QueryDict) -> Any:
    """The validated parameters, or a 400 naming each bad one. A parameter given twice is an
    error too: which of the two was meant cannot be known."""
    names: list[str] = list(serializer_class().fields.keys())
    repeated = sorted(name for name in names if len(query.getlist(name)) > 1)
    if repeated:
        raise serializers.ValidationError({name: ["given more than once"] for name in repeated})
    serializer = serializer_class(data={key: query.get(key) for key in query})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
