"""The lesson as one static web page: every topic's code highlighted (Pygments) and aligned, the
differing lines marked, the notes, the checks' outcomes, the loss curves of a side-by-side run.

Everything is inline (styles, the plot as SVG): the file opens from disk and asks the network
for nothing. The page is built from the lesson's views (compare/lesson/views.py); nothing here reads source itself.
"""

import html
import itertools
import re
from importlib import metadata

from pygments.lexers import PythonLexer
from pygments.token import STANDARD_TYPES

from compare.lesson.align import changed_spans, row_mark
from compare.lesson.content import TOPICS, opening
from compare.lesson.source import Line
from compare.lesson.views import Piece, Pointer, TopicView, cheat_sheet

KIND_WORDS = {"same": "the same on both sides", "differ": "differs", "left": "only on the left",
              "right": "only on the right"}

# The colours, light and dark (prefers-color-scheme). Every text colour is at least 4.5:1 (WCAG AA)
# against every background it can sit on, tinted rows included; tests/test_lesson.py computes the
# ratios from these values and again from the page as a browser lays it out.
LIGHT = {
    "bg": "#fafafa", "text": "#1d2330", "muted": "#4d5564", "rule": "#1d2330", "border": "#d5d9e0",
    "code-bg": "#ffffff", "head-bg": "#eef1f5", "differ": "#fff4c2", "left": "#ffe1e1", "right": "#dcf5dc",
    "gap-a": "#f3f4f6", "gap-b": "#e2e5eb", "notes-bg": "#eef3ff", "proof-bg": "#f1f8f1", "failed-bg": "#fff0f0",
    "accent": "#2457c5", "badge-text": "#ffffff", "link": "#1f4fbf", "ln": "#5b6372", "mark": "#7a5c00",
    "mark-left": "#a61b12", "mark-right": "#0f6a26", "pass": "#1b6e20", "fail": "#a61b12",
    "fail-detail": "#7a1a12", "tab-bg": "#e3e7ee", "tab-on": "#ffffff",
    # tokens (Pygments' short classes, grouped below in TOKEN_GROUPS)
    "t-keyword": "#8c1f91", "t-name": "#1d2330", "t-def": "#1548a8", "t-builtin": "#0b5a82",
    "t-string": "#0f6a26", "t-comment": "#59606e", "t-number": "#9a4500", "t-decorator": "#7a5200",
}
DARK = {
    "bg": "#14171c", "text": "#e4e8ef", "muted": "#b4bcc8", "rule": "#8a93a3", "border": "#394050",
    "code-bg": "#1b1f27", "head-bg": "#262b35", "differ": "#3a3314", "left": "#46231f", "right": "#183a22",
    "gap-a": "#20242c", "gap-b": "#2b303a", "notes-bg": "#1f2a40", "proof-bg": "#1c2a1f", "failed-bg": "#3a1d1d",
    "accent": "#9cbcff", "badge-text": "#10131a", "link": "#9cbcff", "ln": "#a2aab8", "mark": "#e6c65c",
    "mark-left": "#ff9c94", "mark-right": "#8fdc9a", "pass": "#8fdc9a", "fail": "#ff9c94",
    "fail-detail": "#ffb4ad", "tab-bg": "#262b35", "tab-on": "#1b1f27",
    "t-keyword": "#e0a8ff", "t-name": "#e4e8ef", "t-def": "#8fb8ff", "t-builtin": "#7cc8f0",
    "t-string": "#9cd69a", "t-comment": "#a7b0bd", "t-number": "#f4b47c", "t-decorator": "#e5c07b",
}
# Which text colour sits on which backgrounds (for the contrast test): code on the code background
# and every tinted row; the rest on the page, the notes, the proof and the table heads.
TEXT_ON = {
    **{t: ("code-bg", "differ", "left", "right", "notes-bg") for t in LIGHT if t.startswith("t-")},
    "ln": ("code-bg", "differ", "left", "right"), "mark": ("code-bg", "differ"), "mark-left": ("code-bg", "left"),
    "mark-right": ("code-bg", "right"), "text": ("bg", "code-bg", "head-bg", "notes-bg", "proof-bg", "failed-bg",
                                                 "tab-bg", "tab-on"),
    "muted": ("bg",), "link": ("bg", "notes-bg", "code-bg"), "badge-text": ("accent",),
    "pass": ("proof-bg", "bg"), "fail": ("failed-bg", "bg"), "fail-detail": ("failed-bg",),
}
TOKEN_GROUPS = {  # Pygments' short class -> colour; unlisted tokens (names, operators) take t-name
    "t-keyword": "k kc kd kn kp kr kt ow",
    "t-def": "nf nc fm",
    "t-builtin": "nb bp ne",
    "t-string": "s s1 s2 sa sb sc sd se sh si sr ss sx dl",
    "t-comment": "c c1 ch cm cp cpf cs",
    "t-number": "m mb mf mh mi mo il",
    "t-decorator": "nd",
}
WIDE = 760  # px: from here the two sides stand side by side (each code column about 40 characters);
#             narrower, one side at a time, chosen by one switch for the whole page
BREAK_AFTER = "([.,="  # where a code line may go on to the next: after these tokens, as the terminal breaks
LONG_NAME = 20  # characters: a name longer than this may break after an underscore inside it, marked
SOFT = "\u00ad"  # a soft hyphen: a break allowed there, drawn as the continuation mark (CSS) only if taken


def breakable(inner: str) -> str:
    """HTML holding a long name (a name, or a dotted path in a comment or docstring) with a soft
    hyphen after each underscore or dot between two word characters: the browser may break the name
    there, and then draws the continuation mark (`hyphenate-character`); copied, the page's script
    drops them, so what a reader copies is the code."""
    return re.sub(r"(?<=\w)([_.])(?=\w)", r"\1" + SOFT, inner)


def has_long_name(text: str) -> bool:
    return any(len(word) > LONG_NAME for word in text.split())


def palette_css(colours: dict) -> str:
    return "".join(f"--{k}: {v}; " for k, v in colours.items())


def token_css() -> str:
    rules = []
    for var, classes in TOKEN_GROUPS.items():
        selectors = ", ".join(f".code td.src .{c}, code.hl .{c}" for c in classes.split())
        rules.append(f"{selectors} {{ color: var(--{var}); }}")
    italic = ", ".join(f".code td.src .{c}" for c in ("c1", "ch", "cm", "sd"))
    return "\n".join(rules) + f"\n{italic} {{ font-style: italic; }}"


CSS = """
:root { --mono: ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace;
        color-scheme: light dark; }
body { font: 15px/1.5 system-ui, "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: var(--text);
       margin: 0; background: var(--bg); }
main { max-width: 1800px; margin: 0 auto; padding: 24px 32px 64px; }
a { color: var(--link); }
h1 { font-size: 26px; margin: 8px 0 4px; } h1 code { font-size: 0.9em; }
h2 { font-size: 21px; margin: 48px 0 4px; padding-top: 12px; border-top: 3px solid var(--rule); }
h3 { font-size: 16px; margin: 20px 0 6px; }
p.concept { font-size: 16px; margin: 4px 0 12px; }
code, .mono { font-family: var(--mono); font-size: 13px; }
nav ol { columns: 2; max-width: 900px; }
nav a { text-decoration: none; }
.legend span.sw { display: inline-block; width: 14px; height: 14px; vertical-align: -2px; margin: 0 4px 0 14px;
                  border: 1px solid var(--border); }
.legend .sw.differ { background: var(--differ); } .legend .sw.left { background: var(--left); }
.legend .sw.right { background: var(--right); } .legend .sw.gap { background: var(--gap-b); }
.legend .sw.same { background: var(--code-bg); }
.piece { margin: 6px 0 14px; }
/* The learner's view (the default) and the proven one (the checkbox #proven): what only the checks
   need folds away, a line written only to stay bitwise shows its idiom, underlined */
body:not(:has(#proven:checked)) .code tr.asrun, body:not(:has(#proven:checked)) .code .asrun { display: none; }
body:has(#proven:checked) .code .idiom { display: none; }
.code .idiom, .idiom-sample { text-decoration: underline dashed var(--muted); text-underline-offset: 3px; }
p.view { margin: 10px 0; padding: 8px 10px; border: 1px solid var(--border); background: var(--head-bg); }
p.view label { font-weight: 600; cursor: pointer; }
p.view input { width: 18px; height: 18px; vertical-align: -3px; margin: 0 6px 0 0; }
.scroll { overflow-x: auto; border: 1px solid var(--border); background: var(--code-bg); }
table.code { border-collapse: collapse; width: 100%; }
table.code th { font: 600 13px/1.4 var(--mono); text-align: left; background: var(--head-bg); padding: 5px 8px;
                border-bottom: 1px solid var(--border); }
table.code td { font: 12.5px/1.45 var(--mono); vertical-align: top; padding: 0 6px; }
table.code td.src { white-space: pre-wrap; overflow-wrap: normal; word-break: normal; width: 50%;
                    padding-left: calc((var(--i, 0) + 4) * 1ch + 6px); text-indent: calc((var(--i, 0) + 4) * -1ch); }
table.code.shared td.src { width: 100%; }
table.code td.ln { color: var(--ln); text-align: right; white-space: nowrap; width: 1%; min-width: 3ch;
                   user-select: none; border-right: 1px solid var(--border); }
table.code td.mk { width: 1.2em; min-width: 1.2em; text-align: center; font-weight: 700; color: var(--mark);
                   user-select: none; }
tr.differ td.src, tr.differ td.ln { background: var(--differ); }
td.src span.nw { white-space: nowrap; }
td.src, code.hl { hyphens: manual; -webkit-hyphenate-character: "\\21A9"; hyphenate-character: "\\21A9"; }
mark.chg { background: none; color: inherit; text-decoration: underline 2px var(--mark); text-underline-offset: 3px; }
tr.left td.src.l, tr.left td.ln.l { background: var(--left); }
tr.right td.src.r, tr.right td.ln.r { background: var(--right); }
td.gap { background: repeating-linear-gradient(135deg, var(--gap-a) 0 6px, var(--gap-b) 6px 12px) !important; }
tr.left td.mk { color: var(--mark-left); } tr.right td.mk { color: var(--mark-right); }
td.src.pointed { box-shadow: inset 3px 0 0 var(--accent); }
a.badge { display: inline-block; min-width: 1.3em; padding: 0 2px; margin-right: 2px; border-radius: 7px;
          background: var(--accent); color: var(--badge-text); font: 700 10.5px/1.45 system-ui, sans-serif;
          text-align: center; text-decoration: none; vertical-align: 1px; }
tr.sep td { height: 8px; }
.notes { background: var(--notes-bg); border-left: 4px solid var(--accent); padding: 8px 14px; margin: 10px 0; }
.notes ol { margin: 4px 0; padding-left: 22px; }
.notes li { margin: 6px 0; }
.notes li > div { overflow-x: auto; }  /* a token longer than the line scrolls, never breaks */
.notes .where { font-family: var(--mono); font-size: 12.5px; background: var(--code-bg); padding: 1px 5px;
                border-radius: 3px; }
.notes code.hl { white-space: pre-wrap; }
.proof { background: var(--proof-bg); border-left: 4px solid var(--pass); padding: 8px 14px; margin: 10px 0; }
.proof.failed { background: var(--failed-bg); border-left-color: var(--fail); }
.proof ul { list-style: none; padding-left: 4px; margin: 4px 0; }
.pass { color: var(--pass); font-weight: 700; } .fail { color: var(--fail); font-weight: 700; }
.fail-detail { font-family: var(--mono); font-size: 12px; color: var(--fail-detail); margin-left: 3.5em; }
.names-scroll { overflow-x: auto; margin: 8px 0 14px; }
table.names { border-collapse: collapse; background: var(--code-bg); }
table.names td, table.names th { border: 1px solid var(--border); padding: 3px 12px; font: 13px/1.5 var(--mono);
                                 text-align: left; white-space: nowrap; }
table.names th { background: var(--head-bg); }
table.cheat { border-collapse: collapse; width: 100%; margin: 6px 0 14px; }
table.cheat th, table.cheat td { border: 1px solid var(--border); padding: 4px 8px; text-align: left;
                                 vertical-align: top; }
table.cheat th { font-weight: 600; white-space: nowrap; background: var(--head-bg); }
table.cheat td { background: var(--code-bg); }
table.cheat a.where { font: 12px/1.4 system-ui, sans-serif; margin-right: 4px; }
table.cheat span.side { display: none; font: 600 12px/1.4 var(--mono); }
figure { margin: 10px 0; }
figure.curves svg { display: block; width: 100%; max-width: 640px; height: auto; background: #fff;
                    border: 1px solid var(--border); }
@media (prefers-color-scheme: dark) {  /* the plot follows the scheme: dark paper, light ink, hues kept */
  figure.curves svg { filter: invert(0.9) hue-rotate(180deg); }
}
pre.run { font: 12.5px/1.4 var(--mono); background: var(--code-bg); border: 1px solid var(--border); padding: 8px 12px;
          white-space: pre-wrap; overflow-wrap: break-word; }
footer { margin-top: 48px; color: var(--muted); font-size: 13px; }
.switch { display: none; }
.side-mark { position: fixed; top: 0; left: 0; width: 0; height: 0; }
@media (max-width: NARROWpx) {
  /* One switch for the page: its two links target the fixed marks #side-l / #side-r (a fixed target is
     always in view, so following one does not scroll); a link to a line (a note's) targets that
     line's cell, and its side shows. RIGHT below stands for "the right side is asked for". */
  [id] { scroll-margin-top: 52px; }  /* a link's target lands below the switch, not under it */
  .switch { display: flex; gap: 6px; position: sticky; top: 0; z-index: 2; padding: 6px 0; background: var(--bg); }
  .switch a { flex: 1 1 0; min-width: 0; font: 600 13px/1.35 var(--mono); padding: 6px 8px; text-align: center;
              text-decoration: none; color: var(--text); background: var(--tab-bg); border: 1px solid var(--border);
              border-radius: 6px; }
  body:not(RIGHT) .switch a.l, body:is(RIGHT) .switch a.r { background: var(--tab-on);
                box-shadow: inset 0 -3px 0 var(--accent); }
  body:not(RIGHT) .piece.two .r, body:is(RIGHT) .piece.two .l { display: none; }
  .piece.two table.code td.src { width: 100%; }
  /* the rows where only the hidden side's line goes on (it is taller) */
  body:not(RIGHT) .piece.two tr:has(td.src.l.pad), body:is(RIGHT) .piece.two tr:has(td.src.r.pad) { display: none; }
  /* a line only the hidden side has: a thin hatched strip says something happens there */
  body:not(RIGHT) .piece.two tr.right td, body:is(RIGHT) .piece.two tr.left td {
                font-size: 0; line-height: 0; height: 4px; padding: 0; }
  body:not(RIGHT) .piece.two tr.right td.l, body:is(RIGHT) .piece.two tr.left td.r {
                background: repeating-linear-gradient(135deg, var(--gap-a) 0 6px, var(--gap-b) 6px 12px) !important; }
}
@media (max-width: 700px) {
  table.cheat tr.head { display: none; }
  table.cheat, table.cheat tbody, table.cheat tr, table.cheat th, table.cheat td { display: block; }
  table.cheat tr { margin-bottom: 8px; }
  table.cheat th { white-space: normal; }
  table.cheat span.side { display: inline; }
  main { padding: 14px 12px 48px; }
  h1 { font-size: 22px; }
  nav ol { columns: 1; padding-left: 24px; }
  .legend span.sw { margin-left: 8px; }
  .notes, .proof { padding: 8px 10px; }
  .notes ol { padding-left: 18px; }
  .fail-detail { margin-left: 1em; }
}
""".replace("NARROW", str(WIDE - 1)).replace("RIGHT", ":has(#side-r:target, .piece.two td.r:target)")


def token_class(ttype) -> str:
    while ttype not in STANDARD_TYPES:
        ttype = ttype.parent
    return STANDARD_TYPES[ttype]


def marked(part: str, start: int, cols: set[int]) -> str:
    """`part` (starting at column `start` of its line) escaped, its marked columns inside <mark>."""
    out, j = [], 0
    for is_marked, group in itertools.groupby(start + j in cols for j in range(len(part))):
        n = len(list(group))
        text = html.escape(part[j:j + n])
        out.append(f'<mark class="chg">{text}</mark>' if is_marked else text)
        j += n
    return "".join(out)


def highlight(lines: list[Line], marks: list | None = None, folds: list | None = None) -> list[list[str]]:
    """Each logical line's physical lines as HTML, highlighted with the whole piece as context; with
    `marks` (per logical line, None or per physical line the changed columns: align.changed_spans),
    the tokens that differ from the facing line inside <mark class="chg">; with `folds` (the same
    shape: tap_folds), those columns inside <span class="asrun">, shown only in the proven view."""
    text = "\n".join(p for ln in lines for p in ln.physical)

    def per_physical(given):
        return [cols for i, ln in enumerate(lines) for cols in ((given or [None] * len(lines))[i]
                                                                 or [set()] * len(ln.physical))]

    flat, hidden = per_physical(marks), per_physical(folds)
    out, col = [""], 0
    for ttype, value in PythonLexer(stripnl=False, ensurenl=False).get_tokens(text):
        cls = token_class(ttype)
        for k, part in enumerate(value.split("\n")):
            if k:
                out.append("")
                col = 0
            row = len(out) - 1
            cols = flat[row] if row < len(flat) else set()
            fold = hidden[row] if row < len(hidden) else set()
            j = 0
            for is_folded, run in itertools.groupby(col + i in fold for i in range(len(part))):
                piece = part[j: j + len(list(run))]
                j += len(piece)
                html_ = token_html(piece, col, cols, cls)
                out[-1] += f'<span class="asrun">{html_}</span>' if is_folded else html_
                col += len(piece)
    out += [""] * (sum(len(ln.physical) for ln in lines) - len(out))
    grouped, k = [], 0
    for ln in lines:
        grouped.append(out[k: k + len(ln.physical)])
        k += len(ln.physical)
    return grouped


def token_html(part: str, col: int, cols: set[int], cls: str) -> str:
    """A token (or the part of it on one line) at column `col`, as highlight shows it."""
    inner = marked(part, col, cols) if cols else html.escape(part)
    # a token without a space never breaks ("->" inside a string would); per line: a
    # docstring is one token over several lines, and its prose lines must wrap
    spaceless = not any(ch.isspace() for ch in part)
    line_cls = f"{cls} nw" if cls and spaceless else cls
    if has_long_name(part):  # wider than a phone's column: it may break, marked
        inner, line_cls = breakable(inner), cls
    out = f'<span class="{line_cls}">{inner}</span>' if line_cls else inner
    if part[-1] in BREAK_AFTER and col:  # a line may continue on the next between two tokens
        out += "<wbr>"
    return out


# ----------------------------------------------------------------------------- the learner's view
# By default the page shows the code as a learner would write it; "show what is proven equal" shows it
# as it runs in the checks. Folded: docstrings, the tap(...) wrappers that `compare where` reads
# (outside the taps topic, which is about them), and a line written only to stay bitwise, which
# shows its idiomatic form instead (where the idiom is the same statement: it assigns the same name,
# or both return).

TAP_CALL = re.compile(r"(?<![\w.])tap\(")
IDENTITY_TAP = re.compile(r"(\w+) = tap\([^()]*, \1\)")  # x = tap(taps, "res_attn", x): only a tap


def tap_folds(line: Line) -> list[set[int]] | None:
    """Per physical line, the columns of each tap(...) call's wrapper: `tap(taps, name, ` and its
    closing bracket, so that what is left is the value it records."""
    text = "\n".join(line.physical)
    if "tap(" not in text or line.key.startswith("def "):
        return None
    starts = list(itertools.accumulate((len(p) + 1 for p in line.physical), initial=0))
    folded = set()
    for m in TAP_CALL.finditer(text):
        depth, commas, i, prefix = 0, 0, m.end() - 1, None
        while i < len(text):
            ch = text[i]
            if ch in "\"'":  # a string: to its closing quote (a tap's name; no triple quotes here)
                i = text.index(ch, i + 1)
            elif ch == "#":  # a comment: to the end of its line
                i = text.find("\n", i)
                i = len(text) if i < 0 else i
            elif ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
                if depth == 0:
                    break
            elif ch == "," and depth == 1:
                commas += 1
                if commas == 2:
                    prefix = i + 1 + len(text[i + 1:]) - len(text[i + 1:].lstrip(" "))
            i += 1
        if prefix is None or i >= len(text):  # not a call of the tap we know: left as it is
            continue
        folded |= set(range(m.start(), prefix)) | {i}
    cols = [set() for _ in line.physical]
    for i in folded:
        k = max(j for j, start in enumerate(starts[:-1]) if start <= i)
        cols[k].add(i - starts[k])
    return cols


def only_a_tap(line: Line) -> bool:
    return bool(IDENTITY_TAP.fullmatch(line.key.split(" # ")[0].strip()))  # its comment aside


def assigned(text: str) -> str:
    """What a statement is about: 'return', or the names it assigns."""
    text = text.strip()
    if text.startswith("return"):
        return "return"
    return text.split(" = ")[0].replace(" ", "") if " = " in text else ""


def idioms(v: TopicView) -> dict:
    """{(path, line number): the idiomatic line} for the lines written only to stay bitwise whose
    idiom is the same statement."""
    return {(n.at.path, n.at.lineno): n.idiom for n in v.notes
            if n.idiom and n.at and assigned(n.idiom) and assigned(n.idiom) == assigned(n.at.text)}


def indent_of(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def cell_pair(line: Line | None, k: int, code: list[str] | None, side: str, topic: str, impl: str,
              badges: dict) -> str:
    """The line-number and code cells of one side of one display row; the line's anchor and note
    badges where `badges` is not None (a line shown a second time, facing an aside, has neither:
    its anchor is where it is first shown)."""
    if line is None:
        return f'<td class="ln {side} gap"></td><td class="src {side} gap"></td>'
    if k >= len(line.physical):
        return f'<td class="ln {side} pad"></td><td class="src {side} pad"></td>'
    number = line.lineno + k if line.lineno else ""
    badge = "".join(f'<a class="badge" href="#note-{topic}-{n}">{n}</a>'
                    for n in (badges or {}).get((line.path, number), []))
    anchor = f' id="{topic}-{impl}-{number}"' if number and badges is not None else ""
    pointed = " pointed" if badge else ""
    return (f'<td class="ln {side}"{anchor}>{badge}{number}</td>'
            f'<td class="src {side}{pointed}" style="--i:{indent_of(line.physical[k])}">{code[k]}</td>')


def learner_cells(line: Line, code: list[str], idiom: dict) -> tuple[list[str], list[bool]]:
    """A line's cells for both views, and per physical line whether it shows nothing in the
    learner's view but something in the proven one (its row may then fold away): a docstring, a line
    that is only a tap, a line written only to stay bitwise (its idiom on its first line instead)."""
    if any((line.path, line.lineno + k) in idiom for k in range(len(code))):
        at = next(k for k in range(len(code)) if (line.path, line.lineno + k) in idiom)
        alone = " " * indent_of(line.physical[at]) + idiom[line.path, line.lineno + at]
        cells = [f'<span class="asrun">{c}</span>' + (f'<span class="idiom">{code_html(alone)}</span>' if k == at
                                                       else "") for k, c in enumerate(code)]
        return cells, [k != at for k in range(len(code))]
    tap = only_a_tap(line)
    folded = [tap or (line.prose[k] and bool(line.physical[k].strip())) for k in range(len(code))]
    return [f'<span class="asrun">{c}</span>' if f else c for c, f in zip(code, folded)], folded


def piece_table(piece: Piece, v: TopicView, badges: dict) -> str:
    """One piece: a single column for shared code; else both sides, one table so that facing lines
    share a row. On a narrow screen one side at a time, the page's switch choosing which (two links
    and CSS, no script); the other side's own lines become thin hatched strips. A row that shows
    nothing in the learner's view is an "asrun" row, shown only in the proven view (a row a note
    points at stays)."""
    idiom = idioms(v)
    taps = v.name != "taps"  # the taps topic is about them: its taps stay

    def side(lines: list[Line], marks=None) -> dict:
        """{id(line): (its cells, what folds)} for one side's lines; the comment just above a line
        shown as its idiom explains the line as run, and folds with it."""
        code = highlight(lines, marks, [tap_folds(ln) if taps else None for ln in lines])
        made = {id(ln): learner_cells(ln, hl, idiom) for ln, hl in zip(lines, code)}
        for i, ln in enumerate(lines):
            if any((ln.path, ln.lineno + k) in idiom for k in range(len(ln.physical))):
                j = i - 1
                while j >= 0 and lines[j].key.startswith("#"):
                    made[id(lines[j])] = ([f'<span class="asrun">{c}</span>' for c in code[j]],
                                          [True] * len(code[j]))
                    j -= 1
        return made

    def quiet(line: Line | None, k: int, made: dict) -> tuple[bool, bool]:
        """(shows nothing in the learner's view, shows something only in the proven view)."""
        if line is None or k >= len(line.physical) or not line.physical[k].strip():
            return True, False
        folded = made[id(line)][1][k]
        return folded, folded

    def pointed(line: Line | None, k: int) -> bool:
        return line is not None and bool(badges.get((line.path, line.lineno + k)))

    if piece.shared:
        lines = [r.left for r in piece.rows]
        made = side(lines)
        rows = []
        for line in lines:
            for k in range(len(line.physical)):
                fold = quiet(line, k, made)[1] and not pointed(line, k)
                rows.append(f'<tr class="same{" asrun" * fold}"><td class="mk"></td>'
                            f'{cell_pair(line, k, made[id(line)][0], "l", v.name, "shared", badges)}</tr>')
        head = (f"{html.escape(piece.titles[0])}" if piece.aside else
                f"{html.escape(piece.titles[0])}: {html.escape(piece.caption)}")
        about = f'<p class="aside">{prose(piece.caption)}</p>' if piece.aside else ""
        return (f'{about}<div class="piece"><div class="scroll"><table class="code shared">'
                f'<tr class="head"><th colspan="3">{head}</th></tr>'
                + "".join(rows) + "</table></div></div>")
    spans = {id(r): changed_spans(r.left, r.right) for r in piece.rows
             if r.kind == "differ" and r.left is not None and r.right is not None}
    made = side([r.left for r in piece.rows if r.left], [spans.get(id(r), (None,))[0] for r in piece.rows if r.left])
    made |= side([r.right for r in piece.rows if r.right], [spans.get(id(r), (None, None))[1] for r in piece.rows
                                                            if r.right])
    rows = []
    own = None if piece.aside else badges  # the twin's lines facing an aside: shown above already
    for row in piece.rows:
        height = max(len(row.left.physical) if row.left else 0, len(row.right.physical) if row.right else 0)
        blank = not (row.left or row.right).key
        for k in range(height):
            mark = "" if blank else row_mark(row, k).strip()
            (quiet_l, only_l), (quiet_r, only_r) = quiet(row.left, k, made), quiet(row.right, k, made)
            fold = quiet_l and quiet_r and (only_l or only_r) and not (pointed(row.left, k) or pointed(row.right, k))
            cells = [cell_pair(line, k, made[id(line)][0] if line else None, s, v.name, impl, own)
                     for line, s, impl in ((row.left, "l", v.pair[0]), (row.right, "r", v.pair[1]))]
            rows.append(f'<tr class="{row.kind}{" asrun" * fold}" title="{KIND_WORDS[row.kind]}">'
                        f'<td class="mk">{mark}</td>{"".join(cells)}</tr>')
    titles = [html.escape(t).replace("/", "/<wbr>").replace(":", ":<wbr>") for t in piece.titles]
    head = "".join(f'<th colspan="2" class="{s}">{t}</th>' for s, t in zip("lr", titles))
    about = f'<p class="aside">{prose(piece.caption)}</p>' if piece.aside else ""  # an aside facing a step
    return (f'{about}<div class="piece two"><div class="scroll"><table class="code">'
            f'<tr class="head"><th class="mk"></th>{head}</tr>' + "".join(rows) + "</table></div></div>")


def code_html(text: str) -> str:
    """A quoted line of code, highlighted; it may go on to the next line between tokens, as the
    code boxes do."""
    out = []
    for t, v in PythonLexer(stripnl=False, ensurenl=False).get_tokens(text):
        cls = token_class(t)
        text = breakable(html.escape(v)) if has_long_name(v) else html.escape(v)
        out.append(f'<span class="{cls}">{text}</span>' if cls else text)
        if v and v[-1] in BREAK_AFTER and out[:-1]:
            out.append("<wbr>")
    return "".join(out)


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
                     f'<div class="names-scroll"><table class="names"><tr>{head}</tr>{body}</table></div>')
    if v.notes:
        items = []
        for n, note in enumerate(v.notes, 1):
            at = where(note.at, f"{v.name}-{note.impl}-{note.at.lineno}") + "<br>" if note.at else ""
            inside = "".join(f"<br>inside: {where(p)}" for p in note.inside)
            inside += "".join(f"<br>instead of: {where(p, f'{v.name}-{other}-{p.lineno}')}" for p in note.faces
                              for other in [v.pair[1] if note.impl == v.pair[0] else v.pair[0]])
            idiom = (f'<br><span class="bitwise">written so only to stay bitwise; the idiomatic line:</span> '
                     f'<code class="hl">{code_html(note.idiom)}</code>' if note.idiom else "")
            items.append(f'<li id="note-{v.name}-{n}"><div>{at}{prose(note.text)}{idiom}{inside}</div></li>')
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


def curves_html(run, pair: tuple[str, str], steps: int) -> str:
    """The side-by-side run: its plot (an SVG, inline: its text stays text, at a size read on a
    phone) and its log, wrapped rather than clipped."""
    a, b = pair
    if run:
        svg, lines = run
        text = svg.decode("utf-8")
        text = text[text.index("<svg"):]  # the XML prolog and doctype have no place inside HTML
        return (f'<figure class="curves" role="img" aria-label="loss curves of {a} and {b}, {steps} steps">'
                f'{text}</figure><pre class="run">{html.escape(chr(10).join(lines))}</pre>')
    if steps:
        return f"<p>No side-by-side run covers {a} and {b} yet.</p>"
    return "<p>No run was asked for (--steps 0).</p>"


GENERATOR = "microgpt-jax compare lesson"  # how `lesson --html` knows a page it may replace


def cheat_sheet_html(views: list[TopicView], pair: tuple[str, str]) -> str:
    """The idioms side by side, first: each idea's line on each side, quoted and linked to the line
    in its topic (a link that also shows that side on a narrow screen)."""
    rows = []
    for idea, *sides in cheat_sheet(views):
        cells = "".join(f'<td><span class="side">{html.escape(impl)}/ </span>'
                        f'<a class="where" href="#{topic}-{impl}-{at.lineno}">{html.escape(topic)}</a> '
                        f'<code class="hl">{code_html(at.text)}</code></td>' for impl, (topic, at) in zip(pair, sides))
        rows.append(f"<tr><th>{html.escape(idea)}</th>{cells}</tr>")
    head = "".join(f"<th><code>{html.escape(impl)}/</code></th>" for impl in pair)
    return (f'<section id="cheatsheet"><h3>The idioms, side by side</h3><table class="cheat">'
            f'<tr class="head"><th></th>{head}</tr>' + "".join(rows) + "</table></section>")


def render(views: list[TopicView], outcomes: dict, names: list, run, pair: tuple[str, str], steps: int) -> str:
    a, b = pair
    passed = sum(o == "PASS" for checks in outcomes.values() for _, o in checks)
    total = sum(len(checks) for checks in outcomes.values())
    toc = "".join(
        f'<li><a href="#topic-{v.name}">{v.name}</a> '
        f'<span class="{"pass" if all(o == "PASS" for _, o in outcomes[v.name]) else "fail"}">'
        f'{sum(o == "PASS" for _, o in outcomes[v.name])}/{len(outcomes[v.name])} ✓</span>'
        f" — {html.escape(TOPICS[v.name].concept.split(':')[0])}</li>" for v in views)
    curves = curves_html(run, pair, steps)
    legend = ('<p class="legend">Marks:<span class="sw differ"></span>~ the two lines differ '
              '(the <mark class="chg">tokens</mark> that differ underlined)'
              '<span class="sw left"></span>&lt; only on the left'
              '<span class="sw right"></span>&gt; only on the right'
              '<span class="sw gap"></span>a gap: nothing on that side does it'
              '<span class="sw same"></span>unmarked: the same line</p>')
    style = (f":root {{ {palette_css(LIGHT)}}}\n"
             f"@media (prefers-color-scheme: dark) {{ :root {{ {palette_css(DARK)}}} }}\n" + token_css() + CSS)
    cheat = cheat_sheet_html(views, pair)
    opening_html = "".join(f"<p>{prose(t)}</p>" for t in opening(pair))
    opening_html = f'<section id="opening"><h3>What changes between the two</h3>{opening_html}</section>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{GENERATOR}">
<title>microgpt: {a}/ beside {b}/</title>
<style>{style}</style></head>
<body><i class="side-mark" id="side-l"></i><i class="side-mark" id="side-r"></i>
<nav class="switch" aria-label="which side to show">
<a class="l" href="#side-l">{a}/</a><a class="r" href="#side-r">{b}/</a></nav>
<main>
<h1>microgpt, twice: <code>{a}/</code> beside <code>{b}/</code></h1>
<p>Karpathy's microgpt (a character-level GPT of 4,192 parameters) is written here in two ways that
compute the same numbers. Each topic below shows both, read from the source files when this page was
built. Every line sits beside the line on the other side that does the same thing; a line with no
counterpart faces a hatched gap, which is usually where a framework took the work over. The note under
a topic says what it took over, points (numbered badges) at the line where that happens and at
the lines it replaces, and quotes the library's own line. The proof under each topic lists the
equivalence checks that cover it, run when the page was built: {passed} of {total} passed.</p>
{cheat}
{legend}
<p class="view"><label><input type="checkbox" id="proven">show what is proven equal</label>: the code
exactly as the checks run it. Until then the page shows it as a learner would write it: docstrings
folded away, the <code>tap(...)</code> calls that record intermediates for <code>compare where</code>
shown as the value they record (the taps topic keeps them), and a line written only to stay bitwise
shown as its idiomatic form, <span class="idiom-sample">underlined</span>.</p>
{opening_html}
<nav><h3>Topics</h3><ol>{toc}<li><a href="#training">the run</a> — both trained side by side</li></ol></nav>
{"".join(topic_section(v, outcomes[v.name], names) for v in views)}
<h2 id="training">Training side by side</h2>
<p class="concept">One initialisation, converted into both, trained in lockstep on the same names
(<code>python -m compare --steps {steps}</code>): the loss of each step (faint) and its running mean,
and how far apart the weights are after each step.</p>
{curves}
<script>/* a long name may break at a soft hyphen (drawn as the continuation mark): copy without them */
document.addEventListener("copy", e => {{ e.clipboardData.setData("text/plain",
  getSelection().toString().replace(/\u00ad/g, "")); e.preventDefault(); }});</script>
<footer>Built by <code>python -m compare lesson --html</code> from the live source, with {versions()}.
This page asks the network for nothing.</footer>
</main></body></html>
"""
