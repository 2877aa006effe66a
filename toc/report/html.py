"""report.html: the report as one self-contained web page, readable offline.

It is rendered from the same Report as report.md, through report.md's own text, so the two
always say the same thing: every heading, paragraph, list and table of the markdown becomes its
HTML counterpart, and every chart or TOC figure the markdown shows is embedded as a `data:` URI
of its PNG bytes. The page loads nothing: no scripts, no fonts, no external style sheets or
images. A figure the markdown names but the report did not draw (charts switched off, or
matplotlib missing) becomes a short note in its place, never a broken link.

Only the markdown this toolkit writes is understood (ATX headings, pipe tables with a separator
row, `- ` lists, a paragraph per block of lines, `![alt](file)` image lines, and inline
`code`, **bold**, *emphasis*, [text](link) and `\\|`); anything else is kept as escaped text.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping

from toc.documents import TOOL_NAME, tool_version
from toc.report.analysis import Report
from toc.report.markdown import render_markdown

IMAGE_LINE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)$")
HEADING = re.compile(r"^(?P<marks>#{1,6})\s+(?P<text>.*?)\s*#*$")
SEPARATOR_CELL = re.compile(r"^:?-{3,}:?$")
INLINE = re.compile(
    r"(?P<code>`[^`]+`)|(?P<bold>\*\*(?=\S)(?:[^*]|\*(?!\*))+?(?<=\S)\*\*)|(?P<em>\*(?=\S)[^*]+?(?<=\S)\*)"
    r"|(?P<link>\[(?P<text>[^\]]+)\]\((?P<href>[^)\s]+)\))"
)
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 80rem; padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1, h2, h3, h4 { line-height: 1.2; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .8rem 0 1.2rem; font-size: .9rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; white-space: nowrap; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
code { background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; font-size: .85em; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { font-size: .85rem; color: #57606a; }
.missing { color: #57606a; font-style: italic; }
footer { margin-top: 3rem; font-size: .8rem; color: #57606a; }
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _inline(text: str) -> str:
    """Escaped HTML of one line of markdown text, with the inline markup we write."""
    text = text.replace("\\|", "|")
    out, position = [], 0
    for match in INLINE.finditer(text):
        out.append(html.escape(text[position : match.start()]))
        if match.group("code"):
            out.append(f"<code>{html.escape(match.group('code')[1:-1])}</code>")
        elif match.group("bold"):
            out.append(f"<strong>{_inline(match.group('bold')[2:-2])}</strong>")
        elif match.group("em"):
            out.append(f"<em>{_inline(match.group('em')[1:-1])}</em>")
        else:
            href = match.group("href")
            # Links stay text unless they are fragments or web addresses: a relative file name
            # would point outside a page meant to stand alone.
            if href.startswith(("#", "http://", "https://")):
                out.append(f'<a href="{html.escape(href, quote=True)}">{_inline(match.group("text"))}</a>')
            else:
                out.append(_inline(match.group("text")))
        position = match.end()
    out.append(html.escape(text[position:]))
    return "".join(out)


def _cells(line: str) -> list[str]:
    """The cells of a pipe-table row, splitting on `|` but not on an escaped `\\|`."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", body)]


def _table(lines: list[str]) -> list[str]:
    header, rows = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header) + "</tr></thead>", "<tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>")
    out += ["</tbody>", "</table>"]
    return out


def _is_table(lines: list[str], index: int) -> bool:
    if index + 1 >= len(lines) or not lines[index].lstrip().startswith("|"):
        return False
    separator = _cells(lines[index + 1])
    return bool(separator) and all(SEPARATOR_CELL.match(cell) for cell in separator)


def _figure(alt: str, src: str, images: Mapping[str, bytes]) -> str:
    if src in images:
        return (
            f'<figure><img src="{data_uri(images[src])}" alt="{html.escape(alt, quote=True)}">'
            f"<figcaption>{html.escape(alt)}</figcaption></figure>"
        )
    return f'<p class="missing">[figure not drawn: {html.escape(alt)} ({html.escape(src)})]</p>'


def markdown_to_html(markdown: str, images: Mapping[str, bytes]) -> str:
    """The HTML body of report.md's markdown, figures taken from `images` (file name → PNG)."""
    lines = markdown.splitlines()
    out: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append("<p>" + " ".join(_inline(line.strip()) for line in paragraph) + "</p>")
            paragraph.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in items) + "</ul>")
            items.clear()

    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            flush()
        elif _is_table(lines, index):
            flush()
            end = index + 2
            while end < len(lines) and lines[end].lstrip().startswith("|"):
                end += 1
            out.extend(_table(lines[index:end]))
            index = end
            continue
        elif heading := HEADING.match(stripped):
            flush()
            level = len(heading.group("marks"))
            out.append(f"<h{level}>{_inline(heading.group('text'))}</h{level}>")
        elif image := IMAGE_LINE.match(stripped):
            flush()
            out.append(_figure(image.group("alt"), image.group("src"), images))
        elif stripped.startswith("- "):
            if paragraph:
                flush()
            items.append(stripped[2:])
        elif items and line.startswith("  "):
            items[-1] += " " + stripped  # a list item continued on the next line
        else:
            if items:
                flush()
            paragraph.append(line)
        index += 1
    flush()
    return "\n".join(out)


def render_html(report: Report, images: Mapping[str, bytes], *, title: str = "Model-selection report") -> str:
    """The whole report.html page: report.md's content (render_markdown of the same Report)
    with its figures (file name → PNG bytes, as written beside report.md) inline."""
    body = markdown_to_html(render_markdown(report), images)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # Nothing is fetched: the policy also tells a browser to refuse anything but inline data.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n"
        f"<footer>Written by {html.escape(TOOL_NAME)} {html.escape(tool_version())}; the same content as report.md, "
        "with every figure embedded.</footer>\n"
        "</body>\n</html>\n"
    )
