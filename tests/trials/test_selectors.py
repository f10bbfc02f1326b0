"""Which version of a trial a slug means on the statisticians' pages, exports and API."""

from __future__ import annotations

import pytest
from django.utils import timezone

from trials.models import Trial
from trials.selectors import live_trial as live_trial_of
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


@pytest.mark.django_db
def test_a_live_trial_is_read_whole_once_then_only_whether_it_is_still_live(live_trial):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from trials.services import trial_close

    first = live_trial_of(live_trial.slug)
    with CaptureQueriesContext(connection) as queries:
        again = live_trial_of(live_trial.slug)
    assert again is not None and again is not first  # an instance per call
    assert (again.pk, again.files, again.definition) == (first.pk, first.files, first.definition)
    assert len(queries.captured_queries) == 1
    assert '"files"' not in queries.captured_queries[0]["sql"]
    # A request that changed its copy in place changes nobody else's.
    again.definition["title"] = "changed in place"
    assert live_trial_of(live_trial.slug).definition["title"] != "changed in place"
    # A save, even of some fields only, is seen at once.
    live_trial.definition = {**live_trial.definition, "allow_phones": True}
    live_trial.save(update_fields=["definition"])
    assert live_trial_of(live_trial.slug).definition["allow_phones"] is True
    # Closing is seen at once: whether the trial is live is asked every time.
    trial_close(trial=live_trial)
    assert live_trial_of(live_trial.slug) is None
