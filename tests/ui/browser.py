"""Headless Debian Chromium driven by Selenium (chromedriver from Debian's chromium-driver): a
fresh profile per browser, console errors collected, stopped on every path."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]


def available() -> str | None:
    """None when Chromium and its driver are installed, else what is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    return (
        f"missing {', '.join(missing)} (apt-get install chromium chromium-driver; .ci/run does)"
        if missing
        else None
    )


class Browser:
    def __init__(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="mfs-ui-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for f in FLAGS + [f"--user-data-dir={self.profile}"]:
            opts.add_argument(f)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.service = Service(CHROMEDRIVER)
        try:
            self.driver = webdriver.Chrome(service=self.service, options=opts)
        except BaseException:
            self.service.stop()
            shutil.rmtree(self.profile, ignore_errors=True)
            raise
        self.driver.set_page_load_timeout(60)

    def console_errors(self) -> list[str]:
        """SEVERE console entries, but for external hosts this offline machine cannot resolve
        (the default card links Google Fonts)."""
        return [
            e["message"]
            for e in self.driver.get_log("browser")
            if e["level"] == "SEVERE"
            and not ("net::ERR_NAME_NOT_RESOLVED" in e["message"] and "127.0.0.1" not in e["message"])
        ]

    def text(self) -> str:
        return self.driver.find_element("tag name", "body").text

    def wait_text(self, *needles: str, timeout: float = 30) -> str:
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, timeout, poll_frequency=0.3).until(
            lambda d: all(n in d.find_element("tag name", "body").text for n in needles),
            message=f"never showed {needles}",
        )
        return self.text()

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            self.service.stop()
            shutil.rmtree(self.profile, ignore_errors=True)
