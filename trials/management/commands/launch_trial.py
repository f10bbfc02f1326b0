from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trials.models import Trial
from trials.selectors import TrialNotFound, require_trial
from trials.services import TrialError, trial_launch


class Command(BaseCommand):
    help = "Freeze a draft trial (protocol hash, randomization seed) and open it to participants."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "--trial-version",
            dest="trial_version",
            type=int,
            default=None,
            help="default: the newest draft",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            version = options["trial_version"]
            status = Trial.Status.DRAFT if version is None else None
            trial = require_trial(options["slug"], version, status=status)
        except TrialNotFound as exc:
            raise CommandError(str(exc)) from None
        try:
            trial = trial_launch(trial=trial)
        except TrialError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"launched: {trial.slug} version {trial.version}; protocol hash {trial.protocol_hash}"
        )
