"""The before/after page of `lmppm restore --report PAGE.html`: one self-contained HTML file beside the
outputs. Each image has a comparison with a slider over its embedded thumbnails (at most THUMB pixels a
side), a click that shows a 1:1 crop of the same place in the input and the result (linked by relative
paths, never copied), and its figures; failed and copied-unchanged files are rows with their reason. No
request leaves the machine: no external URL, no font, a little vanilla JavaScript. Every name is escaped."""

from __future__ import annotations

import base64
import html
import io
import os
from collections import Counter
from pathlib import Path
from string import Template
from urllib.parse import quote

import numpy as np
from PIL import Image

from lmppm_cli.files.atomic import write_text

THUMB = 256  # pixels: the longer side of an embedded thumbnail
PNG_UP_TO = 64 * 64  # thumbnails of at most this many pixels are PNG (lossless), larger ones JPEG
PAGE_SUFFIX = ".html"


def thumbnail(array: np.ndarray) -> str:
    """A data URI of the image (H, W, C) in [0, 1], its longer side at most THUMB."""
    pixels = np.rint(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels[..., :3])
    image.thumbnail((THUMB, THUMB))
    buffer = io.BytesIO()
    small = image.width * image.height <= PNG_UP_TO
    image.save(buffer, format="PNG" if small else "JPEG", quality=85)
    kind = "png" if small else "jpeg"
    return f"data:image/{kind};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def _link(path: str, page: Path) -> str:
    """A relative link from the page's folder to `path`, quoted for a URL and escaped for HTML."""
    relative = os.path.relpath(Path(path).resolve(), page.parent.resolve())
    return html.escape(quote(Path(relative).as_posix()), quote=True)


def _number(value, digits: int = 3) -> str:
    return "" if value is None or value == "" else f"{float(value):.{digits}f}"


def _pair(row: dict, key: str, digits: int = 3) -> str:
    """`before -> after` of a measured figure, '' where the row has none (no model: no D)."""
    before, after = row.get(f"{key}_before"), row.get(f"{key}_after")
    if before is None or before == "":
        return ""
    return f"{_number(before, digits)} &rarr; {_number(after, digits)}"


def _seconds(value) -> str:
    if value is None or value == "":
        return ""
    return f"{float(value):.2f} s" if float(value) >= 0.1 else f"{1000 * float(value):.1f} ms"


def _figures(row: dict) -> str:
    """The row's measured figures as a short definition list."""
    pairs = [
        ("model", html.escape(" / ".join(str(row[k]) for k in ("model", "method") if row.get(k)))),
        ("why", html.escape(str(row.get("why") or ""))),
        ("noise", _pair(row, "noise")),
        ("D", _pair(row, "distance")),
        ("digit", _pair(row, "digit", 0)),
        ("change", _number(row.get("change"), 4)),
        ("time", _seconds(row.get("seconds"))),
    ]
    shown = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in pairs if v)
    flag = f'<p class="flag">{html.escape(row["flag"])}</p>' if row.get("flag") else ""
    return f"<dl>{shown}</dl>{flag}"


def _image_row(row: dict, thumbs: tuple[str, str], page: Path) -> str:
    name = html.escape(Path(row["input"]).name)
    before, after = (_link(row[k], page) for k in ("input", "output"))
    note = f'<p class="note">{html.escape(row["note"])}</p>' if row.get("note") else ""
    return (
        f'<section class="row" data-name="{name}" data-change="{float(row.get("change") or 0.0):.6f}" '
        f'data-seconds="{float(row.get("seconds") or 0.0):.4f}">'
        f'<h2><a href="{before}">{name}</a> &rarr; <a href="{after}">{html.escape(Path(row["output"]).name)}</a></h2>'
        f'<div class="pair"><div class="cmp" data-before="{before}" data-after="{after}">'
        f'<img class="after" alt="after" loading="lazy" src="{thumbs[1]}">'
        f'<img class="before" alt="before" loading="lazy" src="{thumbs[0]}"></div>'
        '<input class="split" type="range" min="0" max="100" value="50" aria-label="before | after"></div>'
        f'<div class="facts">{note}{_figures(row)}</div></section>'
    )


def _failed_row(source: str, why: str) -> str:
    name = html.escape(Path(source).name)
    return (
        f'<section class="row failed" data-name="{name}" data-change="-1" data-seconds="0">'
        f'<h2>{name}</h2><p class="error">{html.escape(why)}</p></section>'
    )


def _summary(rows: list[dict], failed: list[tuple[str, str]], seconds: float) -> str:
    copied = sum(1 for r in rows if r.get("note"))
    used = Counter(
        " / ".join(str(r[k]) for k in ("model", "method") if r.get(k)) or "-" for r in rows if not r.get("note")
    )
    models = ", ".join(f"{html.escape(name)} ({n})" for name, n in used.most_common())
    return (
        f"<p>{len(rows) - copied} restored, {copied} copied unchanged, {len(failed)} failed, in {seconds:.1f} s."
        f"</p><p>Models: {models or 'none'}.</p>"
    )


def write_page(
    path: str | Path,
    rows: list[dict],
    failed: list[tuple[str, str]],
    thumbs: dict[str, tuple[str, str]],
    seconds: float,
) -> None:
    """The page for a run's report rows (files/reports.row, with `why`), its failed files and the
    thumbnails of each input and result, written atomically."""
    page = Path(path)
    parts = [_failed_row(str(source), why) for source, why in failed]  # first: each needs a look
    ranked = sorted(rows, key=lambda r: -float(r.get("change") or 0.0))  # the most changed next
    parts += [_image_row(r, thumbs[r["input"]], page) for r in ranked if r["input"] in thumbs]
    text = PAGE.substitute(
        style=STYLE,
        title=html.escape(f"lmppm restore: {len(rows) + len(failed)} image(s)"),
        summary=_summary(rows, failed, seconds),
        rows="\n".join(parts),
    )
    write_text(page, text)


STYLE = """body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
#rows { display: flex; flex-wrap: wrap; gap: .8em; }
.row { display: flex; flex-wrap: wrap; gap: .8em; align-items: flex-start; padding: .6em; background: #fff;
  border: 1px solid #ddd; border-radius: 4px; width: 40em; max-width: 100%; box-sizing: border-box; }
.facts { flex: 1 1 16em; min-width: 0; }
.row h2 { flex-basis: 100%; font-size: 1em; margin: 0; overflow-wrap: anywhere; }
.cmp::before, .cmp::after { position: absolute; top: 2px; z-index: 1; font-size: 11px; line-height: 1.2;
  background: #fffc; padding: 0 2px; }
.cmp::before { content: "before"; left: 2px; } .cmp::after { content: "after"; right: 2px; }
.cmp { position: relative; display: inline-block; cursor: crosshair; line-height: 0; --split: 50%; }
.cmp img { image-rendering: pixelated; max-width: 256px; min-width: 128px; }
.cmp .before { position: absolute; left: 0; top: 0; width: 100%; height: 100%;
  clip-path: inset(0 calc(100% - var(--split)) 0 0); }
.split { display: block; width: 100%; }
.pair { width: max-content; }
dl { display: grid; grid-template-columns: auto auto; gap: 0 1em; margin: 0; }
dt { color: #666; } dd { margin: 0; }
.flag, .error { color: #b00; } .note { color: #666; }
#zoom { position: fixed; right: 1em; bottom: 1em; background: #fff; border: 1px solid #999; padding: .5em;
  display: none; gap: .5em; } #zoom.open { display: flex; }
.view { position: relative; width: 256px; height: 256px; overflow: hidden; background: #eee; }
.view img { position: absolute; image-rendering: pixelated; }
.view span { position: absolute; z-index: 1; left: 2px; top: 2px; background: #fffc; font-size: 12px; line-height: 1.2; }
"""  # shared with the bench page (bench_page.py)
PAGE = Template(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
$style</style></head><body>
<h1>$title</h1>
$summary
<p>Sort: <button data-key="change">most changed first</button> <button data-key="name">by name</button>
<button data-key="seconds">slowest first</button>. Drag a slider to compare; click an image for a 1:1 crop
(click the crop to close it).</p>
<main id="rows">
$rows
</main>
<div id="zoom"><div class="view"><span>before</span><img id="zb" alt="before, 1:1"></div>
<div class="view"><span>after</span><img id="za" alt="after, 1:1"></div></div>
<script>
document.querySelectorAll('.split').forEach(function (s) {
  s.addEventListener('input', function () { s.previousElementSibling.style.setProperty('--split', s.value + '%'); });
});
function offset(f, size) {  // centre the clicked spot; an image smaller than the view sits in its middle
  return size <= 256 ? (256 - size) / 2 : Math.max(256 - size, Math.min(0, 128 - f * size));
}
function place(img, fx, fy) {
  img.style.left = offset(fx, img.naturalWidth) + 'px';
  img.style.top = offset(fy, img.naturalHeight) + 'px';
}
document.getElementById('zoom').addEventListener('click', function () { this.className = ''; });
document.querySelectorAll('.cmp').forEach(function (c) {
  c.addEventListener('click', function (e) {
    var r = c.getBoundingClientRect(), fx = (e.clientX - r.left) / r.width, fy = (e.clientY - r.top) / r.height;
    [['zb', c.dataset.before], ['za', c.dataset.after]].forEach(function (p) {
      var img = document.getElementById(p[0]);
      img.onload = function () { place(img, fx, fy); };
      img.src = p[1];
      if (img.complete && img.naturalWidth) { place(img, fx, fy); }
    });
    document.getElementById('zoom').className = 'open';
  });
});
document.querySelectorAll('button[data-key]').forEach(function (b) {
  b.addEventListener('click', function () {
    var k = b.dataset.key, main = document.getElementById('rows');
    var rows = Array.prototype.slice.call(main.children);
    rows.sort(function (p, q) {
      return k === 'name' ? p.dataset.name.localeCompare(q.dataset.name) : q.dataset[k] - p.dataset[k];
    });
    rows.forEach(function (r) { main.appendChild(r); });
  });
});
</script></body></html>
"""
)
