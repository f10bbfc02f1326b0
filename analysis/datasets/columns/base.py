"""A participants column declared together with the function that computes its value, so the
declared columns and the computed values cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from analysis.datasets.column import Column
from analysis.datasets.people import Person

P = "participants"


@dataclass(frozen=True)
class Computed:
    # Column stays a plain record (the API serialises it field by field), so the function
    # travels beside it rather than inside it.
    column: Column
    compute: Callable[[Person], Any]


def col(
    name: str,
    type: str,
    description: str,
    source: str,
    compute: Callable[[Person], Any],
    *,
    unit: str = "",
    allowed: tuple[str, ...] = (),
    identifier: bool = False,
) -> Computed:
    return Computed(Column(name, type, description, source, unit, allowed, identifier), compute)
