"""Check latency: the trusted checker in its own sandbox versus the tests in the participant's
process (how Check worked before), and one participant's Check while another floods Run.

    python bench/bench_check.py [--checks N] [--flood N]

1. For each sample task's reference solution, N Checks each way, interleaved so background load
   hits both alike: ``judge_code`` (two sandboxes joined by pipes) and the *limit*, the same
   hidden tests run inside the participant's own sandbox by a small in-process stand-in for
   ``checker`` (one sandbox, no pipe; the insecure design, measured only as the limit). Prints
   p50/p95 of each and the p50 difference; the aim is at most +100 ms at p50.
2. One participant floods Run (``--flood`` concurrent runs of ``time.sleep(5)``, all with one
   participant's tag) while another checks the warm-up task: the second one's Check latency,
   beside the same Check on an idle machine.

Prints the load average with the figures; reports, never fails on a figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_runner import percentile

from trials import runner
from trials.judge import judge_code

TASKS = Path(__file__).resolve().parents[1] / "studies" / "trio-skill-formation" / "tasks"

# The tests' own API, run in the participant's process: the limit, not something to ship.
IN_PROCESS_CHECKER = r"""
import contextlib, importlib, inspect, io, time
main = importlib.import_module("main")

class Outcome:
    def __init__(self, ok, value, error, stdout, seconds):
        self.ok, self.value, self.error = ok, value, error
        self.stdout, self.seconds = stdout, seconds
    @property
    def lines(self):
        return self.stdout.splitlines()

class Call:
    def __init__(self, args):
        self.args, self.started, self.ended, self.cancelled = args, time.monotonic(), None, False

class Fake:
    def __init__(self, name, *, delay=0.0, returns=None, raises=None, kind="auto"):
        self.name, self.delay, self.returns, self.raises = name, delay, returns, raises
        self.calls = []
    def stub(self):
        import trio
        async def fake(*args):
            call = Call(list(args)); self.calls.append(call)
            try:
                await trio.sleep(self.delay(*args) if callable(self.delay) else self.delay)
            except BaseException:
                call.cancelled = True; call.ended = time.monotonic(); raise
            call.ended = time.monotonic()
            raised = self.raises(*args) if self.raises else None
            if raised:
                raise getattr(main, raised[0])(raised[1])
            return self.returns(*args) if callable(self.returns) else self.returns
        return fake
    @property
    def max_overlap(self):
        points = [(c.started, 1) for c in self.calls] + [(c.ended, -1) for c in self.calls]
        points.sort(key=lambda p: (p[0], p[1]))
        best = cur = 0
        for _, step in points:
            cur += step; best = max(best, cur)
        return best

class participant:
    @staticmethod
    def run(name, *args, fakes=(), timeout=5.0, runner=None):
        saved = {f.name: getattr(main, f.name) for f in fakes}
        for f in fakes:
            setattr(main, f.name, f.stub())
        out = io.StringIO(); start = time.monotonic()
        try:
            with contextlib.redirect_stdout(out):
                if runner == "trio":
                    import trio
                    value = trio.run(getattr(main, name), *args)
                else:
                    value = getattr(main, name)(*args)
            return Outcome(True, value, "", out.getvalue(), time.monotonic() - start)
        except Exception as exc:
            return Outcome(False, None, repr(exc), out.getvalue(), time.monotonic() - start)
        finally:
            for key, value in saved.items():
                setattr(main, key, value)
    @classmethod
    def call(cls, name, *args, **kw):
        outcome = cls.run(name, *args, **kw)
        assert outcome.ok, outcome.error
        return outcome.value
    @classmethod
    def trio(cls, name, *args, **kw):
        return cls.run(name, *args, runner="trio", **kw)
"""

IN_PROCESS_HARNESS = r"""
import json, sys
source = open("tests.py").read()
namespace = {}
exec(compile(source, "tests", "exec"), namespace)
results = []
for name, fn in list(namespace.items()):
    if name.startswith("test_") and callable(fn):
        try:
            fn(); results.append(True)
        except BaseException:
            results.append(False)
print(json.dumps(results))
"""


def trusted_check(tests: str, code: str, tag: str = "") -> float:
    started = time.monotonic()
    verdict = judge_code(tests_source=tests, code=code, tag=tag)
    elapsed = time.monotonic() - started
    if not verdict.all_passed:
        raise RuntimeError(f"the reference solution failed: {verdict}")
    return elapsed


def in_process_check(tests: str, code: str) -> float:
    started = time.monotonic()
    result = runner.run_python(
        {
            "main.py": code,
            "tests.py": tests,
            "checker.py": IN_PROCESS_CHECKER,
            "h.py": IN_PROCESS_HARNESS,
        },
        "h.py",
    )
    elapsed = time.monotonic() - started
    if not result.ok or "false" in result.stdout:
        raise RuntimeError(f"in-process check failed: {result.stdout} {result.stderr}")
    return elapsed


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.0f} ms"


def latency(checks: int) -> None:
    print(f"== Check latency, {checks} checks each way, reference solutions")
    heads = ("limit p50", "limit p95", "ours p50", "ours p95")
    print(f"{'task':24} " + " ".join(f"{h:>10}" for h in heads) + f" {'p50 +':>8}")
    for folder in ("warmup", "concurrent_greetings", "fetch_all"):
        tests = (TASKS / folder / "tests.py").read_text()
        code = (TASKS / folder / "solution.py").read_text()
        for _ in range(2):  # warm-up
            trusted_check(tests, code)
            in_process_check(tests, code)
        ours, limit = [], []
        for _ in range(checks):
            ours.append(trusted_check(tests, code))
            limit.append(in_process_check(tests, code))
        diff = statistics.median(ours) - statistics.median(limit)
        print(
            f"{folder:24} {ms(percentile(limit, 0.5))} {ms(percentile(limit, 0.95))} "
            f"{ms(percentile(ours, 0.5))} {ms(percentile(ours, 0.95))} {diff * 1000:+7.0f} ms"
        )


def _flooded(runs: int, checks: int, tests: str, code: str, flooder_tag: str) -> list[float]:
    stop = threading.Event()

    def flooder() -> None:
        while not stop.is_set():
            runner.run_python(
                {"main.py": "import time\ntime.sleep(5)\n"},
                "main.py",
                tag=flooder_tag,
                queue_timeout=60,
            )

    threads = [threading.Thread(target=flooder, daemon=True) for _ in range(runs)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # the flood is running and queued
    busy = [trusted_check(tests, code, tag="bench-checker") for _ in range(checks)]
    stop.set()
    for thread in threads:
        thread.join(30)
    return busy


def flood(runs: int, checks: int) -> None:
    tests = (TASKS / "warmup" / "tests.py").read_text()
    code = (TASKS / "warmup" / "solution.py").read_text()
    idle = [trusted_check(tests, code, tag="bench-checker") for _ in range(checks)]
    fair = _flooded(runs, checks, tests, code, "bench-flooder")
    # The protection switched off: the flooder's runs untagged, each queued on its own, as
    # before one-run-per-participant existed.
    unfair = _flooded(runs, checks, tests, code, "")
    print(f"== One participant's Check while another floods Run ({runs} concurrent sleep(5) runs)")
    for label, values in (
        ("idle", idle),
        ("flooded, one run per person", fair),
        ("flooded, protection off", unfair),
    ):
        p50, p95 = ms(percentile(values, 0.5)), ms(percentile(values, 0.95))
        print(f"{label + ':':29} p50 {p50}  p95 {p95}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--flood", type=int, default=6)
    args = parser.parse_args()
    status = runner.sandbox_status()
    print(f"sandbox: {status.kind} ({status.detail}); load average {os.getloadavg()}")
    latency(args.checks)
    flood(args.flood, max(5, args.checks // 2))
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
