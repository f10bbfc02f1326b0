"""The run cap follows CPU actually used: one run per CPU always, more only while the CPUs are
idle enough (trials/runner/cpu.py), so Checks that mostly sleep do not queue behind idle CPUs."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trials.runner.config import RunnerConfig
from trials.runner.cpu import CpuMeter, machine_reader, uid_reader
from trials.runner.slots import QueueTimeout, SlotPool


@pytest.fixture
def lock_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="skilltrial-slots-") as path:
        yield Path(path) / "slots"


def test_slots_beyond_the_cpu_count_wait_while_the_cpus_are_busy(lock_dir: Path) -> None:
    idle = threading.Event()
    pool = SlotPool(lock_dir, 3, always=1, admit_extra=idle.is_set)
    with pool.acquire(timeout=1, tag="a") as first:
        assert first.index == 0
        # Busy CPUs: the second run waits although two slots are free.
        with pytest.raises(QueueTimeout), pool.acquire(timeout=0.3, tag="b"):
            pass
        idle.set()
        with pool.acquire(timeout=1, tag="b") as second, pool.acquire(timeout=1, tag="c") as third:
            assert (second.index, third.index) == (1, 2)
            # Every slot taken: idle CPUs do not make a fourth.
            with pytest.raises(QueueTimeout), pool.acquire(timeout=0.3, tag="d"):
                pass


def test_without_a_gate_every_slot_is_always_available(lock_dir: Path) -> None:
    pool = SlotPool(lock_dir, 2)
    with pool.acquire(timeout=1, tag="a"), pool.acquire(timeout=1, tag="b") as second:
        assert second.index == 1


def _stat(path: Path, idle: int, busy: int) -> None:
    # user nice system idle iowait irq softirq steal
    path.write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 2 3 4\n")


def test_the_machine_meter_reads_the_busy_share_between_two_samples(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    _stat(stat, idle=1000, busy=1000)
    meter = CpuMeter(machine_reader(str(stat)))
    # The first reading samples twice, 0.1 s apart; nothing changed in between: no share.
    assert meter.busy_fraction() is None
    _stat(stat, idle=1300, busy=1100)  # 100 busy of 400 jiffies
    assert meter.busy_fraction() == pytest.approx(0.25)


def test_an_unreadable_proc_never_admits_extra_runs(tmp_path: Path) -> None:
    assert CpuMeter(machine_reader(str(tmp_path / "missing"))).busy_fraction() is None
    assert CpuMeter(uid_reader(range(64000, 64002), str(tmp_path))).busy_fraction() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="a process of another uid needs root")
def test_the_runs_meter_counts_only_the_sandbox_uids(tmp_path: Path) -> None:
    """A program spinning under a slot's uid shows up; the test process's own CPU (another
    uid) does not."""
    uid = 64990
    # The shell itself spins (no child process that could outlive it), in a session of its
    # own, killed as a group. (A spinning child of `timeout` once outlived the test: killing
    # `timeout` leaves its child running.)
    spin = subprocess.Popen(
        ["/bin/sh", "-c", "while :; do :; done"],
        user=uid,
        group=uid,
        cwd="/",
        start_new_session=True,
    )
    try:
        meter = CpuMeter(uid_reader(range(uid, uid + 1)))
        meter.busy_fraction()
        time.sleep(0.5)
        spinning = meter.busy_fraction()
        others = CpuMeter(uid_reader(range(uid + 1, uid + 2)))
        others.busy_fraction()
        time.sleep(0.3)
        idle = others.busy_fraction()
    finally:
        os.killpg(spin.pid, signal.SIGKILL)
        spin.wait()
    cpus = len(os.sched_getaffinity(0))
    assert spinning is not None and spinning > 0.3 / cpus  # one busy CPU of the machine's
    assert idle == 0.0


def test_the_slot_settings_come_from_the_environment() -> None:
    config = RunnerConfig.from_env(
        {"RUNNER_SLOTS": "12", "RUNNER_MIN_IDLE": "0.5", "RUNNER_STATE_DIR": "/srv/runs"}
    )
    assert (config.max_concurrent, config.min_idle) == (12, 0.5)
    assert (config.state_dir, config.lock_dir) == ("/srv/runs", "/srv/runs/slots")
    with pytest.raises(ValueError, match="RUNNER_SLOTS='many' is not a number"):
        RunnerConfig.from_env({"RUNNER_SLOTS": "many"})
    with pytest.raises(ValueError, match="min_idle"):
        RunnerConfig.from_env({"RUNNER_MIN_IDLE": "2"})
