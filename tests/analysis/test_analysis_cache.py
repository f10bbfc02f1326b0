"""The trial's analysis is computed once per state of its data (analysis.cache): a second
request reuses it, new data or another seed compute afresh, the report's HTML is reused too,
and the pages and the API serve the cached result."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import caches
from django.test import Client, override_settings
from django.utils import timezone

from analysis import analyze, cache, report, synthetic
from analysis.datasets import analysis_input
from quizzes.models import ItemResponse
from trials.event_types import EventName
from trials.models import Event, Participant, Trial
from trials.roles import STATISTICIAN

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def own_cache() -> Iterator[None]:
    """A private LocMemCache per test, so nothing leaks between tests or from other files."""
    backend = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    with override_settings(CACHES={"default": {**backend, "LOCATION": "analysis-cache-tests"}}):
        caches["default"].clear()
        yield
        caches["default"].clear()


@pytest.fixture
def trial(live_trial: Trial) -> Trial:
    synthetic.synthesize_trial(live_trial, participants=40, seed=1, events_per_participant=0)
    return Trial.objects.get(pk=live_trial.pk)


@pytest.fixture
def spy() -> Iterator[mock.MagicMock]:
    with mock.patch.object(analyze, "run_analysis", wraps=analyze.run_analysis) as wrapped:
        yield wrapped


def fresh(trial: Trial) -> Trial:
    """The trial as the next request would load it."""
    return Trial.objects.get(pk=trial.pk)


def without_time(document: dict[str, Any]) -> dict[str, Any]:
    meta = {**document["meta"], "snapshot": dict(document["meta"]["snapshot"])}
    del meta["snapshot"]["taken_at"]
    return {**document, "meta": meta}


def test_the_second_call_reuses_the_first_result(trial: Trial, spy: mock.MagicMock) -> None:
    inp, results = cache.cached_analysis(trial)
    again_inp, again = cache.cached_analysis(fresh(trial))
    assert spy.call_count == 1
    # The second came out of the cache (pickled and back) and is the same analysis.
    assert again.to_json() == results.to_json()
    assert again_inp.frame.equals(inp.frame)
    assert again.meta["snapshot"]["taken_at"] == results.meta["snapshot"]["taken_at"]
    # ... and the same as computing it afresh, apart from when it was computed.
    direct = analyze.run_analysis(analysis_input(trial), seed=0)
    assert without_time(direct.to_json()) == without_time(results.to_json())


def test_input_and_results_survive_pickling(trial: Trial) -> None:
    inp, results = cache.cached_analysis(trial)
    pickled = pickle.dumps((inp, results), pickle.HIGHEST_PROTOCOL)
    inp2, results2 = pickle.loads(pickled)  # noqa: S301 - what LocMemCache does with them
    assert results2.to_json() == results.to_json()
    assert report.render_report(inp2, results2, self_contained=True) == report.render_report(
        inp, results, self_contained=True
    )


def test_a_new_participant_invalidates(trial: Trial, spy: mock.MagicMock) -> None:
    before = cache.fingerprint(trial)
    cache.cached_analysis(trial)
    Participant.objects.create(trial=trial)
    assert cache.fingerprint(fresh(trial)) != before
    cache.cached_analysis(fresh(trial))
    assert spy.call_count == 2


def test_a_new_item_grade_invalidates(trial: Trial, spy: mock.MagicMock) -> None:
    _, results = cache.cached_analysis(trial)
    before = cache.fingerprint(trial)
    # A grader's mark changes one response's points and grading time, nothing else.
    item = ItemResponse.objects.filter(participant__trial=trial, max_points__gt=0).first()
    assert item is not None
    item.points = 0.0 if item.points else item.max_points
    item.graded_at = timezone.now()
    item.save(update_fields=["points", "graded_at"])
    assert cache.fingerprint(fresh(trial)) != before
    _, after = cache.cached_analysis(fresh(trial))
    assert spy.call_count == 2
    assert after.meta["snapshot"]["sha256"] != results.meta["snapshot"]["sha256"]


def test_changed_points_alone_invalidate(trial: Trial) -> None:
    # Even an update that leaves every timestamp alone (a bulk correction) is noticed.
    before = cache.fingerprint(trial)
    ItemResponse.objects.filter(participant__trial=trial, max_points__gt=0).update(points=0)
    assert cache.fingerprint(fresh(trial)) != before


def test_a_paste_invalidates(trial: Trial) -> None:
    # The data sets count pastes, so a new paste must change the fingerprint.
    before = cache.fingerprint(trial)
    participant = Participant.objects.filter(trial=trial).first()
    assert participant is not None
    Event.objects.create(
        participant=participant, type=EventName.PASTE, client_id="paste-1", payload={"length": 9}
    )
    assert cache.fingerprint(fresh(trial)) != before


def test_the_seed_is_part_of_the_key(trial: Trial, spy: mock.MagicMock) -> None:
    assert cache.fingerprint(trial, seed=0) != cache.fingerprint(trial, seed=1)
    assert cache.fingerprint(trial, seed=0) == cache.fingerprint(fresh(trial), seed=0)
    _, zero = cache.cached_analysis(trial, seed=0)
    _, one = cache.cached_analysis(trial, seed=1)
    assert (zero.seed, one.seed) == (0, 1)
    assert spy.call_count == 2
    cache.cached_analysis(fresh(trial), seed=0)
    cache.cached_analysis(fresh(trial), seed=1)
    assert spy.call_count == 2


def test_the_rendered_report_is_reused(trial: Trial, spy: mock.MagicMock) -> None:
    links = [("Results as JSON", "/analysis/x/results.json")]
    with mock.patch.object(report, "render_report", wraps=report.render_report) as render:
        page = cache.cached_report_html(trial, self_contained=False, links=links)
        assert cache.cached_report_html(fresh(trial), self_contained=False, links=links) == page
        assert render.call_count == 1
        file = cache.cached_report_html(fresh(trial), self_contained=True)
        assert file != page and "Results as JSON" not in file
        assert render.call_count == 2
        other = cache.cached_report_html(fresh(trial), self_contained=False, links=[])
        assert render.call_count == 3 and "Results as JSON" not in other
    assert spy.call_count == 1  # one analysis behind all three


def test_a_failed_analysis_is_not_cached(live_trial: Trial, spy: mock.MagicMock) -> None:
    for _ in range(2):
        with pytest.raises(analyze.AnalysisError):
            cache.cached_analysis(fresh(live_trial))
    assert spy.call_count == 2


def test_pages_and_api_share_the_cached_analysis(trial: Trial, spy: mock.MagicMock) -> None:
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    user = User.objects.create_user("stan", password="pw-12345-xyz")
    user.groups.add(Group.objects.get_or_create(name=STATISTICIAN)[0])
    client = Client()
    client.force_login(user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    first = client.get(f"/analysis/{trial.slug}/results.json")
    assert first.status_code == 200
    assert client.get(f"/analysis/{trial.slug}/results.json?version=1").json() == first.json()
    assert api.get(f"/api/trials/{trial.slug}/results/").json() == first.json()
    page = client.get(f"/analysis/{trial.slug}/report/")
    assert page.status_code == 200 and "Results as JSON" in page.content.decode()
    download = client.get(f"/analysis/{trial.slug}/report/?download=1")
    assert download["Content-Disposition"] == f'attachment; filename="{trial.slug}-v1-report.html"'
    assert spy.call_count == 1
    Participant.objects.create(trial=trial)
    assert client.get(f"/analysis/{trial.slug}/results.json").status_code == 200
    assert spy.call_count == 2
