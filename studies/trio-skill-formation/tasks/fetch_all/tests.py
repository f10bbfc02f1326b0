import time

import trio

import main


def test_every_item_has_a_result():
    results = trio.run(main.fetch_all, [1, 2, 4])
    assert results == {1: "item-1", 2: "item-2", 4: "item-4"}, f"returned {results!r}"


def test_failures_are_marked_and_do_not_stop_the_others():
    results = trio.run(main.fetch_all, list(range(1, 11)))
    expected = {i: ("FAILED" if i % 3 == 0 else f"item-{i}") for i in range(1, 11)}
    assert results == expected, f"returned {results!r}"


def test_fetches_run_concurrently():
    start = time.monotonic()
    results = trio.run(main.fetch_all, list(range(1, 11)))
    elapsed = time.monotonic() - start
    assert len(results) == 10, "every item needs a result"
    assert elapsed < 0.5, f"took {elapsed:.2f} s: are the fetches running one after the other?"
