"""The declaration of a data set's column, as the codebook describes it."""

from __future__ import annotations

from dataclasses import dataclass

DATASETS = ("participants", "items", "events", "allocations")
TYPES = ("string", "integer", "number", "boolean", "datetime", "json")


class UnknownDataset(ValueError):
    pass


def unknown_dataset(name: str) -> UnknownDataset:
    return UnknownDataset(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")


@dataclass(frozen=True)
class Column:
    """One column of a data set, as the codebook describes it."""

    name: str
    type: str
    description: str
    source: str
    unit: str = ""
    allowed: tuple[str, ...] = ()
    identifier: bool = False
