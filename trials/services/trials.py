"""Writes: importing a trial definition as a draft, launching it (frozen protocol, fresh
randomization seed), closing it."""

from __future__ import annotations

import itertools
import logging
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from trials.definition import Problem, TrialDefinition, question_choices, stratum_key
from trials.models import AllocationSequence, Arm, Stage, Trial
from trials.protocol_check import protocol_problems
from trials.services.coding import runner_limits
from trials.services.errors import TrialError, TrialFrozen

logger = logging.getLogger("skilltrial.trials")


@dataclass(frozen=True)
class ImportResult:
    trial: Trial
    action: str  # "created", "updated" or "unchanged"


class ProtocolBroken(TrialError):
    """Running the protocol contradicts it (trials.protocol_check); ``problems`` lists all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the trial protocol:\n{lines}")


def _require_sound_protocol(definition: TrialDefinition) -> None:
    problems = protocol_problems(definition, limits=runner_limits())
    if problems:
        raise ProtocolBroken(problems)


def trial_import(*, definition: TrialDefinition, new_version: bool = False) -> ImportResult:
    """Store a validated definition as a draft (or update the draft of the same version).

    First runs the reference solutions, starters and predict-the-output code in the sandbox
    (seconds, outside the transaction) and raises ProtocolBroken, storing nothing, when they
    contradict the protocol. A live or closed version is frozen: a changed definition for it
    is refused unless ``new_version`` asks to store it as the next version of the slug.
    """
    _require_sound_protocol(definition)
    data = dict(definition.data)
    slug = definition.slug
    with transaction.atomic():
        existing = Trial.objects.select_for_update().filter(slug=slug)
        if new_version:
            latest = existing.aggregate(Max("version"))["version__max"] or 0
            data["version"] = max(latest + 1, definition.version)
            definition = TrialDefinition(data=data, files=definition.files)
        digest = definition.protocol_hash()
        trial = existing.filter(version=definition.version).first()
        if trial is None:
            trial = Trial(slug=slug, version=definition.version)
            action = "created"
        elif trial.is_frozen:
            if trial.protocol_hash == digest:
                return ImportResult(trial, "unchanged")
            raise TrialFrozen(
                f"trial '{slug}' version {trial.version} is {trial.status} and its protocol is "
                f"frozen (hash {trial.protocol_hash[:12]}…); this definition differs. Import it "
                "as a new version: raise 'version' in trial.toml, or pass --new-version."
            )
        elif trial.definition_hash == digest:
            return ImportResult(trial, "unchanged")
        else:
            action = "updated"
        trial.title = data["title"]
        trial.description = data.get("description", "")
        trial.definition = data
        trial.files = definition.files
        trial.definition_hash = digest
        trial.randomization_scheme = data["randomization"]["scheme"]
        trial.save()
        if action == "updated":
            trial.stages.all().delete()
            trial.arms.all().delete()
        Arm.objects.bulk_create(
            Arm(
                trial=trial,
                key=arm["key"],
                label=arm["label"],
                weight=arm["weight"],
                tools=arm["tools"],
                settings=arm.get("assistant", {}),
                budget=arm.get("budget", {}),
                order=i,
            )
            for i, arm in enumerate(data["arms"])
        )
        Stage.objects.bulk_create(
            Stage(
                trial=trial,
                key=stage["key"],
                type=stage["type"],
                title=stage["title"],
                order=i,
                time_limit_seconds=(
                    round(stage["time_limit_minutes"] * 60)
                    if "time_limit_minutes" in stage
                    else None
                ),
                tools=stage["tools"],
                config=stage,
            )
            for i, stage in enumerate(data["stages"])
        )
    logger.info("trial %s v%s %s (definition %s)", slug, trial.version, action, digest[:12])
    return ImportResult(trial, action)


def _strata_levels(trial: Trial) -> list[str]:
    scheme = trial.definition["randomization"]
    if scheme["scheme"] != "stratified_blocks":
        return [""]
    questions = {q["key"]: q for q in trial.definition["baseline"]}
    level_lists = [
        [c["value"] for c in question_choices(questions[key])] for key in scheme["strata"]
    ]
    return [
        stratum_key(scheme["strata"], dict(zip(scheme["strata"], combo, strict=True)))
        for combo in itertools.product(*level_lists)
    ]


def trial_launch(*, trial: Trial) -> Trial:
    """Freeze a draft: store its protocol hash and a fresh randomization seed, open entry.

    The stored draft is checked again first (as at import; ProtocolBroken), outside the
    transaction; a draft changed while it was being checked is not launched."""
    checked = Trial.objects.get(pk=trial.pk)
    if checked.status == Trial.Status.DRAFT:
        _require_sound_protocol(TrialDefinition(data=checked.definition, files=checked.files))
    with transaction.atomic():
        trial = Trial.objects.select_for_update().get(pk=trial.pk)
        if trial.status != Trial.Status.DRAFT:
            raise TrialError(
                f"trial '{trial.slug}' version {trial.version} is already {trial.status}"
            )
        if (trial.definition, trial.files) != (checked.definition, checked.files):
            raise TrialError(
                f"trial '{trial.slug}' version {trial.version} changed while it was being "
                "checked; launch it again"
            )
        live = Trial.objects.filter(slug=trial.slug, status=Trial.Status.LIVE).first()
        if live is not None:
            raise TrialError(
                f"version {live.version} of '{trial.slug}' is live; close it first "
                f"(python manage.py close_trial {trial.slug})"
            )
        trial.status = Trial.Status.LIVE
        trial.protocol_hash = trial.definition_hash
        trial.randomization_seed = secrets.token_hex(32)
        trial.launched_at = timezone.now()
        trial.save()
        AllocationSequence.objects.bulk_create(
            [AllocationSequence(trial=trial, stratum=s) for s in _strata_levels(trial)],
            ignore_conflicts=True,
        )
    logger.info(
        "trial %s v%s launched, protocol %s", trial.slug, trial.version, trial.protocol_hash
    )
    return trial


def trial_close(*, trial: Trial) -> Trial:
    updated = Trial.objects.filter(pk=trial.pk, status=Trial.Status.LIVE).update(
        status=Trial.Status.CLOSED, closed_at=timezone.now()
    )
    if not updated:
        raise TrialError(f"trial '{trial.slug}' version {trial.version} is not live")
    trial.refresh_from_db()
    return trial
