"""Writes: allocating an eligible participant to an arm, once, with gap-free sequence numbers
per trial (or stratum). Which arm comes next is the pure rule ``randomization.assign``."""

from __future__ import annotations

import threading

from django.db import transaction

from trials import randomization
from trials.models import Allocation, AllocationSequence, Participant
from trials.services.errors import TrialError

_schedules: dict[tuple[int, str], dict[str, randomization.BlockSchedule]] = {}
"""Each trial's permuted-block schedules, per server process, kept between allocations: the
arm of allocation n is then found in O(1) instead of by drawing blocks 0..n again inside the
stratum's lock. A schedule is fixed by the seed, the stratum, the arms and the block sizes,
all frozen at launch, so a process's copy never goes stale."""
_schedules_lock = threading.Lock()


def allocation_assign(*, participant: Participant, locked: bool = False) -> Allocation:
    """Allocate an eligible participant, once. Idempotent: an existing allocation is returned.

    Locks the participant row, then the trial's (or the participant's stratum's) sequence row, so
    sequence numbers are gap-free and block balance exact with any number of app processes.
    Keep this transaction short: nothing slow happens while the lock is held. ``locked``: the
    caller's transaction already holds the participant's row lock (screening does).
    """
    trial = participant.trial
    if participant.eligible is not True:
        raise TrialError("only eligible participants are allocated")
    # Within the caller's transaction there is no savepoint: a failure here fails the whole
    # screening, as it must.
    with transaction.atomic(savepoint=False):
        if not locked:
            # Lock the participant first (the same order as participant_screen, so no
            # deadlock): two calls for one participant must not both find "no allocation yet".
            Participant.objects.select_for_update().only("pk").get(pk=participant.pk)
        existing = Allocation.objects.filter(participant=participant).select_related("arm").first()
        if existing is not None:
            return existing
        config = trial.definition["randomization"]
        scheme = config["scheme"]
        seq_stratum = randomization.sequence_stratum(config, participant.stratum)
        arm_rows = {arm.key: arm for arm in trial.arms.order_by("order")}  # before the lock
        sequence = (
            AllocationSequence.objects.select_for_update()
            .filter(trial=trial, stratum=seq_stratum)
            .first()
        )
        if sequence is None:  # a stratum not created at launch (e.g. an unlisted level)
            AllocationSequence.objects.get_or_create(trial=trial, stratum=seq_stratum)
            sequence = AllocationSequence.objects.select_for_update().get(
                trial=trial, stratum=seq_stratum
            )
        index = sequence.next_index
        counts = None
        if scheme == "minimization":
            counts = sequence.margins
            if counts is None:  # a sequence from before margins were kept: count once
                counts = randomization.minimization_counts(
                    config,
                    Allocation.objects.filter(trial=trial).values_list(
                        "arm__key", "participant__baseline"
                    ),
                )
        with _schedules_lock:
            assignment = randomization.assign(
                config,
                [randomization.ArmWeight(arm.key, arm.weight) for arm in arm_rows.values()],
                trial.randomization_seed,
                index=index,
                stratum=participant.stratum,
                baseline=participant.baseline,
                counts=counts,
                schedules=_schedules.setdefault((trial.pk, trial.randomization_seed), {}),
            )
        arm_key, details = assignment.arm, assignment.details
        moved: dict[str, object] = {"next_index": index + 1}
        if counts is not None:
            levels = randomization.factor_levels(config, participant.baseline)
            randomization.add_to_counts(counts, levels, arm_key)
            moved["margins"] = counts
        allocation = Allocation.objects.create(
            participant=participant,
            trial=trial,
            arm=arm_rows[arm_key],
            stratum=participant.stratum,
            scheme=scheme,
            sequence_number=index + 1,
            details=details,
        )
        AllocationSequence.objects.filter(pk=sequence.pk).update(**moved)
    return allocation
