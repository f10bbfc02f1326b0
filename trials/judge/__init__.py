"""Hidden-test verdicts that participant code cannot forge or read (no Django import).

A Check runs two sandboxes at once (``runner.run_pair``): the participant's program, under a
small agent that imports ``main.py`` and answers calls, and the checker, which holds the hidden
tests (sent on its standard input, never written to disk) and drives the program over two pipes
of plain JSON values. Only the checker's own standard output carries the verdicts, and the
server accepts them only for exactly the test functions it finds in the tests' source. The
participant's process never holds the tests, their names, the expected values or the channel
that reports results; its output during a Check is not shown.

Test authors write plain functions named ``test_*`` (a docstring's first line is the label the
participant sees, else the name made readable) and talk to the participant's code through
``from checker import participant, Fake`` (see ``sandbox/checker.py`` and the README).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from trials import runner

__all__ = [
    "CheckVerdict",
    "TestSpec",
    "TestsProblem",
    "judge_code",
    "test_specs",
]

ENTRY_FILE = "main.py"
AGENT_FILE = "_skilltrial_agent.py"
DRIVER_FILE = "_skilltrial_checker.py"
MAX_MESSAGE = 300
_SANDBOX = Path(__file__).with_name("sandbox")

VerdictStatus = Literal["ok", "busy", "timeout", "error"]


class TestsProblem(ValueError):
    """The hidden tests' source is unusable (a syntax error, or no test function)."""

    __test__ = False

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class TestSpec:
    __test__ = False
    name: str
    label: str


def _readable(name: str) -> str:
    return name.removeprefix("test_").replace("_", " ").capitalize()


def test_specs(source: str) -> list[TestSpec]:
    """The test functions of a hidden-test file in order, with the label a participant sees;
    read from the syntax tree, never by running the file."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise TestsProblem(f"syntax error: {exc.msg}", exc.lineno) from None
    specs = []
    seen: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test_"
        ):
            if isinstance(node, ast.AsyncFunctionDef):
                raise TestsProblem(f"test {node.name!r} must be a plain function", node.lineno)
            if node.name in seen:
                raise TestsProblem(f"test {node.name!r} is defined twice", node.lineno)
            seen.add(node.name)
            doc = ast.get_docstring(node)
            label = doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""
            specs.append(TestSpec(node.name, label[:200] or _readable(node.name)))
    if not specs:
        raise TestsProblem("no test functions (named test_...) were found")
    return specs


# Names that start with "test" in a module the test suite imports: not tests themselves.
test_specs.__test__ = False  # type: ignore[attr-defined]


@cache
def _sandbox_source(name: str) -> str:
    return (_SANDBOX / name).read_text(encoding="utf-8")


def program_files(code: str) -> dict[str, str]:
    """What the participant's sandbox holds during a Check: their code and the agent."""
    return {
        ENTRY_FILE: code,
        AGENT_FILE: _sandbox_source("agent.py"),
        "wire.py": _sandbox_source("wire.py"),
    }


def checker_files() -> dict[str, str]:
    """What the checker's sandbox holds as files (the tests come on its standard input)."""
    return {
        DRIVER_FILE: _sandbox_source("driver.py"),
        "checker.py": _sandbox_source("checker.py"),
        "wire.py": _sandbox_source("wire.py"),
    }


@dataclass(frozen=True)
class CheckVerdict:
    status: VerdictStatus
    tests: list[dict[str, Any]] = field(default_factory=list)
    """``{"name", "label", "passed", "message"}`` per expected test, in the file's order."""
    message: str = ""
    """What to tell the participant when there is no verdict (busy, time-out, error)."""
    duration_seconds: float = 0.0
    sandbox: str = "bwrap"
    stderr: str = ""
    """The participant program's standard error (its own output: no test text is there)."""

    @property
    def all_passed(self) -> bool:
        return self.status == "ok" and bool(self.tests) and all(t["passed"] for t in self.tests)

    @property
    def passed(self) -> int:
        return sum(1 for t in self.tests if t["passed"])


def _parse_verdicts(stdout: str, specs: list[TestSpec], show: str) -> list[dict[str, Any]] | None:
    """The checker's results, only if they name exactly the expected tests."""
    lines = stdout.strip().splitlines()
    if not lines:
        return None
    try:
        raw = json.loads(lines[-1])["results"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(raw, list) or len(raw) != len(specs):
        return None
    by_name = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        by_name[item["name"]] = item
    if set(by_name) != {spec.name for spec in specs}:
        return None
    tests = []
    for spec in specs:
        item = by_name[spec.name]
        message = str(item.get("message", ""))[:MAX_MESSAGE] if show == "messages" else ""
        tests.append(
            {
                "name": spec.label,
                "test": spec.name,
                "passed": item.get("passed") is True,
                "message": message,
            }
        )
    return tests


def judge_code(
    *,
    tests_source: str,
    code: str,
    show: str = "messages",
    limits: runner.Limits | None = None,
    config: runner.RunnerConfig | None = None,
    tag: str = "",
    queue_timeout: float | None = None,
) -> CheckVerdict:
    """Run ``tests_source`` against ``code`` in two sandboxes and return the verdict. Raises
    TestsProblem when the tests' source is unusable (caught at import time normally)."""
    specs = test_specs(tests_source)
    limits = limits or runner.Limits()
    request = {
        "tests": tests_source,
        "names": [spec.name for spec in specs],
        "start_timeout": min(10.0, limits.wall_seconds),
    }
    checker_limits = runner.Limits(
        cpu_seconds=limits.cpu_seconds,
        wall_seconds=limits.wall_seconds + 2,
        memory_bytes=max(limits.memory_bytes, 256 * 1024 * 1024),
    )
    pair = runner.run_pair(
        program_files=program_files(code),
        program_entry=AGENT_FILE,
        checker_files=checker_files(),
        checker_entry=DRIVER_FILE,
        checker_stdin=json.dumps(request),
        limits=limits,
        checker_limits=checker_limits,
        config=config,
        tag=tag,
        queue_timeout=queue_timeout,
    )
    program, checker = pair.program, pair.checker
    common: dict[str, Any] = {
        "duration_seconds": checker.duration_seconds,
        "sandbox": checker.sandbox,
        "stderr": program.stderr,
    }
    if checker.reason == "queue_timeout":
        return CheckVerdict(status="busy", message=checker.message, **common)
    tests = _parse_verdicts(checker.stdout, specs, show) if checker.ok else None
    if tests is None:
        if checker.timed_out:
            return CheckVerdict(
                status="timeout",
                message="The check took too long and was stopped; no test counted as passed.",
                **common,
            )
        return CheckVerdict(
            status="error",
            message="The check could not be completed; no test counted as passed.",
            **common,
        )
    if program.timed_out:
        # Killed at the CPU or wall-time limit: a time-out, whatever the tests saw of it.
        return CheckVerdict(
            status="timeout",
            tests=tests,
            message="Your code ran for too long (or used too much CPU time) and was stopped.",
            **common,
        )
    return CheckVerdict(status="ok", tests=tests, **common)
