"""The errors every trial service raises; their messages are safe to show."""

from __future__ import annotations


class TrialError(Exception):
    """A request the trial's state does not allow; the message is safe to show."""


class TrialFrozen(TrialError):
    pass


class StageConflict(TrialError):
    """The participant is no longer at the stage the request was made for."""
