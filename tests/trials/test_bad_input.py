"""No request from a participant's browser, however malformed, produces a server error."""

from __future__ import annotations

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trials.models import Allocation, Participant

pytestmark = pytest.mark.django_db

ENTRY = "/t/trio-skill-formation/"
FIELDS = [
    "decision",
    "agree",
    "coding_years",
    "python_years",
    "python_frequency",
    "tried_ai_assistant",
    "used_trio",
    "async_experience",
    "used_asyncio",
    "code_0",
    "code_1",
    "nursery_exit",
    "start_soon_returns",
    "never_awaited",
    "self_rated_learning",
    "enjoyment",
    "effort",
    "outside_help",
    "comments",
]
junk = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["\x00", "agree", "yes", "4-6", "9" * 400, "<script>alert(1)</script>", ""]
)
form_data = st.dictionaries(st.sampled_from(FIELDS), st.lists(junk, max_size=3), max_size=8)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(posts=st.lists(form_data, min_size=1, max_size=6), pid=junk)
def test_random_posts_never_give_a_server_error(live_trial, eligible_answers, posts, pid):
    client = Client(raise_request_exception=False)
    response = client.get(ENTRY, {"PROLIFIC_PID": pid})
    assert response.status_code < 500
    for data in posts:
        here = client.get(ENTRY)
        if here.status_code != 302:
            break
        stage_page = here["Location"]
        response = client.post(stage_page, data)
        assert response.status_code < 500, (stage_page, data)
        assert client.get(stage_page).status_code < 500
    # Whatever was posted, nobody was allocated without passing screening.
    for allocation in Allocation.objects.select_related("participant"):
        assert allocation.participant.eligible is True


def test_nul_bytes_in_code_and_ids_are_dropped(live_trial, eligible_answers):
    client = Client(raise_request_exception=False)
    client.get(ENTRY, {"PROLIFIC_PID": "ab\x00c"})
    assert Participant.objects.get().prolific_pid == "abc"
    client.post(f"{ENTRY}s/consent/", {"decision": "agree", "agree": "on"})
    client.post(f"{ENTRY}s/screening/", eligible_answers)
    response = client.post(f"{ENTRY}s/warmup/", {"code_0": "print(1)\x00"})
    assert response.status_code == 302
    record = Participant.objects.get().stage_records.get(stage__key="warmup")
    assert record.answers["code"]["tasks/warmup"] == "print(1)"


def test_oversized_post_is_refused_cleanly(live_trial):
    client = Client(raise_request_exception=False)
    client.get(ENTRY)
    response = client.post(f"{ENTRY}s/consent/", {"decision": "x" * 3_000_000})
    assert response.status_code == 400


@pytest.mark.django_db
def test_a_request_that_found_no_free_database_connection_gets_503_not_500(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Overload (every pooled connection busy for DB_POOL_TIMEOUT) is answered as such: 503
    with Retry-After, which the pages retry; never a 500."""
    from django.db import OperationalError
    from django.test import Client
    from psycopg_pool import PoolTimeout

    from trials import participant_api

    def exhausted(*args: object, **kwargs: object) -> None:
        try:
            raise PoolTimeout("couldn't get a connection after 20.00 sec")
        except PoolTimeout as cause:
            raise OperationalError(str(cause)) from cause

    monkeypatch.setattr(participant_api, "_caller", exhausted)
    response = Client(raise_request_exception=False).post(
        "/t/any-trial/api/save/", "{}", content_type="application/json"
    )
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"] == "busy"


def test_an_id_with_any_characters_survives_the_second_browser_cookie(live_trial):
    """A second browser arriving with an id outside ASCII gets the resume page, whose
    cookie (the id it waits for) must still be a valid cookie on the next request."""
    pid = "é😍 id"
    first, second = Client(raise_request_exception=False), Client(raise_request_exception=False)
    assert first.get(ENTRY, {"PROLIFIC_PID": pid}).status_code == 302
    page = second.get(ENTRY, {"PROLIFIC_PID": pid}, follow=True)
    assert page.status_code == 200
    assert all(ord(c) < 128 for morsel in second.cookies.values() for c in morsel.value)
    assert second.get(ENTRY, {"PROLIFIC_PID": pid}, follow=True).status_code == 200
