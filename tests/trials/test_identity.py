"""One person, one allocation (README, "One person, one allocation"): attacks against the real
entry, resume, stage and API endpoints through Django's test client, the trial.toml settings,
the duplicate flags in the data set, on the dashboard and in CONSORT, and (on PostgreSQL) the
races: simultaneous first visits with one id, and parallel guesses of a resume code.

Each protection was also switched off once by hand to see its attack succeed (the report of
issue 11, part 5, says how): without the unique constraint and the look-up, simultaneous first
visits created several participants; with the session token ignored, a second browser with the
id went straight to the stage; without the attempt limit, every wrong code was tried.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from analysis.consort import consort_table
from analysis.datasets import analysis_input, dataset_columns, dataset_frame
from tests.processes import run_in_processes
from trials import services
from trials.definition import DefinitionInvalid, load_trial_dir
from trials.identity import (
    RESUME_ALPHABET,
    EntryRow,
    display_code,
    find_duplicates,
    resume_code,
)
from trials.models import Allocation, Event, Participant, Trial
from trials.roles import EXPERIMENTER
from trials.services import trial_close, trial_import, trial_launch

SLUG = "trio-skill-formation"
ENTRY = f"/t/{SLUG}/"
RESUME = f"{ENTRY}resume/"
COOKIE = f"stp_{SLUG}"
CONSENT = {"decision": "agree", "agree": "on"}


def stage_url(key: str) -> str:
    return f"{ENTRY}s/{key}/"


def browser(
    address: str = "198.51.100.7", agent: str = "Mozilla/5.0 (X11) Firefox/131.0"
) -> Client:
    """A new browser: no cookies; its address and user agent as the server sees them."""
    return Client(
        REMOTE_ADDR=address,
        HTTP_USER_AGENT=agent,
        HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.8",
        raise_request_exception=False,
    )


def to_warmup(client: Client, answers: dict[str, Any], pid: str | None = None) -> Participant:
    query = {"PROLIFIC_PID": pid} if pid else {}
    assert client.get(ENTRY, query)["Location"] == stage_url("consent")
    assert client.post(stage_url("consent"), CONSENT)["Location"] == stage_url("screening")
    assert client.post(stage_url("screening"), answers)["Location"] == stage_url("warmup")
    return Participant.objects.get(pk=client.cookies[COOKIE].value.split(":")[0])


def events(participant: Participant, type: str) -> list[Event]:
    return list(Event.objects.filter(participant=participant, type=type).order_by("id"))


def launched(trial_dir: Path, toml_extra: str = "", analysis_extra: str = "") -> Trial:
    """The sample trial with extra [participants] / [analysis] settings, launched."""
    path = trial_dir / "trial.toml"
    text = path.read_text()
    if analysis_extra:
        text = text.replace(
            'reference_arm = "no_ai"\n', f'reference_arm = "no_ai"\n{analysis_extra}\n'
        )
    path.write_text(text + "\n" + toml_extra)
    return trial_launch(trial=trial_import(definition=load_trial_dir(trial_dir)).trial)


# --- re-entry never allocates again ----------------------------------------------------------


@pytest.mark.django_db
def test_reentry_with_the_same_prolific_id_never_creates_or_allocates_again(
    live_trial, eligible_answers
):
    first = to_warmup(browser(), eligible_answers, pid="5f1e0c0ffee")
    arm = first.allocation.arm.key
    for attempt in range(3):
        other = browser(address=f"203.0.113.{attempt}")
        page = other.get(ENTRY, {"PROLIFIC_PID": "5f1e0c0ffee"})
        assert page.status_code == 200
        assert b"Continue where you left off" in page.content
        # The new browser got no session: stage pages send it back to the entry.
        assert COOKIE not in other.cookies or not other.cookies[COOKIE].value
        for key in ("consent", "screening", "warmup"):
            assert other.get(stage_url(key))["Location"] == ENTRY
        # Screening again through the form is impossible without the session.
        assert other.post(stage_url("screening"), eligible_answers)["Location"] == ENTRY
        # Where those redirects lead: the resume page again, not a new participant.
        assert b"Continue where you left off" in other.get(ENTRY).content
    assert Participant.objects.count() == 1
    assert Allocation.objects.count() == 1
    assert Allocation.objects.get().arm.key == arm
    # Prompts are logged, at most one every few minutes.
    assert len(events(first, "resume_prompted")) == 1


@pytest.mark.django_db
def test_the_browser_with_the_session_keeps_it_whatever_id_the_link_carries(
    live_trial, eligible_answers
):
    client = browser()
    first = to_warmup(client, eligible_answers, pid="pid-one")
    # The same browser opening the link with an edited id is still the same participant.
    assert client.get(ENTRY, {"PROLIFIC_PID": "pid-two"})["Location"] == stage_url("warmup")
    assert client.get(ENTRY)["Location"] == stage_url("warmup")
    assert list(Participant.objects.values_list("pk", flat=True)) == [first.pk]


# --- no silent takeover ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_second_browser_cannot_take_over_an_active_session_without_the_code(
    live_trial, eligible_answers
):
    owner = browser()
    participant = to_warmup(owner, eligible_answers, pid="active-77")
    intruder = browser(address="192.0.2.99", agent="curl/8.5")
    assert intruder.get(ENTRY, {"PROLIFIC_PID": "active-77"}).status_code == 200

    # Asking to take over while the owner is active is refused, with when it would be allowed.
    refused = intruder.post(RESUME, {"external_id": "active-77", "action": "take_over"})
    assert refused.status_code == 409
    assert b"still in use in another browser" in refused.content
    assert int(refused["Retry-After"]) > 15 * 60
    # No code, an empty one, a wrong one: no session either.
    for data in ({}, {"code": ""}, {"code": "AAAA-AAAA"}):
        response = intruder.post(RESUME, {"external_id": "active-77", **data})
        assert response.status_code == 400
    assert intruder.get(stage_url("warmup"))["Location"] == ENTRY
    api = intruder.post(
        f"{ENTRY}api/save/", {"task": "tasks/warmup"}, content_type="application/json"
    )
    assert api.status_code == 403
    # The owner is undisturbed; nothing moved.
    assert owner.get(stage_url("warmup")).status_code == 200
    assert not events(participant, "session_resumed")
    assert not events(participant, "session_taken_over")


@pytest.mark.django_db
def test_the_resume_code_moves_the_session_and_the_first_browser_is_told(
    live_trial, eligible_answers
):
    owner = browser()
    participant = to_warmup(owner, eligible_answers, pid="lost-browser-1")
    code = resume_code(participant)
    assert len(code) == 8 and set(code) <= set(RESUME_ALPHABET)
    # Shown to the owner at the top of every page (and at consent, see the e2e test).
    assert display_code(code).encode() in owner.get(stage_url("warmup")).content

    laptop = browser(address="192.0.2.10", agent="Mozilla/5.0 (Macintosh) Safari/605")
    assert laptop.get(ENTRY, {"PROLIFIC_PID": "lost-browser-1"}).status_code == 200
    # Typed loosely: lower case, a space instead of the hyphen.
    typed = f"{code[:4].lower()} {code[4:]}"
    moved = laptop.post(RESUME, {"external_id": "lost-browser-1", "code": typed})
    assert moved["Location"] == stage_url("warmup")
    assert laptop.get(stage_url("warmup")).status_code == 200
    assert Participant.objects.count() == 1 and Allocation.objects.count() == 1
    (resumed,) = events(participant, "session_resumed")
    assert resumed.payload["same_address"] is False and resumed.origin == "server"

    # The first browser's cookie no longer works: a polite page, a 403 from the API.
    assert owner.get(stage_url("warmup"))["Location"] == ENTRY
    notice = owner.get(ENTRY)
    assert notice.status_code == 200
    assert b"You continued in another browser" in notice.content
    assert b"Warm-up" not in notice.content and display_code(code).encode() not in notice.content
    assert (
        owner.post(
            f"{ENTRY}api/events/", {"events": []}, content_type="application/json"
        ).status_code
        == 403
    )
    # ... unless its owner takes it back with the code (logged again).
    back = owner.post(RESUME, {"external_id": "lost-browser-1", "code": code})
    assert back["Location"] == stage_url("warmup")
    assert laptop.get(stage_url("warmup"))["Location"] == ENTRY
    assert len(events(participant, "session_resumed")) == 2


@pytest.mark.django_db
def test_a_wrong_resume_code_is_refused_logged_and_rate_limited(live_trial, eligible_answers):
    participant = to_warmup(browser(), eligible_answers, pid="guessed-1")
    guesser = browser(address="192.0.2.50")
    for i in range(services.RESUME_MAX_FAILURES):
        response = guesser.post(RESUME, {"external_id": "guessed-1", "code": f"ZZZZ{i}ZZZ"})
        assert response.status_code == 400
        assert b"not the resume code" in response.content
    failures = events(participant, "resume_failed")
    assert [e.payload["failures"] for e in failures] == [1, 2, 3, 4, 5]
    # Locked: even the right code is not tried now, and nothing more is stored.
    locked = guesser.post(RESUME, {"external_id": "guessed-1", "code": resume_code(participant)})
    assert locked.status_code == 429
    assert b"Too many wrong codes" in locked.content
    assert 0 < int(locked["Retry-After"]) <= services.RESUME_FAILURE_WINDOW.total_seconds()
    assert len(events(participant, "resume_failed")) == services.RESUME_MAX_FAILURES
    assert not events(participant, "session_resumed")
    # Once the window has passed, the right code works.
    Event.objects.filter(participant=participant, type="resume_failed").update(
        server_time=timezone.now() - services.RESUME_FAILURE_WINDOW - timedelta(seconds=1)
    )
    ok = guesser.post(RESUME, {"external_id": "guessed-1", "code": resume_code(participant)})
    assert ok["Location"] == stage_url("warmup")


@pytest.mark.django_db
def test_a_takeover_without_the_code_needs_the_first_browser_idle_and_is_logged(
    live_trial, eligible_answers
):
    owner = browser()
    participant = to_warmup(owner, eligible_answers, pid="idle-1")
    Participant.objects.filter(pk=participant.pk).update(
        last_seen_at=timezone.now() - timedelta(minutes=21)
    )
    newcomer = browser(address="192.0.2.77")
    page = newcomer.get(ENTRY, {"PROLIFIC_PID": "idle-1"})
    assert b"Continue here without the code" in page.content
    taken = newcomer.post(RESUME, {"external_id": "idle-1", "action": "take_over"})
    assert taken["Location"] == stage_url("warmup")
    (event,) = events(participant, "session_taken_over")
    assert event.payload["previous_browser_idle_seconds"] >= 21 * 60
    assert owner.get(stage_url("warmup"))["Location"] == ENTRY
    assert b"You continued in another browser" in owner.get(ENTRY).content
    # The first browser, now active again elsewhere, cannot immediately take it back.
    assert owner.post(RESUME, {"external_id": "idle-1", "action": "take_over"}).status_code == 409


@pytest.mark.django_db
def test_with_resume_idle_minutes_0_only_the_code_moves_a_session(trial_dir, eligible_answers):
    launched(trial_dir, "[participants]\nresume_idle_minutes = 0\n")
    participant = to_warmup(browser(), eligible_answers, pid="strict-1")
    Participant.objects.filter(pk=participant.pk).update(
        last_seen_at=timezone.now() - timedelta(days=2)
    )
    newcomer = browser(address="192.0.2.78")
    page = newcomer.get(ENTRY, {"PROLIFIC_PID": "strict-1"})
    assert b"without the code" not in page.content
    refused = newcomer.post(RESUME, {"external_id": "strict-1", "action": "take_over"})
    assert refused.status_code == 409
    assert b"only be continued in another browser with the resume code" in refused.content


@pytest.mark.django_db
def test_the_browser_cannot_log_a_resume_or_takeover_itself(live_trial, eligible_answers):
    client = browser()
    participant = to_warmup(client, eligible_answers, pid="forger")
    forged = [
        {"id": f"f-{i}", "type": kind, "payload": {"same_address": True}}
        for i, kind in enumerate(("session_resumed", "session_taken_over", "resume_failed"))
    ]
    response = client.post(
        f"{ENTRY}api/events/", {"events": forged}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["stored"] == 0
    assert not Event.objects.filter(
        participant=participant,
        type__in=("session_resumed", "session_taken_over", "resume_failed"),
    ).exists()


@pytest.mark.django_db
def test_a_finished_participant_reentering_elsewhere_sees_no_stage_and_no_code(
    live_trial, eligible_answers
):
    client = browser()
    client.get(ENTRY, {"PROLIFIC_PID": "declined-1"})
    client.post(stage_url("consent"), {"decision": "decline"})
    page = browser(address="192.0.2.3").get(ENTRY, {"PROLIFIC_PID": "declined-1"})
    assert page.status_code == 200 and b"This study has ended for you" in page.content
    assert b"Resume code" not in page.content
    assert Participant.objects.count() == 1


@pytest.mark.django_db
def test_a_cookie_from_before_session_tokens_still_works(live_trial, eligible_answers):
    client = browser()
    participant = to_warmup(client, eligible_answers, pid="old-cookie")
    Participant.objects.filter(pk=participant.pk).update(session_token="")
    legacy = browser()
    legacy.cookies[COOKIE] = legacy_signed(participant.pk)
    assert legacy.get(stage_url("warmup")).status_code == 200


def legacy_signed(value: str) -> str:
    from django.core.signing import get_cookie_signer

    return get_cookie_signer(salt=COOKIE + "skilltrial.participant").sign(value)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data",
    [
        {},
        {"external_id": ""},
        {"external_id": "x" * 5000, "code": "y" * 5000},
        {"external_id": "nobody", "code": "ABCD-EFGH"},
        {"external_id": "\x00", "code": "\x00"},
    ],
)
def test_malformed_resume_posts_get_a_clear_400(live_trial, data):
    response = browser().post(RESUME, data)
    assert response.status_code == 400
    assert b"no session to continue" in response.content


@pytest.mark.django_db
def test_resume_answers_only_post(live_trial):
    assert browser().get(RESUME).status_code == 405


# --- entries without an external id --------------------------------------------------------


@pytest.mark.django_db
def test_entry_without_the_required_external_id_is_refused_politely(trial_dir):
    launched(
        trial_dir,
        '[participants]\nrequire_external_id = true\nexternal_id_pattern = "[0-9a-f]{24}"\n',
    )
    for query in ({}, {"PROLIFIC_PID": ""}, {"PROLIFIC_PID": "   "}, {"STUDY_ID": "s1"}):
        response = browser().get(ENTRY, query)
        assert response.status_code == 400
        assert b"missing your participant ID (PROLIFIC_PID)" in response.content
        assert b"Nothing has been recorded" in response.content
    for bad in ("not-hex", "5f1e0c", "A" * 24, "5f1e0c" * 20):
        response = browser().get(ENTRY, {"PROLIFIC_PID": bad})
        assert response.status_code == 400
        assert b"is not a valid one" in response.content
    assert not Participant.objects.exists()
    ok = browser().get(ENTRY, {"PROLIFIC_PID": "5f1e0c0ffee0123456789abc"})
    assert ok["Location"] == stage_url("consent")
    assert Participant.objects.get().external_id == "5f1e0c0ffee0123456789abc"


@pytest.mark.django_db
def test_another_external_id_parameter_identifies_people(trial_dir, eligible_answers):
    launched(trial_dir, '[participants]\nexternal_id = "workerId"\nrequire_external_id = true\n')
    assert browser().get(ENTRY, {"PROLIFIC_PID": "p1"}).status_code == 400
    client = browser()
    assert client.get(ENTRY, {"workerId": "W123"})["Location"] == stage_url("consent")
    again = browser(address="192.0.2.4").get(ENTRY, {"workerId": "W123"})
    assert again.status_code == 200 and b"resume code" in again.content
    assert Participant.objects.get().external_id == "W123"


@pytest.mark.django_db
def test_open_entries_without_an_id_are_allowed_by_default(live_trial):
    for _ in range(2):
        assert browser().get(ENTRY)["Location"] == stage_url("consent")
    assert Participant.objects.count() == 2


# --- the settings ----------------------------------------------------------------------------


def test_participants_settings_are_validated_with_located_errors(trial_dir):
    path = trial_dir / "trial.toml"
    path.write_text(
        path.read_text()
        + "\n[participants]\n"
        + 'external_id = "PROLIFIC PID"\n'
        + 'require_external_id = "yes"\n'
        + 'external_id_pattern = "[0-9"\n'
        + "resume_idle_minutes = -5\n"
        + "duplicate_window_hours = 0\n"
        + "resume_code = true\n"
    )
    lines = path.read_text().splitlines()
    start = lines.index("[participants]") + 1
    with pytest.raises(DefinitionInvalid) as caught:
        load_trial_dir(trial_dir)
    problems = {p.path: (p.line, p.message) for p in caught.value.problems}
    assert problems["participants.external_id"][0] == start + 1
    assert "not a query parameter name" in problems["participants.external_id"][1]
    assert problems["participants.require_external_id"] == (
        start + 2,
        "must be true or false (got 'yes')",
    )
    assert problems["participants.external_id_pattern"][0] == start + 3
    assert "not a regular expression" in problems["participants.external_id_pattern"][1]
    assert problems["participants.resume_idle_minutes"][0] == start + 4
    assert problems["participants.duplicate_window_hours"][0] == start + 5
    assert "unknown field 'resume_code'" in problems["participants.resume_code"][1]


def test_settings_that_cannot_identify_anyone_are_refused(trial_dir):
    path = trial_dir / "trial.toml"
    original = path.read_text()
    path.write_text(original + '\n[participants]\nexternal_id = "STUDY_ID"\n')
    with pytest.raises(DefinitionInvalid, match="same for everyone"):
        load_trial_dir(trial_dir)
    path.write_text(original + '\n[participants]\nexternal_id = ""\nrequire_external_id = true\n')
    with pytest.raises(DefinitionInvalid, match="names no query parameter"):
        load_trial_dir(trial_dir)


def test_the_analysis_duplicate_rule_is_validated(trial_dir):
    path = trial_dir / "trial.toml"
    text = path.read_text().replace(
        'reference_arm = "no_ai"\n',
        'reference_arm = "no_ai"\nduplicates = "drop"\nduplicate_signals = ["cookie"]\n',
    )
    path.write_text(text)
    with pytest.raises(DefinitionInvalid) as caught:
        load_trial_dir(trial_dir)
    messages = " | ".join(str(p) for p in caught.value.problems)
    assert "analysis.duplicates: unknown rule 'drop' (allowed: keep, exclude)" in messages
    assert "analysis.duplicate_signals[0]: unknown signal 'cookie'" in messages


def test_defaults_are_written_out_and_hashed_with_the_protocol(trial_dir, sample_definition):
    data = sample_definition.data
    assert data["participants"] == {
        "external_id": "PROLIFIC_PID",
        "require_external_id": False,
        "external_id_pattern": "",
        "resume_idle_minutes": 20,
        "duplicate_window_hours": 24.0,
    }
    assert data["analysis"]["duplicates"] == "keep"
    assert data["analysis"]["duplicate_signals"] == ["external_id", "browser"]
    path = trial_dir / "trial.toml"
    path.write_text(path.read_text() + "\n[participants]\nrequire_external_id = true\n")
    changed = load_trial_dir(trial_dir)
    assert changed.data["participants"]["require_external_id"] is True
    assert changed.protocol_hash() != sample_definition.protocol_hash()


# --- likely duplicates -----------------------------------------------------------------------


T0 = timezone.now().replace(microsecond=0)


def row(key: str, minutes: float, version: int = 1, **kw: str) -> EntryRow:
    return EntryRow(key, f"P{key}", version, T0 + timedelta(minutes=minutes), **kw)


def test_find_duplicates_flags_later_entries_by_signal():
    day = timedelta(hours=24)
    flags = find_duplicates(
        [
            row("a", 0, external_id="X", address_hash="net1", browser_hash="ff"),
            row("b", 5, address_hash="net1", browser_hash="ff"),  # same browser, same net
            row("c", 6, address_hash="net1", browser_hash="chrome"),  # same net only
            row("d", 7, address_hash="net2", browser_hash="ff"),  # same browser, other net
            row("e", 60 * 25, address_hash="net1", browser_hash="ff"),  # outside the window
            row("f", 60 * 30, version=2, external_id="X"),  # same id, next version
            row("g", 60 * 30 + 1, version=2, address_hash="net1", browser_hash="ff"),
        ],
        window=day,
    )
    assert set(flags) == {"b", "c", "f", "g"}
    assert flags["b"].signals == ("browser",) and flags["b"].of_code == "Pa"
    assert flags["c"].signals == ("address",)
    assert flags["c"].of_code == "Pa"
    assert flags["f"].signals == ("external_id",)
    assert flags["f"].of_label(2) == "v1:Pa" and flags["f"].of_label(1) == "Pa"
    assert flags["g"].signals == ("browser",) and flags["g"].of_code == "Pe"


def test_find_duplicates_names_the_earliest_entry_and_ignores_unknowns():
    flags = find_duplicates(
        [
            row("late", 10, address_hash="n", browser_hash="b"),
            row("early", 1, address_hash="n", browser_hash="b"),
            row("mid", 5, address_hash="n", browser_hash="b"),
            row("anon1", 2),
            row("anon2", 3),  # nothing known: never a duplicate
        ],
        window=timedelta(hours=1),
    )
    assert set(flags) == {"mid", "late"}
    assert flags["late"].of_code == "Pearly"


@pytest.mark.django_db
def test_fresh_browsers_from_one_machine_are_flagged_in_the_data_set_dashboard_and_consort(
    trial_dir, eligible_answers, client
):
    trial = launched(trial_dir, analysis_extra='duplicates = "exclude"')
    # The same machine opens the open link three times in fresh (private) windows with
    # edited ids, and once from another browser on the same network; someone else enters too.
    first = to_warmup(browser(), eligible_answers, pid="orig-1")
    again = to_warmup(browser(), eligible_answers, pid="orig-1-edited")
    unallocated = browser()
    unallocated.get(ENTRY)
    other_browser = to_warmup(browser(agent="Mozilla/5.0 Chrome/129"), eligible_answers)
    stranger = to_warmup(browser(address="203.0.113.200"), eligible_answers, pid="stranger")
    assert Allocation.objects.count() == 4  # flagged, not blocked

    frame = dataset_frame(trial, "participants").set_index("participant")
    unallocated_code = Participant.objects.get(allocation__isnull=True).public_code
    assert frame.loc[first.public_code, "duplicate_flags"] == ""
    assert frame.loc[again.public_code, "duplicate_flags"] == "browser"
    assert frame.loc[again.public_code, "duplicate_of"] == first.public_code
    assert frame.loc[unallocated_code, "duplicate_flags"] == "browser"
    assert frame.loc[other_browser.public_code, "duplicate_flags"] == "address"
    assert frame.loc[stranger.public_code, "duplicate_flags"] == ""
    # The plan excludes flags by external_id and browser (the default signals), not address.
    assert bool(frame.loc[again.public_code, "duplicate_excluded"]) is True
    assert bool(frame.loc[again.public_code, "itt"]) is False
    assert bool(frame.loc[again.public_code, "per_protocol"]) is False
    assert bool(frame.loc[other_browser.public_code, "duplicate_excluded"]) is False
    assert bool(frame.loc[other_browser.public_code, "itt"]) is True
    assert int(frame["itt"].sum()) == 3
    names = {c.name: c for c in dataset_columns(trial, "participants")}
    assert names["duplicate_flags"].allowed == ("external_id", "browser", "address")
    assert "duplicate" in names["duplicate_excluded"].description

    counts = analysis_input(trial).consort  # as the report and results.json get it
    assert counts["excluded"]["duplicate"] == 1  # the unallocated repeat
    assert counts["randomized"] == 4
    assert sum(a["excluded_duplicate"] for a in counts["arms"]) == 1
    assert sum(a["analysed_itt"] for a in counts["arms"]) == 3
    assert counts["duplicates_kept"] == 1  # the address-only flag
    items = [r["item"].strip() for r in consort_table(counts)]
    assert "Duplicate entry (excluded per the plan)" in items
    assert "Excluded from analysis: duplicate entry (per the plan)" in items
    assert "Flagged as likely duplicates, kept per the plan" in items

    user = User.objects.create_user("exp", password="pw-12345-xyz")
    user.groups.add(Group.objects.get(name=EXPERIMENTER))
    client.login(username="exp", password="pw-12345-xyz")
    page = client.get(f"/manage/trials/{SLUG}/v{trial.version}/").content.decode()
    assert "<strong>3</strong> entries flagged as likely duplicates" in page
    assert "<strong>2</strong> left out of the analysis" in page
    assert f"browser</span> of {first.public_code}" in page
    listing = client.get("/manage/").content.decode()
    assert "Likely duplicates" in listing


@pytest.mark.django_db
def test_with_the_default_plan_duplicates_are_flagged_and_kept(live_trial, eligible_answers):
    to_warmup(browser(), eligible_answers, pid="keep-1")
    repeat = to_warmup(browser(), eligible_answers, pid="keep-2")
    frame = dataset_frame(live_trial, "participants").set_index("participant")
    assert frame.loc[repeat.public_code, "duplicate_flags"] == "browser"
    assert bool(frame.loc[repeat.public_code, "duplicate_excluded"]) is False
    assert int(frame["itt"].sum()) == 2
    counts = analysis_input(live_trial).consort
    assert counts["excluded"]["duplicate"] == 0 and counts["duplicates_kept"] == 1
    assert sum(a["analysed_itt"] for a in counts["arms"]) == 2


@pytest.mark.django_db
def test_the_same_prolific_id_in_a_new_version_is_flagged(trial_dir, eligible_answers):
    v1 = launched(trial_dir)
    old = to_warmup(browser(), eligible_answers, pid="returning-pid")
    trial_close(trial=v1)
    path = trial_dir / "trial.toml"
    path.write_text(path.read_text().replace("version = 1", "version = 2", 1))
    v2 = trial_launch(trial=trial_import(definition=load_trial_dir(trial_dir)).trial)
    # Another browser, another network: only the id links them.
    new = to_warmup(
        browser(address="203.0.113.9", agent="Safari/17"), eligible_answers, pid="returning-pid"
    )
    assert new.trial_id == v2.pk and old.trial_id == v1.pk
    frame = dataset_frame(v2, "participants").set_index("participant")
    assert frame.loc[new.public_code, "duplicate_flags"] == "external_id"
    assert frame.loc[new.public_code, "duplicate_of"] == f"v1:{old.public_code}"
    assert dataset_frame(v1, "participants")["duplicate_flags"].tolist() == [""]


@pytest.mark.django_db
def test_session_moves_are_counted_in_the_data_set(live_trial, eligible_answers):
    participant = to_warmup(browser(), eligible_answers, pid="mover")
    laptop = browser(address="192.0.2.20")
    laptop.get(ENTRY, {"PROLIFIC_PID": "mover"})
    laptop.post(RESUME, {"external_id": "mover", "code": resume_code(participant)})
    Participant.objects.filter(pk=participant.pk).update(
        last_seen_at=timezone.now() - timedelta(hours=1)
    )
    browser(address="192.0.2.21").post(RESUME, {"external_id": "mover", "action": "take_over"})
    frame = dataset_frame(live_trial, "participants").set_index("participant")
    assert int(frame.loc[participant.public_code, "session_resumes"]) == 1
    assert int(frame.loc[participant.public_code, "session_takeovers"]) == 1


# --- races, on PostgreSQL ---------------------------------------------------------------------

needs_postgres = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="race tests need PostgreSQL (set DATABASE_URL); SQLite serialises every writer",
)
PROCESSES = 6


def _enter_worker(pids: list[str], barrier: Any) -> list[tuple[str, int, str]]:
    """Open the entry link once per id from a fresh browser, all processes at once."""
    clients = [Client(raise_request_exception=False) for _ in pids]
    # Warm up (imports, URLs, templates, the connection), so the entries really coincide.
    clients[0].get(ENTRY + "resume/")
    clients[0].get("/t/no-such-trial/")
    barrier.wait()
    outcomes = []
    for client, pid in zip(clients, pids, strict=True):
        response = client.get(ENTRY, {"PROLIFIC_PID": pid})
        outcomes.append((pid, response.status_code, response.get("Location", "")))
    return outcomes


def _guess_worker(job: tuple[str, int], barrier: Any) -> list[int]:
    pid, tries = job
    client = Client(raise_request_exception=False)
    client.post(RESUME, {"external_id": "warm-up"})  # imports, URLs, templates, connection
    barrier.wait()
    return [
        client.post(RESUME, {"external_id": pid, "code": f"WRONG{n:03d}"}).status_code
        for n in range(tries)
    ]


@pytest.fixture
def race_trial(transactional_db: None, sample_definition: Any) -> Trial:
    return trial_launch(trial=trial_import(definition=sample_definition).trial)


@pytest.mark.postgres
@needs_postgres
def test_simultaneous_first_visits_with_one_id_make_one_participant(race_trial):
    pids = [f"race-{i}" for i in range(10)]
    outcomes = run_in_processes(_enter_worker, [pids] * PROCESSES)
    per_pid: dict[str, Counter[tuple[int, str]]] = {pid: Counter() for pid in pids}
    for chunk in outcomes:
        for pid, status, location in chunk:
            per_pid[pid][(status, location)] += 1
    for pid in pids:
        # Exactly one browser got the new participant; every other one the resume page.
        assert per_pid[pid] == {(302, stage_url("consent")): 1, (200, ""): PROCESSES - 1}, pid
    assert Participant.objects.filter(trial=race_trial).count() == len(pids)
    assert sorted(Participant.objects.values_list("external_id", flat=True)) == sorted(pids)


@pytest.mark.postgres
@needs_postgres
def test_parallel_guesses_cannot_exceed_the_attempt_limit(race_trial):
    participant = services.participant_enter(
        trial=race_trial, external_ids={"PROLIFIC_PID": "target"}
    )
    statuses = run_in_processes(_guess_worker, [("target", 3)] * PROCESSES)
    seen = Counter(status for chunk in statuses for status in chunk)
    assert seen == {
        400: services.RESUME_MAX_FAILURES,
        429: 3 * PROCESSES - services.RESUME_MAX_FAILURES,
    }
    assert Event.objects.filter(participant=participant, type="resume_failed").count() == (
        services.RESUME_MAX_FAILURES
    )
