"""The pages where people leave early, as participants see them: screened out at screening, and
declined at consent. Each is polite, says why where it may, and passes axe-core."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ELIGIBLE_ANSWERS
from tests.e2e.axe import assert_no_axe_violations
from tests.e2e.flow import ENTRY, consent, fill_questions, questions_of, screenshot
from trials.models import Participant, Trial

pytestmark = pytest.mark.e2e


def test_a_screened_out_person_gets_a_polite_page(trial: Trial, page: Page, artifacts: Path):
    page.goto(ENTRY)
    consent(page)
    answers = dict(ELIGIBLE_ANSWERS, python_frequency="monthly")
    fill_questions(page, questions_of(page, trial, "screening"), answers)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Thank you")
    assert Participant.objects.get().status == Participant.Status.SCREENED_OUT
    assert "/s/warmup/" not in page.url
    screenshot(page, artifacts, "exit-screened-out")
    assert_no_axe_violations(page, "the screen-out page")


def test_someone_who_declines_consent_gets_a_polite_page(trial: Trial, page: Page, artifacts):
    page.goto(ENTRY)
    page.get_by_role("button", name="I do not want to take part").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Thank you")
    assert Participant.objects.get().status == Participant.Status.DECLINED
    screenshot(page, artifacts, "exit-declined")
    assert_no_axe_violations(page, "the page after declining")
