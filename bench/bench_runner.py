"""Latency of a sandboxed run versus plain ``python`` on the same program.

    python bench/bench_runner.py [--runs N] [PROGRAM.py ...]

Without programs it runs a small Trio program (a nursery of a few sleeping tasks); give the
tasks' reference solutions to measure those. For each program, every sandbox kind available
here and plain ``python`` are run N times each, interleaved so that background load hits all
alike, after two warm-up runs each. Prints p50/p95 wall-clock latency per kind, as seen by the
caller (for the sandbox: slot, run directory, sandbox start, program, clean-up), and the
overhead over plain python. The aim is under 50 ms; this script reports and never fails on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trials.runner import RunnerConfig, run_python, sandbox_status

SMALL_TRIO_PROGRAM = """\
import trio


async def worker(name, delay, done):
    await trio.sleep(delay)
    done.append(name)


async def main():
    done = []
    async with trio.open_nursery() as nursery:
        for index in range(5):
            nursery.start_soon(worker, f"task-{index}", 0.001 * index, done)
    print(len(done), "tasks finished")


trio.run(main)
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def plain_runner(source: str, workdir: Path) -> Callable[[], None]:
    (workdir / "main.py").write_text(source)

    def run() -> None:
        subprocess.run(
            [sys.executable, "main.py"], cwd=workdir, capture_output=True, check=True, timeout=60
        )

    return run


def sandbox_runner(source: str, config: RunnerConfig) -> Callable[[], None]:
    def run() -> None:
        result = run_python({"main.py": source}, "main.py", config=config)
        if not result.ok:
            raise RuntimeError(f"{config.mode} run failed: {result.reason}\n{result.stderr}")

    return run


def measure(name: str, source: str, runs: int, state_dir: Path) -> None:
    base = RunnerConfig.from_env()
    kinds: dict[str, Callable[[], None]] = {}
    plain_dir = state_dir / "plain"
    plain_dir.mkdir()
    kinds["plain python"] = plain_runner(source, plain_dir)
    status = sandbox_status(dataclasses.replace(base, mode="auto"))
    if status.kind == "bwrap":
        config = dataclasses.replace(base, mode="bwrap", state_dir=str(state_dir / "bwrap"))
        kinds["bwrap sandbox"] = sandbox_runner(source, config)
    else:
        print(f"(no bwrap sandbox here: {status.detail})")
    fallback = dataclasses.replace(base, mode="fallback", state_dir=str(state_dir / "fallback"))
    kinds["fallback sandbox"] = sandbox_runner(source, fallback)

    timings: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(2):
        for run in kinds.values():
            run()
    for _ in range(runs):
        for kind, run in kinds.items():
            started = time.perf_counter()
            run()
            timings[kind].append(time.perf_counter() - started)

    plain = timings["plain python"]
    print(f"\n{name}: {runs} runs each")
    print(f"{'':18} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'+p50 ms':>8} {'+p95 ms':>8}")
    for kind, values in timings.items():
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        extra = ""
        if kind != "plain python":
            extra = (
                f" {1000 * (p50 - percentile(plain, 0.5)):8.1f}"
                f" {1000 * (p95 - percentile(plain, 0.95)):8.1f}"
            )
        mean = statistics.fmean(values)
        print(f"{kind:18} {1000 * p50:8.1f} {1000 * p95:8.1f} {1000 * mean:8.1f}{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("programs", nargs="*", type=Path, help="Python files to run")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per kind (default 30)")
    args = parser.parse_args()
    programs = [(str(path), path.read_text()) for path in args.programs] or [
        ("small Trio program", SMALL_TRIO_PROGRAM)
    ]
    with tempfile.TemporaryDirectory(prefix="skilltrial-bench-") as tmp:
        state = Path(tmp)
        state.chmod(0o711)  # the fallback's unprivileged uid must pass through
        for index, (name, source) in enumerate(programs):
            program_dir = state / str(index)
            program_dir.mkdir(mode=0o711)
            measure(name, source, args.runs, program_dir)
    print("\nAim: sandbox overhead under 50 ms.")


if __name__ == "__main__":
    main()
