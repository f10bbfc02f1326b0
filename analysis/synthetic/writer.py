"""Writing generated rows: bulk INSERT/COPY of rows exactly as generated, and a background writer
thread on PostgreSQL.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.db import connection, models, transaction

from analysis.synthetic.model import BATCH_SIZE
from quizzes.models import ItemResponse, QuizAttempt
from trials.models import (
    Allocation,
    AssistantTurn,
    CodeRun,
    CodeSnapshot,
    Event,
    Participant,
    StageRecord,
    TaskState,
)


class _AsGiven(models.QuerySet[Any]):
    """``bulk_create`` that stores every field as set on the instance, including the
    ``auto_now_add`` timestamps (Django's raw mode, used for loading fixtures). Without it,
    bulk_create would stamp ``created_at``/``server_time`` with the current time."""

    def _insert(
        self,
        objs: Any,
        fields: Any,
        returning_fields: Any = None,
        raw: bool = False,
        using: Any = None,
        on_conflict: Any = None,
        update_fields: Any = None,
        unique_fields: Any = None,
    ) -> Any:
        return super()._insert(  # type: ignore[misc]
            objs,
            fields,
            returning_fields=returning_fields,
            raw=True,
            using=using,
            on_conflict=on_conflict,
            update_fields=update_fields,
            unique_fields=unique_fields,
        )


def _insert(model: type[models.Model], objs: Iterable[Any]) -> int:
    """Insert in batches of BATCH_SIZE without holding more than a batch of instances;
    returns the number of rows. Primary keys are set on the instances (PostgreSQL, SQLite)."""
    count = 0
    iterator = iter(objs)
    while batch := list(islice(iterator, BATCH_SIZE)):
        _AsGiven(model=model).bulk_create(batch)
        count += len(batch)
    return count


def _copy(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """PostgreSQL's COPY FROM STDIN: several times faster than INSERT for millions of rows
    (no SQL text to build or parse). Runs in the caller's transaction."""
    quote = connection.ops.quote_name
    sql = f"COPY {quote(table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    count = 0
    with connection.cursor() as cursor:
        raw: Any = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    return count


def _insert_many(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """One prepared INSERT run for batches of rows (``executemany``), for databases without
    COPY (SQLite): no SQL is compiled per row."""
    quote = connection.ops.quote_name
    names = ", ".join(quote(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    # Table and column names come from the models, quoted; the values are parameters.
    sql = f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})"  # noqa: S608
    count = 0
    iterator = iter(rows)
    with connection.cursor() as cursor:
        while batch := list(islice(iterator, BATCH_SIZE)):
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


def _store(model: type[models.Model], objs: Iterable[Any]) -> int:
    """Write model instances exactly as given (every value, timestamps included, converted
    by its field as Django would): COPY on PostgreSQL, a prepared INSERT elsewhere. Primary
    keys are not read back; use :func:`_insert` for rows whose keys are needed."""
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.db_returning)]
    columns = [str(f.column) for f in fields]
    rows = (
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields] for obj in objs
    )
    if connection.vendor == "postgresql":
        return _copy(model._meta.db_table, columns, rows)
    return _insert_many(model._meta.db_table, columns, rows)


# An event before ids are given: (time, stage id, type, origin, client time, payload).
_RawEvent = tuple[float, int | None, str, str, float | None, dict[str, Any]]


# A payload value to fill with a primary key once the row has been inserted.
_Fixup = tuple[dict[str, Any], str, models.Model]


@dataclass
class _Rows:
    """Everything generated for a batch of participants, before it is written."""

    records: list[StageRecord] = field(default_factory=list)
    states: list[TaskState] = field(default_factory=list)
    snapshots: list[CodeSnapshot] = field(default_factory=list)
    runs: list[CodeRun] = field(default_factory=list)
    turns: list[AssistantTurn] = field(default_factory=list)
    attempts: list[QuizAttempt] = field(default_factory=list)
    items: list[ItemResponse] = field(default_factory=list)
    # (participant id, stage id, type, client id, client seq, client time, server time,
    #  origin, payload)
    events: list[tuple[str, int | None, str, str, int | None, Any, Any, str, dict[str, Any]]] = (
        field(default_factory=list)
    )
    fixups: list[_Fixup] = field(default_factory=list)


EVENT_COLUMNS = (
    "participant_id",
    "stage_id",
    "type",
    "client_id",
    "client_seq",
    "client_time",
    "server_time",
    "origin",
    "payload",
)


def _write_events(rows: _Rows) -> int:
    # Millions of rows: straight from the tuples, without model instances.
    fields = {f.attname: str(f.column) for f in Event._meta.concrete_fields}
    columns = [fields[name] for name in EVENT_COLUMNS]
    dumps = json.dumps  # as JSONField does without an encoder
    if connection.vendor == "postgresql":
        return _copy(
            Event._meta.db_table, columns, ((*row[:8], dumps(row[8])) for row in rows.events)
        )
    adapt = connection.ops.adapt_datetimefield_value
    return _insert_many(
        Event._meta.db_table,
        columns,
        ((*row[:5], adapt(row[5]), adapt(row[6]), row[7], dumps(row[8])) for row in rows.events),
    )


def _write(rows: _Rows) -> int:
    """Insert one batch of participants' rows; returns the number of events written."""
    _store(StageRecord, rows.records)
    _store(TaskState, rows.states)
    _store(CodeSnapshot, rows.snapshots)
    _insert(CodeRun, rows.runs)  # their keys go into the events
    _insert(AssistantTurn, rows.turns)
    _store(QuizAttempt, rows.attempts)
    _store(ItemResponse, rows.items)
    for payload, key, obj in rows.fixups:
        payload[key] = obj.pk
    return _write_events(rows)


def _refresh_planner_statistics() -> None:
    """After a bulk load the query planner still believes the tables are nearly empty and
    picks nested loops over millions of events (minutes instead of a second for the data
    sets); autovacuum would catch up only later. ANALYZE the tables written to."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    models_written = (
        Participant,
        Allocation,
        StageRecord,
        TaskState,
        CodeSnapshot,
        CodeRun,
        Event,
        AssistantTurn,
        QuizAttempt,
        ItemResponse,
    )
    with connection.cursor() as cursor:
        for model in models_written:
            cursor.execute(f'ANALYZE "{model._meta.db_table}"')


def _write_in_background(
    batches: Iterator[tuple[int, _Rows]], written: Callable[[int, _Rows, int], None]
) -> None:
    """Write each batch in its own transaction on a second connection, in a thread, while
    the next batch is generated: PostgreSQL then works while Python does (the thread waits
    on the network without the GIL). Only outside a transaction: the thread's connection
    sees committed rows only. ``written`` is called from that thread."""
    pending: queue.Queue[tuple[int, _Rows] | None] = queue.Queue(maxsize=1)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while (item := pending.get()) is not None:
                if errors:
                    continue  # drain, so the producer never blocks
                try:
                    with transaction.atomic():
                        events = _write(item[1])
                    written(item[0], item[1], events)
                except BaseException as exc:
                    errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    worker = threading.Thread(target=work, name="synthesize-writer", daemon=True)
    worker.start()
    try:
        for item in batches:
            if errors:
                break
            pending.put(item)
    finally:
        pending.put(None)
        worker.join()
    if errors:
        raise errors[0]
