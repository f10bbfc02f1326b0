from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from tests.conftest import at_stage
from trials import randomization
from trials.definition import load_trial_dir
from trials.models import Allocation, AppendOnlyError, Participant, StageRecord, Trial
from trials.services import (
    StageConflict,
    TrialError,
    TrialFrozen,
    allocation_assign,
    participant_complete_stage,
    participant_consent,
    participant_enter,
    participant_screen,
    participant_sync_clock,
    trial_close,
    trial_import,
    trial_launch,
)

pytestmark = pytest.mark.django_db


def enrolled(trial: Trial, answers: dict, **ids: str) -> Participant:
    participant = participant_enter(trial=trial, external_ids=ids)
    participant = participant_consent(participant=participant, stage_key="consent", agreed=True)
    return participant_screen(participant=participant, stage_key="screening", answers=answers)


def test_import_creates_a_draft_and_reimport_updates_it(trial_dir):
    first = trial_import(definition=load_trial_dir(trial_dir))
    assert (first.action, first.trial.status, first.trial.version) == ("created", "draft", 1)
    assert trial_import(definition=load_trial_dir(trial_dir)).action == "unchanged"
    toml = trial_dir / "trial.toml"
    toml.write_text(toml.read_text().replace("time_limit_minutes = 35", "time_limit_minutes = 40"))
    second = trial_import(definition=load_trial_dir(trial_dir))
    assert second.action == "updated"
    assert second.trial.pk == first.trial.pk
    assert second.trial.stages.get(key="main_tasks").time_limit_seconds == 40 * 60
    assert Trial.objects.count() == 1


def test_launch_freezes_the_protocol_and_refuses_changed_imports(trial_dir):
    trial = trial_launch(trial=trial_import(definition=load_trial_dir(trial_dir)).trial)
    assert trial.status == "live"
    assert trial.protocol_hash == load_trial_dir(trial_dir).protocol_hash()
    assert len(trial.randomization_seed) == 64
    assert trial_import(definition=load_trial_dir(trial_dir)).action == "unchanged"
    consent = trial_dir / "consent.md"
    consent.write_text(consent.read_text() + "\nOne more sentence.\n")
    with pytest.raises(TrialFrozen, match=r"frozen.*--new-version"):
        trial_import(definition=load_trial_dir(trial_dir))
    trial.refresh_from_db()
    assert "One more sentence" not in trial.files["consent.md"]
    with pytest.raises(TrialError, match="already live"):
        trial_launch(trial=trial)


def test_a_changed_definition_can_be_imported_as_a_new_version(trial_dir, live_trial):
    consent = trial_dir / "consent.md"
    consent.write_text(consent.read_text() + "\nChanged.\n")
    result = trial_import(definition=load_trial_dir(trial_dir), new_version=True)
    assert (result.action, result.trial.version, result.trial.status) == ("created", 2, "draft")
    with pytest.raises(TrialError, match="version 1 of 'trio-skill-formation' is live"):
        trial_launch(trial=result.trial)
    trial_close(trial=live_trial)
    assert trial_launch(trial=result.trial).status == "live"


def test_commands_import_launch_and_export_round_trip(trial_dir, tmp_path, capsys):
    call_command("import_trial", str(trial_dir))
    call_command("launch_trial", "trio-skill-formation")
    trial = Trial.objects.get(slug="trio-skill-formation")
    call_command("export_trial", "trio-skill-formation", str(tmp_path / "exported"))
    exported = load_trial_dir(tmp_path / "exported")
    assert exported.protocol_hash() == trial.protocol_hash
    # Re-importing the exported folder is recognised as the same protocol.
    call_command("import_trial", str(tmp_path / "exported"))
    assert "unchanged" in capsys.readouterr().out


def test_import_command_reports_every_problem_and_writes_nothing(trial_dir):
    toml = trial_dir / "trial.toml"
    toml.write_text(
        toml.read_text()
        .replace('scheme = "stratified_blocks"', 'scheme = "dice"')
        .replace("weight = 1", "weight = -1")
    )
    with pytest.raises(CommandError) as caught:
        call_command("import_trial", str(trial_dir))
    message = str(caught.value)
    assert "randomization.scheme: unknown randomization scheme 'dice'" in message
    assert "arms[0].weight" in message
    assert Trial.objects.count() == 0


def test_launch_command_names_an_unknown_trial():
    with pytest.raises(CommandError, match="no trial 'nope'"):
        call_command("launch_trial", "nope")


def test_eligible_participant_is_allocated_once_in_their_stratum(live_trial, eligible_answers):
    participant = enrolled(live_trial, eligible_answers)
    allocation = participant.allocation
    assert allocation.stratum == "coding_years=4-6"
    assert allocation.sequence_number == 1
    assert at_stage(participant) == "warmup"
    assert allocation_assign(participant=participant).pk == allocation.pk
    assert Allocation.objects.count() == 1


def test_the_database_refuses_a_second_allocation(live_trial, eligible_answers):
    participant = enrolled(live_trial, eligible_answers)
    other_arm = live_trial.arms.exclude(pk=participant.allocation.arm_id).get()
    with pytest.raises(IntegrityError), transaction.atomic():
        Allocation.objects.create(
            participant=participant, trial=live_trial, arm=other_arm, scheme="x", sequence_number=99
        )


def test_allocations_are_append_only(live_trial, eligible_answers):
    allocation = enrolled(live_trial, eligible_answers).allocation
    allocation.stratum = "changed"
    with pytest.raises(AppendOnlyError):
        allocation.save()
    with pytest.raises(AppendOnlyError):
        allocation.delete()


def test_ineligible_people_are_screened_out_with_reasons_and_never_allocated(
    live_trial, eligible_answers
):
    participant = enrolled(live_trial, eligible_answers | {"used_trio": "yes"})
    assert participant.status == "screened_out"
    assert participant.screen_out_reasons == ["Has used Trio before"]
    assert participant.current_stage is None
    assert not Allocation.objects.exists()
    record = StageRecord.objects.get(participant=participant, stage__key="screening")
    assert record.end_reason == "screened_out"


def test_no_allocation_before_eligibility_is_confirmed(live_trial):
    participant = participant_enter(trial=live_trial, external_ids={})
    with pytest.raises(TrialError, match="only eligible"):
        allocation_assign(participant=participant)


def test_declining_consent_ends_participation(live_trial):
    participant = participant_enter(trial=live_trial, external_ids={})
    participant = participant_consent(participant=participant, stage_key="consent", agreed=False)
    assert participant.status == "declined"
    assert participant.current_stage is None


def test_sequence_follows_the_concealed_block_schedule_per_stratum(live_trial, eligible_answers):
    bands = ["1-3", "4-6", "7+", "4-6", "1-3", "4-6"] * 5
    for band in bands:
        enrolled(live_trial, eligible_answers | {"coding_years": band})
    arms = [randomization.ArmWeight(a.key, a.weight) for a in live_trial.arms.order_by("order")]
    for band in set(bands):
        stratum = f"coding_years={band}"
        rows = Allocation.objects.filter(stratum=stratum).order_by("sequence_number")
        schedule = randomization.BlockSchedule(
            arms, [2, 4, 6], live_trial.randomization_seed, stratum
        )
        assert [a.sequence_number for a in rows] == list(range(1, bands.count(band) + 1))
        assert [a.arm.key for a in rows] == [schedule.arm_at(i) for i in range(rows.count())]


def test_prolific_id_returns_the_same_participant(live_trial, eligible_answers):
    first = enrolled(live_trial, eligible_answers, PROLIFIC_PID="5f1e0c")
    again = participant_enter(trial=live_trial, external_ids={"PROLIFIC_PID": "5f1e0c"})
    assert again.pk == first.pk
    assert again.allocation.arm == first.allocation.arm


def test_replayed_stage_completion_cannot_repeat_a_stage(live_trial, eligible_answers):
    participant = enrolled(live_trial, eligible_answers)
    participant_complete_stage(participant=participant, stage_key="warmup", answers={"code": {}})
    stale = Participant.objects.get(pk=participant.pk)
    stale.current_stage = live_trial.stages.get(key="warmup")  # what a second tab still shows
    with pytest.raises(StageConflict):
        participant_complete_stage(participant=stale, stage_key="warmup", answers={"code": {}})
    assert at_stage(participant) == "main_tasks"
    assert StageRecord.objects.filter(participant=participant, stage__key="warmup").count() == 1


def test_a_later_stage_cannot_be_completed_early(live_trial, eligible_answers):
    participant = enrolled(live_trial, eligible_answers)
    with pytest.raises(StageConflict):
        participant_complete_stage(participant=participant, stage_key="quiz", answers={})
    assert at_stage(participant) == "warmup"


def test_expired_stage_closes_on_the_server_as_censored(live_trial, eligible_answers):
    participant = enrolled(live_trial, eligible_answers)
    Participant.objects.filter(pk=participant.pk).update(
        stage_deadline=timezone.now() - timedelta(minutes=1)
    )
    participant.refresh_from_db()
    participant = participant_sync_clock(participant=participant)
    assert participant.current_stage.key == "main_tasks"
    record = StageRecord.objects.get(participant=participant, stage__key="warmup")
    assert record.end_reason == "timed_out"
    # Posting the stage's answers after the deadline does not turn it into a completion.
    Participant.objects.filter(pk=participant.pk).update(
        stage_deadline=timezone.now() - timedelta(minutes=1)
    )
    participant.refresh_from_db()
    participant = participant_complete_stage(
        participant=participant, stage_key="main_tasks", answers={"code": {"late": "x"}}
    )
    record = StageRecord.objects.get(participant=participant, stage__key="main_tasks")
    assert record.end_reason == "timed_out"
    assert record.answers == {}


def test_completion_sets_a_completion_code(live_trial, eligible_answers):
    participant = enrolled(live_trial, eligible_answers)
    for key in ("warmup", "main_tasks", "quiz", "post_survey"):
        participant = participant_complete_stage(participant=participant, stage_key=key, answers={})
    assert participant.status == "completed"
    assert participant.current_stage.key == "debrief"
    assert len(participant.completion_code) == 8


def _write_variant(trial_dir: Path, randomization_block: str) -> Path:
    toml = trial_dir / "trial.toml"
    text = toml.read_text()
    start = text.index("[randomization]")
    end = text.index("[[arms]]")
    toml.write_text(text[:start] + randomization_block + "\n" + text[end:])
    return trial_dir


def test_minimization_balances_each_factor(trial_dir, eligible_answers):
    _write_variant(
        trial_dir,
        '[randomization]\nscheme = "minimization"\nfactors = ["coding_years", "used_asyncio"]\n'
        "p_preferred = 1.0\n",
    )
    trial = trial_launch(trial=trial_import(definition=load_trial_dir(trial_dir)).trial)
    for i in range(24):
        answers = eligible_answers | {
            "coding_years": ["1-3", "4-6", "7+"][i % 3],
            "used_asyncio": ["yes", "no"][i % 2],
        }
        enrolled(trial, answers)
    rows = list(Allocation.objects.filter(trial=trial).select_related("participant", "arm"))
    assert [a.sequence_number for a in sorted(rows, key=lambda a: a.sequence_number)] == list(
        range(1, 25)
    )
    for factor in ("coding_years", "used_asyncio"):
        levels = {a.participant.baseline[factor] for a in rows}
        for level in levels:
            arms = [a.arm.key for a in rows if a.participant.baseline[factor] == level]
            assert abs(arms.count("ai") - arms.count("no_ai")) <= 2, (factor, level, arms)


def test_simple_randomization_allocates_everyone(trial_dir, eligible_answers):
    _write_variant(trial_dir, '[randomization]\nscheme = "simple"\n')
    trial = trial_launch(trial=trial_import(definition=load_trial_dir(trial_dir)).trial)
    for _ in range(10):
        enrolled(trial, eligible_answers)
    assert list(
        Allocation.objects.filter(trial=trial)
        .order_by("sequence_number")
        .values_list("sequence_number", flat=True)
    ) == list(range(1, 11))
