"""Shared fixtures. Identities are tested in float64 on the CPU, so x64 is switched on here.

The site and browser fixtures build the book once per session into a temporary directory, serve
it on 127.0.0.1, and drive Debian's Chromium through Playwright (never a downloaded browser).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)
# Compile for real in tests: a persistent-cache hit would hide a compilation from tests/test_widget_compiles.py,
# and a test run should not write into the user's cache. (Kernels started by the browser tests keep it.)
os.environ.setdefault("DESCENT_DYNAMICS_CACHE_DIR", "off")

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """Drop JAX's compiled executables after each test module.

    Every executable XLA's CPU backend keeps maps its own memory pages. One pytest process runs the whole
    suite, and the maps add up: two modules (test_deer, test_scan_explorer) left about 8,600, and the whole
    suite passed Linux's default limit of 65,530 (``vm.max_map_count``), where the next compilation's mmap
    fails and XLA segfaults (it did, in CI). Tests that count compilations do so within one module.
    """
    yield
    jax.clear_caches()


CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """The book's HTML, built from the committed notebooks with warnings as errors."""
    if not (BOOK / "_vendor" / ".stamp").exists():
        pytest.fail("book/_vendor is missing: run `make install` (it vendors MathJax and plotly.js)")
    out = tmp_path_factory.mktemp("site")
    cmd = [
        str(Path(sys.executable).parent / "jupyter-book"),
        "build",
        str(BOOK),
        "--path-output",
        str(out),
        "--warningiserror",
        "--nitpick",
        "--keep-going",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out / "_build" / "html"


@contextlib.contextmanager
def serve(directory: Path):
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def site_url(built_site):
    with serve(built_site) as url:
        yield url


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    """A Playwright context on Debian's Chromium. Skipped without the browser, except under CI=true."""
    executable = chromium_path()
    if executable is None:
        message = "Debian's chromium is not installed (apt-get install chromium; .ci/run does it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is in the dev extra
        pytest.fail("playwright is not installed: run `make install`")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Lets fixtures see how their test went (``request.node.rep_call``): the page fixture saves evidence.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def page(browser_context, request, tmp_path):
    """A fresh browser page that records its console. If the test fails, a full-page screenshot and the
    console go into the test's temporary folder, and their paths are printed in the report."""
    page = browser_context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
    page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        shot, log = tmp_path / "failure.png", tmp_path / "console.log"
        try:
            page.screenshot(path=str(shot), full_page=True)
        except Exception as error:  # the page may be gone; the console is still worth having
            shot = f"(no screenshot: {error})"
        log.write_text("\n".join(console) + "\n")
        print(f"\nbrowser test failed at {page.url}\n  screenshot: {shot}\n  console: {log}")
    page.close()
