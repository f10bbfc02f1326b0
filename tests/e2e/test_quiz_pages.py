"""The quiz page in a real browser: every item type comes back exactly after a reload, "I don't
know" never ticks itself, Enter never submits, the review screen lists what is unanswered
before the only button that submits, and a stale second tab is told instead of overwriting.
The quiz page, its review screen and the stale tab's notice pass axe-core (serious, critical)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from quizzes.models import ItemResponse, QuizAttempt
from tests.conftest import ELIGIBLE_ANSWERS
from tests.e2e.axe import assert_no_axe_violations
from tests.e2e.flow import (
    ENTRY,
    consent,
    fill_questions,
    participant_in,
    questions_of,
    screenshot,
    stage_path,
    stage_url,
    submit_questions,
)
from trials import services
from trials.definition import load_trial_dir
from trials.models import Participant, StageRecord, Trial

pytestmark = pytest.mark.django_db(transaction=True)

# The sample quiz has no short-answer or code-writing question: these two are added to it.
MORE_QUESTIONS = r"""

[[questions]]
key = "which_function"
type = "short_answer"
text = "Which nursery method starts a task **without** waiting for it?"
accepted = ["start_soon"]
points = 1
categories = ["conceptual"]
idk = true

[[questions]]
key = "write_double"
type = "code_writing"
text = "Write `double(x)`, which returns twice `x`."
code = "def double(x):\n    pass\n"
tests = "def test_double():\n    assert double(2) == 4\n"
points = 1
categories = ["code_writing"]
idk = true
"""

SAVED = "Your answers are saved."
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def quiz_trial(live_server: object, trial_dir: Path) -> Trial:
    with (trial_dir / "quiz.toml").open("a") as quiz:
        quiz.write(MORE_QUESTIONS)
    definition = load_trial_dir(trial_dir)
    return services.trial_launch(trial=services.trial_import(definition=definition).trial)


def walk_to_quiz(page: Page, trial: Trial) -> Participant:
    """A new participant at the quiz: consent and screening in the browser; the two coding
    stages are finished on the server (they have their own tests)."""
    page.goto(ENTRY)
    consent(page)
    fill_questions(page, questions_of(page, trial, "screening"), ELIGIBLE_ANSWERS)
    submit_questions(page, "warmup")
    participant = participant_in(page.context, trial)
    for key in ("warmup", "main_tasks"):
        participant = services.participant_complete_stage(
            participant=participant, stage_key=key, answers={}
        )
    page.goto(stage_path("quiz"))
    expect(page.get_by_role("heading", name=re.compile("^Part 1 of"))).to_be_visible()
    return participant


def item(page: Page, key: str):  # type: ignore[no-untyped-def]
    return page.locator(f'[data-question="{key}"]')


def idk_box(page: Page, key: str):  # type: ignore[no-untyped-def]
    return item(page, key).get_by_role("checkbox", name="I don't know")


def draft(participant: Participant) -> dict[str, Any]:
    """The saved answers, multiple choices in a fixed order (the page's order is shuffled)."""
    saved = StageRecord.objects.get(participant=participant, stage__key="quiz").draft
    return {k: sorted(v) if isinstance(v, list) else v for k, v in saved.items()}


def first_part_screenshot(page: Page, artifacts: Path, name: str) -> None:
    """The top of the quiz page down to the end of its first part."""
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator("section.quiz-part").first.bounding_box()
    assert box is not None
    width = page.viewport_size["width"] if page.viewport_size else 1280
    clip = {"x": 0, "y": 0, "width": width, "height": box["y"] + box["height"] + 16}
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True, clip=clip)  # type: ignore[arg-type]


def wait_saved(page: Page) -> None:
    expect(page.locator("#autosave-status")).to_have_text(SAVED)


# What each item type is answered with: values a careless round trip would change (spaces
# at both ends, blank lines, a leading newline, non-ASCII, a trailing zero).
STEPS: list[tuple[str, str, Any]] = [
    ("single_choice", "nursery_exit", "b"),
    ("multi_choice", "async_await_facts", ["a", "c"]),
    ("numeric", "start_time", "3.50"),
    ("short_answer", "which_function", "  start_soon "),
    ("predict_output", "predict_sequential", "\nstart a\n\n  end a  \n"),
    ("code_writing", "write_double", "def double(x):\n\treturn 2 * x\n\n"),
    ("free_text", "never_awaited", "It is never awaited —\n\nso it never runs. Ünïcode ✓"),
    ("idk", "end_time__idk", True),
    ("idk", "start_soon_returns", "idk"),
]


def answer(page: Page, key: str, value: Any) -> None:
    if key.endswith("__idk"):
        idk_box(page, key.removesuffix("__idk")).check()
    elif isinstance(value, list):
        for choice in value:
            item(page, key).locator(f'input[value="{choice}"]').check()
    elif item(page, key).locator("input[type=radio]").count():
        item(page, key).locator(f'input[value="{value}"]').check()
    else:
        item(page, key).locator(f'[name="{key}"]').fill(value)


def expect_shown(page: Page, key: str, value: Any) -> None:
    if key.endswith("__idk"):
        expect(idk_box(page, key.removesuffix("__idk"))).to_be_checked()
    elif isinstance(value, list) or item(page, key).locator("input[type=radio]").count():
        boxes = item(page, key).locator("input[type=checkbox], input[type=radio]")
        chosen = set(value) if isinstance(value, list) else {value}
        for i in range(boxes.count()):
            box = boxes.nth(i)
            expect(box).to_be_checked(checked=box.get_attribute("value") in chosen)
    else:
        expect(item(page, key).locator(f'[name="{key}"]')).to_have_value(value)


def test_every_item_type_comes_back_exactly_after_a_reload(
    page: Page, quiz_trial: Trial, artifacts: Path
) -> None:
    participant = walk_to_quiz(page, quiz_trial)
    idk_keys = [
        el.get_attribute("name") for el in page.locator('input[name$="__idk"]').element_handles()
    ]
    assert {"start_time__idk", "end_time__idk"} <= set(idk_keys)
    expected: dict[str, Any] = {}
    for kind, key, value in STEPS:
        answer(page, key, value)
        wait_saved(page)
        expected[key] = value
        assert draft(participant) == expected, kind
        page.reload()
        for done_key, done_value in expected.items():
            expect_shown(page, done_key, done_value)
        # "I don't know" is ticked only where it was chosen, after every reload.
        for name in idk_keys:
            box = page.locator(f'input[name="{name}"]')
            expect(box).to_be_checked(checked=name in expected)
        expect(page.locator("[data-progress-text]")).to_have_text(f"{len(expected)} of 17 answered")
    # While "I don't know" is ticked the typed answer is read-only; unticked, it counts.
    end_time = item(page, "end_time").locator('[name="end_time"]')
    expect(end_time).not_to_be_editable()
    idk_box(page, "end_time").uncheck()
    end_time.fill("7")  # the right answer, which the self-ticked box used to score as idk
    wait_saved(page)
    assert "end_time__idk" not in draft(participant)
    page.get_by_role("button", name="Review answers").click()
    page.get_by_role("button", name="Submit answers").click()
    expect(page).to_have_url(stage_url("post_survey"))
    graded = {i.question_key: i for i in ItemResponse.objects.filter(participant=participant)}
    assert graded["start_time"].status == "auto" and graded["start_time"].response == "3.50"
    assert graded["end_time"].status == "auto" and graded["end_time"].points > 0
    assert graded["start_soon_returns"].status == "idk"
    assert graded["predict_sequential"].response == "\nstart a\n\n  end a  \n"


def test_enter_never_submits_and_the_review_lists_what_is_unanswered(
    page: Page, trial: Trial, artifacts: Path
) -> None:
    participant = walk_to_quiz(page, trial)
    page.set_viewport_size(DESKTOP)
    numeric = item(page, "start_time").locator('[name="start_time"]')
    numeric.fill("3")
    numeric.press("Enter")
    item(page, "nursery_exit").locator('input[value="b"]').check()
    item(page, "nursery_exit").locator('input[value="b"]').press("Enter")
    wait_saved(page)
    expect(page).to_have_url(stage_url("quiz"))
    expect(page.locator("[data-review]")).to_have_count(0)
    assert QuizAttempt.objects.get(participant=participant).submitted_at is None
    expect(page.locator("[data-progress-text]")).to_have_text("2 of 15 answered")

    page.get_by_role("button", name="Review answers").click()
    expect(page).to_have_url(re.compile(r"/s/quiz/\?review=1$"))
    review = page.locator("[data-review]")
    expect(review).to_contain_text("You answered 2 of 15 questions")
    unanswered = review.locator("[data-unanswered] li")
    expect(unanswered).to_have_count(13)
    numbers = {
        key: n for n, key in enumerate((q["key"] for q in questions_of(page, trial, "quiz")), 1)
    }
    listed = unanswered.all_inner_texts()
    assert not any(text.startswith(f"Question {numbers['start_time']}:") for text in listed)
    assert any(text.startswith(f"Question {numbers['attention']}:") for text in listed)
    assert ItemResponse.objects.count() == 0  # nothing is submitted by the review
    assert_no_axe_violations(page, "the quiz's review screen")
    screenshot(page, artifacts, "quiz-review-1280")
    page.set_viewport_size(PHONE)
    screenshot(page, artifacts, "quiz-review-390")

    # Back to the questions from the review: the answers are there; go on answering.
    review.get_by_role("link", name=f"Question {numbers['attention']}").first.click()
    expect(page).to_have_url(re.compile(rf"/s/quiz/#q-{numbers['attention']}$"))
    expect(item(page, "start_time").locator('[name="start_time"]')).to_have_value("3")
    first_part_screenshot(page, artifacts, "quiz-first-part-390")
    page.set_viewport_size(DESKTOP)
    assert_no_axe_violations(page, "the quiz page")
    first_part_screenshot(page, artifacts, "quiz-first-part-1280")
    page.get_by_role("button", name="Review answers").click()
    page.get_by_role("button", name="Submit answers").click()
    expect(page).to_have_url(stage_url("post_survey"))
    assert ItemResponse.objects.filter(participant=participant).count() == 15
    # The post-survey shares the page's script: Enter on a choice does not submit it either.
    page.locator('input[name="enjoyment"][value="5"]').check()
    page.locator('input[name="enjoyment"][value="5"]').press("Enter")
    wait_saved(page)
    expect(page).to_have_url(stage_url("post_survey"))


def test_a_stale_tab_is_told_and_cannot_overwrite_newer_answers(page: Page, trial: Trial) -> None:
    participant = walk_to_quiz(page, trial)
    stale = page.context.new_page()
    stale.goto(stage_path("quiz"))
    # The first tab answers; the second, opened before, still shows nothing.
    item(page, "nursery_exit").locator('input[value="b"]').check()
    wait_saved(page)
    item(stale, "start_time").locator('[name="start_time"]').fill("3")
    notice = stale.locator("[data-stale-notice]")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("changed in another tab or window")
    expect(stale.locator("#autosave-status")).to_contain_text("Not saved")
    assert_no_axe_violations(stale, "the quiz page telling a stale tab")
    assert draft(participant) == {"nursery_exit": "b"}
    # Its Review button does not send its outdated answers either.
    stale.get_by_role("button", name="Review answers").click()
    expect(stale).to_have_url(stage_url("quiz"))
    assert draft(participant) == {"nursery_exit": "b"}
    stale.get_by_role("button", name="Show the latest answers").click()
    expect(item(stale, "nursery_exit").locator('input[value="b"]')).to_be_checked()
    expect(notice).to_be_hidden()

    # The first tab submits; the second's submit is not silently swallowed.
    page.get_by_role("button", name="Review answers").click()
    stale.get_by_role("button", name="Review answers").click()
    expect(stale).to_have_url(re.compile(r"\?review=1$"))
    page.get_by_role("button", name="Submit answers").click()
    expect(page).to_have_url(stage_url("post_survey"))
    stale.get_by_role("button", name="Submit answers").click()
    expect(stale).to_have_url(stage_url("post_survey"))
    expect(stale.locator("[data-message]")).to_contain_text("already been finished in another tab")
    assert (
        ItemResponse.objects.get(participant=participant, question_key="nursery_exit").response
        == "b"
    )
    stale.close()
