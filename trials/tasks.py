"""Coding tasks as stored in a trial: what a participant may see, and what only the server
runs (hidden tests, reference solution; ``trials.judge`` runs them). No Django import."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

ENTRY_FILE = "main.py"


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


def exception_type(stderr: str) -> str:
    """The exception named on the last line of a Python traceback, if any."""
    for line in reversed(stderr.strip().splitlines()):
        head = line.split(":", 1)[0].strip()
        if head and head.replace(".", "").replace("_", "").isalnum() and head[0].isupper():
            return head[:100]
        break
    return ""
