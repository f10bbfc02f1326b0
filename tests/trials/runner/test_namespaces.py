"""Sandboxed code cannot make user namespaces (as root: the seccomp filter; otherwise bwrap's
``--disable-userns``), and what it needs of clone still works: threads, fork, subprocesses."""

from __future__ import annotations

import struct

import pytest

from trials.runner import RunnerConfig, run_python
from trials.runner.seccomp import UnsupportedArchitecture, no_user_namespaces_filter

UNSHARE = """
import ctypes, os, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
print("unshare-user", libc.unshare(CLONE_NEWUSER), ctypes.get_errno())
print("unshare-user-mount", libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), ctypes.get_errno())
t = threading.Thread(target=lambda: print("thread ok")); t.start(); t.join()
pid = os.fork()
if pid == 0:
    os._exit(7)
print("fork", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print("subprocess", subprocess.run(["/bin/true"]).returncode)
"""


def test_user_namespaces_are_refused_but_threads_and_fork_work(bwrap_config: RunnerConfig) -> None:
    result = run_python({"main.py": UNSHARE}, "main.py", config=bwrap_config)
    lines = result.stdout.splitlines()
    assert result.ok, result.stderr
    assert lines[0].split()[1] == "-1" and lines[1].split()[1] == "-1", lines
    assert lines[2:] == ["thread ok", "fork 7", "subprocess 0"]


def test_the_filter_is_whole_instructions_for_each_known_machine() -> None:
    for machine in ("x86_64", "aarch64"):
        program = no_user_namespaces_filter(machine)
        assert len(program) % struct.calcsize("=HBBI") == 0
    with pytest.raises(UnsupportedArchitecture):
        no_user_namespaces_filter("sparc")
