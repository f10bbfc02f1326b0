from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trials.models import Trial
from trials.services import TrialError, trial_launch


def find_trial(slug: str, version: int | None, *, status: str | None = None) -> Trial:
    trials = Trial.objects.filter(slug=slug)
    if status:
        trials = trials.filter(status=status)
    if version is not None:
        trials = trials.filter(version=version)
    trial = trials.order_by("-version").first()
    if trial is None:
        what = f"'{slug}'" + (f" version {version}" if version is not None else "")
        raise CommandError(f"no trial {what}" + (f" with status {status}" if status else ""))
    return trial


class Command(BaseCommand):
    help = "Freeze a draft trial (protocol hash, randomization seed) and open it to participants."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "--trial-version",
            dest="trial_version",
            type=int,
            default=None,
            help="default: the latest",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        trial = find_trial(options["slug"], options["trial_version"])
        try:
            trial = trial_launch(trial=trial)
        except TrialError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"launched: {trial.slug} version {trial.version}; protocol hash {trial.protocol_hash}"
        )
