"""A participant goes through the whole sample trial in a real browser, once per arm, and no
response they receive carries a hidden test, an answer key, a reference solution they had not
typed, or the randomization seed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.conftest import ELIGIBLE_ANSWERS, SAMPLE_DIR
from tests.e2e.axe import assert_no_axe_violations
from tests.e2e.flow import (
    ENTRY,
    ResponseLog,
    TaskPanel,
    coding_years_for_arm,
    consent,
    fill_questions,
    finish_task_stage,
    participant_in,
    questions_of,
    screenshot,
    some_answers,
    stage_url,
    submit_questions,
)
from trials.models import Participant, StageRecord, TaskState, Trial

pytestmark = pytest.mark.e2e

TASKS = ("tasks/warmup", "tasks/concurrent_greetings", "tasks/fetch_all")
SURVEY_ANSWERS = {
    "self_rated_learning": "5",
    "enjoyment": "6",
    "effort": "4",
    "outside_help": "no",
    "comments": "The editor was easy to use.",
}
ASSISTANT_NOTICE = "You may use the AI assistant during this stage."


def read(rel: str) -> str:
    return (SAMPLE_DIR / rel).read_text(encoding="utf-8")


def meaningful_lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if len(line.strip()) >= 12}


def public_lines() -> set[str]:
    """Lines a participant legitimately sees: starters and instructions."""
    lines: set[str] = set()
    for folder in TASKS:
        lines |= meaningful_lines(read(f"{folder}/starter.py"))
        lines |= meaningful_lines(read(f"{folder}/instructions.md"))
    return lines


def hidden_test_lines(folder: str) -> set[str]:
    return meaningful_lines(read(f"{folder}/tests.py")) - public_lines()


def solution_lines(folder: str) -> set[str]:
    """Lines only this task's reference solution has (not a starter, instructions or another
    task's solution, which the participant may have typed earlier)."""
    others = set().union(
        *(meaningful_lines(read(f"{f}/solution.py")) for f in TASKS if f != folder)
    )
    return meaningful_lines(read(f"{folder}/solution.py")) - public_lines() - others


def solve(
    page: Page, log: ResponseLog, folder: str, expected_output: str, *, keyboard: bool = False
) -> None:
    task = TaskPanel(page, folder)
    log.mark(f"typed {folder}")
    task.replace_code(read(f"{folder}/solution.py"))
    stdout = task.run(keyboard=keyboard)
    assert expected_output in stdout, stdout
    assert task.check(keyboard=keyboard) == "All checks passed"
    expect(task.section.locator("[data-completed-badge]")).to_be_visible()
    # One tab only: its own Run and Check are never taken for another tab's edits.
    expect(task.section.locator("[data-conflict]")).to_be_hidden()
    expect(task.save_status).to_have_text("Saved")
    if keyboard:
        # Escape, then Tab, leaves the editor (Tab alone indents), as the hint says.
        task.editor.press("Escape")
        page.keyboard.press("Tab")
        expect(task.section.get_by_role("button", name="Run", exact=True)).to_be_focused()


@pytest.mark.parametrize("arm", ["ai", "no_ai"])
def test_participant_completes_the_trial_and_no_response_leaks_secrets(
    arm: str, trial: Trial, context: BrowserContext, page: Page, artifacts: Path
) -> None:
    log = ResponseLog(context)
    answers = dict(ELIGIBLE_ANSWERS, coding_years=coding_years_for_arm(trial, arm))

    def shot(n: int, stage: str) -> None:
        """Every participant page: no serious accessibility problem, and a picture of it at
        the three sizes people use (the default one, a wide screen, a phone)."""
        assert_no_axe_violations(page, f"{arm} {stage}")
        screenshot(page, artifacts, f"{arm}-{n}-{stage}")
        default = page.viewport_size
        for width, height in ((1920, 1080), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            screenshot(page, artifacts, f"{arm}-{n}-{stage}-{width}x{height}")
        if default is not None:
            page.set_viewport_size(default)

    # Consent and screening.
    page.goto(ENTRY)
    expect(page.get_by_role("heading", name="Taking part in this study")).to_be_visible()
    shot(1, "consent")
    consent(page)
    fill_questions(page, questions_of(page, trial, "screening"), answers)
    shot(2, "screening")
    submit_questions(page, "warmup")
    log.mark("allocated")

    # Warm-up: no assistant for anyone. Check the starter first, as people do: not passing.
    participant = participant_in(context, trial)
    assert participant.allocation.arm.key == arm
    expect(page.get_by_text(ASSISTANT_NOTICE)).to_have_count(0)
    warmup = TaskPanel(page, "tasks/warmup")
    assert re.fullmatch(r"\d of 4 checks passed", warmup.check())
    solve(page, log, "tasks/warmup", "[('the', 3), ('and', 1)]", keyboard=True)
    shot(3, "warmup")
    finish_task_stage(page, "main_tasks")

    # The Trio tasks: the assistant is allowed here, in the AI arm only.
    if arm == "ai":
        expect(page.get_by_text(ASSISTANT_NOTICE)).to_be_visible()
    else:
        expect(page.get_by_text(ASSISTANT_NOTICE)).to_have_count(0)
    solve(page, log, "tasks/concurrent_greetings", "hello from bob (3)\ndone")
    solve(page, log, "tasks/fetch_all", "3: 'FAILED'")
    shot(4, "main_tasks")
    finish_task_stage(page, "quiz")

    # The quiz is answered as it stands, whatever its questions (a first choice, a sentence).
    quiz_answers = some_answers(questions_of(page, trial, "quiz"))
    fill_questions(page, questions_of(page, trial, "quiz"), quiz_answers)
    shot(5, "quiz")
    submit_questions(page, "post_survey")

    fill_questions(page, questions_of(page, trial, "post_survey"), SURVEY_ANSWERS)
    shot(6, "post_survey")
    submit_questions(page, "debrief")

    participant = Participant.objects.get(pk=participant.pk)
    assert participant.status == Participant.Status.COMPLETED
    expect(page.locator("#completion-code")).to_have_text(participant.completion_code)
    shot(7, "debrief")

    # What the server recorded.
    records = {r.stage.key: r for r in StageRecord.objects.filter(participant=participant)}
    assert [records[k].end_reason for k in ("warmup", "main_tasks", "quiz", "post_survey")] == [
        "completed"
    ] * 4
    assert records["quiz"].answers == quiz_answers
    states = TaskState.objects.filter(participant=participant)
    assert {s.task for s in states if s.first_passed_at is not None} == set(TASKS)

    # What the browser received.
    page.goto(ENTRY)  # one more load of the finished page, after the last events were sent
    expect(page).to_have_url(stage_url("debrief"))
    assert not log.unreadable, log.unreadable
    kinds = {re.sub(r".*/api/(\w+)/$", r"\1", item.url) for item in log.items}
    assert {"save", "run", "check", "events"} <= kinds, kinds
    assert_nothing_secret_in(log, trial, arm)


def assert_nothing_secret_in(log: ResponseLog, trial: Trial, arm: str) -> None:
    # The log does hold what the participant saw: pages, the starter code, Run's output.
    assert log.containing("def top_words(text, n):"), "the warm-up page was not recorded"
    assert log.containing("hello from bob (3)"), "the Run responses were not recorded"
    for folder in TASKS:
        tests = read(f"{folder}/tests.py")
        assert not log.containing(tests), f"{folder}/tests.py was sent"
        for line in hidden_test_lines(folder):
            assert not log.containing(line), f"hidden test line {line!r} of {folder} was sent"
        # The participant typed each solution, so only responses before that count.
        for line in solution_lines(folder):
            assert not log.containing(line, log.before(f"typed {folder}")), (
                f"solution line {line!r} of {folder} was sent before the participant typed it"
            )
    quiz = read("quiz.toml")
    for needle in (quiz, '"answer"', "answer =", "points =", "[[questions]]"):
        assert not log.containing(needle), f"{needle[:40]!r} was sent"
    assert trial.randomization_seed and not log.containing(trial.randomization_seed)
    notice = log.containing(ASSISTANT_NOTICE, log.after("allocated"))
    assert bool(notice) == (arm == "ai"), notice
    if arm == "no_ai":
        # Nothing about an assistant after allocation (the consent and screening pages, seen
        # before, describe the study to everyone; so does the debrief).
        for item in log.after("allocated"):
            if "/static/" in item.url or item.url.endswith("/s/debrief/"):
                continue
            assert "assistant" not in item.body.lower(), f"{item.url} mentions the assistant"
