"""Who may call the API: experimenters and statisticians read; graders (blind to arm), users
without a role and anonymous callers are refused, each with the right status and header."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.api.conftest import make_user, token_client
from trials.roles import EXPERIMENTER, GRADER, STATISTICIAN

pytestmark = pytest.mark.django_db

SLUG = "trio-skill-formation"
DATA_URLS = [
    "/api/trials/",
    f"/api/trials/{SLUG}/",
    "/api/participants/",
    "/api/allocations/",
    "/api/events/",
    "/api/items/",
    f"/api/trials/{SLUG}/codebook/",
    f"/api/trials/{SLUG}/datasets/participants/",
    f"/api/trials/{SLUG}/exports/",
    f"/api/trials/{SLUG}/results/",
]


@pytest.mark.parametrize("url", DATA_URLS)
def test_anonymous_callers_get_401_with_a_token_challenge(live_trial, url):
    response = APIClient().get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "credentials were not provided" in response.json()["detail"]


@pytest.mark.parametrize("url", DATA_URLS)
def test_graders_are_refused_because_every_endpoint_reveals_arms(live_trial, grader, url):
    response = grader.get(url)
    assert response.status_code == 403
    assert "graders stay blind" in response.json()["detail"]


def test_a_user_without_a_role_is_refused(live_trial):
    response = token_client(make_user(None)).get("/api/participants/")
    assert response.status_code == 403


@pytest.mark.parametrize("role", [EXPERIMENTER, STATISTICIAN])
def test_experimenters_and_statisticians_read_with_a_token(live_trial, role):
    response = token_client(make_user(role)).get("/api/trials/")
    assert response.status_code == 200
    assert [t["slug"] for t in response.json()["results"]] == [SLUG]


def test_a_wrong_token_is_401_not_an_anonymous_read(live_trial):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = client.get("/api/trials/")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token."


def test_a_token_of_a_deactivated_user_stops_working(live_trial):
    user = make_user(STATISTICIAN)
    client = token_client(user)
    assert client.get("/api/trials/").status_code == 200
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert client.get("/api/trials/").status_code == 401


def test_the_login_session_works_for_browsers(live_trial, client):
    user = make_user(STATISTICIAN)
    client.force_login(user)
    response = client.get("/api/participants/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    page = client.get("/api/participants/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert b"Participant List" in page.content  # DRF's browsable API


def test_drf_create_token_makes_a_working_token(live_trial):
    user = make_user(STATISTICIAN)
    call_command("drf_create_token", user.username, stdout=io.StringIO())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user=user).key}")
    assert client.get("/api/trials/").status_code == 200


def test_graders_role_plus_statistician_role_reads(live_trial):
    user = make_user(GRADER)
    assert token_client(user).get("/api/trials/").status_code == 403
    user.groups.add(*make_user(STATISTICIAN).groups.all())
    assert (
        APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user=user).key}")
        .get("/api/trials/")
        .status_code
        == 200
    )


def test_writes_are_not_allowed(live_trial, statistician):
    response = statistician.post("/api/participants/", {}, format="json")
    assert response.status_code == 405
    assert "POST" not in response["Allow"]
