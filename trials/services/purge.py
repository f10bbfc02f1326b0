"""Removing synthetic participants (``manage.py synthesize``) from a trial, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from trials.models import Allocation, Participant, Trial


@dataclass(frozen=True)
class PurgeResult:
    participants: int
    rows: dict[str, int]  # model label -> rows deleted (participants and all that hangs off them)


def synthetic_participants_purge(*, trial: Trial, dry_run: bool = False) -> PurgeResult:
    """Delete the trial version's synthetic participants with everything that hangs off
    them (allocations, stage records, task states, code, runs, events, assistant turns,
    quiz attempts, answers and their grades), in one transaction. Real participants are
    not touched.

    Allocations are append-only for real people (``Allocation.delete`` refuses); a synthetic
    participant's allocation is test data and goes with it, by a queryset delete. The
    allocation sequences are not rewound: real allocations keep their sequence numbers and
    later ones continue after the synthetic ones, so nothing already assigned changes.
    With ``dry_run`` the deletion is rolled back and only the counts are returned."""
    with transaction.atomic():
        synthetic = Participant.objects.filter(trial=trial, is_synthetic=True)
        n = synthetic.count()
        rows: dict[str, int] = {}
        if n:
            _, allocations = Allocation.objects.filter(participant__in=synthetic).delete()
            _, others = synthetic.delete()
            for label, count in (*allocations.items(), *others.items()):
                if count:
                    rows[label] = rows.get(label, 0) + count
        if dry_run:
            transaction.set_rollback(True)
    return PurgeResult(participants=n, rows=dict(sorted(rows.items())))
