"""CONSORT 2025 participant flow: counts from the participants frame, a table and an SVG.

Pure (pandas only). The counts come from these participants-frame columns; missing ones get
the neutral default in brackets, so a frame from elsewhere (a CSV) still gives a flow:
``status`` ("completed"), ``eligible`` (true), ``screen_out_reasons`` ("; "-joined, ""),
``arm`` (the arm key, empty if not allocated), ``arm_label`` (the key), ``allocated``
(arm non-empty), ``received_intervention`` (allocated), ``lost_reason`` (""),
``completed_trial`` (allocated), ``itt`` (allocated), ``per_protocol`` (itt),
``per_protocol_exclusions`` ("; "-joined, ""), ``duplicate_flags`` (""), ``duplicate_excluded``
(false), ``attention_passed`` (empty when the person answered no attention check: the rule
``passed_attention_check`` then counts as "never reached", not as "failed").

Definitions (one row per person who opened the entry link):
* assessed for eligibility: every row;
* excluded: every row not allocated, split into duplicate entries (``duplicate_excluded``: the
  plan's rule takes out repeats of an earlier entry), declined consent (status ``declined``),
  not meeting inclusion criteria (``screened_out`` or ``eligible`` false; each reason counted,
  a person may have several) and other reasons (left or still in consent/screening);
* likely duplicates the plan keeps (``duplicate_flags`` set, not ``duplicate_excluded``) are
  counted as such, excluded nowhere;
* per arm: allocated; received the allocated intervention; did not receive it (with the
  reason the participant stopped); lost to follow-up or discontinued (allocated and did not
  complete the trial, by reason; participants still in progress are counted as such);
  excluded from analysis as duplicates (allocated, ``duplicate_excluded``: not in ``itt``);
  analysed ITT (everyone allocated) and, if an outcome column is given, how many of them have
  no value of it and so how many the primary (ITT) analysis used; per-protocol, with the rules
  each excluded participant failed (shown in words, see `PP_RULE_LABELS`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

import pandas as pd

STAGES = ("Enrollment", "Allocation", "Follow-up", "Analysis")
# Per-protocol rules as the table and the diagram name them; the counts keep the rule names.
PP_RULE_LABELS = {
    "completed_quiz": "did not complete the quiz",
    "passed_attention_check": "failed the attention check",
    "attention_check_not_reached": "never reached the attention check",
    "completed_tasks": "did not complete the tasks",
    "no_noncompliance_flag": "non-compliance flag (e.g. outside help)",
    "not_allocated": "not allocated",
    "duplicate": "likely duplicate entry",
}


def pp_reason_labels(reasons: dict[str, int]) -> dict[str, int]:
    """Per-protocol exclusion counts keyed by words instead of rule names (unknown rules kept)."""
    labelled: Counter[str] = Counter()
    for rule, n in reasons.items():
        labelled[PP_RULE_LABELS.get(rule, rule)] += n
    return dict(sorted(labelled.items(), key=lambda kv: (-kv[1], kv[0])))


def analysed_primary(arm: dict[str, Any]) -> int | None:
    """How many of an arm the primary (ITT) analysis used: allocated minus those without a
    primary outcome; None if the counts name no outcome column."""
    if "outcome_missing" not in arm:
        return None
    if arm.get("analysed_primary") is not None:
        return int(arm["analysed_primary"])
    return int(arm["analysed_itt"]) - int(arm["outcome_missing"])


def _text(frame: pd.DataFrame, column: str, default: str = "") -> pd.Series:
    if column not in frame.columns:
        return pd.Series(default, index=frame.index, dtype="object")
    return frame[column].map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else v)


def _flag(frame: pd.DataFrame, column: str, default: pd.Series) -> pd.Series:
    """A boolean column read leniently (True/1/"true"/"yes"); missing values are false."""
    if column not in frame.columns:
        return default.astype(bool)
    return frame[column].map(_truthy).astype(bool)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y", "t")
    if value is None or (isinstance(value, float) and value != value):
        return False
    try:
        return bool(value)
    except (TypeError, ValueError):
        return False


def _is_false(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("false", "0", "no", "n", "f")
    if value is None or (isinstance(value, float) and value != value):
        return False
    return value is False or value == 0


def _reasons(values: pd.Series) -> dict[str, int]:
    counter: Counter[str] = Counter()
    for value in values:
        for part in str(value).split(";"):
            reason = part.strip()
            if reason:
                counter[reason] += 1
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def _attention_not_reached(value: str) -> str:
    rules = [part.strip() for part in str(value).split(";") if part.strip()]
    if "passed_attention_check" not in rules:
        return value
    rules.remove("passed_attention_check")
    if "completed_quiz" not in rules:  # counted there already otherwise
        rules.append("attention_check_not_reached")
    return "; ".join(rules)


def _single_reasons(values: pd.Series) -> dict[str, int]:
    counter = Counter(str(v).strip() or "reason not recorded" for v in values)
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def _excluded_counts(
    frame: pd.DataFrame,
    allocated: pd.Series,
    status: pd.Series,
    duplicate_excluded: pd.Series,
) -> dict[str, Any]:
    """Why the participants who were not allocated were not: each counted in one box only,
    duplicates first, then declined, then not eligible, then anything else."""
    # Unknown eligibility (None: screening not finished) is not "not eligible".
    ineligible = (
        frame["eligible"].map(_is_false).astype(bool)
        if "eligible" in frame.columns
        else pd.Series(False, index=frame.index)
    )
    screened_out = (status == "screened_out") | ineligible
    not_allocated = ~allocated
    duplicate = not_allocated & duplicate_excluded
    declined = not_allocated & ~duplicate & (status == "declined")
    not_eligible = not_allocated & ~duplicate & ~declined & screened_out
    other = not_allocated & ~duplicate & ~declined & ~not_eligible
    other_reason = status[other].map(
        lambda s: {
            "consenting": "left or still at consent",
            "screening": "left or still at screening",
            "unallocated": "no arm recorded",
        }.get(s, f"not allocated (status {s or 'unknown'})")
    )
    return {
        "total": int(not_allocated.sum()),
        "duplicate": int(duplicate.sum()),
        "declined": int(declined.sum()),
        "not_eligible": int(not_eligible.sum()),
        "not_eligible_reasons": _reasons(_text(frame, "screen_out_reasons")[not_eligible]),
        "other": int(other.sum()),
        "other_reasons": _single_reasons(other_reason),
    }


def _follow_up(
    frame: pd.DataFrame,
    allocated: pd.Series,
    status: pd.Series,
    duplicate_excluded: pd.Series,
) -> dict[str, pd.Series]:
    """Per allocated participant: received, completed, analysed (ITT, per protocol), and the
    reasons for loss and for per-protocol exclusion."""
    itt = _flag(frame, "itt", allocated) & allocated & ~duplicate_excluded
    lost_reason = _text(frame, "lost_reason").astype(str).str.strip()
    in_progress = status == "active"
    lost_reason = lost_reason.where(
        lost_reason != "", in_progress.map({True: "still in progress", False: ""})
    )
    exclusions = _text(frame, "per_protocol_exclusions").astype(str)
    if "attention_passed" in frame.columns:
        # The rule passed_attention_check also fails for someone with no quiz answers at all;
        # they did not fail a check, they never reached one (``attention_passed`` empty).
        not_reached = frame["attention_passed"].map(lambda v: bool(pd.isna(v))).astype(bool)
        exclusions = exclusions.where(~not_reached, exclusions.map(_attention_not_reached))
    return {
        "received": _flag(frame, "received_intervention", allocated) & allocated,
        "completed": _flag(frame, "completed_trial", allocated) & allocated,
        "itt": itt,
        "per_protocol": _flag(frame, "per_protocol", itt) & itt,
        "lost_reason": lost_reason,
        "exclusions": exclusions,
        "duplicate_excluded": duplicate_excluded,
    }


def _arm_entry(
    frame: pd.DataFrame,
    key: str,
    rows: pd.Series,
    labels: pd.Series,
    flow: dict[str, pd.Series],
    outcome_column: str | None,
) -> dict[str, Any]:
    """The counts of one arm, from allocation to analysis."""
    received, completed = flow["received"], flow["completed"]
    itt, per_protocol = flow["itt"], flow["per_protocol"]
    lost_reason = flow["lost_reason"]
    label_values = [v for v in labels[rows] if v]
    entry: dict[str, Any] = {
        "arm": key,
        "label": label_values[0] if label_values else key,
        "allocated": int(rows.sum()),
        "received": int((rows & received).sum()),
        "not_received": int((rows & ~received).sum()),
        "not_received_reasons": _single_reasons(lost_reason[rows & ~received]),
        "lost": int((rows & ~completed).sum()),
        "lost_reasons": _single_reasons(lost_reason[rows & ~completed]),
        "completed": int((rows & completed).sum()),
        "excluded_duplicate": int((rows & flow["duplicate_excluded"]).sum()),
        "analysed_itt": int((rows & itt).sum()),
        "analysed_pp": int((rows & per_protocol).sum()),
        "excluded_pp": int((rows & itt & ~per_protocol).sum()),
        "excluded_pp_reasons": _reasons(flow["exclusions"][rows & itt & ~per_protocol]),
    }
    if outcome_column is not None and outcome_column in frame.columns:
        missing = frame[outcome_column].isna() & rows & itt
        entry["outcome_missing"] = int(missing.sum())
        entry["analysed_primary"] = int((rows & itt).sum()) - entry["outcome_missing"]
    return entry


def consort_counts(
    participants: pd.DataFrame,
    *,
    arm_order: Sequence[str] = (),
    outcome_column: str | None = None,
) -> dict[str, Any]:
    """CONSORT flow counts (see the module docstring for the definitions).

    ``arm_order`` lists arm keys in display order (the reference arm first, say); arms not
    listed follow, sorted. ``outcome_column`` (e.g. ``quiz_score``) adds, per arm, how many
    allocated participants have no value of the primary outcome.
    """
    frame = participants
    arm = _text(frame, "arm").astype(str).str.strip()
    has_arm = arm != ""
    allocated = _flag(frame, "allocated", has_arm) & has_arm
    status = _text(frame, "status", "completed").astype(str)
    duplicate_excluded = _flag(frame, "duplicate_excluded", pd.Series(False, index=frame.index))
    duplicate_kept = (
        _text(frame, "duplicate_flags").astype(str).str.strip() != ""
    ) & ~duplicate_excluded
    excluded = _excluded_counts(frame, allocated, status, duplicate_excluded)
    flow = _follow_up(frame, allocated, status, duplicate_excluded)
    labels = _text(frame, "arm_label").astype(str)

    present = sorted(set(arm[allocated]))
    order = [a for a in arm_order if a in present] + [a for a in present if a not in arm_order]
    arms = [
        _arm_entry(frame, key, allocated & (arm == key), labels, flow, outcome_column)
        for key in order
    ]
    return {
        "assessed": len(frame),
        "excluded": excluded,
        "randomized": int(allocated.sum()),
        "duplicates_kept": int(duplicate_kept.sum()),
        "arms": arms,
        "outcome_column": outcome_column,
    }


def _enrollment_rows(counts: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows before allocation: one total each, not per arm."""
    excluded = counts["excluded"]
    rows: list[dict[str, Any]] = [
        {"stage": "Enrollment", "item": "Assessed for eligibility", "total": counts["assessed"]},
        {"stage": "Enrollment", "item": "Excluded", "total": excluded["total"]},
    ]
    if excluded.get("duplicate"):
        rows.append(
            {
                "stage": "Enrollment",
                "item": "  Duplicate entry (excluded per the plan)",
                "total": excluded["duplicate"],
            }
        )
    rows += [
        {"stage": "Enrollment", "item": "  Declined to participate", "total": excluded["declined"]},
        {
            "stage": "Enrollment",
            "item": "  Not meeting inclusion criteria",
            "total": excluded["not_eligible"],
        },
    ]
    rows += [
        {"stage": "Enrollment", "item": f"    {reason}", "total": n}
        for reason, n in excluded["not_eligible_reasons"].items()
    ]
    rows.append({"stage": "Enrollment", "item": "  Other reasons", "total": excluded["other"]})
    rows += [
        {"stage": "Enrollment", "item": f"    {reason}", "total": n}
        for reason, n in excluded["other_reasons"].items()
    ]
    rows.append({"stage": "Enrollment", "item": "Randomized", "total": counts["randomized"]})
    if counts.get("duplicates_kept"):
        rows.append(
            {
                "stage": "Enrollment",
                "item": "Flagged as likely duplicates, kept per the plan",
                "total": counts["duplicates_kept"],
            }
        )
    return rows


def _per_arm_row(arms: list[dict[str, Any]], stage: str, item: str, key: str) -> dict[str, Any]:
    values = [a.get(key) for a in arms]
    total = sum(v for v in values if v is not None) if values else 0
    return {"stage": stage, "item": item, "total": total, "arms": values}


def _reason_rows(arms: list[dict[str, Any]], stage: str, key: str) -> list[dict[str, Any]]:
    per_arm = [a[key] for a in arms]
    if key == "excluded_pp_reasons":
        per_arm = [pp_reason_labels(r) for r in per_arm]
    names = sorted({r for reasons in per_arm for r in reasons})
    return [
        {
            "stage": stage,
            "item": f"    {name}",
            "total": sum(r.get(name, 0) for r in per_arm),
            "arms": [r.get(name, 0) for r in per_arm],
        }
        for name in names
    ]


def _arm_rows(arms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows from allocation to analysis, one value per arm."""
    rows: list[dict[str, Any]] = []
    rows.append(_per_arm_row(arms, "Allocation", "Allocated", "allocated"))
    rows.append(_per_arm_row(arms, "Allocation", "  Received allocated intervention", "received"))
    rows.append(
        _per_arm_row(arms, "Allocation", "  Did not receive allocated intervention", "not_received")
    )
    rows += _reason_rows(arms, "Allocation", "not_received_reasons")
    rows.append(_per_arm_row(arms, "Follow-up", "Lost to follow-up / discontinued", "lost"))
    rows += _reason_rows(arms, "Follow-up", "lost_reasons")
    if any(a.get("excluded_duplicate") for a in arms):
        rows.append(
            _per_arm_row(
                arms,
                "Analysis",
                "Excluded from analysis: duplicate entry (per the plan)",
                "excluded_duplicate",
            )
        )
    if arms and all("outcome_missing" in a for a in arms):
        # CONSORT: the number analysed for the primary outcome, and why the others were not.
        values = [analysed_primary(a) or 0 for a in arms]
        rows.append(
            {
                "stage": "Analysis",
                "item": "Analysed (primary outcome, ITT)",
                "total": sum(values),
                "arms": values,
            }
        )
        rows.append(
            _per_arm_row(
                arms,
                "Analysis",
                "  Excluded from analysis: primary outcome missing",
                "outcome_missing",
            )
        )
    else:
        rows.append(_per_arm_row(arms, "Analysis", "Analysed, intention to treat", "analysed_itt"))
    rows.append(_per_arm_row(arms, "Analysis", "Analysed, per protocol", "analysed_pp"))
    rows.append(_per_arm_row(arms, "Analysis", "  Excluded from per-protocol", "excluded_pp"))
    rows += _reason_rows(arms, "Analysis", "excluded_pp_reasons")
    return rows


def consort_table(counts: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows ``{stage, item, total, arms: [per arm, in counts order]}`` (None = not per arm)."""
    rows = _enrollment_rows(counts) + _arm_rows(counts["arms"])
    for row in rows:
        row.setdefault("arms", None)
    return rows


# --------------------------------------------------------------------------------------------
# The flow diagram
# --------------------------------------------------------------------------------------------

_LINE = 15  # px per text line
_PAD = 8
_FONT = "font-family:Helvetica,Arial,sans-serif;font-size:12px"


def _reason_lines(reasons: dict[str, int], limit: int = 6) -> list[str]:
    items = list(reasons.items())
    lines = [f"   • {_shorten(reason, 42)} (n={n})" for reason, n in items[:limit]]
    if len(items) > limit:
        lines.append(
            f"   • {len(items) - limit} more reasons (n={sum(n for _, n in items[limit:])})"
        )
    return lines


def _text_width(lines: Sequence[str]) -> float:
    """Roughly how wide the lines are at 12px Helvetica (the first line is bold)."""
    widest = max((len(line) * (7.4 if i == 0 else 6.7) for i, line in enumerate(lines)), default=0)
    return widest + 2 * _PAD


def _shorten(text: str, width: int = 34) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class _Canvas:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def box(self, x: float, y: float, width: float, lines: Sequence[str]) -> float:
        """Draw a box whose top-left is (x, y); return its height."""
        height = _PAD * 2 + _LINE * len(lines)
        self.parts.append(
            f'<rect x="{x:g}" y="{y:g}" width="{width:g}" height="{height:g}" '
            'fill="#ffffff" stroke="#333333" stroke-width="1"/>'
        )
        for i, line in enumerate(lines):
            weight = ' font-weight="bold"' if i == 0 else ""
            self.parts.append(
                f'<text x="{x + _PAD:g}" y="{y + _PAD + _LINE * (i + 1) - 4:g}"'
                f'{weight} xml:space="preserve">{escape(line)}</text>'
            )
        return height

    def arrow(self, x1: float, y1: float, x2: float, y2: float) -> None:
        self.parts.append(
            f'<line x1="{x1:g}" y1="{y1:g}" x2="{x2:g}" y2="{y2:g}" stroke="#333333" '
            'stroke-width="1" marker-end="url(#consort-arrow)"/>'
        )

    def band(self, y: float, height: float, label: str, width: float) -> None:
        self.parts.append(
            f'<rect x="0" y="{y:g}" width="{width:g}" height="{height:g}" fill="#dbe7f3" '
            'stroke="none" rx="3"/>'
        )
        self.parts.append(
            f'<text x="{width / 2:g}" y="{y + height / 2 + 4:g}" text-anchor="middle" '
            f'font-weight="bold">{escape(label)}</text>'
        )


def _stage_boxes(arms: list[dict[str, Any]]) -> list[list[list[str]]]:
    """The lines of every box below randomization: per stage, one box per arm."""
    return [
        [
            [
                f"Allocated to {_shorten(a['label'], 28)} (n = {a['allocated']})",
                f"  Received allocated intervention (n = {a['received']})",
                f"  Did not receive it (n = {a['not_received']})",
                *_reason_lines(a["not_received_reasons"]),
            ]
            for a in arms
        ],
        [
            [
                f"Lost to follow-up / discontinued (n = {a['lost']})",
                *_reason_lines(a["lost_reasons"]),
            ]
            for a in arms
        ],
        [
            [
                *(
                    [f"Excluded as duplicate entries (n = {a['excluded_duplicate']})"]
                    if a.get("excluded_duplicate")
                    else []
                ),
                *(
                    [
                        f"Analysed (primary outcome, ITT), n = {analysed_primary(a)}",
                        f"  Excluded from analysis (n = {a['outcome_missing']})",
                        f"   • primary outcome missing (n={a['outcome_missing']})",
                    ]
                    if "outcome_missing" in a
                    else [f"Analysed, ITT (n = {a['analysed_itt']})"]
                ),
                f"Analysed, per protocol (n = {a['analysed_pp']})",
                f"  Excluded from per-protocol (n = {a['excluded_pp']})",
                *_reason_lines(pp_reason_labels(a["excluded_pp_reasons"])),
            ]
            for a in arms
        ],
    ]


def _exclusion_lines(excluded: dict[str, Any]) -> list[str]:
    return [
        f"Excluded (n = {excluded['total']})",
        *(
            [f"  Duplicate entry (n = {excluded['duplicate']})"]
            if excluded.get("duplicate")
            else []
        ),
        f"  Declined to participate (n = {excluded['declined']})",
        f"  Not meeting inclusion criteria (n = {excluded['not_eligible']})",
        *_reason_lines(excluded["not_eligible_reasons"]),
        f"  Other reasons (n = {excluded['other']})",
        *_reason_lines(excluded["other_reasons"]),
    ]


def _draw_enrollment(
    canvas: _Canvas, counts: dict[str, Any], center: float, width: float, gap: float
) -> tuple[float, float]:
    """Assessed, excluded and randomized boxes; returns the bottom of the randomized box and
    the diagram width, wider if the exclusion box needs it."""
    y = 10.0
    assessed_w = 200.0
    assessed_h = canvas.box(
        center - assessed_w / 2,
        y,
        assessed_w,
        ["Assessed for eligibility", f"n = {counts['assessed']}"],
    )
    exclusion_lines = _exclusion_lines(counts["excluded"])
    excl_x = center + 40
    excl_w = max(width - excl_x - gap, _text_width(exclusion_lines))
    width = max(width, excl_x + excl_w + gap)
    excl_y = y + assessed_h + 20
    excl_h = canvas.box(excl_x, excl_y, excl_w, exclusion_lines)
    side_y = excl_y + excl_h / 2
    rand_y = excl_y + excl_h + 20
    canvas.arrow(center, y + assessed_h, center, rand_y)
    canvas.parts.append(
        f'<line x1="{center:g}" y1="{side_y:g}" x2="{excl_x:g}" y2="{side_y:g}" '
        'stroke="#333333" stroke-width="1" marker-end="url(#consort-arrow)"/>'
    )
    rand_lines = ["Randomized", f"n = {counts['randomized']}"]
    if counts.get("duplicates_kept"):
        rand_lines.append(f"(duplicates kept: {counts['duplicates_kept']})")
    rand_h = canvas.box(center - 100, rand_y, 200, rand_lines)
    return rand_y + rand_h, width


def _draw_stages(
    canvas: _Canvas,
    stage_boxes: list[list[list[str]]],
    *,
    left: float,
    column: float,
    gap: float,
    center: float,
    enrollment_bottom: float,
) -> tuple[float, list[tuple[str, float, float]]]:
    """One row of boxes per stage after enrollment, arrows from the box above; returns the
    diagram height and each stage's vertical extent (for the bands)."""
    layers: list[tuple[str, float, float]] = []

    def column_x(i: int) -> float:
        return left + i * (column + gap)

    y = enrollment_bottom + 30
    previous_bottom = [enrollment_bottom] * len(stage_boxes[0])
    for stage, boxes in zip(STAGES[1:], stage_boxes, strict=True):
        top = y
        heights = []
        for i, lines in enumerate(boxes):
            x = column_x(i)
            if stage == "Allocation":
                # From the randomization box down to each arm.
                canvas.parts.append(
                    f'<polyline points="{center:g},{enrollment_bottom:g} {center:g},'
                    f"{enrollment_bottom + 15:g} {x + column / 2:g},{enrollment_bottom + 15:g} "
                    f'{x + column / 2:g},{y:g}" fill="none" stroke="#333333" stroke-width="1" '
                    'marker-end="url(#consort-arrow)"/>'
                )
            else:
                canvas.arrow(x + column / 2, previous_bottom[i], x + column / 2, y)
            heights.append(canvas.box(x, y, column, lines))
        bottom = y + max(heights)
        previous_bottom = [y + h for h in heights]
        layers.append((stage, top - 8, bottom + 8))
        y = bottom + 30

    return y, layers


def _svg_document(
    canvas: _Canvas,
    layers: list[tuple[str, float, float]],
    *,
    width: float,
    height: float,
    band_width: float,
) -> str:
    bands = _Canvas()
    for label, top, bottom in layers:
        bands.band(top, bottom - top, label, band_width)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height:g}" '
        f'viewBox="0 0 {width:g} {height:g}" role="img" aria-label="CONSORT flow diagram" '
        f'style="{_FONT}">'
        '<defs><marker id="consort-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#333333"/></marker></defs>'
        + "".join(bands.parts)
        + "".join(canvas.parts)
        + "</svg>"
    )


def consort_svg(counts: dict[str, Any]) -> str:
    """The CONSORT 2025 flow diagram as SVG text: enrollment, allocation, follow-up and
    analysis boxes, one column per arm."""
    arms = counts["arms"] or [
        {
            "arm": "",
            "label": "(no arm)",
            "allocated": 0,
            "received": 0,
            "not_received": 0,
            "not_received_reasons": {},
            "lost": 0,
            "lost_reasons": {},
            "analysed_itt": 0,
            "analysed_pp": 0,
            "excluded_pp": 0,
            "excluded_pp_reasons": {},
        }
    ]
    gap, band_width = 20.0, 110.0
    left = band_width + gap
    stage_boxes = _stage_boxes(arms)
    column = max(240.0, *(_text_width(lines) for boxes in stage_boxes for lines in boxes))
    width = left + len(arms) * column + (len(arms) - 1) * gap + gap
    width = max(width, left + 2 * column + 2 * gap)
    canvas = _Canvas()
    center = left + (width - left - gap) / 2
    enrollment_bottom, width = _draw_enrollment(canvas, counts, center, width, gap)
    # Bands are drawn behind the boxes.
    layers: list[tuple[str, float, float]] = [("Enrollment", 0.0, enrollment_bottom + 10)]
    height, stage_layers = _draw_stages(
        canvas,
        stage_boxes,
        left=left,
        column=column,
        gap=gap,
        center=center,
        enrollment_bottom=enrollment_bottom,
    )
    return _svg_document(
        canvas, layers + stage_layers, width=width, height=height, band_width=band_width
    )
