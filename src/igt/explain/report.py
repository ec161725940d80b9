"""The self-contained HTML report of ``igt explain`` (``index.html``).

One file with inline CSS and JavaScript. Pictures are embedded as ``data:`` URIs, so the file
opens anywhere on its own, up to :data:`INLINE_IMAGES_UP_TO` molecules; larger reports link to
``images/`` instead (and say so in the header) to keep the page light. One card
per molecule: picture, the rationale fragment under it (:mod:`igt.explain.fragments`), id,
SMILES, prediction (``mean ± std`` for ensembles), label, error and rationale size. A second tab,
"fragments", ranks the fragments that recur across the molecules (``index.html#fragments``
opens it). A small script sorts the cards (by prediction, error, rationale size, ensemble spread
or input order; ``index.html#sort=error:desc`` opens it sorted) and, once every picture
has loaded, sets ``data-images-loaded`` / ``data-images-failed`` / ``data-images-total`` on
``<body>`` (used by the browser test). Every string that comes from users or data (ids, SMILES,
column names, paths, error messages) goes through :func:`html.escape`. Data values reach the
script only as numbers in ``data-*`` attributes, never as inline script text.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any, Sequence

from igt.explain.draw import legend_stops

# Above this many cards, pictures load lazily (as they scroll into view).
LAZY_IMAGES_ABOVE = 200
# Up to this many cards, pictures are embedded (one self-contained file, ~20-40 kB a molecule).
INLINE_IMAGES_UP_TO = 500

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f6f6f4; color: #222; }
header { background: #fff; border-bottom: 1px solid #ddd; padding: 16px 24px; }
header h1 { font-size: 20px; margin: 0 0 6px 0; word-break: break-all; }
header p { margin: 4px 0; font-size: 14px; color: #444; }
.legend { display: inline-flex; align-items: center; gap: 8px; font-size: 13px; }
.legend .bar { width: 180px; height: 12px; border: 1px solid #bbb; }
.controls { margin-top: 8px; font-size: 14px; }
.note { background: #fff6d6; border: 1px solid #e6d28a; padding: 6px 10px; display: inline-block; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(400px, 1fr)); gap: 14px; padding: 16px 24px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 10px; }
.card img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
.card h2 { font-size: 15px; margin: 6px 0 2px 0; word-break: break-all; }
.card code { display: block; font-size: 12px; color: #333; word-break: break-all; margin-bottom: 6px; }
.card dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 0; font-size: 13px; }
.card dt { color: #666; }
.card dd { margin: 0; }
.card.failed { border-color: #d99; background: #fff4f4; }
.card .links { font-size: 12px; margin-top: 4px; }
.card .fragment { text-align: center; font-size: 12px; color: #7a1c1c; margin: 2px 0 4px 0; word-break: break-all; }
.card .fragment .hint { color: #888; }
.tabs { margin-top: 10px; }
.tabs button { font: inherit; font-size: 14px; padding: 4px 12px; border: 1px solid #bbb; background: #eee; cursor: pointer; }
.tabs button[aria-selected="true"] { background: #fff; border-bottom-color: #fff; font-weight: 600; }
#fragments { padding: 16px 24px; }
#fragments table { border-collapse: collapse; background: #fff; font-size: 13px; }
#fragments th, #fragments td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
#fragments td.n { text-align: right; }
#fragments code { word-break: break-all; }
"""

_SCRIPT = """
(function () {
  var main = document.getElementById('cards');
  var select = document.getElementById('sort');
  function key(card, name) {
    var v = parseFloat(card.getAttribute('data-' + name));
    return isNaN(v) ? null : v;
  }
  function sortCards() {
    var parts = select.value.split(':'), name = parts[0], sign = parts[1] === 'desc' ? -1 : 1;
    var cards = Array.prototype.slice.call(main.querySelectorAll('.card'));
    cards.sort(function (a, b) {
      var x = key(a, name), y = key(b, name);
      if (x === null && y === null) return key(a, 'order') - key(b, 'order');
      if (x === null) return 1;
      if (y === null) return -1;
      return sign * (x - y) || key(a, 'order') - key(b, 'order');
    });
    cards.forEach(function (card) { main.appendChild(card); });
  }
  select.addEventListener('change', sortCards);
  // index.html#sort=error:desc opens the report sorted (links can share a view).
  var wanted = /sort=([a-z]+:(asc|desc))/.exec(window.location.hash);
  if (wanted && select.querySelector('option[value="' + wanted[1] + '"]')) { select.value = wanted[1]; sortCards(); }
  // Tabs: the molecule cards and the fragment table (index.html#fragments opens the table).
  var tabs = Array.prototype.slice.call(document.querySelectorAll('.tabs button'));
  function show(name) {
    tabs.forEach(function (tab) {
      var on = tab.getAttribute('data-tab') === name;
      tab.setAttribute('aria-selected', on ? 'true' : 'false');
      document.getElementById(tab.getAttribute('data-tab')).hidden = !on;
    });
  }
  tabs.forEach(function (tab) { tab.addEventListener('click', function () { show(tab.getAttribute('data-tab')); }); });
  if (tabs.length && /fragments/.test(window.location.hash)) { show('fragments'); }
  var images = Array.prototype.slice.call(document.images), loaded = 0, failed = 0;
  document.body.setAttribute('data-images-total', String(images.length));
  function report() {
    document.body.setAttribute('data-images-loaded', String(loaded));
    document.body.setAttribute('data-images-failed', String(failed));
  }
  images.forEach(function (img) {
    function settle() { if (img.naturalWidth > 0) { loaded++; } else { failed++; } report(); }
    if (img.complete) { settle(); } else {
      img.addEventListener('load', settle, { once: true });
      img.addEventListener('error', settle, { once: true });
    }
  });
  report();
})();
"""


def _e(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def _attr_number(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _label_text(item, meta: dict[str, Any]) -> str:
    if item.label is None:
        return "unknown"
    if meta["task"] == "multiclass":
        return _e(item.columns[int(item.label[0])])
    parts = []
    for name, value in zip(item.columns, item.label):
        text = "unknown" if math.isnan(float(value)) else f"{float(value):g}"
        parts.append(f"{_e(name)} {text}" if len(item.columns) > 1 else text)
    return ", ".join(parts)


def _prediction_text(item, meta: dict[str, Any]) -> str:
    if item.prediction is None:
        return "—"
    std = getattr(item, "prediction_std", None)
    spreads = [None] * len(item.prediction) if std is None else list(std)
    pairs = list(zip(item.columns, item.prediction, spreads))
    if meta["task"] == "multiclass":
        pairs.sort(key=lambda pair: -pair[1])
    shown = pairs[:4]
    text = ", ".join(f"{_e(name)} {_fmt(float(value))}" + ("" if spread is None else f" ± {_fmt(float(spread))}")
                     for name, value, spread in shown)
    return text + (f", … ({len(pairs) - len(shown)} more)" if len(pairs) > len(shown) else "")


def _image_source(relative: str, root: Path | None) -> str:
    """A ``data:`` URI of the picture at ``root / relative``, or the relative link itself."""
    if root is None:
        return relative
    return "data:image/png;base64," + base64.b64encode((root / relative).read_bytes()).decode("ascii")


def _card(k: int, item, meta: dict[str, Any], lazy: bool, inline_root: Path | None = None) -> str:
    size = item.rationale_size
    attrs = (f'data-order="{k}" data-prediction="{_attr_number(item.headline)}" '
             f'data-error="{_attr_number(item.error)}" data-size="{_attr_number(size)}" '
             f'data-spread="{_attr_number(getattr(item, "spread", None))}"')
    lines = [f'<article class="card{" failed" if item.failure else ""}" {attrs}>']
    if "png" in item.images:
        loading = ' loading="lazy"' if lazy else ""
        source = _image_source(item.images["png"], inline_root)
        lines.append(f'<img src="{_e(source)}" alt="rationale of {_e(item.id)}"{loading}>')
    fragment = getattr(item, "fragment", None)
    if fragment is not None and fragment.fragment_smiles:
        title = f' title="{_e(fragment.note)}"' if fragment.note else ""
        largest = ("" if fragment.largest_fragment == fragment.fragment_smiles else
                   f' <span class="hint">largest piece</span> <b>{_e(fragment.largest_fragment)}</b>')
        star = ' <span class="hint">*</span>' if fragment.note else ""
        lines.append(f'<div class="fragment"{title}>rationale <b>{_e(fragment.fragment_smiles)}</b>{largest}{star}</div>')
    lines.append(f"<h2>{_e(item.id)}</h2>")
    if item.smiles is not None:
        lines.append(f"<code>{_e(item.smiles)}</code>")
    lines.append("<dl>")
    if item.failure:
        lines.append(f"<dt>not explained</dt><dd>{_e(item.failure)}</dd>")
    else:
        lines.append(f"<dt>prediction</dt><dd>{_prediction_text(item, meta)}</dd>")
        lines.append(f"<dt>label</dt><dd>{_label_text(item, meta)}</dd>")
        lines.append(f"<dt>error</dt><dd>{_fmt(item.error)}</dd>")
        if size is None:
            lines.append("<dt>rationale</dt><dd>none (this model gives no node scores)</dd>")
        else:
            kept = int(round(size * len(item.elements)))
            unit = "atoms" if item.smiles is not None else "nodes"
            lines.append(f"<dt>rationale size</dt><dd>{size:.0%} ({kept} of {len(item.elements)} {unit})</dd>")
        if fragment is not None and fragment.note and not fragment.fragment_smiles:
            lines.append(f"<dt>fragment</dt><dd>{_e(fragment.note)}</dd>")
        elif fragment is not None and fragment.note:
            lines.append(f"<dt>fragment *</dt><dd>{_e(fragment.note)}</dd>")
        if getattr(item, "standardized", ""):
            lines.append(f"<dt>standardised</dt><dd>{_e(item.standardized)}</dd>")
        if getattr(item, "applicability", ""):
            lines.append(f"<dt>applicability</dt><dd>{_e(item.applicability)}</dd>")
    lines.append("</dl>")
    if "svg" in item.images:
        lines.append(f'<div class="links"><a href="{_e(item.images["svg"])}">SVG</a></div>')
    lines.append("</article>")
    return "\n".join(lines)


def _fragment_table(summary: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The "fragments" tab: the largest rationale pieces ranked by how many molecules have them."""
    lines = ['<section id="fragments" hidden>',
             f"<p>Rationale fragments: {_e(meta.get('fragment_rule', ''))}; each molecule counts once, by the "
             f"largest connected piece of its rationale. Predicted positive: {_e(meta.get('positive_rule', ''))}.</p>"]
    if not summary:
        lines.append("<p>No molecule has a rationale fragment.</p></section>")
        return "\n".join(lines)
    lines.append("<table><thead><tr><th>rank</th><th>fragment</th><th>molecules</th><th>share</th>"
                 "<th>predicted positive</th><th>predicted negative</th><th>mean prediction</th>"
                 "<th>examples</th></tr></thead><tbody>")
    for row in summary:
        lines.append(
            f'<tr><td class="n">{int(row["rank"])}</td><td><code>{_e(row["fragment"])}</code></td>'
            f'<td class="n">{int(row["molecules"])}</td><td class="n">{row["share"]:.1%}</td>'
            f'<td class="n">{int(row["predicted_positive"])}</td><td class="n">{int(row["predicted_negative"])}</td>'
            f'<td class="n">{_fmt(row["mean_prediction"])}</td><td>{_e(row["example_ids"])}</td></tr>')
    lines.append("</tbody></table></section>")
    return "\n".join(lines)


def render_report(explanations: Sequence, meta: dict[str, Any], title: str, images_root: Path | None = None,
                  summary: Sequence[dict[str, Any]] | None = None) -> str:
    """The full ``index.html`` text.

    Args:
        explanations: :class:`igt.explain.GraphExplanation` items, in input order.
        meta: ``run``, ``dataset``, ``method``, ``backbone``, ``task``, ``columns``,
            ``rationale_threshold``, ``has_rationale``.
        title: Page title (escaped here).
        images_root: The report folder the pictures' relative paths start from: they are
            embedded when given and there are at most :data:`INLINE_IMAGES_UP_TO` of them.
        summary: Rows of :func:`igt.explain.fragments.fragment_summary` for the "fragments"
            tab (``None``: no tab, e.g. graphs that are not molecules).
    """
    inline_root = images_root if images_root is not None and len(explanations) <= INLINE_IMAGES_UP_TO else None
    lazy = len(explanations) > LAZY_IMAGES_ABOVE and inline_root is None
    stops = ", ".join(legend_stops())
    threshold = meta["rationale_threshold"]
    failed = sum(1 for e in explanations if e.failure)
    # Molecules speak of atoms; synthetic graphs (Spurious-Motif) of nodes.
    atoms, graphs = ("atoms", "molecules") if any(e.smiles is not None for e in explanations) else ("nodes", "graphs")
    if meta["has_rationale"]:
        rationale_note = (
            f'<span class="legend">rationale score <span>0</span><span class="bar" '
            f'style="background: linear-gradient(to right, {stops})"></span><span>1</span></span> '
            f"&nbsp; Rationale size = fraction of {atoms} with score &gt; {threshold:g}."
        )
    else:
        rationale_note = (
            f'<span class="note">{_e(meta["method"])} gives no rationale (no node scores): pictures are '
            f"unshaded. Train a rationalization method (e.g. igt-n) to see which {atoms} drive a prediction.</span>"
        )
    ensemble = len(meta.get("runs", [])) > 1
    spread_option = ('\n<option value="spread:desc">spread across runs, high to low</option>' if ensemble else "")
    tabs = ("" if summary is None else '\n<nav class="tabs"><button type="button" data-tab="cards" aria-selected="true">'
            'molecules</button><button type="button" data-tab="fragments" aria-selected="false">fragments</button></nav>')
    error_note = ("Error = |p − label| (mean over known labels)" if meta["task"] == "binary" else
                  "Error = 1 − p(true class)" if meta["task"] == "multiclass" else
                  "Error = |prediction − label|")
    head = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<p>run <code>{_e(meta["run"])}</code> · dataset {_e(meta["dataset"])} · method {_e(meta["method"])} ·
backbone {_e(meta["backbone"])} · {len(explanations)} {graphs}{f", {failed} not explained" if failed else ""}</p>
<p>{rationale_note}</p>
<p>{error_note}, where the label is known.</p>{
f"<p>Ensemble of {len(meta['runs'])} runs: predictions and atom scores are their means (shading by the mean); "
"± is the standard deviation across runs.</p>" if ensemble else ""}{"" if inline_root is not None or not any(e.images for e in explanations) else
'<p class="note">Pictures are linked from the images/ folder beside this file: keep them together.</p>'}
<div class="controls"><label for="sort">sort by</label>
<select id="sort">
<option value="order:asc">input order</option>
<option value="prediction:desc">prediction, high to low</option>
<option value="prediction:asc">prediction, low to high</option>
<option value="error:desc">error, high to low</option>
<option value="error:asc">error, low to high</option>
<option value="size:desc">rationale size, large to small</option>{spread_option}
</select></div>{tabs}
</header>
<main id="cards">
"""
    cards = "\n".join(_card(k, item, meta, lazy, inline_root) for k, item in enumerate(explanations))
    table = "" if summary is None else "\n" + _fragment_table(summary, meta)
    return f"{head}{cards}\n</main>{table}\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
