"""The book's HTML site: it builds with warnings as errors, every chapter page exists and holds
its plotly figures, math and solution dropdowns, and nothing is loaded from another host."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
PLOTLY = "application/vnd.plotly.v1+json"


def shown_plotly_figures(path: Path) -> int:
    nb = json.loads(path.read_text())
    return sum(
        PLOTLY in out.get("data", {})
        for cell in nb["cells"]
        if cell["cell_type"] == "code" and "remove-output" not in cell["metadata"].get("tags", [])
        for out in cell.get("outputs", [])
    )


@pytest.mark.site
@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_page_holds_its_figures(built_site, path):
    page = built_site / f"{path.stem}.html"
    assert page.exists()
    html = page.read_text()
    expected = shown_plotly_figures(path)
    assert expected >= 3
    assert html.count('class="plotly-graph-div"') == expected
    assert html.count("Plotly.newPlot(") == expected
    assert html.count("sd-dropdown") >= 3  # the exercises' solutions
    assert "$$" in html or "\\[" in html or "math notranslate" in html


@pytest.mark.site
def test_pages_load_nothing_from_other_hosts(built_site):
    for page in built_site.glob("*.html"):
        html = page.read_text()
        for tag, attr in (("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src")):
            for url in re.findall(rf"<{tag}\b[^>]*\b{attr}=\"([^\"]+)\"", html):
                assert not re.match(r"(https?:)?//", url), f"{page.name}: <{tag} {attr}={url}>"
    static = built_site / "_static"
    assert (static / "plotly.min.js").stat().st_size > 1_000_000
    assert (static / "mathjax" / "tex-chtml.js").exists()


@pytest.mark.site
def test_status_page_lists_every_chapter(built_site):
    html = (built_site / "status.html").read_text()
    for path in CHAPTERS:
        assert f"{path.stem}.html" in html
