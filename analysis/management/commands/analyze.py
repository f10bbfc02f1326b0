"""``python manage.py analyze SLUG`` or ``analyze --csv data.csv --mapping mapping.toml``:
run the analysis plan and write the HTML report and/or the JSON results. A progress bar of
its steps goes to stderr when it is a terminal (``--no-progress``: never)."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from analysis.analyze import AnalysisError, AnalysisResults, run_analysis
from analysis.datasets import analysis_input
from analysis.inputs import AnalysisInput
from analysis.management.progress import ProgressBar, add_progress_argument
from analysis.mapping import MappingError, csv_analysis_input, load_mapping
from analysis.report import render_report, summary_sentences
from trials.selectors import TrialNotFound, require_trial


class Command(BaseCommand):
    help = (
        "Analyse a trial (SLUG) or a CSV described by a mapping file (--csv, --mapping); "
        "write the report (--out) and the results as JSON (--json)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug", nargs="?", help="trial slug (or use --csv and --mapping)")
        parser.add_argument(
            "--trial-version",
            type=int,
            dest="trial_version",
            help="trial version (default: the live one, else the newest)",
        )
        parser.add_argument("--csv", help="a CSV file with one row per participant")
        parser.add_argument("--mapping", help="the TOML mapping file that describes --csv")
        parser.add_argument("--out", help="write the self-contained HTML report here")
        parser.add_argument("--json", dest="json_path", help="write the results JSON here")
        parser.add_argument(
            "--seed", type=int, default=0, help="seed of permutation and bootstrap (default 0)"
        )
        add_progress_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        slug, csv_path, mapping_path = options["slug"], options["csv"], options["mapping"]
        if slug and (csv_path or mapping_path):
            raise CommandError("give either a trial SLUG or --csv with --mapping, not both")
        if csv_path and not mapping_path:
            raise CommandError("--csv needs --mapping (the TOML file that describes the CSV)")
        if mapping_path and not csv_path:
            raise CommandError("--mapping needs --csv (the data file it describes)")
        if not slug and not csv_path:
            raise CommandError("give a trial SLUG, or --csv data.csv --mapping mapping.toml")
        with ProgressBar(self, options, unit="step") as bar:
            results = self._run(inp_source=(slug, csv_path, mapping_path), options=options, bar=bar)
        for deviation in results.deviations:
            self.stdout.write(self.style.WARNING(f"note: {deviation.message}"))
        for sentence in summary_sentences(results):
            self.stdout.write(sentence)
        if not options["json_path"] and not options["out"]:
            self.stdout.write("(nothing written: add --out report.html and/or --json results.json)")

    def _run(
        self, *, inp_source: tuple[str, str, str], options: dict[str, Any], bar: ProgressBar
    ) -> AnalysisResults:
        slug, csv_path, mapping_path = inp_source
        steps = 2 + bool(options["json_path"]) + bool(options["out"])
        bar(0, steps, "reading the data")
        inp = (
            self._from_csv(csv_path, mapping_path)
            if csv_path
            else self._from_trial(slug, options["trial_version"])
        )
        bar(1, steps, "running the analysis")
        try:
            results = run_analysis(inp, seed=options["seed"])
        except AnalysisError as exc:
            raise CommandError(str(exc)) from None
        done = 2
        if options["json_path"]:
            bar(done, steps, "writing the results")
            text = json.dumps(results.to_json(), indent=2, allow_nan=False)
            self._write(options["json_path"], text + "\n", "results")
            done += 1
        if options["out"]:
            bar(done, steps, "rendering the report")
            html = render_report(inp, results, self_contained=True)
            self._write(options["out"], html, "report")
            done += 1
        bar(done, steps, "done")
        return results

    def _write(self, path: str, text: str, what: str) -> None:
        target = Path(path)
        try:
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write the {what} to {path}: {exc.strerror}") from None
        self.stdout.write(self.style.SUCCESS(f"wrote {what} to {path}"))

    def _from_csv(self, csv_path: str, mapping_path: str) -> AnalysisInput:
        try:
            return csv_analysis_input(csv_path, load_mapping(mapping_path))
        except MappingError as exc:
            raise CommandError(str(exc)) from None

    def _from_trial(self, slug: str, version: int | None) -> AnalysisInput:
        try:
            trial = require_trial(slug, version)
        except TrialNotFound as exc:
            raise CommandError(str(exc)) from None
        inp: AnalysisInput = analysis_input(trial)
        return inp
