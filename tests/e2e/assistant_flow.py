"""Driving the assistant's chat panel as a person would: by its labels and buttons."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from playwright.sync_api import Locator, Page, expect

from tests.conftest import ELIGIBLE_ANSWERS
from tests.e2e.flow import (
    ENTRY,
    coding_years_for_arm,
    consent,
    fill_questions,
    finish_task_stage,
    participant_in,
    questions_of,
    submit_questions,
)
from trials.models import Participant, Trial

T = TypeVar("T")

# The scripted assistant answers at once; a pause between its chunks makes the stream visible.
ANSWER_TIMEOUT = 20_000


def to_main_tasks(page: Page, trial: Trial, arm: str) -> Participant:
    """A new participant allocated to ``arm``: consent, screening, the warm-up (left as it is),
    arriving at the Trio tasks, where the AI arm may use the assistant."""
    answers = dict(ELIGIBLE_ANSWERS, coding_years=coding_years_for_arm(trial, arm))
    page.goto(ENTRY)
    consent(page)
    fill_questions(page, questions_of(page, trial, "screening"), answers)
    submit_questions(page, "warmup")
    participant = participant_in(page.context, trial)
    assert participant.allocation.arm.key == arm
    # The warm-up allows no assistant for anyone.
    expect(page.locator(".cm-content")).to_be_visible()
    expect(page.locator("[data-assistant-panel]")).to_have_count(0)
    finish_task_stage(page, "main_tasks")
    expect(page.locator(".cm-content").first).to_be_visible()
    return participant


@dataclass
class ChatPanel:
    """The chat panel of one task."""

    page: Page
    folder: str

    @property
    def section(self) -> Locator:
        return self.page.locator(f'section[data-task-folder="{self.folder}"]')

    @property
    def panel(self) -> Locator:
        return self.section.get_by_role("complementary", name="AI assistant")

    @property
    def box(self) -> Locator:
        return self.panel.get_by_role("textbox", name="Ask the assistant")

    @property
    def send_button(self) -> Locator:
        return self.panel.get_by_role("button", name="Send", exact=True)

    @property
    def stop_button(self) -> Locator:
        return self.panel.get_by_role("button", name="Stop", exact=True)

    @property
    def status(self) -> Locator:
        return self.panel.get_by_role("status")

    @property
    def questions(self) -> Locator:
        return self.panel.locator(".chat-msg.from-user")

    @property
    def replies(self) -> Locator:
        return self.panel.locator(".chat-msg.from-assistant")

    def last_reply(self) -> Locator:
        return self.replies.last

    def open(self) -> None:
        """Below 1400 px the panel is a drawer, opened from the task's heading."""
        if not self.panel.is_visible():
            self.section.get_by_role("button", name="Open the AI assistant").click()
            expect(self.panel).to_be_visible()

    def ask(self, question: str) -> None:
        """Type the question and press Enter (Shift+Enter would start a new line)."""
        self.open()
        self.box.click()
        self.box.fill(question)
        self.box.press("Enter")
        expect(self.questions.last.locator(".chat-text")).to_have_text(question)

    def wait_answered(self) -> Locator:
        expect(self.send_button).to_be_visible(timeout=ANSWER_TIMEOUT)
        expect(self.stop_button).to_be_hidden()
        reply = self.last_reply()
        expect(reply).not_to_have_attribute("aria-busy", "true")
        return reply

    def watch_reply_lengths(self) -> None:
        """Record, in the page, the length of the newest reply's text at every change, to see
        that it arrives in pieces."""
        self.page.evaluate(
            """(folder) => {
                const log = document.querySelector(
                    `section[data-task-folder="${folder}"] [data-chat-log]`);
                window.__replyLengths = [];
                new MutationObserver(() => {
                    const replies = log.querySelectorAll(".chat-msg.from-assistant .chat-text");
                    const last = replies[replies.length - 1];
                    if (last) window.__replyLengths.push(last.textContent.length);
                }).observe(log, {subtree: true, childList: true, characterData: true});
            }""",
            self.folder,
        )

    def reply_lengths(self) -> list[int]:
        return list(self.page.evaluate("window.__replyLengths"))


def wait_for(what: Callable[[], T | None], timeout: float = 15.0, message: str = "") -> T:
    """Poll ``what`` (a database query) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"timed out waiting for {what}")
        time.sleep(0.2)
