"""Render report sections (``[(title, [block, ...]), ...]``) as Markdown and as one self-contained HTML page.

A block is ``("p", text)``, ``("pre", text)``, ``("list", items)``, ``("img", path, alt)`` or
``("table", header, rows)``.  Images are linked from Markdown and inlined (base64) in HTML.  A leaf:
the image and language-model reports both render through it.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path


def to_markdown(sections: list) -> str:
    out = ["# edgeport report", ""]
    for title, blocks in sections:
        out += [f"## {title}", ""]
        for b in blocks:
            kind = b[0]
            if kind == "p":
                out.append(b[1])
            elif kind == "pre":
                out += ["```", b[1], "```"]
            elif kind == "list":
                out += [f"- {x}" for x in b[1]]
            elif kind == "img":
                path = Path(b[1])
                rel = (
                    path.relative_to(path.parents[1]).as_posix() if path.parent.name == "plots" else path.name
                )
                out.append(f"![{b[2]}]({rel})")
            elif kind == "table":
                out.append("| " + " | ".join(b[1]) + " |")
                out.append("|" + "---|" * len(b[1]))
                out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in b[2]]
            out.append("")
    return "\n".join(out)


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}h1{border-bottom:2px solid #ddd}h2{margin-top:1.8em;color:#234}
table{border-collapse:collapse;font-size:.9em;margin:.6em 0}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:left}th{background:#f2f4f7}tr:nth-child(even) td{background:#fafbfc}td.pass{color:#096b1f;
font-weight:600}td.FAIL{color:#fff;background:#c62828!important;font-weight:600}img{max-width:100%;
border:1px solid #eee}pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.82em}"""


def _inline(text: str) -> str:
    esc = html.escape(text)
    parts = esc.split("**")
    esc = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = esc.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(sections: list) -> str:
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>edgeport report</title>",
        f"<style>{CSS}</style></head><body><h1>edgeport report</h1>",
    ]
    for title, blocks in sections:
        out.append(f"<h2>{html.escape(title)}</h2>")
        for b in blocks:
            kind = b[0]
            if kind == "p":
                out.append(f"<p>{_inline(b[1])}</p>")
            elif kind == "pre":
                out.append(f"<pre>{html.escape(b[1])}</pre>")
            elif kind == "list":
                out.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in b[1]) + "</ul>")
            elif kind == "img":
                data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
                out.append(f"<p><img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'></p>")
            elif kind == "table":
                head = "".join(f"<th>{html.escape(h)}</th>" for h in b[1])
                body = "".join(
                    "<tr>"
                    + "".join(
                        f"<td class='{c if c in ('pass', 'FAIL') else ''}'>{html.escape(c)}</td>" for c in row
                    )
                    + "</tr>"
                    for row in b[2]
                )
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out)


__all__ = ["to_html", "to_markdown"]
