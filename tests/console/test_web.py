"""The web console in a real headless Chromium (Debian's, driven by Playwright; no download).

Loads the page through the token login, sends ``/status`` in the chat and reads the
answer, sees a pending promotion with both models' metrics, approves it from the
browser and sees the round promoted.
"""

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the console extra is not installed")
uvicorn = pytest.importorskip("uvicorn")

from selfimprove.console.server import create_app  # noqa: E402
from selfimprove.runs import Run  # noqa: E402
from selfimprove.testing.runs import start_scripted_run  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags a closed network needs: without them Chromium keeps dialling Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "test-token-0123456789abcdef"

if CHROMIUM is None:
    if os.environ.get("CI"):
        pytest.fail("CI needs Debian's chromium for the console test (make test installs it)")
    pytest.skip("no chromium on this machine (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def console(tmp_path):
    """A scripted run waiting for approval of round 1, and the console serving it."""
    handle = start_scripted_run(tmp_path / "run", rounds=1, require_approval=True)
    run = Run(tmp_path / "run")
    deadline = time.monotonic() + 30
    while run.status().state != "awaiting_approval":
        assert time.monotonic() < deadline, run.status()
        time.sleep(0.05)
    port = _free_port()
    app = create_app(tmp_path / "run", token=TOKEN)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", run, handle
    server.should_exit = True
    thread.join(10)


def test_operator_approves_a_promotion_from_the_browser(console, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, run, handle = console
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        try:
            assert page.goto(f"{url}/console/").status == 401  # no token, no console
            assert page.goto(f"{url}/login?token=wrong").status == 401
            page.goto(f"{url}/login?token={TOKEN}")  # sets the cookie, redirects to /console/
            chat = page.locator("#chat-input textarea")
            chat.wait_for(timeout=30_000)
            chat.fill("/status")
            chat.press("Enter")
            expect(page.locator("#chatbot")).to_contain_text(
                re.compile(r"awaiting.approval"), timeout=15_000
            )

            approval = page.locator("#approval-text")
            expect(approval).to_be_visible(timeout=15_000)
            expect(approval).to_contain_text("Round 1")
            expect(approval).to_contain_text("60.0%")  # the candidate, next to ...
            expect(approval).to_contain_text("30.0%")  # ... the incumbent
            page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
            if shot := os.environ.get("SELFIMPROVE_SCREENSHOT"):
                page.screenshot(path=shot, full_page=True)

            page.locator("#approve").click()
            expect(page.locator("#decision")).to_contain_text("Approved", timeout=15_000)
            handle.wait(30)
            expect(page.locator("#status")).to_contain_text("finished", timeout=15_000)
            page.get_by_role("tab", name="Rounds").click()
            expect(page.locator("#rounds")).to_contain_text("yes", timeout=15_000)
            expect(approval).to_be_hidden(timeout=15_000)
        finally:
            browser.close()
    rounds = run.rounds()
    assert rounds[1].promoted
    assert rounds[1].reasons[-1] == "promotion approved by console"
    assert Path(tmp_path / "console.png").stat().st_size > 10_000
