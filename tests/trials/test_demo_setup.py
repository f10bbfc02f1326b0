from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from trials.models import Trial
from trials.roles import EXPERIMENTER, GRADER, STATISTICIAN, has_role


@pytest.mark.django_db
def test_demo_setup_can_run_twice_and_keeps_the_same_logins(settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path
    call_command("demo_setup")
    first = capsys.readouterr().out
    call_command("demo_setup")
    second = capsys.readouterr().out
    assert first == second
    trial = Trial.objects.get(slug="trio-skill-formation")
    assert trial.status == "live" and trial.protocol_hash in first
    assert "/t/trio-skill-formation/" in first
    for name, role in [
        ("demo-experimenter", EXPERIMENTER),
        ("demo-statistician", STATISTICIAN),
        ("demo-grader", GRADER),
    ]:
        password = first.split(f"login: {name} / ")[1].split()[0]
        user = User.objects.get(username=name)
        assert user.check_password(password) and has_role(user, role)
