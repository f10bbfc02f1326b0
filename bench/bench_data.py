"""Data sets and exports at scale: a synthetic trial of 10,000 participants with about 200
events each (2 million events) on PostgreSQL.

    .venv/bin/python bench/bench_data.py [--participants 10000] [--events-per-participant 200]
                                         [--reuse] [--formats csv,parquet] [--no-datasets]
                                         [--no-analysis]

The database (``BENCH_DATABASE_URL``, never ``DATABASE_URL``; default
``postgres://postgres@127.0.0.1:5432/skilltrial_bench``) is dropped and recreated, migrated,
the sample trial imported and launched, and filled with
``analysis.synthetic.synthesize_trial``; ``--reuse`` keeps a database an earlier run filled.
It prints:

- the time to synthesize the trial;
- for each data set, the time to build it with ``dataset_frame`` (the events data set also
  streamed with ``iter_dataset_chunks``, which is what exports use) and the peak memory;
- for CSV and Parquet, the time and peak memory to export all events (the events table
  alone, then the whole zip bundle with codebook and manifest);
- the full analysis of the synthetic trial from the database, step by step:
  ``analysis.datasets.analysis_input`` (participants, plan and outcomes read from the
  database), ``analysis.analyze.run_analysis`` and ``analysis.report.render_report``
  (self-contained HTML), with their total (issue 7 section 7: full analysis and report of a
  10,000-participant synthetic trial; ``bench/bench_analysis.py`` times the same on data
  built in memory, without the database). Its rows are the participants analysed, its bytes
  the report's HTML.

Every measurement runs in a fresh child process, so its peak resident memory (``ru_maxrss``)
is the measurement's own; the figure shown is the growth over the child's memory after Django
was set up and the trial loaded. The issue's aim: data sets in seconds, export peak under
300 MB whatever the size. These are figures, not verdicts: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.setup import recreate_database  # noqa: E402

SLUG = "trio-skill-formation"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/skilltrial_bench"
DATASETS = ("participants", "items", "events", "allocations")


def rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skilltrial.settings")
    import django

    django.setup()


# --- the database ----------------------------------------------------------------------------


def database_exists(url: str) -> bool:
    import psycopg

    parts = urlsplit(url)
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (parts.path.lstrip("/"),)
        ).fetchone()
    return row is not None


def prepare(args: argparse.Namespace) -> None:
    """A migrated database with the sample trial live and synthesized (unless reused)."""
    reuse = args.reuse and database_exists(args.url)
    if not reuse:
        recreate_database(args.url)
    setup_django(args.url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from trials.models import Participant, Trial

    trial = Trial.objects.filter(slug=SLUG, status=Trial.Status.LIVE).first()
    if reuse and trial is not None and Participant.objects.filter(trial=trial).exists():
        n = Participant.objects.filter(trial=trial).count()
        print(f"Reusing {args.url}: {n:,} participants already there")
    else:
        from trials.definition import load_trial_dir
        from trials.services import trial_import, trial_launch

        if trial is None:
            trial = trial_launch(
                trial=trial_import(definition=load_trial_dir(ROOT / "studies" / SLUG)).trial
            )
        synthesize(trial, args)
    analyze()


def analyze() -> None:
    """Refresh the planner's statistics, as autovacuum would some time after a bulk load.
    Without them PostgreSQL still believes the tables nearly empty and may join two million
    events to ten thousand participants with a nested loop (minutes instead of seconds)."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"ANALYZE (planner statistics after the bulk load): {time.perf_counter() - started:.1f} s"
    )


def synthesize(trial: Any, args: argparse.Namespace) -> None:
    from analysis.synthetic import SyntheticProgress, synthesize_trial

    def progress(p: SyntheticProgress) -> None:
        if p.participants_done % 2000 < 500 or p.participants_done == p.participants_total:
            print(
                f"  synthesized {p.participants_done:,} / {p.participants_total:,} participants, "
                f"{p.events_written:,} events, {p.events_per_second:,.0f} events/s",
                flush=True,
            )

    print(f"Synthesizing {args.participants:,} participants (~{args.events:,} events each) ...")
    started = time.perf_counter()
    summary = synthesize_trial(
        trial,
        participants=args.participants,
        seed=args.seed,
        events_per_participant=args.events,
        progress=progress,
    )
    seconds = time.perf_counter() - started
    print(
        f"Synthesis: {seconds:.1f} s for {summary.participants:,} participants, "
        f"{summary.events:,} events, {summary.snapshots:,} code versions, {summary.runs:,} runs, "
        f"{summary.item_responses:,} quiz answers ({summary.events / seconds:,.0f} events/s)"
    )


# --- one measurement, in a child process ------------------------------------------------------


def child(task: str, url: str) -> None:
    """Run one measured task and print its figures as one JSON line."""
    setup_django(url)
    from analysis.datasets import dataset_columns, dataset_frame, iter_dataset_chunks
    from analysis.exports import RENDERERS, bundle_stream
    from trials.models import Trial

    trial = Trial.objects.get(slug=SLUG, status=Trial.Status.LIVE)
    dataset_columns(trial, "participants")  # warm the imports and the connection
    base = rss_mb()
    kind, name = task.split(":", 1)
    rows = size = 0
    started = time.perf_counter()
    if kind == "frame":
        frame = dataset_frame(trial, name)
        rows = len(frame)
    elif kind == "chunks":
        for frame in iter_dataset_chunks(trial, name):
            rows += len(frame)
    elif kind == "analysis":
        steps = full_analysis(trial)
        rows = steps.pop("participants")
        size = steps.pop("html_bytes")
        # The three steps, without the one-off import of the analysis modules.
        seconds = sum(steps[k] for k in ("analysis_input", "run_analysis", "render_report"))
        figures = {"seconds": seconds, "rows": rows, "bytes": size, "base": base}
        print(json.dumps(figures | {"peak": rss_mb(), "steps": steps}))
        return
    elif kind in ("events", "bundle"):
        with tempfile.TemporaryFile() as out:
            if kind == "events":
                columns = dataset_columns(trial, "events")

                def counted() -> Any:
                    nonlocal rows
                    for frame in iter_dataset_chunks(trial, "events"):
                        rows += len(frame)
                        yield frame

                chunks = RENDERERS[name](columns, counted())
            else:
                chunks = bundle_stream(trial, name)
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
        if kind == "bundle":
            from analysis.models import DataExport

            rows = DataExport.objects.filter(trial=trial).order_by("-id").first().rows_done
    else:
        raise SystemExit(f"unknown task {task!r}")
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {"seconds": seconds, "rows": rows, "bytes": size, "base": base, "peak": rss_mb()}
        )
    )


def full_analysis(trial: Any) -> dict[str, Any]:
    """The analysis a statistician runs on the trial, timed step by step."""
    import warnings

    from analysis.analyze import run_analysis
    from analysis.datasets import analysis_input
    from analysis.report import render_report

    steps: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes of the models are not figures
        started = time.perf_counter()
        inp = analysis_input(trial)
        steps["analysis_input"] = time.perf_counter() - started
        started = time.perf_counter()
        results = run_analysis(inp)
        steps["run_analysis"] = time.perf_counter() - started
        started = time.perf_counter()
        html = render_report(inp, results, self_contained=True)
        steps["render_report"] = time.perf_counter() - started
    steps["participants"] = len(inp.frame)
    steps["html_bytes"] = len(html.encode("utf-8"))
    steps["results"] = len(results.findings)
    return steps


def measure(task: str, url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", task, "--url", url],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def show(label: str, figures: dict[str, Any]) -> None:
    extra = f", {figures['bytes'] / 1e6:,.1f} MB written" if figures["bytes"] else ""
    print(
        f"  {label:<34} {figures['seconds']:8.2f} s  {figures['rows']:>10,} rows  "
        f"peak +{figures['peak'] - figures['base']:,.0f} MB "
        f"(process {figures['peak']:,.0f} MB){extra}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--events-per-participant", dest="events", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the database if an earlier run filled it"
    )
    parser.add_argument("--formats", default="csv,parquet", help="export formats to measure")
    parser.add_argument("--no-datasets", action="store_true", help="measure the exports only")
    parser.add_argument(
        "--no-analysis", action="store_true", help="skip the full analysis and report"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url)
        return

    prepare(args)
    if not args.no_datasets:
        print("Data sets (dataset_frame: the whole data set as one frame):")
        for name in DATASETS:
            show(f"{name}", measure(f"frame:{name}", args.url))
        show("events, streamed in chunks", measure("chunks:events", args.url))
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    print("Exports (written to a temporary file):")
    for fmt in formats:
        if fmt in ("csv", "parquet", "json"):
            show(f"all events as {fmt}", measure(f"events:{fmt}", args.url))
        show(f"whole {fmt} bundle (zip)", measure(f"bundle:{fmt}", args.url))
    if not args.no_analysis:
        print("Full analysis of the synthetic trial, from the database:")
        figures = measure("analysis:full", args.url)
        steps = figures["steps"]
        for label, key in (
            ("analysis_input (from the database)", "analysis_input"),
            (f"run_analysis ({steps['results']} results)", "run_analysis"),
            ("render_report (self-contained)", "render_report"),
        ):
            print(f"  {label:<34} {steps[key]:8.2f} s", flush=True)
        show("total of the three steps", figures)


if __name__ == "__main__":
    main()
