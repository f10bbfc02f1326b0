from __future__ import annotations

import io
import threading
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db.models import Sum
from django.test import Client

from analysis.stats import cohens_d
from analysis.synthetic import (
    SyntheticEffects,
    SyntheticError,
    SyntheticProgress,
    SyntheticSummary,
    synthesize_trial,
)
from quizzes.models import ItemResponse, QuizAttempt
from trials.definition import TrialDefinition, eligibility_failures, stratum_key
from trials.models import (
    Allocation,
    AllocationSequence,
    AssistantTurn,
    CodeSnapshot,
    Event,
    Participant,
    Stage,
    StageRecord,
    TaskState,
    Trial,
)
from trials.randomization import ArmWeight, BlockSchedule
from trials.replay import apply_changes
from trials.services import trial_import, trial_launch
from trials.tasks import load_task

pytestmark = pytest.mark.django_db

END = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ENTRY = "/t/trio-skill-formation/"


def synthesize(trial: Trial, n: int = 200, seed: int = 7, **kwargs: Any) -> SyntheticSummary:
    kwargs.setdefault("events_per_participant", 60)
    return synthesize_trial(trial, participants=n, seed=seed, end=END, **kwargs)


def block_arm(trial: Trial, stratum: str, index: int) -> str:
    arms = [ArmWeight(a.key, a.weight) for a in trial.arms.order_by("order")]
    sizes = trial.definition["randomization"]["block_sizes"]
    return BlockSchedule(arms, sizes, trial.randomization_seed, stratum).arm_at(index)


@pytest.fixture
def synthetic(live_trial: Trial) -> SyntheticSummary:
    return synthesize(live_trial)


def test_every_participant_is_synthetic_and_the_flow_adds_up(live_trial, synthetic):
    people = Participant.objects.filter(trial=live_trial)
    assert people.count() == synthetic.participants == 200
    assert not people.filter(is_synthetic=False).exists()
    statuses = Counter(people.values_list("status", flat=True))
    assert statuses["declined"] == synthetic.declined > 0
    assert statuses["screened_out"] == synthetic.screened_out > 0
    assert statuses["completed"] == synthetic.completed > 0
    assert statuses["withdrawn"] == synthetic.withdrawn
    assert synthetic.withdrawn + synthetic.left > 0  # CONSORT has people lost after allocation
    allocated = set(
        Allocation.objects.filter(trial=live_trial).values_list("participant_id", flat=True)
    )
    eligible_and_consented = set(
        people.filter(eligible=True, consented_at__isnull=False).values_list("pk", flat=True)
    )
    assert allocated == eligible_and_consented
    assert len(allocated) == synthetic.allocated == sum(synthetic.by_arm.values())
    assert set(synthetic.by_arm) == {"ai", "no_ai"}
    assert not people.filter(status="declined", consented_at__isnull=False).exists()
    for person in people.filter(status="screened_out"):
        assert person.eligible is False
        assert person.screen_out_reasons
        assert person.screen_out_reasons == eligibility_failures(
            live_trial.definition["eligibility"], person.baseline
        )
    assert not people.filter(status="completed").exclude(completion_code__regex=r"^[0-9A-F]{8}$")
    assert len(set(people.values_list("public_code", flat=True))) == 200


def test_eligible_baselines_pass_the_rules_and_give_the_stratum(live_trial, synthetic):
    strata = live_trial.definition["randomization"]["strata"]
    questions = {q["key"] for q in live_trial.definition["baseline"]}
    for person in Participant.objects.filter(trial=live_trial, eligible=True):
        assert eligibility_failures(live_trial.definition["eligibility"], person.baseline) == []
        assert set(person.baseline) == questions
        assert person.stratum == stratum_key(strata, person.baseline)
        screening = StageRecord.objects.get(participant=person, stage__key="screening")
        assert screening.answers == person.baseline


def test_allocations_follow_the_trials_randomization_without_gaps(live_trial, synthetic):
    sequences = AllocationSequence.objects.filter(trial=live_trial)
    for sequence in sequences:
        rows = Allocation.objects.filter(trial=live_trial, stratum=sequence.stratum).order_by(
            "sequence_number"
        )
        numbers = [a.sequence_number for a in rows]
        assert numbers == list(range(1, len(numbers) + 1))
        assert sequence.next_index == len(numbers)
        # The arms are the stratum's permuted-block schedule, in order of allocation time.
        assert [a.arm.key for a in rows] == [
            block_arm(live_trial, sequence.stratum, i) for i in range(len(numbers))
        ]
        times = [a.created_at for a in rows]
        assert times == sorted(times)
    assert sum(s.next_index for s in sequences) == synthetic.allocated


def test_a_real_enrollment_after_synthesis_continues_the_sequence(
    client: Client, live_trial, synthetic, eligible_answers
):
    stratum = stratum_key(["coding_years"], eligible_answers)
    before = AllocationSequence.objects.get(trial=live_trial, stratum=stratum).next_index
    assert before > 0
    assert client.get(ENTRY)["Location"] == f"{ENTRY}s/consent/"
    client.post(f"{ENTRY}s/consent/", {"decision": "agree", "agree": "on"})
    response = client.post(f"{ENTRY}s/screening/", eligible_answers)
    assert response["Location"] == f"{ENTRY}s/warmup/"
    real = Participant.objects.get(trial=live_trial, is_synthetic=False)
    allocation = Allocation.objects.get(participant=real)
    assert allocation.sequence_number == before + 1
    assert allocation.arm.key == block_arm(live_trial, stratum, before)
    assert AllocationSequence.objects.get(trial=live_trial, stratum=stratum).next_index == (
        before + 1
    )
    assert client.get(f"{ENTRY}s/warmup/").status_code == 200


def test_time_outs_are_censored_and_no_task_passes_after_its_deadline(live_trial, synthetic):
    main = Stage.objects.get(trial=live_trial, key="main_tasks")
    timed_out = StageRecord.objects.filter(stage=main, end_reason="timed_out")
    assert timed_out.count() == synthetic.censored > 0
    for record in timed_out:
        assert record.ended_at > record.deadline
        states = TaskState.objects.filter(participant_id=record.participant_id, stage=main)
        assert states.count() == 2
        assert states.filter(first_passed_at__isnull=True).exists()
        assert not states.filter(submitted_at__isnull=False).exists()
    completed = StageRecord.objects.filter(stage=main, end_reason="completed")
    assert completed.exists()
    for record in completed:
        states = TaskState.objects.filter(participant_id=record.participant_id, stage=main)
        assert not states.filter(first_passed_at__isnull=True).exists()
        assert set(record.answers["code"]) == set(main.config["tasks"])
    for state in TaskState.objects.filter(stage=main, first_passed_at__isnull=False):
        record = StageRecord.objects.get(participant_id=state.participant_id, stage=main)
        assert record.started_at < state.first_passed_at <= record.deadline


def test_edits_replay_to_the_saved_code(live_trial, synthetic):
    starters = {}
    states = TaskState.objects.filter(participant__trial=live_trial, latest_version__gt=0).order_by(
        "participant_id", "task"
    )[:40]
    assert states
    for state in states:
        if state.task not in starters:
            starters[state.task] = load_task(live_trial.files, state.task).starter
        text = starters[state.task]
        edits = Event.objects.filter(
            participant_id=state.participant_id, type="edit", payload__task=state.task
        ).order_by("client_seq")
        for event in edits:
            text = apply_changes(text, event.payload["changes"])
        latest = CodeSnapshot.objects.get(
            participant_id=state.participant_id, task=state.task, version=state.latest_version
        )
        assert latest.code == text
        if state.first_passed_at is not None:
            solution = load_task(live_trial.files, state.task).solution
            assert text == solution


def test_only_the_ai_arm_uses_the_assistant(live_trial, synthetic):
    arm = dict(
        Allocation.objects.filter(trial=live_trial).values_list("participant_id", "arm__key")
    )
    turns = AssistantTurn.objects.filter(participant__trial=live_trial)
    assert turns.count() == synthetic.assistant_turns > 0
    assert {arm[pid] for pid in turns.values_list("participant_id", flat=True)} == {"ai"}
    assert set(turns.values_list("stage__key", flat=True)) == {"main_tasks"}
    assistant_events = Event.objects.filter(
        participant__trial=live_trial,
        type__in=["assistant_request", "assistant_response", "assistant_error"],
    )
    assert {arm[pid] for pid in assistant_events.values_list("participant_id", flat=True)} == {"ai"}
    turn_ids = set(turns.values_list("pk", flat=True))
    assert {e.payload["turn"] for e in assistant_events} == turn_ids
    pasted = Event.objects.filter(
        participant__trial=live_trial, type="paste", payload__from_assistant=True
    )
    assert pasted.exists()
    assert {e.payload["assistant_turn"] for e in pasted} <= turn_ids
    focus = Event.objects.filter(
        participant__trial=live_trial, type="focus", payload__scope="assistant"
    )
    assert focus.exists()
    assert {arm[pid] for pid in focus.values_list("participant_id", flat=True)} == {"ai"}


def test_quiz_answers_are_graded_items_of_the_trials_quiz(live_trial, synthetic):
    attempts = QuizAttempt.objects.filter(participant__trial=live_trial, submitted_at__isnull=False)
    assert attempts.exists()
    attempt = attempts.first()
    items = ItemResponse.objects.filter(participant_id=attempt.participant_id)
    assert sorted(items.values_list("question_key", flat=True)) == sorted(attempt.question_order)
    assert items.filter(is_attention_check=True).count() == 1
    assert not items.filter(is_attention_check=True, max_points__gt=0).exists()
    assert items.aggregate(m=Sum("max_points"))["m"] == 27
    record = StageRecord.objects.get(participant_id=attempt.participant_id, stage__key="quiz")
    for item in items.filter(status="auto"):
        assert record.answers[item.question_key] == item.response
    # Every synthetic participant who finished the quiz answered every question of it.
    assert (
        ItemResponse.objects.filter(participant__trial=live_trial).count()
        == attempts.count() * len(attempt.question_order)
        == synthetic.item_responses
    )
    survey = StageRecord.objects.filter(stage__key="post_survey", end_reason="completed")
    assert survey.exists()
    assert all({"self_rated_learning", "enjoyment"} <= set(r.answers) for r in survey)


def test_timestamps_are_the_generated_ones_not_the_time_of_insertion(live_trial, synthetic):
    people = Participant.objects.filter(trial=live_trial)
    created = sorted(people.values_list("created_at", flat=True))
    assert created[-1] - created[0] > timedelta(days=7)
    assert created[-1] < END
    events = Event.objects.filter(participant__trial=live_trial)
    assert events.count() == synthetic.events
    latest = events.order_by("-server_time").first()
    assert latest.server_time < END
    assert (
        events.filter(type="stage_entered").count()
        == StageRecord.objects.filter(participant__trial=live_trial).count()
    )
    per_participant = Counter(events.values_list("participant_id", flat=True))
    assert sum(per_participant.values()) / len(people) == pytest.approx(60, rel=0.15)


def signature(trial: Trial) -> list[Any]:
    """The content of a synthetic trial, free of database ids and opaque identifiers."""
    out: list[Any] = []
    for person in Participant.objects.filter(trial=trial).order_by("created_at"):
        allocation = Allocation.objects.filter(participant=person).first()
        events = Event.objects.filter(participant=person).order_by("server_time", "id")
        out.append(
            (
                person.public_code,
                person.status,
                person.baseline,
                person.stratum,
                person.created_at,
                allocation.arm.key if allocation else None,
                allocation.sequence_number if allocation else None,
                list(
                    ItemResponse.objects.filter(participant=person)
                    .order_by("position")
                    .values_list("question_key", "response", "points")
                ),
                [(e.type, e.server_time, e.client_seq) for e in events],
                list(
                    CodeSnapshot.objects.filter(participant=person)
                    .order_by("task", "version")
                    .values_list("code", flat=True)
                ),
            )
        )
    return out


def copy_of(definition: TrialDefinition, slug: str, seed: str) -> Trial:
    data = dict(definition.data, slug=slug)
    trial = trial_launch(
        trial=trial_import(definition=TrialDefinition(data, definition.files)).trial
    )
    Trial.objects.filter(pk=trial.pk).update(randomization_seed=seed)
    trial.refresh_from_db()
    return trial


def test_the_same_seed_gives_the_same_data(live_trial, sample_definition):
    other = copy_of(sample_definition, "trio-copy", live_trial.randomization_seed)
    third = copy_of(sample_definition, "trio-third", live_trial.randomization_seed)
    synthesize(live_trial, n=40, seed=11)
    synthesize(other, n=40, seed=11)
    synthesize(third, n=40, seed=12)
    first = signature(live_trial)
    assert first == signature(other)
    assert first != signature(third)


def test_the_realised_quiz_effect_is_close_to_the_requested_d(live_trial):
    summary = synthesize(live_trial, n=2000, seed=3, events_per_participant=0)
    assert summary.events == 0
    assert summary.item_responses > 0
    arm = dict(
        Allocation.objects.filter(trial=live_trial).values_list("participant_id", "arm__key")
    )
    totals: dict[str, list[float]] = defaultdict(list)
    rows = (
        ItemResponse.objects.filter(participant__trial=live_trial)
        .values("participant_id")
        .annotate(points=Sum("points"))
    )
    for row in rows:
        totals[arm[row["participant_id"]]].append(row["points"])
    assert min(len(v) for v in totals.values()) > 500
    d = cohens_d(totals["ai"], totals["no_ai"]).value
    assert d == pytest.approx(-0.74, abs=0.2)
    reference_percent = 100 * sum(totals["no_ai"]) / len(totals["no_ai"]) / 27
    assert reference_percent == pytest.approx(67, abs=5)


def test_the_effects_can_be_set(live_trial):
    effects = SyntheticEffects(quiz_d=0.0, speed_gain_min=0.0, censor_rate=0.0)
    summary = synthesize(live_trial, n=150, seed=5, effects=effects, events_per_participant=10)
    assert summary.censored == 0
    assert summary.quiz_shift == 0.0


def test_progress_is_reported_per_batch(live_trial):
    seen: list[SyntheticProgress] = []
    synthesize(live_trial, n=30, seed=1, chunk_size=10, progress=seen.append)
    assert [p.participants_done for p in seen] == [10, 20, 30]
    assert seen[-1].events_written == Event.objects.filter(participant__trial=live_trial).count()


def test_refuses_a_trial_that_is_not_live_and_bad_numbers(live_trial, sample_definition):
    with pytest.raises(SyntheticError, match="positive"):
        synthesize(live_trial, n=0)
    with pytest.raises(SyntheticError, match="d must be"):
        synthesize(live_trial, effects=SyntheticEffects(quiz_d=9))
    draft = trial_import(
        definition=TrialDefinition(dict(sample_definition.data, slug="draft-one"), {})
    )
    with pytest.raises(SyntheticError, match="not live"):
        synthesize(draft.trial)
    assert not Participant.objects.exists()


def test_the_command_fills_the_live_trial_and_reports(live_trial):
    out = io.StringIO()
    call_command(
        "synthesize",
        "trio-skill-formation",
        "--participants",
        "25",
        "--seed",
        "4",
        "--events-per-participant",
        "20",
        "--effect-quiz-d",
        "-0.5",
        "--speed-gain-min",
        "3",
        "--censor-rate",
        "0.1",
        "--trial-version",
        "1",
        stdout=out,
    )
    text = out.getvalue()
    assert "events/s" in text
    assert "synthesized 25 participants in trio-skill-formation version 1 (seed 4)" in text
    assert Participant.objects.filter(trial=live_trial, is_synthetic=True).count() == 25


def test_the_command_refuses_a_missing_trial_no_participants_and_a_draft(
    live_trial, sample_definition
):
    with pytest.raises(CommandError, match="no trial 'no-such-trial'"):
        call_command("synthesize", "no-such-trial", "--participants", "5", "--seed", "1")
    with pytest.raises(CommandError, match="positive"):
        call_command("synthesize", "trio-skill-formation", "--participants", "0", "--seed", "1")
    with pytest.raises(CommandError, match="version 9"):
        call_command(
            "synthesize",
            "trio-skill-formation",
            "--participants",
            "5",
            "--seed",
            "1",
            "--trial-version",
            "9",
        )
    trial_import(definition=TrialDefinition(dict(sample_definition.data, slug="draft-one"), {}))
    with pytest.raises(CommandError, match="is draft"):
        call_command("synthesize", "draft-one", "--participants", "5", "--seed", "1")
    with pytest.raises(CommandError, match="d must be"):
        call_command(
            "synthesize",
            "trio-skill-formation",
            "--participants",
            "5",
            "--seed",
            "1",
            "--effect-quiz-d",
            "7",
        )
    assert not Participant.objects.exists()


@pytest.mark.postgres
@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="the background writer is used on PostgreSQL only",
)
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_second_thread_writes_while_the_next_batch_is_made(live_trial):
    threads: list[str] = []
    summary = synthesize(
        live_trial,
        n=60,
        chunk_size=20,
        progress=lambda p: threads.append(threading.current_thread().name),
    )
    assert threads == ["synthesize-writer"] * 3
    assert Event.objects.filter(participant__trial=live_trial).count() == summary.events > 0
    assert StageRecord.objects.filter(participant__trial=live_trial).count() > 60
    # The runs' keys reached the events that quote them.
    run_ids = set(
        Event.objects.filter(
            participant__trial=live_trial, type="check", origin="server"
        ).values_list("payload__run_id", flat=True)
    )
    assert None not in run_ids
    assert (
        len(run_ids)
        == summary.runs
        - Event.objects.filter(participant__trial=live_trial, type="run", origin="server").count()
    )
