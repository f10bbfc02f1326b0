from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser

from trials.definition import DefinitionInvalid, load_trial_dir
from trials.models import Trial
from trials.roles import EXPERIMENTER, GRADER, STATISTICIAN, ensure_groups
from trials.services import TrialError, trial_import, trial_launch

SAMPLE = Path(settings.BASE_DIR) / "studies" / "trio-skill-formation"
DEMO_USERS = (
    ("demo-experimenter", EXPERIMENTER),
    ("demo-statistician", STATISTICIAN),
    ("demo-grader", GRADER),
)
# A superuser for /admin/ (every model); demo only: a real deployment runs createsuperuser.
DEMO_ADMIN = "demo-admin"


class Command(BaseCommand):
    help = "Import and launch the sample trial and create the demo accounts (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        ensure_groups()
        try:
            definition = load_trial_dir(SAMPLE)
            trial = Trial.objects.filter(slug=definition.slug, status=Trial.Status.LIVE).first()
            if trial is None:
                trial = trial_import(definition=definition).trial
                trial = trial_launch(trial=trial)
            elif trial.protocol_hash != definition.protocol_hash():
                self.stdout.write(
                    self.style.WARNING(
                        f"The live sample trial (v{trial.version}) differs from {SAMPLE}; "
                        "keeping the live one. Close it and import a new version to change it."
                    )
                )
        except (DefinitionInvalid, TrialError) as exc:
            raise CommandError(str(exc)) from None

        creds = self._credentials()
        user_model = get_user_model()
        for username, role in DEMO_USERS:
            user, _ = user_model.objects.get_or_create(username=username)
            user.set_password(creds[username])
            user.save()
            user.groups.add(Group.objects.get(name=role))
        admin, _ = user_model.objects.get_or_create(username=DEMO_ADMIN)
        admin.set_password(creds[DEMO_ADMIN])
        admin.is_staff = admin.is_superuser = True
        admin.save()

        host = options["host"].rstrip("/")
        self.stdout.write(self.style.SUCCESS("\nskilltrial demo is ready."))
        self.stdout.write(f"  Trial:            {trial.title} ({trial.slug} v{trial.version})")
        self.stdout.write(f"  Protocol hash:    {trial.protocol_hash}")
        self.stdout.write(f"  Participant link: {host}/t/{trial.slug}/")
        self.stdout.write(f"  Dashboard:        {host}/manage/")
        self.stdout.write(f"  Grading queue:    {host}/grade/")
        self.stdout.write(f"  Admin:            {host}/admin/")
        for username, role in DEMO_USERS:
            self.stdout.write(f"  {role:<13} login: {username} / {creds[username]}")
        self.stdout.write(f"  {'admin':<13} login: {DEMO_ADMIN} / {creds[DEMO_ADMIN]}")
        self.stdout.write("")

    def _credentials(self) -> dict[str, str]:
        """Demo passwords are generated once and kept in var/ (never in git)."""
        path = Path(settings.VAR_DIR) / "demo_credentials"
        creds: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                name, _, password = line.partition(" ")
                creds[name] = password
        changed = False
        for username in (*(name for name, _ in DEMO_USERS), DEMO_ADMIN):
            if not creds.get(username):
                creds[username] = secrets.token_urlsafe(9)
                changed = True
        if changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{k} {v}\n" for k, v in creds.items()))
            path.chmod(0o600)
        return creds
