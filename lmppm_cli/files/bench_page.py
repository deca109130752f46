"""The page `lmppm bench` writes beside its results: results.html, one self-contained file holding the
tables of results.md (each figure with its 95% interval, the paired differences) and every figure and
before/after grid the suite drew in its folder, linked by relative paths. Like the restore page
(report_page.py): no request leaves the machine, and every text is escaped."""

from __future__ import annotations

import html
import re
from pathlib import Path
from string import Template
from urllib.parse import quote

from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.report_page import STYLE

PAGE_NAME = "results.html"


def _inline(text: str) -> str:
    """One line of results.md's text, escaped, with its `code` spans kept as code."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _table(lines: list[str]) -> str:
    """A Markdown table (header, rule, rows) as an HTML table."""
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    rows = [r for r in cells if not all(re.fullmatch(r":?-+:?", c) for c in r if c)]
    head = "".join(f"<th>{_inline(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_html(text: str) -> str:
    """The Markdown the benches write (headings, tables, bullets, paragraphs) as HTML."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            out.append(_table(block))
            continue
        if heading := re.match(r"(#{1,4}) (.*)", line):
            level = len(heading.group(1)) + 1  # the page's own title is h1
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.startswith("- "):
            out.append(f"<ul><li>{_inline(line[2:])}</li></ul>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out).replace("</ul>\n<ul>", "\n")


def write_bench_page(out_dir: str | Path, suite: str) -> Path:
    """results.html in `out_dir` from its results.md and its PNG figures; -> the page's path."""
    folder = Path(out_dir)
    results = folder / "results.md"
    tables = markdown_html(results.read_text()) if results.is_file() else "<p>No results.md was written.</p>"
    figures = "\n".join(
        f'<figure><a href="{html.escape(quote(p.name), quote=True)}"><img loading="lazy" alt="{html.escape(p.name)}" '
        f'src="{html.escape(quote(p.name), quote=True)}"></a><figcaption>{html.escape(p.name)}</figcaption></figure>'
        for p in sorted(folder.glob("*.png"))
    )
    page = folder / PAGE_NAME
    write_text(
        page,
        PAGE.substitute(style=STYLE, title=html.escape(f"lmppm bench --suite {suite}"), tables=tables, figures=figures),
    )
    return page


PAGE = Template(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
$style
table { border-collapse: collapse; margin: .5em 0 1em; background: #fff; }
th, td { border: 1px solid #ddd; padding: .2em .5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; image-rendering: pixelated; }
</style></head><body>
<h1>$title</h1>
$tables
<h2>Figures</h2>
$figures
</body></html>
"""
)
