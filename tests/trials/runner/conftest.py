from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trials.runner import RunnerConfig, SandboxUnavailable
from trials.runner.bwrap import bwrap_problem
from trials.runner.fallback import python_for

PROJECT_DIR = Path(__file__).resolve().parents[3]
BWRAP = shutil.which("bwrap", path="/usr/local/bin:/usr/bin:/bin")
AS_ROOT = os.geteuid() == 0
# Slots of the runner tests, apart from the default pool so that a dev server running on the
# same machine is not slowed down (nor slows the tests down).
TEST_UID_BASE = 64100


def require_bwrap() -> None:
    if BWRAP is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap); CI installs it")
    problem = bwrap_problem(BWRAP, AS_ROOT)
    if problem is not None:
        pytest.fail(f"bubblewrap is installed but cannot make a sandbox: {problem}")


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are 0700, closed to the fallback's unprivileged uid.
    path = Path(tempfile.mkdtemp(prefix="skilltrial-runner-test-"))
    yield path
    shutil.rmtree(path)


def make_config(kind: str, state_dir: Path, **overrides: object) -> RunnerConfig:
    values: dict[str, object] = {
        "mode": kind,
        "state_dir": str(state_dir),
        "max_concurrent": 2,
        "uid_base": TEST_UID_BASE,
        "queue_timeout_seconds": 60.0,
    }
    values.update(overrides)
    config = RunnerConfig(**values)  # type: ignore[arg-type]
    if kind == "bwrap":
        require_bwrap()
    else:
        try:
            python_for(config, TEST_UID_BASE if AS_ROOT else None)
        except SandboxUnavailable as exc:
            pytest.skip(f"the fallback cannot run on this machine: {exc}")
    return config


@pytest.fixture(params=["bwrap", "fallback"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config(kind: str, state_dir: Path) -> RunnerConfig:
    return make_config(kind, state_dir)


@pytest.fixture
def bwrap_config(state_dir: Path) -> RunnerConfig:
    return make_config("bwrap", state_dir)


@pytest.fixture
def fallback_config(state_dir: Path) -> RunnerConfig:
    return make_config("fallback", state_dir)


def processes_of_uids(uids: range) -> list[int]:
    """Pids of live (non-zombie) processes running as one of ``uids``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except (FileNotFoundError, ProcessLookupError):
            continue
        real_uid = int(fields["Uid"].split()[0])
        if real_uid in uids and not fields["State"].strip().startswith("Z"):
            found.append(int(entry.name))
    return found


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
