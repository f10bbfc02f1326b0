"""Which version of a trial a slug means on the statisticians' pages, exports and API."""

from __future__ import annotations

import pytest
from django.utils import timezone

from trials.models import Trial
from trials.selectors import trial_for_slug

pytestmark = pytest.mark.django_db


def _version(live_trial: Trial, version: int, status: str, launched: bool) -> Trial:
    return Trial.objects.create(
        slug=live_trial.slug,
        version=version,
        title=live_trial.title,
        status=status,
        definition=live_trial.definition,
        definition_hash=f"h{version}",
        randomization_scheme=live_trial.randomization_scheme,
        launched_at=timezone.now() if launched else None,
    )


def test_live_then_newest_launched_then_newest_draft(live_trial):
    draft = _version(live_trial, 3, Trial.Status.DRAFT, launched=False)
    assert trial_for_slug(live_trial.slug) == live_trial
    Trial.objects.filter(pk=live_trial.pk).update(status=Trial.Status.CLOSED)
    closed = _version(live_trial, 2, Trial.Status.CLOSED, launched=True)
    assert trial_for_slug(live_trial.slug) == closed  # newest launched beats a newer draft
    Trial.objects.exclude(pk=draft.pk).filter(slug=live_trial.slug).update(launched_at=None)
    assert trial_for_slug(live_trial.slug) == draft
    assert trial_for_slug(live_trial.slug, 1).pk == live_trial.pk
    assert trial_for_slug(live_trial.slug, 9) is None
    assert trial_for_slug("no-such-trial") is None
