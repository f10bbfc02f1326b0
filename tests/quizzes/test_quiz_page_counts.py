"""The staff quiz page and report on a real (synthetic) trial: attention-check failures as
counts of people who answered, never NaN in the tables, question texts beside the keys, and
the report's baseline table in the questionnaire's words."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from analysis import synthetic
from quizzes.models import ItemResponse
from trials.roles import STATISTICIAN


@pytest.mark.django_db
def test_quiz_page_counts_attention_failures_among_those_who_reached_the_check(live_trial):
    synthetic.synthesize_trial(live_trial, participants=12, seed=4, events_per_participant=10)
    checks = ItemResponse.objects.filter(is_attention_check=True).order_by("participant_id")
    answered = list(checks)
    assert len(answered) >= 4, "the synthetic trial answers the attention check"
    keys = {r.question_key for r in answered}
    assert len(keys) == 1
    key = keys.pop()
    checks.update(correct=True, points=0)
    failed = answered[0]
    ItemResponse.objects.filter(pk=failed.pk).update(correct=False)
    blank = answered[1]
    ItemResponse.objects.filter(pk=blank.pk).update(correct=None, status="blank")
    never = answered[2]  # reached the quiz but not the check: no row for it
    ItemResponse.objects.filter(pk=never.pk).delete()
    reached = len(answered) - 1

    user = User.objects.create_user("stan", password="pw-12345-xyz")
    user.groups.add(Group.objects.get_or_create(name=STATISTICIAN)[0])
    client = Client()
    client.force_login(user)
    page = client.get(f"/manage/trials/{live_trial.slug}/v1/quiz/").content.decode()
    attention = page[page.find('id="attention"') :].split("</p>")[0]
    assert f"<strong>2 of {reached}</strong>" in attention
    assert f"{key}: 2 of {reached} failed" in attention
    assert "1.00" not in attention and "0.00" not in attention
    items = page[page.find("<h3>Items</h3>") : page.find('id="attention"')]
    assert "nan" not in items.lower()
    assert 'class="muted question-text"' in items

    report = client.get(f"/analysis/{live_trial.slug}/report/").content.decode()
    baseline = report[report.find('id="baseline"') : report.find('id="preregistered"')]
    assert "coding years, n (%)" in baseline
    labels = ["Less than 1 year", "1\u20133 years", "4\u20136 years", "7 years or more"]
    positions = [baseline.find(label) for label in labels]
    assert -1 not in positions and positions == sorted(positions)
    assert "lt1" not in baseline
