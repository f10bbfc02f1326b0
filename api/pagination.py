"""Pagination. Row endpoints use cursors (stable under inserts, constant cost per page);
data-set frames, which are not querysets, use limit/offset. Malformed paging parameters are
a 400 (page size, limit, offset) or a 404 (a cursor that does not decode), never a silent
fallback and never a 500."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import Model
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.utils.urls import remove_query_param, replace_query_param

if TYPE_CHECKING:
    import pandas as pd

MAX_PAGE_SIZE = 1000
_MAX_BIGINT = 2**63 - 1


class IdCursorPagination(CursorPagination):
    """Cursor pages ordered by the auto-increment id: unique, indexed, insertion order."""

    ordering: Any = "id"
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    _model: type[Model] | None = None

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param or "page_size")
        if raw is None:
            return int(self.page_size or 100)
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            raise ValidationError(
                {"page_size": [f"expected a whole number from 1 to {MAX_PAGE_SIZE}"]}
            )
        return int(raw)

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        position = cursor.position if cursor is not None else None
        if position is not None and not self._position_ok(str(position)):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def _position_ok(self, position: str) -> bool:
        # The position came from the client: it must be a value of the ordering field, or the
        # database would be asked to compare an id with text.
        if self._model is None or "\x00" in position:
            return False
        name = self.ordering[0].lstrip("-") if isinstance(self.ordering, tuple | list) else ""
        field = self._model._meta.pk if name in ("id", "pk") else self._model._meta.get_field(name)
        if not isinstance(field, models.Field):
            return False
        try:
            value = field.to_python(position)
            if isinstance(value, int):
                return abs(value) <= _MAX_BIGINT
            if isinstance(value, datetime):
                value.astimezone(UTC)
                return value.tzinfo is not None
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            return False
        return value is not None

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=MAX_PAGE_SIZE, default=100)
        return parameters


class ParticipantCursorPagination(IdCursorPagination):
    # Participants' primary key is a secret (it lives in their cookie); a cursor is visible to
    # the client, so it must not hold one. Enrolment time is near-unique, and DRF's cursor
    # resolves ties with an offset; the pk only makes the order within a tie deterministic.
    ordering = ("created_at", "pk")


class FramePagination:
    """Limit/offset pages over a pandas frame (one data set), with links like DRF's."""

    default_limit = 1000

    def __init__(self, request: Request, *, limit: int | None, offset: int) -> None:
        self.request = request
        self.limit = limit or self.default_limit
        self.offset = offset
        self.count = 0

    def page(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.count = len(frame)
        return frame.iloc[self.offset : self.offset + self.limit]

    def _link(self, offset: int | None) -> str | None:
        if offset is None:
            return None
        url = self.request.build_absolute_uri()
        url = replace_query_param(url, "limit", self.limit)
        if offset <= 0:
            return remove_query_param(url, "offset")
        return replace_query_param(url, "offset", offset)

    def links(self) -> OrderedDict[str, Any]:
        next_offset = self.offset + self.limit if self.offset + self.limit < self.count else None
        previous_offset = max(self.offset - self.limit, 0) if self.offset > 0 else None
        return OrderedDict(
            count=self.count, next=self._link(next_offset), previous=self._link(previous_offset)
        )
