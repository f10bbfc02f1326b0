"""File formats of stages that trials defines but does not read itself.

A quiz stage names a quiz file (``quiz = "quiz.toml"``); what a quiz file may hold belongs to
the ``quizzes`` app, which builds on trials. So that trials never imports quizzes, the app
registers its format here from ``QuizzesConfig.ready()`` (the way pretix's plugins register
exporters), and the definition loader and the protocol check look it up by stage type.

A definition read before the format is registered fails with :class:`StageFileFormatMissing`
instead of skipping the quiz: a trial imported without its quiz checked could be launched with
a quiz that cannot be graded. No Django import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from trials.definition.checker import Problem

if TYPE_CHECKING:
    # Only for the hook's signature: the sandbox is not needed to read a definition.
    from trials import runner

__all__ = [
    "ProtocolJob",
    "StageFileFormat",
    "StageFileFormatMissing",
    "register_stage_file",
    "stage_file",
]

ProtocolJob = Callable[[], list[Problem]]


class LoadStageFile(Protocol):
    def __call__(self, source: str, file: str) -> list[Problem]:
        """Every problem of the file ``file`` whose text is ``source`` (empty when valid)."""
        ...


class ProtocolJobs(Protocol):
    def __call__(
        self,
        file: str,
        source: str,
        *,
        limits: runner.Limits,
        config: runner.RunnerConfig,
        problems: list[Problem],
    ) -> list[ProtocolJob]:
        """The sandbox runs that check a *valid* file (see ``trials.protocol_check``);
        problems found without running anything are appended to ``problems``."""
        ...


@dataclass(frozen=True)
class StageFileFormat:
    stage_type: str
    load: LoadStageFile
    protocol_jobs: ProtocolJobs


class StageFileFormatMissing(LookupError):
    """No app has registered the file format of a stage type that a definition uses."""


_formats: dict[str, StageFileFormat] = {}


def register_stage_file(
    stage_type: str, *, load: LoadStageFile, protocol_jobs: ProtocolJobs
) -> None:
    """Make ``stage_type``'s file readable by the definition loader and the protocol check.
    Registering again replaces the format (``ready()`` may run more than once in tests)."""
    _formats[stage_type] = StageFileFormat(stage_type, load, protocol_jobs)


def stage_file(stage_type: str) -> StageFileFormat:
    try:
        return _formats[stage_type]
    except KeyError:
        raise StageFileFormatMissing(
            f"no file format is registered for {stage_type} stages, so this definition's "
            f"{stage_type} file cannot be checked: the app that provides it registers it when "
            "Django starts (QuizzesConfig.ready() for quizzes); call django.setup() first"
        ) from None
