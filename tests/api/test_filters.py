"""Filters (trial, version, arm, stage, type, time) and cursor pagination; every malformed or
unknown value is a 400 naming the parameter, and no value at all can cause a 500."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from api.queries import parse_rfc3339
from tests.api.conftest import client_event, get_all
from trials.models import Event, Participant

pytestmark = pytest.mark.django_db

SLUG = "trio-skill-formation"


def test_arm_filter_keeps_only_that_arms_participants(populated, statistician):
    for arm in ("ai", "no_ai"):
        rows = get_all(statistician, "/api/participants/", trial=SLUG, arm=arm)
        expected = {
            p.public_code
            for p in populated["everyone"]
            if getattr(p, "allocation", None) and p.allocation.arm.key == arm
        }
        assert {r["participant"] for r in rows} == expected and expected
        for url in ("/api/allocations/", "/api/events/", "/api/items/"):
            assert {r["arm"] for r in get_all(statistician, url, arm=arm)} == {arm}


def test_stage_and_type_filters(populated, statistician):
    at_tasks = get_all(statistician, "/api/participants/", stage="main_tasks")
    assert [r["participant"] for r in at_tasks] == [populated["midway"].public_code]
    events = get_all(statistician, "/api/events/", stage="main_tasks", type="paste")
    assert [(e["stage"], e["type"]) for e in events] == [("main_tasks", "paste")]
    assert get_all(statistician, "/api/events/", type="never_seen_type") == []
    quiz_items = get_all(statistician, "/api/items/", stage="quiz")
    assert quiz_items and {i["stage"] for i in quiz_items} == {"quiz"}


def test_since_and_until_filter_on_server_time(populated, statistician):
    midway = populated["midway"]
    late = client_event(midway, "idle")
    moment = timezone.now() + timedelta(days=1)
    Event.objects.filter(pk=late.pk).update(server_time=moment)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert [e["event_id"] for e in get_all(statistician, "/api/events/", since=stamp)] == [late.pk]
    before = get_all(statistician, "/api/events/", until=stamp)
    assert late.pk not in {e["event_id"] for e in before} and before
    # An offset is understood (URL-encoded '+'), and means the same instant.
    shifted = (moment + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%f+02:00")
    assert [e["event_id"] for e in get_all(statistician, "/api/events/", since=shifted)] == [
        late.pk
    ]
    people = get_all(statistician, "/api/participants/", since=stamp)
    assert people == []


def test_trial_and_version_scope_rows(populated, statistician):
    everyone = len(populated["everyone"])
    assert len(get_all(statistician, "/api/participants/", trial=SLUG, version=1)) == everyone
    assert len(get_all(statistician, "/api/participants/", version=1)) == everyone
    assert get_all(statistician, "/api/events/", version=2) == []


@pytest.mark.parametrize(
    ("url", "params", "parameter", "says"),
    [
        ("/api/events/", {"since": "yesterday"}, "since", "RFC 3339"),
        ("/api/events/", {"since": "2025-03-01"}, "since", "RFC 3339"),
        ("/api/events/", {"until": "2025-03-01T10:00:00"}, "until", "RFC 3339"),
        ("/api/events/", {"since": "2025-03-01T10:00:00 01:00"}, "since", "%2B"),
        ("/api/events/", {"until": "2025-02-30T10:00:00Z"}, "until", "RFC 3339"),
        ("/api/participants/", {"trial": SLUG, "version": "abc"}, "version", "valid integer"),
        ("/api/participants/", {"trial": SLUG, "version": "0"}, "version", "greater than"),
        ("/api/participants/", {"trial": SLUG, "version": "7"}, "version", "no version 7"),
        ("/api/participants/", {"trial": "no-such-trial"}, "trial", "no trial"),
        ("/api/participants/", {"trial": "Not A Slug"}, "trial", "does not match"),
        ("/api/participants/", {"trial": SLUG, "arm": "placebo"}, "arm", "known: ai, no_ai"),
        ("/api/allocations/", {"arm": "placebo"}, "arm", "no arm 'placebo' in any trial"),
        ("/api/events/", {"trial": SLUG, "stage": "lunch"}, "stage", "no stage 'lunch'"),
        ("/api/items/", {"stage": ""}, "stage", "may not be blank"),
        ("/api/events/", {"type": "DROP TABLE"}, "type", "does not match"),
        ("/api/participants/", {"status": "happy"}, "status", "not a valid choice"),
        ("/api/participants/", {"identified": "yes"}, "identified", "true or false"),
        ("/api/participants/", {"page_size": "0"}, "page_size", "1 to 1000"),
        ("/api/events/", {"page_size": "5000"}, "page_size", "1 to 1000"),
        ("/api/items/", {"page_size": "ten"}, "page_size", "1 to 1000"),
        ("/api/trials/", {"status": "open"}, "status", "not a valid choice"),
        ("/api/trials/", {"slug": "x_y"}, "slug", "does not match"),
        (f"/api/trials/{SLUG}/", {"version": "-1"}, "version", "greater than"),
    ],
)
def test_bad_filter_values_are_400_naming_the_parameter(
    populated, statistician, url, params, parameter, says
):
    response = statistician.get(url, params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == [parameter]
    assert says in " ".join(body[parameter])


def test_a_parameter_given_twice_is_refused(populated, statistician):
    response = statistician.get("/api/events/?arm=ai&arm=no_ai")
    assert response.status_code == 400
    assert response.json() == {"arm": ["given more than once"]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01T09:30:00Z", datetime(2025, 3, 1, 9, 30, tzinfo=UTC)),
        ("2025-03-01t09:30:00.5z", datetime(2025, 3, 1, 9, 30, 0, 500000, tzinfo=UTC)),
        ("2025-03-01T09:30:00.1234567+01:30", datetime(2025, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("0001-01-01T00:00:00+01:00", datetime.min.replace(tzinfo=UTC)),
        ("9999-12-31T23:59:59-01:00", datetime.max.replace(tzinfo=UTC)),
        ("2025-03-01", None),
        ("2025-03-01T09:30:00", None),
        ("2025-03-01 09:30:00Z", None),
        ("2025-13-01T09:30:00Z", None),
        ("2025-03-01T09:30:00+24:00", None),
        ("0000-01-01T00:00:00Z", None),
    ],
)
def test_rfc3339_parsing_is_strict(text, expected):
    assert parse_rfc3339(text) == expected


def _cursor_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["cursor"][0]


@pytest.mark.parametrize("url", ["/api/participants/", "/api/events/", "/api/items/"])
def test_cursor_pages_cover_every_row_once(populated, statistician, url):
    everything = statistician.get(url, {"page_size": 1000}).json()["results"]
    paged = get_all(statistician, url, page_size=2)
    assert paged == everything and len(everything) > 2


def test_cursor_pages_are_stable_when_rows_arrive_meanwhile(populated, statistician):
    first = statistician.get("/api/events/", {"page_size": 3}).json()
    seen = [e["event_id"] for e in first["results"]]
    client_event(populated["midway"], "blur", scope="editor")  # appended while paging
    response = statistician.get(first["next"])
    while True:
        body = response.json()
        seen += [e["event_id"] for e in body["results"]]
        if not body["next"]:
            break
        response = statistician.get(body["next"])
    assert seen == list(Event.objects.order_by("id").values_list("id", flat=True))
    back = statistician.get(statistician.get(first["next"]).json()["previous"]).json()
    assert [e["event_id"] for e in back["results"]] == seen[:3]


def test_participant_cursors_do_not_carry_the_secret_participant_id(populated, statistician):
    body = statistician.get("/api/participants/", {"page_size": 1}).json()
    decoded = base64.b64decode(_cursor_of(body["next"])).decode()
    for participant in Participant.objects.all():
        assert participant.pk not in decoded


@pytest.mark.parametrize(
    "position", ["abc", "99999999999999999999999", "\x00", "2025-01-01 10:00:00"]
)
@pytest.mark.parametrize("url", ["/api/events/", "/api/participants/"])
def test_a_forged_cursor_is_404_never_500(populated, statistician, url, position):
    cursor = base64.b64encode(f"p={position}".encode()).decode()
    response = statistician.get(url, {"cursor": cursor})
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}
    assert statistician.get(url, {"cursor": "not base64 at all"}).status_code == 404
