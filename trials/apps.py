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
        # deferred: the runs queue's task needs the models, which load after this module
        from trials import sandbox_requests, sandboxing

        # Staff sandbox work (quiz code answers, checks of solutions) goes to the runs queue.
        sandbox_requests.send_requests_with(sandboxing.sandbox_call)
