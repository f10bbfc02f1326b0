from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_groups(sender: AppConfig, **kwargs: Any) -> None:
    # deferred: roles imports auth models, which do not exist before the apps load
    from trials.roles import ensure_groups

    ensure_groups()


class TrialsConfig(AppConfig):
    name = "trials"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # No sender: the groups take every app's permissions, so run after the last app migrates
        # (idempotent). With sender=self it ran before analysis' permissions existed.
        post_migrate.connect(_ensure_groups, dispatch_uid="skilltrial-ensure-groups")
