"""Writes, one module per responsibility; each public function is one transaction and the
database constraints back every rule that must hold under concurrency.

- :mod:`.trials`: importing, launching and closing a trial version
- :mod:`.enrollment`: arriving, the session moving between browsers, consent, screening
- :mod:`.allocation`: assigning an arm, once, with gap-free sequence numbers
- :mod:`.stages`: the stage engine (entering, moving on, deadlines)
- :mod:`.coding`: autosaved code, Run and Check in the sandbox
- :mod:`.assistant`: the assistant arm (budgets, the streamed exchange, reply provenance)
- :mod:`.events`: telemetry from the browser and the events the server logs

Arrows inside: errors <- events <- stages <- allocation/enrollment/coding <- assistant,
trials. This module re-exports the names callers used from the former ``trials.services``.
"""

from trials.services.allocation import allocation_assign
from trials.services.assistant import ReplyProvenance
from trials.services.enrollment import (
    EXTERNAL_ID_FIELDS,
    MAX_ID_CHARS,
    RESUME_FAILURE_WINDOW,
    RESUME_MAX_FAILURES,
    SECOND_BROWSER_LOG_EVERY,
    SEEN_EVERY,
    Arrival,
    EntryRefused,
    ResumeRefused,
    entry_ids,
    participant_arrive,
    participant_consent,
    participant_enter,
    participant_note_second_browser,
    participant_resume,
    participant_screen,
    participant_take_over,
    participant_touch,
    takeover_wait,
)
from trials.services.errors import StageConflict, TrialError, TrialFrozen
from trials.services.events import register_provenance
from trials.services.stages import (
    DEADLINE_GRACE,
    participant_complete_stage,
    participant_sync_clock,
    stage_questions,
)
from trials.services.trials import (
    ImportResult,
    ProtocolBroken,
    trial_close,
    trial_import,
    trial_launch,
)

# Telemetry sits below the assistant (which logs through it), so it cannot import the
# assistant's reply matching; the package, which holds both, plugs it in once here.
register_provenance(ReplyProvenance)

__all__ = [
    "DEADLINE_GRACE",
    "EXTERNAL_ID_FIELDS",
    "MAX_ID_CHARS",
    "RESUME_FAILURE_WINDOW",
    "RESUME_MAX_FAILURES",
    "SECOND_BROWSER_LOG_EVERY",
    "SEEN_EVERY",
    "Arrival",
    "EntryRefused",
    "ImportResult",
    "ProtocolBroken",
    "ResumeRefused",
    "StageConflict",
    "TrialError",
    "TrialFrozen",
    "allocation_assign",
    "entry_ids",
    "participant_arrive",
    "participant_complete_stage",
    "participant_consent",
    "participant_enter",
    "participant_note_second_browser",
    "participant_resume",
    "participant_screen",
    "participant_sync_clock",
    "participant_take_over",
    "participant_touch",
    "stage_questions",
    "takeover_wait",
    "trial_close",
    "trial_import",
    "trial_launch",
]
