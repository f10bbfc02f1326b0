"""Which files make up the packages a trial allows participant code to import.

The sandbox exposes exactly these (read-only), not the server's whole site-packages with the
web framework, the database driver and an editable install pointing into the project.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

__all__ = ["PackageNotInstalled", "package_paths"]

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class PackageNotInstalled(LookupError):
    """An allowed package is not installed in the server's environment."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _marker_applies(marker: str) -> bool:
    """Whether a requirement's environment marker holds here. Extras are never wanted; without
    the ``packaging`` library we keep the requirement (and later skip it if not installed)."""
    if "extra" in marker:
        return False
    try:
        from packaging.markers import Marker
    except ImportError:  # pragma: no cover - packaging is nearly always installed
        return True
    return bool(Marker(marker).evaluate())


def _dependencies(dist: metadata.Distribution) -> Iterable[str]:
    for requirement in dist.requires or ():
        spec, _, marker = requirement.partition(";")
        if marker.strip() and not _marker_applies(marker.strip()):
            continue
        match = _NAME.match(spec)
        if match:
            yield match.group(1)


def _top_level_paths(dist: metadata.Distribution) -> set[Path]:
    """The top-level import packages, modules, extension modules and the metadata directory of
    one installed distribution (scripts in ``bin/`` and ``.pth`` hooks are left out)."""
    tops: set[Path] = set()
    for file in dist.files or ():
        parts = file.parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith((".pth", ".data")):
            continue
        tops.add(Path(str(dist.locate_file(parts[0]))))
    return {path for path in tops if path.exists()}


@functools.lru_cache(maxsize=32)
def package_paths(distributions: tuple[str, ...]) -> tuple[Path, ...]:
    """Top-level paths of ``distributions`` and of everything they require, as installed for the
    running interpreter. Raises PackageNotInstalled when an allowed package itself is missing;
    a missing dependency is skipped (the import will then fail inside, visibly)."""
    seen: set[str] = set()
    paths: set[Path] = set()
    pending = [(name, True) for name in distributions]
    while pending:
        name, required = pending.pop()
        key = _canonical(name)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if required:
                raise PackageNotInstalled(
                    f"package {name!r} is allowed for participant code but is not installed"
                ) from None
            continue
        paths |= _top_level_paths(dist)
        pending.extend((dep, False) for dep in _dependencies(dist))
    names: dict[str, Path] = {}
    for path in sorted(paths):
        if path.name in names:
            raise PackageNotInstalled(
                f"{path} and {names[path.name]} would share one import name {path.name!r}"
            )
        names[path.name] = path
    return tuple(sorted(paths))
