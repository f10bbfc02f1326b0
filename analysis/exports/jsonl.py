"""JSON Lines: one object per row and line, keys in codebook order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from json.encoder import encode_basestring

import pandas as pd

from analysis.datasets import Column
from analysis.exports.cells import check_columns, json_tokens
from analysis.exports.writer import FormatWriter, RowCounter
from trials.models import Trial


def jsonl_chunks(
    columns: Sequence[Column], frames: Iterable[pd.DataFrame], *, on_rows: RowCounter | None = None
) -> Iterator[bytes]:
    """JSON Lines: one object per row, keys in column order."""
    keys = [encode_basestring(c.name) + ":" for c in columns]
    for frame in frames:
        check_columns(columns, frame)
        tokens = [json_tokens(frame[c.name], c.type) for c in columns]
        lines = [
            "{" + ",".join(k + v for k, v in zip(keys, row, strict=True)) + "}\n"
            for row in zip(*tokens, strict=True)
        ]
        yield "".join(lines).encode("utf-8")
        if on_rows is not None:
            on_rows(len(frame))


class JsonLinesWriter(FormatWriter):
    name = "json"
    extension = "jsonl"

    def render(
        self,
        columns: Sequence[Column],
        frames: Iterable[pd.DataFrame],
        *,
        on_rows: RowCounter | None,
        dataset: str,
        trial: Trial,
    ) -> Iterator[bytes]:
        return jsonl_chunks(columns, frames, on_rows=on_rows)
