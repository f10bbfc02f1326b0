"""Staff pages (issue 12): the conversation viewer and who may see it, synthetic and overdue
participants marked on every staff page, purge_synthetic, the demo admin and the admin link."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from analysis import synthetic
from quizzes.models import ItemResponse, QuizAttempt
from trials.models import (
    Allocation,
    AssistantTurn,
    CodeRun,
    CodeSnapshot,
    Event,
    Participant,
    Stage,
    StageRecord,
    TaskState,
    Trial,
)
from trials.roles import EXPERIMENTER, GRADER, STATISTICIAN

CODE_SENT = "async def main():\n    await child()  # participant's code"


def login(role: str | None, name: str, **extra: bool) -> Client:
    user = User.objects.create_user(name, password="pw-12345-xyz", **extra)
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def talker(live_trial: Trial) -> Participant:
    """A participant in the main tasks with two exchanges; one reply was pasted twice."""
    stage = Stage.objects.filter(trial=live_trial, type=Stage.Type.TASK).order_by("order").last()
    participant = Participant.objects.create(
        trial=live_trial,
        status=Participant.Status.ACTIVE,
        current_stage=stage,
        stage_deadline=timezone.now() + timedelta(minutes=20),
    )
    turns = []
    for i, question in enumerate(["How do I start a child task?", "Why does it hang?"]):
        turns.append(
            AssistantTurn.objects.create(
                participant=participant,
                stage=stage,
                task="tasks/main_two",
                question=question,
                reply=f"Reply number {i}: use a nursery.",
                status=AssistantTurn.Status.COMPLETED,
                provider="scripted",
                model="scripted",
                context={"system": f"Be brief.\n\n<code>\n{CODE_SENT}\n</code>", "messages": []},
                input_tokens=120 + i,
                output_tokens=45 + i,
            )
        )
    for n, (turn, length) in enumerate([(turns[0], 31), (turns[0], 12), (None, 400)]):
        payload = {"task": "tasks/main_two", "length": length, "sha256": "0" * 64}
        if turn is not None:
            payload |= {"from_assistant": True, "assistant_turn": turn.pk}
        Event.objects.create(
            participant=participant, stage=stage, type="paste", client_id=f"p{n}", payload=payload
        )
    return participant


def conversation_url(p: Participant) -> str:
    return f"/manage/trials/{p.trial.slug}/v{p.trial.version}/p/{p.public_code}/conversation/"


@pytest.mark.django_db
def test_conversation_viewer_shows_each_turn_with_code_reply_tokens_and_pastes(talker):
    page = login(EXPERIMENTER, "eve").get(conversation_url(talker))
    assert page.status_code == 200
    text = page.content.decode()
    assert "How do I start a child task?" in text and "Why does it hang?" in text
    assert "Reply number 0: use a nursery." in text and "Reply number 1" in text
    assert "await child()  # participant&#x27;s code" in text  # the code the server sent
    assert "120 tokens in, 45 out" in text and "121 tokens in, 46 out" in text
    first = text[text.find('id="turn-') : text.find("Why does it hang?")]
    assert "2 pastes, 43 characters in all" in first  # the unmatched 400-character paste is not
    assert "400 characters" not in text
    assert [t.turn.pk for t in page.context["turns"]] == sorted(
        AssistantTurn.objects.values_list("pk", flat=True)
    )


@pytest.mark.django_db
def test_conversation_viewer_is_for_staff_only_never_for_graders(talker):
    url = conversation_url(talker)
    response = Client().get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    grader = login(GRADER, "gina").get(url)
    assert grader.status_code == 403
    assert b"How do I start" not in grader.content
    assert login(None, "nobody").get(url).status_code == 403
    assert login(STATISTICIAN, "stan").get(url).status_code == 200
    replay = login(EXPERIMENTER, "eve").get(url.removesuffix("conversation/"))
    assert url.encode() in replay.content  # the replay links to it
    assert b"2 exchanges" in replay.content


@pytest.mark.django_db
def test_synthetic_and_overdue_participants_carry_badges_on_every_staff_page(live_trial):
    synthetic.synthesize_trial(live_trial, participants=6, seed=2, events_per_participant=10)
    stage = Stage.objects.filter(trial=live_trial, type=Stage.Type.TASK).first()
    late = Participant.objects.create(
        trial=live_trial,
        status=Participant.Status.ACTIVE,
        current_stage=stage,
        stage_deadline=timezone.now() - timedelta(minutes=5),
    )
    n_synthetic = Participant.objects.filter(is_synthetic=True).count()
    client = login(EXPERIMENTER, "eve")
    listing = client.get("/manage/").content.decode()
    assert f"{n_synthetic} synthetic" in listing
    detail = client.get(f"/manage/trials/{live_trial.slug}/v1/").content.decode()
    assert f"{n_synthetic} of the {n_synthetic + 1} participants are synthetic" in detail
    assert "manage.py purge_synthetic trio-skill-formation" in detail
    rows = detail[detail.find("<h2>Participants</h2>") :]
    assert rows.count('class="badge synthetic"') == n_synthetic
    late_row = rows[rows.find(late.public_code) :].split("</tr>")[0]
    assert "past deadline" in late_row and "In the trial" not in late_row
    assert "synthetic" not in late_row
    exports = client.get(f"/exports/{live_trial.slug}/v1/").content.decode()
    assert f"<strong>{n_synthetic}</strong> participants of this version are synthetic" in exports
    one = Participant.objects.filter(is_synthetic=True).first()

    base = f"/manage/trials/{live_trial.slug}/v1/p/{one.public_code}/"
    for url in (base, base + "conversation/"):
        assert b'class="badge synthetic"' in client.get(url).content
    assert (
        b'class="badge synthetic"'
        not in client.get(f"/manage/trials/{live_trial.slug}/v1/p/{late.public_code}/").content
    )


@pytest.mark.django_db
def test_purge_synthetic_removes_synthetic_participants_and_all_their_rows_only(
    live_trial, eligible_answers
):
    real = Client()
    real.get("/t/trio-skill-formation/")
    real.post("/t/trio-skill-formation/s/consent/", {"decision": "agree", "agree": "on"})
    real.post("/t/trio-skill-formation/s/screening/", eligible_answers)
    person = Participant.objects.get()
    assert Allocation.objects.filter(participant=person).exists()
    synthetic.synthesize_trial(live_trial, participants=12, seed=5, events_per_participant=30)
    models = (
        Allocation,
        StageRecord,
        TaskState,
        CodeSnapshot,
        CodeRun,
        Event,
        AssistantTurn,
        QuizAttempt,
        ItemResponse,
    )
    real_rows = {m: m.objects.filter(participant=person).count() for m in models}
    assert all(
        m.objects.filter(participant__is_synthetic=True).exists()
        for m in (Allocation, Event, ItemResponse, StageRecord)
    )
    out = io.StringIO()
    call_command("purge_synthetic", "trio-skill-formation", "--dry-run", stdout=out)
    assert "would delete 12 synthetic participants" in out.getvalue()
    assert Participant.objects.filter(is_synthetic=True).count() == 12
    out = io.StringIO()
    call_command("purge_synthetic", "trio-skill-formation", stdout=out)
    assert "deleted 12 synthetic participants" in out.getvalue()
    assert "trials.Allocation:" in out.getvalue()
    assert list(Participant.objects.all()) == [person]
    for model in models:
        assert model.objects.exclude(participant=person).count() == 0, model
        assert model.objects.filter(participant=person).count() == real_rows[model], model
    # The real participant goes on: the sequence was not rewound, nothing reassigned.
    assert real.get("/t/trio-skill-formation/").status_code in (200, 302)


@pytest.mark.django_db
def test_demo_creates_an_admin_and_the_header_links_admin_only_for_staff(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command("demo_setup", stdout=out)
    text = out.getvalue()
    password = text.split("login: demo-admin / ")[1].split()[0]
    admin = User.objects.get(username="demo-admin")
    assert admin.is_staff and admin.is_superuser and admin.check_password(password)
    client = Client()
    assert client.login(username="demo-admin", password=password)
    assert client.get("/admin/").status_code == 200
    assert b'href="/admin/"' in client.get("/manage/").content
    experimenter = login(EXPERIMENTER, "eve")
    assert b'href="/admin/"' not in experimenter.get("/manage/").content


def test_readme_explains_createsuperuser_and_the_demo_settings():
    from pathlib import Path

    from django.conf import settings

    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    assert "manage.py createsuperuser" in readme
    assert "PORT=" in readme and "HOST=" in readme
    assert "](../" not in readme  # no link to a file outside the repository


@pytest.mark.django_db
def test_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")
    assert b'rel="icon"' in client.get("/accounts/login/").content
