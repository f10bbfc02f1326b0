"""``python manage.py synthesize SLUG --participants N --seed S``: synthetic participants in a
live trial, as a synthesis job (:mod:`analysis.work`) run here, with a progress bar on stderr
when it is a terminal (``--no-progress``: never)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis import work
from analysis.management.progress import ProgressBar, add_progress_argument
from analysis.models import Job
from analysis.synthetic import SyntheticEffects
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
        add_progress_argument(parser)

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
        job = work.create_job(
            kind=Job.Kind.SYNTHESIS,
            trial=trial,
            params={
                "participants": options["participants"],
                "seed": options["seed"],
                "effects": asdict(effects),
                "events_per_participant": options["events_per_participant"],
            },
        )
        with ProgressBar(self, options, unit="participants") as bar:
            work.run_job(job.pk, progress=bar)
        job.refresh_from_db()
        if job.state != Job.State.DONE:
            raise CommandError(job.error or f"the synthesis job ended {job.state}")
        self._summary(trial, job.result["summary"])

    def _summary(self, trial: Trial, summary: dict[str, Any]) -> None:
        s = summary
        seconds = float(s["seconds"])
        rate = f" ({s['events'] / seconds:,.0f} events/s)" if seconds > 0 else ""
        arms = ", ".join(f"{key} {n:,}" for key, n in sorted(s["by_arm"].items()))
        self.stdout.write(
            f"synthesized {s['participants']:,} participants in {trial.slug} version "
            f"{trial.version} (seed {s['seed']}): {s['declined']:,} declined, "
            f"{s['screened_out']:,} screened out, {s['left_before_screening']:,} left "
            f"before screening, {s['allocated']:,} allocated ({arms}), "
            f"{s['completed']:,} completed, {s['withdrawn']:,} withdrew, {s['left']:,} "
            f"left mid-way, {s['censored']:,} timed out on {s['main_stage'] or '-'}; "
            f"{s['events']:,} events, {s['snapshots']:,} code versions, "
            f"{s['runs']:,} runs and checks, {s['assistant_turns']:,} assistant turns, "
            f"{s['item_responses']:,} quiz answers in {seconds:.1f} s{rate}"
        )
