"""One person, one allocation: a trial's ``[participants]`` rules, the resume code, the keyed
hashes of where a visitor comes from, and the likely-duplicate flags (README, "One person, one
allocation").

The resume code is not stored: it is a keyed hash (HMAC with ``SECRET_KEY``) of the
participant's secret id, so the database alone cannot give it away, and the page can show it
again to the browser that holds the session. Addresses and browsers are kept only as keyed
hashes too, never raw, and only to flag likely duplicates; the flags are computed when they are
read, from the stored hashes, so they always follow the trial's own window.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare, salted_hmac

from trials.definition import (
    DEFAULT_DUPLICATE_SIGNALS,
    DUPLICATE_SIGNALS,
    PARTICIPANT_DEFAULTS,
)
from trials.models import Participant, Trial

# 31 characters with no 0/O, 1/I/L: easy to copy by hand. 8 of them are ~40 bits, and wrong
# guesses are limited per participant (services.RESUME_MAX_FAILURES). The events the rules
# here log are registered, server-only, in trials.event_types.EVENT_TYPES.
RESUME_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
RESUME_CODE_LENGTH = 8
_RESUME_SALT = "skilltrial.identity.resume-code"


@dataclass(frozen=True)
class ParticipantRules:
    """The trial's ``[participants]`` table, with the defaults for trials stored before it
    existed (they identified people by PROLIFIC_PID)."""

    external_id: str
    require_external_id: bool
    external_id_pattern: str
    resume_idle_minutes: int
    duplicate_window_hours: float

    @classmethod
    def of(cls, trial: Trial) -> ParticipantRules:
        table = {**PARTICIPANT_DEFAULTS, **(trial.definition.get("participants") or {})}
        return cls(
            external_id=str(table["external_id"]),
            require_external_id=bool(table["require_external_id"]),
            external_id_pattern=str(table["external_id_pattern"]),
            resume_idle_minutes=int(table["resume_idle_minutes"]),
            duplicate_window_hours=float(table["duplicate_window_hours"]),
        )

    @property
    def idle_takeover(self) -> timedelta | None:
        """How long the first browser must have been silent before another may take over
        without the code; None: never."""
        if self.resume_idle_minutes <= 0:
            return None
        return timedelta(minutes=self.resume_idle_minutes)

    @property
    def window(self) -> timedelta:
        return timedelta(hours=self.duplicate_window_hours)


# --- who is visiting ------------------------------------------------------------------------


@dataclass(frozen=True)
class Visitor:
    """Where a request comes from, as keyed hashes (empty when unknown)."""

    address_hash: str = ""
    browser_hash: str = ""


def keyed_hash(purpose: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` with SECRET_KEY: comparable, not reversible without the key
    (a plain hash of an IPv4 address is reversed by trying all 2**32)."""
    return salted_hmac(f"skilltrial.identity.{purpose}", value, algorithm="sha256").hexdigest()


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or behind ``TRUSTED_PROXY_HOPS`` reverse proxies the
    address the nearest of them saw (X-Forwarded-For is set by the client too, so only the
    entries our own proxies appended are believed)."""
    hops = int(getattr(settings, "TRUSTED_PROXY_HOPS", 0) or 0)
    remote = str(request.META.get("REMOTE_ADDR", "") or "")
    if hops <= 0:
        return remote
    forwarded = [
        part.strip()
        for part in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")
        if part.strip()
    ]
    if len(forwarded) < hops:
        return remote
    return forwarded[-hops]


def visitor_of(request: HttpRequest) -> Visitor:
    address = client_address(request)
    agent = str(request.META.get("HTTP_USER_AGENT", ""))[:512]
    language = str(request.META.get("HTTP_ACCEPT_LANGUAGE", ""))[:128]
    return Visitor(
        address_hash=keyed_hash("address", address) if address else "",
        browser_hash=keyed_hash("browser", f"{agent}\n{language}") if agent else "",
    )


def participant_with_external_id(trial: Trial, value: str) -> Participant | None:
    """The participant of this trial version with this external id, if any."""
    if not value or len(value) > 64 or "\x00" in value:  # PostgreSQL text holds no NUL
        return None
    return (
        Participant.objects.select_related("trial", "current_stage")
        .filter(trial=trial, external_id=value)
        .first()
    )


# --- the resume code ------------------------------------------------------------------------


def _code_with(participant_id: str, secret: str) -> str:
    digest = salted_hmac(_RESUME_SALT, participant_id, secret=secret, algorithm="sha256").digest()
    number = int.from_bytes(digest[:16], "big")
    chars = []
    for _ in range(RESUME_CODE_LENGTH):
        number, index = divmod(number, len(RESUME_ALPHABET))
        chars.append(RESUME_ALPHABET[index])
    return "".join(chars)


def resume_code(participant: Participant) -> str:
    """The participant's resume code, e.g. ``K7QM4TXP`` (shown as ``K7QM-4TXP``)."""
    return _code_with(participant.pk, settings.SECRET_KEY)


def display_code(code: str) -> str:
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def normalise_code(text: str) -> str:
    """What a person typed, as a code: capitals, no spaces or hyphens."""
    return "".join(ch for ch in text.upper() if ch.isalnum())[: RESUME_CODE_LENGTH * 2]


def resume_code_matches(participant: Participant, typed: str) -> bool:
    """Compare in constant time, with the current SECRET_KEY and its fallbacks (so codes
    written down before a key rotation still work)."""
    given = normalise_code(typed)
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    matched = False
    for secret in secrets:
        matched |= constant_time_compare(given, _code_with(participant.pk, secret))
    return matched


# --- likely duplicates ----------------------------------------------------------------------


@dataclass(frozen=True)
class EntryRow:
    """One entry (participant) of any version of a trial, as duplicate detection needs it."""

    key: str
    code: str
    version: int
    created_at: datetime
    external_id: str = ""
    address_hash: str = ""
    browser_hash: str = ""


@dataclass(frozen=True)
class DuplicateFlag:
    """Why an entry looks like a repeat of an earlier one, and of which (the earliest)."""

    signals: tuple[str, ...]
    of_code: str
    of_version: int

    def of_label(self, version: int) -> str:
        """The earlier entry's code, prefixed by its version when that is another one."""
        return self.of_code if self.of_version == version else f"v{self.of_version}:{self.of_code}"


def find_duplicates(rows: Iterable[EntryRow], *, window: timedelta) -> dict[str, DuplicateFlag]:
    """Flag every entry that repeats an earlier one (the first of each group is not flagged):

    * ``external_id``: the same external id as an earlier entry (in another version: within
      one version the database refuses it);
    * ``browser``: the same address *and* browser (user agent + languages) as an earlier entry
      less than ``window`` before — a browser alone is shared by too many people to count;
    * ``address``: the same address as an earlier entry less than ``window`` before, from
      another browser (shared networks make this the weakest signal).

    Pure; linear in the entries (times the browsers seen at one address within the window).
    """
    ordered = sorted(rows, key=lambda r: (r.created_at, r.key))
    first_with_id: dict[str, EntryRow] = {}
    # address -> browser -> entries within the window, oldest first
    recent: dict[str, dict[str, deque[EntryRow]]] = defaultdict(dict)
    flags: dict[str, DuplicateFlag] = {}
    for row in ordered:
        matches: dict[str, EntryRow] = {}
        if row.external_id:
            earlier = first_with_id.setdefault(row.external_id, row)
            if earlier is not row:
                matches["external_id"] = earlier
        if row.address_hash:
            by_browser = recent[row.address_hash]
            since = row.created_at - window
            for browser in list(by_browser):
                queue = by_browser[browser]
                while queue and queue[0].created_at <= since:
                    queue.popleft()
                if not queue:
                    del by_browser[browser]
                    continue
                signal = "browser" if browser and browser == row.browser_hash else "address"
                best = matches.get(signal)
                if best is None or (queue[0].created_at, queue[0].key) < (
                    best.created_at,
                    best.key,
                ):
                    matches[signal] = queue[0]
            by_browser.setdefault(row.browser_hash, deque()).append(row)
        if matches:
            earliest = min(matches.values(), key=lambda r: (r.created_at, r.key))
            flags[row.key] = DuplicateFlag(
                signals=tuple(s for s in DUPLICATE_SIGNALS if s in matches),
                of_code=earliest.code,
                of_version=earliest.version,
            )
    return flags


def duplicate_flags(trial: Trial) -> dict[str, DuplicateFlag]:
    """The likely duplicates among this version's participants, by participant id, judged
    against every version of the trial (a read: two queries)."""
    rules = ParticipantRules.of(trial)
    rows = [
        EntryRow(pk, code, version, created, external, address, browser)
        for pk, code, version, created, external, address, browser in Participant.objects.filter(
            trial__slug=trial.slug
        ).values_list(
            "pk",
            "public_code",
            "trial__version",
            "created_at",
            "external_id",
            "address_hash",
            "browser_hash",
        )
    ]
    everyone = find_duplicates(rows, window=rules.window)
    mine = {row.key for row in rows if row.version == trial.version}
    return {key: flag for key, flag in everyone.items() if key in mine}


def duplicate_rule(plan: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The plan's rule for duplicates: ("keep" | "exclude", the signals that count)."""
    rule = str(plan.get("duplicates", "keep"))
    signals = plan.get("duplicate_signals", DEFAULT_DUPLICATE_SIGNALS)
    return rule, tuple(s for s in DUPLICATE_SIGNALS if s in (signals or []))


def is_excluded_duplicate(flag: DuplicateFlag | None, plan: dict[str, Any]) -> bool:
    """Whether the plan's rule takes this entry out of the analysed populations."""
    if flag is None:
        return False
    rule, signals = duplicate_rule(plan)
    return rule == "exclude" and any(s in signals for s in flag.signals)
