"""``manage.py export_data``: what it writes, what it prints, and its errors."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from analysis.models import DataExport
from tests.analysis.test_exports import SECRETS, fill_trial


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_data", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_writes_the_bundle_files_and_prints_progress(live_trial, tmp_path):
    fill_trial(live_trial, participants=2)
    target = tmp_path / "out"
    out, err = run(live_trial.slug, "--format", "csv", "--out", str(target))
    names = sorted(p.name for p in target.iterdir())
    assert names == sorted(
        [
            "allocations.csv",
            "codebook.csv",
            "codebook.md",
            "events.csv",
            "items.csv",
            "manifest.json",
            "participants.csv",
        ]
    )
    assert "participants.csv: 2 rows" in out
    assert "events.csv: 24 rows" in out
    assert "Done" in out and err == ""  # no progress bar: stderr is not a terminal
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["identified"] is False
    export = DataExport.objects.get()
    assert export.channel == "command" and export.user is None and export.status == "done"
    everything = b"".join(p.read_bytes() for p in target.iterdir())
    assert SECRETS[0].encode() not in everything


def test_progsnap2_goes_into_its_layout(live_trial, tmp_path):
    fill_trial(live_trial, participants=1)
    target = tmp_path / "ps2"
    run(live_trial.slug, "--format", "progsnap2", "--out", str(target))
    assert (target / "MainTable.csv").is_file()
    assert (target / "CodeStates" / "CodeStates.csv").is_file()
    assert (target / "DatasetMetadata.csv").is_file()


def test_zip_writes_one_file(live_trial, tmp_path):
    fill_trial(live_trial, participants=1)
    run(live_trial.slug, "--format", "parquet", "--out", str(tmp_path), "--zip")
    [path] = list(tmp_path.iterdir())
    assert path.name.startswith("trio-skill-formation-v1-parquet-") and path.suffix == ".zip"
    with zipfile.ZipFile(path) as zf:
        assert "events.parquet" in zf.namelist() and "manifest.json" in zf.namelist()


def test_identified_warns_and_includes_identifiers(live_trial, tmp_path):
    fill_trial(live_trial, participants=1)
    _, err = run(live_trial.slug, "--format", "json", "--out", str(tmp_path), "--identified")
    assert "WARNING" in err and "identifiers" in err
    assert SECRETS[0] in (tmp_path / "participants.jsonl").read_text()
    assert DataExport.objects.get().identified is True


def test_unknown_slug_is_a_clear_error(live_trial, tmp_path):
    with pytest.raises(CommandError, match=r"no trial 'nope'.*trio-skill-formation"):
        run("nope", "--format", "csv", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="version 7"):
        run(live_trial.slug, "--format", "csv", "--out", str(tmp_path), "--trial-version", "7")
    assert not DataExport.objects.exists()


def test_unknown_format_is_a_clear_error(live_trial, tmp_path):
    with pytest.raises(CommandError, match="invalid choice: 'xlsx'"):
        run(live_trial.slug, "--format", "xlsx", "--out", str(tmp_path))


def test_a_directory_that_is_not_empty_is_refused(live_trial, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(CommandError, match="not empty"):
        run(live_trial.slug, "--format", "csv", "--out", str(tmp_path))
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert not DataExport.objects.exists()


def test_a_file_in_the_way_is_refused(live_trial, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CommandError, match="not a directory"):
        run(live_trial.slug, "--format", "csv", "--out", str(blocker))
    with pytest.raises(CommandError, match="not a directory"):
        run(live_trial.slug, "--format", "csv", "--out", str(blocker / "sub"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_directory_is_refused(live_trial, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(CommandError, match="not writable"):
            run(live_trial.slug, "--format", "csv", "--out", str(locked))
        with pytest.raises(CommandError, match="not writable"):
            run(live_trial.slug, "--format", "csv", "--out", str(locked / "new"))
    finally:
        locked.chmod(0o700)


def test_a_new_directory_is_created(live_trial, tmp_path):
    target = tmp_path / "a" / "b"
    run(live_trial.slug, "--format", "csv", "--out", str(target))
    assert (Path(target) / "manifest.json").is_file()


def test_an_unwritable_directory_is_refused_whoever_runs_it(live_trial, tmp_path, monkeypatch):
    # The same check as above for test runs as root, who may write anywhere: the command
    # asks os.access, so answer as the file system would for an ordinary user.
    from analysis.management.commands import export_data

    monkeypatch.setattr(export_data.os, "access", lambda path, mode: False)
    with pytest.raises(CommandError, match="not writable"):
        run(live_trial.slug, "--format", "csv", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="not writable"):
        run(live_trial.slug, "--format", "csv", "--out", str(tmp_path / "new"))
    assert not DataExport.objects.exists()
