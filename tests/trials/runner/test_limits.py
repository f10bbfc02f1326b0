"""Each limit holds when a program tries hard to break it, and the result says what happened."""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import subprocess
import tracemalloc

import pytest

from trials.runner import Limits, RunnerConfig, run_python

from .conftest import AS_ROOT, processes_of_uids, wait_for

MiB = 1024 * 1024


def slot_uids(config: RunnerConfig) -> range:
    return range(config.uid_base, config.uid_base + config.max_concurrent)


def all_gone(config: RunnerConfig) -> bool:
    """No process of the run's uids is left (given a moment: a process whose pipes are closed
    may still be on its way out of the kernel when the run returns)."""
    return wait_for(lambda: processes_of_uids(slot_uids(config)) == [], timeout=2)


def test_allocating_4_gb_fails_with_memory_error(config: RunnerConfig) -> None:
    program = """
import sys
try:
    block = bytearray(4 * 1024**3)
except MemoryError:
    print("4 GB refused", flush=True)
chunks = []
while True:
    chunks.append(bytearray(64 * 1024**2))
"""
    limits = Limits(memory_bytes=256 * MiB)
    result = run_python({"main.py": program}, "main.py", limits=limits, config=config)
    assert result.stdout == "4 GB refused\n"
    assert result.reason == "memory_limit"
    assert result.exit_code == 1
    assert result.stderr.rstrip().endswith("MemoryError")
    assert result.message == "The program tried to use too much memory."


def test_a_fork_bomb_is_contained(config: RunnerConfig) -> None:
    # First a bounded bomb: even if the process limit failed it would stop at 300 processes.
    counted = """
import os, sys, time
made = 0
try:
    for _ in range(300):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        made += 1
except BlockingIOError as exc:
    print("refused after", made, "children:", exc.strerror)
else:
    print("made all", made)
"""
    limits = Limits(max_processes=16, wall_seconds=10)
    result = run_python({"main.py": counted}, "main.py", limits=limits, config=config)
    assert result.ok, result.stderr
    assert result.stdout.startswith("refused after ")
    made = int(result.stdout.split()[2])
    assert 0 < made < 16
    if AS_ROOT:
        assert all_gone(config)

    # Only now the real thing: every process forks for ever, and the run is stopped at 3 s.
    endless = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""
    limits = Limits(max_processes=16, wall_seconds=3)
    result = run_python({"main.py": endless}, "main.py", limits=limits, config=config)
    assert result.reason == "wall_time_limit"
    assert result.timed_out
    assert result.exit_code is None
    if AS_ROOT:
        assert all_gone(config)
    # The machine can still start processes.
    assert subprocess.run(["true"], check=False).returncode == 0


def test_writing_a_1_gb_file_stops_at_the_file_size_limit(config: RunnerConfig) -> None:
    program = """
import os
written = 0
try:
    with open("big.bin", "wb", buffering=0) as handle:
        for _ in range(1024):
            written += handle.write(b"x" * 1024 * 1024)
except OSError as exc:
    print("errno", exc.errno, "after", written, "size", os.path.getsize("big.bin"))
"""
    limits = Limits(max_file_bytes=8 * MiB)
    result = run_python({"main.py": program}, "main.py", limits=limits, config=config)
    assert result.ok, result.stderr
    assert result.stdout == f"errno {errno.EFBIG} after {8 * MiB} size {8 * MiB}\n"


def test_the_workspace_as_a_whole_is_capped(bwrap_config: RunnerConfig) -> None:
    program = """
import sys
total = 0
for folder in [".", "/tmp"]:
    try:
        for i in range(100):
            with open(f"{folder}/part-{i}.bin", "wb", buffering=0) as handle:
                for _ in range(4):
                    total += handle.write(b"x" * 1024 * 1024)
    except OSError as exc:
        print(folder, "errno", exc.errno)
print("total MiB", total // 2**20)
"""
    limits = Limits(max_file_bytes=4 * MiB, workspace_bytes=16 * MiB)
    result = run_python({"main.py": program}, "main.py", limits=limits, config=bwrap_config)
    assert result.ok, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [f". errno {errno.ENOSPC}", f"/tmp errno {errno.ENOSPC}"]
    assert int(lines[2].split()[-1]) <= 2 * 16


def test_a_sleeping_endless_loop_is_stopped_at_the_wall_time_limit(config: RunnerConfig) -> None:
    program = "import time\nprint('started')\nwhile True:\n    time.sleep(0.05)\n"
    limits = Limits(wall_seconds=1.5)
    result = run_python({"main.py": program}, "main.py", limits=limits, config=config)
    assert result.reason == "wall_time_limit"
    assert result.timed_out
    assert result.exit_code is None
    assert result.stdout == "started\n"  # what it printed before is kept
    assert result.message == "The program ran for too long and was stopped."


def test_a_busy_endless_loop_is_stopped_at_the_cpu_time_limit(config: RunnerConfig) -> None:
    program = "print('spinning')\nwhile True:\n    pass\n"
    limits = Limits(cpu_seconds=1, wall_seconds=20)
    result = run_python({"main.py": program}, "main.py", limits=limits, config=config)
    assert result.reason == "cpu_time_limit"
    assert result.timed_out
    assert result.exit_code is None
    assert result.stdout == "spinning\n"
    # Stopped by the kernel's CPU limit (SIGXCPU at 1 s of CPU), not by the 20 s wall limit.
    assert result.killed_by_signal == signal.SIGXCPU


def test_printing_100_mb_is_truncated_and_never_buffered(config: RunnerConfig) -> None:
    program = """
import sys
line = "x" * 1023 + "\\n"
block = line * 1024
for _ in range(100):
    sys.stdout.write(block)
for _ in range(10):
    sys.stderr.write(block)
print("done", file=sys.stderr)
"""
    limits = Limits(max_output_bytes=64 * 1024)
    tracemalloc.start()
    try:
        result = run_python({"main.py": program}, "main.py", limits=limits, config=config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok, result.stderr[-500:]
    assert result.stdout_truncated and result.stderr_truncated
    notice = "\n[output truncated after 65536 bytes]\n"
    assert result.stdout == "x" * 1023 + "\n" + ("x" * 1023 + "\n") * 63 + notice
    assert result.stderr.endswith(notice)
    assert len(result.stderr) == 65536 + len(notice)
    assert peak < 8 * MiB, f"the server held {peak} bytes at once"


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="cpu_seconds"):
        Limits(cpu_seconds=0)
    with pytest.raises(ValueError, match="max_output_bytes"):
        Limits(max_output_bytes=-1)
    assert dataclasses.replace(Limits(), wall_seconds=2.5).wall_seconds == 2.5


def test_each_slot_has_its_own_uid(config: RunnerConfig) -> None:
    if not AS_ROOT:
        pytest.skip("slot uids are used only when the server runs as root")
    result = run_python({"main.py": "import os\nprint(os.getuid())\n"}, "main.py", config=config)
    assert int(result.stdout) in slot_uids(config)
    assert os.getuid() == 0
