"""The staff replay in a real browser: clicking a moment of one task shows that task's code,
whichever task was shown before (issue 12: a paste in the second task showed the first
task's code)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from trials.models import Event, Participant, Stage, Trial
from trials.roles import EXPERIMENTER

PASSWORD = "pw-12345-xyz"
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def test_clicking_a_paste_in_another_task_shows_that_tasks_code(page: Page, trial: Trial) -> None:
    stage = Stage.objects.filter(trial=trial, type=Stage.Type.TASK).order_by("order").last()
    first, second = stage.config["tasks"][:2]
    participant = Participant.objects.create(
        trial=trial, status=Participant.Status.ACTIVE, current_stage=stage
    )
    snapshots = [
        (first, "# FIRST TASK CODE\n"),
        (second, "# SECOND TASK CODE\n"),
        (first, "# FIRST TASK CODE, later\n"),
    ]
    for n, (task, code) in enumerate(snapshots):
        Event.objects.create(
            participant=participant,
            stage=stage,
            type="snapshot",
            client_id=f"s{n}",
            client_time=T0 + timedelta(seconds=10 * n),
            payload={"task": task, "code": code},
        )
    Event.objects.create(
        participant=participant,
        stage=stage,
        type="paste",
        client_id="paste",
        client_time=T0 + timedelta(seconds=25),
        payload={"task": second, "length": 9, "sha256": "0" * 64},
    )
    user = User.objects.create_user("eve", password=PASSWORD)
    user.groups.add(Group.objects.get(name=EXPERIMENTER))

    page.goto(f"/manage/trials/{trial.slug}/v{trial.version}/p/{participant.public_code}/")
    page.get_by_label("Username").fill("eve")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    code = page.locator("#replay-code")
    task = page.locator("#replay-task")
    expect(code).to_have_text("# FIRST TASK CODE\n")
    expect(task).to_have_value(first)

    # The paste (in the second task) comes after a later snapshot of the first task.
    page.locator("#replay-timeline button", has_text="paste of 9 characters").click()
    expect(code).to_have_text("# SECOND TASK CODE\n")
    expect(task).to_have_value(second)
    expect(page.locator("#replay-caption")).to_contain_text(second)

    # Back to a moment of the first task, then choosing the second task in the list.
    page.locator("#replay-timeline button").nth(2).click()
    expect(code).to_have_text("# FIRST TASK CODE, later\n")
    task.select_option(second)
    expect(code).to_have_text("# SECOND TASK CODE\n")
    expect(page.locator("#replay-slider")).to_have_value("1")
