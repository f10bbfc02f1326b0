from __future__ import annotations

import pytest

from tests.fakes.llm_server import llm_server  # noqa: F401  (the fixture)

TEST_KEY = "sk-test-7f3a9c2e1b-do-not-log"
KEY_ENV = "SKILLTRIAL_TEST_LLM_KEY"


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fake API key in the environment variable the test settings name."""
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    return TEST_KEY
