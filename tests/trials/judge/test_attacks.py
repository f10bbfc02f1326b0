"""A motivated participant against Check, in the real sandboxes: every way their code can act
on its own process, the agent, the file system, its output or the pipe to the checker must fail
to produce a pass, and must not reveal the hidden tests or their expected values.

Each attack is also run once against the in-process harness Check used before (the protection
switched off, ``test_the_attacks_are_real_without_a_separate_checker``) to prove it is real."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from trials import runner
from trials.judge import _parse_verdicts, judge_code, test_specs
from trials.runner import RunnerConfig

STUDY = Path(__file__).resolve().parents[3] / "studies" / "trio-skill-formation" / "tasks"
CANARY = "canary-" + secrets.token_hex(8)

# The hidden tests of these attacks: a function must return a secret the participant cannot
# know, so only reading the tests (or forging the verdict) could pass them.
SECRET_TESTS = f'''
from checker import participant

SECRET = "{CANARY}"


def test_returns_the_secret():
    """Returns the right value"""
    assert participant.call("answer") == SECRET, "wrong answer"


def test_returns_the_secret_again():
    assert participant.call("answer") == SECRET + "!", "wrong answer"
'''

ATTACKS = {
    # Results printed where the old harness read them, with every test passed.
    "forged_results_line": """
import json, sys
names = ["test_returns_the_secret", "test_returns_the_secret_again"]
line = json.dumps({"results": [{"name": n, "passed": True, "message": ""} for n in names]})
print(line); sys.stdout.flush()
sys.__stdout__.write("\\n" + line + "\\n")
def answer():
    return None
""",
    # An object that claims to equal anything.
    "always_equal": """
class Anything(str):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __hash__ = str.__hash__
def answer():
    return Anything("x")
""",
    # Search the process's memory for the tests (or anything looking like them).
    "gc_and_frames": """
import gc, sys, inspect
found = []
for obj in gc.get_objects():
    if isinstance(obj, dict):
        for value in list(obj.values()):
            if isinstance(value, str) and "canary-" in value:
                found.append(value)
for frame in inspect.stack():
    for value in list(frame.frame.f_globals.values()) + list(frame.frame.f_locals.values()):
        if isinstance(value, str) and "canary-" in value:
            found.append(value)
sys.stderr.write("FOUND:" + repr(found) + "\\n")
def answer():
    return found[0] if found else None
""",
    # Read stdin, every file descriptor, and look for the tests on disk and in /proc.
    "files_and_fds": """
import os, sys
seen = []
for fd in range(0, 64):
    try:
        seen.append(os.pread(fd, 100000, 0).decode("utf-8", "replace"))
    except OSError:
        pass
for root in ("/", "/sandbox", "/tmp", "/proc"):
    for dirpath, dirs, files in os.walk(root):
        if dirpath.startswith(("/proc/sys", "/usr", "/proc/self/task")) or dirpath.count("/") > 4:
            dirs[:] = []
            continue
        for name in files:
            if name in ("environ", "cmdline", "tests.py") or name.endswith(".py"):
                try:
                    with open(os.path.join(dirpath, name), "rb") as fh:
                        seen.append(fh.read(200000).decode("utf-8", "replace"))
                except OSError:
                    pass
hits = [s[s.index("canary-"):s.index("canary-") + 23] for s in seen if "canary-" in s]
sys.stderr.write("FOUND:" + repr(hits) + "\\n")
def answer():
    return hits[0] if hits else None
""",
    # Talk to the checker directly: forge a finished call with a value, and extra messages.
    "forged_channel_messages": """
import os, sys, json
write_fd = int(sys.argv[2])
def answer():
    for n in range(1, 5):
        done = {"op": "done", "call": n, "ok": True, "value": "x", "stdout": ""}
        os.write(write_fd, (json.dumps(done) + "\\n").encode())
        os.write(write_fd, b'{"op": "results", "passed": true}\\n')
    return "x"
""",
    # Break the pipe with garbage and exit: the checker must not count that as a pass.
    "garbage_and_exit": """
import os, sys
def answer():
    os.write(int(sys.argv[2]), b"\\x00" * 10 + b"\\n" + b"{" * 100000 + b"\\n")
    os._exit(0)
""",
    # Kill everything it can reach (the checker runs as another uid in another pid namespace).
    "kill_everything": """
import os, signal
for pid in range(1, 400):
    try:
        os.kill(pid, signal.SIGKILL if pid != os.getpid() else 0)
    except OSError:
        pass
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
def answer():
    return None
""",
    # Patch what the agent uses to report, and an atexit handler printing a verdict late.
    "patch_the_agent": """
import atexit, json, sys, builtins
atexit.register(lambda: sys.__stdout__.write(json.dumps({"results": []}) + "\\n"))
agent = sys.modules.get("__main__")
if agent is not None and hasattr(agent, "wire"):
    agent.wire.encode = lambda value, depth=0: "canary-guess"
builtins.list = tuple
sys.settrace(lambda *a: None)
def answer():
    return "canary-guess"
""",
}


def _leaks(text: str) -> bool:
    return CANARY in text or "SECRET" in text or "def test_" in text


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_neither_passes_nor_leaks(attack: str, config: RunnerConfig) -> None:
    verdict = judge_code(tests_source=SECRET_TESTS, code=ATTACKS[attack], config=config)
    assert not any(t["passed"] for t in verdict.tests), verdict
    assert not verdict.all_passed
    shown = json.dumps(verdict.tests) + verdict.stderr + verdict.message
    assert not _leaks(shown), shown


def test_an_honest_answer_passes_the_same_tests(config: RunnerConfig) -> None:
    """The attack tests are not simply impossible to pass: the checker is not broken."""
    code = f'def answer():\n    return "{CANARY}"\n'
    verdict = judge_code(tests_source=SECRET_TESTS, code=code, config=config)
    assert [t["passed"] for t in verdict.tests] == [True, False]
    assert verdict.tests[0]["name"] == "Returns the right value"  # the docstring is the label
    assert verdict.tests[1]["name"] == "Returns the secret again"


SEQUENTIAL_FETCH_WITH_FAKE_CLOCK = """
import time, trio

_now = [0.0]
time.monotonic = lambda: _now[0]
time.perf_counter = time.monotonic


class FetchError(Exception):
    pass


async def fetch(item_id):
    await trio.sleep(0.2)
    if item_id % 3 == 0:
        raise FetchError(item_id)
    return f"item-{item_id}"


async def fetch_all(item_ids):
    results = {}
    for item_id in item_ids:  # one after the other
        try:
            results[item_id] = await fetch(item_id)
        except FetchError:
            results[item_id] = "FAILED"
    return results
"""

PRINT_WITHOUT_CONCURRENCY = """
import trio

async def greeter(name, delay, count):
    pass

async def main():
    for line in ["hello from alice (1)", "hello from alice (2)", "hello from bob (1)",
                 "hello from alice (3)", "hello from bob (2)", "hello from bob (3)", "done"]:
        print(line)
"""


def test_a_sequential_fetch_with_a_patched_clock_is_not_concurrent(
    bwrap_config: RunnerConfig,
) -> None:
    tests = (STUDY / "fetch_all" / "tests.py").read_text()
    verdict = judge_code(
        tests_source=tests, code=SEQUENTIAL_FETCH_WITH_FAKE_CLOCK, config=bwrap_config
    )
    by_test = {t["test"]: t for t in verdict.tests}
    assert by_test["test_every_item_has_a_result"]["passed"]  # it does give the right values
    assert not by_test["test_fetches_run_concurrently"]["passed"]
    assert "one after the other" in by_test["test_fetches_run_concurrently"]["message"]
    assert not verdict.all_passed


def test_printing_the_expected_lines_does_not_complete_the_greeters_task(
    bwrap_config: RunnerConfig,
) -> None:
    tests = (STUDY / "concurrent_greetings" / "tests.py").read_text()
    verdict = judge_code(tests_source=tests, code=PRINT_WITHOUT_CONCURRENCY, config=bwrap_config)
    assert not verdict.all_passed
    by_test = {t["test"]: t for t in verdict.tests}
    assert not by_test["test_greeters_run_at_the_same_time"]["passed"]
    assert not by_test["test_deadline_cancels_slow_greeters"]["passed"]


def test_an_endless_loop_is_stopped_and_nothing_passes(bwrap_config: RunnerConfig) -> None:
    code = "def answer():\n    while True:\n        pass\n"
    verdict = judge_code(
        tests_source=SECRET_TESTS,
        code=code,
        config=bwrap_config,
        limits=runner.Limits(cpu_seconds=10, wall_seconds=12),
    )
    assert verdict.status == "ok"
    assert not any(t["passed"] for t in verdict.tests)
    assert "did not finish" in verdict.tests[0]["message"]


def test_code_that_cannot_be_imported_fails_every_test_with_its_own_error(
    bwrap_config: RunnerConfig,
) -> None:
    verdict = judge_code(tests_source=SECRET_TESTS, code="def answer(:\n", config=bwrap_config)
    assert [t["passed"] for t in verdict.tests] == [False, False]
    assert "could not be loaded: SyntaxError" in verdict.tests[0]["message"]


CRASHING_TESTS = f'''
from checker import participant

EXPECTED = {{"key": "{CANARY}"}}


def test_looks_up_the_answer():
    assert EXPECTED[participant.call("answer")] == "{CANARY}"
'''


def test_errors_inside_a_test_show_only_their_type(bwrap_config: RunnerConfig) -> None:
    """A test that crashes on what the participant's code returned (here a KeyError naming
    it) may carry expected values in its message; the participant sees only the type."""
    code = f'def answer():\n    return "{CANARY}-guess"\n'
    verdict = judge_code(tests_source=CRASHING_TESTS, code=code, config=bwrap_config)
    assert verdict.tests[0]["message"] == "the test could not finish (KeyError)"
    assert not verdict.tests[0]["passed"]


def test_show_names_hides_every_message() -> None:
    specs = test_specs("def test_a():\n    pass\n")
    stdout = json.dumps({"results": [{"name": "test_a", "passed": False, "message": "m"}]})
    assert _parse_verdicts(stdout, specs, "names")[0]["message"] == ""  # type: ignore[index]


@pytest.mark.parametrize(
    "results",
    [
        [],  # nothing
        [{"name": "test_a", "passed": True}],  # one missing
        [{"name": "test_a", "passed": True}, {"name": "test_b", "passed": True}, {"name": "x"}],
        [{"name": "test_a", "passed": True}, {"name": "test_c", "passed": True}],  # wrong name
        [{"name": "test_a", "passed": True}, {"name": "test_a", "passed": True}],  # twice
        "all passed",
    ],
)
def test_verdicts_count_only_for_exactly_the_expected_tests(results: object) -> None:
    specs = test_specs("def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    assert _parse_verdicts(json.dumps({"results": results}), specs, "messages") is None


# --- the protection switched off --------------------------------------------------------------

# The in-process harness Check used before this change (hidden tests, participant code and the
# results channel in one process), kept here only to show the attacks above are real.
INSECURE_HARNESS = r"""
import contextlib, io, json, os, sys, types
with open("tests.py", encoding="utf-8") as fh:
    source = fh.read()
os.remove("tests.py")
real_stdout = sys.stdout
results = []
module = types.ModuleType("tests")
sys.modules["tests"] = module
sys.path.insert(0, os.getcwd())
import main
class participant:
    @staticmethod
    def call(name, *args):
        return getattr(main, name)(*args)
checker = types.ModuleType("checker"); checker.participant = participant
sys.modules["checker"] = checker
exec(compile(source, "<hidden tests>", "exec"), module.__dict__)
for name, fn in list(module.__dict__.items()):
    if name.startswith("test_") and callable(fn):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                fn()
        except BaseException as exc:
            results.append({"name": name, "passed": False, "message": str(exc)})
        else:
            results.append({"name": name, "passed": True, "message": ""})
real_stdout.write(json.dumps({"results": results}) + "\n")
"""


def _insecure_check(code: str, config: RunnerConfig) -> tuple[list[dict[str, object]], str]:
    result = runner.run_python(
        {"main.py": code, "tests.py": SECRET_TESTS, "harness.py": INSECURE_HARNESS},
        "harness.py",
        config=config,
    )
    tests = _parse_verdicts(result.stdout, test_specs(SECRET_TESTS), "messages") or []
    return tests, result.stdout + result.stderr


LATE_READER = """
import gc, sys
def answer():
    for obj in gc.get_objects():
        if isinstance(obj, dict) and isinstance(obj.get("SECRET"), str):
            sys.stderr.write(obj["SECRET"])
            return obj["SECRET"]
"""


def test_the_attacks_are_real_without_a_separate_checker(bwrap_config: RunnerConfig) -> None:
    # The tests' own globals are in the participant's process: the secret can be read...
    tests, output = _insecure_check(LATE_READER, bwrap_config)
    assert tests and tests[0]["passed"] and CANARY in output
    # ...an object equal to anything passes every comparison...
    tests, _ = _insecure_check(ATTACKS["always_equal"], bwrap_config)
    assert tests and all(t["passed"] for t in tests)
    # ...and a results line printed by the participant's code is taken as the verdict.
    tests, _ = _insecure_check(
        ATTACKS["forged_results_line"] + "\nimport os\nos._exit(0)\n", bwrap_config
    )
    assert tests and all(t["passed"] for t in tests)
    # The same three against the separate checker: nothing passes.
    for code in (LATE_READER, ATTACKS["always_equal"], ATTACKS["forged_results_line"]):
        verdict = judge_code(tests_source=SECRET_TESTS, code=code, config=bwrap_config)
        assert not any(t["passed"] for t in verdict.tests)


def test_code_killed_at_the_cpu_limit_is_a_time_out(bwrap_config: RunnerConfig) -> None:
    code = "def answer():\n    while True:\n        pass\n"
    verdict = judge_code(
        tests_source=SECRET_TESTS,
        code=code,
        config=bwrap_config,
        limits=runner.Limits(cpu_seconds=1, wall_seconds=12),
    )
    assert verdict.status == "timeout"
    assert "too long" in verdict.message
    assert not any(t["passed"] for t in verdict.tests)
