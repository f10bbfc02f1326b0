"""End-to-end tests: Debian's Chromium, driven by Playwright's sync API, goes through the
participant pages served by pytest-django's ``live_server`` (a real HTTP server on loopback,
the real sandbox for Run and Check, the test database).

One browser per session; a fresh browser context (cookies, localStorage) per test, so each
test is a new person. Screenshots go to ``test-artifacts/e2e/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

# Playwright's sync API drives the browser from a greenlet while its asyncio event loop stays
# running on the test's thread. Django's ORM refuses to run on a thread with a running event
# loop (SynchronousOnlyOperation), because in an async view a blocking query would stall the
# loop. Nothing async touches the database here: the tests query synchronously between
# browser steps, and the live server answers on ordinary threads. So the guard is switched off
# for this process; it must be set before the first query, hence at import time.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

# On SQLite, Django's test database is in memory by default, and the live server then shares
# the test thread's one connection with every request thread: concurrent requests (autosave,
# telemetry and a Check arriving together, as they do from this page) interleave their
# transactions on it and fail with "database table is locked". A test database file gives
# each thread its own connection, as in a real deployment. Set before the test database is
# created (at the first test that uses it), which is after collection; it applies to the
# whole session in which these tests are collected.
_db = settings.DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3" and not _db.get("TEST", {}).get("NAME"):
    _db.setdefault("TEST", {})["NAME"] = str(
        Path(tempfile.gettempdir()) / f"skilltrial-test-{os.getpid()}.sqlite3"
    )

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright  # noqa: E402

from trials.definition import TrialDefinition  # noqa: E402
from trials.models import Trial  # noqa: E402
from trials.services import trial_import, trial_launch  # noqa: E402

CHROMIUM = os.environ.get("SKILLTRIAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BUNDLE = Path(settings.BASE_DIR) / "frontend" / "dist" / "task.js"
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "e2e"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if not BUNDLE.exists():
        pytest.fail(f"the editor bundle {BUNDLE} is missing: run `make frontend` first")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def trial(live_server: object, sample_definition: TrialDefinition) -> Trial:
    """The sample trial, imported and launched in the (transactional) test database that the
    live server reads. A fresh randomization seed each test."""
    return trial_launch(trial=trial_import(definition=sample_definition).trial)


@pytest.fixture
def context(browser: Browser, live_server: object) -> Iterator[BrowserContext]:
    ctx = browser.new_context(
        base_url=str(live_server),
        viewport={"width": 1280, "height": 900},
        locale="en-GB",
        timezone_id="UTC",
    )
    ctx.set_default_timeout(15_000)
    yield ctx
    # Closing a page fires its pagehide beacons (autosave, telemetry). Block every request
    # first, and give the live server a moment to finish those already under way, so that no
    # request touches the test database while it is flushed: a late beacon deadlocked the
    # flush on PostgreSQL and left rows behind for the next test.
    ctx.route("**/*", lambda route: route.abort())
    for tab in ctx.pages:
        tab.close(run_before_unload=False)
    time.sleep(0.5)
    ctx.close()


@pytest.fixture
def page_errors() -> list[str]:
    return []


@pytest.fixture
def page(context: BrowserContext, page_errors: list[str]) -> Iterator[Page]:
    """A tab in the test's context. Uncaught JavaScript errors fail the test."""
    tab = context.new_page()
    tab.on("pageerror", lambda error: page_errors.append(f"{tab.url}: {error}"))
    yield tab
    assert not page_errors, f"JavaScript errors on the page: {page_errors}"
