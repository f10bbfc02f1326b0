"""Design matrices for the regression models: complete cases, intercept, arm indicators."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.stats.results import FloatArray
from analysis.stats.samples import arm_levels


@dataclass(frozen=True)
class Design:
    y: FloatArray
    x: pd.DataFrame
    arm_columns: dict[str, str]  # arm level -> design column
    n_rows: int
    used: npt.NDArray[np.bool_] = field(repr=False)


def covariate_frame(frame: pd.DataFrame, covariate: str) -> pd.DataFrame:
    """A numeric covariate as is; a categorical one as indicators (first level dropped)."""
    column = frame[covariate]
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return pd.DataFrame({covariate: column.astype(np.float64)})
    dummies = pd.get_dummies(column.astype("string"), prefix=covariate, prefix_sep="=")
    return dummies.iloc[:, 1:].astype(np.float64)


def build_design(
    frame: pd.DataFrame,
    *,
    outcome: str,
    arm: str,
    reference: str,
    covariates: Sequence[str],
    extra: Sequence[str] = (),
) -> Design:
    """Complete cases of outcome, arm and covariates, with an intercept and arm indicators."""
    needed = [outcome, arm, *covariates, *extra]
    used = frame[needed].notna().all(axis=1).to_numpy()
    data = frame.loc[used]
    levels = arm_levels(data, arm, reference)
    labels = data[arm].astype("string")
    x = pd.DataFrame({"const": np.ones(len(data))}, index=data.index)
    arm_columns: dict[str, str] = {}
    for level in levels[1:]:
        name = f"{arm}={level}"
        x[name] = (labels == level).astype(np.float64)
        arm_columns[level] = name
    for covariate in covariates:
        x = x.join(covariate_frame(data, covariate))
    y = pd.to_numeric(data[outcome], errors="raise").to_numpy(dtype=np.float64)
    return Design(y=y, x=x, arm_columns=arm_columns, n_rows=len(frame), used=used)
