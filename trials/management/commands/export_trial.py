from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trials.definition import TrialDefinition, write_trial_dir
from trials.selectors import TrialNotFound, require_trial


class Command(BaseCommand):
    help = "Write a trial's definition as a folder that re-imports to the same protocol hash."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("directory")
        parser.add_argument(
            "--trial-version",
            dest="trial_version",
            type=int,
            default=None,
            help="default: the live version, else the newest launched, else the newest draft",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            trial = require_trial(options["slug"], options["trial_version"])
        except TrialNotFound as exc:
            raise CommandError(str(exc)) from None
        target = Path(options["directory"])
        if target.exists() and any(target.iterdir()):
            raise CommandError(f"{target} is not empty; choose a new or empty folder")
        definition = TrialDefinition(data=trial.definition, files=trial.files)
        write_trial_dir(definition, target)
        self.stdout.write(
            f"exported {trial.slug} version {trial.version} to {target} "
            f"(hash {definition.protocol_hash()})"
        )
