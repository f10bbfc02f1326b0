"""The coding page cannot bias the outcome (issue 12): both arms read the task in the same
instruction area beside the same editor, a timed stage is not ended by one click, a phone is
asked to continue on a computer, an oversized paste gets a clear final answer, and a person
whose time ran out is told so. Every page checked here passes axe-core (serious, critical).

Screenshots of the task page in both arms at 1280x800, 1920x1080 and 390x844 go to
test-artifacts/e2e/task-<arm>-<size>.png."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import ELIGIBLE_ANSWERS
from tests.e2e.assistant_flow import to_main_tasks
from tests.e2e.axe import assert_no_axe_violations
from tests.e2e.flow import (
    ENTRY,
    TaskPanel,
    consent,
    consent_and_screening_by_keyboard,
    fill_questions,
    participant_in,
    press_button,
    questions_of,
    screenshot,
    stage_path,
    stage_url,
    submit_questions,
    tab_to,
    walk_to_warmup,
)
from trials import services
from trials.models import CodeSnapshot, Participant, StageRecord, Trial
from trials.services import coding

pytestmark = pytest.mark.e2e

FIRST_TASK = "tasks/concurrent_greetings"
WARMUP = "tasks/warmup"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
SIZES = {"1280x800": (1280, 800), "1920x1080": (1920, 1080)}

# What one task's page looks like, measured in the page. The instruction area is measured as a
# reader meets it: scrolled to the top of the task, how much of it is in the window.
MEASURE = """(folder) => {
  const section = document.querySelector(`section[data-task-folder="${folder}"]`);
  const instructions = section.querySelector("[data-region=instructions]");
  window.scrollTo(0, instructions.getBoundingClientRect().top + window.scrollY - 17);
  const r = instructions.getBoundingClientRect();
  const editor = section.querySelector(".cm-editor").getBoundingClientRect();
  const outsidePanel = (el) => !el.closest("[data-assistant-panel], [data-assistant-toggle]");
  const visible = (el) => el.offsetParent !== null;
  const controls = Array.from(document.querySelectorAll("button, textarea, input, a[href]"))
    .filter((el) => visible(el) && outsidePanel(el) && el.type !== "hidden")
    .map((el) => el.tagName.toLowerCase() + ":" +
                 (el.innerText || el.getAttribute("aria-label") || "").trim());
  return {
    instructions_width: Math.round(r.width),
    instructions_box_height: instructions.clientHeight,
    instructions_text_height: instructions.scrollHeight,
    instructions_visible_height: Math.round(Math.min(r.bottom, innerHeight) - Math.max(r.top, 0)),
    editor_width: Math.round(editor.width),
    editor_height: Math.round(editor.height),
    page_width: document.documentElement.scrollWidth,
    controls,
  };
}"""


def measure(page: Page, folder: str = FIRST_TASK) -> dict[str, Any]:
    return dict(page.evaluate(MEASURE, folder))


def other_browser(browser: Browser, live_server: object, **options: Any) -> BrowserContext:
    ctx = browser.new_context(
        base_url=str(live_server), locale="en-GB", timezone_id="UTC", **options
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


@pytest.fixture
def second(browser: Browser, live_server: object) -> Iterator[BrowserContext]:
    ctx = other_browser(browser, live_server, viewport={"width": 1280, "height": 800})
    yield ctx
    close(ctx)


def phone_of(browser: Browser, live_server: object, like: BrowserContext) -> BrowserContext:
    """The same person's session on a phone (their cookies, a phone's screen and browser)."""
    ctx = other_browser(
        browser,
        live_server,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        user_agent=IPHONE,
    )
    ctx.add_cookies(like.cookies())  # type: ignore[arg-type]
    return ctx


def test_both_arms_see_the_same_instructions_editor_and_controls(
    trial: Trial,
    browser: Browser,
    live_server: object,
    context: BrowserContext,
    page: Page,
    second: BrowserContext,
    page_errors: list[str],
    artifacts: Path,
) -> None:
    ai_page = page
    no_ai_page = second.new_page()
    no_ai_page.on("pageerror", lambda error: page_errors.append(f"no-AI tab: {error}"))
    to_main_tasks(ai_page, trial, "ai")
    to_main_tasks(no_ai_page, trial, "no_ai")
    arms = {"ai": ai_page, "no_ai": no_ai_page}

    sizes: dict[str, dict[str, dict[str, Any]]] = {}
    for size, (width, height) in SIZES.items():
        for arm, tab in arms.items():
            tab.set_viewport_size({"width": width, "height": height})
            expect(tab.locator(".cm-editor").first).to_be_visible()
            sizes.setdefault(size, {})[arm] = measure(tab)
            screenshot(tab, artifacts, f"task-{arm}-{size}")
        ai, no_ai = sizes[size]["ai"], sizes[size]["no_ai"]
        print(
            size,
            {
                arm: {k: v for k, v in m.items() if k != "controls"}
                for arm, m in sizes[size].items()
            },
        )
        # Arm parity: the instruction area and the editor are the same in both arms.
        for key in (
            "instructions_width",
            "instructions_box_height",
            "instructions_visible_height",
            "editor_width",
            "editor_height",
        ):
            assert abs(ai[key] - no_ai[key]) <= 1, (
                f"{size}: {key} AI {ai[key]} vs no-AI {no_ai[key]}"
            )
        assert ai["controls"] == no_ai["controls"], (size, ai["controls"], no_ai["controls"])
        # The task is read in the window's height, not in a small box: all of it, or the
        # window's height less the sticky margins.
        for m in (ai, no_ai):
            whole = m["instructions_text_height"] <= m["instructions_box_height"] + 1
            assert whole or m["instructions_visible_height"] >= height - 40, (size, m)
            assert m["page_width"] <= width, (size, m)
        assert ai["editor_width"] >= 0.4 * width, (size, ai)

    # The assistant: a tall column at 1920 px; a drawer at 1280 px that covers nothing until
    # opened and changes nothing under it.
    ai_page.set_viewport_size({"width": 1920, "height": 1080})
    log = ai_page.locator(f'section[data-task-folder="{FIRST_TASK}"] [data-chat-log]')
    assert log.evaluate("(el) => el.clientHeight") >= 500
    ai_page.set_viewport_size({"width": 1280, "height": 800})
    section = ai_page.locator(f'section[data-task-folder="{FIRST_TASK}"]')
    panel = section.get_by_role("complementary", name="AI assistant")
    expect(panel).to_be_hidden()
    toggle = section.get_by_role("button", name="Open the AI assistant")
    toggle.focus()
    ai_page.keyboard.press("Enter")  # by keyboard
    expect(panel).to_be_visible()
    expect(panel.get_by_role("textbox", name="Ask the assistant")).to_be_focused()
    assert log.evaluate("(el) => el.clientHeight") >= 350
    opened = measure(ai_page)
    for key in ("instructions_box_height", "editor_width", "editor_height"):
        assert opened[key] == sizes["1280x800"]["ai"][key], key
    handle = panel.get_by_role("separator", name="Width of the assistant panel")
    before = panel.bounding_box()
    handle.focus()
    ai_page.keyboard.press("ArrowLeft")
    ai_page.keyboard.press("ArrowLeft")
    after = panel.bounding_box()
    assert before and after and after["width"] == pytest.approx(before["width"] + 64, abs=2)
    ai_page.evaluate("window.scrollTo(0, 0)")
    ai_page.screenshot(path=str(artifacts / "task-ai-1280x800-drawer-open.png"))
    assert_no_axe_violations(ai_page, "the AI arm's task page with the assistant open")
    ai_page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(section.get_by_role("button", name="Open the AI assistant")).to_be_focused()
    assert_no_axe_violations(ai_page, "the AI arm's task page")
    assert_no_axe_violations(no_ai_page, "the no-AI arm's task page")

    # A phone: the same polite page in both arms, nothing wider than the screen.
    for arm, tab in arms.items():
        phone = phone_of(browser, live_server, tab.context)
        small = phone.new_page()
        small.goto(stage_path("main_tasks"))
        expect(small.get_by_role("heading", name="Please continue on a computer")).to_be_visible()
        expect(small.locator(".cm-editor")).to_have_count(0)
        assert small.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(small, artifacts, f"task-{arm}-390x844")
        assert_no_axe_violations(small, f"the phone page ({arm})")
        close(phone)

    # A trial that allows phones shows the task itself, in one column that fits the screen.
    trial.definition = {**trial.definition, "allow_phones": True}
    trial.save(update_fields=["definition"])
    phone = phone_of(browser, live_server, ai_page.context)
    small = phone.new_page()
    small.goto(stage_path("main_tasks"))
    expect(small.locator(".cm-editor").first).to_be_visible()
    assert small.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(small, artifacts, "task-ai-390x844-phones-allowed")
    close(phone)


def test_finishing_a_timed_stage_early_asks_first(
    trial: Trial, page: Page, artifacts: Path
) -> None:
    participant = walk_to_warmup(page, trial)
    finish = page.get_by_role("button", name="I am done with this stage")
    dialog = page.get_by_role("dialog", name="Finish this stage now?")

    finish.click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(re.compile(r"You still have \d+ minutes? left in this stage"))
    expect(dialog).to_contain_text("your task has not passed all its checks yet")
    expect(dialog.get_by_role("button", name="Keep working")).to_be_focused()
    screenshot(page, artifacts, "task-finish-confirmation")
    assert_no_axe_violations(page, "the finish confirmation")
    dialog.get_by_role("button", name="Keep working").click()
    expect(dialog).to_be_hidden()
    expect(finish).to_be_focused()

    # Escape is "keep working" too; nothing has ended.
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(500)
    expect(page).to_have_url(stage_url("warmup"))
    record = StageRecord.objects.get(participant=participant, stage__key="warmup")
    assert record.ended_at is None

    # By keyboard only: Enter on the button, Tab to "Yes", Enter.
    finish.focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Yes, finish this stage")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(stage_url("main_tasks"))
    record.refresh_from_db()
    assert record.end_reason == StageRecord.EndReason.COMPLETED


def test_an_oversized_paste_gets_a_final_message_and_loses_nothing_saved(
    trial: Trial, page: Page, monkeypatch: pytest.MonkeyPatch, artifacts: Path
) -> None:
    participant = walk_to_warmup(page, trial)
    task = TaskPanel(page, WARMUP)
    task.type_at_end("# mine\n")
    task.wait_saved()
    saved = CodeSnapshot.objects.filter(participant=participant, task=WARMUP).latest("version")
    saves: list[int] = []
    page.on(
        "response",
        lambda response: saves.append(response.status) if "/api/save/" in response.url else None,
    )

    # A 1 MB paste: longer than any task may hold. Said at once, and never sent.
    task.editor.click()
    page.keyboard.press("ControlOrMeta+End")
    paste(page, "x = 1\n" * 170_000)
    expect(task.save_status).to_have_text(
        re.compile(
            r"^Not saved: this code is longer than 200,000 characters.*last saved version is kept"
        )
    )
    screenshot(page, artifacts, "task-oversized-paste")

    # The server's 400 (here for a smaller limit than the page was told) is final as well:
    # shown in its words, not retried.
    page.keyboard.press("ControlOrMeta+z")
    task.wait_saved()
    monkeypatch.setattr(coding, "MAX_CODE_CHARS", 2000)
    paste(page, "y = 2\n" * 1000)
    expect(task.save_status).to_have_text(
        re.compile(
            r"^Not saved: the code is longer than 2000 characters\. .*last saved version is kept"
        )
    )
    page.wait_for_timeout(4000)  # a retry would have come by now (backoff starts at ~1 s)
    expect(task.save_status).not_to_have_text(re.compile("retrying"))
    assert saves.count(400) == 1, saves
    assert "Not yet" not in task.save_status.inner_text()
    latest = CodeSnapshot.objects.filter(participant=participant, task=WARMUP).latest("version")
    assert latest.version == saved.version and latest.code == saved.code

    # Shortened again, it saves.
    page.keyboard.press("ControlOrMeta+z")
    task.wait_saved()


def paste(page: Page, text: str) -> None:
    """Paste ``text`` where the focus is, as the browser does: a paste event with the text on
    its clipboard data (the editor inserts it)."""
    page.evaluate(
        """(text) => {
            const data = new DataTransfer();
            data.setData("text/plain", text);
            const event = new ClipboardEvent(
                "paste", {clipboardData: data, bubbles: true, cancelable: true});
            document.activeElement.dispatchEvent(event);
        }""",
        text,
    )


def _move_deadline(participant: Participant, seconds: float) -> None:
    deadline = timezone.now() + timedelta(seconds=seconds)
    Participant.objects.filter(pk=participant.pk).update(stage_deadline=deadline)
    StageRecord.objects.filter(
        participant=participant, stage=participant.current_stage, ended_at__isnull=True
    ).update(deadline=deadline)


def test_time_warnings_and_a_clear_page_after_the_deadline(
    trial: Trial, page: Page, artifacts: Path
) -> None:
    participant = walk_to_warmup(page, trial)
    warning = page.get_by_role("status").filter(has_text="left in this step")

    _move_deadline(participant, 302)
    page.reload()
    expect(warning).to_have_text("5 minutes left in this step.", timeout=8_000)
    _move_deadline(participant, 62)
    page.reload()
    expect(warning).to_have_text("1 minute left in this step.", timeout=8_000)
    screenshot(page, artifacts, "task-one-minute-warning")

    # Away past the deadline, then back: the next stage says why they are there.
    page.goto("about:blank")
    _move_deadline(participant, -120)
    page.goto(stage_path("warmup"))
    expect(page).to_have_url(stage_url("main_tasks"))
    notice = page.get_by_role("region", name=re.compile(r"The time for .Warm-up.* ran out"))
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("The work you saved before then has been kept")
    screenshot(page, artifacts, "task-after-deadline")
    assert_no_axe_violations(page, "the stage after a deadline")

    # The debrief page, reached on the server.
    participant.refresh_from_db()
    participant = coding.task_stage_finish(
        participant=participant, stage=participant.current_stage, code={}
    )
    for key in ("quiz", "post_survey"):
        participant = services.participant_complete_stage(
            participant=participant, stage_key=key, answers={}
        )
    page.goto(ENTRY)
    expect(page.locator("#completion-code")).to_be_visible()
    assert_no_axe_violations(page, "the debrief")


def test_a_phone_does_consent_and_screening_then_continues_on_a_computer(
    trial: Trial, browser: Browser, live_server: object, context: BrowserContext, page: Page
) -> None:
    pid = "65a1b2c3d4e5f60718293a4b"
    phone = other_browser(
        browser,
        live_server,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        user_agent=IPHONE,
    )
    try:
        small = phone.new_page()
        small.goto(f"{ENTRY}?PROLIFIC_PID={pid}&STUDY_ID=s1&SESSION_ID=x1")
        expect(small).to_have_url(stage_url("consent"))
        assert small.evaluate("document.documentElement.scrollWidth") <= 390
        assert_no_axe_violations(small, "consent on a phone")
        code = small.locator("#resume-code-notice .resume-code").inner_text().strip()
        consent(small)
        assert small.evaluate("document.documentElement.scrollWidth") <= 390
        assert_no_axe_violations(small, "screening on a phone")
        fill_questions(small, questions_of(small, trial, "screening"), ELIGIBLE_ANSWERS)
        submit_questions(small, "warmup")
        expect(small.get_by_role("heading", name="Please continue on a computer")).to_be_visible()
        link = small.locator("#resume-link").inner_text().strip()
        assert link.endswith(f"{ENTRY}?PROLIFIC_PID={pid}"), link
        expect(small.locator(".resume-code").last).to_have_text(code)
        participant = participant_in(phone, trial)
    finally:
        close(phone)

    # On the computer, the link and the code continue exactly there.
    page.goto(link)
    page.get_by_label("Resume code").fill(code)
    page.get_by_role("button", name="Continue here").click()
    expect(page).to_have_url(stage_url("warmup"))
    expect(page.locator(".cm-content")).to_be_visible()
    assert participant_in(context, trial).pk == participant.pk


def test_consent_screening_and_a_coding_stage_by_keyboard_alone(trial: Trial, page: Page) -> None:
    page.goto(ENTRY)
    consent_and_screening_by_keyboard(page, ELIGIBLE_ANSWERS)
    expect(page).to_have_url(stage_url("warmup"))

    # The editor: typed into, then left with Escape and Tab (Tab alone indents).
    tab_to(page, "(el) => el.classList.contains('cm-content')")
    page.keyboard.press("ControlOrMeta+End")
    page.keyboard.type("# by keyboard\n")
    page.keyboard.press("Escape")
    press_button(page, "Run")
    expect(page.locator("[data-run-status]")).to_have_text(re.compile(r"^Run: "), timeout=45_000)
    press_button(page, "I am done with this stage")
    dialog = page.get_by_role("dialog", name="Finish this stage now?")
    expect(dialog).to_be_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(stage_url("main_tasks"))
    participant = participant_in(page.context, trial)
    latest = CodeSnapshot.objects.filter(participant=participant, task=WARMUP).latest("version")
    assert "# by keyboard" in latest.code
