"""Checks of a quiz file that run code, plugged into ``trials.protocol_check`` (which runs
them with the task checks when a protocol is imported or launched):

* each predict-the-output question's code is run in the sandbox: what it prints must equal
  ``expected`` as grading compares them (:func:`quizzes.quizfile.model.normalise_output`);
* each code-writing question's hidden tests are parsed, so a syntax error or a file without
  tests is reported at the question without running anything.

Passing runs are remembered with the task checks' (``trials.protocol_check.remembered``).
No Django import.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from quizzes.quizfile.model import Question, normalise_output
from quizzes.quizfile.reader import load_quiz
from trials import runner
from trials.definition.checker import Path_, Problem, format_path, locate, toml_line_index
from trials.definition.stage_files import ProtocolJob
from trials.judge import TestsProblem, test_specs
from trials.protocol_check import clip, guarded, last_line, remembered, sha
from trials.sandbox_requests import dispatch, on_the_runs_queue, program_request, result_from
from trials.tasks import ENTRY_FILE


def _run(code: str, limits: runner.Limits, config: runner.RunnerConfig, expected: str) -> Any:
    def sound(result: runner.RunResult) -> bool:
        return result.reason == "exited" and _matches(result.stdout, expected)

    def run() -> runner.RunResult:
        if on_the_runs_queue(config):
            request = program_request(
                code=code, limits=limits, queue_timeout=config.queue_timeout_seconds
            )
            return result_from(dispatch(request))
        return runner.run_python({ENTRY_FILE: code}, ENTRY_FILE, limits=limits, config=config)

    return remembered(("run", sha(code), limits, config), run, sound)


def _matches(printed: str, expected: str) -> bool:
    return normalise_output(printed) == normalise_output(expected)


def _first_difference(printed: str, expected: str) -> str:
    got = normalise_output(printed).split("\n")
    want = normalise_output(expected).split("\n")
    for number, (a, b) in enumerate(zip(got, want, strict=False), start=1):
        if a != b:
            return f"line {number} is {clip(a)!r} where 'expected' has {clip(b)!r}"
    if len(got) > len(want):
        return f"it prints more lines than 'expected' has, from line {len(want) + 1} on"
    return f"it prints {len(got)} line(s) where 'expected' has {len(want)}"


def _predict_problems(
    file: str,
    lines: dict[Path_, int],
    index: int,
    question: Question,
    limits: runner.Limits,
    config: runner.RunnerConfig,
) -> list[Problem]:
    def problem(field: str, message: str) -> Problem:
        path: Path_ = ("questions", index, field)
        return Problem(file, format_path(path), message, locate(lines, path))

    result: runner.RunResult = _run(question.code, limits, config, question.expected)
    if result.reason == "queue_timeout":
        return [
            problem(
                "code",
                "could not be checked: every sandbox run slot stayed busy; import again when "
                "the server is quieter",
            )
        ]
    if result.reason != "exited":
        stopped = result.message or "the code was stopped"
        return [problem("code", f"{stopped} (limit {limits.wall_seconds:g} s): no output to check")]
    if result.stdout_truncated:
        return [problem("code", "the code prints more than the sandbox keeps")]
    if _matches(result.stdout, question.expected):
        return []
    message = (
        f"the code prints {clip(result.stdout)!r}, not what 'expected' says: "
        + _first_difference(result.stdout, question.expected)
    )
    if result.exit_code != 0 and last_line(result.stderr):
        message += f" (it ended with an error: {last_line(result.stderr)})"
    return [problem("expected", message)]


def quiz_protocol_jobs(
    file: str,
    source: str,
    *,
    limits: runner.Limits,
    config: runner.RunnerConfig,
    problems: list[Problem],
) -> list[ProtocolJob]:
    """The sandbox runs that check a quiz file already found valid by the definition loader;
    unparsable hidden tests are appended to ``problems`` without running anything."""
    quiz, _ = load_quiz(source, file)  # valid: the definition was checked before
    lines = toml_line_index(source)
    jobs: list[ProtocolJob] = []
    for i, question in enumerate(quiz.questions):
        if question.type == "predict_output" and question.code.strip():
            jobs.append(
                guarded(file, partial(_predict_problems, file, lines, i, question, limits, config))
            )
        elif question.type == "code_writing":
            try:
                test_specs(question.tests)
            except TestsProblem as exc:
                path: Path_ = ("questions", i, "tests")
                where = f"line {exc.line} of the tests: " if exc.line else ""
                problems.append(
                    Problem(file, format_path(path), f"{where}{exc}", locate(lines, path))
                )
    return jobs
