from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trials.definition import DefinitionInvalid, load_trial_dir
from trials.services import TrialError, trial_import


class Command(BaseCommand):
    help = "Validate a trial folder and import it as a draft (or update the draft)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", help="folder containing trial.toml")
        parser.add_argument(
            "--new-version",
            action="store_true",
            help="store the definition as the next version of the slug (for a frozen trial)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            definition = load_trial_dir(options["directory"])
        except DefinitionInvalid as exc:
            raise CommandError(str(exc)) from None
        try:
            result = trial_import(definition=definition, new_version=options["new_version"])
        except TrialError as exc:
            raise CommandError(str(exc)) from None
        trial = result.trial
        self.stdout.write(
            f"{result.action}: {trial.slug} version {trial.version} ({trial.status}), "
            f"definition hash {trial.definition_hash}"
        )
