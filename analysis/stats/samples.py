"""Outcome values per arm out of a frame: the inputs every test shares."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.stats.results import FloatArray


def as_sample(values: npt.ArrayLike, name: str) -> FloatArray:
    sample = np.asarray(values, dtype=np.float64).ravel()
    sample = sample[~np.isnan(sample)]
    if sample.size == 0:
        raise ValueError(f"sample {name!r} has no non-missing values")
    return sample


def arm_levels(frame: pd.DataFrame, arm: str, reference: str) -> list[str]:
    """Arms present in the frame as strings, the reference first, the others sorted."""
    levels = sorted({str(level) for level in frame[arm].dropna().unique()})
    if reference not in levels:
        raise ValueError(f"reference arm {reference!r} not found in column {arm!r}: {levels}")
    return [reference, *(level for level in levels if level != reference)]


def arm_samples(
    frame: pd.DataFrame, *, outcome: str, arm: str, reference: str
) -> dict[str, FloatArray]:
    """Non-missing values of ``outcome`` per arm (arm labels as strings, reference first)."""
    labels = frame[arm].astype("string")
    samples: dict[str, FloatArray] = {}
    for level in arm_levels(frame, arm, reference):
        values = pd.to_numeric(frame.loc[labels == level, outcome], errors="raise")
        samples[level] = as_sample(values.to_numpy(dtype=np.float64, na_value=np.nan), level)
    return samples


def dropped_note(n_rows: int, n_used: int, why: str) -> str:
    dropped = n_rows - n_used
    return f"{dropped} of {n_rows} rows dropped ({why})." if dropped else ""
