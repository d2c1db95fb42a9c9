"""The lesson as one static web page: every topic's code highlighted (Pygments) and aligned, the
differing lines marked, the notes, the checks' outcomes, the loss curves of a side-by-side run.

Everything is inline (styles, the PNG as base64): the file opens from disk and asks the network
for nothing. The page is built from the lesson's views (compare/lesson/views.py); nothing here reads source itself.
"""

import base64
import html
import re
from importlib import metadata

from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from pygments.token import STANDARD_TYPES

from compare.lesson.align import row_mark
from compare.lesson.content import TOPICS, opening
from compare.lesson.source import Line
from compare.lesson.views import Piece, Pointer, TopicView

KIND_WORDS = {"same": "the same on both sides", "differ": "differs", "left": "only on the left",
              "right": "only on the right"}

CSS = """
:root { --mono: ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace; }
body { font: 15px/1.5 system-ui, "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #1d2330;
       margin: 0; background: #fafafa; }
main { max-width: 1800px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 26px; margin: 8px 0 4px; } h1 code { font-size: 0.9em; }
h2 { font-size: 21px; margin: 48px 0 4px; padding-top: 12px; border-top: 3px solid #1d2330; }
h3 { font-size: 16px; margin: 20px 0 6px; }
p.concept { font-size: 16px; margin: 4px 0 12px; }
code, .mono { font-family: var(--mono); font-size: 13px; }
nav ol { columns: 2; max-width: 900px; }
nav a { text-decoration: none; }
.legend span.sw { display: inline-block; width: 14px; height: 14px; vertical-align: -2px; margin: 0 4px 0 14px;
                  border: 1px solid #bbb; }
table.code { border-collapse: collapse; width: 100%; table-layout: fixed; background: #fff;
             border: 1px solid #d5d9e0; margin: 6px 0 14px; }
table.code th { font: 600 13px/1.4 var(--mono); text-align: left; background: #eef1f5; padding: 5px 8px;
                border-bottom: 1px solid #d5d9e0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
table.code td { font: 12.5px/1.45 var(--mono); vertical-align: top; padding: 0 6px; }
table.code td.src { white-space: pre-wrap; overflow-wrap: anywhere;
                    padding-left: calc((var(--i, 0) + 4) * 1ch + 6px); text-indent: calc((var(--i, 0) + 4) * -1ch); }
table.code td.ln { color: #8a93a3; text-align: right; width: 3.2em; user-select: none; border-right: 1px solid #eee; }
table.code td.mk { width: 1.2em; text-align: center; font-weight: 700; color: #8a6d00; user-select: none; }
table.code col.mk { width: 1.6em; } table.code col.ln { width: 4.6em; }
tr.differ td.src, tr.differ td.ln { background: #fff4c2; }
tr.left td.src.l, tr.left td.ln.l { background: #ffe1e1; }
tr.right td.src.r, tr.right td.ln.r { background: #dcf5dc; }
td.gap { background: repeating-linear-gradient(135deg, #f3f4f6 0 6px, #e7e9ee 6px 12px) !important; }
tr.left td.mk { color: #b42318; } tr.right td.mk { color: #177a2f; }
td.src.pointed { box-shadow: inset 3px 0 0 #2457c5; }
a.badge { display: inline-block; min-width: 1.4em; padding: 0 3px; margin-right: 3px; border-radius: 8px;
          background: #2457c5; color: #fff; font: 700 11px/1.5 system-ui, sans-serif; text-align: center;
          text-decoration: none; text-indent: 0; }
tr.sep td { height: 8px; }
.notes { background: #eef3ff; border-left: 4px solid #2457c5; padding: 8px 14px; margin: 10px 0; }
.notes ol { margin: 4px 0; padding-left: 22px; }
.notes li { margin: 6px 0; }
.notes .where { font-family: var(--mono); font-size: 12.5px; background: #fff; padding: 1px 5px; border-radius: 3px; }
.proof { background: #f1f8f1; border-left: 4px solid #2e7d32; padding: 8px 14px; margin: 10px 0; }
.proof.failed { background: #fff0f0; border-left-color: #b42318; }
.proof ul { list-style: none; padding-left: 4px; margin: 4px 0; }
.pass { color: #1b6e20; font-weight: 700; } .fail { color: #b42318; font-weight: 700; }
.fail-detail { font-family: var(--mono); font-size: 12px; color: #7a1a12; margin-left: 3.5em; }
table.names { border-collapse: collapse; background: #fff; margin: 8px 0 14px; }
table.names td, table.names th { border: 1px solid #d5d9e0; padding: 3px 12px; font: 13px/1.5 var(--mono);
                                 text-align: left; }
table.names th { background: #eef1f5; }
figure { margin: 10px 0; } figure img { max-width: 100%; border: 1px solid #d5d9e0; background: #fff; }
pre.run { font: 12.5px/1.4 var(--mono); background: #fff; border: 1px solid #d5d9e0; padding: 8px 12px;
          overflow-x: auto; }
footer { margin-top: 48px; color: #5b6475; font-size: 13px; }
.hl, table.code td.src { background: transparent; }
"""


def token_class(ttype) -> str:
    while ttype not in STANDARD_TYPES:
        ttype = ttype.parent
    return STANDARD_TYPES[ttype]


def highlight(lines: list[Line]) -> list[list[str]]:
    """Each logical line's physical lines as HTML, highlighted with the whole piece as context."""
    text = "\n".join(p for ln in lines for p in ln.physical)
    out = [""]
    for ttype, value in PythonLexer(stripnl=False, ensurenl=False).get_tokens(text):
        cls = token_class(ttype)
        for k, part in enumerate(value.split("\n")):
            if k:
                out.append("")
            if part:
                out[-1] += f'<span class="{cls}">{html.escape(part)}</span>' if cls else html.escape(part)
    out += [""] * (sum(len(ln.physical) for ln in lines) - len(out))
    grouped, k = [], 0
    for ln in lines:
        grouped.append(out[k: k + len(ln.physical)])
        k += len(ln.physical)
    return grouped


def indent_of(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def cell_pair(line: Line | None, k: int, code: list[str] | None, side: str, topic: str, impl: str,
              badges: dict) -> str:
    """The line-number and code cells of one side of one display row."""
    if line is None:
        return f'<td class="ln {side} gap"></td><td class="src {side} gap"></td>'
    if k >= len(line.physical):
        return f'<td class="ln {side}"></td><td class="src {side}"></td>'
    number = line.lineno + k if line.lineno else ""
    badge = "".join(f'<a class="badge" href="#note-{topic}-{n}">{n}</a>'
                    for n in badges.get((line.path, number), []))
    anchor = f' id="{topic}-{impl}-{number}"' if number else ""
    pointed = " pointed" if badge else ""
    return (f'<td class="ln {side}"{anchor}>{badge}{number}</td>'
            f'<td class="src {side}{pointed}" style="--i:{indent_of(line.physical[k])}">{code[k]}</td>')


def piece_table(piece: Piece, v: TopicView, badges: dict) -> str:
    if piece.shared:
        lines = [r.left for r in piece.rows]
        code = highlight(lines)
        rows = []
        for line, hl in zip(lines, code):
            for k in range(len(line.physical)):
                rows.append(f'<tr class="same"><td class="mk"></td>'
                            f'{cell_pair(line, k, hl, "l", v.name, "shared", badges)}</tr>')
        head = (f"{html.escape(piece.titles[0])}" if piece.aside else
                f"{html.escape(piece.titles[0])}: {html.escape(piece.caption)}")
        about = f'<p class="aside">{prose(piece.caption)}</p>' if piece.aside else ""
        return (f'{about}<table class="code shared"><colgroup><col class="mk"><col class="ln"><col></colgroup>'
                f'<tr><th colspan="3">{head}</th></tr>' + "".join(rows) + "</table>")
    left = highlight([r.left for r in piece.rows if r.left])
    right = highlight([r.right for r in piece.rows if r.right])
    li = ri = 0
    rows = []
    for row in piece.rows:
        hl_l = hl_r = None
        if row.left:
            hl_l, li = left[li], li + 1
        if row.right:
            hl_r, ri = right[ri], ri + 1
        height = max(len(row.left.physical) if row.left else 0, len(row.right.physical) if row.right else 0)
        blank = not (row.left or row.right).key
        for k in range(height):
            mark = "" if blank else row_mark(row, k).strip()
            rows.append(f'<tr class="{row.kind}" title="{KIND_WORDS[row.kind]}"><td class="mk">{mark}</td>'
                        f'{cell_pair(row.left, k, hl_l, "l", v.name, v.pair[0], badges)}'
                        f'{cell_pair(row.right, k, hl_r, "r", v.name, v.pair[1], badges)}</tr>')
    head = "".join(f'<th colspan="2" title="{html.escape(t)}">{html.escape(t)}</th>' for t in piece.titles)
    return (f'<table class="code"><colgroup><col class="mk"><col class="ln"><col><col class="ln"><col></colgroup>'
            f'<tr><th></th>{head}</tr>' + "".join(rows) + "</table>")


def code_html(text: str) -> str:
    return "".join(f'<span class="{token_class(t)}">{html.escape(v)}</span>' if token_class(t) else html.escape(v)
                   for t, v in PythonLexer(stripnl=False, ensurenl=False).get_tokens(text))


def prose(text: str) -> str:
    """A note's text, `code` in backticks set as code."""
    parts = re.split(r"`([^`]+)`", text)  # even places: prose, odd places: code
    return "".join(f'<code class="hl">{code_html(p)}</code>' if k % 2 else html.escape(p) for k, p in enumerate(parts))


def where(p: Pointer, href: str | None = None) -> str:
    label = f"{html.escape(p.path)}:{p.lineno}"
    link = f'<a href="#{href}">{label}</a>' if href else label
    return f'<span class="where">{link}</span> <code class="hl">{code_html(p.text)}</code>'


def topic_section(v: TopicView, outcomes: list[tuple[str, str]], names: list[tuple[str, ...]]) -> str:
    badges: dict = {}
    for n, note in enumerate(v.notes, 1):
        for p in ([note.at] if note.at else []) + note.faces:
            badges.setdefault((p.path, p.lineno), []).append(n)
    parts = [f'<section id="topic-{v.name}"><h2>{v.name}</h2><p class="concept">{html.escape(v.concept)}</p>']
    parts += [piece_table(p, v, badges) for p in v.pieces]
    if v.name == "names":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in ("checkpoint name", "shape", f"{v.pair[0]}/",
                                                              f"{v.pair[1]}/"))
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in names)
        parts.append("<h3>The names, generated from the converters</h3>"
                     f'<table class="names"><tr>{head}</tr>{body}</table>')
    if v.notes:
        items = []
        for n, note in enumerate(v.notes, 1):
            at = where(note.at, f"{v.name}-{note.impl}-{note.at.lineno}") + "<br>" if note.at else ""
            inside = "".join(f"<br>inside: {where(p)}" for p in note.inside)
            inside += "".join(f"<br>instead of: {where(p, f'{v.name}-{other}-{p.lineno}')}" for p in note.faces
                              for other in [v.pair[1] if note.impl == v.pair[0] else v.pair[0]])
            idiom = (f'<br><span class="bitwise">written so only to stay bitwise; the idiomatic line:</span> '
                     f'<code class="hl">{code_html(note.idiom)}</code>' if note.idiom else "")
            items.append(f'<li id="note-{v.name}-{n}">{at}{prose(note.text)}{idiom}{inside}</li>')
        parts.append(f'<div class="notes"><strong>What the framework took over</strong><ol>{"".join(items)}</ol></div>')
    failed = any(o != "PASS" for _, o in outcomes)
    checks = []
    for label, outcome in outcomes:
        ok = outcome == "PASS"
        detail = "" if ok else f'<div class="fail-detail">{html.escape(outcome[6:])}</div>'
        checks.append(f'<li><span class="{"pass" if ok else "fail"}">{"✓ PASS" if ok else "✗ FAIL"}</span> '
                      f"{html.escape(label)}{detail}</li>")
    body = "".join(checks) or "<li>no check is wired for this pair yet</li>"
    parts.append(f'<div class="proof{" failed" if failed else ""}"><strong>The proof</strong> '
                 "(compare/equivalence.py, run when this page was built: same weights and names in, the "
                 f"numbers compared)<ul>{body}</ul></div></section>")
    return "".join(parts)


def versions() -> str:
    found = []
    for package in ("jax", "jaxlib", "flax", "optax", "pygments"):
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


GENERATOR = "microgpt-jax compare lesson"  # how `lesson --html` knows a page it may replace


def render(views: list[TopicView], outcomes: dict, names: list, run, pair: tuple[str, str], steps: int) -> str:
    a, b = pair
    passed = sum(o == "PASS" for checks in outcomes.values() for _, o in checks)
    total = sum(len(checks) for checks in outcomes.values())
    toc = "".join(
        f'<li><a href="#topic-{v.name}">{v.name}</a> '
        f'<span class="{"pass" if all(o == "PASS" for _, o in outcomes[v.name]) else "fail"}">'
        f'{sum(o == "PASS" for _, o in outcomes[v.name])}/{len(outcomes[v.name])} ✓</span>'
        f" — {html.escape(TOPICS[v.name].concept.split(':')[0])}</li>" for v in views)
    if run:
        png, lines = run
        curves = (f'<figure><img alt="loss curves of {a} and {b}, {steps} steps" '
                  f'src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>'
                  f'<pre class="run">{html.escape(chr(10).join(lines))}</pre>')
    elif steps:
        curves = f"<p>No side-by-side run covers {a} and {b} yet.</p>"
    else:
        curves = "<p>No run was asked for (--steps 0).</p>"
    legend = ('<p class="legend">Marks:<span class="sw" style="background:#fff4c2"></span>~ the two lines differ'
              '<span class="sw" style="background:#ffe1e1"></span>&lt; only on the left'
              '<span class="sw" style="background:#dcf5dc"></span>&gt; only on the right'
              '<span class="sw" style="background:#e7e9ee"></span>a gap: nothing on that side does it'
              '<span class="sw" style="background:#fff"></span>unmarked: the same line</p>')
    opening_html = "".join(f"<p>{prose(t)}</p>" for t in opening(pair))
    opening_html = f'<section id="opening"><h3>What changes between the two</h3>{opening_html}</section>'
    style = HtmlFormatter(style="friendly").get_style_defs([".hl", "td.src"]) + CSS
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{GENERATOR}">
<title>microgpt: {a}/ beside {b}/</title>
<style>{style}</style></head>
<body><main>
<h1>microgpt, twice: <code>{a}/</code> beside <code>{b}/</code></h1>
<p>Karpathy's microgpt (a character-level GPT of 4,192 parameters) is written here in two ways that
compute the same numbers. Each topic below shows both, read from the source files when this page was
built. Every line sits beside the line on the other side that does the same thing; a line with no
counterpart faces a hatched gap, which is usually where a framework took the work over. The note under
a topic says what it took over, points (numbered badges) at the line where that happens and at
the lines it replaces, and quotes the library's own line. The proof under each topic lists the
equivalence checks that cover it, run when the page was built: {passed} of {total} passed.</p>
{legend}
{opening_html}
<nav><h3>Topics</h3><ol>{toc}</ol></nav>
<h2 id="training">Training side by side</h2>
<p class="concept">One initialisation, converted into both, trained in lockstep on the same names
(<code>python -m compare --steps {steps}</code>): the loss of each step (faint) and its running mean,
and how far apart the weights are after each step.</p>
{curves}
{"".join(topic_section(v, outcomes[v.name], names) for v in views)}
<footer>Built by <code>python -m compare lesson --html</code> from the live source, with {versions()}.
This page asks the network for nothing.</footer>
</main></body></html>
"""
