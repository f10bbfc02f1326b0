"""The scripted assistant: the offline default. It answers from material the experimenter
wrote for each task (``assistant.toml`` in the task folder), chosen by matching the question,
and with the task's reference solution when asked for code. Deterministic: the same question
and material give the same answer, whoever asks and whenever. Reported as model "scripted".

``assistant.toml``::

    fallback = "What to say when nothing matches."                # optional
    solution_intro = "Here is a complete solution:"              # optional
    decline = "I can't write it for you, but ..."                # optional
    [[entries]]
    key = "nursery"                                              # names the entry in logs
    keywords = ["nursery", "open_nursery", "at the same time"]   # words or phrases
    answer = \"\"\"Markdown text.\"\"\"

An entry scores the number of question words its keywords match (a phrase counts each of its
words, and matches only in order); the best score wins, the earlier entry on a tie; no match
gives the fallback. Words are compared in lower case, split at underscores, with a plural
``s`` dropped, so ``open_nursery`` matches "open nursery" and "nurseries" matches "nursery".
A request for code ("write the code", "give me the solution", "fix my code", ...) is
answered with the task's solution in a python block, or, when the arm's
``solution_on_request`` is false, with ``decline`` followed by the best-matching hint.
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trials.assistant.base import AttemptResult, ChatMessage, StreamEvent, stream_with_retries
from trials.assistant.settings import SCRIPTED_MODEL, AssistantSettings, SettingsProblem

MATERIAL_FILE = "assistant.toml"
DEFAULT_FALLBACK = (
    "I don't have a prepared answer for that. Try asking about a specific part of the task, "
    "a function you are unsure about, or an error message you are seeing."
)
DEFAULT_SOLUTION_INTRO = "Here is a complete solution for this task:"
DEFAULT_DECLINE = (
    "I can't write the code for you in this session, but I can explain the ideas you need."
)
MATERIAL_FIELDS = ("fallback", "solution_intro", "decline", "entries")
ENTRY_FIELDS = ("key", "keywords", "answer")
WORDS_PER_CHUNK = 3

# What participants type when they want the code itself rather than an explanation.
_CODE_REQUEST_PATTERNS = [
    r"\b(write|give|show|send|paste|provide|generate|tell)\b(\s+\w+){0,4}?\s+"
    r"(code|solution|answer|implementation|program)\b",
    r"\b(fix|correct|debug|finish|complete)\s+(my|the|this|our)\s+(code|program|function|solution)\b",
    r"\b(fix|solve|finish|complete|implement|do|write)\s+(it|this|that|the task|the exercise)"
    r"(\s+for me)?\s*[.!?]*\s*$",
    r"\b(solve|do|finish|complete|implement|write)\b.{0,30}\bfor me\b",
    r"\b(full|complete|whole|working|entire|finished|correct)\s+(code|solution|program|implementation)\b",
    r"\bjust\s+the\s+code\b",
]
CODE_REQUEST_RE = re.compile("|".join(f"(?:{p})" for p in _CODE_REQUEST_PATTERNS))


@dataclass(frozen=True)
class Entry:
    key: str
    keywords: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class ScriptedMaterial:
    """One task's material: entries, fallback and the reference solution (may be empty)."""

    entries: tuple[Entry, ...] = ()
    fallback: str = DEFAULT_FALLBACK
    solution: str = ""
    solution_intro: str = DEFAULT_SOLUTION_INTRO
    decline: str = DEFAULT_DECLINE
    _phrases: tuple[tuple[tuple[str, ...], ...], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        phrases = tuple(
            tuple(p for p in (tuple(words(k)) for k in entry.keywords) if p)
            for entry in self.entries
        )
        object.__setattr__(self, "_phrases", phrases)

    def choose(self, question: str, *, solution_on_request: bool = True) -> ScriptedAnswer:
        """The answer to ``question``: pure and deterministic."""
        best = self._best_entry(question)
        if self.solution.strip() and is_code_request(question):
            if solution_on_request:
                code = self.solution.rstrip("\n")
                return ScriptedAnswer(
                    "solution", f"{self.solution_intro.strip()}\n\n```python\n{code}\n```\n"
                )
            hint = f"\n\n{best.answer.strip()}" if best else ""
            return ScriptedAnswer(
                "decline" + (f":{best.key}" if best else ""), self.decline.strip() + hint
            )
        if best is None:
            return ScriptedAnswer("fallback", self.fallback.strip())
        return ScriptedAnswer(best.key, best.answer.strip())

    def _best_entry(self, question: str) -> Entry | None:
        asked = tuple(words(question))
        best: Entry | None = None
        best_score = 0
        for entry, phrases in zip(self.entries, self._phrases, strict=True):
            score = sum(len(p) for p in phrases if _contains(asked, p))
            if score > best_score:  # strictly greater: the earlier entry wins a tie
                best, best_score = entry, score
        return best


@dataclass(frozen=True)
class ScriptedAnswer:
    """``source`` names what was chosen: an entry's key, ``solution``, ``decline[:key]`` or
    ``fallback`` (for the event log)."""

    source: str
    text: str


class InvalidMaterial(ValueError):
    def __init__(self, problems: list[SettingsProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def words(text: str) -> Iterator[str]:
    """Lower-case words, split at underscores, with a plural ``s`` dropped."""
    for raw in re.findall(r"[a-z0-9]+", text.lower().replace("_", " ")):
        if len(raw) > 3 and raw.endswith("ies"):
            yield raw[:-3] + "y"
        elif len(raw) > 3 and raw.endswith("s") and not raw.endswith(("ss", "us", "is")):
            yield raw[:-1]
        else:
            yield raw


def _contains(asked: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(asked[i : i + n] == phrase for i in range(len(asked) - n + 1))


def is_code_request(question: str) -> bool:
    """Whether the participant asks for the code itself ("write the code for me", "give me
    the solution", "fix my code", ...) rather than for an explanation."""
    return CODE_REQUEST_RE.search(" ".join(question.lower().split())) is not None


def material_problems(text: str) -> list[SettingsProblem]:
    """Every problem of an ``assistant.toml``; empty when it is valid."""
    try:
        parse_material(text)
    except InvalidMaterial as exc:
        return exc.problems
    return []


def parse_material(text: str, *, solution: str = "") -> ScriptedMaterial:
    """The material in an ``assistant.toml`` text; raises :class:`InvalidMaterial`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidMaterial([SettingsProblem((), f"not valid TOML: {exc}")]) from None
    problems: list[SettingsProblem] = []
    for key in raw:
        if key not in MATERIAL_FIELDS:
            problems.append(
                SettingsProblem(
                    (key,), f"unknown field '{key}' (allowed: {', '.join(MATERIAL_FIELDS)})"
                )
            )
    texts: dict[str, str] = {}
    for key in ("fallback", "solution_intro", "decline"):
        if key in raw:
            if isinstance(raw[key], str) and raw[key].strip():
                texts[key] = raw[key]
            else:
                problems.append(SettingsProblem((key,), "must be a non-empty string"))
    entries = _entries(raw.get("entries", []), problems)
    if problems:
        raise InvalidMaterial(problems)
    return ScriptedMaterial(entries=tuple(entries), solution=solution, **texts)


def _entries(raw: Any, problems: list[SettingsProblem]) -> list[Entry]:
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        problems.append(SettingsProblem(("entries",), "must be an array of tables ([[entries]])"))
        return []
    entries: list[Entry] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        path: tuple[str | int, ...] = ("entries", i)
        for key in item:
            if key not in ENTRY_FIELDS:
                problems.append(
                    SettingsProblem(
                        (*path, key), f"unknown field '{key}' (allowed: {', '.join(ENTRY_FIELDS)})"
                    )
                )
        key = item.get("key")
        if not isinstance(key, str) or not re.match(r"^[a-z][a-z0-9_]*$", key):
            problems.append(
                SettingsProblem((*path, "key"), "must be a lower-case key like 'nursery_basics'")
            )
            key = ""
        elif key in seen or key in ("solution", "fallback") or key.startswith("decline"):
            problems.append(SettingsProblem((*path, "key"), f"key {key!r} is used already"))
        seen.add(key)
        keywords = item.get("keywords")
        if (
            not isinstance(keywords, list)
            or not keywords
            or not all(isinstance(k, str) and any(words(k)) for k in keywords)
        ):
            problems.append(
                SettingsProblem(
                    (*path, "keywords"), "must be a non-empty array of words or phrases"
                )
            )
            keywords = []
        answer = item.get("answer")
        if not isinstance(answer, str) or not answer.strip():
            problems.append(SettingsProblem((*path, "answer"), "must be a non-empty string"))
            answer = ""
        entries.append(Entry(key=key, keywords=tuple(keywords), answer=answer))
    return entries


def load_material(files: Mapping[str, str], folder: str) -> ScriptedMaterial:
    """A task's material from a trial's files (as stored: path -> text): the folder's
    ``assistant.toml`` (optional: without it, only the fallback and the solution) and the
    solution named in its ``task.toml``."""
    folder = folder.rstrip("/")
    solution = ""
    task_toml = files.get(f"{folder}/task.toml")
    if task_toml is not None:
        rel = tomllib.loads(task_toml).get("solution")
        if isinstance(rel, str) and rel:
            solution = files.get(f"{folder}/{rel}", "")
    text = files.get(f"{folder}/{MATERIAL_FILE}")
    if text is None:
        return ScriptedMaterial(solution=solution)
    return parse_material(text, solution=solution)


def chunks(text: str, words_per_chunk: int = WORDS_PER_CHUNK) -> list[str]:
    """The text in small pieces that join back to exactly the text."""
    pieces = re.findall(r"\s*\S+", text)
    out = ["".join(pieces[i : i + words_per_chunk]) for i in range(0, len(pieces), words_per_chunk)]
    rest = text[len("".join(out)) :]
    if rest:
        if out:
            out[-1] += rest
        else:
            out.append(rest)
    return out


def last_question(messages: Sequence[ChatMessage]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            return message["content"]
    return ""


class ScriptedProvider:
    """Answers from a task's :class:`ScriptedMaterial`, streamed in small pieces (with
    ``chunk_delay`` seconds between them, 0 by default) so the streaming path is the same as
    with a real model. Token counts are estimates (``usage_estimated``)."""

    name = "scripted"

    def __init__(
        self, material: ScriptedMaterial | None = None, *, chunk_delay: float = 0.0
    ) -> None:
        self.material = material or ScriptedMaterial()
        self.chunk_delay = chunk_delay

    def answer(
        self, messages: Sequence[ChatMessage], settings: AssistantSettings
    ) -> ScriptedAnswer:
        return self.material.choose(
            last_question(messages), solution_on_request=settings.solution_on_request
        )

    def stream(
        self, system: str, messages: Sequence[ChatMessage], settings: AssistantSettings
    ) -> Iterator[StreamEvent]:
        started = time.monotonic()
        answer = self.answer(messages, settings)

        def attempt(result: AttemptResult) -> Generator[str, None, None]:
            result.model = SCRIPTED_MODEL
            result.stop_reason = "end_turn"
            for i, piece in enumerate(chunks(answer.text)):
                if i and self.chunk_delay:
                    time.sleep(self.chunk_delay)
                yield piece

        return stream_with_retries(
            attempt, settings, system=system, messages=messages, started=started
        )
