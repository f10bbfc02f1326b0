"""The sample trial's quiz: valid, balanced as intended, and every stated output and time is
what Trio really does.

The code of each question runs with the installed Trio in a subprocess of the venv's Python,
under ``trio.testing.MockClock(autojump_threshold=0)``: sleeps take no real time and every
printed line is stamped with the exact virtual time at which it was printed. A program that
would never finish is stopped by a (virtual) time limit and reported as hung.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from quizzes.grading import grade, grade_human, normalise_output, total_score
from quizzes.quizfile import CATEGORIES, Question, Quiz, load_quiz, participant_view

QUIZ_FILE = Path(__file__).resolve().parents[2] / "studies" / "trio-skill-formation" / "quiz.toml"
CONCEPTS = {
    "async_await",
    "starting_tasks",
    "error_handling",
    "coroutines",
    "memory_channels",
    "nurseries",
    "sequential_vs_concurrent",
}
# The printed line whose time each numeric (timing) question asks for.
TIMED_LINE = {"start_time": "start 3", "end_time": "done"}
REPEATS = 8  # runs of each predict-the-output program: Trio may vary the order of ready tasks
HANG_LIMIT = 1000.0  # virtual seconds after which a program counts as hung

RUNNER = r"""
import contextlib, gc, json, sys, traceback, warnings
import trio
import trio.testing

real_run = trio.run


class Lines:
    # Each printed line with the virtual time at which it was printed (None outside trio.run).
    def __init__(self):
        self.lines, self.partial = [], ""

    def write(self, text):
        self.partial += text
        *done, self.partial = self.partial.split("\n")
        for line in done:
            try:
                now = trio.current_time()
            except RuntimeError:
                now = None
            self.lines.append([now, line])
        return len(text)

    def flush(self):
        pass


def run_once(code, limit):
    state = {"hung": False, "end": None}

    def fake_run(async_fn, *args, **kwargs):
        async def guarded():
            try:
                with trio.move_on_after(limit) as scope:
                    await async_fn(*args)
                state["hung"] = scope.cancelled_caught
            finally:
                state["end"] = trio.current_time()

        return real_run(guarded, clock=trio.testing.MockClock(autojump_threshold=0))

    out, error = Lines(), None
    trio.run = fake_run
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with contextlib.redirect_stdout(out):
                try:
                    exec(compile(code, "<question>", "exec"), {"__name__": "__main__"})
                except BaseException as exc:
                    error = "".join(traceback.format_exception(exc))
                gc.collect()
    finally:
        trio.run = real_run
    if out.partial:
        out.lines.append([None, out.partial])
    return {
        "lines": out.lines,
        "error": error,
        "hung": state["hung"],
        "end": state["end"],
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
    }


request = json.load(sys.stdin)
results = {
    name: [run_once(job["code"], request["limit"]) for _ in range(job["repeats"])]
    for name, job in request["jobs"].items()
}
json.dump(results, sys.stdout)
"""


@dataclass(frozen=True)
class Run:
    lines: list[tuple[float | None, str]]
    error: str | None
    hung: bool
    end: float | None
    warnings: list[str]

    @property
    def stdout(self) -> str:
        return "".join(f"{text}\n" for _, text in self.lines)

    def time_of(self, line: str) -> float | None:
        times = [t for t, text in self.lines if text == line]
        assert len(times) == 1, f"{line!r} printed {len(times)} times"
        return times[0]


def run_programs(jobs: dict[str, tuple[str, int]]) -> dict[str, list[Run]]:
    """Run each program (repeated) with the installed Trio under a mock clock."""
    request = {
        "limit": HANG_LIMIT,
        "jobs": {name: {"code": code, "repeats": n} for name, (code, n) in jobs.items()},
    }
    completed = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    raw: dict[str, list[dict[str, Any]]] = json.loads(completed.stdout)
    return {
        name: [
            Run(
                lines=[(t, text) for t, text in r["lines"]],
                error=r["error"],
                hung=r["hung"],
                end=r["end"],
                warnings=r["warnings"],
            )
            for r in runs
        ]
        for name, runs in raw.items()
    }


def replace_once(code: str, old: str, new: str) -> str:
    assert code.count(old) == 1, f"test setup: {old!r} must occur once"
    return code.replace(old, new)


@pytest.fixture(scope="module")
def quiz() -> Quiz:
    quiz, problems = load_quiz(QUIZ_FILE.read_text(encoding="utf-8"), "quiz.toml")
    assert problems == []
    return quiz


# Variants of the find-the-bug programs: each choice applied, and the fixes.
SEQUENTIAL_LOOP_CHOICES = {
    "a": "await nursery.start_soon(download, n)",
    "b": "nursery.start_soon(download, n)",
    "c": "nursery.start_soon(download(n))",
    "d": "download(n)",
}


def variants(quiz: Quiz) -> dict[str, str]:
    loop = quiz.question("bug_sequential_loop").code
    jobs = {
        f"bug_sequential_loop:{value}": replace_once(loop, "await download(n)", replacement)
        for value, replacement in SEQUENTIAL_LOOP_CHOICES.items()
    }
    jobs["never_awaited:fixed"] = replace_once(
        quiz.question("never_awaited").code, "        save(record)", "        await save(record)"
    )
    start = quiz.question("bug_start_soon_call").code
    start = replace_once(start, 'start_soon(greet("alice"))', 'start_soon(greet, "alice")')
    jobs["bug_start_soon_call:fixed"] = replace_once(
        start, 'start_soon(greet("bob"))', 'start_soon(greet, "bob")'
    )
    jobs["channel_hang:fixed"] = replace_once(
        quiz.question("channel_hang").code,
        "    for i in range(3):\n        await send_channel.send(i)",
        "    async with send_channel:\n        for i in range(3):\n"
        "            await send_channel.send(i)",
    )
    return jobs


@pytest.fixture(scope="module")
def runs(quiz: Quiz) -> dict[str, list[Run]]:
    jobs: dict[str, tuple[str, int]] = {
        q.key: (q.code, REPEATS if q.type == "predict_output" else 1)
        for q in quiz.questions
        if q.code
    }
    jobs.update({name: (code, 1) for name, code in variants(quiz).items()})
    return run_programs(jobs)


# --- the file ---------------------------------------------------------------------------------


def test_sample_quiz_has_no_problems(quiz):
    assert quiz.title
    assert len(quiz.questions) == 15


def test_points_categories_and_concepts_are_as_intended(quiz):
    scored = quiz.scored_questions
    assert len(scored) == 14
    assert [q.key for q in quiz.attention_checks] == ["attention"]
    assert quiz.max_points == 27
    assert all(1 <= q.points <= 3 for q in scored)
    assert any(q.points % 1 for q in scored), "half points are used"
    assert quiz.category_max_points() == {"code_reading": 15, "conceptual": 11, "debugging": 10.5}
    assert set(quiz.category_max_points()) == set(CATEGORIES) - {"code_writing"}
    assert sum(len(q.categories) == 2 for q in scored) >= 3
    assert {c for q in scored for c in q.concepts} == CONCEPTS
    for concept in CONCEPTS:
        assert sum(concept in q.concepts for q in scored) >= 2, concept


def test_formats_of_the_study_are_all_there(quiz):
    types = [q.type for q in quiz.scored_questions]
    assert {"single_choice", "multi_choice", "numeric", "predict_output", "free_text"} <= set(types)
    assert "code_writing" not in types  # left out, as in the study, to reduce syntax effects
    assert all(q.idk for q in quiz.scored_questions if q.type == "single_choice")
    free_text = [q for q in quiz.scored_questions if q.type == "free_text"]
    assert all(q.rubric and q.rubric.levels for q in free_text)


def test_keys_other_code_relies_on_are_kept(quiz):
    assert [q.key for q in quiz.questions[:2]] == ["nursery_exit", "start_soon_returns"]
    assert quiz.question("nursery_exit").answer == "b"
    assert quiz.question("start_soon_returns").answer == "c"
    assert quiz.question("never_awaited").type == "free_text"


def test_participant_view_of_every_question_leaks_nothing(quiz):
    for question in quiz.questions:
        view = participant_view(question)
        assert set(view) <= {"key", "type", "text", "code", "choices", "idk", "unit"}
        dumped = json.dumps(view)
        if question.type == "predict_output":
            assert normalise_output(question.expected) not in normalise_output(
                view.get("code", "") + view["text"]
            )
        if question.rubric:
            assert question.rubric.guidance not in dumped
            assert all(level.description not in dumped for level in question.rubric.levels)
        assert "answer =" not in dumped and '"answer"' not in dumped


def test_a_perfect_set_of_answers_scores_27_once_the_free_text_is_graded(quiz):
    grades = {q.key: grade(q, perfect_response(q)) for q in quiz.questions}
    provisional = total_score(grades, quiz)
    assert provisional.pending == ("never_awaited",)
    assert provisional.points == 25
    assert provisional.passed_attention_checks
    grades["never_awaited"] = grade_human(quiz.question("never_awaited"), 2)
    final = total_score(grades, quiz)
    assert final.final and final.points == final.max_points == 27


def perfect_response(question: Question) -> str | list[str]:
    if question.type == "multi_choice":
        return list(question.answers)
    if question.type == "predict_output":
        return question.expected
    if question.type == "free_text":
        return "It is a coroutine that never ran; await it."
    return str(question.answer)


# --- the code, run with Trio --------------------------------------------------------------------


def test_every_program_runs_under_the_harness(quiz, runs):
    for question in quiz.questions:
        if question.code:
            assert question.key in runs
            assert runs[question.key][0].end is not None, question.key


@pytest.mark.parametrize(
    "key", ["predict_sequential", "predict_nursery_order", "predict_cancelled", "channel_predict"]
)
def test_stated_output_is_what_trio_prints_every_time(quiz, runs, key):
    question = quiz.question(key)
    results = runs[key]
    assert len(results) == REPEATS
    assert all(r.error is None and not r.hung for r in results), results[0].error
    assert len({r.stdout for r in results}) == 1, "output depends on scheduling order"
    printed = results[0].stdout
    assert normalise_output(printed) == normalise_output(question.expected)
    assert grade(question, printed).correct is True


def test_every_predict_output_question_is_verified(quiz):
    verified = {"predict_sequential", "predict_nursery_order", "predict_cancelled"}
    verified |= {"channel_predict"}
    assert {q.key for q in quiz.questions if q.type == "predict_output"} == verified


def test_every_timing_answer_is_the_time_trio_prints_the_line(quiz, runs):
    numeric = [q for q in quiz.questions if q.type == "numeric"]
    assert {q.key for q in numeric} == set(TIMED_LINE)
    for question in numeric:
        run = runs[question.key][0]
        assert run.error is None and not run.hung
        printed_at = run.time_of(TIMED_LINE[question.key])
        assert printed_at == question.answer, question.key
        assert grade(question, f"{printed_at:g}").correct is True


def test_timing_program_ends_when_done_is_printed(runs):
    run = runs["end_time"][0]
    assert run.end == 7
    assert [(t, text) for t, text in run.lines if text.startswith("end")] == [
        (1, "end 1"),
        (3, "end 2"),
        (6, "end 3"),
        (7, "end 4"),
    ]


def test_sequential_loop_bug_takes_three_seconds_and_only_the_keyed_fix_takes_one(quiz, runs):
    original = runs["bug_sequential_loop"][0]
    assert original.error is None and original.end == 3
    finishing_in_one_second = []
    for value in SEQUENTIAL_LOOP_CHOICES:
        run = runs[f"bug_sequential_loop:{value}"][0]
        downloads = sorted(text for _, text in run.lines if text.startswith("downloaded"))
        if run.error is None and run.end == 1 and len(downloads) == 3:
            finishing_in_one_second.append(value)
    assert finishing_in_one_second == [quiz.question("bug_sequential_loop").answer]


def test_never_awaited_program_warns_and_the_fix_saves(runs):
    broken = runs["never_awaited"][0]
    assert broken.error is None
    assert broken.stdout == "all saved\n"
    assert "RuntimeWarning: coroutine 'save' was never awaited" in broken.warnings
    fixed = runs["never_awaited:fixed"][0]
    assert fixed.stdout == "saved a\nsaved b\nall saved\n"
    assert not any("never awaited" in w for w in fixed.warnings)


def test_start_soon_with_a_call_is_a_type_error_and_the_keyed_fix_works(quiz, runs):
    broken = runs["bug_start_soon_call"][0]
    assert broken.stdout == ""
    assert broken.error is not None and "TypeError" in broken.error
    fixed = runs["bug_start_soon_call:fixed"][0]
    assert fixed.error is None
    assert sorted(text for _, text in fixed.lines) == ["hello alice", "hello bob"]
    question = quiz.question("bug_start_soon_call")
    keyed_label = {c.value: c.label for c in question.choices}[str(question.answer)]
    assert 'start_soon(greet, "alice")' in keyed_label


def test_error_in_task_statements_match_what_happens(quiz, runs):
    run = runs["error_in_task"][0]
    assert run.error is not None
    truth = {
        "a": "fetched a" in run.stdout,
        # Nothing else was printed and the program stopped at the failure, 1 s in, although
        # a and c needed 2 s: they were cancelled.
        "b": run.stdout == "" and run.end == 1,
        "c": "done" in run.stdout,
        "d": "ExceptionGroup" in run.error and "KeyError: 'b'" in run.error,
        "e": run.end == 2,
    }
    assert {value for value, true in truth.items() if true} == set(
        quiz.question("error_in_task").answers
    )


def test_channel_program_hangs_because_the_send_side_stays_open(runs):
    broken = runs["channel_hang"][0]
    assert broken.hung
    assert broken.stdout == "got 0\ngot 1\ngot 2\n"
    fixed = runs["channel_hang:fixed"][0]
    assert not fixed.hung and fixed.error is None
    assert fixed.stdout == "got 0\ngot 1\ngot 2\ndone\n"
