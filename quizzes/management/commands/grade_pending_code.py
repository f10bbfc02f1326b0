from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from quizzes.models import ItemResponse
from quizzes.services import grade_code_job


class Command(BaseCommand):
    help = (
        "Grade code-writing answers still waiting for the sandbox (left by a restart, or by a "
        "sandbox that was busy or broken when they were submitted)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        pending = (
            ItemResponse.objects.filter(status=ItemResponse.Status.NEEDS_SANDBOX)
            .values_list("participant_id", "stage_id")
            .distinct()
        )
        graded = 0
        for participant_id, stage_id in pending:
            graded += grade_code_job(participant_id=participant_id, stage_id=stage_id)
        left = ItemResponse.objects.filter(status=ItemResponse.Status.NEEDS_SANDBOX).count()
        self.stdout.write(f"graded {graded} code answers; {left} still pending")
