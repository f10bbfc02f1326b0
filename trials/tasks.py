"""Coding tasks as stored in a trial: what a participant may see, and what only the server
runs (hidden tests, reference solution). No Django import."""

from __future__ import annotations

import json
import secrets
import tomllib
from dataclasses import dataclass
from typing import Any

ENTRY_FILE = "main.py"
HARNESS_FILE = "_skilltrial_check.py"
MAX_MESSAGE = 300


@dataclass(frozen=True)
class Task:
    folder: str
    title: str
    instructions: str
    starter: str
    solution: str
    tests: str
    show: str  # "messages": test names and failure messages; "names": pass/fail only


def load_task(files: dict[str, str], folder: str) -> Task:
    folder = folder.rstrip("/")
    meta = tomllib.loads(files[f"{folder}/task.toml"])

    def text(key: str) -> str:
        rel = meta.get(key)
        return files.get(f"{folder}/{rel}", "") if rel else ""

    return Task(
        folder=folder,
        title=meta["title"],
        instructions=text("instructions"),
        starter=text("starter"),
        solution=text("solution"),
        tests=text("tests"),
        show=meta.get("show", "messages"),
    )


# The harness runs inside the sandbox. It reads the hidden tests into memory and deletes the
# file before the participant's code is imported, so that code cannot open it; results go
# to the real stdout after a random marker the participant's code never sees.
HARNESS = r"""
import contextlib, io, json, os, sys, traceback, types
marker = sys.stdin.readline().strip()
with open("tests.py", encoding="utf-8") as fh:
    source = fh.read()
os.remove("tests.py")
real_stdout = sys.stdout
results = []
module = types.ModuleType("tests")
module.__file__ = "<hidden tests>"
sys.modules["tests"] = module
sys.path.insert(0, os.getcwd())
def describe(exc):
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
try:
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(source, "<hidden tests>", "exec"), module.__dict__)
except BaseException as exc:
    message = "Your code could not be loaded: " + describe(exc)
    results.append({"name": "import", "passed": False, "message": message})
else:
    for name, fn in list(module.__dict__.items()):
        if not name.startswith("test_") or not callable(fn):
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                fn()
        except AssertionError as exc:
            results.append({"name": name, "passed": False, "message": str(exc)})
        except BaseException as exc:
            results.append({"name": name, "passed": False, "message": describe(exc)})
        else:
            results.append({"name": name, "passed": True, "message": ""})
real_stdout.write("\n" + marker + json.dumps(results) + "\n")
real_stdout.flush()
"""


@dataclass(frozen=True)
class CheckPlan:
    files: dict[str, str]
    entry: str
    stdin: str
    marker: str


def check_plan(task: Task, code: str) -> CheckPlan:
    marker = "@@skilltrial-results-" + secrets.token_hex(16) + "@@"
    return CheckPlan(
        files={ENTRY_FILE: code, "tests.py": task.tests, HARNESS_FILE: HARNESS},
        entry=HARNESS_FILE,
        stdin=marker + "\n",
        marker=marker,
    )


def readable_test_name(name: str) -> str:
    return name.removeprefix("test_").replace("_", " ").capitalize()


def parse_check_output(stdout: str, marker: str, show: str) -> list[dict[str, Any]] | None:
    """The test results the harness printed, as a participant may see them; None when the
    harness did not finish (time-out, crash, output cut)."""
    index = stdout.rfind(marker)
    if index < 0:
        return None
    try:
        raw = json.loads(stdout[index + len(marker) :].strip().splitlines()[0])
    except (ValueError, IndexError):
        return None
    results = []
    for item in raw:
        message = str(item.get("message", ""))[:MAX_MESSAGE] if show == "messages" else ""
        results.append(
            {
                "name": readable_test_name(str(item.get("name", "?"))),
                "passed": bool(item.get("passed")),
                "message": message,
            }
        )
    return results


def exception_type(stderr: str) -> str:
    """The exception named on the last line of a Python traceback, if any."""
    for line in reversed(stderr.strip().splitlines()):
        head = line.split(":", 1)[0].strip()
        if head and head.replace(".", "").replace("_", "").isalnum() and head[0].isupper():
            return head[:100]
        break
    return ""
