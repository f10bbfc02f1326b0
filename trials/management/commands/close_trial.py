from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trials.models import Trial
from trials.selectors import TrialNotFound, require_trial
from trials.services import TrialError, trial_close


class Command(BaseCommand):
    help = "Close a live trial: no new participants; its protocol stays frozen."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            trial = require_trial(options["slug"], status=Trial.Status.LIVE)
        except TrialNotFound as exc:
            raise CommandError(str(exc)) from None
        try:
            trial = trial_close(trial=trial)
        except TrialError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"closed: {trial.slug} version {trial.version}")
