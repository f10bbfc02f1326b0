"""The participant's browser session: a signed cookie per trial naming the participant and
their current session token. Shared by the participant pages and the participant API."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare

from trials.models import Participant, Trial
from trials.services import participant_touch

COOKIE_SALT = "skilltrial.participant"
COOKIE_MAX_AGE = 60 * 60 * 24 * 30


def cookie_name(trial: Trial) -> str:
    return f"stp_{trial.slug}"


def waiting_cookie_name(trial: Trial) -> str:
    # A browser shown the resume page remembers whose session it asked for, so following a
    # stage link from there brings it back to the resume page, not to a new participant.
    return f"stw_{trial.slug}"


@dataclass(frozen=True)
class CookieSession:
    """What this browser's cookie says: the participant whose session it holds, or the one
    whose session has since moved to another browser (``superseded``)."""

    participant: Participant | None = None
    superseded: Participant | None = None


def cookie_session(request: HttpRequest, trial: Trial) -> CookieSession:
    # The signed value is "<participant id>:<session token>"; a cookie from before session
    # tokens carries the id alone and is good while the participant has no token.
    value = request.get_signed_cookie(
        cookie_name(trial), default=None, salt=COOKIE_SALT, max_age=COOKIE_MAX_AGE
    )
    if not value:
        return CookieSession()
    participant_id, _, token = value.partition(":")
    participant = (
        Participant.objects.select_related("current_stage")
        .filter(pk=participant_id, trial=trial)
        .first()
    )
    if participant is None:
        return CookieSession()
    participant.trial = trial  # the same row, already read: not twice per request
    if constant_time_compare(token, participant.session_token):
        return CookieSession(participant=participant)
    return CookieSession(superseded=participant)


def participant_from_cookie(request: HttpRequest, trial: Trial) -> Participant | None:
    """The participant whose session this browser holds (None if none, or if the session has
    moved to another browser), noted as still there."""
    participant = cookie_session(request, trial).participant
    if participant is not None:
        participant_touch(participant=participant)
    return participant


def remember_participant(
    response: HttpResponse, trial: Trial, participant: Participant
) -> HttpResponse:
    response.set_signed_cookie(
        cookie_name(trial),
        f"{participant.pk}:{participant.session_token}",
        salt=COOKIE_SALT,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
    )
    return response
