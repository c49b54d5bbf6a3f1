"""Debian's headless Chromium driven by Selenium, for the topology page's tests.

Chromium and its driver come from apt (``chromium``, ``chromium-driver``): nothing is
downloaded. Selenium Manager is never asked for a driver (the driver's path is given) and is
told to stay offline. Chromium runs headless with a fresh profile and with every background
service that would phone home switched off (this machine refuses such traffic, and a test must
not send it). The browser is started in the calling thread's network namespace, so a test
that enters the daemon's namespace first reaches the daemon's loopback listener.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
)


@contextmanager
def chromium() -> Iterator[object]:
    """A Selenium WebDriver on headless Chromium (skips when Debian's packages are missing)."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("no chromium/chromium-driver (scripts/setup.sh --test installs them)")
    os.environ.setdefault("SE_OFFLINE", "true")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="cnm-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()
