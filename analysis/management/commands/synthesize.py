from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis.synthetic import (
    SyntheticEffects,
    SyntheticError,
    SyntheticProgress,
    synthesize_trial,
)
from trials.models import Trial
from trials.selectors import TrialNotFound, require_trial

DEFAULTS = SyntheticEffects()


class Command(BaseCommand):
    help = (
        "Fill a live trial with synthetic participants (marked is_synthetic) with the effects "
        "given: allocations by the trial's own randomization, stage records, code, runs, "
        "assistant use, events and graded quiz answers. For tests, benchmarks and rehearsing "
        "analyses; never for a trial that will report real results."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--participants", type=int, required=True, help="how many to add")
        parser.add_argument("--seed", type=int, required=True, help="same seed, same data")
        parser.add_argument(
            "--trial-version",
            dest="trial_version",
            type=int,
            default=None,
            help="default: the live version",
        )
        parser.add_argument(
            "--effect-quiz-d",
            type=float,
            default=DEFAULTS.quiz_d,
            help="Cohen's d of the quiz total score, treatment vs reference arm "
            f"(default {DEFAULTS.quiz_d})",
        )
        parser.add_argument(
            "--speed-gain-min",
            type=float,
            default=DEFAULTS.speed_gain_min,
            help="minutes faster on the main task stage in the treatment arms "
            f"(default {DEFAULTS.speed_gain_min:g})",
        )
        parser.add_argument(
            "--censor-rate",
            type=float,
            default=DEFAULTS.censor_rate,
            help="share of the reference arm that reaches the main task stage's time limit "
            f"(default {DEFAULTS.censor_rate:g})",
        )
        parser.add_argument(
            "--events-per-participant",
            type=int,
            default=200,
            help="average telemetry events per participant added (default 200; 0: no events, "
            "code or assistant rows, for quick statistical runs)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug, version = options["slug"], options["trial_version"]
        if options["participants"] <= 0:
            raise CommandError("--participants must be a positive number")
        try:
            trial = require_trial(slug, version)
        except TrialNotFound as exc:
            raise CommandError(str(exc)) from None
        if trial.status != Trial.Status.LIVE:
            raise CommandError(
                f"trial '{slug}' version {trial.version} is {trial.status}; synthetic "
                f"participants go into a live trial (python manage.py launch_trial {slug})"
            )
        effects = SyntheticEffects(
            quiz_d=options["effect_quiz_d"],
            speed_gain_min=options["speed_gain_min"],
            censor_rate=options["censor_rate"],
        )

        def report(p: SyntheticProgress) -> None:
            self.stdout.write(
                f"{p.participants_done:,}/{p.participants_total:,} participants, "
                f"{p.events_written:,} events, {p.seconds:.1f} s "
                f"({p.events_per_second:,.0f} events/s)"
            )

        try:
            summary = synthesize_trial(
                trial,
                participants=options["participants"],
                seed=options["seed"],
                effects=effects,
                events_per_participant=options["events_per_participant"],
                progress=report,
            )
        except SyntheticError as exc:
            raise CommandError(str(exc)) from None
        arms = ", ".join(f"{key} {n:,}" for key, n in sorted(summary.by_arm.items()))
        self.stdout.write(
            f"synthesized {summary.participants:,} participants in {trial.slug} version "
            f"{trial.version} (seed {summary.seed}): {summary.declined:,} declined, "
            f"{summary.screened_out:,} screened out, {summary.left_before_screening:,} left "
            f"before screening, {summary.allocated:,} allocated ({arms}), "
            f"{summary.completed:,} completed, {summary.withdrawn:,} withdrew, {summary.left:,} "
            f"left mid-way, {summary.censored:,} timed out on {summary.main_stage or '-'}; "
            f"{summary.events:,} events, {summary.snapshots:,} code versions, "
            f"{summary.runs:,} runs and checks, {summary.assistant_turns:,} assistant turns, "
            f"{summary.item_responses:,} quiz answers in {summary.seconds:.1f} s"
        )
