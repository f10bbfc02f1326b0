"""The codebook: one row per column of every exported table, generated from the column
declarations in code (``analysis.datasets``, ``analysis.exports.progsnap2``), as CSV and Markdown.

Pure: columns in, text out. Which tables go in which bundle is decided by ``exports``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from analysis.datasets.column import Column

CODEBOOK_FIELDS = (
    "dataset",
    "name",
    "type",
    "unit",
    "allowed",
    "description",
    "source",
    "identifier",
)

TYPE_NOTES = {
    "string": "text",
    "integer": "whole number",
    "number": "real number",
    "boolean": "true / false",
    "datetime": "ISO 8601 date and time in UTC",
    "json": "JSON text (a nested value in JSON Lines)",
}


@dataclass(frozen=True)
class CodebookRow:
    dataset: str
    name: str
    type: str
    unit: str
    allowed: str
    description: str
    source: str
    identifier: bool

    def as_strings(self) -> list[str]:
        return [
            self.dataset,
            self.name,
            self.type,
            self.unit,
            self.allowed,
            self.description,
            self.source,
            "true" if self.identifier else "false",
        ]


def codebook_rows(tables: Mapping[str, Sequence[Column]]) -> list[CodebookRow]:
    """One row per column, tables in the given order, columns in their declared order."""
    return [
        CodebookRow(
            dataset=table,
            name=c.name,
            type=c.type,
            unit=c.unit,
            allowed="; ".join(c.allowed),
            description=c.description,
            source=c.source,
            identifier=c.identifier,
        )
        for table, columns in tables.items()
        for c in columns
    ]


def codebook_csv(rows: Iterable[CodebookRow]) -> bytes:
    """The codebook as RFC 4180 CSV in UTF-8. Codebook text is ours, not participants', so
    it needs no spreadsheet-formula neutralisation."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CODEBOOK_FIELDS)
    for row in rows:
        writer.writerow(row.as_strings())
    return out.getvalue().encode("utf-8")


def _cell(text: str) -> str:
    # A Markdown table cell cannot hold a newline or an unescaped pipe.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def codebook_markdown(
    rows: Sequence[CodebookRow],
    *,
    title: str,
    preamble: Sequence[str] = (),
    appendix: Sequence[str] = (),
) -> str:
    """The codebook as Markdown: a preamble (paragraphs), one table per data set, and an
    appendix (more Markdown, e.g. the ProgSnap2 event mapping)."""
    lines = [f"# {title}", ""]
    for paragraph in preamble:
        lines += [paragraph, ""]
    lines += ["## Types", ""]
    lines += [f"- `{name}`: {note}" for name, note in TYPE_NOTES.items()]
    lines.append("")
    tables: dict[str, list[CodebookRow]] = {}
    for row in rows:
        tables.setdefault(row.dataset, []).append(row)
    for table, table_rows in tables.items():
        lines += [
            f"## {table}",
            "",
            f"{len(table_rows)} columns.",
            "",
            "| Column | Type | Unit | Allowed values | Description | Source |",
            "|---|---|---|---|---|---|",
        ]
        for r in table_rows:
            name = f"`{r.name}`" + (" (identifier)" if r.identifier else "")
            allowed = ", ".join(f"`{v}`" for v in r.allowed.split("; ")) if r.allowed else ""
            lines.append(
                f"| {_cell(name)} | {r.type} | {_cell(r.unit)} | {_cell(allowed)} "
                f"| {_cell(r.description)} | {_cell(r.source)} |"
            )
        lines.append("")
    for paragraph in appendix:
        lines += [paragraph, ""]
    return "\n".join(lines).rstrip("\n") + "\n"
