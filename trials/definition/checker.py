"""The TOML checking toolkit both definition file formats use (``trial.toml`` and its
neighbours here, the quiz file in ``quizzes.quizfile``).

A :class:`Checker` reads typed values out of one parsed TOML file and records a located
:class:`Problem` (file, field path, line) for everything wrong, so that a person sees every
problem at once. No Django import.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")


Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition, located as precisely as the files allow."""

    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field_part = f" {self.path}:" if self.path else ""
        return f"{where}:{field_part} {self.message}"


# --- locating fields in TOML source ------------------------------------------------------


_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY_RE = re.compile(r"^\s*([A-Za-z0-9_\-\.\"' ]+?)\s*=")


def _split_dotted(text: str) -> list[str]:
    return [part.strip().strip("\"'") for part in text.split(".")]


def toml_line_index(source: str) -> dict[Path_, int]:
    """Best-effort map from a field path to the line where it is written.

    Handles tables, arrays of tables and (dotted) keys; a value inside an inline table or
    array is located at the line of its key. Good enough to point a person at the right line.
    """
    index: dict[Path_, int] = {}
    counters: dict[tuple[str, ...], int] = {}
    current: list[str | int] = []
    for lineno, line in enumerate(source.splitlines(), start=1):
        header = _HEADER_RE.match(line)
        if header:
            names = _split_dotted(header.group(2))
            # Resolve parent arrays of tables to their latest element.
            resolved: list[str | int] = []
            for depth, name in enumerate(names):
                resolved.append(name)
                key = tuple(str(p) for p in names[: depth + 1])
                is_last = depth == len(names) - 1
                if header.group(1) == "[[" and is_last:
                    counters[key] = counters.get(key, -1) + 1
                    resolved.append(counters[key])
                elif key in counters:
                    resolved.append(counters[key])
            current = resolved
            index.setdefault(tuple(current), lineno)
            continue
        key_match = _KEY_RE.match(line)
        if key_match and not line.lstrip().startswith("#"):
            path = tuple(current) + tuple(_split_dotted(key_match.group(1)))
            index.setdefault(path, lineno)
    return index


def locate(index: dict[Path_, int], path: Path_) -> int | None:
    for end in range(len(path), 0, -1):
        line = index.get(tuple(path[:end]))
        if line is not None:
            return line
    return None


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


# --- the validator -------------------------------------------------------------------------


class Checker:
    """Collects problems for one TOML file while reading typed values out of it."""

    def __init__(self, file: str, source: str, problems: list[Problem]) -> None:
        self.file = file
        self.index = toml_line_index(source)
        self.problems = problems

    def error(self, path: Path_, message: str) -> None:
        self.problems.append(
            Problem(self.file, format_path(path), message, locate(self.index, path))
        )

    def get(
        self,
        table: dict[str, Any],
        path: Path_,
        key: str,
        kind: type | tuple[type, ...],
        *,
        required: bool = False,
        default: Any = None,
    ) -> Any:
        if key not in table:
            if required:
                self.error(path, f"missing required field '{key}'")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and int not in kinds:
            kinds = (*kinds, int)  # a whole number is a fine number
        # TOML booleans are not integers for our purposes.
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            names = " or ".join(_type_name(k) for k in kinds if not (k is int and float in kinds))
            self.error(path + (key,), f"must be {names} (got {_describe(value)})")
            return default
        return value

    def unknown_keys(self, table: dict[str, Any], path: Path_, allowed: Iterable[str]) -> None:
        allowed_set = set(allowed)
        for key in table:
            if key not in allowed_set:
                choices = ", ".join(sorted(allowed_set))
                self.error(path + (key,), f"unknown field '{key}' (allowed: {choices})")

    def table_list(self, table: dict[str, Any], path: Path_, key: str) -> list[dict[str, Any]]:
        raw = table.get(key, [])
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            self.error(path + (key,), f"must be an array of tables ([[{key}]])")
            return []
        return raw


def _type_name(kind: type) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "an array",
        dict: "a table",
    }.get(kind, kind.__name__)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_key(check: Checker, path: Path_, value: str, what: str) -> None:
    if not KEY_RE.match(value):
        check.error(
            path,
            f"{what} {value!r} must start with a lowercase letter and contain only "
            "lowercase letters, digits and underscores",
        )


def unique(check: Checker, items: Sequence[tuple[Path_, str]], what: str) -> None:
    seen: dict[str, Path_] = {}
    for path, key in items:
        if key in seen:
            check.error(
                path, f"duplicate {what} '{key}' (first defined at {format_path(seen[key])})"
            )
        else:
            seen[key] = path


def norm_choices(check: Checker, path: Path_, raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        check.error(path, "must be a non-empty array of choices")
        return []
    out: list[dict[str, str]] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            out.append({"value": item, "label": item})
        elif isinstance(item, dict) and isinstance(item.get("value"), str):
            label = item.get("label", item["value"])
            if not isinstance(label, str):
                check.error(path + (i, "label"), "must be a string")
                label = item["value"]
            extra = set(item) - {"value", "label"}
            if extra:
                check.error(path + (i,), f"unknown field(s) {sorted(extra)} in a choice")
            out.append({"value": item["value"], "label": label})
        else:
            check.error(
                path + (i,),
                'each choice must be a string or a table {value = "...", label = "..."}',
            )
    values = [c["value"] for c in out]
    for i, value in enumerate(values):
        if value in values[:i]:
            check.error(path + (i,), f"duplicate choice value {value!r}")
    return out


def toml_problem(file: str, exc: tomllib.TOMLDecodeError) -> Problem:
    message = str(exc)
    match = re.search(r"\(at line (\d+), column (\d+)\)", message)
    line = int(match.group(1)) if match else None
    message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
    return Problem(file, "", f"invalid TOML: {message}", line)
