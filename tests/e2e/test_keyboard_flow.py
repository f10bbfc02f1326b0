"""The whole flow by keyboard alone, from the entry link to the debrief: consent, screening,
both coding stages (each finished through its confirmation), every quiz question, the review
screen, the post-survey. Tab moves between controls, Space ticks, arrow keys choose, Enter
presses buttons; nothing is clicked."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ELIGIBLE_ANSWERS
from tests.e2e.flow import (
    ENTRY,
    consent_and_screening_by_keyboard,
    participant_in,
    press_button,
    stage_url,
    tab_to,
)
from trials.models import Participant, StageRecord, Trial

pytestmark = pytest.mark.e2e

# The fields of a question page, in the order Tab reaches them: one entry per name (a radio
# group or a set of checkboxes is one question), leaving out "I don't know" boxes.
FIELDS = """() => {
  const seen = [];
  for (const el of document.querySelectorAll("main form [name]")) {
    if (["hidden", "submit", "button"].includes(el.type) || el.disabled || /idk/i.test(el.name))
      continue;
    if (!seen.some((f) => f.name === el.name)) seen.push({name: el.name, type: el.type});
  }
  return seen;
}"""


def answer_every_question(page: Page) -> int:
    fields = page.evaluate(FIELDS)
    for field in fields:
        tab_to(page, "(el, name) => el.name === name", field["name"])
        if field["type"] in ("radio", "checkbox"):
            page.keyboard.press("Space")
        elif field["type"] == "select-one":
            page.keyboard.press("ArrowDown")
        else:
            page.keyboard.type("1")
    return len(fields)


def finish_coding_stage(page: Page, next_stage: str) -> None:
    press_button(page, "I am done with this stage")
    dialog = page.get_by_role("dialog", name="Finish this stage now?")
    expect(dialog).to_be_visible()
    page.keyboard.press("Tab")  # from "Keep working" to "Finish now"
    page.keyboard.press("Enter")
    expect(page).to_have_url(stage_url(next_stage))


def test_the_whole_flow_by_keyboard_alone(trial: Trial, page: Page) -> None:
    page.goto(ENTRY)
    consent_and_screening_by_keyboard(page, ELIGIBLE_ANSWERS)
    expect(page).to_have_url(stage_url("warmup"))

    finish_coding_stage(page, "main_tasks")
    finish_coding_stage(page, "quiz")

    answered = answer_every_question(page)
    assert answered == 15  # every question of the sample quiz
    press_button(page, "Review answers")
    expect(page).to_have_url(re.compile(r"/s/quiz/\?review=1$"))
    press_button(page, "Submit answers")
    expect(page).to_have_url(stage_url("post_survey"))

    answer_every_question(page)
    press_button(page, "Continue")
    expect(page).to_have_url(stage_url("debrief"))

    participant = Participant.objects.get(pk=participant_in(page.context, trial).pk)
    assert participant.status == Participant.Status.COMPLETED
    quiz = StageRecord.objects.get(participant=participant, stage__key="quiz")
    assert quiz.end_reason == "completed"
    assert len([v for v in quiz.answers.values() if v not in ("", [], None)]) == answered
