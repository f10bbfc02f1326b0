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
