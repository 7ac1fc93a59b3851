"""Debian's Chromium driven by Playwright, for the dashboard's browser tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = os.environ.get("WCMS_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
VIEWPORT = {"width": 1366, "height": 768}


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"Chromium is not at {CHROMIUM} (apt-get install chromium fonts-noto-cjk)"
    return None


def require_browser() -> None:
    """Skip with the reason, or fail in CI where the browser must be there."""
    problem = missing()
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"browser tests cannot run: {problem}")
    pytest.skip(problem)


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def login(browser: Any, url: str, *, locale: str = "en-US", **options: Any) -> Any:
    """A page in a fresh browser context, logged in as admin."""
    context = browser.new_context(
        viewport=VIEWPORT, locale=locale, timezone_id="Asia/Seoul", **options
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(url + "/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "admin-password-1")
    page.click("button.primary")
    page.wait_for_url(url + "/")
    return page
