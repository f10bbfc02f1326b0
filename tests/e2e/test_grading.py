"""Graders in a real browser: one works through the blinded queue of free-text answers, a
second grades the answer that is double graded and disagrees, a third settles the
disagreement. No page they reach names a participant, an arm or a stratum, and every
participant's quiz score ends final."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from quizzes.models import HumanGrade, ItemResponse
from quizzes.selectors import participant_quiz_score
from tests.conftest import ELIGIBLE_ANSWERS
from tests.e2e.flow import ENTRY, ResponseLog, screenshot, stage_path
from trials.models import Participant, Trial
from trials.roles import GRADER

pytestmark = pytest.mark.e2e

PASSWORD = "pw-grading-12345"
QUESTION = "never_awaited"
SAVE = "Save and go to the next answer"
QUESTION_SNIPPET = "coroutine 'save' was never awaited"
RUBRIC_SNIPPET = "Neither a correct meaning nor a working fix"
COMMENT = "Checked against the rubric."
# The objective answers every participant gives, and the points they earn (1 + 1.5).
OBJECTIVE_ANSWERS = {"nursery_exit": "b", "start_time": "3"}
OBJECTIVE_POINTS = 2.5


@dataclass(frozen=True)
class Answer:
    """A participant's answer to the free-text question and the points the first grader
    gives it; ``second`` and ``settled`` only for the one answer that is double graded."""

    name: str
    text: str
    points: float
    second: float | None = None
    settled: float | None = None
    coding_years: str = "4-6"

    @property
    def double(self) -> bool:
        return self.second is not None


ANSWERS = (
    Answer(
        "full",
        "Calling save(record) only creates a coroutine object; its body never runs because\n"
        "nothing awaits it.\n\nFix: write `await save(record)` inside the loop.",
        points=2,
        coding_years="7+",
    ),
    Answer(
        "half",
        "It means save was not awaited. Fix: nursery.start_soon(save(record)) so it runs in "
        "the background.",
        points=1,
        coding_years="1-3",
    ),
    # Markup in an answer is text to read, not markup to render.
    Answer(
        "none",
        "No idea <b>why</b> - maybe Trio is too slow & needs trio.sleep(1) at the end?",
        points=0,
    ),
    Answer(
        "disputed",
        "save(record) just builds a coroutine that never runs. You have to await it.",
        points=2,
        second=1,
        settled=2,
        coding_years="7+",
    ),
)


# --- the participants, made fast on the server ------------------------------------------------


def answered_quiz(answer: Answer, index: int) -> Participant:
    """A participant who consents, is screened in, is allocated, leaves the task stages at
    once and submits the quiz with ``answer`` to the free-text question (through the
    in-process test client, against the live server's database)."""
    prolific_pid = f"prolific-grading-{index}-x7"
    client = Client()
    ids = {
        "PROLIFIC_PID": prolific_pid,
        "STUDY_ID": f"study-g{index}",
        "SESSION_ID": f"ses-g{index}",
    }
    client.get(ENTRY, ids)
    client.post(stage_path("consent"), {"decision": "agree", "agree": "on"})
    screening = dict(ELIGIBLE_ANSWERS, coding_years=answer.coding_years)
    client.post(stage_path("screening"), screening)
    client.post(stage_path("warmup"), {})
    client.post(stage_path("main_tasks"), {})
    response = client.post(stage_path("quiz"), {**OBJECTIVE_ANSWERS, QUESTION: answer.text})
    assert response.status_code == 302, response.content[:2000]
    return Participant.objects.get(prolific_pid=prolific_pid)


def score_is_final(participant: Participant) -> bool:
    score = participant_quiz_score(participant)
    assert score is not None, "no quiz responses"
    return score.final


def grader(name: str) -> User:
    user = User.objects.create_user(name, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=GRADER)[0])
    return user


# --- what no grader may see -------------------------------------------------------------------


@dataclass
class Visited:
    who: str
    url: str
    html: str
    text: str


class Visits:
    """The content of every page the graders were shown, as they saw it."""

    def __init__(self) -> None:
        self.pages: list[Visited] = []

    def record(self, who: str, page: Page) -> str:
        page.wait_for_load_state("load")
        text = page.locator("body").inner_text()
        self.pages.append(Visited(who, page.url, page.content(), text))
        return text

    def save(self, path: Path) -> None:
        path.write_text(
            "\n\n".join(f"===== {v.who} {v.url}\n{v.text}" for v in self.pages), encoding="utf-8"
        )


def revealing_strings(trial: Trial, participants: list[Participant]) -> list[str]:
    """Anything that would tell a grader who answered or under which condition."""
    strings = ["coding_years", "stratum", "Prolific", "PROLIFIC"]
    for arm in trial.arms.all():
        strings += [arm.label, f">{arm.key}<", f'"{arm.key}"']
    for participant in participants:
        strings += [
            participant.pk,
            participant.public_code,
            participant.prolific_pid,
            participant.study_id,
            participant.session_id,
            participant.stratum,
            participant.allocation.arm.label,
        ]
    return sorted({s for s in strings if s})


def arm_key_words(trial: Trial) -> re.Pattern[str]:
    keys = "|".join(re.escape(arm.key) for arm in trial.arms.all())
    return re.compile(rf"(?<![\w-])({keys})(?![\w-])", re.IGNORECASE)


# --- driving the grading pages ----------------------------------------------------------------

Tab = Callable[[str], Page]


@pytest.fixture
def new_tab(browser: Browser, live_server: object) -> Iterator[Tab]:
    """A tab in a browser context of its own (one person each); JavaScript errors fail."""
    contexts = []
    errors: list[str] = []

    def make(who: str) -> Page:
        context = browser.new_context(
            base_url=str(live_server),
            viewport={"width": 1280, "height": 900},
            locale="en-GB",
            timezone_id="UTC",
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        tab = context.new_page()
        tab.on("pageerror", lambda error: errors.append(f"{who} {tab.url}: {error}"))
        return tab

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def log_in(page: Page, username: str) -> None:
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def blind_id_of(page: Page) -> str:
    match = re.search(r"/grade/(R[0-9A-F]+)/$", page.url)
    assert match, page.url
    return match[1]


def expect_grading_page(page: Page, *, adjudicating: bool = False) -> str:
    """The question, the rubric beside the answer, and the answer; returns the answer."""
    heading = "Settle a disagreement" if adjudicating else "Grade answer"
    expect(page.get_by_role("heading", level=1)).to_have_text(
        re.compile(rf"^{heading} R[0-9A-F]+$")
    )
    question = page.get_by_role("region", name=re.compile(r"^Question"))
    expect(question).to_contain_text(QUESTION_SNIPPET)
    expect(question).to_contain_text("save(record)")  # the program under the question
    rubric = page.get_by_role("region", name="Rubric")
    expect(rubric).to_contain_text(RUBRIC_SNIPPET)
    # Each choice of points is named by its value and described by its rubric level.
    points = page.get_by_role("group", name="Points")
    expect(points.get_by_role("radio")).to_have_count(3)
    expect(points.get_by_role("radio", name="0", exact=True)).to_have_accessible_description(
        RUBRIC_SNIPPET
    )
    answer = page.get_by_role("region", name="Answer").locator("#answer-text")
    expect(answer).to_be_visible()
    # Beside the rubric, in the first screen: the grader reads both without scrolling.
    expect(answer).to_be_in_viewport()
    expect(rubric).to_be_in_viewport()
    return answer.inner_text()


def give_points(page: Page, points: float, *, keyboard: bool, comment: str = "") -> None:
    """Choose the points (radio buttons named by their value, in a group named "Points")
    and save: with the mouse, or with the keyboard only."""
    group = page.get_by_role("group", name="Points")
    radios = group.get_by_role("radio")
    values = [float(radios.nth(i).get_attribute("value") or "nan") for i in range(radios.count())]
    choice = group.get_by_role("radio", name=f"{points:g}", exact=True)
    if keyboard:
        radios.first.focus()
        page.keyboard.press("Space")
        for _ in range(values.index(points)):
            page.keyboard.press("ArrowRight")
        expect(choice).to_be_checked()
        page.keyboard.press("Tab")
        expect(page.get_by_label("Comment (optional)")).to_be_focused()
        page.keyboard.type(comment)
        page.keyboard.press("Tab")
        expect(page.get_by_role("button", name=SAVE)).to_be_focused()
        page.keyboard.press("Enter")
    else:
        choice.check()
        if comment:
            page.get_by_label("Comment (optional)").fill(comment)
        page.get_by_role("button", name=SAVE).click()


def save_and_wait(
    page: Page, blind_id: str, points: float, *, keyboard: bool, adjudicating: bool = False
) -> None:
    give_points(page, points, keyboard=keyboard, comment="" if adjudicating else COMMENT)
    expect(page).not_to_have_url(re.compile(rf"/{blind_id}/$"))
    expect(page.get_by_role("status")).to_contain_text(f"Saved your grade for {blind_id}.")


# --- the test ---------------------------------------------------------------------------------


def test_graders_work_through_the_blinded_queue_double_grading_and_adjudication(
    trial: Trial, new_tab: Tab, artifacts: Path
) -> None:
    participants = {answer.name: answered_quiz(answer, i) for i, answer in enumerate(ANSWERS)}
    items = {
        name: ItemResponse.objects.get(participant=participant, question_key=QUESTION)
        for name, participant in participants.items()
    }
    for answer in ANSWERS:
        ItemResponse.objects.filter(pk=items[answer.name].pk).update(
            needs_double_grading=answer.double
        )
        assert items[answer.name].status == "needs_human"
        assert not score_is_final(participants[answer.name])
    by_text = {answer.text: answer for answer in ANSWERS}
    by_blind_id = {items[a.name].blind_id: a for a in ANSWERS}
    disputed = next(a for a in ANSWERS if a.double)
    disputed_id = items[disputed.name].blind_id
    for name in ("gale", "grace", "gus"):
        grader(name)
    visits = Visits()

    # --- The first grader logs in, opens the queue, and grades every answer in turn. ---
    first = new_tab("gale")
    first_log = ResponseLog(first.context)
    first.goto("/accounts/login/")
    visits.record("gale", first)
    log_in(first, "gale")
    first.wait_for_load_state("load")
    visits.record("gale", first)  # wherever the login lands
    first.goto("/grade/")
    expect(first.get_by_role("heading", name="Answers to grade")).to_be_visible()
    text = visits.record("gale", first)
    for blind_id in by_blind_id:
        assert blind_id in text
    screenshot(first, artifacts, "grading-1-queue")
    first.get_by_role("link", name="Start grading").click()

    seen: list[str] = []
    for turn in range(len(ANSWERS)):
        expect(first).to_have_url(re.compile(r"/grade/R[0-9A-F]+/$"))
        shown = expect_grading_page(first)
        visits.record("gale", first)
        blind_id = blind_id_of(first)
        answer = by_text[shown]
        assert by_blind_id[blind_id] == answer, "the page shows another answer than its id's"
        assert blind_id not in seen
        seen.append(blind_id)
        if turn == 0:
            first.get_by_role("group", name="Points").get_by_role(
                "radio", name=f"{answer.points:g}", exact=True
            ).check()
            screenshot(first, artifacts, "grading-2-answer")
        save_and_wait(first, blind_id, answer.points, keyboard=turn % 2 == 1)
    expect(first).to_have_url(re.compile(r"/grade/$"))
    expect(first.get_by_text("Nothing waiting for you")).to_be_visible()
    expect(first.get_by_role("heading", name="Disagreements to settle")).to_have_count(0)
    visits.record("gale", first)
    screenshot(first, artifacts, "grading-3-queue-done")

    for answer in ANSWERS:
        item = ItemResponse.objects.get(pk=items[answer.name].pk)
        grades = list(HumanGrade.objects.filter(response=item).values_list("points", flat=True))
        assert grades == [answer.points]
        if answer.double:
            assert item.status == "needs_human"
            assert not score_is_final(participants[answer.name])
        else:
            assert (item.status, item.points) == ("human", answer.points)
            assert score_is_final(participants[answer.name])

    # --- A second grader gets only the double-graded answer, and gives other points. ---
    second = new_tab("grace")
    second_log = ResponseLog(second.context)
    second.goto("/grade/")
    expect(second).to_have_url(re.compile(r"/accounts/login/\?next=/grade/$"))
    visits.record("grace", second)
    log_in(second, "grace")
    expect(second).to_have_url(re.compile(r"/grade/$"))
    text = visits.record("grace", second)
    assert disputed_id in text
    assert not [b for b in by_blind_id if b != disputed_id and b in text]
    second.get_by_role("link", name="Start grading").click()
    expect(second).to_have_url(re.compile(rf"/grade/{disputed_id}/$"))
    assert expect_grading_page(second) == disputed.text
    visits.record("grace", second)
    assert disputed.second is not None
    save_and_wait(second, disputed_id, disputed.second, keyboard=True)
    expect(second).to_have_url(re.compile(r"/grade/$"))
    expect(second.get_by_text("Nothing waiting for you")).to_be_visible()
    # Neither of the two graders may settle their own disagreement.
    expect(second.get_by_role("heading", name="Disagreements to settle")).to_have_count(0)
    visits.record("grace", second)
    first.reload()
    expect(first.get_by_text("Nothing waiting for you")).to_be_visible()
    expect(first.get_by_role("heading", name="Disagreements to settle")).to_have_count(0)
    visits.record("gale", first)

    item = ItemResponse.objects.get(pk=items[disputed.name].pk)
    assert item.status == "needs_adjudication"
    assert not score_is_final(participants[disputed.name])

    # --- A third grader settles the disagreement. ---
    third = new_tab("gus")
    third_log = ResponseLog(third.context)
    third.goto("/grade/")
    visits.record("gus", third)
    log_in(third, "gus")
    expect(third).to_have_url(re.compile(r"/grade/$"))
    expect(third.get_by_text("No new answers to grade")).to_be_visible()
    expect(third.get_by_role("heading", name="Disagreements to settle")).to_be_visible()
    visits.record("gus", third)
    screenshot(third, artifacts, "grading-4-disagreements")
    third.get_by_role("link", name=disputed_id).click()
    expect(third).to_have_url(re.compile(rf"/grade/{disputed_id}/$"))
    assert expect_grading_page(third, adjudicating=True) == disputed.text
    expect(
        third.get_by_text("Two graders gave 2 and 1 points. Your grade is final.")
    ).to_be_visible()
    visits.record("gus", third)
    screenshot(third, artifacts, "grading-5-adjudicate")
    assert disputed.settled is not None
    save_and_wait(third, disputed_id, disputed.settled, keyboard=False, adjudicating=True)
    expect(third).to_have_url(re.compile(r"/grade/$"))
    expect(third.get_by_text("Nothing waiting for you")).to_be_visible()
    expect(third.get_by_role("heading", name="Disagreements to settle")).to_have_count(0)
    visits.record("gus", third)

    # --- Final states. ---
    for answer in ANSWERS:
        item = ItemResponse.objects.get(pk=items[answer.name].pk)
        final_points = answer.settled if answer.double else answer.points
        assert (item.status, item.points) == ("human", final_points), answer.name
        assert item.graded_at is not None
        score = participant_quiz_score(participants[answer.name])
        assert score is not None and score.final, answer.name
        assert score.points == OBJECTIVE_POINTS + final_points, answer.name
    comments = set(HumanGrade.objects.values_list("comment", flat=True))
    assert comments == {COMMENT, ""}  # typed on every page but the adjudication
    adjudications = HumanGrade.objects.filter(is_adjudication=True)
    assert adjudications.count() == 1
    settled = adjudications.get()
    assert (settled.response_id, settled.grader.username, settled.points) == (
        items[disputed.name].pk,
        "gus",
        disputed.settled,
    )
    assert sorted(
        HumanGrade.objects.filter(response=settled.response, is_adjudication=False).values_list(
            "grader__username", "points"
        )
    ) == [("gale", disputed.points), ("grace", disputed.second)]

    # --- Blinding: nothing on any page, or in any response, names who or which arm. ---
    visits.save(artifacts / "grading-pages.txt")
    assert len(visits.pages) >= 12
    secrets = revealing_strings(trial, list(participants.values()))
    keys = arm_key_words(trial)
    for visit in visits.pages:
        for secret in secrets:
            assert secret not in visit.html, (secret, visit.who, visit.url)
            assert secret.lower() not in visit.text.lower(), (secret, visit.who, visit.url)
        assert not keys.search(visit.text), (keys.search(visit.text), visit.who, visit.url)
    for log in (first_log, second_log, third_log):
        assert not log.unreadable, log.unreadable
        for secret in secrets:
            assert not log.containing(secret), (secret, log.containing(secret))
