"""The row endpoints: what trials, participants, allocations, events and items return, that
nothing identifies a participant unless asked for with the permission, and that a page costs
a constant number of queries."""

from __future__ import annotations

import pytest

from quizzes.models import ItemResponse
from tests.api.conftest import STAGES_AFTER_SCREENING, enroll, get_all
from trials.models import Participant
from trials.services import trial_close, trial_import, trial_launch

pytestmark = pytest.mark.django_db

SLUG = "trio-skill-formation"
ROW_URLS = ["/api/participants/", "/api/allocations/", "/api/events/", "/api/items/"]
IDENTIFIER_FIELDS = {"participant_id", "prolific_pid", "study_id", "session_id", "completion_code"}


def _identifier_values(populated) -> list[str]:
    values = []
    for participant in Participant.objects.filter(trial=populated["trial"]):
        values += [participant.pk, participant.prolific_pid, participant.study_id]
        values += [participant.session_id, participant.completion_code]
    values += list(ItemResponse.objects.values_list("blind_id", flat=True))
    return [v for v in values if v]


def test_the_trial_lists_arms_stages_plan_and_counts(populated, statistician):
    [trial] = statistician.get("/api/trials/").json()["results"]
    assert trial["slug"] == SLUG and trial["status"] == "live" and trial["version"] == 1
    assert trial["protocol_hash"] == populated["trial"].protocol_hash
    assert [a["key"] for a in trial["arms"]] == ["ai", "no_ai"]
    assert sum(a["allocated"] for a in trial["arms"]) == len(populated["finished"]) + 1
    assert [s["key"] for s in trial["stages"]][:3] == ["consent", "screening", "warmup"]
    assert trial["stages"][3]["tasks"] == ["tasks/concurrent_greetings", "tasks/fetch_all"]
    assert trial["analysis_plan"]["reference_arm"] == "no_ai"
    assert trial["counts"] == {
        "participants": len(populated["everyone"]),
        "consented": len(populated["everyone"]) - 1,
        "allocated": len(populated["finished"]) + 1,
        "completed": len(populated["finished"]),
    }
    assert "randomization_seed" not in str(trial) and populated["trial"].randomization_seed
    assert populated["trial"].randomization_seed not in str(trial)


def test_trial_detail_is_the_live_version_unless_a_version_is_asked_for(
    live_trial, statistician, sample_definition
):
    trial_close(trial=live_trial)
    draft = trial_import(definition=sample_definition, new_version=True).trial
    assert draft.version == 2
    # The closed v1 has the data; the v2 draft has none yet: v1 is what the slug means.
    assert statistician.get(f"/api/trials/{SLUG}/").json()["version"] == 1
    assert statistician.get(f"/api/trials/{SLUG}/?version=2").json()["status"] == "draft"
    trial_launch(trial=draft)
    assert statistician.get(f"/api/trials/{SLUG}/").json()["version"] == 2
    assert statistician.get(f"/api/trials/{SLUG}/?version=3").status_code == 404
    assert statistician.get("/api/trials/no-such-trial/").status_code == 404
    listed = statistician.get("/api/trials/", {"status": "closed"}).json()["results"]
    assert [(t["slug"], t["version"]) for t in listed] == [(SLUG, 1)]


def test_participants_are_de_identified_with_stage_and_arm(populated, statistician):
    rows = {row["participant"]: row for row in get_all(statistician, "/api/participants/")}
    assert set(rows) == {p.public_code for p in populated["everyone"]}
    midway = rows[populated["midway"].public_code]
    assert midway["arm"] == populated["midway"].allocation.arm.key
    assert midway["current_stage"] == "main_tasks" == midway["furthest_stage"]
    assert midway["status"] == "active" and midway["allocated_at"] is not None
    declined = rows[populated["declined"].public_code]
    assert declined["arm"] is None and declined["current_stage"] is None
    assert declined["furthest_stage"] == "consent" and declined["status"] == "declined"
    screened_out = rows[populated["screened_out"].public_code]
    assert screened_out["eligible"] is False
    assert screened_out["screen_out_reasons"] == ["Has used Trio before"]
    assert screened_out["furthest_stage"] == "screening"
    for row in rows.values():
        assert not IDENTIFIER_FIELDS & set(row)


@pytest.mark.parametrize("url", ROW_URLS)
def test_no_default_response_carries_any_identifier(populated, statistician, url):
    response = statistician.get(url, {"page_size": 1000})
    assert response["X-Skilltrial-Identified"] == "false"
    body = response.content.decode()
    for value in _identifier_values(populated):
        assert value not in body, f"{url} leaks {value}"


def test_identifiers_need_the_permission(populated, statistician):
    response = statistician.get("/api/participants/", {"identified": "true"})
    assert response.status_code == 403
    assert "analysis.export_identifiers" in response.json()["detail"]


def test_identified_participants_with_the_permission_say_so(populated, identifier_reader):
    response = identifier_reader.get("/api/participants/", {"identified": "true"})
    assert response.status_code == 200
    assert response["X-Skilltrial-Identified"] == "true"
    rows = {row["participant"]: row for row in response.json()["results"]}
    finished = populated["finished"][0]
    row = rows[finished.public_code]
    assert row["participant_id"] == finished.pk
    assert (row["prolific_pid"], row["study_id"], row["session_id"]) == (
        finished.prolific_pid,
        finished.study_id,
        finished.session_id,
    )
    assert row["completion_code"] == finished.completion_code != ""
    # The permission alone does not identify: it takes identified=true.
    default = identifier_reader.get("/api/participants/")
    assert default["X-Skilltrial-Identified"] == "false"
    assert finished.prolific_pid not in default.content.decode()


def test_events_are_long_format_and_include_browser_events(populated, statistician):
    midway = populated["midway"]
    rows = get_all(statistician, "/api/events/", participant=midway.public_code)
    assert [r["event_id"] for r in rows] == sorted(r["event_id"] for r in rows)
    paste = next(r for r in rows if r["type"] == "paste")
    assert paste["origin"] == "client" and paste["client_seq"] == paste["event_id"]
    assert paste["payload"] == {"task": "tasks/concurrent_greetings", "length": 42}
    assert paste["stage"] == "main_tasks" and paste["arm"] == midway.allocation.arm.key
    assert {"stage_entered", "stage_left", "paste", "focus"} <= {r["type"] for r in rows}


def test_items_carry_grades_and_never_the_blind_id(populated, statistician):
    rows = get_all(statistician, "/api/items/", question="nursery_exit")
    assert len(rows) == len(populated["finished"])
    row = rows[0]
    assert row["points"] == 1.0 and row["max_points"] == 1.0 and row["correct"] is True
    assert row["categories"] == ["conceptual"] and row["stage"] == "quiz"
    assert "blind_id" not in row
    attention = get_all(statistician, "/api/items/", question="attention")
    assert all(r["is_attention_check"] for r in attention)


@pytest.mark.parametrize("url", ["/api/trials/", *ROW_URLS])
def test_a_page_costs_the_same_queries_for_few_or_many_rows(
    url, populated, statistician, eligible_answers, django_assert_max_num_queries
):
    # auth (token, groups) + the page + validating filters; not one query per row.
    with django_assert_max_num_queries(8) as few:
        assert statistician.get(url, {"trial": SLUG, "arm": "ai"}).status_code == 200
    for _ in range(6):
        enroll(populated["trial"], eligible_answers, through=STAGES_AFTER_SCREENING)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = statistician.get(url, {"trial": SLUG, "arm": "ai"})
    assert response.status_code == 200
