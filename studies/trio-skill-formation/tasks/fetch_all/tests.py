from checker import Fake, participant


def fake_fetch():
    """Stands in for the participant's ``fetch``: answers after 0.2 s on the checker's clock and
    raises the participant's own ``FetchError`` for every third item."""
    return Fake(
        "fetch",
        delay=0.2,
        returns=lambda item_id: f"item-{item_id}",
        raises=lambda item_id: (
            ("FetchError", f"item {item_id} is unavailable") if item_id % 3 == 0 else None
        ),
    )


def test_every_item_has_a_result():
    """Every item has a result"""
    fetch = fake_fetch()
    outcome = participant.trio("fetch_all", [1, 2, 4], fakes=[fetch])
    assert outcome.ok, f"fetch_all raised {outcome.error}"
    assert outcome.value == {1: "item-1", 2: "item-2", 4: "item-4"}, f"returned {outcome.value!r}"
    asked = sorted(call.args[0] for call in fetch.calls if call.args)
    assert asked == [1, 2, 4], f"fetch was called for {asked!r}"


def test_failures_are_marked_and_do_not_stop_the_others():
    """Failures are marked and do not stop the others"""
    fetch = fake_fetch()
    outcome = participant.trio("fetch_all", list(range(1, 11)), fakes=[fetch])
    assert outcome.ok, f"fetch_all raised {outcome.error}"
    expected = {i: ("FAILED" if i % 3 == 0 else f"item-{i}") for i in range(1, 11)}
    assert outcome.value == expected, f"returned {outcome.value!r}"
    assert not any(call.cancelled for call in fetch.calls), "a failure cancelled other fetches"


def test_fetches_run_concurrently():
    """The fetches run concurrently"""
    fetch = fake_fetch()
    outcome = participant.trio("fetch_all", list(range(1, 11)), fakes=[fetch])
    assert outcome.ok, f"fetch_all raised {outcome.error}"
    assert len(fetch.calls) == 10, f"fetch was called {len(fetch.calls)} times for 10 items"
    assert fetch.max_overlap == 10, (
        f"at most {fetch.max_overlap} fetches were running at the same time: "
        "are they running one after the other?"
    )
