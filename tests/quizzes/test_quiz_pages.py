"""The quiz page and its autosave on the server: one draft format ("I don't know" only when
chosen), a stale tab's save or submit refused with a clear 409 that never loses the newer
answers, and the review step before anything is graded."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client

from quizzes.models import ItemResponse
from trials.models import Participant, StageRecord
from trials.services.answers import answer_state, draft_clean

pytestmark = pytest.mark.django_db

ENTRY = "/t/trio-skill-formation/"
QUIZ = f"{ENTRY}s/quiz/"
API = f"{ENTRY}api/answers/"


def to_quiz(eligible_answers: dict[str, Any]) -> Client:
    client = Client(raise_request_exception=False)
    client.get(ENTRY)
    client.post(f"{ENTRY}s/consent/", {"decision": "agree", "agree": "on"})
    client.post(f"{ENTRY}s/screening/", eligible_answers)
    client.post(f"{ENTRY}s/warmup/", {})
    client.post(f"{ENTRY}s/main_tasks/", {})
    assert client.get(QUIZ).status_code == 200
    return client


def save(client: Client, answers: dict[str, Any], revision: str | None) -> Any:
    body: dict[str, Any] = {"stage": "quiz", "answers": answers}
    if revision is not None:
        body["revision"] = revision
    return client.post(API, json.dumps(body), content_type="application/json")


def quiz_draft() -> dict[str, Any]:
    return dict(StageRecord.objects.get(stage__key="quiz").draft)


def page_revision(html: str) -> str:
    found = re.search(r'name="revision" value="(\d+)"', html)
    assert found, "the page carries no revision"
    return found.group(1)


QUESTIONS = [
    {
        "key": "pick",
        "type": "single_choice",
        "idk": True,
        "choices": [{"value": "a"}, {"value": "idk"}],
    },
    {
        "key": "many",
        "type": "multi_choice",
        "idk": True,
        "choices": [{"value": "a"}, {"value": "b"}],
    },
    {"key": "when", "type": "numeric", "idk": True},
    {"key": "word", "type": "short_answer", "idk": True},
    {"key": "out", "type": "predict_output", "idk": True},
    {"key": "code", "type": "code_writing", "idk": False},
    {"key": "why", "type": "free_text", "idk": True},
]


def test_the_draft_format_keeps_every_answer_exactly_and_idk_only_when_chosen():
    sent = {
        "pick": "a",
        "many": ["b", "a", "zz"],
        "when": "3.50",
        "word": "  start_soon ",
        "out": "\nline 1\r\n\r\n  line 2  \n",
        "code": "def f():\n\treturn 1\n",
        "why": "Ünïcode —\n\nkept",
        "when__idk": [],  # what the old page sent for an unticked box
        "word__idk": False,
        "out__idk": "",
        "why__idk": True,
        "not_a_question": "x",
    }
    assert draft_clean(QUESTIONS, sent) == {
        "pick": "a",
        "many": ["a", "b"],
        "when": "3.50",
        "word": "  start_soon ",
        "out": "\nline 1\n\n  line 2  \n",
        "code": "def f():\n\treturn 1\n",
        "why": "Ünïcode —\n\nkept",
        "why__idk": True,
    }
    assert draft_clean(QUESTIONS, {"pick": "", "many": [], "when": ""}) == {}
    assert answer_state(QUESTIONS[0], {"pick": "idk"}) == "idk"
    assert answer_state(QUESTIONS[2], {"when": "3", "when__idk": True}) == "idk"
    assert answer_state(QUESTIONS[2], {}) == "unanswered"


def test_a_stale_save_is_refused_with_409_and_the_newer_answer_is_kept(
    live_trial, eligible_answers
):
    first_tab = to_quiz(eligible_answers)
    second_tab = Client(raise_request_exception=False)
    second_tab.cookies = first_tab.cookies  # the same person in a second tab
    opened_at = page_revision(second_tab.get(QUIZ).content.decode())

    saved = save(first_tab, {"nursery_exit": "b"}, opened_at)
    assert saved.status_code == 200
    newer = saved.json()["revision"]
    assert newer != opened_at

    stale = save(second_tab, {"start_time": "3"}, opened_at)
    assert stale.status_code == 409
    assert stale.json() == {
        "error": "answers_changed",
        "message": "These answers were changed in another tab or window.",
        "revision": newer,
        "answers": {"nursery_exit": "b"},
    }
    assert quiz_draft() == {"nursery_exit": "b"}
    # Based on the newer answers, the same tab saves.
    again = save(second_tab, {"nursery_exit": "b", "start_time": "3"}, newer)
    assert again.status_code == 200
    assert quiz_draft() == {"nursery_exit": "b", "start_time": "3"}


def test_saving_the_same_answers_again_keeps_the_revision(live_trial, eligible_answers):
    client = to_quiz(eligible_answers)
    revision = save(client, {"nursery_exit": "b"}, "0").json()["revision"]
    assert save(client, {"nursery_exit": "b"}, revision).json()["revision"] == revision


def test_an_unticked_idk_box_comes_back_unticked(live_trial, eligible_answers):
    client = to_quiz(eligible_answers)
    response = save(client, {"start_time": "7", "start_time__idk": [], "end_time__idk": []}, None)
    assert response.status_code == 200
    assert quiz_draft() == {"start_time": "7"}
    # A draft saved by the old page, with [] for the unticked boxes, renders them unticked.
    StageRecord.objects.filter(stage__key="quiz").update(
        draft={"start_time": "7", "start_time__idk": [], "end_time__idk": []}
    )
    page = client.get(QUIZ).content.decode()
    boxes = re.findall(r'<input type="checkbox" name="(\w+__idk)"[^>]*>', page)
    assert sorted(boxes) == ["end_time__idk", "start_time__idk"]
    assert not re.search(r'name="\w+__idk"[^>]*checked', page)
    assert re.search(r'name="start_time" value="7"', page)


def test_review_lists_unanswered_questions_and_only_submit_grades(live_trial, eligible_answers):
    client = to_quiz(eligible_answers)
    revision = page_revision(client.get(QUIZ).content.decode())
    # Enter in a one-line answer submits with the page's default button: Review answers.
    response = client.post(QUIZ, {"revision": revision, "step": "review", "start_time": "7"})
    assert response.status_code == 302 and response["Location"].endswith("/s/quiz/?review=1")
    assert ItemResponse.objects.count() == 0
    review = client.get(f"{QUIZ}?review=1").content.decode()
    assert "You answered <strong>1 of 15</strong> questions" in review
    assert "Not answered yet: 14 questions" in review
    assert review.count('<li class="state-unanswered">') == 14
    revision = page_revision(review)
    response = client.post(QUIZ, {"revision": revision, "step": "submit"})
    assert response.status_code == 302 and response["Location"].endswith("/s/post_survey/")
    graded = dict(ItemResponse.objects.values_list("question_key", "status"))
    assert len(graded) == 15 and graded["start_time"] == "auto" and graded["end_time"] == "blank"


def test_a_stale_submit_is_refused_and_shows_the_newer_answers(live_trial, eligible_answers):
    client = to_quiz(eligible_answers)
    review = client.get(f"{QUIZ}?review=1").content.decode()
    seen = page_revision(review)
    save(client, {"nursery_exit": "b"}, seen)  # another tab saves meanwhile
    response = client.post(QUIZ, {"revision": seen, "step": "submit"})
    assert response.status_code == 409
    page = response.content.decode()
    assert "Your answers were changed in another tab or window." in page
    assert "You answered <strong>1 of 15</strong>" in page  # the review, with the newer answers
    assert ItemResponse.objects.count() == 0
    assert Participant.objects.get().current_stage.key == "quiz"
    # A stale "Review answers" is refused the same way and keeps the newer answer.
    response = client.post(QUIZ, {"revision": seen, "step": "review", "start_time": "3"})
    assert response.status_code == 409
    assert quiz_draft() == {"nursery_exit": "b"}


def test_a_submit_after_another_tab_finished_the_quiz_says_so(live_trial, eligible_answers):
    client = to_quiz(eligible_answers)
    revision = page_revision(client.get(f"{QUIZ}?review=1").content.decode())
    assert client.post(QUIZ, {"revision": revision, "step": "submit"}).status_code == 302
    late = client.post(QUIZ, {"revision": revision, "step": "submit"}, follow=True)
    assert late.redirect_chain[-1][0].endswith("/s/post_survey/")
    assert "already been finished in another tab or window" in late.content.decode()
