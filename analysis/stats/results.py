"""The typed results every test returns, and their JSON shape."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Alternative = Literal["two-sided", "less", "greater"]


def _json_float(value: float | None) -> float | None:
    """A float for JSON: NaN and infinities (not representable in JSON) become None."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class EffectSize:
    """A standardized effect (Cohen's d, Hedges' g, odds ratio, ...) with its interval."""

    name: str
    value: float
    ci_low: float = math.nan
    ci_high: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _json_float(self.value),
            "ci_low": _json_float(self.ci_low),
            "ci_high": _json_float(self.ci_high),
        }


@dataclass(frozen=True)
class Result:
    """One statistical result; the fields are those of an entry of the JSON ``results`` list.

    * ``outcome``: the analysed column (quiz score, a category score, completion time).
    * ``method``: ``welch_t``, ``student_t``, ``mann_whitney``, ``permutation``,
      ``bootstrap``, ``tost``, ``ancova``, ``interaction``, ``gee_logistic``, ``anova``,
      ``kruskal``, ``km_median``, ``logrank``, ``cox`` or ``rmst``.
    * ``groups``: ``(arm, reference)`` for a comparison, ``(arm,)`` for a per-arm summary
      (a Kaplan-Meier median), all arms (reference first) for an omnibus test.
    * ``n``: observations actually used (participants for ``gee_logistic``).
    * ``estimate``, ``ci_low``, ``ci_high``: a difference arm - reference (mean, adjusted
      mean, Hodges-Lehmann shift, restricted mean time), a ratio arm / reference for ``cox``
      (hazard of finishing) and ``gee_logistic`` (odds of a correct answer), the median for
      ``km_median``; NaN (JSON null) where there is none, infinite (null) when unbounded.
    * ``p_value``: the method's own p; ``adjusted_p``: Holm or BH over the family the notes
      name, None if not adjusted.
    * ``statistic`` and ``df``: t, F, chi-square, z or W as the method defines.
    * ``effect_size``: standardized effect with its interval, where one applies.
    * ``covariates``: the adjustment covariates of a model.
    * ``notes``: plain-language details (direction, corrections, rows dropped).
    """

    outcome: str
    method: str
    groups: tuple[str, ...]
    n: int
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float | None = None
    df: float | None = None
    effect_size: EffectSize | None = None
    adjusted_p: float | None = None
    covariates: tuple[str, ...] = ()
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe values only: NaN and infinities become None, tuples become lists."""
        return {
            "outcome": self.outcome,
            "method": self.method,
            "groups": list(self.groups),
            "n": int(self.n),
            "estimate": _json_float(self.estimate),
            "ci_low": _json_float(self.ci_low),
            "ci_high": _json_float(self.ci_high),
            "p_value": _json_float(self.p_value),
            "statistic": _json_float(self.statistic),
            "df": _json_float(self.df),
            "effect_size": None if self.effect_size is None else self.effect_size.to_dict(),
            "adjusted_p": _json_float(self.adjusted_p),
            "covariates": list(self.covariates),
            "notes": self.notes,
        }


def join_notes(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def results_to_json(results: Iterable[Result]) -> dict[str, list[dict[str, Any]]]:
    """The ``{"results": [...]}`` document of ``analyze --json``."""
    return {"results": [result.to_dict() for result in results]}
