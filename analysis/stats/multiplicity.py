"""Multiple testing: Holm and Benjamini-Hochberg adjusted p-values over a family."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from analysis.stats.results import FloatArray, Result, join_notes

AdjustMethod = Literal["holm", "bh"]

_ADJUST_LABEL: dict[AdjustMethod, str] = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def adjust_pvalues(p_values: npt.ArrayLike, method: AdjustMethod) -> FloatArray:
    """Holm (family-wise error) or Benjamini-Hochberg (false discovery rate) adjusted p.

    Same values as R's ``p.adjust(method = "holm" / "BH")`` and statsmodels'
    ``multipletests(method="holm" / "fdr_bh")`` - not its default, Holm-Sidak. Computed here
    because ``multipletests`` runs a full garbage collection on every call. NaN p-values stay
    NaN and do not count towards the family size.
    """
    raw = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(raw.shape, np.nan)
    present = np.flatnonzero(~np.isnan(raw))
    m = present.size
    if m == 0:
        return adjusted
    order = present[np.argsort(raw[present], kind="stable")]
    ranked = raw[order]
    rank = np.arange(1, m + 1)
    if method == "holm":
        # p_(i) * (m - i + 1), made non-decreasing from the smallest p upwards.
        values = np.maximum.accumulate(np.minimum(1.0, (m - rank + 1) * ranked))
    else:
        # p_(i) * m / i, made non-increasing from the largest p downwards.
        values = np.minimum.accumulate(np.minimum(1.0, ranked * m / rank)[::-1])[::-1]
    adjusted[order] = values
    return adjusted


def with_adjusted_p(results: Sequence[Result], method: AdjustMethod) -> list[Result]:
    """The results as one family, each with ``adjusted_p`` filled in."""
    adjusted = adjust_pvalues([r.p_value for r in results], method)
    note = f"{_ADJUST_LABEL[method]} adjustment over {len(results)} comparisons."
    return [
        replace(result, adjusted_p=float(p), notes=join_notes(result.notes, note))
        for result, p in zip(results, adjusted, strict=True)
    ]
