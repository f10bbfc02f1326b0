"""The coding page under the things that go wrong in a real session: a reload, a lost
connection, the time running out, the same task open in two tabs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.flow import (
    TaskPanel,
    page_state,
    screenshot,
    stage_path,
    stage_url,
    walk_to_warmup,
)
from trials.models import CodeSnapshot, Event, Participant, Stage, StageRecord, Trial
from trials.replay import apply_changes

pytestmark = pytest.mark.e2e

WARMUP = "tasks/warmup"


def latest_saved(participant: Participant, task: str = WARMUP) -> str:
    snapshot = CodeSnapshot.objects.filter(participant=participant, task=task).latest("version")
    return snapshot.code


def countdown_seconds(page: Page) -> int:
    text = page.locator(".countdown").inner_text()
    match = re.fullmatch(r"(\d+):(\d\d) left", text)
    assert match, text
    return int(match[1]) * 60 + int(match[2])


def local_storage_keys(page: Page) -> list[str]:
    return list(page.evaluate("Object.keys(window.localStorage)"))


def test_reload_in_the_middle_of_a_task_keeps_the_stage_the_code_and_the_clock(
    trial: Trial, page: Page
) -> None:
    participant = walk_to_warmup(page, trial)
    deadline = participant.stage_deadline
    limit = trial.stages.get(key="warmup").time_limit_seconds
    task = TaskPanel(page, WARMUP)
    remaining_before = page_state(page)["remaining_seconds"]
    assert remaining_before is not None and remaining_before <= limit

    task.type_at_end("# first attempt: count with a dict\n")
    task.wait_saved()
    typed = task.code()
    assert "# first attempt" in typed
    assert latest_saved(participant) == typed
    time.sleep(2.2)  # let the clock visibly move before reloading

    page.reload()
    expect(page).to_have_url(stage_url("warmup"))
    expect(task.editor).to_be_visible()
    assert task.code() == typed
    expect(task.editor).to_contain_text("# first attempt: count with a dict")
    expect(task.save_status).to_have_text("Saved")
    remaining_after = page_state(page)["remaining_seconds"]
    assert remaining_after <= remaining_before - 2, (remaining_before, remaining_after)
    assert abs(countdown_seconds(page) - remaining_after) <= 2
    participant.refresh_from_db()
    assert participant.stage_deadline == deadline
    assert participant.current_stage is not None and participant.current_stage.key == "warmup"

    # Typing and reloading at once, without waiting for "Saved": nothing is lost either
    # (the page sends the code with sendBeacon as it goes, and keeps a draft in the browser).
    task.type_at_end("# second line, reloaded at once\n")
    page.reload()
    expect(task.editor).to_contain_text("# second line, reloaded at once")
    assert task.code() == typed + "# second line, reloaded at once\n"
    task.wait_saved()
    assert latest_saved(participant) == task.code()


def test_thirty_seconds_offline_loses_no_event(
    trial: Trial, context: BrowserContext, page: Page, artifacts: Path
) -> None:
    participant = walk_to_warmup(page, trial)
    task = TaskPanel(page, WARMUP)
    task.type_at_end("# online before the connection drops\n")
    task.wait_saved()

    context.set_offline(True)
    went_offline = timezone.now()
    typed_offline = 0
    stop = time.monotonic() + 30
    while time.monotonic() < stop:
        task.type_at_end(f"# written offline, line {typed_offline}\n", delay=15)
        typed_offline += 1
        page.wait_for_timeout(2000)
    expect(task.save_status).to_contain_text("Offline")
    screenshot(page, artifacts, "offline-warmup")
    prefix = f"skilltrial:{participant.public_code}:ev:"
    assert any(key.startswith(prefix) for key in local_storage_keys(page)), "nothing queued"
    back_online = timezone.now()
    context.set_offline(False)

    task.wait_saved(timeout=40_000)
    page.wait_for_function(
        "prefix => !Object.keys(localStorage).some((key) => key.startsWith(prefix))",
        arg=prefix,
        timeout=40_000,
    )
    code = task.code()
    assert code.count("# written offline, line") == typed_offline
    assert latest_saved(participant) == code

    # Every event the page generated reached the server exactly once: the page numbers its
    # events 1, 2, 3... per participant (in localStorage), so the stored seqs must be gap-free.
    seq_key = f"skilltrial:{participant.public_code}:seq"
    last_seq = int(page.evaluate("key => localStorage.getItem(key)", seq_key))
    events = list(
        Event.objects.filter(participant=participant, origin="client").order_by("client_seq")
    )
    assert [e.client_seq for e in events] == list(range(1, last_seq + 1))

    # The edits replay to the code in the editor; every snapshot on the way agrees.
    text: str | None = None
    for event in events:
        if event.payload.get("task") != WARMUP:
            continue
        if event.type == "snapshot":
            if event.payload["reason"] == "load":
                text = event.payload["code"]
            assert event.payload["code"] == text, f"snapshot {event.client_seq} disagrees"
        elif event.type == "edit":
            assert text is not None
            text = apply_changes(text, event.payload["changes"])
    assert text == code

    offline_edits = [
        e
        for e in events
        if e.type == "edit" and e.client_time and went_offline < e.client_time < back_online
    ]
    assert len(offline_edits) >= typed_offline // 2, len(offline_edits)
    assert all(e.server_time >= back_online for e in offline_edits)


def test_time_out_closes_the_stage_and_moves_the_participant_on(
    trial: Trial, page: Page, artifacts: Path
) -> None:
    # A warm-up of 4 seconds for this test (the deadline is set when the stage starts).
    Stage.objects.filter(trial=trial, key="warmup").update(time_limit_seconds=4)
    loads: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: loads.append(frame.url) if frame == page.main_frame else None,
    )
    participant = walk_to_warmup(page, trial)
    task = TaskPanel(page, WARMUP)
    task.type_at_end("# typed just before the time ran out\n")

    expect(page.locator("[data-time-up]")).to_be_visible(timeout=15_000)
    screenshot(page, artifacts, "timeout-warmup")
    expect(page).to_have_url(stage_url("main_tasks"), timeout=30_000)
    expect(page.get_by_role("heading", name="Trio tasks", exact=True)).to_be_visible()

    record = StageRecord.objects.get(participant=participant, stage__key="warmup")
    assert record.end_reason == StageRecord.EndReason.TIMED_OUT
    assert record.ended_at is not None and record.deadline is not None
    assert record.ended_at >= record.deadline
    # The last saved code is what counts: the page saved it before leaving.
    assert "# typed just before the time ran out" in latest_saved(participant)
    warmup_loads = [url for url in loads if url.endswith(stage_path("warmup"))]
    assert len(warmup_loads) <= 3, f"the page reloaded {len(warmup_loads)} times at time-out"


def test_a_stale_second_tab_shows_the_conflict_notice_instead_of_overwriting(
    trial: Trial, context: BrowserContext, page: Page, page_errors: list[str], artifacts: Path
) -> None:
    participant = walk_to_warmup(page, trial)
    second = context.new_page()
    second.on("pageerror", lambda error: page_errors.append(f"second tab: {error}"))
    second.goto(stage_path("warmup"))
    first_tab, second_tab = TaskPanel(page, WARMUP), TaskPanel(second, WARMUP)
    expect(second_tab.editor).to_be_visible()

    first_tab.type_at_end("# written in the first tab\n")
    first_tab.wait_saved()
    saved = latest_saved(participant)

    second_tab.type_at_end("# written in the second tab, on the old version\n")
    conflict = second_tab.section.locator("[data-conflict]")
    expect(conflict).to_be_visible(timeout=10_000)
    expect(conflict).to_contain_text("This task was changed in another tab or window.")
    expect(second_tab.save_status).to_have_text("Not saved: see the notice above the editor")
    screenshot(second, artifacts, "two-tabs-conflict")
    assert latest_saved(participant) == saved
    assert "second tab" not in saved

    # The participant chooses to load the latest version: the editor shows the first tab's code.
    second.get_by_role("button", name="Load the latest version").click()
    expect(conflict).to_be_hidden()
    assert second_tab.code() == saved
    expect(second_tab.save_status).to_have_text("Saved")
    second.close()
