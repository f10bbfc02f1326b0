"""The checker: runs the hidden tests in their own sandbox and prints the verdicts.

The tests arrive on standard input (never as a file) and are compiled here; the participant's
program runs in another sandbox and is reached only through ``checker.participant``. Only this
process writes the results, to its own standard output, which the server alone reads."""

import contextlib
import ctypes
import io
import json
import sys
import types

import checker

PR_SET_DUMPABLE = 4


def _not_dumpable():
    # Where both sandboxes share a uid (the non-root fallback), keep the participant's process
    # from reading this one's memory through /proc or ptrace.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def describe_failure(exc):
    if isinstance(exc, checker.ParticipantError | checker.CallTimeout | checker.ProgramGone):
        return str(exc), True
    if isinstance(exc, AssertionError):
        return str(exc), False
    # An error inside the test itself (often a wrong type coming back): its message may hold
    # expected values, so only the type is shown.
    return f"the test could not finish ({type(exc).__name__})", True


def main():
    _not_dumpable()
    real_stdout = sys.stdout
    request = json.loads(sys.stdin.read())
    read_fd, write_fd = int(sys.argv[1]), int(sys.argv[2])
    checker.participant.connection = checker._Connection(read_fd, write_fd)
    checker.participant.start_timeout = float(request.get("start_timeout", 10.0))
    names = request["names"]
    module = types.ModuleType("tests")
    module.__file__ = "<hidden tests>"
    sys.modules["tests"] = module
    results = []
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(request["tests"], "<hidden tests>", "exec"), module.__dict__)  # noqa: S102
    except BaseException as exc:
        message = (
            f"the hidden tests could not be loaded ({type(exc).__name__}); tell the experimenter"
        )
        results = [
            {"name": name, "passed": False, "message": message, "error": True} for name in names
        ]
    else:
        for name in names:
            fn = module.__dict__.get(name)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    fn()
            except BaseException as exc:
                message, from_checker = describe_failure(exc)
                results.append(
                    {"name": name, "passed": False, "message": message[:300], "error": from_checker}
                )
            else:
                results.append({"name": name, "passed": True, "message": "", "error": False})
    real_stdout.write(json.dumps({"results": results}) + "\n")
    real_stdout.flush()


if __name__ == "__main__":
    main()
