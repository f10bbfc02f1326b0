"""Progress bars of the analysis commands (``export_data``, ``analyze``, ``synthesize``):
tqdm on stderr, shown only when stderr is a terminal and ``--no-progress`` is not given, so
scripts, pipes and tests get clean output."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from types import TracebackType
from typing import IO, Any

from django.core.management.base import BaseCommand
from tqdm import tqdm


def add_progress_argument(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--no-progress",
        action="store_true",
        dest="no_progress",
        help="no progress bar (it is shown on stderr only when stderr is a terminal)",
    )


def _stream(command: BaseCommand) -> IO[str]:
    # The command's stderr wrapper adds a newline to every write, which a bar redrawn with
    # carriage returns cannot have; write to the stream it wraps.
    out: IO[str] = getattr(command.stderr, "_out", sys.stderr)
    return out


class ProgressBar:
    """A tqdm bar fed ``(done, total, step)``, as the jobs and exports report progress."""

    def __init__(self, command: BaseCommand, options: dict[str, Any], *, unit: str) -> None:
        stream = _stream(command)
        enabled = not options.get("no_progress") and stream.isatty()
        self.bar = tqdm(total=0, file=stream, disable=not enabled, unit=unit, dynamic_ncols=True)

    def __call__(self, done: int, total: int, step: str) -> None:
        if self.bar.disable:
            return
        if total != self.bar.total:
            self.bar.total = total
        self.bar.set_description_str(step, refresh=False)
        self.bar.update(done - self.bar.n)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.bar.close()
