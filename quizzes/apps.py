from django.apps import AppConfig


class QuizzesConfig(AppConfig):
    name = "quizzes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # quizzes builds on trials and plugs its quiz stage into trials' registries here, so that
        # trials never imports quizzes (the way pretix's plugins register exporters).
        # deferred: these modules import models, which do not exist before the apps load.
        from quizzes import quizfile, services

        quizfile.register_with_trials()
        services.register_with_trials()
