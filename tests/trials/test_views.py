from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from trials.identity import resume_code
from trials.models import Allocation, Participant, StageRecord
from trials.roles import EXPERIMENTER, STATISTICIAN

pytestmark = pytest.mark.django_db

ENTRY = "/t/trio-skill-formation/"


def stage_url(key: str) -> str:
    return f"{ENTRY}s/{key}/"


def walk_to_warmup(client: Client, answers: dict, query: str = "") -> Participant:
    response = client.get(ENTRY + query)
    assert response.status_code == 302
    assert response["Location"] == stage_url("consent")
    response = client.post(stage_url("consent"), {"decision": "agree", "agree": "on"})
    assert response["Location"] == stage_url("screening")
    response = client.post(stage_url("screening"), answers)
    assert response["Location"] == stage_url("warmup"), response.content[:2000]
    return Participant.objects.latest("created_at")


def test_whole_flow_from_link_to_completion_code(client, live_trial, eligible_answers):
    participant = walk_to_warmup(
        client, eligible_answers, "?PROLIFIC_PID=abc&STUDY_ID=s1&SESSION_ID=x9"
    )
    assert (participant.prolific_pid, participant.study_id, participant.session_id) == (
        "abc",
        "s1",
        "x9",
    )
    page = client.get(stage_url("warmup"))
    assert page.status_code == 200
    assert b"Warm-up: counting words" in page.content
    assert b"data-remaining-seconds" in page.content
    steps = [
        ("warmup", {"code_0": "print('hi')"}, "main_tasks"),
        ("main_tasks", {"code_0": "a", "code_1": "b"}, "quiz"),
        ("quiz", {"nursery_exit": "b", "start_soon_returns": "c"}, "post_survey"),
        (
            "post_survey",
            {"self_rated_learning": "5", "enjoyment": "6", "effort": "4", "outside_help": "no"},
            "debrief",
        ),
    ]
    for key, data, nxt in steps:
        assert client.get(stage_url(key)).status_code == 200
        response = client.post(stage_url(key), data)
        assert response["Location"] == stage_url(nxt), (key, response.status_code)
    debrief = client.get(stage_url("debrief"))
    participant.refresh_from_db()
    assert participant.status == "completed"
    assert participant.completion_code.encode() in debrief.content
    warmup = StageRecord.objects.get(participant=participant, stage__key="warmup")
    assert warmup.answers == {"code": {"tasks/warmup": "print('hi')"}}


def test_reload_and_a_new_browser_with_the_same_prolific_id_resume(
    client, live_trial, eligible_answers
):
    participant = walk_to_warmup(client, eligible_answers, "?PROLIFIC_PID=p-77")
    assert client.get(ENTRY)["Location"] == stage_url("warmup")
    # A new browser with the same Prolific id is the same participant, but it is asked for
    # the resume code before it gets the session (tests/trials/test_identity.py has the rest).
    other_browser = Client()
    prompt = other_browser.get(ENTRY + "?PROLIFIC_PID=p-77")
    assert prompt.status_code == 200 and b"resume code" in prompt.content
    resumed = other_browser.post(
        f"{ENTRY}resume/", {"external_id": "p-77", "code": resume_code(participant)}
    )
    assert resumed["Location"] == stage_url("warmup")
    assert Participant.objects.count() == 1
    assert Allocation.objects.get().participant_id == participant.pk


def test_later_stage_urls_redirect_to_the_current_stage(client, live_trial, eligible_answers):
    client.get(ENTRY)
    for key in ("warmup", "quiz", "debrief", "no-such-stage"):
        assert client.get(stage_url(key))["Location"] == stage_url("consent")
        assert client.post(stage_url(key), {})["Location"] == stage_url("consent")
    assert not Allocation.objects.exists()


def test_replayed_screening_post_does_not_allocate_twice(client, live_trial, eligible_answers):
    walk_to_warmup(client, eligible_answers)
    response = client.post(stage_url("screening"), eligible_answers)
    assert response["Location"] == stage_url("warmup")
    assert Allocation.objects.count() == 1


def test_malformed_posts_re_render_with_messages(client, live_trial, eligible_answers):
    client.get(ENTRY)
    response = client.post(stage_url("consent"), {"decision": "agree"})
    assert response.status_code == 400
    assert b"Please tick the box" in response.content
    response = client.post(stage_url("consent"), {"decision": "maybe", "agree": "on"})
    assert response.status_code == 400
    client.post(stage_url("consent"), {"decision": "agree", "agree": "on"})
    bad = eligible_answers | {"coding_years": "forty", "async_experience": "9"}
    del bad["used_trio"]
    response = client.post(stage_url("screening"), bad)
    assert response.status_code == 400
    assert response.content.count(b'class="errorlist') >= 3
    assert Participant.objects.get().current_stage.key == "screening"


def test_screen_out_page_is_polite_and_records_the_reason(client, live_trial, eligible_answers):
    client.get(ENTRY)
    client.post(stage_url("consent"), {"decision": "agree", "agree": "on"})
    response = client.post(
        stage_url("screening"), eligible_answers | {"python_frequency": "rarely"}
    )
    assert response["Location"] == f"{ENTRY}end/"
    page = client.get(f"{ENTRY}end/")
    assert b"not eligible" in page.content
    assert Participant.objects.get().screen_out_reasons == ["Writes Python less than weekly"]


def test_tampered_cookie_starts_a_new_participant(client, live_trial):
    client.get(ENTRY)
    first = Participant.objects.get()
    client.cookies["stp_trio-skill-formation"] = first.pk  # unsigned: must not be trusted
    client.get(ENTRY)
    assert Participant.objects.count() == 2


def test_unknown_or_draft_trial_gets_a_clear_not_open_page(client, db):
    response = client.get("/t/not-a-trial/")
    assert response.status_code == 404
    assert b"This study is not open" in response.content


def test_no_participant_page_reveals_the_seed_the_answer_key_or_hidden_tests(
    client, live_trial, eligible_answers
):
    bodies = [client.get(ENTRY, follow=True).content]
    walk_to_warmup(client, eligible_answers)
    for key, data in [
        ("warmup", {}),
        ("main_tasks", {}),
        ("quiz", {"nursery_exit": "b"}),
        (
            "post_survey",
            {"self_rated_learning": "5", "enjoyment": "6", "effort": "4", "outside_help": "no"},
        ),
        ("debrief", None),
    ]:
        bodies.append(client.get(stage_url(key)).content)
        if data is not None:
            client.post(stage_url(key), data)
    everything = b"\n".join(bodies)
    assert live_trial.randomization_seed.encode() not in everything
    assert b"answer =" not in everything and b'"answer"' not in everything
    assert b"def test_" not in everything  # hidden tests
    assert b'results[item_id] = "FAILED"' not in everything  # reference solution


def test_dashboard_requires_a_login_and_a_role(client, live_trial):
    assert client.get("/manage/")["Location"].startswith("/accounts/login/")
    User.objects.create_user("someone", password="pw-12345-xyz")
    client.login(username="someone", password="pw-12345-xyz")
    assert client.get("/manage/").status_code == 403


@pytest.mark.parametrize("role", [EXPERIMENTER, STATISTICIAN])
def test_dashboard_shows_status_hash_and_counts(client, live_trial, eligible_answers, role):
    for band in ["1-3", "4-6", "4-6", "7+"]:
        walk_to_warmup(Client(), eligible_answers | {"coding_years": band})
    screened_out = Client()
    screened_out.get(ENTRY)
    screened_out.post(stage_url("consent"), {"decision": "agree", "agree": "on"})
    screened_out.post(stage_url("screening"), eligible_answers | {"used_trio": "yes"})

    user = User.objects.create_user("staff", password="pw-12345-xyz")
    user.groups.add(Group.objects.get(name=role))
    client.login(username="staff", password="pw-12345-xyz")
    listing = client.get("/manage/")
    assert listing.status_code == 200
    assert b"trio-skill-formation" in listing.content
    page = client.get(f"/manage/trials/trio-skill-formation/v{live_trial.version}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert live_trial.protocol_hash in text
    assert "coding_years=4-6" in text
    assert "Has used Trio before" in text
    assert re.search(r'<div class="n">4</div>randomized', text)
    assert live_trial.randomization_seed not in text


def test_allocations_are_read_only_in_the_admin(client, live_trial, eligible_answers):
    walk_to_warmup(Client(), eligible_answers)
    User.objects.create_superuser("admin", password="pw-12345-xyz")
    client.login(username="admin", password="pw-12345-xyz")
    allocation = Allocation.objects.get()
    assert client.get("/admin/trials/allocation/").status_code == 200
    change = client.get(f"/admin/trials/allocation/{allocation.pk}/change/")
    assert change.status_code == 200
    assert b'type="submit"' not in change.content or b"Save" not in change.content
    assert client.get("/admin/trials/allocation/add/").status_code == 403
    trial_page = client.get(f"/admin/trials/trial/{live_trial.pk}/change/")
    assert trial_page.status_code == 200
    assert live_trial.randomization_seed.encode() not in trial_page.content


def test_dashboard_warns_loudly_when_the_fallback_sandbox_is_in_use(
    client, live_trial, monkeypatch
):
    user = User.objects.create_user("staff", password="pw-12345-xyz")
    user.groups.add(Group.objects.get(name=EXPERIMENTER))
    client.login(username="staff", password="pw-12345-xyz")
    monkeypatch.setenv("SKILLTRIAL_SANDBOX", "fallback")
    page = client.get("/manage/").content.decode()
    assert "Weak sandbox in use" in page
    monkeypatch.setenv("SKILLTRIAL_SANDBOX", "auto")
    page = client.get("/manage/").content.decode()
    assert ("Weak sandbox in use" in page) == (shutil.which("bwrap") is None)


def _post_json(client: Client, url: str, body: dict):
    return client.post(url, json.dumps(body), content_type="application/json")


def test_question_answers_autosave_and_come_back_after_a_reload(
    client, live_trial, eligible_answers
):
    client.get(ENTRY)
    client.post(stage_url("consent"), {"decision": "agree", "agree": "on"})
    api = f"{ENTRY}api/answers/"
    response = _post_json(
        client,
        api,
        {"stage": "screening", "answers": {"coding_years": "7+", "not_a_question": "x"}},
    )
    assert response.status_code == 200
    record = StageRecord.objects.get(stage__key="screening")
    assert record.draft == {"coding_years": "7+"}
    page = client.get(stage_url("screening")).content.decode()
    assert re.search(r'value="7\+"[^>]*checked', page)
    # Autosaving a stage that is not the current one is refused.
    response = _post_json(client, api, {"stage": "quiz", "answers": {"nursery_exit": "b"}})
    assert response.status_code == 409


def test_when_time_runs_out_the_autosaved_answers_count(client, live_trial, eligible_answers):
    walk_to_warmup(client, eligible_answers)
    for key in ("warmup", "main_tasks"):
        client.post(stage_url(key), {})
    api = f"{ENTRY}api/answers/"
    assert (
        _post_json(client, api, {"stage": "quiz", "answers": {"nursery_exit": "b"}}).status_code
        == 200
    )
    Participant.objects.update(stage_deadline=timezone.now() - timedelta(minutes=1))
    assert client.get(stage_url("quiz"))["Location"] == stage_url("post_survey")
    record = StageRecord.objects.get(stage__key="quiz")
    assert (record.end_reason, record.answers) == ("timed_out", {"nursery_exit": "b"})
    # Too late: the quiz is closed.
    assert (
        _post_json(client, api, {"stage": "quiz", "answers": {"nursery_exit": "c"}}).status_code
        == 409
    )
