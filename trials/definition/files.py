"""A trial folder on disk: reading it safely, writing it back, and its protocol hash.

A trial folder holds ``trial.toml`` and the files it references (consent and debrief text,
task folders, the quiz file). :func:`load_trial_dir` reads it and returns either a
:class:`TrialDefinition` or raises :class:`DefinitionInvalid` carrying *every* problem found,
each located by file, field path and (where the TOML allows) line.

The normalised form is plain JSON-safe data with every default filled in and no ``None``
values, so that exporting it back to TOML and importing again gives the same form and the
same protocol hash. No Django import here: the importer service stores what this returns.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import tomli_w

from trials.definition.checker import Checker, Path_, Problem, toml_problem
from trials.definition.schema import TrialTables

TRIAL_FILE = "trial.toml"
MAX_FILE_BYTES = 1_000_000


class DefinitionInvalid(Exception):
    """The definition has problems; ``problems`` lists all of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the trial definition:\n{lines}")


@dataclass(frozen=True)
class TrialDefinition:
    """A valid, normalised trial definition and the text of every file it references."""

    data: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return str(self.data["slug"])

    @property
    def version(self) -> int:
        return int(self.data["version"])

    def protocol_hash(self) -> str:
        return protocol_hash(self.data, self.files)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def protocol_hash(data: dict[str, Any], files: dict[str, str]) -> str:
    """SHA-256 over the normalised definition and the content of every referenced file."""
    file_digests = {
        path: hashlib.sha256(text.encode("utf-8")).hexdigest() for path, text in files.items()
    }
    payload = canonical_json({"definition": data, "files": file_digests})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class TrialFolder:
    """The files of one trial folder, read only inside it and only as UTF-8 text of a bounded
    size; every file read is kept (``files``) for the definition and its protocol hash."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[Problem] = []
        self.files: dict[str, str] = {}

    def read_text(self, rel: str, check: Checker, path: Path_) -> str | None:
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts or not rel:
            check.error(path, f"file path {rel!r} must be relative and inside the trial folder")
            return None
        target = self.root / pure
        if not target.is_file():
            check.error(path, f"file {rel!r} not found in {self.root}")
            return None
        if target.stat().st_size > MAX_FILE_BYTES:
            check.error(path, f"file {rel!r} is larger than {MAX_FILE_BYTES} bytes")
            return None
        try:
            text = target.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            check.error(path, f"file {rel!r} is not UTF-8 text ({exc.reason} at byte {exc.start})")
            return None
        self.files[str(pure)] = text
        return text

    def read_folder(self, rel: str, check: Checker, path: Path_) -> list[str]:
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts or not rel:
            check.error(path, f"folder path {rel!r} must be relative and inside the trial folder")
            return []
        target = self.root / pure
        if not target.is_dir():
            check.error(path, f"folder {rel!r} not found in {self.root}")
            return []
        names: list[str] = []
        for child in sorted(target.rglob("*")):
            if child.is_file() and "__pycache__" not in child.parts:
                child_rel = str(PurePosixPath(rel) / child.relative_to(target).as_posix())
                if self.read_text(child_rel, check, path) is not None:
                    names.append(child_rel)
        return names

    # sections ---------------------------------------------------------------------------


def load_trial_dir(root: Path | str) -> TrialDefinition:
    """Read and validate a trial folder; raise DefinitionInvalid listing every problem."""
    folder = TrialFolder(Path(root))
    trial_path = folder.root / TRIAL_FILE
    if not folder.root.is_dir():
        raise DefinitionInvalid([Problem(str(folder.root), "", "trial folder not found")])
    if not trial_path.is_file():
        raise DefinitionInvalid([Problem(TRIAL_FILE, "", f"no {TRIAL_FILE} in {folder.root}")])
    try:
        source = trial_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionInvalid(
            [Problem(TRIAL_FILE, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
        ) from None
    try:
        raw = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionInvalid([toml_problem(TRIAL_FILE, exc)]) from None
    check = Checker(TRIAL_FILE, source, folder.problems)
    data = TrialTables(folder).trial(check, raw)
    if folder.problems:
        raise DefinitionInvalid(folder.problems)
    return TrialDefinition(data=data, files=dict(sorted(folder.files.items())))


def write_trial_dir(definition: TrialDefinition, root: Path | str) -> None:
    """Write a folder that re-imports to the same normalised definition (and hash)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / TRIAL_FILE).write_text(tomli_w.dumps(definition.data), encoding="utf-8")
    for rel, text in definition.files.items():
        target = root / PurePosixPath(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
