"""At most ``max_concurrent`` runs at once per machine; the rest wait, then are refused."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from trials.runner import RunnerConfig, RunResult, run_python
from trials.runner.slots import QueueTimeout, SlotPool

from .conftest import (
    AS_ROOT,
    BWRAP,
    PROJECT_DIR,
    make_config,
    processes_of_uids,
    wait_for,
)

SLEEPER = "import sys, time\ntime.sleep(float(sys.argv[1]))\nprint('woke')\n"


@pytest.fixture
def one_slot(state_dir: Path, uid_base: int) -> RunnerConfig:
    # Its own uid, hence its own lock file: the other tests' two slots are not involved.
    kind = "bwrap" if BWRAP else "fallback"
    return make_config(kind, state_dir, uid_base + 5, max_concurrent=1)


def start_in_background(
    config: RunnerConfig, seconds: float
) -> tuple[threading.Thread, dict[str, Any]]:
    """Start a run sleeping ``seconds`` in a thread; return once its program is running."""
    box: dict[str, Any] = {}

    def target() -> None:
        box["result"] = run_python(
            {"main.py": SLEEPER}, "main.py", argv=[str(seconds)], config=config
        )
        box["finished"] = time.monotonic()

    thread = threading.Thread(target=target)
    thread.start()
    if AS_ROOT:
        # Running means its program exists (and so it holds the slot).
        uids = range(config.uid_base, config.uid_base + 1)
        assert wait_for(lambda: processes_of_uids(uids) != [], timeout=20)
    else:
        time.sleep(1)
    return thread, box


def test_a_run_beyond_the_cap_waits_for_a_free_slot(one_slot: RunnerConfig) -> None:
    thread, first = start_in_background(one_slot, 1.5)
    try:
        second = run_python({"main.py": SLEEPER}, "main.py", argv=["0"], config=one_slot)
        second_finished = time.monotonic()
    finally:
        thread.join()
    assert isinstance(first["result"], RunResult) and first["result"].ok
    assert second.ok, second.stderr
    assert second.stdout == "woke\n"
    assert second_finished > first["finished"]


def test_a_run_is_refused_when_its_queue_wait_runs_out(one_slot: RunnerConfig) -> None:
    impatient = dataclasses.replace(one_slot, queue_timeout_seconds=0.3)
    thread, first = start_in_background(one_slot, 3)
    try:
        refused = run_python({"main.py": SLEEPER}, "main.py", argv=["0"], config=impatient)
        # Refused while the first run still held the slot (it sleeps 3 s; the wait is 0.3 s).
        first_still_running = "finished" not in first
    finally:
        thread.join()
    assert refused.reason == "queue_timeout"
    assert refused.exit_code is None
    assert not refused.ok
    assert refused.stdout == refused.stderr == ""
    assert "busy" in refused.message
    assert first_still_running
    assert isinstance(first["result"], RunResult) and first["result"].ok


def test_the_cap_holds_across_processes(state_dir: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from trials.runner.slots import SlotPool\n"
            "with SlotPool(Path(sys.argv[1]), 1).acquire(timeout=5):\n"
            "    print('holding', flush=True)\n"
            "    time.sleep(1.5)\n"
            "    print('releasing', flush=True)\n",
            str(state_dir / "locks"),
        ],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "holding\n"
        pool = SlotPool(state_dir / "locks", 1)
        with pytest.raises(QueueTimeout), pool.acquire(timeout=0.2):
            pass
        with pool.acquire(timeout=10) as slot:
            assert slot.index == 0
            # The slot came free only when the other process let it go (it says so first).
            assert holder.stdout.readline() == "releasing\n"
    finally:
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
