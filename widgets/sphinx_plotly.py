"""Plotly figures on the book's site: a myst-nb MIME renderer (entry point ``myst_nb.mime_renderers``).

plotly >= 6 stores a figure in a notebook only as ``application/vnd.plotly.v1+json``, a MIME type that
myst-nb skips, so figures would vanish from the site. This renderer turns that JSON into a ``<div>``
and a call of ``Plotly.newPlot``; the ``plotly.min.js`` it needs is copied once, from the installed
plotly wheel, into the site's static files (``make book``), so pages load nothing from the web.
"""

from __future__ import annotations

from pathlib import Path

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def plotly_js_path() -> Path:
    """The ``plotly.min.js`` shipped inside the installed plotly package."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class PlotlyRenderer:
    """Render plotly's JSON output as HTML on the site (HTML builders only)."""

    mime_priority_overrides = [("html", PLOTLY_MIME, 5), ("dirhtml", PLOTLY_MIME, 5)]

    @staticmethod
    def handle_mime(renderer, data, inline):
        if data.mime_type != PLOTLY_MIME:
            return None
        import plotly.io as pio
        from docutils import nodes

        html = pio.to_html(data.content, include_plotlyjs=False, full_html=False, auto_play=False, config={"responsive": True})
        return [nodes.raw(text=html, format="html", classes=["output", "plotly-figure"])]
