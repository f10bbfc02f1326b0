"""Long staff jobs (analysis/work.py): exports, the report and synthesis as Celery tasks whose
state, progress and output live in the database. Without a broker the task runs in the
request that starts it (the suite's mode); one test runs a real worker on Redis."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client

from analysis import synthetic, work
from analysis.exports import bundle_stream
from analysis.models import DataExport, Job, JobChunk
from tests.analysis.test_exports import fill_trial, unzip
from trials.models import Participant, Trial
from trials.roles import EXPERIMENTER, GRADER, STATISTICIAN

pytestmark = pytest.mark.django_db

DOWNLOAD = "/exports/trio-skill-formation/v1/download/"


def staff(role: str | None, name: str) -> tuple[Client, User]:
    user = User.objects.create_user(name, password="pw-12345-xyz")
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    client = Client()
    client.force_login(user)
    return client, user


def data_files(zipped: bytes) -> dict[str, bytes]:
    """The bundle's files but the manifest, which holds the export's time."""
    return {k: v for k, v in unzip(zipped).items() if k != "manifest.json"}


def export_job(trial: Trial, user: User | None, fmt: str = "csv") -> Job:
    return work.create_job(
        kind=Job.Kind.EXPORT,
        trial=trial,
        user=user,
        params={"format": fmt, "identified": False},
    )


def zip_of(job: Job) -> bytes:
    job.refresh_from_db()
    return b"".join(work.output_chunks(job, "bundle.zip"))


# --- the web flow, eager mode -------------------------------------------------------------


def test_the_download_button_runs_a_job_whose_page_status_and_zip_follow(live_trial):
    fill_trial(live_trial, participants=3)
    client, user = staff(STATISTICIAN, "stan")
    started = client.post(DOWNLOAD, {"format": "csv"})
    assert started.status_code == 302
    job = Job.objects.get()
    assert started["Location"] == f"/analysis/jobs/{job.pk}/"
    assert job.kind == "export" and job.user == user and job.state == "done"

    page = client.get(started["Location"])
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="job-progress"' in text and "skilltrial/job.js" in text
    assert f"/analysis/jobs/{job.pk}/download/" in text

    status = client.get(f"/analysis/jobs/{job.pk}/status/").json()
    assert status["state"] == "done" and status["finished"] is True
    assert status["total"] > 0 and status["done"] == status["total"]
    assert status["percent"] == 100 and status["error"] == ""

    response = client.get(f"/analysis/jobs/{job.pk}/download/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith(
        'attachment; filename="trio-skill-formation-v1-csv-'
    )
    served = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(served)
    direct = b"".join(bundle_stream(live_trial, "csv"))
    assert data_files(served) == data_files(direct)
    web = DataExport.objects.get(channel="web")
    assert web.user == user and web.status == "done"
    # The exports page lists the user's own jobs.
    assert str(job.pk) in client.get("/exports/trio-skill-formation/").content.decode()


def test_a_report_is_computed_by_a_job_then_served_while_the_data_are_unchanged(live_trial):
    synthetic.synthesize_trial(live_trial, participants=30, seed=2, events_per_participant=0)
    client, _ = staff(EXPERIMENTER, "eve")
    url = f"/analysis/{live_trial.slug}/report/"
    first = client.get(url)  # no broker: the job ran in this request
    assert first.status_code == 200 and "Participant flow (CONSORT)" in first.content.decode()
    job = Job.objects.get(kind="report")
    assert job.state == "done" and job.fingerprint
    shown = client.get(f"/analysis/jobs/{job.pk}/")  # the finished job's page is the report
    assert shown.status_code == 200 and shown.content == first.content
    again = client.get(url)
    assert again.status_code == 200 and again.content == first.content
    download = client.get(url + "?download=1")
    assert download.status_code == 200 and "attachment" in download["Content-Disposition"]
    assert Job.objects.filter(kind="report").count() == 1
    Participant.objects.create(trial=live_trial)  # new data: a new computation
    assert client.get(url).status_code == 200
    assert Job.objects.filter(kind="report").count() == 2


def test_a_report_still_computing_sends_the_browser_to_its_job_page(live_trial, settings):
    Participant.objects.create(trial=live_trial)
    settings.CELERY_TASK_ALWAYS_EAGER = False  # a worker will take it (none does here)
    client, _ = staff(STATISTICIAN, "stan")
    response = client.get(f"/analysis/{live_trial.slug}/report/")
    job = Job.objects.get(kind="report")
    assert response.status_code == 302 and response["Location"] == f"/analysis/jobs/{job.pk}/"
    page = client.get(response["Location"])
    assert page.status_code == 200 and 'id="job-progress"' in page.content.decode()
    assert client.get(f"/analysis/{live_trial.slug}/report/")["Location"] == response["Location"]
    work.run_job(job.pk)  # the worker's part
    assert "Participant flow (CONSORT)" in client.get(response["Location"]).content.decode()


# --- idempotency --------------------------------------------------------------------------


def test_running_the_same_job_twice_stores_one_output(live_trial):
    fill_trial(live_trial, participants=2)
    job = export_job(live_trial, None)
    assert work.run_job(job.pk) == "done"
    first = zip_of(job)
    assert work.run_job(str(job.pk)) == "done"  # a redelivered message: nothing happens
    assert zip_of(job) == first
    assert JobChunk.objects.filter(job=job).count() == 1
    assert DataExport.objects.count() == 1
    job.refresh_from_db()
    assert job.attempt == 1


def test_a_run_after_a_lost_worker_replaces_its_partial_output(live_trial):
    fill_trial(live_trial, participants=2)
    job = export_job(live_trial, None)
    # A first run took the job, wrote a piece and died (its message comes back).
    Job.objects.filter(pk=job.pk).update(state="running", attempt=1, done=5, total=9)
    JobChunk.objects.create(job=job, attempt=1, name="bundle.zip", seq=0, data=b"partial")
    assert work.run_job(job.pk) == "done"
    job.refresh_from_db()
    assert job.attempt == 2
    assert list(JobChunk.objects.filter(job=job).values_list("attempt", flat=True)) == [2]
    direct = b"".join(bundle_stream(live_trial, "csv"))
    assert data_files(zip_of(job)) == data_files(direct)


def test_a_run_that_lost_the_job_to_a_newer_run_keeps_nothing(live_trial, monkeypatch):
    fill_trial(live_trial, participants=1)
    job = export_job(live_trial, None)
    real = work.RUNNERS[Job.Kind.EXPORT]

    def overtaken(run: Any) -> dict[str, Any]:
        result = real(run)
        Job.objects.filter(pk=job.pk).update(attempt=run.attempt + 1)  # a newer run took it
        return result

    monkeypatch.setitem(work.RUNNERS, Job.Kind.EXPORT, overtaken)
    work.run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "running" and not JobChunk.objects.filter(job=job).exists()


def test_a_redelivered_synthesis_is_not_run_twice(live_trial):
    job = work.create_job(
        kind=Job.Kind.SYNTHESIS,
        trial=live_trial,
        params={"participants": 5, "seed": 1, "events_per_participant": 0},
    )
    Job.objects.filter(pk=job.pk).update(state="running", attempt=1)
    assert work.run_job(job.pk) == "failed"
    job.refresh_from_db()
    assert "not run twice" in job.error and "purge_synthetic" in job.error
    assert not Participant.objects.exists()


def test_one_report_job_at_a_time_per_trial(live_trial, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # nothing runs: the message waits for commit
    first = work.start_report(trial=live_trial, user=None)
    second = work.start_report(trial=live_trial, user=None)
    assert first.pk == second.pk and first.state == "pending"
    assert Job.objects.count() == 1


# --- progress -----------------------------------------------------------------------------


def test_an_export_reports_increasing_progress_up_to_its_total(live_trial):
    fill_trial(live_trial, participants=4)
    job = export_job(live_trial, None, fmt="json")
    seen: list[tuple[int, int, str]] = []
    work.run_job(job.pk, progress=lambda done, total, step: seen.append((done, total, step)))
    done = [d for d, _, _ in seen]
    assert len(seen) > 2 and done == sorted(done) and done[-1] > done[0]
    assert seen[-1][0] == seen[-1][1]  # every row written
    assert {"participants", "events"} <= {step for _, _, step in seen}
    job.refresh_from_db()
    assert job.done == job.total == done[-1] and job.step == "done"


def test_the_report_job_reports_its_steps(live_trial):
    Participant.objects.create(trial=live_trial)
    job = work.start_report(trial=live_trial, user=None)
    seen: list[int] = []
    rerun = work.create_job(
        kind=Job.Kind.REPORT, trial=live_trial, params={"seed": 0}, key="another"
    )
    work.run_job(rerun.pk, progress=lambda done, total, step: seen.append(done))
    assert seen == [0, 1, 2, 3]
    job.refresh_from_db()
    assert job.state == "done" and job.done == job.total == 4


def test_a_failed_job_says_why_and_keeps_no_output(live_trial):
    job = export_job(live_trial, None, fmt="csv")
    Job.objects.filter(pk=job.pk).update(params={"format": "xlsx"})
    assert work.run_job(job.pk) == "failed"
    job.refresh_from_db()
    assert "xlsx" in job.error and job.finished_at is not None
    assert not JobChunk.objects.filter(job=job).exists()


# --- ids and access -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "status/", "download/"])
def test_unknown_and_malformed_job_ids_are_not_found(live_trial, suffix):
    client, _ = staff(STATISTICIAN, "stan")
    assert client.get(f"/analysis/jobs/{uuid.uuid4()}/{suffix}").status_code == 404
    assert client.get(f"/analysis/jobs/not-a-job/{suffix}").status_code == 404
    assert client.get(f"/analysis/jobs/12345/{suffix}").status_code == 404


@pytest.mark.parametrize("suffix", ["", "status/", "download/"])
def test_a_job_is_hidden_from_anonymous_users_graders_and_other_staff(live_trial, suffix):
    fill_trial(live_trial, participants=1)
    owner, _ = staff(STATISTICIAN, "owner")
    owner.post(DOWNLOAD, {"format": "csv"})
    url = f"/analysis/jobs/{Job.objects.get().pk}/{suffix}"
    assert owner.get(url).status_code == 200
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    grader, _ = staff(GRADER, "gina")
    assert grader.get(url).status_code == 403
    nobody, _ = staff(None, "nora")
    assert nobody.get(url).status_code == 403
    other, _ = staff(EXPERIMENTER, "eve")  # staff, but another person's bundle
    assert other.get(url).status_code == 404


def test_a_running_job_has_nothing_to_download_yet(live_trial):
    client, user = staff(STATISTICIAN, "stan")
    job = export_job(live_trial, user)
    assert client.get(f"/analysis/jobs/{job.pk}/download/").status_code == 404
    page = client.get(f"/analysis/jobs/{job.pk}/").content.decode()
    assert "waiting for a worker" in page
    assert client.get(f"/analysis/jobs/{job.pk}/status/").json()["state"] == "pending"


# --- command-line progress ----------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_export_data_draws_a_bar_on_a_terminal_and_not_with_no_progress(live_trial, tmp_path):
    fill_trial(live_trial, participants=2)
    err = Terminal()
    call_command(
        "export_data", live_trial.slug, "--format", "csv", "--out", str(tmp_path / "a"),
        stdout=io.StringIO(), stderr=err,
    )  # fmt: skip
    assert "rows" in err.getvalue() and "100%" in err.getvalue()
    out, quiet = io.StringIO(), Terminal()
    call_command(
        "export_data", live_trial.slug, "--format", "csv", "--out", str(tmp_path / "b"),
        "--no-progress", stdout=out, stderr=quiet,
    )  # fmt: skip
    assert quiet.getvalue() == ""
    assert "\r" not in out.getvalue() and "Done" in out.getvalue()


def test_analyze_and_synthesize_with_no_progress_print_only_their_results(live_trial, tmp_path):
    out, err = io.StringIO(), Terminal()
    call_command(
        "synthesize", live_trial.slug, "--participants", "20", "--seed", "3",
        "--events-per-participant", "0", "--no-progress", stdout=out, stderr=err,
    )  # fmt: skip
    assert err.getvalue() == "" and "\r" not in out.getvalue()
    assert out.getvalue().startswith("synthesized 20 participants")
    assert Job.objects.get(kind="synthesis").state == "done"
    out, err = io.StringIO(), Terminal()
    call_command(
        "analyze", live_trial.slug, "--json", str(tmp_path / "r.json"), "--no-progress",
        stdout=out, stderr=err,
    )  # fmt: skip
    assert err.getvalue() == "" and "\r" not in out.getvalue()
    assert "wrote results" in out.getvalue()
    err = Terminal()
    call_command(
        "analyze", live_trial.slug, "--json", str(tmp_path / "s.json"),
        stdout=io.StringIO(), stderr=err,
    )  # fmt: skip
    assert "3/3" in err.getvalue()  # reading, analysing, writing the JSON: the bar at its end
