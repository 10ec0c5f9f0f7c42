"""The official Metaflow UI (v1.3.14 bundle) in headless Chromium, served by `mfs ui` over real
runs: what a person sees on the home page, a run page (DAG and timeline) and a task page
(attempts and logs), a card, a new run appearing live; no errors in the console. Screenshots of
each view go to docs/ui/."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from testkit import ROOT

from .browser import Browser, available
from .uikit import FLOWS

SHOTS = ROOT / "docs" / "ui"


@pytest.fixture
def browser():
    missing = available()
    if missing:
        pytest.fail(f"headless browser tests need Chromium: {missing}")
    b = Browser()
    try:
        yield b
    finally:
        b.close()


def shot(b: Browser, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    b.driver.save_screenshot(str(SHOTS / f"{name}.png"))


def runs(scene):
    return {r["flow_id"]: r for r in requests.get(scene.ui.url + "/api/runs", timeout=30).json()["data"]}


def test_home_run_and_task_pages(ui_scene, browser):
    b, url = browser, ui_scene.ui.url
    by_flow = runs(ui_scene)
    # home: every run, with its status icon's title
    b.driver.get(url + "/?timerange_start=0")
    text = b.wait_text("UiDemoFlow", "UiFailFlow", "UiSlowFlow", "tester")
    assert "Runs" in text
    shot(b, "home")
    # status filter from the sidebar's checkboxes (the UI puts them in the URL)
    b.driver.get(url + "/?timerange_start=0&status=failed")
    b.wait_text("UiFailFlow")
    time.sleep(1)
    assert "UiDemoFlow" not in b.text() and "UiSlowFlow" not in b.text()
    # run page: header with status and user, the timeline with every task
    demo = by_flow["UiDemoFlow"]["run_number"]
    b.driver.get(f"{url}/UiDemoFlow/{demo}/view/timeline")
    text = b.wait_text("Completed", "tester", "start", "each", "join", "flaky", "end")
    tasks = requests.get(f"{url}/api/flows/UiDemoFlow/runs/{demo}/tasks", timeout=30).json()["data"]
    for t in tasks:
        assert t["task_id"] in text.split("\n"), t["task_id"]
    shot(b, "run-timeline")
    # the DAG tab draws the flow's steps
    b.driver.get(f"{url}/UiDemoFlow/{demo}/view/dag")
    text = b.wait_text("start", "each", "join", "flaky", "end")
    shot(b, "run-dag")
    # task page of the retried step: both attempts, the lines it printed
    flaky = next(t for t in tasks if t["step_name"] == "flaky")["task_id"]
    b.driver.get(f"{url}/UiDemoFlow/{demo}/flaky/{flaky}")
    b.wait_text(
        "Attempt 0",
        "Attempt 1",
        "flaky attempt 1 says hello on stdout",
        "flaky attempt 1 complains on stderr",
        timeout=40,
    )
    shot(b, "task")
    # the failing run reads failed on its own page
    fail = by_flow["UiFailFlow"]["run_number"]
    b.driver.get(f"{url}/UiFailFlow/{fail}/view/timeline")
    b.wait_text("Failed", "boom")
    errors = b.console_errors()
    assert errors == [], errors


def test_card_renders(ui_scene, browser):
    b, url = browser, ui_scene.ui.url
    demo = runs(ui_scene)["UiDemoFlow"]["run_number"]
    start = requests.get(f"{url}/api/flows/UiDemoFlow/runs/{demo}/steps/start/tasks", timeout=30).json()[
        "data"
    ][0]
    b.driver.get(f"{url}/UiDemoFlow/{demo}/start/{start['task_id']}")
    b.wait_text("Task", "start")
    frames = []
    deadline = time.monotonic() + 30
    while not frames and time.monotonic() < deadline:
        frames = b.driver.find_elements("css selector", "iframe")
        time.sleep(0.5)
    assert frames, "no card iframe on the task page"
    assert "/cards/" in frames[0].get_attribute("src")
    shot(b, "card")
    assert b.console_errors() == []


def test_new_run_appears_without_reload(ui_scene, browser):
    b, url = browser, ui_scene.ui.url
    before = {r["run_number"] for r in requests.get(url + "/api/runs", timeout=30).json()["data"]}
    b.driver.get(url + "/?timerange_start=0")
    b.wait_text("UiDemoFlow")
    b.driver.execute_script("window.__mark = 'same page'")
    res = subprocess.run(
        [sys.executable, str(FLOWS / "ui_demo_flow.py"), "--no-pylint", "run", "--n", "1"],
        env=ui_scene.env,
        cwd=ui_scene.sysroot,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    new = {r["run_number"] for r in requests.get(url + "/api/runs", timeout=30).json()["data"]} - before
    assert len(new) == 1
    run_id = new.pop()
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(b.driver, 30, poll_frequency=0.5).until(
        lambda d: run_id in [c.text for c in d.find_elements("css selector", "td")],
        message="the new run never appeared",
    )
    assert b.driver.execute_script("return window.__mark") == "same page"
    assert b.console_errors() == []


def test_screenshots_are_in_docs():
    # the README shows these; the browser tests above (re)write them
    for name in ("home", "run-timeline", "run-dag", "task"):
        assert (Path(SHOTS) / f"{name}.png").exists(), name
