"""Real-browser tests (Playwright driving Debian's Chromium, headless).

1. The built site: chapter 1's plotly figures are drawn, math is typeset, the static
   OptimizerRace slider changes its figure, and no request leaves 127.0.0.1.
2. JupyterLab on a temporary copy of the book: chapter 1 runs top to bottom, and pressing Play on
   the OptimizerRace makes its trajectory grow.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from widgets.base import READY_CLASS as READY

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

pytestmark = pytest.mark.browser

# Waits are for signals (a readiness marker, a counter), never fixed sleeps. Each limit is at least
# three times what the wait takes on a 2-core CPU here, so a slower machine still passes.
SLOW = 60_000  # ms
VISIBLE_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in front (others may be open, hidden)


# sphinx-thebe (bundled with Jupyter Book 1) declares its config constant twice on every page; thebe
# itself is never loaded (no launch button), as the request check below shows.
KNOWN_PAGE_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)


def _local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("data", "blob", "about") or parsed.hostname == "127.0.0.1"


# --- the site ------------------------------------------------------------------------------------

SLIDER_FIGURE = (
    "[...document.querySelectorAll('.js-plotly-plot')].find(gd => gd.layout && gd.layout.sliders && gd.layout.sliders.length)"
)


def test_site_chapter_1_draws_its_figures_offline(page, site_url):
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{site_url}/01_gradient_descent.html", wait_until="load")

    expected = page.locator(".plotly-graph-div").count()
    assert expected >= 6
    page.wait_for_function(
        "[...document.querySelectorAll('.plotly-graph-div')]"
        f".filter(gd => gd._fullData && gd.querySelector('.main-svg')).length === {expected}",
        timeout=60_000,
    )
    page.wait_for_function("document.querySelectorAll('mjx-container').length > 10", timeout=60_000)

    # The static OptimizerRace: move its learning-rate slider and watch the first path change.
    handle = page.evaluate_handle(SLIDER_FIGURE)
    assert handle.evaluate("gd => gd !== undefined")
    handle.evaluate("gd => gd.scrollIntoView({block: 'center'})")
    before = handle.evaluate("gd => Array.from(gd._fullData.find(t => t.mode === 'lines+markers').x)")
    active_before = handle.evaluate("gd => gd.layout.sliders[0].active")
    rail = handle.as_element().query_selector(".slider-rail-touch-rect")
    box = rail.bounding_box()
    page.mouse.click(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)  # the last step
    page.wait_for_function(f"({SLIDER_FIGURE}).layout.sliders[0].active !== {active_before}", timeout=10_000)
    after = handle.evaluate("gd => Array.from(gd._fullData.find(t => t.mode === 'lines+markers').x)")
    assert after != before
    name = handle.evaluate("gd => gd._fullData.find(t => t.mode === 'lines+markers').name")
    assert "diverged" in name  # the last learning rate is past 2/L

    assert not [e for e in errors if e not in KNOWN_PAGE_ERRORS], errors
    outside = [u for u in requests if not _local(u)]
    assert not outside, f"requests left 127.0.0.1: {outside[:5]}"


# --- JupyterLab ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """JupyterLab on a temporary copy of the book, isolated config, random token, on 127.0.0.1."""
    base = tmp_path_factory.mktemp("lab")
    notebooks = base / "book"
    shutil.copytree(BOOK, notebooks, ignore=shutil.ignore_patterns("_build", "_vendor", "node_modules"))
    settings = base / "settings"
    for plugin, values in {
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token, port = secrets.token_hex(16), _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "DESCENT_DYNAMICS_TEST_MODE": "1",
    }
    # The kernel spec comes from this environment (sys.prefix), not from the isolated data dir.
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.root_dir={notebooks}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.allow_root=True",
        "--LabApp.expose_app_in_browser=True",
    ]
    log = open(base / "lab.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("JupyterLab did not start:\n" + (base / "lab.log").read_text()[-3000:])
            time.sleep(0.3)
    try:
        yield url, token
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


RACE = "[...document.querySelectorAll('.widget-vbox')].find(v => v.querySelector('.widget-play') && v.querySelector('.js-plotly-plot'))"  # noqa: E501
# The number of points on the race's GD path, or -1 while the widget is not drawn yet.
GD_PATH_LENGTH = f"""(() => {{
    const v = {RACE}; if (!v) return -1;
    const gd = v.querySelector('.js-plotly-plot'); if (!gd._fullData) return -1;
    const t = gd._fullData.find(t => t.name && t.name.startsWith('GD') && t.mode === 'lines+markers');
    return t ? t.x.length : -1;
}})()"""


def test_lab_runs_chapter_1_and_the_race_trains_live(page, jupyterlab):
    url, token = jupyterlab
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/lab/tree/01_gradient_descent.ipynb?token={token}", wait_until="domcontentloaded")
    page.wait_for_function(
        "window.jupyterapp && window.jupyterapp.shell.currentWidget && window.jupyterapp.shell.currentWidget.sessionContext",
        timeout=90_000,
    )
    page.wait_for_function(
        """(() => {
            const s = window.jupyterapp.shell.currentWidget.sessionContext;
            return s.session && s.session.kernel && s.session.kernel.status === 'idle';
        })()""",
        timeout=90_000,
    )
    page.evaluate("window.jupyterapp.commands.execute('runmenu:run-all')")
    # Every code cell has run when no prompt shows [*] and the last code cell has a number.
    page.wait_for_function(
        """(() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
            return prompts.length > 0 && !prompts.some(p => p.includes('*')) && /\\[\\d+\\]/.test(prompts[prompts.length - 1]);
        })()""",
        timeout=240_000,
        polling=1000,
    )
    assert page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count() == 0
    # The race marks itself ready once its first frame is drawn; then plotly draws it in the page.
    page.wait_for_selector(f"{VISIBLE_PANEL} .{READY}.widget-vbox .js-plotly-plot", timeout=SLOW)
    page.wait_for_function(f"{GD_PATH_LENGTH} > 0", timeout=SLOW)
    before = page.evaluate(GD_PATH_LENGTH)

    race = page.locator(f"{VISIBLE_PANEL} .{READY}.widget-vbox:has(.widget-play)").first
    race.scroll_into_view_if_needed()
    play_pause = race.locator(".widget-play button").first  # ipywidgets 8: one play/pause toggle, then stop
    play_pause.click()
    page.wait_for_function(f"{GD_PATH_LENGTH} > {before} + 10", timeout=SLOW)
    play_pause.click()
    # Paused: once the ticks already sent have been handled, the path stops growing.
    lengths = [page.evaluate(GD_PATH_LENGTH)]
    for _ in range(15):
        page.wait_for_timeout(1000)
        lengths.append(page.evaluate(GD_PATH_LENGTH))
        if lengths[-1] == lengths[-2]:
            break
    assert lengths[-1] == lengths[-2] > before, lengths
    status = race.locator(".widget-html").first.inner_text()
    assert "steps/s" in status and ("CPU" in status or "GPU" in status)
    assert not [e for e in errors if "plotly" in e.lower() or "widget" in e.lower()], errors


EXPLORER_NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "explorer",
            "metadata": {},
            "outputs": [],
            "source": "from widgets import LandscapeExplorer\n\n"
            "explorer = LandscapeExplorer('GD', learning_rate=1.0, width=8, num_points=64, grid=15, steps_per_frame=20)\n"
            "explorer",
        }
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}
# Within the notebook in front: the book's chapter 1 may be open (and hidden) in another tab, with its race.
EXPLORER = "[...window.jupyterapp.shell.currentWidget.node.querySelectorAll('.widget-vbox')].find(v => v.querySelector('.widget-play') && v.querySelector('.js-plotly-plot'))"  # noqa: E501

# The training step the explorer's status line reports, or -1 while the widget is not drawn yet.
EXPLORER_STEP = f"""(() => {{
    const v = {EXPLORER}; if (!v) return -1;
    const m = (v.querySelector('.widget-html') || {{}}).innerText?.match(/step (\\d+)/);
    return m ? Number(m[1]) : -1;
}})()"""


def _run_notebook(page, jupyterlab, name: str, notebook: dict) -> list[str]:
    """Upload ``notebook`` as ``name.ipynb``, open it, run all its cells and wait for the app's first frame.

    Returns the list that collects the page's JavaScript errors from then on.
    """
    url, token = jupyterlab
    request = urllib.request.Request(
        f"{url}/api/contents/{name}.ipynb?token={token}",
        data=json.dumps({"type": "notebook", "format": "json", "content": notebook}).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/lab/tree/{name}.ipynb?token={token}", wait_until="domcontentloaded")
    page.wait_for_function(
        f"""(() => {{
            const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            if (!w || !w.context || !w.context.path.endsWith('{name}.ipynb')) return false;
            const s = w.sessionContext;
            return s && s.session && s.session.kernel && s.session.kernel.status === 'idle';
        }})()""",
        timeout=90_000,
    )
    page.evaluate("window.jupyterapp.commands.execute('runmenu:run-all')")
    page.wait_for_selector(f"{VISIBLE_PANEL} .{READY}.widget-vbox .js-plotly-plot", timeout=3 * SLOW)  # first frame drawn
    return errors


def test_lab_landscape_explorer_trains_live(page, jupyterlab):
    errors = _run_notebook(page, jupyterlab, "explorer", EXPLORER_NOTEBOOK)
    page.wait_for_function(f"{EXPLORER_STEP} === 0", timeout=SLOW, polling=500)
    explorer = page.locator(f"{VISIBLE_PANEL} .{READY}.widget-vbox:has(.widget-play)").first
    explorer.scroll_into_view_if_needed()
    play_pause = explorer.locator(".widget-play button").first
    play_pause.click()
    page.wait_for_function(f"{EXPLORER_STEP} >= 60", timeout=3 * SLOW, polling=500)
    play_pause.click()
    status = explorer.locator(".widget-html").first.inner_text()
    assert "steps/s" in status and ("CPU" in status or "GPU" in status)
    # The loss surface and the path are drawn: a contour trace with data, and a path of several points.
    traces = page.evaluate(
        f"(() => {{ const gd = {EXPLORER}.querySelector('.js-plotly-plot'); "
        "return gd._fullData.map(t => [t.type, t.name, (t.x || []).length]); })()"
    )
    assert any(kind == "contour" and n > 0 for kind, _, n in traces), traces
    assert any(name == "path" and n >= 4 for _, name, n in traces), traces
    assert any(name == "λ1" and n >= 4 for _, name, n in traces), traces  # the top eigenvalue, once per frame
    assert page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count() == 0
    assert not [e for e in errors if "plotly" in e.lower() or "widget" in e.lower()], errors


TRAINER_NOTEBOOK = {
    **EXPLORER_NOTEBOOK,
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "trainer",
            "metadata": {},
            "outputs": [],
            "source": "from widgets import LiveTrainer\n\n"
            "trainer = LiveTrainer('moons', methods=('GD', 'Adam', 'K-FAC'), num_points=64, width=8, steps_per_frame=10)\n"
            "trainer",
        }
    ],
}
TRAINER = EXPLORER  # the app in the notebook in front: a box with a Play button and a plot
# The number of points on the trainer's GD loss curve, or -1 while the widget is not drawn yet.
TRAINER_GD_STEPS = f"""(() => {{
    const v = {TRAINER}; if (!v) return -1;
    const gd = v.querySelector('.js-plotly-plot'); if (!gd || !gd._fullData) return -1;
    const t = gd._fullData.find(t => t.meta === 'loss GD');
    return t ? t.x.length : -1;
}})()"""


def test_lab_live_trainer_trains_live(page, jupyterlab):
    errors = _run_notebook(page, jupyterlab, "trainer", TRAINER_NOTEBOOK)
    page.wait_for_function(f"{TRAINER_GD_STEPS} === 1", timeout=SLOW, polling=500)  # step 0 only
    trainer = page.locator(f"{VISIBLE_PANEL} .{READY}.widget-vbox:has(.widget-play)").first
    trainer.scroll_into_view_if_needed()
    play_pause = trainer.locator(".widget-play button").first
    play_pause.click()
    page.wait_for_function(f"{TRAINER_GD_STEPS} > 30", timeout=3 * SLOW, polling=500)
    play_pause.click()
    # Paused: once the ticks already sent have been handled, the curve stops growing.
    lengths = [page.evaluate(TRAINER_GD_STEPS)]
    for _ in range(15):
        page.wait_for_timeout(1000)
        lengths.append(page.evaluate(TRAINER_GD_STEPS))
        if lengths[-1] == lengths[-2]:
            break
    assert lengths[-1] == lengths[-2] > 30, lengths
    status = trainer.locator(".widget-html").first.inner_text()
    assert "steps/s" in status and ("CPU" in status or "GPU" in status)
    assert "K-FAC: step" in status
    # The regions and the data are drawn; the speed bars have one bar per method.
    traces = page.evaluate(
        f"(() => {{ const gd = {TRAINER}.querySelector('.js-plotly-plot'); "
        "return gd._fullData.map(t => [t.type, t.meta, (t.x || []).length]); })()"
    )
    assert any(kind == "contour" and meta == "regions" and n > 0 for kind, meta, n in traces), traces
    assert any(meta == "class 0" and n > 0 for _, meta, n in traces), traces
    assert page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count() == 0
    assert not [e for e in errors if "plotly" in e.lower() or "widget" in e.lower()], errors


SCAN_NOTEBOOK = {
    **EXPLORER_NOTEBOOK,
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "scan",
            "metadata": {},
            "outputs": [],
            "source": "from widgets import ScanExplorer\n\n"
            "scan = ScanExplorer(T=64, gain=3.0)  # expanding: DEER needs ~60 iterations, one per frame\n"
            "scan",
        }
    ],
}
SCAN = EXPLORER  # the app in the notebook in front: a box with a Play button and a plot
# The number of iterates on the ScanExplorer's error plot (iteration 0 included), or -1 while it is not drawn yet.
SCAN_POINTS = f"""(() => {{
    const v = {SCAN}; if (!v) return -1;
    const gd = v.querySelector('.js-plotly-plot'); if (!gd || !gd._fullData) return -1;
    const t = gd._fullData.find(t => t.meta === 'error');
    return t ? t.y.length : -1;
}})()"""
# The sum of |y| over the drawn iterate (0 for DEER's zero start).
SCAN_ITERATE = f"""(() => {{
    const gd = {SCAN}.querySelector('.js-plotly-plot');
    return Array.from(gd._fullData.find(t => t.meta === 'iterate').y).reduce((a, y) => a + Math.abs(y), 0);
}})()"""


def test_lab_scan_explorer_iterates_live(page, jupyterlab):
    errors = _run_notebook(page, jupyterlab, "scan", SCAN_NOTEBOOK)
    page.wait_for_function(f"{SCAN_POINTS} === 1", timeout=SLOW, polling=500)  # iteration 0 only
    assert page.evaluate(SCAN_ITERATE) == 0
    scan = page.locator(f"{VISIBLE_PANEL} .{READY}.widget-vbox:has(.widget-play)").first
    scan.scroll_into_view_if_needed()
    play_pause = scan.locator(".widget-play button").first
    play_pause.click()
    page.wait_for_function(f"{SCAN_POINTS} > 6", timeout=3 * SLOW, polling=500)  # the first frame compiles the step
    play_pause.click()
    # Paused: once the ticks already sent have been handled, the error plot stops growing.
    counts = [page.evaluate(SCAN_POINTS)]
    for _ in range(15):
        page.wait_for_timeout(1000)
        counts.append(page.evaluate(SCAN_POINTS))
        if counts[-1] == counts[-2]:
            break
    assert counts[-1] == counts[-2] > 6, counts
    assert page.evaluate(SCAN_ITERATE) > 0  # the iterate moved off the zero start
    status = scan.locator(".widget-html").first.inner_text()
    assert "Newton iterations/s" in status and ("CPU" in status or "GPU" in status)
    assert f"iteration {counts[-1] - 1}: max error" in status and "sequential scan" in status
    assert page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count() == 0
    assert not [e for e in errors if "plotly" in e.lower() or "widget" in e.lower()], errors
