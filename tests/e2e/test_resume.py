"""One person, one allocation in a real browser: a no-AI participant who comes back in a new
browser with the same Prolific id keeps their arm and their work, and the new browser sees no
stage until it has gone through the resume step; the first browser is then told politely."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import ELIGIBLE_ANSWERS
from tests.e2e.axe import assert_no_axe_violations
from tests.e2e.flow import (
    ENTRY,
    TaskPanel,
    coding_years_for_arm,
    consent,
    fill_questions,
    page_state,
    participant_in,
    questions_of,
    screenshot,
    stage_path,
    stage_url,
    submit_questions,
)
from trials.models import Allocation, Event, Participant, Trial

pytestmark = pytest.mark.e2e

PID = "5f1e0c0ffee0123456789abc"
CODE = re.compile(r"^[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}$")
ASSISTANT_NOTICE = "You may use the AI assistant during this stage."


def new_browser(browser: Browser, live_server: object) -> BrowserContext:
    """Another browser: its own cookies and storage, another language."""
    ctx = browser.new_context(
        base_url=str(live_server),
        viewport={"width": 1280, "height": 900},
        locale="de-DE",
        timezone_id="UTC",
    )
    ctx.set_default_timeout(15_000)
    return ctx


def close(ctx: BrowserContext) -> None:
    # As the context fixture does: no beacon may reach the server while the database is reset.
    ctx.route("**/*", lambda route: route.abort())
    for tab in ctx.pages:
        tab.close(run_before_unload=False)
    time.sleep(0.5)
    ctx.close()


def test_a_no_ai_participant_in_a_new_browser_keeps_their_arm_only_after_the_resume_step(
    trial: Trial,
    browser: Browser,
    live_server: object,
    context: BrowserContext,
    page: Page,
    artifacts: Path,
) -> None:
    answers = dict(ELIGIBLE_ANSWERS, coding_years=coding_years_for_arm(trial, "no_ai"))

    # The first browser: the resume code is shown at consent, before anything else.
    page.goto(f"{ENTRY}?PROLIFIC_PID={PID}&STUDY_ID=s1&SESSION_ID=x1")
    notice = page.locator("#resume-code-notice")
    expect(notice).to_contain_text("Your resume code")
    code = notice.locator(".resume-code").inner_text().strip()
    assert CODE.match(code), code
    screenshot(page, artifacts, "resume-1-consent-with-code")
    consent(page)
    fill_questions(page, questions_of(page, trial, "screening"), answers)
    submit_questions(page, "warmup")
    participant = participant_in(context, trial)
    assert participant.allocation.arm.key == "no_ai"
    expect(page.locator("header .resume-code")).to_have_text(code)
    warmup = TaskPanel(page, "tasks/warmup")
    warmup.type_at_end("\n# written in the first browser\n")
    warmup.wait_saved()
    typed = warmup.code()
    # (coding_years_for_arm may have allocated stand-ins: count from here.)
    people = Participant.objects.count()
    allocations = Allocation.objects.count()

    # The browser is lost; the participant opens the study link again in another one.
    other = new_browser(browser, live_server)
    errors: list[str] = []
    try:
        second = other.new_page()
        second.on("pageerror", lambda error: errors.append(f"{second.url}: {error}"))
        second.goto(f"{ENTRY}?PROLIFIC_PID={PID}&STUDY_ID=s1&SESSION_ID=x1")
        resume_heading = second.get_by_role("heading", name="Continue where you left off")
        expect(resume_heading).to_be_visible()
        expect(second.locator(".cm-content")).to_have_count(0)
        expect(second.get_by_text(code)).to_have_count(0)
        screenshot(second, artifacts, "resume-2-new-browser-asked-for-the-code")
        assert_no_axe_violations(second, "the resume page")

        # Going straight to the stage's address leads back to the resume step.
        second.goto(stage_path("warmup"))
        expect(resume_heading).to_be_visible()
        expect(second.locator(".cm-content")).to_have_count(0)
        assert Participant.objects.count() == people

        # A wrong code is refused with a message; still no stage.
        second.get_by_label("Resume code").fill("2222-2222")
        second.get_by_role("button", name="Continue here").click()
        expect(second.locator("#resume-error")).to_contain_text("not the resume code")
        assert_no_axe_violations(second, "the resume page with a wrong code")
        expect(second.locator(".cm-content")).to_have_count(0)

        # The right code, typed in lower case: the same participant, stage, arm and code.
        second.get_by_label("Resume code").fill(code.lower())
        second.get_by_role("button", name="Continue here").click()
        expect(second).to_have_url(stage_url("warmup"))
        expect(second.locator(".cm-content")).to_be_visible()
        state = page_state(second)
        assert state["participant_ref"] == participant.public_code
        assert "assistant" not in state and state["tools"] == []
        expect(second.get_by_text(ASSISTANT_NOTICE)).to_have_count(0)
        expect(second.locator("textarea[data-code-fallback]")).to_have_value(typed)
        screenshot(second, artifacts, "resume-3-continued-in-the-new-browser")
        assert participant_in(other, trial).pk == participant.pk

        # The first browser, reloaded, is told; it shows no stage any more.
        page.reload()
        expect(page.get_by_role("heading", name="You continued in another browser")).to_be_visible()
        expect(page.locator(".cm-content")).to_have_count(0)
        screenshot(page, artifacts, "resume-4-first-browser-told")
        assert_no_axe_violations(page, "the page telling the first browser")
    finally:
        close(other)
    assert not errors, errors

    assert Participant.objects.count() == people
    assert Allocation.objects.count() == allocations
    assert Participant.objects.get(prolific_pid=PID).pk == participant.pk
    assert Allocation.objects.get(participant=participant).arm.key == "no_ai"
    logged = [
        e.type
        for e in Event.objects.filter(participant=participant)
        if e.type.startswith(("resume_", "session_"))
    ]
    assert sorted(logged) == ["resume_failed", "resume_prompted", "session_resumed"]
