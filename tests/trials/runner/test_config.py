"""Choosing the sandbox, forcing the fallback, saying so loudly, and refusing bad input."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from trials.runner import (
    ENV_SANDBOX,
    InvalidRun,
    RunnerConfig,
    SandboxUnavailable,
    run_python,
    sandbox_kind,
    sandbox_status,
)
from trials.runner import sandbox as sandbox_module

from .conftest import make_config


def test_the_environment_variable_forces_the_fallback(
    monkeypatch: pytest.MonkeyPatch, state_dir: Path, uid_base: int
) -> None:
    monkeypatch.setenv(ENV_SANDBOX, "fallback")
    assert RunnerConfig.from_env().mode == "fallback"
    assert sandbox_kind() == "fallback"
    config = dataclasses.replace(
        make_config("fallback", state_dir, uid_base), mode=RunnerConfig.from_env().mode
    )
    result = run_python({"main.py": "print('hi')\n"}, "main.py", config=config)
    assert result.sandbox == "fallback"
    assert result.stdout == "hi\n"


def test_an_unknown_sandbox_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match=ENV_SANDBOX):
        RunnerConfig.from_env({ENV_SANDBOX: "none"})
    assert RunnerConfig.from_env({}).mode == "auto"
    assert RunnerConfig.from_env({ENV_SANDBOX: " BWRAP "}).mode == "bwrap"


def test_the_fallback_is_announced_loudly_once(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    state_dir: Path,
    uid_base: int,
) -> None:
    monkeypatch.setattr(sandbox_module, "_warned", False)
    config = make_config("fallback", state_dir, uid_base)
    with caplog.at_level(logging.WARNING, logger="skilltrial.runner"):
        for _ in range(2):
            assert run_python({"main.py": "pass\n"}, "main.py", config=config).ok
    warnings = [r for r in caplog.records if "WEAK FALLBACK SANDBOX" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].name == "skilltrial.runner"
    assert warnings[0].levelno == logging.WARNING


def test_without_bwrap_auto_falls_back_and_bwrap_mode_refuses() -> None:
    status = sandbox_status(RunnerConfig(mode="auto", bwrap=None))
    assert status.kind == "fallback"
    assert "not installed" in status.detail
    with pytest.raises(SandboxUnavailable, match="not installed"):
        sandbox_status(RunnerConfig(mode="bwrap", bwrap=None))


def test_a_bwrap_that_cannot_make_a_sandbox_means_the_fallback() -> None:
    status = sandbox_status(RunnerConfig(mode="auto", bwrap="/bin/false"))
    assert status.kind == "fallback"
    assert "cannot make a sandbox" in status.detail


@pytest.mark.parametrize(
    "name", ["../escape.py", "/etc/cron.d/x.py", "a/../../b.py", "./main.py", "a//b.py", "x\0.py"]
)
def test_file_names_outside_the_run_directory_are_refused(
    name: str, state_dir: Path, uid_base: int
) -> None:
    config = make_config("fallback", state_dir, uid_base)
    with pytest.raises(InvalidRun):
        run_python({name: "print(1)\n"}, name, config=config)


def test_the_entry_point_must_be_one_of_the_files(state_dir: Path, uid_base: int) -> None:
    config = make_config("fallback", state_dir, uid_base)
    with pytest.raises(InvalidRun, match="entry point"):
        run_python({"main.py": "print(1)\n"}, "other.py", config=config)
