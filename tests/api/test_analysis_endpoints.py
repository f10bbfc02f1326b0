"""Data sets, the codebook, export bundles and analysis results through the API (built by
the analysis package)."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest

from analysis.datasets import DATASETS
from analysis.exports import FORMATS
from analysis.models import DataExport
from api.queries import EXPORT_FORMATS
from api.views import DATASET_NAMES
from trials.models import Participant

pytestmark = pytest.mark.django_db

SLUG = "trio-skill-formation"
BASE = f"/api/trials/{SLUG}"


def _identifiers(populated) -> list[str]:
    values = []
    for p in Participant.objects.filter(trial=populated["trial"]):
        values += [p.pk, p.prolific_pid, p.study_id, p.session_id, p.completion_code]
    return [v for v in values if v]


@pytest.mark.parametrize("name", ["participants", "items", "events", "allocations"])
def test_a_dataset_page_is_json_records_with_its_columns(populated, statistician, name):
    response = statistician.get(f"{BASE}/datasets/{name}/", {"limit": 1000})
    assert response.status_code == 200, response.content[:2000]
    body = response.json()
    assert (body["trial"], body["version"], body["dataset"]) == (SLUG, 1, name)
    assert body["identified"] is False and response["X-Skilltrial-Identified"] == "false"
    assert body["count"] == len(body["results"]) > 0
    assert all(list(row) == body["columns"] for row in body["results"])
    for value in _identifiers(populated):
        assert value not in response.content.decode()


def test_dataset_pages_follow_limit_and_offset(populated, statistician):
    whole = statistician.get(f"{BASE}/datasets/participants/").json()
    rows, url = [], f"{BASE}/datasets/participants/?limit=2"
    while url:
        page = statistician.get(url).json()
        assert page["count"] == whole["count"]
        rows += page["results"]
        url = page["next"]
    assert rows == whole["results"]
    assert statistician.get(f"{BASE}/datasets/participants/?offset=9999").json()["results"] == []


def test_participants_dataset_has_one_row_each_with_arm(populated, statistician):
    body = statistician.get(f"{BASE}/datasets/participants/").json()
    arms = {row["participant"]: row["arm"] for row in body["results"]}
    midway = populated["midway"]
    assert arms[midway.public_code] == midway.allocation.arm.key
    assert len(arms) == len(populated["everyone"])


def test_a_dataset_as_csv_streams_the_same_columns(populated, statistician):
    response = statistician.get(f"{BASE}/datasets/events/", {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="{SLUG}-v1-events.csv"'
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text)))
    columns = statistician.get(f"{BASE}/datasets/events/", {"limit": 1}).json()["columns"]
    assert rows[0] == columns
    assert len(rows) - 1 == statistician.get(f"{BASE}/datasets/events/").json()["count"]


def test_identified_datasets_need_the_permission_and_say_so(
    populated, statistician, identifier_reader
):
    url = f"{BASE}/datasets/participants/"
    assert statistician.get(url, {"identified": "true"}).status_code == 403
    response = identifier_reader.get(url, {"identified": "true"})
    assert response.status_code == 200
    assert response["X-Skilltrial-Identified"] == "true"
    body = response.json()
    assert body["identified"] is True
    assert {"prolific_pid", "completion_code"} <= set(body["columns"])
    finished = populated["finished"][0]
    row = next(r for r in body["results"] if r["participant"] == finished.public_code)
    assert row["prolific_pid"] == finished.prolific_pid


def test_unknown_dataset_and_bad_parameters(populated, statistician):
    assert statistician.get(f"{BASE}/datasets/people/").status_code == 404
    assert statistician.get("/api/trials/nope/datasets/items/").status_code == 404
    for params, name in [
        ({"format": "xlsx"}, "format"),
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"version": "x"}, "version"),
    ]:
        response = statistician.get(f"{BASE}/datasets/items/", params)
        assert response.status_code == 400
        assert list(response.json()) == [name]


def test_the_codebook_describes_every_column_of_every_dataset(populated, statistician):
    response = statistician.get(f"{BASE}/codebook/")
    assert response.status_code == 200
    book = response.json()
    assert list(book["datasets"]) == ["participants", "items", "events", "allocations"]
    page = statistician.get(f"{BASE}/datasets/items/", {"limit": 1}).json()
    assert [c["name"] for c in book["datasets"]["items"]] == page["columns"]
    column = book["datasets"]["participants"][0]
    assert set(column) == {
        "name",
        "type",
        "description",
        "source",
        "unit",
        "allowed",
        "identifier",
    }
    assert not any(c["identifier"] for cols in book["datasets"].values() for c in cols)


def test_the_export_bundle_streams_a_zip_with_a_manifest(populated, statistician):
    response = statistician.get(f"{BASE}/exports/", {"format": "csv"})
    assert response.status_code == 200, response.content[:2000]
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith(f'attachment; filename="{SLUG}-v1-csv-')
    bundle = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = bundle.namelist()
    assert any(name.endswith("manifest.json") for name in names)
    everything = b"".join(bundle.read(name) for name in names).decode(errors="replace")
    for value in _identifiers(populated):
        assert value not in everything


@pytest.mark.parametrize("fmt", ["parquet", "json", "progsnap2"])
def test_every_export_format_downloads(populated, statistician, fmt):
    response = statistician.get(f"{BASE}/exports/", {"format": fmt})
    assert response.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()


def test_export_refusals(populated, statistician):
    assert statistician.get(f"{BASE}/exports/", {"format": "xlsx"}).status_code == 400
    assert statistician.get(f"{BASE}/exports/", {"identified": "true"}).status_code == 403
    assert statistician.get("/api/trials/nope/exports/").status_code == 404


def test_identified_exports_are_recorded_as_such(populated, identifier_reader):
    response = identifier_reader.get(f"{BASE}/exports/", {"identified": "true"})
    assert response["X-Skilltrial-Identified"] == "true"
    assert "-identified-" in response["Content-Disposition"]
    b"".join(response.streaming_content)
    export = DataExport.objects.get()
    assert export.identified and export.channel == DataExport.Channel.API


def test_results_are_the_analysis_json(synthetic_trial, statistician):
    response = statistician.get(f"{BASE}/results/")
    assert response.status_code == 200, response.content[:2000]
    body = json.loads(response.content)  # strict JSON: no NaN
    assert isinstance(body["results"], list) and body["results"]
    first = body["results"][0]
    for key in ("outcome", "method", "groups", "n", "estimate", "ci_low", "ci_high", "p_value"):
        assert key in first
    primary = [r for r in body["results"] if r["role"] == "primary" and r["method"] == "welch_t"]
    assert primary and primary[0]["groups"] == ["ai", "no_ai"]  # arm vs the reference arm
    assert {g for r in body["results"] for g in r["groups"]} == {"ai", "no_ai"}


def test_results_of_a_trial_nobody_joined_are_a_409_not_a_500(live_trial, statistician):
    response = statistician.get(f"{BASE}/results/")
    assert response.status_code == 409
    assert response.json()["detail"]


def test_results_of_a_tiny_trial_are_not_a_500(populated, statistician):
    response = statistician.get(f"{BASE}/results/")
    assert response.status_code in (200, 409)


def test_the_api_names_the_same_datasets_and_formats_as_the_analysis_package():
    # The API lists them itself so that its schema can be built without pandas.
    assert DATASET_NAMES == DATASETS
    assert EXPORT_FORMATS == FORMATS
