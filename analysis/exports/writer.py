"""What a format writer is: the files it adds to a bundle and how it renders a data set.

The bundle knows formats only through this interface (and the registry in
``analysis.exports.formats``), so a format module depends on the shared cell and writer
modules and never on the bundle that uses it."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from analysis.datasets import DATASETS, Column, iter_dataset_chunks
from trials.models import Trial

CHUNK_ROWS = 20_000

RowCounter = Callable[[int], None]
CounterFor = Callable[[str], RowCounter]
RowsOf = Callable[[str], Callable[[], int]]


@dataclass
class BundleEntry:
    """One file of a bundle: its path inside the bundle, its bytes (produced lazily, as the
    file is written), the data set it holds, and how to count its rows once written."""

    path: str
    chunks: Iterator[bytes]
    dataset: str = ""
    rows: Callable[[], int] | None = None


class ByteSink(io.RawIOBase):
    """A write-only, non-seekable file that keeps what is written until drained."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0
        self.pending = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        self.pending += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts = []
        self.pending = 0
        return out


def dataset_chunks(trial: Trial, name: str, *, identified: bool = False) -> Iterator[pd.DataFrame]:
    """A data set in frames of CHUNK_ROWS rows (looked up at call time, so tests can make the
    chunks small)."""
    return iter_dataset_chunks(trial, name, identified=identified, chunk_size=CHUNK_ROWS)


class FormatWriter:
    """One export format. The defaults describe a plain format: every data set as one file
    rendered by ``render``, nothing else. A richer layout (ProgSnap2) adds tables, files,
    row counts and codebook text by overriding the hooks."""

    name: ClassVar[str]
    extension: ClassVar[str]  # of the data set files
    datasets: ClassVar[tuple[str, ...]] = DATASETS
    # Tables whose "rows now" figure is not the exact row count of the file, and what it is.
    row_notes: ClassVar[dict[str, str]] = {}
    # Added to the codebook's and the manifest's CSV conventions where a file departs from them.
    codebook_csv_note: ClassVar[str] = ""
    manifest_csv_note: ClassVar[str] = ""

    def render(
        self,
        columns: Sequence[Column],
        frames: Iterable[pd.DataFrame],
        *,
        on_rows: RowCounter | None,
        dataset: str,
        trial: Trial,
    ) -> Iterator[bytes]:
        raise NotImplementedError

    def files_note(self) -> str:
        return ", ".join(f"{name}.{self.extension}" for name in self.datasets)

    def extra_tables(self) -> dict[str, list[Column]]:
        return {}

    def extra_entries(
        self, trial: Trial, counter: CounterFor, rows_of: RowsOf
    ) -> Iterator[BundleEntry]:
        return iter(())

    def extra_rows(self, trial: Trial, counts: dict[str, int]) -> dict[str, int]:
        """Rows of the extra tables now, given the data sets' row counts."""
        return {}

    def appendix(self) -> list[str]:
        return []
