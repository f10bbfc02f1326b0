from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trials.selectors import trial_for_slug
from trials.services.purge import synthetic_participants_purge


class Command(BaseCommand):
    help = (
        "Delete a trial's synthetic participants (made by `manage.py synthesize`) and "
        "everything recorded for them; real participants are never touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "--trial-version",
            type=int,
            default=None,
            help="the version to purge (default: the live one, else the newest)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted, delete nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        trial = trial_for_slug(options["slug"], options["trial_version"])
        if trial is None:
            raise CommandError(f"no trial {options['slug']!r}")
        result = synthetic_participants_purge(trial=trial, dry_run=options["dry_run"])
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(
            f"{trial.slug} v{trial.version}: {verb} {result.participants} synthetic "
            f"participant{'' if result.participants == 1 else 's'}"
        )
        for label, count in result.rows.items():
            self.stdout.write(f"  {label}: {count}")
