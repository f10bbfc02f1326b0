"""``python manage.py export_data SLUG --format csv|parquet|json|progsnap2 --out DIR``

Writes a trial's export bundle into DIR: its files unzipped (the same layout as inside the
zip the web page serves, ``manifest.json`` last), or with ``--zip`` the one zip file. A
progress bar goes to stderr when it is a terminal (``--no-progress``: never). DIR must
be empty or not exist yet. De-identified unless ``--identified`` (an operator's decision:
the command runs with the database's own access, so no permission is asked, but it warns
and the export is logged as identified)."""

from __future__ import annotations

import os
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from analysis.exports import (
    FORMATS,
    ExportError,
    expected_rows,
    export_to_dir,
    trial_for_export,
)
from analysis.management.progress import ProgressBar, add_progress_argument
from analysis.models import DataExport
from trials.models import Trial


class Command(BaseCommand):
    help = "Export a trial's data sets with a codebook and a manifest (row counts, SHA-256)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug", help="Trial slug")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("--out", required=True, help="Directory to write (empty or new)")
        parser.add_argument(
            "--trial-version",
            type=int,
            default=None,
            help="Trial version (default: the live one, else the newest)",
        )
        parser.add_argument(
            "--identified",
            action="store_true",
            help="Include participant identifiers (Prolific ids, completion codes)",
        )
        parser.add_argument(
            "--zip", action="store_true", help="Write the single zip bundle instead of its files"
        )
        add_progress_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        slug: str = options["slug"]
        try:
            trial = trial_for_export(slug, options["trial_version"])
        except Trial.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        out = Path(options["out"])
        _check_out_dir(out)
        if options["identified"]:
            self.stderr.write(
                self.style.WARNING(
                    "WARNING: this export contains participant identifiers (Prolific ids, "
                    "completion codes). It is logged as identified; store it accordingly."
                )
            )
        self.stdout.write(
            f"Exporting {trial.slug} v{trial.version} ({trial.status}) as {options['fmt']} "
            f"into {out}"
        )
        total = sum(expected_rows(trial, options["fmt"]).values())
        try:
            with ProgressBar(self, options, unit="rows") as bar:
                result = export_to_dir(
                    trial,
                    options["fmt"],
                    out,
                    identified=options["identified"],
                    progress=_RowsOfAll(bar, total),
                    as_zip=options["zip"],
                    channel=DataExport.Channel.COMMAND,
                )
        except (ExportError, OSError) as exc:
            raise CommandError(f"export failed: {exc}") from exc
        for f in result.files:
            rows = f"{f.rows:,} rows, " if f.rows is not None else ""
            self.stdout.write(f"  {f.path}: {rows}{f.bytes:,} bytes, sha256 {f.sha256[:16]}…")
        written = ", ".join(p.name for p in result.paths) if options["zip"] else "manifest.json"
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: {len(result.paths)} files in {out} ({written}); export #{result.export.pk}"
            )
        )


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CommandError(f"{out} exists and is not a directory")
    if out.is_dir():
        if any(out.iterdir()):
            raise CommandError(f"{out} is not empty; give a new or empty directory")
        if not os.access(out, os.W_OK | os.X_OK):
            raise CommandError(f"{out} is not writable")
        return
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise CommandError(f"cannot create {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CommandError(f"cannot create {out}: {parent} is not writable")


class _RowsOfAll:
    """The rows written of every table together, for one bar over the whole export."""

    def __init__(self, bar: ProgressBar, total: int) -> None:
        self.bar = bar
        self.total = total
        self.rows: dict[str, int] = {}

    def __call__(self, done: int, _total: int, dataset: str) -> None:
        self.rows[dataset] = done
        written = sum(self.rows.values())
        self.bar(written, max(self.total, written), dataset)
