from __future__ import annotations

import fcntl
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
# Each test session claims a block of sandbox uids of its own, apart from the default pool (so
# a dev server on the machine is not involved) and from any other test session running at the
# same time (whose processes must not be mistaken for leftovers of ours, nor killed).
UID_BLOCKS_START = 64100
UID_BLOCK_SIZE = 10
UID_BLOCKS = 40


def require_bwrap() -> None:
    if BWRAP is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap); CI installs it")
    problem = bwrap_problem(BWRAP, AS_ROOT)
    if problem is not None:
        pytest.fail(f"bubblewrap is installed but cannot make a sandbox: {problem}")


@pytest.fixture(scope="session")
def uid_base() -> Iterator[int]:
    lock_dir = Path(tempfile.gettempdir()) / f"skilltrial-runner-tests-{os.geteuid()}"
    lock_dir.mkdir(mode=0o700, exist_ok=True)
    for block in range(UID_BLOCKS):
        fd = os.open(lock_dir / f"block-{block}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield UID_BLOCKS_START + block * UID_BLOCK_SIZE
        finally:
            os.close(fd)
        return
    pytest.fail(f"all {UID_BLOCKS} blocks of test sandbox uids are in use")


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are 0700, closed to the fallback's unprivileged uid.
    path = Path(tempfile.mkdtemp(prefix="skilltrial-runner-test-"))
    yield path
    shutil.rmtree(path)


def make_config(kind: str, state_dir: Path, uid_base: int, **overrides: object) -> RunnerConfig:
    values: dict[str, object] = {
        "mode": kind,
        "state_dir": str(state_dir),
        "max_concurrent": 2,
        "uid_base": uid_base,
        "queue_timeout_seconds": 60.0,
    }
    values.update(overrides)
    config = RunnerConfig(**values)  # type: ignore[arg-type]
    if kind == "bwrap":
        require_bwrap()
    else:
        try:
            python_for(config, uid_base if AS_ROOT else None)
        except SandboxUnavailable as exc:
            pytest.skip(f"the fallback cannot run on this machine: {exc}")
    return config


@pytest.fixture(params=["bwrap", "fallback"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config(kind: str, state_dir: Path, uid_base: int) -> RunnerConfig:
    return make_config(kind, state_dir, uid_base)


@pytest.fixture
def bwrap_config(state_dir: Path, uid_base: int) -> RunnerConfig:
    return make_config("bwrap", state_dir, uid_base)


@pytest.fixture
def fallback_config(state_dir: Path, uid_base: int) -> RunnerConfig:
    return make_config("fallback", state_dir, uid_base)


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
