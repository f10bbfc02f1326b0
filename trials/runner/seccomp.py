"""A seccomp filter that keeps sandboxed code from making user namespaces.

When the server is root, bwrap runs without a user namespace of its own (see ``bwrap.py``), and
the program, an unprivileged uid, could otherwise call ``unshare(CLONE_NEWUSER)`` and hold every
capability inside a namespace of its own making: the kernel surface that has carried most
container escapes. The filter, handed to bwrap with ``--seccomp``, answers:

- ``unshare`` and ``clone`` with ``CLONE_NEWUSER`` in their flags: EPERM;
- ``clone3`` (whose flags sit in memory a filter cannot read): ENOSYS, so the C library falls
  back to ``clone``, which is checked;
- any system call of another ABI (32-bit or x32 calls on x86-64): ENOSYS;
- everything else: allowed.

The program is classic BPF, a few instructions written out here; the constants are from
``linux/seccomp.h``, ``linux/filter.h``, ``linux/audit.h`` and each architecture's syscall table.
"""

from __future__ import annotations

import errno
import platform
import struct

__all__ = ["UnsupportedArchitecture", "no_user_namespaces_filter"]

_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000

_CLONE_NEWUSER = 0x10000000
_X32_BIT = 0x40000000

# machine -> (AUDIT_ARCH_*, clone, unshare, clone3)
_ARCHES = {
    "x86_64": (0xC000003E, 56, 272, 435),
    "aarch64": (0xC00000B7, 220, 97, 435),
}


class UnsupportedArchitecture(RuntimeError):
    """No syscall table for this machine here."""


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def no_user_namespaces_filter(machine: str | None = None) -> bytes:
    """The filter program as bwrap reads it (an array of ``struct sock_filter``)."""
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise UnsupportedArchitecture(f"no seccomp filter for {machine}")
    arch, clone, unshare, clone3 = _ARCHES[machine]
    enosys = _RET_ERRNO | errno.ENOSYS
    eperm = _RET_ERRNO | errno.EPERM
    program = [
        _insn(_LD_W_ABS, 0, 0, 4),  # 0: A = seccomp_data.arch
        _insn(_JEQ_K, 1, 0, arch),  # 1: native ABI? skip the next
        _insn(_RET_K, 0, 0, enosys),  # 2: another ABI: refused
        _insn(_LD_W_ABS, 0, 0, 0),  # 3: A = seccomp_data.nr
        _insn(_JGE_K, 0, 1, _X32_BIT),  # 4: x32 call? (false: skip one)
        _insn(_RET_K, 0, 0, enosys),  # 5
        _insn(_JEQ_K, 0, 1, clone3),  # 6: clone3?
        _insn(_RET_K, 0, 0, enosys),  # 7
        _insn(_JEQ_K, 2, 0, unshare),  # 8: unshare -> 11
        _insn(_JEQ_K, 1, 0, clone),  # 9: clone -> 11
        _insn(_RET_K, 0, 0, _RET_ALLOW),  # 10
        _insn(_LD_W_ABS, 0, 0, 16),  # 11: A = low 32 bits of args[0] (the flags)
        _insn(_JSET_K, 0, 1, _CLONE_NEWUSER),  # 12: CLONE_NEWUSER set?
        _insn(_RET_K, 0, 0, eperm),  # 13
        _insn(_RET_K, 0, 0, _RET_ALLOW),  # 14
    ]
    if struct.pack("=I", 1)[0] != 1:  # pragma: no cover - big-endian: the low word comes second
        program[11] = _insn(_LD_W_ABS, 0, 0, 20)
    return b"".join(program)
