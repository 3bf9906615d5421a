"""A real headless Chromium for the console's tests, driven by Playwright.

Playwright drives the system's Chromium (Debian's `chromium` package) through `executable_path`:
Playwright's own browser download needs a CDN this platform cannot reach. `KGMEM_CHROMIUM` names
another binary. Without one the tests fail and say how to install it; they never skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = ("no Chromium for the console's browser tests: install Debian's package (`apt-get install chromium`), "
                "or set KGMEM_CHROMIUM to a Chromium or Chrome binary; scripts/test installs it when run as root")


def find_chromium() -> str:
    configured = os.environ.get("KGMEM_CHROMIUM")
    if configured:
        if not os.access(configured, os.X_OK):
            pytest.fail(f"KGMEM_CHROMIUM={configured} is not an executable file", pytrace=False)
        return configured
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(INSTALL_HINT, pytrace=False)


@contextmanager
def chromium() -> Iterator:
    """A headless Chromium (Playwright's Browser) for as long as the block runs."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the console's browser tests need Playwright: pip install -e '.[dev]' (scripts/test does)",
                    pytrace=False)
    executable = find_chromium()
    with sync_playwright() as playwright:
        # --no-sandbox: containers running as root have no user namespaces for Chromium's sandbox.
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for a test module."""
    with chromium() as opened:
        yield opened


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where screenshots go: KGMEM_CONSOLE_SCREENSHOTS (docs/console to refresh the docs), else a temp dir."""
    folder = Path(os.environ.get("KGMEM_CONSOLE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
