"""Import and launch refuse a protocol that contradicts itself when run: a reference solution
failing its hidden tests, a starter passing them, a predict-the-output question whose stated
output is not what its code prints, hidden tests that do not parse (trials/protocol_check.py).

Everything runs in the real sandbox. Outcomes that pass are remembered per process, so only
the part each test breaks is run again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from quizzes.quizfile import load_quiz
from trials import protocol_check, runner, sandbox_requests
from trials.definition import StageFileFormatMissing, TrialDefinition, load_trial_dir, stage_files
from trials.models import Trial
from trials.runner.slots import SlotPool
from trials.services import ProtocolBroken, trial_import, trial_launch

SOLUTION = "tasks/fetch_all/solution.py"
# A reference solution that marks failed fetches with the wrong word: one test fails, quickly.
MARKED_FAILED = 'results[item_id] = "FAILED"'
MARKED_WRONG = 'results[item_id] = "ERROR"'


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"test setup: {old!r} must occur once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def import_refused(trial_dir: Path) -> str:
    with pytest.raises(CommandError) as caught:
        call_command("import_trial", str(trial_dir))
    assert not Trial.objects.exists()
    return str(caught.value)


def question_location(quiz_file: Path, key: str, field: str) -> tuple[int, int]:
    """The index of question ``key`` and the line where its ``field`` is written."""
    lines = quiz_file.read_text(encoding="utf-8").splitlines()
    start = lines.index(f'key = "{key}"')
    index = sum(1 for line in lines[:start] if line.strip() == "[[questions]]") - 1
    line = next(n for n in range(start, len(lines)) if lines[n].startswith(f"{field} = "))
    return index, line + 1


@pytest.mark.django_db
def test_a_reference_solution_failing_a_test_is_refused_with_the_test_and_its_message(trial_dir):
    replace_once(trial_dir / SOLUTION, MARKED_FAILED, MARKED_WRONG)
    message = import_refused(trial_dir)
    assert message.startswith("1 problem(s) in the trial protocol:")
    # The participant's dict, in the order the fetches finished.
    assert (
        "  - tasks/fetch_all/solution.py: test 'Failures are marked and do not stop the others' "
        "fails: returned {"
    ) in message
    assert "3: 'ERROR'" in message


@pytest.mark.django_db
def test_a_starter_that_already_passes_is_refused_and_the_stored_draft_is_kept(trial_dir):
    draft = trial_import(definition=load_trial_dir(trial_dir)).trial
    warmup = trial_dir / "tasks" / "warmup"
    (warmup / "starter.py").write_text((warmup / "solution.py").read_text())
    (trial_dir / "consent.md").write_text("Changed alongside the starter.\n")
    with pytest.raises(ProtocolBroken) as caught:
        trial_import(definition=load_trial_dir(trial_dir))
    assert [str(p) for p in caught.value.problems] == [
        "tasks/warmup/starter.py: the starter already passes every test (a participant would "
        "complete the task without writing any code)"
    ]
    stored = Trial.objects.get()
    assert stored.definition_hash == draft.definition_hash
    assert stored.files == draft.files


@pytest.mark.django_db
def test_a_wrong_expected_output_is_refused_at_the_line_of_the_question(trial_dir):
    quiz = trial_dir / "quiz.toml"
    replace_once(quiz, "finish y\ntotal 30\n", "finish y\ntotal 3\n")
    index, line = question_location(quiz, "predict_sequential", "expected")
    message = import_refused(trial_dir)
    assert (
        f"  - quiz.toml:{line}: questions[{index}].expected: the code prints "
        "'begin x\\nfinish x\\nbegin y\\nfinish y\\ntotal 30\\n', not what 'expected' says: "
        "line 5 is 'total 30' where 'expected' has 'total 3'"
    ) in message


@pytest.mark.django_db
def test_hidden_tests_that_cannot_be_used_are_refused_with_file_and_line(trial_dir):
    tasks = trial_dir / "tasks"
    (tasks / "fetch_all" / "tests.py").write_text(
        "from checker import participant\n\n\ndef test_all(:\n    pass\n"
    )
    (tasks / "warmup" / "tests.py").write_text("def helper():\n    pass\n")
    message = import_refused(trial_dir)
    assert "  - tasks/fetch_all/tests.py:4: syntax error: " in message
    assert "  - tasks/warmup/tests.py: no test functions (named test_...) were found" in message
    assert message.startswith("2 problem(s)")


@pytest.mark.django_db
def test_code_writing_tests_that_do_not_parse_are_refused_at_the_question(trial_dir):
    quiz = trial_dir / "quiz.toml"
    with quiz.open("a", encoding="utf-8") as out:
        out.write(
            '\n[[questions]]\nkey = "write_double"\ntype = "code_writing"\n'
            'text = "Write `double(x)`."\npoints = 2\ncategories = ["code_writing"]\n'
            'tests = """\nfrom checker import participant\ndef test_doubles(:\n    pass\n"""\n'
        )
    index, line = question_location(quiz, "write_double", "tests")
    message = import_refused(trial_dir)
    assert (
        f"  - quiz.toml:{line}: questions[{index}].tests: line 2 of the tests: syntax " in message
    )


@pytest.mark.django_db
def test_the_sample_trial_imports_and_launches(sample_definition):
    result = trial_import(definition=sample_definition)
    assert result.action == "created"
    assert trial_launch(trial=result.trial).status == "live"


@pytest.mark.django_db
def test_launch_refuses_a_draft_broken_in_the_database(sample_definition):
    trial = trial_import(definition=sample_definition).trial
    files = dict(trial.files)
    files[SOLUTION] = files[SOLUTION].replace(MARKED_FAILED, MARKED_WRONG)
    Trial.objects.filter(pk=trial.pk).update(files=files)
    with pytest.raises(ProtocolBroken, match=r"tasks/fetch_all/solution\.py: test 'Failures are"):
        trial_launch(trial=trial)
    with pytest.raises(CommandError, match=r"1 problem.*\n.*solution\.py: test 'Failures are"):
        call_command("launch_trial", "trio-skill-formation")
    trial.refresh_from_db()
    assert (trial.status, trial.protocol_hash, trial.randomization_seed) == ("draft", "", "")


# --- the check itself (no database) ---------------------------------------------------------


def sandbox_jobs(definition: TrialDefinition) -> tuple[int, int]:
    """(hidden-test checks, plain runs) the sample needs: solution and starter per task, one
    run per predict-the-output question."""
    tasks = {t for stage in definition.data["stages"] for t in stage.get("tasks", [])}
    quiz, _ = load_quiz(definition.files["quiz.toml"], "quiz.toml")
    return 2 * len(tasks), sum(q.type == "predict_output" for q in quiz.questions)


def test_an_unavailable_sandbox_refuses_instead_of_passing(sample_definition):
    config = runner.RunnerConfig(mode="bwrap", bwrap=None)
    problems = protocol_check.protocol_problems(
        sample_definition, limits=runner.Limits(), config=config
    )
    assert [str(p) for p in problems] == [
        "trial.toml: the protocol could not be checked: the sandbox is unavailable (bubblewrap "
        "(bwrap) is not installed); reference solutions, starters and predict-the-output code "
        "run in it"
    ]


def test_a_quiz_is_not_skipped_when_no_app_registered_its_checks(
    sample_definition: TrialDefinition, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the quizzes app had not loaded: refusing to check is better than passing unchecked.
    monkeypatch.setattr(stage_files, "_formats", {})
    with pytest.raises(StageFileFormatMissing, match="quiz"):
        protocol_check.protocol_problems(sample_definition, limits=runner.Limits())


def test_a_busy_sandbox_refuses_every_run_instead_of_passing(sample_definition, tmp_path):
    config = runner.RunnerConfig(
        max_concurrent=1,
        queue_timeout_seconds=0.0,
        state_dir=str(tmp_path / "runs"),
        lock_dir=str(tmp_path / "slots"),
    )
    pool = SlotPool(Path(config.lock_dir), 1, first=config.uid_base if os.geteuid() == 0 else 0)
    with pool.acquire(timeout=0):
        problems = protocol_check.protocol_problems(
            sample_definition, limits=runner.Limits(), config=config
        )
    checks, runs = sandbox_jobs(sample_definition)
    assert len(problems) == checks + runs
    assert all(
        "could not be checked: every sandbox run slot stayed busy" in str(p) for p in problems
    )
    assert {p.file for p in problems} >= {SOLUTION, "tasks/fetch_all/starter.py", "quiz.toml"}


SMALL_QUIZ = """
title = "Small"

[[questions]]
key = "hello"
type = "predict_output"
text = "What does this print?"
code = "print('hello')"
expected = "hello"
points = 1
categories = ["code_reading"]
"""


def test_a_second_check_of_the_same_files_runs_nothing_in_the_sandbox(
    sample_definition, monkeypatch
):
    # The warm-up task and a one-question quiz: quick to run.
    stages = [s for s in sample_definition.data["stages"] if s["key"] in ("warmup", "quiz")]
    definition = TrialDefinition(
        data=dict(sample_definition.data, stages=stages),
        files=dict(sample_definition.files, **{"quiz.toml": SMALL_QUIZ}),
    )
    calls: list[str] = []
    real_judge, real_run = protocol_check.judge_code, runner.run_python

    def judge(**kwargs):
        calls.append("check")
        return real_judge(**kwargs)

    def run(*args, **kwargs):
        calls.append("run")
        return real_run(*args, **kwargs)

    monkeypatch.setattr(protocol_check, "judge_code", judge)
    monkeypatch.setattr(sandbox_requests, "judge_code", judge)  # through the runs queue
    monkeypatch.setattr(runner, "run_python", run)
    # Limits of their own: nothing is remembered for them yet.
    limits = runner.Limits(wall_seconds=14.5)
    assert protocol_check.protocol_problems(definition, limits=limits) == []
    assert sorted(calls) == ["check", "check", "run"]
    calls.clear()
    assert protocol_check.protocol_problems(definition, limits=limits) == []
    assert calls == []
