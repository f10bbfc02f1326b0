"""Cells: how one column of a data set frame becomes CSV cells or JSON tokens, and how rows
of cells become CSV bytes. Shared by every format writer, so the spreadsheet guard
(``neutralise``) and the date-time convention live in one place."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from json.encoder import encode_basestring
from typing import Any

import pandas as pd

from analysis.datasets import Column

# Characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


class ExportError(ValueError):
    pass


def neutralise(text: str) -> str:
    """A text cell as it may safely go into CSV: prefixed with an apostrophe when a
    spreadsheet would read it as a formula."""
    return "'" + text if text[:1] in FORMULA_TRIGGERS and text else text


def iso_cells(series: pd.Series, *, zulu: bool = True) -> list[str]:
    """Date-times as ISO 8601 UTC strings ('' where missing)."""
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        series = pd.to_datetime(series, utc=True)
    elif str(series.dt.tz) != "UTC":
        series = series.dt.tz_convert("UTC")
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if zulu else "%Y-%m-%dT%H:%M:%S.%f"
    cells: list[str] = series.dt.strftime(fmt).fillna("").tolist()
    return cells


def _objects(series: pd.Series) -> tuple[Any, Any]:
    return series.to_numpy(dtype=object), series.isna().to_numpy()


def csv_cells(series: pd.Series, ctype: str) -> list[str]:
    if ctype == "datetime":
        return iso_cells(series)
    values, missing = _objects(series)
    if ctype in ("string", "json"):
        return ["" if m else neutralise(str(v)) for v, m in zip(values, missing, strict=True)]
    if ctype == "integer":
        return ["" if m else str(int(v)) for v, m in zip(values, missing, strict=True)]
    if ctype == "number":
        return [
            "" if m or math.isnan(float(v)) else repr(float(v))
            for v, m in zip(values, missing, strict=True)
        ]
    if ctype == "boolean":
        return [
            "" if m else ("true" if v else "false") for v, m in zip(values, missing, strict=True)
        ]
    raise ExportError(f"unknown column type {ctype!r}")


def json_tokens(series: pd.Series, ctype: str) -> list[str]:
    if ctype == "datetime":
        return [f'"{v}"' if v else "null" for v in iso_cells(series)]
    values, missing = _objects(series)
    pairs = zip(values, missing, strict=True)
    if ctype == "string":
        return ["null" if m else encode_basestring(str(v)) for v, m in pairs]
    if ctype == "json":
        # The data sets hold JSON text made by json.dumps; it goes in as a nested value.
        return ["null" if m else str(v) for v, m in pairs]
    if ctype == "integer":
        return ["null" if m else str(int(v)) for v, m in pairs]
    if ctype == "number":
        return ["null" if m or not math.isfinite(float(v)) else repr(float(v)) for v, m in pairs]
    if ctype == "boolean":
        return ["null" if m else ("true" if v else "false") for v, m in pairs]
    raise ExportError(f"unknown column type {ctype!r}")


def check_columns(columns: Sequence[Column], frame: pd.DataFrame) -> None:
    names = [c.name for c in columns]
    if list(frame.columns) != names:
        raise ExportError(f"frame columns {list(frame.columns)} differ from declared {names}")


def csv_encode(rows: Iterable[Sequence[str]]) -> bytes:
    """Rows of already formatted cells as RFC 4180 CSV in UTF-8."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerows(rows)
    return out.getvalue().encode("utf-8")
