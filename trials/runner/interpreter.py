"""Facts about the interpreter that runs participant code, learnt once by asking it."""

from __future__ import annotations

import functools
import json
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from trials.runner.config import SYSTEM_PATH

__all__ = ["Interpreter", "interpreter", "others_can_read", "program_environment"]

_PROBE = (
    "import json, site, sys; print(json.dumps([sys.prefix, sys.exec_prefix, "
    "site.getsitepackages(), list(sys.version_info[:2])]))"
)


@dataclass(frozen=True)
class Interpreter:
    executable: str
    prefixes: tuple[str, ...]
    """Installation directories (stdlib, shared library) that the sandbox must show."""
    site_packages: tuple[str, ...]
    """Its own site-packages directories, which the sandbox hides."""
    version: tuple[int, int]


@functools.lru_cache(maxsize=8)
def interpreter(python: str) -> Interpreter:
    done = subprocess.run(
        [python, "-S", "-s", "-c", _PROBE],
        capture_output=True,
        timeout=60,
        check=True,
        env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"},
    )
    prefix, exec_prefix, site_packages, version = json.loads(done.stdout)
    return Interpreter(
        executable=python,
        prefixes=tuple(dict.fromkeys(os.path.realpath(p) for p in (prefix, exec_prefix))),
        site_packages=tuple(os.path.realpath(p) for p in site_packages),
        version=(int(version[0]), int(version[1])),
    )


def others_can_read(path: str | Path) -> bool:
    """Whether a uid with no groups can reach ``path`` by permission bits alone (the fallback's
    slot uid must execute the interpreter and read the allowed packages)."""
    real = Path(os.path.realpath(path))
    for parent in real.parents:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(real).st_mode
    need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & need == need


def program_environment(*, home: str, tmp: str, site: str) -> dict[str, str]:
    """The whole environment of a participant's program: nothing comes from the server's."""
    return {
        "PATH": SYSTEM_PATH,
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "USER": "participant",
        "LOGNAME": "participant",
        "PYTHONPATH": site,
        "PYTHONDONTWRITEBYTECODE": "1",
        # Unbuffered, so a program stopped at a limit still shows what it printed before.
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
    }
