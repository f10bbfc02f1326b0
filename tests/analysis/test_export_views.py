"""The export page at /exports/<slug>/: who may see it, downloads, identifiers, history."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Group, Permission, User

from analysis.exports import export_to_dir
from analysis.models import DataExport
from tests.analysis.test_exports import SECRETS, fill_trial, unzip
from trials.roles import EXPERIMENTER, GRADER, STATISTICIAN

PAGE = "/exports/trio-skill-formation/"
DOWNLOAD = "/exports/trio-skill-formation/v1/download/"


def login(client, role: str | None, *, identifiers: bool = False) -> User:
    user = User.objects.create_user(f"u-{role}", password="pw-12345-xyz")
    if role:
        user.groups.add(Group.objects.get(name=role))
    if identifiers:
        user.user_permissions.add(Permission.objects.get(codename="export_identifiers"))
    client.login(username=user.username, password="pw-12345-xyz")
    return user


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def download(client, data: dict[str, str]):
    """POST the download form, follow to the job's page (the job ran in the request: no
    broker), and fetch the zip from there."""
    started = client.post(DOWNLOAD, data)
    assert started.status_code == 302 and started["Location"].startswith("/analysis/jobs/")
    page = client.get(started["Location"])
    assert page.status_code == 200 and "Download" in page.content.decode()
    return client.get(started["Location"] + "download/")


def test_the_page_needs_a_login(client, live_trial):
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.post(DOWNLOAD, {"format": "csv"}).status_code == 302
    assert not DataExport.objects.exists()


@pytest.mark.parametrize("role", [GRADER, None])
def test_graders_and_others_are_refused(client, live_trial, role):
    login(client, role)
    assert client.get(PAGE).status_code == 403
    assert client.post(DOWNLOAD, {"format": "csv"}).status_code == 403
    assert not DataExport.objects.exists()


@pytest.mark.parametrize("role", [EXPERIMENTER, STATISTICIAN])
def test_staff_see_every_format_with_row_counts(client, live_trial, role):
    fill_trial(live_trial, participants=2)
    login(client, role)
    response = client.get(PAGE)
    assert response.status_code == 200
    text = response.content.decode()
    for label in ("CSV", "Parquet", "JSON Lines", "ProgSnap2"):
        assert f"Download {label} bundle" in text
    formats = {f["key"]: dict(f["rows"]) for f in response.context["formats"]}
    assert formats["csv"] == {"participants": 2, "items": 0, "events": 24, "allocations": 2}
    assert formats["progsnap2"]["MainTable"] == 24
    assert 'name="identified"' not in text  # no identifiers without the permission
    assert client.get("/exports/trio-skill-formation/v1/").status_code == 200


def test_a_download_runs_a_job_then_serves_the_zip_and_is_logged(client, live_trial):
    fill_trial(live_trial, participants=2)
    user = login(client, STATISTICIAN)
    response = download(client, {"format": "csv"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/zip"
    disposition = response["Content-Disposition"]
    assert re.fullmatch(
        r'attachment; filename="trio-skill-formation-v1-csv-\d{8}T\d{6}Z\.zip"', disposition
    )
    files = unzip(body(response))
    assert "participants.csv" in files and "codebook.md" in files
    everything = b"".join(files.values())
    assert all(secret.encode() not in everything for secret in SECRETS)
    export = DataExport.objects.get()
    assert export.user == user and export.channel == "web" and export.status == "done"
    page = client.get(PAGE).content.decode()
    assert "u-statistician" in page and "Done" in page and "de-identified" in page


def test_identifiers_without_the_permission_are_forbidden(client, live_trial):
    fill_trial(live_trial, participants=1)
    login(client, STATISTICIAN)
    response = client.post(DOWNLOAD, {"format": "csv", "identified": "1"})
    assert response.status_code == 403
    assert b"export_identifiers" in response.content
    assert not DataExport.objects.exists()


def test_identifiers_with_the_permission(client, live_trial):
    fill_trial(live_trial, participants=1)
    login(client, STATISTICIAN, identifiers=True)
    assert 'name="identified"' in client.get(PAGE).content.decode()
    response = download(client, {"format": "json", "identified": "1"})
    assert response.status_code == 200
    assert "-identified-" in response["Content-Disposition"]
    files = unzip(body(response))
    assert SECRETS[0].encode() in files["participants.jsonl"]
    assert json.loads(files["manifest.json"])["identified"] is True
    assert DataExport.objects.get().identified is True


def test_download_needs_post_and_a_known_format(client, live_trial):
    login(client, STATISTICIAN)
    assert client.get(DOWNLOAD + "?format=csv").status_code == 405
    assert client.post(DOWNLOAD, {"format": "xlsx"}).status_code == 400
    assert client.post(DOWNLOAD, {}).status_code == 400


def test_unknown_trials_are_not_found(client, live_trial):
    login(client, STATISTICIAN)
    assert client.get("/exports/nope/").status_code == 404
    assert client.get("/exports/trio-skill-formation/v9/").status_code == 404
    assert client.post("/exports/nope/v1/download/", {"format": "csv"}).status_code == 404


def test_a_running_export_shows_its_progress(client, live_trial):
    DataExport.objects.create(trial=live_trial, format="csv", rows_done=300, rows_total=1200)
    login(client, EXPERIMENTER)
    text = client.get(PAGE).content.decode()
    assert "Running (25%)" in text and "300 / 1200" in text
    assert 'http-equiv="refresh"' in text


def test_the_page_shows_the_last_size_as_a_guide(client, live_trial):
    DataExport.objects.create(
        trial=live_trial, format="parquet", status="done", size_bytes=2 * 1024 * 1024
    )
    login(client, STATISTICIAN)
    text = client.get(PAGE).content.decode()
    assert "The last Parquet zip download was 2.0\xa0MB" in text
    assert 'http-equiv="refresh"' not in text


def test_sizes_say_whether_they_are_a_zip_or_uncompressed_files(client, live_trial, tmp_path):
    fill_trial(live_trial, participants=2)
    login(client, STATISTICIAN)
    body(download(client, {"format": "csv"}))  # a zip, via the web
    folder = export_to_dir(live_trial, "csv", tmp_path / "files")  # files, by export_data
    zipped = export_to_dir(live_trial, "json", tmp_path / "zip", as_zip=True)
    response = client.get(PAGE)
    formats = {f["key"]: f for f in response.context["formats"]}
    web = DataExport.objects.get(channel="web")
    files_total = sum(f.bytes for f in folder.files)
    # Like with like: the zip figure comes from the web zip, not the newer folder export;
    # the uncompressed figure from the newest export's files (the same for zip or folder).
    assert formats["csv"]["last_zip"] == web.size_bytes
    assert formats["csv"]["last_files"] == files_total
    assert folder.export.size_bytes > files_total  # the folder also holds manifest.json
    assert formats["json"]["last_zip"] == zipped.export.size_bytes  # export_data --zip
    text = response.content.decode()
    assert "zip download was" in text and "uncompressed" in text
    assert text.count(" files</td>") == 1 and text.count(" zip</td>") == 2


def test_code_states_rows_are_labelled_as_before_de_duplication(client, live_trial):
    fill_trial(live_trial, participants=2)
    login(client, STATISTICIAN)
    response = client.get(PAGE)
    [ps2] = [f for f in response.context["formats"] if f["key"] == "progsnap2"]
    notes = {line["table"]: line["note"] for line in ps2["lines"]}
    assert "before de-duplication" in notes["CodeStates"]
    assert notes["MainTable"] == ""
    assert "before de-duplication" in response.content.decode()
