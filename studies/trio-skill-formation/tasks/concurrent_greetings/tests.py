from checker import Fake, participant

EXPECTED = [
    "hello from alice (1)",
    "hello from alice (2)",
    "hello from bob (1)",
    "hello from alice (3)",
    "hello from bob (2)",
    "hello from bob (3)",
    "done",
]


def fake_greeter(slowdown):
    """Stands in for ``greeter``: takes ``delay * count * slowdown`` seconds on the checker's
    clock, so overlap and cancellation are seen from here."""
    return Fake("greeter", delay=lambda name, delay, count: delay * count * slowdown)


def test_prints_the_greetings_in_concurrent_order():
    """Prints the greetings in concurrent order"""
    outcome = participant.trio("main")
    assert outcome.ok, f"main raised {outcome.error}"
    assert outcome.lines == EXPECTED, f"printed {outcome.lines!r}"


def test_greeters_run_at_the_same_time():
    """The greeters run at the same time"""
    greeter = fake_greeter(1)
    outcome = participant.trio("main", fakes=[greeter])
    assert outcome.ok, f"main raised {outcome.error}"
    asked = sorted(tuple(call.args) for call in greeter.calls)
    assert asked == [("alice", 0.1, 3), ("bob", 0.25, 3)], f"greeter was called as {asked!r}"
    assert greeter.max_overlap == 2, "the greeters ran one after the other"
    assert outcome.lines == ["done"], f"printed {outcome.lines!r}"


def test_deadline_cancels_slow_greeters():
    """A one-second deadline cancels slow greeters"""
    greeter = fake_greeter(10)
    outcome = participant.trio("main", fakes=[greeter])
    assert outcome.ok, f"main raised {outcome.error}"
    assert outcome.lines[-1:] == ["timed out"], f"printed {outcome.lines!r}"
    assert greeter.calls and all(call.cancelled for call in greeter.calls), (
        "the slow greeters were not cancelled"
    )
    assert outcome.seconds < 1.5, f"main took {outcome.seconds:.2f} s despite the deadline"
