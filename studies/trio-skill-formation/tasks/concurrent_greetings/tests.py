import contextlib
import io
import time

import trio

import main

EXPECTED = [
    "hello from alice (1)",
    "hello from alice (2)",
    "hello from bob (1)",
    "hello from alice (3)",
    "hello from bob (2)",
    "hello from bob (3)",
    "done",
]


def run_main():
    out = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stdout(out):
        trio.run(main.main)
    return out.getvalue().splitlines(), time.monotonic() - start


def test_prints_the_greetings_in_concurrent_order():
    lines, _ = run_main()
    assert lines == EXPECTED, f"printed {lines!r}"


def test_greeters_run_at_the_same_time():
    lines, elapsed = run_main()
    assert lines[:6] and sorted(lines[:6]) == sorted(EXPECTED[:6]), "the greetings are missing"
    # One after the other would take 0.3 + 0.75 = 1.05 s; together about 0.75 s.
    assert elapsed < 0.95, f"took {elapsed:.2f} s: are the greeters running one after the other?"


def test_deadline_cancels_slow_greeters():
    original = main.greeter

    async def slow(name, delay, count):
        await original(name, delay * 10, count)

    main.greeter = slow
    try:
        lines, elapsed = run_main()
    finally:
        main.greeter = original
    assert lines[-1:] == ["timed out"], f"printed {lines!r}"
    assert elapsed < 1.5
