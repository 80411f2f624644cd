"""The web console end to end: Playwright drives Debian's Chromium (no browser download)
against a real gateway (archive on, a file:// store) in front of the simulator.

An admin signs in, creates a key and signs out; the member signs in with it, generates a
video and sees its progress, then its last frame and the player; the admin sees the task among
the recent ones (thumbnail from the archive's signed link) and revokes the key. Screenshots of
both views are taken every run; with UPDATE_SCREENSHOTS=1 they go to docs/ for the README
(otherwise to the test's folder, so a test run leaves the checkout unchanged).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from tests.conftest import SimulatorFactory
from tests.leaks import CANARY_ADMIN_KEY, LeakTrap, RecordingApp
from tests.servers import ServerThread, gateway_config

pytestmark = [pytest.mark.e2e]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DOCS = Path(__file__).resolve().parent.parent / "docs"
TIMEOUT_MS = 30_000  # a shared two-core machine renders slowly; the steps take ~1 s each
# User text with markup in it: shown as typed, never parsed.
PROMPT = 'A lighthouse at dusk, <i>slow</i> waves & "gulls" <img src=x onerror="pwned=1">'


def wait_until(page: Any, script: str) -> None:
    """Polls a JS expression until true (page.wait_for_function compiles it with eval, which
    the console's Content-Security-Policy refuses, as it should)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not page.evaluate(script):
        assert time.monotonic() < deadline, f"still false after {TIMEOUT_MS} ms: {script}"
        time.sleep(0.1)


def _browser_or_skip() -> Any:
    """Playwright's sync API, or a skip naming what is missing (a failure under CI=true)."""
    in_ci = os.environ.get("CI", "").lower() not in ("", "0", "false")
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install -e '.[test]')"
    if missing is None and not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if missing is not None:
        if in_ci:
            pytest.fail(f"CI=true but {missing}")
        pytest.skip(missing)
    return sync_playwright


@pytest.fixture
def console_gateway(start_simulator: SimulatorFactory, leak_trap: LeakTrap,
                    tmp_path: Path) -> Iterator[ServerThread]:
    simulator = start_simulator(delay=4.5)  # queued 1.5 s, then running: progress shows
    extra = {
        "admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]},
        "results": {"store": f"file://{tmp_path / 'archive'}", "signing_secret": "${LINK}"},
        # A made-up price, so the views show costs (not Ark's: config.example.yaml cites them).
        "prices": {"currency": "CNY",
                   "models": {"doubao-seedance-2-0-fast-260128": {"per_million_tokens": 10}}},
    }
    config = gateway_config(simulator.url + "/api/v3", store_url=f"sqlite:///{tmp_path}/t.db",
                            extra=extra,
                            env={"ADMIN_KEY": CANARY_ADMIN_KEY, "LINK": "console-link-secret"})
    server = ServerThread(RecordingApp(create_app(config), leak_trap)).start()
    yield server
    server.stop()


def test_admin_and_member_use_the_console(console_gateway: ServerThread,
                                          tmp_path: Path) -> None:
    sync_playwright = _browser_or_skip()
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    base = console_gateway.url
    shots = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu",
                                          "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("dialog", lambda dialog: dialog.accept())  # rotate and revoke confirm first
        elsewhere: list[str] = []  # the page works offline: it asks nothing of other hosts
        page.on("request", lambda request: None if request.url.startswith(
            (base + "/", "blob:", "data:")) else elsewhere.append(request.url))

        def sign_in(secret: str) -> None:
            page.get_by_label("Key", exact=True).fill(secret)
            page.get_by_test_id("signin-submit").click()

        page.goto(base + "/")
        assert page.url == base + "/console"

        # The admin creates a key for carol; its secret is shown once.
        sign_in(CANARY_ADMIN_KEY)
        expect(page.get_by_test_id("who")).to_have_text("Admin")
        expect(page.get_by_test_id("key-row-alice")).to_be_visible()
        page.get_by_test_id("create-key-open").click()
        page.get_by_test_id("create-name").fill("carol")
        page.get_by_test_id("create-daily_tokens").fill("50000000")
        page.get_by_test_id("create-submit").click()
        expect(page.get_by_test_id("new-secret")).to_contain_text("sgw-")
        carol_key = page.get_by_test_id("new-secret").inner_text().strip()
        expect(page.get_by_test_id("key-state-carol")).to_have_text("active")
        page.get_by_test_id("key-edit-carol").click()
        page.get_by_test_id("edit-rpm").fill("60")
        page.get_by_test_id("edit-save").click()
        expect(page.get_by_test_id("key-row-carol")).to_contain_text("60")
        page.get_by_test_id("key-rotate-carol").click()
        expect(page.get_by_test_id("new-secret")).not_to_have_text(carol_key)
        old_key, carol_key = carol_key, page.get_by_test_id("new-secret").inner_text().strip()
        assert carol_key.startswith("sgw-")
        page.get_by_test_id("signout").click()
        expect(page.get_by_test_id("signin-key")).to_be_visible()
        assert page.evaluate("sessionStorage.length") == 0

        # carol generates a video: progress, then the last frame and the player.
        sign_in(carol_key)
        expect(page.get_by_test_id("member-view")).to_be_visible()
        page.get_by_test_id("gen-prompt").fill(PROMPT)
        page.get_by_test_id("gen-size").select_option("1280x720")
        page.get_by_test_id("gen-seconds").select_option("5")
        page.get_by_test_id("gen-submit").click()
        expect(page.get_by_test_id("gen-status")).to_have_text(re.compile("queued|in_progress"))
        expect(page.get_by_test_id("gen-status")).to_have_text("completed")
        thumbnail = page.get_by_test_id("gen-thumbnail")
        expect(thumbnail).to_be_visible()
        wait_until(page, "document.getElementById('gen-thumbnail').naturalWidth > 0")
        video = page.get_by_test_id("gen-video")
        expect(video).to_be_visible()
        wait_until(page, "document.getElementById('gen-video').readyState >= 1")
        task_id = page.get_by_test_id("gen-id").inner_text()
        row = page.get_by_test_id(f"my-task-{task_id}")
        expect(row).to_contain_text(PROMPT)  # shown as text, never as markup
        assert page.evaluate("window.pwned") is None
        assert page.evaluate("document.querySelector('main i, main img[src=x]')") is None
        page.screenshot(path=str(shots / "console-member.png"), full_page=True)
        page.get_by_test_id("signout").click()

        # The admin sees it among the recent tasks, its last frame from the archive.
        sign_in(CANARY_ADMIN_KEY)
        task_row = page.get_by_test_id(f"task-row-{task_id}")
        expect(task_row).to_contain_text("carol")
        expect(task_row.get_by_test_id("task-status")).to_have_text("succeeded")
        expect(task_row.get_by_test_id("task-thumbnail")).to_be_visible()
        wait_until(page, "[...document.querySelectorAll('[data-testid=task-thumbnail]')]"
                   ".some(img => img.naturalWidth > 0)")
        expect(page.get_by_test_id("counter-tasks-today")).to_have_text("1")
        expect(page.get_by_test_id("counter-cost-today")).to_contain_text("CNY")
        expect(task_row).to_contain_text("CNY")
        expect(page.get_by_test_id("usage-chart").locator("rect")).to_have_count(1)
        page.screenshot(path=str(shots / "console-admin.png"), full_page=True)
        task_row.get_by_test_id("task-play").click()
        wait_until(page, "document.getElementById('player-video').readyState >= 1")
        page.get_by_test_id("player-close").click()

        # Revoked: the key stops working at once.
        page.get_by_test_id("key-revoke-carol").click()
        expect(page.get_by_test_id("key-state-carol")).to_have_text("revoked")

        # The API, readable by people: /docs lays out /openapi.json.
        page.get_by_test_id("api-docs").click()
        expect(page.get_by_test_id("docs-status")).to_contain_text("operations")
        operations = page.get_by_test_id("operation")
        expect(operations.filter(has_text="GET /v1/models")).to_have_count(2)
        assert operations.count() >= 30
        operations.filter(has_text="POST /v1/videos").first.click()
        expect(operations.filter(has_text="POST /v1/videos").first).to_contain_text(
            "multipart/form-data")
        browser.close()
    assert errors == [] and elsewhere == []
    for gone in (old_key, carol_key):  # rotated, then revoked
        refused = httpx.get(base + "/v1/videos", headers={"Authorization": f"Bearer {gone}"})
        assert refused.status_code == 401
