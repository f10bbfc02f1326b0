"""The assistant arm in a real browser (issue 4 §2 and §5): a question gets a streamed answer,
the code the assistant writes is copied into the editor and passes the task, and the events
show the whole chain. The conversation survives a reload; Stop stops. The arm without the
assistant has no chat panel and never calls the assistant."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import BrowserContext, Page, expect
from pytest_django.live_server_helper import LiveServer

from tests.conftest import SAMPLE_DIR
from tests.e2e.assistant_flow import ChatPanel, to_main_tasks, wait_for
from tests.e2e.flow import TaskPanel, page_state
from trials.models import AssistantTurn, Event, Participant, Trial

pytestmark = pytest.mark.e2e

TASK = "tasks/concurrent_greetings"
SOLUTION = (SAMPLE_DIR / TASK / "solution.py").read_text(encoding="utf-8")
# The scripted assistant answers a request for code with the solution in a python block; the
# block's text (what Copy copies) is the solution with one final newline.
SOLUTION_BLOCK = SOLUTION.rstrip("\n") + "\n"
HINT_QUESTION = "How do I run both greeters at the same time?"
CODE_QUESTION = "Please write the code for me"
STOP_QUESTION = "What is a cancel scope with a deadline, and how does move_on_after work?"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def events_of(participant: Participant, type_: str, origin: str) -> list[Event]:
    return list(Event.objects.filter(participant=participant, type=type_, origin=origin))


def payloads(participant: Participant, type_: str, origin: str, **match: Any) -> list[dict]:
    return [
        e.payload
        for e in events_of(participant, type_, origin)
        if all(e.payload.get(k) == v for k, v in match.items())
    ]


def shot(page: Page, chat: ChatPanel, path: Path) -> None:
    """What the participant sees with the task's card at the top of the window (an element
    screenshot would enlarge the viewport while it captures, which resizes the sticky panel)."""
    chat.section.evaluate("s => window.scrollTo(0, s.getBoundingClientRect().top + scrollY - 8)")
    page.screenshot(path=str(path))


def leave(page: Page) -> None:
    """Leave the coding page before the test ends: its last telemetry goes out (a beacon) on
    page hide, and must land before the test database is emptied for the next test."""
    page.goto("about:blank")
    page.wait_for_timeout(500)


def paste_into_editor(page: Page, task: TaskPanel) -> None:
    """Select all in the editor and paste with the keyboard, as a person would."""
    task.editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.press("ControlOrMeta+v")
    expect(task.section.locator("textarea[data-code-fallback]")).to_have_value(SOLUTION_BLOCK)


def test_ai_arm_asks_gets_a_streamed_answer_copies_the_code_and_passes(
    trial: Trial,
    context: BrowserContext,
    page: Page,
    live_server: LiveServer,
    settings: Any,
    artifacts: Path,
) -> None:
    # The scripted assistant streams in small pieces; a pause between them makes the stream
    # visible (and Stop possible) without a real model.
    settings.SCRIPTED_ASSISTANT_CHUNK_DELAY = 0.05
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    streams: list[str] = []
    page.on(
        "response",
        lambda r: (
            streams.append(r.headers.get("content-type", ""))
            if "/api/assistant/" in r.url
            else None
        ),
    )

    participant = to_main_tasks(page, trial, "ai")
    # From 1400 px the panel is a column beside the editor (below, a drawer: see the end).
    page.set_viewport_size({"width": 1440, "height": 900})
    state = page_state(page)
    assert state["assistant"]["url"] == reverse("trials:api_assistant", args=[trial.slug])
    assert state["assistant"]["history"] == {TASK: [], "tasks/fetch_all": []}
    chat = ChatPanel(page, TASK)
    task = TaskPanel(page, TASK)
    expect(chat.panel).to_be_visible()
    expect(chat.panel.get_by_text("Ask about this task.")).to_be_visible()
    # One panel per task, each with its own conversation.
    expect(page.locator("[data-assistant-panel]")).to_have_count(2)

    page.screenshot(path=str(artifacts / "assistant-0-start.png"))
    # Shift+Enter starts a new line; it does not send.
    chat.box.fill("first line")
    chat.box.press("Shift+Enter")
    chat.box.press_sequentially("second")
    expect(chat.box).to_have_value("first line\nsecond")
    expect(chat.questions).to_have_count(0)

    # 1. A question: the answer streams in, piece by piece, with Stop while it does.
    chat.watch_reply_lengths()
    chat.ask(HINT_QUESTION)
    expect(chat.stop_button).to_be_visible()
    expect(chat.last_reply()).to_contain_text("nursery")
    shot(page, chat, artifacts / "assistant-1-streaming.png")
    reply = chat.wait_answered()
    expect(reply).to_contain_text("That waiting is what structured concurrency means")
    expect(reply.locator("code", has_text="start_soon").first).to_be_visible()
    expect(reply.locator("strong", has_text="nursery")).to_be_visible()
    lengths = [n for n in chat.reply_lengths() if n > 1]
    assert len(set(lengths)) >= 4, f"the answer did not arrive in pieces: {lengths}"
    assert lengths == sorted(lengths), lengths
    assert streams and all(t.startswith("text/event-stream") for t in streams), streams
    expect(chat.status).to_have_text("The assistant has answered.")
    expect(chat.box).to_be_focused()  # Enter sent it; the next question can be typed at once

    # 2. Asking for the code: the solution in a python block with a Copy button.
    chat.ask(CODE_QUESTION)
    reply = chat.wait_answered()
    code_block = reply.locator(".chat-code")
    expect(code_block).to_have_count(1)
    assert code_block.locator("pre").text_content() == SOLUTION_BLOCK
    shot(page, chat, artifacts / "assistant-2-conversation.png")
    expect(code_block.get_by_role("button", name="Copy code")).to_be_visible()
    copy = code_block.locator("button.chat-copy")  # its name changes to "Copied code"
    copy.click()
    expect(copy).to_have_text("Copied code")
    expect(chat.status).to_have_text("Copied to the clipboard.")
    clipboard = page.evaluate("navigator.clipboard.readText()")
    assert clipboard == SOLUTION_BLOCK

    # 3. Pasted into the editor (select all, Ctrl+V), it passes the checks.
    paste_into_editor(page, task)
    assert task.check() == "All checks passed"
    expect(task.section.locator("[data-completed-badge]")).to_be_visible()

    # 4. The events show the whole chain.
    turns = list(AssistantTurn.objects.filter(participant=participant).order_by("created_at"))
    assert [t.question for t in turns] == [HINT_QUESTION, CODE_QUESTION]
    assert all(t.status == AssistantTurn.Status.COMPLETED for t in turns)
    hint_turn, code_turn = turns
    requests = payloads(participant, "assistant_request", "server", task=TASK)
    assert [(r["turn"], r["question"]) for r in requests] == [
        (hint_turn.pk, HINT_QUESTION),
        (code_turn.pk, CODE_QUESTION),
    ]
    # The editor's code went with each question (the starter first, unchanged).
    assert requests[0]["code_sha256"] == hint_turn.code_sha256 != ""
    assert requests[1]["context"]["messages"][-1]["role"] == "user"
    (response,) = payloads(participant, "assistant_response", "server", turn=code_turn.pk)
    assert response["status"] == "completed"
    assert response["code_blocks"] == [sha256(SOLUTION_BLOCK)]
    assert response["model"] == "scripted"
    copied = wait_for(
        lambda: payloads(participant, "copy", "client", source="assistant"),
        message="the Copy button's copy event did not reach the server",
    )
    assert copied == [
        {
            "task": TASK,
            "where": "assistant",
            "source": "assistant",
            "turn": code_turn.pk,
            "length": len(SOLUTION_BLOCK),
            "sha256": sha256(SOLUTION_BLOCK),
            "cut": False,
            "via": "button",
            "text": SOLUTION_BLOCK,  # evidence the server checks against the stored reply
            "from_assistant": True,  # the server's verdict, not the browser's
            "assistant_turn": code_turn.pk,
        }
    ]
    (pasted,) = wait_for(
        lambda: payloads(participant, "paste", "client", task=TASK),
        message="the paste event did not reach the server",
    )
    assert pasted["where"] == "editor"
    assert pasted["via"] == "clipboard"
    assert pasted["sha256"] == sha256(SOLUTION_BLOCK)
    assert pasted["from_assistant"] is True
    assert pasted["assistant_turn"] == code_turn.pk
    (checked,) = payloads(participant, "check", "server", task=TASK)
    assert checked["tests_total"] > 0 and checked["tests_passed"] == checked["tests_total"]
    assert checked["code_sha256"] == sha256(SOLUTION_BLOCK)
    assert checked["first_pass"] is True
    assert payloads(participant, "task_completed", "server", task=TASK)
    client_check = wait_for(lambda: payloads(participant, "check_shown", "client", task=TASK))
    assert client_check[-1]["all_passed"] is True

    # 5. Stop: the answer so far stays; the server records the turn as stopped.
    chat.ask(STOP_QUESTION)
    expect(chat.last_reply().locator(".chat-text")).to_contain_text("cancel scope")
    chat.stop_button.click()
    reply = chat.wait_answered()
    expect(reply.locator(".chat-note")).to_have_text("You stopped this answer.")
    expect(chat.box).to_be_focused()
    stopped = wait_for(
        lambda: AssistantTurn.objects.filter(
            participant=participant, question=STOP_QUESTION, status=AssistantTurn.Status.STOPPED
        ).first(),
        message="the stopped answer was not recorded as stopped",
    )
    assert stopped.reply and "trio.fail_after" not in stopped.reply  # cut short

    # 6. A reload keeps the conversation, with its code block and Copy button.
    page.reload()
    expect(chat.panel).to_be_visible()
    expect(chat.questions).to_have_count(3)
    expect(chat.replies).to_have_count(3)
    expect(chat.questions.nth(1)).to_contain_text(CODE_QUESTION)
    assert chat.replies.nth(1).locator(".chat-code pre").text_content() == SOLUTION_BLOCK
    expect(chat.replies.nth(1).get_by_role("button", name="Copy code")).to_be_visible()
    expect(chat.replies.nth(2)).to_contain_text("cancel scope")
    history = page_state(page)["assistant"]["history"][TASK]
    assert [m["role"] for m in history] == ["user", "assistant"] * 3
    assert task.code() == SOLUTION_BLOCK
    shot(page, chat, artifacts / "assistant-3-after-reload.png")

    # On a narrower screen the panel is a drawer over the right of the page, the window's
    # height, opened from the task's heading; the instructions and the editor stay as they are.
    page.set_viewport_size({"width": 800, "height": 900})
    expect(chat.panel).to_be_hidden()
    instructions = chat.section.locator("[data-region=instructions]").bounding_box()
    editor = task.editor.bounding_box()
    chat.open()
    panel = chat.panel.bounding_box()
    assert instructions and panel and editor
    assert panel["x"] + panel["width"] == pytest.approx(800, abs=1)
    assert panel["height"] == pytest.approx(900, abs=1)
    assert chat.section.locator("[data-region=instructions]").bounding_box() == instructions
    assert task.editor.bounding_box() == editor
    page.screenshot(path=str(artifacts / "assistant-4-narrow.png"))
    leave(page)


def test_no_ai_arm_has_no_chat_panel_and_never_calls_the_assistant(
    trial: Trial, page: Page
) -> None:
    url = reverse("trials:api_assistant", args=[trial.slug])
    calls: list[str] = []
    page.on("request", lambda r: calls.append(r.url) if url in r.url else None)
    participant = to_main_tasks(page, trial, "no_ai")

    assert "assistant" not in page_state(page)
    expect(page.locator("[data-assistant-panel], .chat-log, [data-chat-input]")).to_have_count(0)
    expect(page.get_by_role("complementary")).to_have_count(0)
    expect(page.get_by_role("textbox", name="Ask the assistant")).to_have_count(0)
    assert "assistant" not in page.content().lower()
    # Work on the page a little (edits, a Check): still nothing calls the assistant.
    task = TaskPanel(page, TASK)
    task.type_at_end("# thinking\n")
    task.check()
    assert calls == []

    # The endpoint does not work for this participant either (refused and logged).
    refused = page.evaluate(
        """async (url) => {
            const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
            const r = await fetch(url, {method: "POST", headers: {"Content-Type":
                "application/json", "X-CSRFToken": token}, body: JSON.stringify({stage:
                "main_tasks", task: "tasks/concurrent_greetings", message: "hi", code: ""})});
            return {status: r.status, body: await r.json()};
        }""",
        url,
    )
    assert refused["status"] == 403, refused
    assert not AssistantTurn.objects.filter(participant=participant).exists()
    assert events_of(participant, "assistant_refused", "server")
    leave(page)
