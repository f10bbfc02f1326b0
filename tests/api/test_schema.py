"""The OpenAPI schema and the reference page: generated without warnings, complete, and
readable with no network (nothing loaded from a CDN)."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

PATHS = {
    "/api/trials/",
    "/api/trials/{slug}/",
    "/api/trials/{slug}/codebook/",
    "/api/trials/{slug}/datasets/{name}/",
    "/api/trials/{slug}/exports/",
    "/api/trials/{slug}/results/",
    "/api/participants/",
    "/api/allocations/",
    "/api/events/",
    "/api/items/",
}


def test_schema_generation_is_valid_and_warning_free(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(out), stderr=io.StringIO()
    )
    assert "openapi: 3" in out.read_text()


def test_the_schema_is_served_and_documents_every_endpoint_and_token_auth():
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert set(schema["paths"]) == PATHS
    assert set(schema["components"]["securitySchemes"]) == {"tokenAuth", "cookieAuth"}
    participant = schema["components"]["schemas"]["Participant"]
    assert "prolific_pid" not in participant["required"]
    assert "participant" in participant["required"]
    assert "blind_id" not in str(schema)
    events = schema["paths"]["/api/events/"]["get"]
    names = {p["name"] for p in events["parameters"]}
    assert {"trial", "version", "arm", "stage", "type", "since", "until", "cursor"} <= names
    header = events["responses"]["200"]["headers"]["X-Skilltrial-Identified"]
    assert header["schema"]["enum"] == ["false", "true"]


def test_the_reference_page_works_offline_and_lists_every_endpoint():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    for path in PATHS:
        assert f"GET {path}" in page
    assert "X-Skilltrial-Identified" in page and "drf_create_token" in page
    external = re.findall(r'(?:src|href)="(https?://[^"]+)"', page)
    assert external == []


def test_the_api_root_links_the_endpoints(statistician):
    body = statistician.get("/api/").json()
    assert body["participants"] == "http://testserver/api/participants/"
    assert body["docs"] == "http://testserver/api/docs/"


def test_unknown_api_paths_are_json_404s(statistician):
    for path in ("/api/nothing/", "/api/trials/a/b/c/", "/api/trials/%0A/results/"):
        response = statistician.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}
