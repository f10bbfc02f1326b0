"""Fair scheduling of runs: in order of arrival, one run at a time per participant, so one
participant flooding Run cannot starve another's Check; a Check is never refused for load."""

from __future__ import annotations

import contextlib
import math
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trials.runner.slots import QueueTimeout, SlotPool, queue_position

from .conftest import wait_for


@pytest.fixture
def lock_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="skilltrial-slots-") as path:
        yield Path(path) / "slots"


def hold(pool: SlotPool, tag: str, release: threading.Event, log: list[str]) -> threading.Thread:
    def body() -> None:
        with pool.acquire(timeout=math.inf, tag=tag):
            log.append(tag)
            release.wait(10)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_a_participants_runs_go_one_at_a_time_even_with_free_slots(lock_dir: Path) -> None:
    pool = SlotPool(lock_dir, 2)
    release = threading.Event()
    log: list[str] = []
    first = hold(pool, "alice", release, log)
    assert wait_for(lambda: log == ["alice"], 5)
    # A slot is free, but alice's second run waits behind her first one.
    with pytest.raises(QueueTimeout), pool.acquire(timeout=0.3, tag="alice"):
        pass
    # Anyone else gets the free slot at once.
    with pool.acquire(timeout=0.3, tag="bob") as slot:
        assert slot.index == 1
    release.set()
    first.join()


def test_a_flood_of_runs_holds_one_slot_and_another_participant_is_not_starved(
    lock_dir: Path,
) -> None:
    pool = SlotPool(lock_dir, 2)
    release = threading.Event()
    log: list[str] = []
    flood = [hold(pool, "flooder", release, log) for _ in range(6)]
    assert wait_for(lambda: log == ["flooder"], 5)
    time.sleep(0.2)
    assert log == ["flooder"]  # the other five wait for the first, not for slots
    started = time.monotonic()
    with pool.acquire(timeout=5, tag="checker"):
        waited = time.monotonic() - started
    assert waited < 5  # it got the second slot, not a refusal
    release.set()
    for thread in flood:
        thread.join(15)
    assert log == ["flooder"] * 6


def test_runs_start_in_order_of_arrival_and_know_their_position(lock_dir: Path) -> None:
    pool = SlotPool(lock_dir, 1)
    release_holder = threading.Event()
    log: list[str] = []
    holder = hold(pool, "holder", release_holder, log)
    assert wait_for(lambda: log == ["holder"], 5)
    releases = {name: threading.Event() for name in ("w1", "w2", "w3")}
    waiters = []
    for name in ("w1", "w2", "w3"):
        waiters.append(hold(pool, name, releases[name], log))
        assert wait_for(lambda name=name: queue_position(lock_dir, name) is not None, 5)
    assert [queue_position(lock_dir, n) for n in ("w1", "w2", "w3")] == [0, 1, 2]
    assert queue_position(lock_dir, "holder") is None  # running, not waiting
    release_holder.set()
    for name in ("w1", "w2", "w3"):
        assert wait_for(lambda name=name: log[-1] == name, 5), log
        releases[name].set()
    holder.join()
    for thread in waiters:
        thread.join()
    assert log == ["holder", "w1", "w2", "w3"]


def test_a_ticket_left_by_a_dead_process_does_not_block_the_queue(lock_dir: Path) -> None:
    pool = SlotPool(lock_dir, 1)
    pool.queue_dir.mkdir(parents=True, mode=0o700)
    # An old ticket nobody holds a lock on: its process died while waiting.
    (pool.queue_dir / f"{1:020d}-dead-ghost.ticket").write_text("")
    with contextlib.ExitStack() as stack:
        stack.enter_context(pool.acquire(timeout=5, tag="alive"))
    assert not list(pool.queue_dir.glob("*ghost*"))


def test_plain_tags_only(lock_dir: Path) -> None:
    with pytest.raises(ValueError), SlotPool(lock_dir, 1).acquire(timeout=1, tag="../x"):
        pass
