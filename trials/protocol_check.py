"""A protocol that contradicts itself is refused before it is stored or launched (no Django).

Three things are run in the sandbox, as a participant's code would be:

* each task's reference solution against the task's hidden tests: every test must pass (the
  AI arm is handed this solution, and a completion means "passes these tests");
* each task's starter against the same tests: it must *not* pass them all, or the task is
  complete before the participant writes a line;
* each predict-the-output quiz question's code: what it prints must equal ``expected`` as
  grading compares them. The quiz checks belong to the quiz file format, which the quizzes app
  registers (``trials.definition.stage_files``; ``quizzes.quizfile.sandbox``): trials never
  imports quizzes. They share the helpers below (``remembered``, ``guarded``, ...).

Hidden tests (of tasks and of code-writing quiz questions) are also parsed first, so a syntax
error or a file without tests is reported with its line without running anything. Every
failure is a located ``Problem`` like the definition's own. A sandbox that is unavailable or
stays busy is a problem too ("could not be checked"): the check never passes silently.

Sandbox work runs on two threads (one run slot each; slots are shared with participants).
Outcomes that *pass* the check are remembered in this process by the SHA-256 of the tests and
of the code, the limits and the sandbox configuration, so importing the same files again (as
the test suite does many times) costs no sandbox run; a refusal is always re-checked from
scratch. A failing reference solution is run a second time before it is reported, so that one
slow moment on a loaded machine does not refuse a sound protocol.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from trials import runner
from trials.definition import (
    TRIAL_FILE,
    Problem,
    TrialDefinition,
    locate,
    toml_line_index,
)
from trials.definition.stage_files import ProtocolJob, stage_file
from trials.judge import CheckVerdict, TestsProblem, judge_code, test_specs
from trials.sandbox_requests import dispatch, judge_request, on_the_runs_queue, verdict_from

__all__ = ["Job", "clip", "guarded", "last_line", "protocol_problems", "remembered", "sha"]

logger = logging.getLogger("skilltrial.protocol")

WORKERS = 2
CACHE_SIZE = 512
SHOWN_CHARS = 200

Job = ProtocolJob
R = TypeVar("R")

_cache: OrderedDict[Hashable, Any] = OrderedDict()
_cache_lock = threading.Lock()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def remembered(key: Hashable, compute: Callable[[], R], sound: Callable[[R], bool]) -> R:
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            cached: R = _cache[key]
            return cached
    value = compute()
    if sound(value):
        with _cache_lock:
            _cache[key] = value
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return value


def clip(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return clip(lines[-1].strip()) if lines else ""


def guarded(file: str, job: Job) -> Job:
    """``job``, with a sandbox that cannot run it reported as a problem of ``file``."""

    def run() -> list[Problem]:
        try:
            return job()
        except (runner.SandboxUnavailable, runner.PackageNotInstalled, OSError) as exc:
            logger.exception("protocol check of %s could not run", file)
            return [Problem(file, "", f"could not be checked: the sandbox failed ({exc})")]

    return run


# --- tasks ----------------------------------------------------------------------------------


def _judge(
    tests: str,
    code: str,
    limits: runner.Limits,
    config: runner.RunnerConfig,
    sound: Callable[[CheckVerdict], bool],
) -> CheckVerdict:
    def check() -> CheckVerdict:
        if on_the_runs_queue(config):
            # Solutions are participant-like code: they run where participants' code runs.
            request = judge_request(
                tests=tests, code=code, limits=limits, queue_timeout=config.queue_timeout_seconds
            )
            return verdict_from(dispatch(request))
        return judge_code(
            tests_source=tests, code=code, show="messages", limits=limits, config=config
        )

    return remembered(("check", sha(tests), sha(code), limits, config), check, sound)


def _no_verdict(verdict: CheckVerdict, limits: runner.Limits) -> str:
    if verdict.status == "busy":
        return (
            "could not be checked: every sandbox run slot stayed busy; import again when "
            "the server is quieter"
        )
    if verdict.status == "timeout":
        text = f"the tests did not finish within the time limit ({limits.wall_seconds:g} s)"
    else:
        text = "the tests could not be completed"
    tail = last_line(verdict.stderr)
    return f"{text}; its standard error ends: {tail}" if tail else text


def _solution_problems(
    file: str, tests: str, code: str, limits: runner.Limits, config: runner.RunnerConfig
) -> list[Problem]:
    def sound(v: CheckVerdict) -> bool:
        return v.all_passed

    verdict = _judge(tests, code, limits, config, sound)
    if not verdict.all_passed and verdict.status != "busy":
        # Confirm a failure before refusing: a timing test can miss once on a loaded machine.
        first, verdict = verdict, _judge(tests, code, limits, config, sound)
        if verdict.all_passed:
            logger.warning(
                "%s passed its tests only on the second run (%s): are they timing-sensitive?",
                file,
                first.message or ", ".join(t["name"] for t in first.tests if not t["passed"]),
            )
    if verdict.status != "ok":
        return [Problem(file, "", f"reference solution: {_no_verdict(verdict, limits)}")]
    return [
        Problem(
            file,
            "",
            f"test {t['name']!r} fails: {t['message'] or 'an assertion without a message'}",
        )
        for t in verdict.tests
        if not t["passed"]
    ]


def _starter_problems(
    file: str, tests: str, code: str, limits: runner.Limits, config: runner.RunnerConfig
) -> list[Problem]:
    verdict = _judge(tests, code, limits, config, lambda v: v.status == "ok" and not v.all_passed)
    if verdict.status == "busy":
        return [Problem(file, "", f"starter: {_no_verdict(verdict, limits)}")]
    if verdict.all_passed:
        return [
            Problem(
                file,
                "",
                "the starter already passes every test (a participant would complete the "
                "task without writing any code)",
            )
        ]
    return []


def _task_jobs(
    definition: TrialDefinition,
    folder: str,
    limits: runner.Limits,
    config: runner.RunnerConfig,
    problems: list[Problem],
) -> list[Job]:
    files = definition.files
    task_toml = f"{folder}/task.toml"
    if task_toml not in files:  # not a loaded folder: missing files are load_trial_dir's to report
        return []
    meta = tomllib.loads(files[task_toml])

    def path_of(key: str) -> str | None:
        rel = meta.get(key)
        return f"{folder}/{rel}" if isinstance(rel, str) and f"{folder}/{rel}" in files else None

    tests_file = path_of("tests")
    if tests_file is None:
        problems.append(
            Problem(
                task_toml,
                "tests",
                "a task needs hidden tests (Check runs them; the first check that passes "
                "them all completes the task)",
                locate(toml_line_index(files[task_toml]), ("tests",)),
            )
        )
        return []
    tests = files[tests_file]
    try:
        test_specs(tests)
    except TestsProblem as exc:
        problems.append(Problem(tests_file, "", str(exc), exc.line))
        return []
    jobs: list[Job] = []
    solution_file = path_of("solution")
    if solution_file is not None:
        solution = files[solution_file]
        jobs.append(
            guarded(
                solution_file,
                partial(_solution_problems, solution_file, tests, solution, limits, config),
            )
        )
    starter_file = path_of("starter")
    if starter_file is not None:
        starter = files[starter_file]
        jobs.append(
            guarded(
                starter_file,
                partial(_starter_problems, starter_file, tests, starter, limits, config),
            )
        )
    return jobs


# --- the whole protocol -----------------------------------------------------------------------


def protocol_problems(
    definition: TrialDefinition,
    *,
    limits: runner.Limits,
    config: runner.RunnerConfig | None = None,
    workers: int = WORKERS,
) -> list[Problem]:
    """Everything in a *validated* definition (``load_trial_dir``, which reports missing
    files; a file not among ``definition.files`` is skipped here) that contradicts itself when
    run (see the module docstring): unparsable tests first, then by stage order; empty when
    the protocol is sound. Takes seconds the first time (sandbox runs): call it outside any
    transaction."""
    config = config or runner.RunnerConfig.from_env()
    problems: list[Problem] = []
    jobs: list[Job] = []
    folders: dict[str, None] = {}
    quizzes: dict[str, None] = {}
    for stage in definition.data.get("stages", []):
        for folder in stage.get("tasks", []):
            folders.setdefault(folder.rstrip("/"), None)
        if stage.get("quiz"):
            quizzes.setdefault(stage["quiz"], None)
    for folder in folders:
        jobs += _task_jobs(definition, folder, limits, config, problems)
    for rel in quizzes:
        source = definition.files.get(rel)
        if source is not None:
            # The quiz format is the quizzes app's (trials never imports it): its checks are
            # looked up in the registry it fills, which fails loudly when it is not filled.
            jobs += stage_file("quiz").protocol_jobs(
                rel, source, limits=limits, config=config, problems=problems
            )
    if not jobs:
        return problems
    try:
        runner.sandbox_status(config)
    except runner.SandboxUnavailable as exc:
        return [
            *problems,
            Problem(
                TRIAL_FILE,
                "",
                f"the protocol could not be checked: the sandbox is unavailable ({exc}); "
                "reference solutions, starters and predict-the-output code run in it",
            ),
        ]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="protocol-check") as pool:
        for found in pool.map(lambda job: job(), jobs):
            problems.extend(found)
    return problems
