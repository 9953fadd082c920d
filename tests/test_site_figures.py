"""Every plotly figure on every chapter page of the built site, checked in the browser (Debian's Chromium).

Each chapter page is loaded in two browser windows (``WINDOWS``), and once every figure is drawn, each
figure (by its index on the page) is checked from the drawn SVG (getBoundingClientRect) and ``gd._fullData``:

1. the title and the legend do not overlap (the title's text box against the legend's painted
   background ``rect.bg``; they may share 1 px);
2. the legend lies inside the figure (the first ``.main-svg``), and covers no annotation (subplot
   titles are annotations) and no colour bar;
3. the title's text is not clipped: its box lies inside the figure;
4. distinct legend entries look distinct: no two entries with different names share a colour
   (``line.color``, else ``marker.color``, normalised by a canvas) unless the legend draws them
   differently (markers against a line, another dash or symbol, a bar); a legend group counts once;
5. subplots that compare ``contour``/``heatmap``/``surface`` traces share one ``coloraxis`` or
   identical ``zmin``/``zmax`` (so one colour means one value in every panel);
6. figures with sliders (the static widgets): checks 1-4 again at every slider position (each step
   applied with ``Plotly[step.method]`` as the slider would), then the active step is restored.

A page's problems are reported together, one line each (page, figure index, title, window and slider
position where it shows, what is wrong by how many px), and the failing figures are saved as PNGs next to
the page fixture's screenshot. ``test_the_checks_find_what_they_look_for`` shows on made-up figures that
each check fires, and stays quiet on a clean figure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

pytestmark = pytest.mark.browser

CHAPTER_PAGE = "[0-9][0-9]_*.html"
# Collected before the site is built, so from the chapters; the first test checks these are exactly the
# site's chapter pages.
PAGES = sorted(f"{p.stem}.html" for p in BOOK.glob("[0-9][0-9]_*.ipynb"))

FIGURES = "[...document.querySelectorAll('.plotly-graph-div')]"
# Browser windows (width, height) the pages are checked in: the fixture's, and 1200 px, where the book's
# theme shows both sidebars and the figures are at their narrowest on a desktop (624 px against 784 px).
WINDOWS = ((1400, 1000), (1200, 900))

# Defines window.__siteFigureChecks (once per page): figure(i) checks the page's i-th figure and returns
# {title, states: [{position, problems}], colour_scales: [...]}; a slider figure has one state per position.
CHECKS_JS = r"""
() => {
  if (window.__siteFigureChecks) return;
  const TOL = 1;  // px two boxes may share, or a box may pass the figure's edge
  const STEP_TIMEOUT = 10000;  // ms for one slider step to redraw
  const ctx = document.createElement('canvas').getContext('2d');

  // A CSS colour as the canvas writes it back ('#rrggbb', or 'rgba(r, g, b, a)'); null when not one colour.
  const colour = c => {
    if (typeof c !== 'string' || !c.trim()) return null;
    ctx.fillStyle = '#010203'; ctx.fillStyle = c; const a = ctx.fillStyle;
    ctx.fillStyle = '#030201'; ctx.fillStyle = c; return a === ctx.fillStyle ? a : null;
  };
  const rect = el => {
    const b = el.getBoundingClientRect();
    return {l: b.left, t: b.top, r: b.right, b: b.bottom, w: b.width, h: b.height};
  };
  const px = v => Math.round(v);
  const plain = s => String(s == null ? '' : s)
    .replace(/<br\s*\/?>/gi, ' ').replace(/<[^>]*>/g, '').replace(/\s+/g, ' ').trim();
  const short = (s, n) => s.length > n ? s.slice(0, n) + '...' : s;
  const overlap = (a, b) => ({w: Math.min(a.r, b.r) - Math.max(a.l, b.l), h: Math.min(a.b, b.b) - Math.max(a.t, b.t)});
  const meet = (a, b) => { const o = overlap(a, b); return o.w > TOL && o.h > TOL; };
  const size = o => `${px(o.w)}x${px(o.h)} px`;
  // How far (px) a box passes each edge of another; only the sides past the tolerance.
  const beyond = (inner, outer) => Object.entries({
    left: outer.l - inner.l, right: inner.r - outer.r, top: outer.t - inner.t, bottom: inner.b - outer.b,
  }).filter(([, d]) => d > TOL);
  const timeout = (promise, what) => Promise.race([promise, new Promise((_, reject) => setTimeout(
    () => reject(new Error(`${what} did not finish within ${STEP_TIMEOUT / 1000} s`)), STEP_TIMEOUT))]);
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));

  // The figure's title as drawn: its text node (a MathJax title is a group), or null without a title.
  function title(gd) {
    const group = gd.querySelector('.infolayer > .g-gtitle');
    if (!group) return null;
    const text = group.querySelector('text.gtitle');
    const el = text && text.textContent.trim() ? text : group;
    const box = rect(el);
    if (box.w <= 0 || box.h <= 0) return null;
    const words = plain(gd._fullLayout.title && gd._fullLayout.title.text) || plain(el.textContent);
    return {box, text: words};
  }

  // The drawn legends (legend, legend2, ...) with at least one entry: the painted background
  // (rect.bg) or, without one, the group's box; and each entry's box and name.
  function legends(gd) {
    return [...gd.querySelectorAll('.infolayer > g')]
      .filter(g => /^legend\d*$/.test(g.getAttribute('class') || ''))
      .map(g => {
        const entries = [...g.querySelectorAll('g.traces')].map(e => ({
          name: plain((e.querySelector('text.legendtext') || e).textContent), box: rect(e),
        })).filter(e => e.box.w > 0 && e.box.h > 0);
        const bg = g.querySelector('rect.bg');
        let box = bg ? rect(bg) : null;
        if (!box || box.w <= 0 || box.h <= 0) box = rect(g);
        return {id: g.getAttribute('class'), box, entries};
      })
      .filter(L => L.entries.length > 0 && L.box.w > 0 && L.box.h > 0);
  }

  // What the legend draws for a trace, besides its colour.
  function style(t) {
    if (!/^scatter/.test(t.type)) return t.type;
    const mode = t.mode || '';
    const line = mode.includes('lines') ? 'line ' + ((t.line && t.line.dash) || 'solid') : '';
    const marker = mode.includes('markers') ? 'marker ' + ((t.marker && t.marker.symbol) || 'circle') : '';
    const fill = t.fill && t.fill !== 'none' ? 'fill' : '';
    return [line, marker, fill].filter(Boolean).join(' + ') || mode;
  }
  // line.color, else marker.color (marker first for a scatter drawn without lines).
  function traceColour(t) {
    const line = t.line ? colour(t.line.color) : null;
    const marker = t.marker ? colour(t.marker.color) : null;
    const markersOnly = /^scatter/.test(t.type) && !String(t.mode || '').includes('lines');
    return markersOnly ? marker || line : line || marker;
  }

  // Checks 1-4 on the figure as it is drawn now: a list of problems {key, size, text}; the key names
  // a problem across slider positions and windows, the size (px or px^2) picks the worst of them.
  function checkDrawn(gd) {
    const problems = [];
    const add = (key, amount, text) => problems.push({key, size: amount, text});
    const fig = rect(gd.querySelector('.main-svg'));
    const T = title(gd);
    const Ls = legends(gd);
    const name = L => Ls.length > 1 ? 'legend ' + L.id : 'legend';
    // 1. the title and the legend
    if (T) for (const L of Ls) {
      const o = overlap(T.box, L.box);
      if (o.w > TOL && o.h > TOL) {
        const hit = L.entries.filter(e => meet(e.box, T.box)).map(e => `'${short(e.name, 30)}'`);
        const what = hit.length ? `entries ${hit.join(', ')} cross` : `the legend's background crosses`;
        add(`title/${L.id}`, o.w * o.h, `title and ${name(L)} overlap by ${size(o)} (${what} the title's text box)`);
      }
    }
    // 2. the legend inside the figure, and clear of annotations (subplot titles, labels) and colour bars
    for (const L of Ls) {
      for (const [side, d] of beyond(L.box, fig))
        add(`${L.id} edge ${side}`, d, `${name(L)} passes the figure's ${side} edge by ${px(d)} px`);
      for (const a of gd.querySelectorAll('.annotation-text-g')) {
        const A = rect(a), o = overlap(A, L.box), words = plain(a.textContent);
        if (A.w > 0 && A.h > 0 && words && o.w > TOL && o.h > TOL)
          add(`${L.id}/annotation ${words}`, o.w * o.h, `${name(L)} overlaps the annotation '${short(words, 40)}' by ${size(o)}`);
      }
      for (const c of gd.querySelectorAll('.infolayer > g.colorbar')) {
        const C = rect(c), o = overlap(C, L.box), words = plain((c.querySelector('.cbtitle') || {}).textContent);
        if (C.w > 0 && C.h > 0 && o.w > TOL && o.h > TOL)
          add(`${L.id}/colorbar ${words}`, o.w * o.h,
            `${name(L)} overlaps the colour bar${words ? ` '${short(words, 40)}'` : ''} by ${size(o)}`);
      }
    }
    // 3. the title's text inside the figure
    if (T) for (const [side, d] of beyond(T.box, fig)) add(`title ${side}`, d, `title clipped on the ${side} by ${px(d)} px`);
    // 4. distinct legend entries look distinct
    if (gd._fullLayout.showlegend) {
      const entries = new Map();  // one per legend group
      gd._fullData.forEach((t, i) => {
        if (t.visible === false || t.showlegend === false) return;
        const key = t.legendgroup ? `group ${t.legend || 'legend'} ${t.legendgroup}` : `trace ${i}`;
        if (!entries.has(key)) entries.set(key, {name: plain(t.name), colour: traceColour(t), style: style(t)});
      });
      const list = [...entries.values()];
      for (let a = 0; a < list.length; a++) for (let b = a + 1; b < list.length; b++) {
        const A = list[a], B = list[b];
        if (A.colour && A.colour === B.colour && A.name !== B.name && A.style === B.style)
          add(`colour ${A.name}|${B.name}`, 0,
            `legend entries '${short(A.name, 40)}' and '${short(B.name, 40)}' look alike: both ${A.style} in ${A.colour}`);
      }
    }
    return problems;
  }

  // 5. compared subplots share a colour scale
  function checkColourScales(gd) {
    const kinds = ['contour', 'heatmap', 'surface', 'histogram2d', 'histogram2dcontour'];
    const traces = gd._fullData.filter(t => t.visible === true && kinds.includes(t.type));
    const subplot = t => t.type === 'surface' ? (t.scene || 'scene') : (t.xaxis || 'x') + '/' + (t.yaxis || 'y');
    const subplots = [...new Set(traces.map(subplot))];
    if (subplots.length < 2) return [];
    const axes = new Set(traces.map(t => t.coloraxis || ''));
    if (axes.size === 1 && !axes.has('')) return [];
    const first = traces[0];
    if (traces.every(t => typeof t.zmin === 'number' && t.zmin === first.zmin && t.zmax === first.zmax)) return [];
    const range = t => `[${Number(t.zmin).toPrecision(3)}, ${Number(t.zmax).toPrecision(3)}]`;
    const types = [...new Set(traces.map(t => t.type))].join('/');
    return [`${traces.length} ${types} traces in ${subplots.length} subplots have separate colour ranges ` +
      `(no shared coloraxis, zmin/zmax differ): ` + traces.map(t => `${subplot(t)} ${range(t)}`).join(', ')];
  }

  // A slider step as the slider applies it (its method and stored args), then the slider moved there.
  async function applyStep(gd, s, k) {
    const step = gd.layout.sliders[s].steps[k];
    const args = step.args || [];
    if (step.method === 'animate') {
      const now = {mode: 'immediate', transition: {duration: 0}, frame: {duration: 0, redraw: true}};
      await timeout(Plotly.animate(gd, args[0], Object.assign({}, args[1] || {}, now)), `slider step ${k + 1} (animate)`);
    } else if (step.method && step.method !== 'skip') {
      await timeout(Plotly[step.method](gd, ...args), `slider step ${k + 1} (${step.method})`);
    }
    await timeout(Plotly.relayout(gd, {[`sliders[${s}].active`]: k}), `moving the slider to step ${k + 1}`);
    await frame();
  }

  async function figure(i) {
    const gd = document.querySelectorAll('.plotly-graph-div')[i];
    const T = title(gd);
    const result = {title: T ? T.text : '', states: [], colour_scales: checkColourScales(gd)};
    const shown = s => s.visible !== false && (s.steps || []).length > 0;
    const sliders = gd.layout.sliders || [];
    if (!sliders.some(shown)) {
      result.states.push({position: null, problems: checkDrawn(gd)});
      return result;
    }
    const error = (position, e) => result.states.push(
      {position, problems: [{key: 'error', size: 0, text: String((e && e.message) || e)}]});
    for (let s = 0; s < sliders.length; s++) {
      const slider = sliders[s];
      if (!shown(slider)) continue;
      const active = slider.active || 0;
      const prefix = plain(slider.currentvalue && slider.currentvalue.prefix).replace(/[:=\s]+$/, '');
      const label = prefix || (sliders.length > 1 ? `slider ${s}` : 'slider');
      const n = slider.steps.length;
      try {
        for (let k = 0; k < n; k++) {
          const step = slider.steps[k];
          if (step.visible === false) continue;
          await applyStep(gd, s, k);
          const value = plain(step.label != null ? step.label : step.value != null ? step.value : k);
          const now = title(gd);
          result.states.push({position: `${label} = ${value} (step ${k + 1}/${n})`, title: now ? now.text : '',
                              problems: checkDrawn(gd)});
        }
      } catch (e) {
        error(`${label} (while stepping)`, e);
      }
      try {
        await applyStep(gd, s, active);
      } catch (e) {
        error(`${label} (restoring step ${active + 1})`, e);
      }
    }
    return result;
  }

  window.__siteFigureChecks = {figure};
}
"""


def _describe(page_name: str, index: int, runs: list[tuple[int, dict]]) -> list[str]:
    """One line per problem of one figure, from its checks in each window ``runs = [(width, result)]``.

    A problem found in several windows or at several slider positions is one line: it says where,
    and shows the worst case (the largest overlap or overshoot) and where that is, if sizes differ.
    """
    title = runs[0][1]["title"]
    head = f"{page_name} fig {index} '{title[:40] + '...' if len(title) > 40 else title}'"
    widths = [width for width, _ in runs]
    lines: list[str] = []
    scales: dict[str, None] = {}  # the data, whatever the window: once each
    for _, result in runs:
        scales.update(dict.fromkeys(result["colour_scales"]))
    for text in scales:
        lines.append(f"{head}: {text}")
    found: dict[str, list[tuple[int, dict, dict]]] = {}
    for width, result in runs:
        for state in result["states"]:
            for problem in state["problems"]:
                found.setdefault(problem["key"], []).append((width, state, problem))
    for hits in found.values():
        width, state, problem = max(hits, key=lambda hit: hit[2]["size"])
        text = problem["text"]
        if state.get("title") and state["title"] != title and problem["key"].startswith("title"):
            text += f" (title there: '{state['title']}')"
        hit_widths = sorted({w for w, _, _ in hits}, reverse=True)
        where = _windows(hit_widths) if len(hit_widths) < len(widths) else "every window"
        if state["position"] is not None:
            positions = list(dict.fromkeys(s["position"] for _, s, _ in hits))  # in slider order
            every = {s["position"] for _, result in runs for s in result["states"]}
            slider = f"every slider position ({len(every)})" if set(positions) == every else "; ".join(positions)
            where = f"{where}, {slider}"
        if len({hit[2]["size"] for hit in hits}) > 1:
            worst = ", ".join(filter(None, [f"{width} px window" if len(hit_widths) > 1 else "", state["position"] or ""]))
            where += f"; worst at {worst}"
        lines.append(f"{head} [{where}]: {text}")
    return lines


def _windows(widths: list[int]) -> str:
    return " and ".join(f"{w}" for w in widths) + " px window" + ("s" if len(widths) > 1 else "")


def test_every_chapter_page_is_checked(built_site):
    built = sorted(p.name for p in built_site.glob(CHAPTER_PAGE))
    assert built == PAGES, f"chapter pages on the site {built} are not the chapters checked here {PAGES}"


@pytest.mark.parametrize("page_name", PAGES)
def test_chapter_page_figures(page, site_url, built_site, page_name, tmp_path):
    assert (built_site / page_name).exists(), f"{page_name} is not on the built site"
    runs: dict[int, list[tuple[int, dict]]] = {}
    for width, height in WINDOWS:
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{site_url}/{page_name}", wait_until="load")
        count = page.locator(".plotly-graph-div").count()
        assert count > 0, f"{page_name} has no plotly figure"
        page.wait_for_function(
            f"{FIGURES}.filter(gd => gd._fullData && gd.querySelector('.main-svg')).length === {count}",
            timeout=30_000,
        )
        page.evaluate("document.fonts.ready.then(() => true)")
        page.evaluate(CHECKS_JS)
        for index in range(count):
            figure = page.locator(".plotly-graph-div").nth(index)
            figure.scroll_into_view_if_needed()
            result = page.evaluate("i => window.__siteFigureChecks.figure(i)", index)
            runs.setdefault(index, []).append((width, result))
        # Evidence, next to the page fixture's full-page screenshot (taken in the last window).
        for index, results in runs.items():
            if any(_describe(page_name, index, [(w, r)]) for w, r in results if w == width):
                figure = page.locator(".plotly-graph-div").nth(index)
                figure.scroll_into_view_if_needed()
                figure.screenshot(path=str(tmp_path / f"{Path(page_name).stem}_fig{index}_{width}px.png"))
    problems = [line for index, results in sorted(runs.items()) for line in _describe(page_name, index, results)]
    windows = _windows([w for w, _ in WINDOWS])
    assert not problems, (
        f"{len(problems)} figure problem(s) on {page_name} in {windows} (figures saved in {tmp_path}):\n" + "\n".join(problems)
    )


# Static figures of the apps that no chapter shows yet, checked the same way on a page of their own, in a
# column as wide as the site's text at each window of WINDOWS (784 px at 1400, 624 px at 1200).
CONTENT_WIDTHS = (784, 624)


def _live_trainer_figure():
    from widgets import LiveTrainer

    # The size tests/test_live_trainer.py trains (compiled once per test run); the layout is the default one.
    return LiveTrainer("spirals", num_points=64, width=8).static_figure(num_steps=30)


def _scan_explorer_figure():
    from widgets import ScanExplorer

    return ScanExplorer().static_figure()  # the chapter's: T = 128, three lanes


WIDGET_FIGURES = {"LiveTrainer.static_figure": _live_trainer_figure, "ScanExplorer.static_figure": _scan_explorer_figure}


@pytest.mark.parametrize("name", list(WIDGET_FIGURES))
def test_widget_static_figures(page, name, tmp_path):
    import plotly.io as pio

    from widgets.sphinx_plotly import plotly_js_path

    fig = WIDGET_FIGURES[name]()
    # As the site's MIME renderer writes it (widgets/sphinx_plotly.py), in a column of the text's width.
    div = pio.to_html(fig, include_plotlyjs=False, full_html=False, auto_play=False, config={"responsive": True})
    runs: list[tuple[int, dict]] = []
    for width in CONTENT_WIDTHS:
        html = tmp_path / f"figure_{width}.html"
        html.write_text(
            f"<html><head><script src='{plotly_js_path().as_uri()}'></script></head>"
            f"<body><div style='width: {width}px; margin: 20px'>{div}</div></body></html>"
        )
        page.set_viewport_size({"width": width + 200, "height": 1000})
        page.goto(html.as_uri(), wait_until="load")
        drawn = f"{FIGURES}.filter(gd => gd._fullData && gd.querySelector('.main-svg')).length === 1"
        page.wait_for_function(drawn, timeout=30_000)
        page.evaluate("document.fonts.ready.then(() => true)")
        page.evaluate(CHECKS_JS)
        runs.append((width, page.evaluate("i => window.__siteFigureChecks.figure(i)", 0)))
        if _describe(name, 0, runs[-1:]):
            page.locator(".plotly-graph-div").first.screenshot(path=str(tmp_path / f"figure_{width}px.png"))
    assert [len(result["states"]) for _, result in runs] == [len(fig.layout.sliders[0].steps)] * len(CONTENT_WIDTHS)
    problems = _describe(name, 0, runs)
    assert not problems, f"{len(problems)} figure problem(s) (figures saved in {tmp_path}):\n" + "\n".join(problems)


# Figures made to fail (and one made to pass) each check, to show the checks see what they look for.
SYNTHETIC_JS = r"""
async () => {
  const make = async (id, data, layout) => {
    const div = document.createElement('div');
    div.id = id; div.className = 'plotly-graph-div'; div.style.width = '600px'; div.style.height = '400px';
    document.body.prepend(div);
    await Plotly.newPlot(div, data, Object.assign({width: 600, height: 400}, layout));
  };
  const line = (name, color, extra) =>
    Object.assign({type: 'scatter', mode: 'lines', x: [0, 1], y: [0, 1], name, line: {color}}, extra || {});
  const z = k => [[0, k], [k, 2 * k]];
  await make('bad', [
    line('alpha', 'red'), line('beta', '#ff0000'),                    // one colour, one style: alike
    line('gamma', 'blue', {line: {color: 'blue', dash: 'dash'}}), line('delta', 'blue'),  // one colour, two styles
    line('grouped', 'green', {legendgroup: 'g'}), line('grouped twin', 'green', {legendgroup: 'g'}),  // one entry
    line('hidden', 'red', {visible: false}), line('unlisted', 'red', {showlegend: false}),
    {type: 'contour', z: z(1), showscale: false, xaxis: 'x2', yaxis: 'y2'},
    {type: 'contour', z: z(3), showscale: false, xaxis: 'x3', yaxis: 'y3'},
  ], {
    title: {text: 'A title far too long for this figure, which runs off the right edge of it for sure', x: 0.02, xanchor: 'left'},
    legend: {orientation: 'h', x: 0, y: 1.02, yanchor: 'bottom'}, margin: {t: 60},
    xaxis: {domain: [0, 0.3]}, xaxis2: {domain: [0.35, 0.65], anchor: 'y2'}, xaxis3: {domain: [0.7, 1], anchor: 'y3'},
    yaxis2: {anchor: 'x2'}, yaxis3: {anchor: 'x3'},
  });
  await make('good', [
    line('alpha', 'red'), line('beta', 'blue'), line('beta twin', 'red', {showlegend: false}),
    {type: 'contour', z: z(1), coloraxis: 'coloraxis'},
    {type: 'contour', z: z(3), coloraxis: 'coloraxis', xaxis: 'x2', yaxis: 'y2'},
  ], {
    title: {text: 'A short title'}, legend: {x: 1.02, xanchor: 'left', y: 1, yanchor: 'top'}, coloraxis: {showscale: false},
    xaxis: {domain: [0, 0.45]}, xaxis2: {domain: [0.55, 1], anchor: 'y2'}, yaxis2: {anchor: 'x2'},
  });
  await make('crowded', [line('alpha', 'red'), {type: 'contour', z: z(1), colorbar: {title: {text: 'height'}}}], {
    title: {text: 'Legend and colour bar'}, showlegend: true, legend: {x: 1.02, xanchor: 'left', y: 1, yanchor: 'top'},
  });
  await make('slider', [line('one', 'red'), line('two', 'blue')], {
    title: {text: 'A slider'}, legend: {x: 1, xanchor: 'left', y: 1, yanchor: 'top'}, margin: {r: 80, autoexpand: false},
    sliders: [{active: 0, currentvalue: {prefix: 'colour: '}, steps: [
      {label: 'apart', method: 'restyle', args: [{'line.color': ['red', 'blue']}, [0, 1]]},
      {label: 'alike', method: 'restyle', args: [{'line.color': ['blue', 'blue'], name: ['one', 'a much longer name']}, [0, 1]]},
    ]}],
  });
  return [...document.querySelectorAll('.plotly-graph-div')].map(gd => gd.id);
}
"""


def test_the_checks_find_what_they_look_for(page, site_url):
    page.goto(f"{site_url}/index.html", wait_until="load")
    ids = page.evaluate(SYNTHETIC_JS)
    page.evaluate(CHECKS_JS)
    results = {name: page.evaluate("i => window.__siteFigureChecks.figure(i)", i) for i, name in enumerate(ids)}

    bad = results["bad"]
    keys = {p["key"] for p in bad["states"][0]["problems"]}
    assert keys == {"title/legend", "title right", "colour alpha|beta"}, bad
    assert len(bad["colour_scales"]) == 1 and "x2/y2 [0.00, 2.00], x3/y3 [0.00, 6.00]" in bad["colour_scales"][0]

    good = results["good"]
    assert good["states"] == [{"position": None, "problems": []}] and good["colour_scales"] == [], good

    crowded = results["crowded"]
    assert [p["key"] for p in crowded["states"][0]["problems"]] == ["legend/colorbar height"], crowded

    slider = results["slider"]
    assert [s["position"] for s in slider["states"]] == ["colour = apart (step 1/2)", "colour = alike (step 2/2)"]
    assert slider["states"][0]["problems"] == []
    assert {p["key"] for p in slider["states"][1]["problems"]} == {"colour one|a much longer name", "legend edge right"}
    # The active step is restored: its colours and its place on the slider.
    assert page.evaluate(
        "() => { const gd = document.getElementById('slider');"
        " return [gd._fullData.map(t => t.line.color), gd.layout.sliders[0].active]; }"
    ) == [["red", "blue"], 0]
    lines = _describe("x.html", 3, [(1400, slider)])
    where = "[every window, colour = alike (step 2/2)]"
    assert lines[0].startswith(f"x.html fig 3 'A slider' {where}: legend passes the figure's right edge by"), lines
