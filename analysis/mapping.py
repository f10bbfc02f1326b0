"""Re-analysing data from elsewhere: a CSV described by a small TOML mapping file.

`load_mapping` reads and validates the mapping; `csv_analysis_input` reads the CSV, checks it
against the mapping and returns the same `AnalysisInput` a trial gives, so the whole
analysis and report run unchanged. Every problem is a `MappingError` whose message names the
file and the line (TOML) or the column and line (CSV), e.g.::

    mapping.toml:7: outcomes.quiz_score.max_points: must be a positive number
    data.csv: arms.column: column 'group' not found (columns: pid, condition, ...)
    data.csv:15: column 'quiz_total': 'abc' is not a number

The CSV is also checked for impossible values, in the rows the filter keeps (line numbers
count the header as line 1; up to ten problems are reported together):

* points (an outcome or category with ``max_points`` or ``max_column``) lie in 0..max;
* times are >= 0, and a time above ``limit`` must be censored: with ``censored =
  "at_limit"`` it is, with a censoring column the row must say "not finished", and with
  ``censored = "none"`` (every time a finish) it is an error;
* participant ids (``data.participant``) are unique.

The format (see examples/external_mapping.toml)::

    title = "..."                        # optional
    [data]
    filter = "include == 1"              # optional: COLUMN OP VALUE, OP one of == != > >= < <=
    # filter = { column = "include", equals = 1 }   (or not_equals = ..., or in = [...])
    participant = "pid"                  # optional id column (ids must be unique)
    baseline = ["years", "python_use"]   # optional, for the baseline table
    per_protocol = "pp"                  # optional true/false column
    [arms]
    column = "condition"
    reference = "control"
    labels = { ai = "AI assistant", control = "No AI" }   # optional
    [outcomes.quiz_score]                # type continuous (default), time, binary, categories
    column = "quiz_total"
    max_points = 27
    [outcomes.completion_time]
    type = "time"
    column = "minutes"
    limit = 35
    censored = "at_limit"                # or { column = "timed_out" } (true = not finished)
                                         # or { completed_column = "finished" } or "none"
    [outcomes.category_scores]
    type = "categories"
    debugging = { column = "debug_pts", max_points = 10 }
    [covariates]
    experience = "years_experience"      # name = column
    [plan]
    primary = "quiz_score"               # or { outcome = "...", description = "..." }
    secondary = ["completion_time", { outcome = "category_scores" }]
    covariates = ["experience"]
    alpha = 0.05
    # an equivalence margin: secondary = [{ outcome = "completion_time", margin = 5 }]

No expression is ever evaluated: the filter is parsed into column, operator and value.
"""

from __future__ import annotations

import hashlib
import io
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.consort import consort_counts
from analysis.inputs import AnalysisInput, OutcomeKind, OutcomeSpec

TOP_KEYS = ("title", "data", "arms", "outcomes", "covariates", "plan")
DATA_KEYS = ("filter", "participant", "baseline", "per_protocol")
ARM_KEYS = ("column", "reference", "labels")
OUTCOME_TYPES: tuple[OutcomeKind, ...] = ("continuous", "time", "binary", "categories")
DEFAULT_TYPES: dict[str, OutcomeKind] = {
    "completion_time": "time",
    "warmup_time": "time",
    "task_completed": "binary",
    "category_scores": "categories",
}
PLAN_KEYS = ("primary", "secondary", "covariates", "alpha")
FILTER_OPS = ("==", "!=", ">=", "<=", ">", "<")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_PROBLEMS = 10  # CSV problems reported at once; the rest are counted
SHOWN_DUPLICATES = 5  # duplicated participant ids listed by value and lines
TRUE = frozenset({"true", "1", "yes", "y", "t", "1.0"})
FALSE = frozenset({"false", "0", "no", "n", "f", "0.0"})


class MappingError(ValueError):
    """A mapping or CSV problem, with file and line in the message (one problem a line)."""


@dataclass(frozen=True)
class RowFilter:
    column: str
    op: str  # one of FILTER_OPS, or "in"
    values: tuple[str, ...]
    text: str  # as written, for the report


@dataclass(frozen=True)
class CensoringRule:
    kind: str  # "at_limit" | "censored_column" | "completed_column" | "none"
    column: str | None = None


@dataclass(frozen=True)
class OutcomeMapping:
    name: str
    kind: OutcomeKind
    column: str = ""
    label: str = ""
    unit: str = ""
    max_points: float | None = None
    max_column: str | None = None
    limit: float | None = None
    censoring: CensoringRule = CensoringRule("none")
    categories: dict[str, OutcomeMapping] = field(default_factory=dict)


@dataclass(frozen=True)
class Mapping:
    """A validated mapping file. ``where`` maps a dotted field to its TOML line."""

    path: str
    title: str
    arm_column: str
    reference_arm: str
    arm_labels: dict[str, str]
    outcomes: dict[str, OutcomeMapping]
    covariates: dict[str, str]
    baseline: list[str]
    per_protocol: str | None
    participant: str | None
    row_filter: RowFilter | None
    plan: dict[str, Any]
    where: dict[str, int] = field(default_factory=dict, repr=False)

    def at(self, dotted: str) -> str:
        """``file:line: field`` for messages about a field."""
        line = _line_for(self.where, dotted)
        return f"{self.path}:{line}: {dotted}" if line else f"{self.path}: {dotted}"


# --------------------------------------------------------------------------------------------
# Where keys are in the TOML text (tomllib gives values, not lines)
# --------------------------------------------------------------------------------------------


def _split_key(text: str) -> list[str]:
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', text)
    return [a or b or c for a, b, c in parts]


def _key_lines(text: str) -> dict[str, int]:
    """Dotted key -> the line that sets it (tables, keys, and keys of inline tables)."""
    lines: dict[str, int] = {}
    table: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", line)
        if header:
            table = _split_key(header.group(1))
            lines.setdefault(".".join(table), number)
            continue
        assignment = re.match(r"""^((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-.\s])+?)\s*=""", line)
        if not assignment:
            continue
        key = table + _split_key(assignment.group(1))
        lines.setdefault(".".join(key), number)
        for inner in re.finditer(r"[{,]\s*([A-Za-z0-9_\-]+)\s*=", line[assignment.end() :]):
            lines.setdefault(".".join([*key, inner.group(1)]), number)
    return lines


def _line_for(where: dict[str, int], dotted: str) -> int | None:
    parts = dotted.split(".")
    while parts:
        key = ".".join(parts)
        if key in where:
            return where[key]
        parts.pop()
        # list positions ("secondary.1") are not keys: fall back to the list's line
    return None


class _Problems:
    def __init__(self, path: str, where: dict[str, int]) -> None:
        self.path = path
        self.where = where
        self.messages: list[str] = []

    def add(self, dotted: str, message: str) -> None:
        line = _line_for(self.where, dotted)
        place = f"{self.path}:{line}" if line else self.path
        self.messages.append(f"{place}: {dotted}: {message}")

    def raise_if_any(self) -> None:
        if self.messages:
            raise MappingError("\n".join(self.messages))


# --------------------------------------------------------------------------------------------
# The mapping file
# --------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _string(problems: _Problems, table: dict[str, Any], dotted: str, key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        problems.add(f"{dotted}.{key}" if dotted else key, "must be a non-empty string")
        return None
    return value.strip()


def _unknown(
    problems: _Problems, table: dict[str, Any], dotted: str, allowed: tuple[str, ...]
) -> None:
    for key in table:
        if key not in allowed:
            problems.add(
                f"{dotted}.{key}" if dotted else key,
                f"unknown key (allowed: {', '.join(allowed)})",
            )


def _table(problems: _Problems, raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        problems.add(key, "must be a table")
        return {}
    return value


def _parse_filter(problems: _Problems, value: Any) -> RowFilter | None:
    if value is None:
        return None
    if isinstance(value, str):
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(==|!=|>=|<=|>|<)\s*(.+?)\s*$", value)
        if not match:
            problems.add(
                "data.filter",
                f"cannot read {value!r}: write COLUMN OP VALUE with OP one of "
                f'{" ".join(FILTER_OPS)}, e.g. "include == 1"',
            )
            return None
        literal = match.group(3)
        if len(literal) >= 2 and literal[0] == literal[-1] and literal[0] in "\"'":
            literal = literal[1:-1]
        return RowFilter(match.group(1), match.group(2), (literal,), value.strip())
    if isinstance(value, dict):
        column = value.get("column")
        keys = [k for k in ("equals", "not_equals", "in") if k in value]
        extra = [k for k in value if k not in ("column", "equals", "not_equals", "in")]
        if not isinstance(column, str) or len(keys) != 1 or extra:
            problems.add(
                "data.filter",
                'a filter table needs column = "..." and exactly one of equals, not_equals, in',
            )
            return None
        key = keys[0]
        raw = value[key]
        if key == "in":
            if not isinstance(raw, list) or not raw:
                problems.add("data.filter.in", "must be a non-empty list")
                return None
            values = tuple(_literal(v) for v in raw)
        else:
            values = (_literal(raw),)
        op = {"equals": "==", "not_equals": "!=", "in": "in"}[key]
        shown = f"{column} {op} {', '.join(values) if key == 'in' else values[0]}"
        return RowFilter(column, op, values, shown)
    problems.add("data.filter", 'must be a string like "include == 1" or a table')
    return None


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _outcome(problems: _Problems, name: str, raw: Any) -> OutcomeMapping | None:
    dotted = f"outcomes.{name}"
    if not NAME.match(name):
        problems.add(dotted, "outcome names use letters, digits and _ only")
    if not isinstance(raw, dict):
        problems.add(dotted, "must be a table")
        return None
    kind = raw.get("type", DEFAULT_TYPES.get(name, "continuous"))
    if kind == "score":
        kind = "continuous"
    if kind not in OUTCOME_TYPES:
        problems.add(f"{dotted}.type", f"must be one of {', '.join(OUTCOME_TYPES)}")
        return None
    label = _string(problems, raw, dotted, "label") or ""
    unit = _string(problems, raw, dotted, "unit") or ""
    if kind == "categories":
        categories = {}
        for key, part in raw.items():
            if key in ("type", "label", "unit"):
                continue
            parsed = _part(problems, f"{dotted}.{key}", part)
            if parsed:
                categories[key] = parsed
        if not categories:
            problems.add(dotted, 'list the categories, e.g. debugging = { column = "..." }')
        return OutcomeMapping(name, "categories", label=label, unit=unit, categories=categories)
    allowed = {
        "continuous": ("type", "column", "label", "unit", "max_points", "max_column"),
        "binary": ("type", "column", "label", "unit"),
        "time": ("type", "column", "label", "unit", "limit", "censored"),
    }[kind]
    _unknown(problems, raw, dotted, allowed)
    column = _string(problems, raw, dotted, "column")
    if column is None and "column" not in raw:
        problems.add(f"{dotted}.column", "required: the CSV column holding this outcome")
    max_points = _positive(problems, raw, dotted, "max_points")
    limit = _positive(problems, raw, dotted, "limit")
    censoring = CensoringRule("none")
    if kind == "time":
        censoring = _censoring(problems, dotted, raw.get("censored"), limit)
        unit = unit or "minutes"
    return OutcomeMapping(
        name,
        kind,
        column=column or "",
        label=label,
        unit=unit,
        max_points=max_points,
        max_column=_string(problems, raw, dotted, "max_column"),
        limit=limit,
        censoring=censoring,
    )


def _part(problems: _Problems, dotted: str, raw: Any) -> OutcomeMapping | None:
    if isinstance(raw, str):
        raw = {"column": raw}
    if not isinstance(raw, dict):
        problems.add(dotted, "must be a column name or a table { column = ..., max_points = ... }")
        return None
    _unknown(problems, raw, dotted, ("column", "max_points", "max_column", "label"))
    column = _string(problems, raw, dotted, "column")
    if column is None and "column" not in raw:
        problems.add(f"{dotted}.column", "required")
    return OutcomeMapping(
        dotted.rsplit(".", 1)[-1],
        "continuous",
        column=column or "",
        label=_string(problems, raw, dotted, "label") or "",
        max_points=_positive(problems, raw, dotted, "max_points"),
        max_column=_string(problems, raw, dotted, "max_column"),
    )


def _positive(problems: _Problems, raw: dict[str, Any], dotted: str, key: str) -> float | None:
    if key not in raw:
        return None
    number = _number(raw[key])
    if number is None or number <= 0:
        problems.add(f"{dotted}.{key}", "must be a positive number")
        return None
    return number


def _censoring(problems: _Problems, dotted: str, value: Any, limit: float | None) -> CensoringRule:
    where = f"{dotted}.censored"
    if value is None:
        return CensoringRule("at_limit") if limit is not None else CensoringRule("none")
    if value == "none":
        return CensoringRule("none")
    if value == "at_limit":
        if limit is None:
            problems.add(where, '"at_limit" needs limit = <the time limit>')
        return CensoringRule("at_limit")
    if isinstance(value, dict) and len(value) == 1:
        ((key, column),) = value.items()
        if key in ("column", "completed_column") and isinstance(column, str) and column:
            return CensoringRule(
                "censored_column" if key == "column" else "completed_column", column
            )
    problems.add(
        where,
        'must be "at_limit", "none", { column = "..." } (true = not finished) or '
        '{ completed_column = "..." } (true = finished)',
    )
    return CensoringRule("none")


def _plan_item(problems: _Problems, dotted: str, value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        return {"outcome": value}
    if isinstance(value, dict) and isinstance(value.get("outcome"), str):
        _unknown(problems, value, dotted, ("outcome", "description", "margin"))
        item = {k: v for k, v in value.items() if k in ("outcome", "description", "margin")}
        margin = item.get("margin")
        if margin is not None:
            ok = _number(margin) is not None and float(margin) > 0
            if isinstance(margin, list):
                ok = len(margin) == 2 and all(_number(m) is not None for m in margin)
                ok = ok and float(margin[0]) < float(margin[1])
            if not ok:
                problems.add(f"{dotted}.margin", "must be a positive number or [low, high]")
        return item
    problems.add(dotted, 'must be an outcome name or a table { outcome = "..." }')
    return None


def _read_toml(path: str | Path) -> tuple[str, dict[str, Any]]:
    """The file's text and its TOML; a file that cannot be read or parsed is one problem."""
    name = str(path)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError(f"{name}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"{name}: cannot read: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        place = f"{name}:{match.group(1)}" if match else name
        raise MappingError(f"{place}: invalid TOML: {message}") from None
    return text, raw


def _arms_section(problems: _Problems, raw: dict[str, Any]) -> tuple[str | None, Any, Any]:
    """The arm column, the reference arm's value and the arm labels."""
    arms = _table(problems, raw, "arms")
    _unknown(problems, arms, "arms", ARM_KEYS)
    arm_column = _string(problems, arms, "arms", "column")
    if arm_column is None and "column" not in arms:
        problems.add("arms.column", "required: the CSV column holding each row's arm")
    reference = arms.get("reference")
    if isinstance(reference, bool) or not isinstance(reference, str | int | float):
        problems.add(
            "arms.reference", "required: the value of the arm column for the reference arm"
        )
        reference = ""
    labels = arms.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        problems.add("arms.labels", 'must be a table: arm value = "label"')
        labels = {}

    return arm_column, reference, labels


def _outcomes_section(problems: _Problems, raw: dict[str, Any]) -> dict[str, Any]:
    outcomes_raw = _table(problems, raw, "outcomes")
    outcomes = {}
    for key, value in outcomes_raw.items():
        parsed = _outcome(problems, key, value)
        if parsed:
            outcomes[key] = parsed
    if not outcomes_raw:
        problems.add("outcomes", "define at least one outcome, e.g. [outcomes.quiz_score]")

    return outcomes


def _covariates_section(problems: _Problems, raw: dict[str, Any]) -> dict[str, str]:
    covariates_raw = _table(problems, raw, "covariates")
    covariates: dict[str, str] = {}
    for key, value in covariates_raw.items():
        if isinstance(value, str) and value:
            covariates[key] = value
        else:
            problems.add(f"covariates.{key}", "must be a column name")

    return covariates


def _plan_section(
    problems: _Problems,
    raw: dict[str, Any],
    outcomes: dict[str, Any],
    covariates: dict[str, str],
) -> tuple[Any, list[Any], Any, Any]:
    """Primary and secondary outcomes, planned covariates and alpha, checked against the
    outcomes and covariates the file defines."""
    plan_raw = _table(problems, raw, "plan")
    _unknown(problems, plan_raw, "plan", PLAN_KEYS)
    primary = (
        _plan_item(problems, "plan.primary", plan_raw["primary"]) if "primary" in plan_raw else None
    )
    secondary_raw = plan_raw.get("secondary", [])
    if not isinstance(secondary_raw, list):
        problems.add("plan.secondary", "must be a list")
        secondary_raw = []
    secondary = [
        item
        for i, value in enumerate(secondary_raw)
        if (item := _plan_item(problems, f"plan.secondary.{i}", value)) is not None
    ]
    for dotted, item in [("plan.primary", primary)] + [
        (f"plan.secondary.{i}", s) for i, s in enumerate(secondary)
    ]:
        if item and item["outcome"] not in outcomes:
            problems.add(
                dotted,
                f"outcome {item['outcome']!r} is not defined under [outcomes] "
                f"(defined: {', '.join(outcomes) or 'none'})",
            )
    plan_covariates = plan_raw.get("covariates", [])
    if not isinstance(plan_covariates, list) or not all(
        isinstance(c, str) for c in plan_covariates
    ):
        problems.add("plan.covariates", "must be a list of names from [covariates]")
        plan_covariates = []
    for c in plan_covariates:
        if c not in covariates:
            problems.add("plan.covariates", f"{c!r} is not defined under [covariates]")
    alpha = plan_raw.get("alpha", 0.05)
    if _number(alpha) is None or not 0 < float(alpha) < 1:
        problems.add("plan.alpha", "must be a number between 0 and 1")
        alpha = 0.05
    return primary, secondary, plan_covariates, alpha


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file; raise `MappingError` naming every problem."""
    name = str(path)
    text, raw = _read_toml(path)
    where = _key_lines(text)
    problems = _Problems(name, where)
    _unknown(problems, raw, "", TOP_KEYS)

    data = _table(problems, raw, "data")
    _unknown(problems, data, "data", DATA_KEYS)
    row_filter = _parse_filter(problems, data.get("filter"))
    baseline = data.get("baseline", [])
    if not isinstance(baseline, list) or not all(isinstance(b, str) for b in baseline):
        problems.add("data.baseline", "must be a list of column names")
        baseline = []

    arm_column, reference, labels = _arms_section(problems, raw)
    outcomes = _outcomes_section(problems, raw)
    covariates = _covariates_section(problems, raw)
    primary, secondary, plan_covariates, alpha = _plan_section(problems, raw, outcomes, covariates)
    title = raw.get("title", "")
    if not isinstance(title, str):
        problems.add("title", "must be a string")
        title = ""
    participant = _string(problems, data, "data", "participant")
    per_protocol = _string(problems, data, "data", "per_protocol")
    problems.raise_if_any()

    plan = {
        "reference_arm": str(_literal(reference)),
        "alpha": float(alpha),
        "primary": primary or {},
        "secondary": secondary,
        "covariates": list(plan_covariates),
        "populations": {"per_protocol": [f"column {per_protocol}"] if per_protocol else []},
    }
    return Mapping(
        path=name,
        title=title,
        arm_column=arm_column or "",
        reference_arm=str(_literal(reference)),
        arm_labels={str(k): v for k, v in labels.items()},
        outcomes=outcomes,
        covariates=covariates,
        baseline=list(baseline),
        per_protocol=per_protocol,
        participant=participant,
        row_filter=row_filter,
        plan=plan,
        where=where,
    )


# --------------------------------------------------------------------------------------------
# The CSV
# --------------------------------------------------------------------------------------------


def _read_csv(path: Path, name: str) -> tuple[pd.DataFrame, bytes]:
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise MappingError(f"{name}: file not found") from None
    except OSError as exc:
        raise MappingError(f"{name}: cannot read: {exc}") from None
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MappingError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except pd.errors.EmptyDataError:
        raise MappingError(f"{name}: the file is empty") from None
    except pd.errors.ParserError as exc:
        raise MappingError(f"{name}: cannot read as CSV: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    duplicates = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicates:
        raise MappingError(f"{name}: duplicate column names: {', '.join(duplicates)}")
    if frame.empty:
        raise MappingError(f"{name}: no data rows")
    return frame.apply(lambda column: column.str.strip()), content


class _CsvCheck:
    def __init__(self, frame: pd.DataFrame, name: str, mapping: Mapping) -> None:
        self.frame = frame
        self.name = name
        self.mapping = mapping
        self.messages: list[str] = []

    def column(self, dotted: str, column: str | None) -> bool:
        if not column:
            return False
        if column in self.frame.columns:
            return True
        columns = ", ".join(self.frame.columns)
        line = _line_for(self.mapping.where, dotted)
        where = f"{self.mapping.path}:{line}" if line else self.mapping.path
        self.messages.append(
            f"{where}: {dotted}: column {column!r} not found in {self.name} (columns: {columns})"
        )
        return False

    def numbers(self, column: str, rows: pd.Series) -> pd.Series:
        """The column as floats; a non-blank value that is not a number is a problem."""
        text = self.frame[column]
        values = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad = rows & (text != "") & values.isna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            self.messages.append(
                f"{self.name}:{first + 2}: column {column!r}: {text.iloc[first]!r} is not a number"
                + (f" ({int(bad.sum())} such rows)" if bad.sum() > 1 else "")
            )
        return values.astype(np.float64)

    def flags(self, column: str, rows: pd.Series) -> pd.Series:
        """The column as booleans (true/false, 1/0, yes/no); blank is missing."""
        lowered = self.frame[column].str.lower()
        bad = rows & (lowered != "") & ~lowered.isin(TRUE | FALSE)
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            self.messages.append(
                f"{self.name}:{first + 2}: column {column!r}: "
                f"{self.frame[column].iloc[first]!r} is not true/false, 1/0 or yes/no"
            )
        return lowered.map(lambda v: True if v in TRUE else (False if v in FALSE else None))

    def row(self, position: int, column: str, message: str) -> None:
        """A problem in one cell: ``data.csv:LINE: column 'c': message`` (header = line 1)."""
        self.messages.append(f"{self.name}:{position + 2}: column {column!r}: {message}")

    def cells(self, bad: pd.Series, column: str, message: Any) -> None:
        """One problem per flagged row; ``message(position, text)`` words it."""
        text = self.frame[column]
        for position in np.flatnonzero(bad.fillna(False).to_numpy(dtype=bool)):
            self.row(int(position), column, message(int(position), text.iloc[position]))

    def raise_if_any(self) -> None:
        if self.messages:
            shown = self.messages[:MAX_PROBLEMS]
            if len(self.messages) > MAX_PROBLEMS:
                shown.append(f"... and {len(self.messages) - MAX_PROBLEMS} more problems")
            raise MappingError("\n".join(shown))


def _number_text(value: float) -> str:
    return f"{value:g}"


def _check_points(
    check: _CsvCheck,
    part: OutcomeMapping,
    dotted: str,
    values: pd.Series,
    maxima: pd.Series | None,
    rows: pd.Series,
) -> None:
    """Points lie within 0..max (``max_points``, or the row's ``max_column``) when a max is set."""
    if part.max_points is None and maxima is None:
        return
    top = part.max_points
    max_column = part.max_column
    negative = values < 0
    above = values > top if top is not None else pd.Series(False, index=values.index)
    above_row = values > maxima if maxima is not None else pd.Series(False, index=values.index)

    def why(position: int, text: str) -> str:
        if negative.iloc[position]:
            return f"{text!r} is negative (points are >= 0)"
        if above.iloc[position] and top is not None:
            return f"{text!r} is above {dotted}.max_points = {_number_text(top)}"
        return (
            f"{text!r} is above the row's maximum in column {max_column!r} "
            f"({check.frame[str(max_column)].iloc[position]!r})"
        )

    check.cells(rows & (negative | above | above_row), part.column, why)


def _check_times(
    check: _CsvCheck,
    outcome: OutcomeMapping,
    times: pd.Series,
    censored: pd.Series,
    rows: pd.Series,
) -> None:
    """Times are >= 0; a time above the limit must be censored."""
    column = outcome.column
    check.cells(
        rows & (times < 0), column, lambda _, text: f"{text!r} is negative (a time is >= 0)"
    )
    if outcome.limit is None:
        return
    limit = _number_text(outcome.limit)
    dotted = f"outcomes.{outcome.name}"
    rule = outcome.censoring
    if rule.column:
        flag_column = rule.column

        def why(position: int, text: str) -> str:
            flag = check.frame[flag_column].iloc[position]
            return (
                f"{text!r} is above {dotted}.limit = {limit} but the row is not censored "
                f"(column {flag_column!r} is {flag!r}): a finish cannot come after the limit"
            )
    else:

        def why(position: int, text: str) -> str:
            return (
                f'{text!r} is above {dotted}.limit = {limit}, and with censored = "none" '
                "every time is a finish: a finish cannot come after the limit"
            )

    check.cells(rows & (times > outcome.limit) & ~censored, column, why)


def _check_participants(check: _CsvCheck, column: str, rows: pd.Series) -> None:
    """Participant ids are unique among the analysed rows (blank ids are not compared)."""
    ids = check.frame[column][rows & (check.frame[column] != "")]
    repeated = ids[ids.duplicated(keep=False)]
    if repeated.empty:
        return
    lines: dict[str, list[int]] = {}
    for position, value in repeated.items():
        lines.setdefault(str(value), []).append(int(str(position)) + 2)
    listed = "; ".join(
        f"{value!r} on lines {', '.join(map(str, found))}"
        for value, found in list(lines.items())[:SHOWN_DUPLICATES]
    )
    more = len(lines) - SHOWN_DUPLICATES
    check.messages.append(
        f"{check.name}:{min(lines[next(iter(lines))])}: column {column!r} (data.participant): "
        f"duplicate participant ids: {listed}"
        + (f"; and {more} more duplicated ids" if more > 0 else "")
    )


def _filter_rows(check: _CsvCheck, row_filter: RowFilter) -> pd.Series:
    frame = check.frame
    text = frame[row_filter.column]
    if row_filter.op in ("==", "!=", "in"):
        numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
        wanted = [pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0] for v in row_filter.values]
        numeric = numbers.notna().all() and all(pd.notna(w) for w in wanted)
        hit = numbers.isin([float(w) for w in wanted]) if numeric else text.isin(row_filter.values)
        return ~hit if row_filter.op == "!=" else hit
    numbers = check.numbers(row_filter.column, pd.Series(True, index=frame.index))
    try:
        value = float(row_filter.values[0])
    except ValueError:
        check.messages.append(
            f"{check.mapping.at('data.filter')}: {row_filter.values[0]!r} is not a number"
        )
        return pd.Series(True, index=frame.index)
    compare = {
        ">": numbers > value,
        ">=": numbers >= value,
        "<": numbers < value,
        "<=": numbers <= value,
    }[row_filter.op]
    return compare.fillna(False).astype(bool)


def _maybe_numeric(series: pd.Series) -> pd.Series:
    """Numbers if every non-blank value is one (blank -> NaN), else text (blank -> None)."""
    present = series[series != ""]
    numbers = pd.to_numeric(present, errors="coerce")
    if len(present) and numbers.notna().all():
        return pd.to_numeric(series.where(series != ""), errors="coerce").astype(np.float64)
    return series.where(series != "", None)


def _check_columns(check: _CsvCheck, mapping: Mapping) -> bool:
    """Every column the mapping names must be in the CSV; True if the row filter's is."""
    check.column("arms.column", mapping.arm_column)
    filter_ok = mapping.row_filter is not None and check.column(
        "data.filter", mapping.row_filter.column
    )
    for dotted, column in [
        ("data.participant", mapping.participant),
        ("data.per_protocol", mapping.per_protocol),
        *((f"data.baseline.{i}", c) for i, c in enumerate(mapping.baseline)),
        *((f"covariates.{k}", c) for k, c in mapping.covariates.items()),
    ]:
        if column:
            check.column(dotted, column)
    for outcome in mapping.outcomes.values():
        dotted = f"outcomes.{outcome.name}"
        parts = outcome.categories.values() if outcome.kind == "categories" else [outcome]
        for part in parts:
            prefix = f"{dotted}.{part.name}" if outcome.kind == "categories" else dotted
            check.column(f"{prefix}.column", part.column)
            if part.max_column:
                check.column(f"{prefix}.max_column", part.max_column)
        if outcome.censoring.column:
            check.column(f"{dotted}.censored", outcome.censoring.column)
    return filter_ok


def _csv_consort(
    mapping: Mapping,
    arms: pd.Series,
    included: pd.Series,
    data: pd.DataFrame,
    outcomes: dict[str, OutcomeSpec],
    per_protocol_column: str | None,
) -> dict[str, Any]:
    """CONSORT counts for outside data: rows the filter drops count as screened out."""
    reason = f"excluded by the row filter ({mapping.row_filter.text})" if mapping.row_filter else ""
    consort_frame = pd.DataFrame(
        {
            "arm": arms.where(included, ""),
            "status": np.select(
                [~included, arms == ""], ["screened_out", "unallocated"], "completed"
            ),
            "screen_out_reasons": np.where(included, "", reason),
        }
    )
    if per_protocol_column:
        consort_frame["per_protocol"] = data["per_protocol"]
        consort_frame["per_protocol_exclusions"] = np.where(
            data["per_protocol"], "", f"{mapping.per_protocol} is false"
        )
    primary = (mapping.plan.get("primary") or {}).get("outcome")
    primary_spec = outcomes.get(primary) if primary else None
    if primary_spec is not None and primary_spec.column:
        consort_frame["__primary__"] = data[primary_spec.column]
    consort = consort_counts(
        consort_frame,
        arm_order=[mapping.reference_arm],
        outcome_column="__primary__" if "__primary__" in consort_frame else None,
    )
    return consort


def csv_analysis_input(csv_path: str | Path, mapping: Mapping) -> AnalysisInput:
    """The `AnalysisInput` for a CSV described by ``mapping`` (see `load_mapping`)."""
    path = Path(csv_path)
    name = str(csv_path)
    frame, content = _read_csv(path, name)
    check = _CsvCheck(frame, name, mapping)
    everyone = pd.Series(True, index=frame.index)

    filter_ok = _check_columns(check, mapping)
    check.raise_if_any()

    included = (
        _filter_rows(check, mapping.row_filter) if mapping.row_filter and filter_ok else everyone
    )
    check.raise_if_any()
    if mapping.participant:
        _check_participants(check, mapping.participant, included)
    arms = frame[mapping.arm_column]
    present = sorted(set(arms[included & (arms != "")]))
    if mapping.reference_arm not in present:
        raise MappingError(
            f"{mapping.at('arms.reference')}: reference arm {mapping.reference_arm!r} not found "
            f"in column {mapping.arm_column!r} of {name} (values: {', '.join(present) or 'none'})"
        )

    data = pd.DataFrame(index=frame.index)
    data["participant"] = (
        frame[mapping.participant] if mapping.participant else (frame.index + 1).astype(str)
    )
    data["arm"] = arms
    outcomes: dict[str, OutcomeSpec] = {}
    for outcome in mapping.outcomes.values():
        outcomes[outcome.name] = _read_outcome(check, data, outcome, included)
    for column in {*mapping.covariates.values(), *mapping.baseline}:
        if column not in data.columns:
            data[column] = _maybe_numeric(frame[column])
    per_protocol_column = None
    if mapping.per_protocol:
        per_protocol_column = "per_protocol"
        data["per_protocol"] = check.flags(mapping.per_protocol, included).map(bool)
    check.raise_if_any()

    consort = _csv_consort(mapping, arms, included, data, outcomes, per_protocol_column)
    analysed = data.loc[included].reset_index(drop=True)
    return AnalysisInput(
        frame=analysed,
        plan=mapping.plan,
        reference_arm=mapping.reference_arm,
        outcomes=outcomes,
        arm_column="arm",
        arm_labels=dict(mapping.arm_labels),
        covariates=dict(mapping.covariates),
        baseline_columns=list(mapping.baseline),
        items=None,
        per_protocol_column=per_protocol_column,
        meta={
            "title": mapping.title or f"Re-analysis of {path.name}",
            "source": "csv",
            "synthetic": False,
            "data_file": path.name,
            "mapping_file": Path(mapping.path).name,
            "snapshot": {
                "rows": len(frame),
                "sha256": hashlib.sha256(content).hexdigest(),
                "file": path.name,
            },
            "notes": [
                f"{int((~included).sum())} of {len(frame)} rows excluded by the row filter "
                f"({mapping.row_filter.text})."
            ]
            if mapping.row_filter
            else [],
        },
        consort=consort,
    )


def _read_outcome(
    check: _CsvCheck, data: pd.DataFrame, outcome: OutcomeMapping, rows: pd.Series
) -> OutcomeSpec:
    if outcome.kind == "categories":
        parts = {}
        for key, part in outcome.categories.items():
            data[part.column] = check.numbers(part.column, rows)
            if part.max_column:
                data[part.max_column] = check.numbers(part.max_column, rows)
            _check_points(
                check,
                part,
                f"outcomes.{outcome.name}.{key}",
                data[part.column],
                data[part.max_column] if part.max_column else None,
                rows,
            )
            parts[key] = OutcomeSpec(
                "continuous",
                part.column,
                label=part.label,
                max_points=part.max_points,
                max_column=part.max_column,
            )
        return OutcomeSpec("categories", label=outcome.label, unit=outcome.unit, categories=parts)
    if outcome.kind == "binary":
        data[outcome.column] = check.flags(outcome.column, rows).map(
            lambda v: np.nan if v is None else float(v)
        )
        return OutcomeSpec("binary", outcome.column, label=outcome.label, unit=outcome.unit)
    data[outcome.column] = check.numbers(outcome.column, rows)
    if outcome.max_column:
        data[outcome.max_column] = check.numbers(outcome.max_column, rows)
    if outcome.kind == "continuous":
        _check_points(
            check,
            outcome,
            f"outcomes.{outcome.name}",
            data[outcome.column],
            data[outcome.max_column] if outcome.max_column else None,
            rows,
        )
    censored_column = None
    if outcome.kind == "time":
        # Always an explicit flag, so a limit given only as the restricted-mean horizon
        # (censored = "none") does not censor anything.
        censored_column = f"__censored__{outcome.name}"
        rule = outcome.censoring
        time = data[outcome.column]
        raw_time = time.copy()  # before a missing flag blanks it: still checked
        # Rows where a time above the limit is fine: censored ones ("at_limit" censors
        # every such time) and ones without a flag (their time is dropped below).
        late_ok = pd.Series(rule.kind == "at_limit", index=data.index)
        if rule.kind == "at_limit" and outcome.limit is not None:
            censored = (time >= outcome.limit).where(time.notna())
        elif rule.column:
            flags = check.flags(rule.column, rows)
            finished = flags if rule.kind == "completed_column" else flags.map(_negate)
            censored = finished.map(_negate)
            late_ok = flags.isna()
            # No flag, no usable time: a censoring status cannot be guessed.
            data.loc[flags.isna(), outcome.column] = np.nan
        else:
            censored = pd.Series(False, index=data.index)
        data[censored_column] = censored.map(lambda v: v is True or v == 1)
        late_ok = late_ok.astype(bool) | data[censored_column].astype(bool)
        _check_times(check, outcome, raw_time, late_ok, rows)
    return OutcomeSpec(
        outcome.kind,
        outcome.column,
        label=outcome.label,
        unit=outcome.unit,
        max_points=outcome.max_points,
        max_column=outcome.max_column,
        censored_column=censored_column,
        limit=outcome.limit,
    )


def _negate(value: bool | None) -> bool | None:
    return None if value is None else not value
