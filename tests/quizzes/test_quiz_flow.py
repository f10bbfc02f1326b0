"""The quiz in the participant flow, grading with blinded graders, double grading and
adjudication, key corrections with re-grading, and the item-quality page."""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from quizzes import services
from quizzes.models import AnswerKeyChange, HumanGrade, ItemResponse, QuizAttempt
from quizzes.selectors import participant_quiz_score
from skilltrial import jobs
from trials.definition import load_trial_dir
from trials.models import Participant, StageRecord
from trials.roles import EXPERIMENTER, GRADER, STATISTICIAN
from trials.services import trial_import, trial_launch

pytestmark = pytest.mark.django_db

ENTRY = "/t/trio-skill-formation/"
NEVER_AWAITED = "Calling save(record) only makes a coroutine; it needs await save(record)."


def to_quiz(eligible_answers: dict, **ids: str) -> Client:
    client = Client(raise_request_exception=False)
    client.get(ENTRY, ids)
    client.post(f"{ENTRY}s/consent/", {"decision": "agree", "agree": "on"})
    client.post(f"{ENTRY}s/screening/", eligible_answers)
    client.post(f"{ENTRY}s/warmup/", {})
    client.post(f"{ENTRY}s/main_tasks/", {})
    return client


def take_quiz(client: Client, **answers) -> Participant:
    data = {
        "nursery_exit": "b",
        "start_soon_returns": "idk",
        "never_awaited": NEVER_AWAITED,
        "async_await_facts": ["a", "c"],
        "start_time": "3",
        "attention": "c",
    } | answers
    response = client.post(f"{ENTRY}s/quiz/", data)
    assert response.status_code == 302, response.content[:3000]
    return Participant.objects.get(
        pk=client.cookies["stp_trio-skill-formation"].value.split(":")[0]
    )


def user_with(role: str, name: str) -> User:
    user = User.objects.create_user(name, password="pw-12345-xyz")
    user.groups.add(Group.objects.get(name=role))
    return user


def login(role: str, name: str) -> Client:
    user_with(role, name)
    client = Client(raise_request_exception=False)
    client.login(username=name, password="pw-12345-xyz")
    return client


def test_quiz_page_shows_questions_in_a_recorded_order_without_keys(live_trial, eligible_answers):
    client = to_quiz(eligible_answers)
    page = client.get(f"{ENTRY}s/quiz/").content.decode()
    attempt = QuizAttempt.objects.get()
    assert len(attempt.question_order) == 15
    positions = [page.index(f'name="{key}"') for key in attempt.question_order]
    assert positions == sorted(positions)
    assert "I don&#x27;t know" in page or "I don't know" in page
    quiz_source = live_trial.files["quiz.toml"]
    for secret in ("Neither a correct meaning nor a working fix", "attention_check", "answers ="):
        assert secret in quiz_source
        assert secret not in page
    # The option order is the participant's recorded one.
    nursery = attempt.option_order["nursery_exit"]
    found = re.findall(r'name="nursery_exit" value="([^"]+)"', page)
    assert found == nursery


def test_submitting_grades_objective_answers_and_queues_free_text(live_trial, eligible_answers):
    participant = take_quiz(to_quiz(eligible_answers))
    items = {i.question_key: i for i in ItemResponse.objects.filter(participant=participant)}
    assert len(items) == 15
    assert (items["nursery_exit"].status, items["nursery_exit"].points) == ("auto", 1)
    assert (items["start_soon_returns"].status, items["start_soon_returns"].points) == ("idk", 0)
    assert items["async_await_facts"].points == 2
    assert items["start_time"].points == 1.5
    assert items["predict_cancelled"].status == "blank"
    assert items["never_awaited"].status == "needs_human"
    assert items["attention"].is_attention_check and items["attention"].correct
    score = participant_quiz_score(participant)
    assert score is not None and not score.final
    assert score.points == 1 + 2 + 1.5
    assert score.max_points == 27
    assert score.passed_attention_checks


def test_when_time_runs_out_the_autosaved_quiz_answers_are_graded(live_trial, eligible_answers):
    client = to_quiz(eligible_answers)
    client.get(f"{ENTRY}s/quiz/")
    body = {"stage": "quiz", "answers": {"nursery_exit": "b", "start_time": "3"}}
    response = client.post(
        f"{ENTRY}api/answers/", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200
    Participant.objects.update(stage_deadline=timezone.now() - timedelta(minutes=1))
    client.get(f"{ENTRY}s/quiz/")
    assert StageRecord.objects.get(stage__key="quiz").end_reason == "timed_out"
    graded = dict(ItemResponse.objects.values_list("question_key", "points"))
    assert graded["nursery_exit"] == 1 and graded["start_time"] == 1.5
    assert ItemResponse.objects.count() == 15


def test_grader_pages_reveal_neither_identity_nor_arm(live_trial, eligible_answers):
    participant = take_quiz(to_quiz(eligible_answers, PROLIFIC_PID="prolific-secret-77"))
    arm = participant.allocation.arm
    grader = login(GRADER, "gina")
    item = ItemResponse.objects.get(question_key="never_awaited")
    pages = [grader.get("/grade/"), grader.get(f"/grade/{item.blind_id}/")]
    assert all(p.status_code == 200 for p in pages)
    text = "\n".join(p.content.decode() for p in pages)
    assert NEVER_AWAITED in text
    for revealing in (
        participant.public_code,
        participant.pk,
        "prolific-secret-77",
        arm.label,
        f">{arm.key}<",
        participant.stratum,
        "coding_years",
    ):
        assert revealing not in text, revealing
    # Every other page that could tell who or which arm is closed to a grader.
    for url in (
        "/manage/",
        f"/manage/trials/trio-skill-formation/v1/p/{participant.public_code}/",
        "/manage/trials/trio-skill-formation/v1/quiz/",
        "/admin/trials/allocation/",
    ):
        response = grader.get(url)
        assert response.status_code in (302, 403), url
        assert participant.public_code.encode() not in response.content


def test_single_grading_makes_the_score_final(live_trial, eligible_answers):
    participant = take_quiz(to_quiz(eligible_answers))
    item = ItemResponse.objects.get(question_key="never_awaited")
    ItemResponse.objects.filter(pk=item.pk).update(needs_double_grading=False)
    grader = login(GRADER, "gina")
    response = grader.post(f"/grade/{item.blind_id}/", {"points": "2", "comment": ""})
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.status, item.points) == ("human", 2)
    score = participant_quiz_score(participant)
    assert score.final and score.points == 1 + 2 + 1.5 + 2


def test_double_grading_disagreement_goes_to_adjudication(live_trial, eligible_answers):
    take_quiz(to_quiz(eligible_answers))
    item = ItemResponse.objects.get(question_key="never_awaited")
    ItemResponse.objects.filter(pk=item.pk).update(needs_double_grading=True)
    first, second, third = login(GRADER, "g1"), login(GRADER, "g2"), login(GRADER, "g3")
    assert first.post(f"/grade/{item.blind_id}/", {"points": "2"}).status_code == 302
    again = first.post(f"/grade/{item.blind_id}/", {"points": "1"})
    assert again["Location"] == "/grade/"  # a grader cannot grade the same answer twice
    assert HumanGrade.objects.filter(response=item).count() == 1
    assert second.post(f"/grade/{item.blind_id}/", {"points": "1"}).status_code == 302
    item.refresh_from_db()
    assert item.status == "needs_adjudication"
    # Neither grader may settle their own disagreement.
    assert first.post(f"/grade/{item.blind_id}/", {"points": "2"})["Location"] == "/grade/"
    assert f'href="/grade/{item.blind_id}/"' not in first.get("/grade/").content.decode()
    assert item.blind_id in third.get("/grade/").content.decode()
    assert third.post(f"/grade/{item.blind_id}/", {"points": "1"}).status_code == 302
    item.refresh_from_db()
    assert (item.status, item.points) == ("human", 1)
    assert HumanGrade.objects.filter(response=item, is_adjudication=True).count() == 1


def test_points_must_be_a_rubric_level(live_trial, eligible_answers):
    take_quiz(to_quiz(eligible_answers))
    item = ItemResponse.objects.get(question_key="never_awaited")
    grader = login(GRADER, "gina")
    response = grader.post(f"/grade/{item.blind_id}/", {"points": "1.5"})
    assert response.status_code == 400
    assert not HumanGrade.objects.exists()


def test_correcting_a_key_regrades_every_answer_with_an_audit_trail(live_trial, eligible_answers):
    take_quiz(to_quiz(eligible_answers))
    take_quiz(to_quiz(eligible_answers), nursery_exit="a")
    experimenter = login(EXPERIMENTER, "erin")
    url = "/manage/trials/trio-skill-formation/v1/quiz/"
    response = experimenter.post(
        url,
        {
            "question_key": "nursery_exit",
            "new_key": '{"answer": "a"}',
            "reason": "The stem was ambiguous",
        },
    )
    assert response.status_code == 302
    points = sorted(
        ItemResponse.objects.filter(question_key="nursery_exit").values_list("response", "points")
    )
    assert points == [("a", 1.0), ("b", 0.0)]
    change = AnswerKeyChange.objects.get()
    assert (change.old_key, change.new_key, change.regraded) == (
        {"answer": "b"},
        {"answer": "a"},
        2,
    )
    assert change.changed_by.username == "erin"
    page = experimenter.get(url).content.decode()
    assert "The stem was ambiguous" in page
    bad = experimenter.post(
        url, {"question_key": "nursery_exit", "new_key": '{"answer": "zz"}', "reason": "x"}
    )
    assert bad.status_code == 400 and "not a choice" in bad.content.decode()
    statistician = login(STATISTICIAN, "stan")
    assert statistician.get(url).status_code == 200
    assert (
        statistician.post(
            url, {"question_key": "nursery_exit", "new_key": '{"answer": "b"}', "reason": "x"}
        ).status_code
        == 403
    )
    assert AnswerKeyChange.objects.count() == 1


def test_quiz_quality_page_reports_items_reliability_and_agreement(live_trial, eligible_answers):
    for answers in [{}, {"nursery_exit": "a"}, {"async_await_facts": ["a"]}, {"start_time": "4"}]:
        take_quiz(to_quiz(eligible_answers), **answers)
    for item in ItemResponse.objects.filter(question_key="never_awaited"):
        services.grade_submit(response=item, grader=user_with(GRADER, f"g{item.pk}"), points=2)
        item.refresh_from_db()
        if item.status == "needs_human":
            services.grade_submit(response=item, grader=user_with(GRADER, f"h{item.pk}"), points=2)
    page = login(STATISTICIAN, "stan").get("/manage/trials/trio-skill-formation/v1/quiz/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "4 participants answered; 4 with every item graded" in text
    assert "Cronbach" in text and "nursery_exit" in text and "everyone_wrong" in text


CODE_QUESTION = '''
[[questions]]
key = "write_double"
type = "code_writing"
text = "Write `double(x)` returning twice x."
points = 2
categories = ["code_writing"]
tests = """
from checker import participant

def test_doubles():
    assert participant.call("double", 2) == 4
"""
'''


def _launch_with_code_question(tmp_path: Path) -> None:
    folder = tmp_path / "trial"
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "studies" / "trio-skill-formation", folder
    )
    quiz = folder / "quiz.toml"
    quiz.write_text(quiz.read_text() + CODE_QUESTION)
    trial = trial_launch(trial=trial_import(definition=load_trial_dir(folder)).trial)
    assert trial.status == "live"


def test_code_writing_questions_are_graded_by_hidden_tests_in_the_sandbox(
    tmp_path: Path, eligible_answers, django_capture_on_commit_callbacks
):
    _launch_with_code_question(tmp_path)
    client = to_quiz(eligible_answers)
    with_code = {"write_double": "def double(x):\n    return 2 * x\n"}
    # The sandbox run happens after the stage transition commits.
    with django_capture_on_commit_callbacks(execute=True):
        take_quiz(client, **with_code)
    item = ItemResponse.objects.get(question_key="write_double")
    assert (item.status, item.points, item.detail) == ("auto", 2, "1/1 tests passed")


def test_code_answers_are_stored_at_once_and_graded_off_the_request(
    tmp_path: Path, eligible_answers, django_capture_on_commit_callbacks, settings, monkeypatch
):
    """With the thread backend the participant's request only hands the grading to a job; the
    answer is already stored, pending, when the response goes out."""
    settings.JOBS_BACKEND = "thread"
    submitted: list[tuple[object, dict]] = []

    class Recorder:
        def submit(self, run, path, kwargs):
            submitted.append((run, path, kwargs))

    monkeypatch.setattr(jobs, "_executor", lambda: Recorder())
    _launch_with_code_question(tmp_path)
    client = to_quiz(eligible_answers)
    with django_capture_on_commit_callbacks(execute=True):
        take_quiz(client, write_double="def double(x):\n    return x + x\n")
    item = ItemResponse.objects.get(question_key="write_double")
    assert item.status == "needs_sandbox" and item.graded_at is None
    assert len(submitted) == 1
    run, path, kwargs = submitted[0]
    assert path == "quizzes.services.grade_code_job"
    assert run is jobs._in_thread
    # What the worker thread runs: the Celery task, in this process.
    assert jobs.job.apply((path, kwargs)).get() == 1
    item.refresh_from_db()
    assert (item.status, item.points) == ("auto", 2)


def test_pending_code_answers_are_finished_by_the_command(
    tmp_path: Path, eligible_answers, django_capture_on_commit_callbacks, settings, monkeypatch
):
    from django.core.management import call_command

    settings.JOBS_BACKEND = "thread"
    monkeypatch.setattr(jobs, "_executor", lambda: type("Lost", (), {"submit": print})())
    _launch_with_code_question(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        take_quiz(to_quiz(eligible_answers), write_double="def double(x):\n    return 3 * x\n")
    assert ItemResponse.objects.get(question_key="write_double").status == "needs_sandbox"
    call_command("grade_pending_code")
    item = ItemResponse.objects.get(question_key="write_double")
    assert (item.status, item.points, item.detail) == ("auto", 0, "0/1 tests passed")


def test_a_grader_logs_in_to_the_queue_and_cannot_reopen_finished_answers(
    live_trial, eligible_answers
):
    take_quiz(to_quiz(eligible_answers))
    item = ItemResponse.objects.get(question_key="never_awaited")
    ItemResponse.objects.filter(pk=item.pk).update(needs_double_grading=False)
    user_with(GRADER, "gina")
    client = Client()
    response = client.post("/accounts/login/", {"username": "gina", "password": "pw-12345-xyz"})
    assert response["Location"] == "/grade/"
    client.post(f"/grade/{item.blind_id}/", {"points": "1"})
    again = client.get(f"/grade/{item.blind_id}/")
    assert again["Location"] == "/grade/"
    # Objective answers have no grading page at all.
    objective = ItemResponse.objects.get(question_key="nursery_exit")
    assert client.get(f"/grade/{objective.blind_id}/").status_code == 404
