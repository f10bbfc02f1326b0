"""The coding page's server-side rules (issue 12): phones get a "please continue on a
computer" page unless the trial allows phones, the page knows the code limit, and the stage
after a timed-out one says so. The browser side is tests/e2e/test_task_page.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from trials.definition import DefinitionInvalid, load_trial_dir
from trials.models import Participant, StageRecord, Trial
from trials.services import coding

ENTRY = "/t/trio-skill-formation/"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"


def stage_url(key: str) -> str:
    return f"{ENTRY}s/{key}/"


def set_top_level(trial_dir: Path, line: str) -> None:
    path = trial_dir / "trial.toml"
    text = path.read_text()
    path.write_text(text.replace("version = 1\n", f"version = 1\n{line}\n", 1))


def test_allow_phones_defaults_to_false_and_is_stored_only_when_true(trial_dir, sample_definition):
    assert "allow_phones" not in sample_definition.data
    set_top_level(trial_dir, "allow_phones = false")
    same = load_trial_dir(trial_dir)
    assert same.protocol_hash() == sample_definition.protocol_hash()
    path = trial_dir / "trial.toml"
    path.write_text(path.read_text().replace("allow_phones = false", "allow_phones = true"))
    assert load_trial_dir(trial_dir).data["allow_phones"] is True


def test_allow_phones_must_be_true_or_false_with_its_line(trial_dir):
    set_top_level(trial_dir, 'allow_phones = "yes"')
    with pytest.raises(DefinitionInvalid) as caught:
        load_trial_dir(trial_dir)
    lines = (trial_dir / "trial.toml").read_text().splitlines()
    line = next(i + 1 for i, text in enumerate(lines) if text.startswith("allow_phones"))
    problems = [str(p) for p in caught.value.problems]
    assert any(p.startswith(f"trial.toml:{line}: allow_phones: must be") for p in problems), (
        problems
    )


@pytest.fixture
def at_warmup(live_trial: Trial, eligible_answers: dict) -> tuple[Client, Participant]:
    client = Client(HTTP_USER_AGENT=DESKTOP)
    client.get(ENTRY + "?PROLIFIC_PID=p-1")
    client.post(stage_url("consent"), {"decision": "agree", "agree": "on"})
    response = client.post(stage_url("screening"), eligible_answers)
    assert response["Location"] == stage_url("warmup")
    return client, Participant.objects.get(external_id="p-1")


@pytest.mark.django_db
def test_a_phone_is_asked_to_continue_on_a_computer_with_the_link_that_resumes(at_warmup):
    client, _ = at_warmup
    page = client.get(stage_url("warmup"), HTTP_USER_AGENT=IPHONE)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Please continue on a computer" in html
    assert 'id="page-state"' not in html  # no editor, no task
    assert f"http://testserver{ENTRY}?PROLIFIC_PID=p-1" in html
    # Chromium's client hint says "phone" as well.
    hinted = client.get(stage_url("warmup"), HTTP_SEC_CH_UA_MOBILE="?1")
    assert "Please continue on a computer" in hinted.content.decode()
    # A computer gets the task, with the code limit the server enforces.
    desktop = client.get(stage_url("warmup")).content.decode()
    assert "Please continue on a computer" not in desktop
    assert f'"max_code_chars": {coding.MAX_CODE_CHARS}' in desktop


@pytest.mark.django_db
def test_a_trial_that_allows_phones_shows_them_the_task(at_warmup, live_trial):
    client, _ = at_warmup
    live_trial.definition = {**live_trial.definition, "allow_phones": True}
    live_trial.save(update_fields=["definition"])
    page = client.get(stage_url("warmup"), HTTP_USER_AGENT=IPHONE).content.decode()
    assert "Please continue on a computer" not in page
    assert 'id="page-state"' in page


@pytest.mark.django_db
def test_the_stage_after_a_deadline_says_that_the_time_ran_out(at_warmup):
    client, participant = at_warmup
    assert "ran out" not in client.get(stage_url("warmup")).content.decode()
    past = timezone.now() - timedelta(minutes=3)
    Participant.objects.filter(pk=participant.pk).update(stage_deadline=past)
    StageRecord.objects.filter(participant=participant, stage__key="warmup").update(deadline=past)

    response = client.get(stage_url("warmup"))  # back after the deadline
    assert response["Location"] == stage_url("main_tasks")
    page = client.get(stage_url("main_tasks")).content.decode()
    assert "The time for “Warm-up” ran out" in page
    assert "The work you saved before then has been kept" in page
    record = StageRecord.objects.get(participant=participant, stage__key="warmup")
    assert record.end_reason == StageRecord.EndReason.TIMED_OUT


@pytest.mark.django_db
def test_a_stage_finished_in_time_has_no_such_notice(at_warmup):
    client, _ = at_warmup
    client.post(stage_url("warmup"), {"code_0": "print(1)"})
    page = client.get(stage_url("main_tasks")).content.decode()
    assert "ran out" not in page
