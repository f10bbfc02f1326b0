"""Driving the participant pages as a person would: by visible labels, buttons and the
keyboard. Shared by the end-to-end tests."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.test import RequestFactory
from playwright.sync_api import BrowserContext, Error, Locator, Page, Response, Route, expect

from tests.conftest import ELIGIBLE_ANSWERS
from trials import services
from trials.definition import question_choices, stratum_key
from trials.models import AllocationSequence, Participant, Trial
from trials.participant_session import participant_from_cookie
from trials.randomization import ArmWeight, BlockSchedule

ENTRY = "/t/trio-skill-formation/"
# Run and Check go through the sandbox: ~1-3 s each on a small machine, more when queued.
SANDBOX_TIMEOUT = 45_000


def stage_path(key: str) -> str:
    return f"{ENTRY}s/{key}/"


def stage_url(key: str) -> re.Pattern[str]:
    return re.compile(re.escape(stage_path(key)) + "$")


def screenshot(page: Page, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # sticky panels are drawn where the scroll left them
    page.screenshot(path=str(path), full_page=True)
    return path


# --- allocation ----------------------------------------------------------------------------


def coding_years_for_arm(trial: Trial, arm_key: str) -> str:
    """A `coding_years` answer whose stratum allocates its next participant to ``arm_key``.

    The allocation is random but reproducible from the trial's seed (trials.randomization), so
    the test can look one allocation ahead in each stratum. If no stratum's next allocation is
    the wanted arm, a stand-in participant is allocated on the server and we look again."""
    config = trial.definition["randomization"]
    assert config["strata"] == ["coding_years"], config
    arms = [ArmWeight(arm.key, arm.weight) for arm in trial.arms.order_by("order")]
    question = next(q for q in trial.definition["baseline"] if q["key"] == "coding_years")
    levels = [choice["value"] for choice in question_choices(question)]
    for _ in range(12):
        for level in levels:
            stratum = stratum_key(config["strata"], {"coding_years": level})
            sequence, _ = AllocationSequence.objects.get_or_create(trial=trial, stratum=stratum)
            schedule = BlockSchedule(arms, config["block_sizes"], trial.randomization_seed, stratum)
            if schedule.arm_at(sequence.next_index) == arm_key:
                return level
        stand_in = services.participant_enter(trial=trial, external_ids={})
        stand_in = services.participant_consent(
            participant=stand_in, stage_key="consent", agreed=True
        )
        services.participant_screen(
            participant=stand_in,
            stage_key="screening",
            answers=dict(ELIGIBLE_ANSWERS, coding_years=levels[0]),
        )
    raise AssertionError(f"no stratum allocates to {arm_key!r} next")


# --- pages -----------------------------------------------------------------------------------


def page_state(page: Page) -> dict[str, Any]:
    text = page.locator("#page-state").text_content()
    assert text, "the coding page has no #page-state"
    return dict(json.loads(text))


def consent(page: Page) -> None:
    expect(page).to_have_url(stage_url("consent"))
    page.get_by_label("I have read the information above and agree to take part.").check()
    page.get_by_role("button", name="I agree — continue").click()
    expect(page).to_have_url(stage_url("screening"))


def participant_in(context: BrowserContext, trial: Trial) -> Participant:
    """The participant whose signed cookie this browser holds."""
    request = RequestFactory().get("/")
    request.COOKIES = {cookie["name"]: cookie["value"] for cookie in context.cookies()}
    participant = participant_from_cookie(request, trial)
    assert participant is not None, "this browser is nobody's"
    return participant


def questions_of(page: Page, trial: Trial, stage_key: str) -> list[dict[str, Any]]:
    """The questions of a stage as this page's participant sees them (a quiz in their order,
    without its keys)."""
    participant = participant_in(page.context, trial)
    return services.stage_questions(participant, trial.stages.get(key=stage_key))


def loose(text: str, *, whole: bool = False) -> re.Pattern[str]:
    """A pattern for a label as the page shows it: Markdown's backticks and asterisks may or
    may not have been rendered away, whitespace may be folded. Punctuation is written as \\xHH,
    which Python and JavaScript read alike (Playwright hands the pattern to the page)."""
    parts = []
    for char in text.strip():
        if char.isspace():
            parts.append(r"\s*")
        elif char.isalnum() or ord(char) > 0x7F:
            parts.append(char)
        else:
            parts.append(f"\\x{ord(char):02x}" + ("?" if char in "`*" else ""))
    body = re.sub(r"(\\s\*)+", r"\\s*", "".join(parts))
    return re.compile(f"^{body}$" if whole else body)


def some_answers(questions: list[dict[str, Any]]) -> dict[str, Any]:
    """An answer to every question (the first choice, a number, a sentence)."""
    answers: dict[str, Any] = {}
    for question in questions:
        choices = question_choices(question)
        if question["type"] == "multi_choice":
            answers[question["key"]] = [choices[0]["value"]]
        elif choices:
            answers[question["key"]] = choices[0]["value"]
        elif question["type"] in ("number", "numeric"):
            answers[question["key"]] = "3"
        else:
            answers[question["key"]] = "I am not sure."
    return answers


def fill_questions(page: Page, questions: list[dict[str, Any]], answers: dict[str, Any]) -> None:
    """Answer each question as a person would: the choice by its label, inside the group named
    by the question (its legend); text fields labelled with the question."""
    for question in questions:
        key = question["key"]
        if key not in answers:
            continue
        value = answers[key]
        labels = {c["value"]: c["label"] for c in question_choices(question)}
        # Found by field name (two questions may share a text), then required to be named by
        # the question, as a screen reader announces it: the field's label or its group's.
        field = page.locator(f'[name="{key}"]')
        named = page.get_by_role("group", name=loose(question["text"])).filter(has=field)
        if labels:
            expect(named).to_have_count(1)
            role = "checkbox" if question["type"] == "multi_choice" else "radio"
            for one in value if isinstance(value, list) else [value]:
                named.get_by_role(role, name=loose(labels[one], whole=True)).check()
        else:
            if named.count() != 1:
                expect(field).to_have_accessible_name(loose(question["text"]))
            field.fill(str(value))


def submit_questions(page: Page, next_stage: str) -> None:
    """Continue (a quiz: Review answers, then Submit answers on the review screen)."""
    if page.url.endswith("/s/quiz/"):
        page.get_by_role("button", name="Review answers").click()
        expect(page).to_have_url(re.compile(r"/s/quiz/\?review=1$"))
        # Every response of the review page (its icon too) is in before it is left.
        page.wait_for_load_state("networkidle")
        page.get_by_role("button", name="Submit answers").click()
    else:
        page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(stage_url(next_stage))


def finish_task_stage(page: Page, next_stage: str) -> None:
    """Finish a coding stage; before its time is up (or with a task unpassed) the page asks
    first, and the participant confirms."""
    page.get_by_role("button", name="I am done with this stage").click()
    page.get_by_role("dialog", name="Finish this stage now?").get_by_role(
        "button", name="Yes, finish this stage"
    ).click()
    expect(page).to_have_url(stage_url(next_stage))


@dataclass
class TaskPanel:
    """One task of a coding page: its editor, Run, Check and the panels they fill."""

    page: Page
    folder: str

    @property
    def section(self) -> Locator:
        return self.page.locator(f'section[data-task-folder="{self.folder}"]')

    @property
    def editor(self) -> Locator:
        return self.section.locator(".cm-content")

    @property
    def save_status(self) -> Locator:
        return self.section.locator("[data-save-status]")

    def code(self) -> str:
        # task.js keeps the (hidden) form field equal to the editor's text.
        return self.section.locator("textarea[data-code-fallback]").input_value()

    def replace_code(self, code: str) -> None:
        """Select all in the editor and enter new text, as an input method would (typing
        key by key would add the editor's automatic indentation to the given indentation)."""
        self.editor.click()
        self.page.keyboard.press("ControlOrMeta+a")
        self.page.keyboard.insert_text(code)
        expect(self.section.locator("textarea[data-code-fallback]")).to_have_value(code)

    def type_at_end(self, text: str, delay: float = 0) -> None:
        """Key by key at the end of the code."""
        self.editor.click()
        self.page.keyboard.press("ControlOrMeta+End")
        self.page.keyboard.type(text, delay=delay)

    def wait_saved(self, timeout: float = 15_000) -> None:
        expect(self.save_status).to_have_text("Saved", timeout=timeout)

    def run(self, *, keyboard: bool = False) -> str:
        """Click Run (or press Ctrl+Enter in the editor); return what the program printed."""
        if keyboard:
            self.editor.press("ControlOrMeta+Enter")
        else:
            self.section.get_by_role("button", name="Run", exact=True).click()
        stdout = self.section.locator("[data-run-output] pre.stdout")
        expect(self.section.locator("[data-run-status]")).to_have_text(
            re.compile(r"^Run: "), timeout=SANDBOX_TIMEOUT
        )
        return stdout.inner_text()

    def check(self, *, keyboard: bool = False) -> str:
        """Click Check (or press Ctrl+Shift+Enter in the editor); return the summary line
        ("All checks passed", "1 of 4 checks passed")."""
        if keyboard:
            self.editor.press("ControlOrMeta+Shift+Enter")
        else:
            self.section.get_by_role("button", name="Check", exact=True).click()
        expect(self.section.locator("[data-run-status]")).to_have_text(
            re.compile(r"^Check: "), timeout=SANDBOX_TIMEOUT
        )
        return self.section.locator("[data-check-output] .checks-summary").inner_text()


# --- recording every response ----------------------------------------------------------------


@dataclass
class Recorded:
    url: str
    status: int
    resource_type: str
    headers: str
    body: str
    phase: int


class ResponseLog:
    """Every response the browser context receives (documents, scripts, fetch, beacons), with
    its body, tagged with the phase of the test it arrived in.

    The JSON API's responses are fetched through a route, because the browser may discard a
    response body as soon as the page navigates (the last telemetry batch is sent just before
    a stage's form is submitted); every other body is read when its response arrives."""

    API = re.compile(r"/api/\w+/$")

    def __init__(self, context: BrowserContext) -> None:
        self.items: list[Recorded] = []
        self.unreadable: list[str] = []
        self.phase = 0
        self.phases: dict[str, int] = {}
        context.on("response", self._record)
        context.route(self.API, self._through)

    def mark(self, name: str) -> None:
        """Start a new phase (e.g. "typed tasks/warmup")."""
        self.phase += 1
        self.phases[name] = self.phase

    def _add(self, url: str, status: int, kind: str, headers: dict[str, str], body: str) -> None:
        text = "\n".join(f"{k}: {v}" for k, v in headers.items())
        self.items.append(Recorded(url, status, kind, text, body, self.phase))

    def _through(self, route: Route) -> None:
        response = route.fetch()
        self._add(
            route.request.url,
            response.status,
            route.request.resource_type,
            response.headers,
            response.body().decode("utf-8", "replace"),
        )
        route.fulfill(response=response)

    def _record(self, response: Response) -> None:
        if self.API.search(response.url):
            return  # recorded by _through
        body = ""
        if not 300 <= response.status < 400:  # redirects have no body to read
            try:
                body = response.body().decode("utf-8", "replace")
            except Error as exc:
                # A static asset the browser dropped while the page navigated (the favicon,
                # fetched as "other", often is) is the same public file for everyone, with no
                # participant's data to check; anything else must be readable.
                static = "/static/" in response.url or response.url.endswith("/favicon.ico")
                if not static and response.request.resource_type not in ("image", "font"):
                    self.unreadable.append(
                        f"{response.request.resource_type} {response.url}: {exc}"
                    )
                return
        self._add(
            response.url,
            response.status,
            response.request.resource_type,
            response.headers,
            body,
        )

    def before(self, name: str) -> list[Recorded]:
        return [item for item in self.items if item.phase < self.phases[name]]

    def after(self, name: str) -> list[Recorded]:
        return [item for item in self.items if item.phase >= self.phases[name]]

    def containing(self, needle: str, items: list[Recorded] | None = None) -> list[str]:
        """The URLs of responses whose body or headers contain ``needle``."""
        return [
            f"{item.status} {item.url}"
            for item in (self.items if items is None else items)
            if needle in item.body or needle in item.headers
        ]


def walk_to_warmup(page: Page, trial: Trial) -> Participant:
    """A new participant: consent, eligible screening answers, arrive at the warm-up."""
    page.goto(ENTRY)
    consent(page)
    fill_questions(page, questions_of(page, trial, "screening"), ELIGIBLE_ANSWERS)
    submit_questions(page, "warmup")
    expect(page.locator(".cm-content")).to_be_visible()
    participant = participant_in(page.context, trial)
    assert participant.public_code == page_state(page)["participant_ref"]
    return participant


# --- by keyboard ------------------------------------------------------------------------------


def tab_to(page: Page, test: str, arg: Any = None, *, limit: int = 120) -> None:
    """Press Tab until the focused element passes ``test`` (a JavaScript function of the
    element and ``arg``), as a keyboard user moves through the page. In the code editor, where
    Tab indents, Escape comes first (as the editor's hint says) so that the next Tab leaves it."""
    for _ in range(limit):
        if page.evaluate("() => document.activeElement.classList.contains('cm-content')"):
            page.keyboard.press("Escape")
        page.keyboard.press("Tab")
        if page.evaluate(f"(arg) => ({test})(document.activeElement, arg)", arg):
            return
    raise AssertionError(f"Tab never reached an element for which {test} holds ({arg!r})")


def press_button(page: Page, name: str) -> None:
    tab_to(page, "(el, name) => el.tagName === 'BUTTON' && el.innerText.trim() === name", name)
    page.keyboard.press("Enter")


def consent_and_screening_by_keyboard(page: Page, answers: dict[str, str]) -> None:
    """From the entry page to the first stage after screening: Space ticks consent, each
    question's radio group is entered with Tab and its answer chosen with the arrow keys."""
    expect(page).to_have_url(stage_url("consent"))
    tab_to(page, "(el) => el.type === 'checkbox'")
    page.keyboard.press("Space")
    press_button(page, "I agree — continue")
    expect(page).to_have_url(stage_url("screening"))
    for key, value in answers.items():
        tab_to(page, "(el, key) => el.name === key", key)
        page.keyboard.press("Space")
        for _ in range(10):
            if page.evaluate("(v) => document.activeElement.value === v", value):
                break
            page.keyboard.press("ArrowDown")
        assert page.locator(f'[name="{key}"]:checked').get_attribute("value") == value, key
    press_button(page, "Continue")
