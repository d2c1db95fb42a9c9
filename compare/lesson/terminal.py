"""The lesson in a terminal: two columns when they fit, else one side above the other, every line
made to fit the width.
"""

import os
import textwrap

from compare.lesson.align import MARKS, Row
from compare.lesson.checks import names_rows
from compare.lesson.source import Line
from compare.lesson.view import Piece, TopicView

COLOURS = {"differ": "33", "left": "31", "right": "32", "head": "1", "note": "36", "PASS": "32", "FAIL": "31"}
MIN_COLUMN = 70  # narrower than this, the two sides go one above the other
MIN_WIDTH = 40


def use_colour(stream) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return bool(stream.isatty()) and not os.environ.get("NO_COLOR")


def paint(text: str, kind: str, colour: bool) -> str:
    return f"\033[{COLOURS[kind]}m{text}\033[0m" if colour and kind in COLOURS and text else text


def fit(line: Line, width: int) -> list[str]:
    return fit_counting(line, width)[0]


def fit_counting(line: Line, width: int) -> tuple[list[str], int]:
    """The line's physical lines, each made to fit `width` without cutting an expression: a
    trailing comment moves above its code, a docstring's words wrap, and only then does code
    continue below after an opening bracket or a comma, as a formatter would break it. Also
    returns how many comment lines now stand above the first line's code."""
    out, lead = [], 0
    for k, (text, comment_at, breaks, prose) in enumerate(
            zip(line.physical, line.comment_at, line.breaks, line.prose)):
        if len(text) <= width:
            out.append(text)
            continue
        indent = " " * (len(text) - len(text.lstrip()))
        if text.lstrip().startswith("#"):  # a comment on its own line: prose
            comment_at = len(indent)
            prose = False
        if prose:
            out += textwrap.wrap(text.strip(), width, initial_indent=indent, subsequent_indent=indent) or [""]
            continue
        if comment_at is not None:
            words = text[comment_at:].lstrip("#").strip()
            above = textwrap.wrap(words, width, initial_indent=indent + "# ", subsequent_indent=indent + "# ")
            out += above
            text = text[:comment_at].rstrip()
            lead = len(above) if k == 0 and text.strip() else lead
        out += break_code(text, breaks, width, indent + "    ") if text.strip() else []
    return out, lead


def break_code(text: str, breaks: list[tuple[int, int]], width: int, hanging: str) -> list[str]:
    """Code continued on the next line after the last comma that fits (else an opening bracket);
    cut with a ↩ only where neither exists."""
    pieces, done, prefix = [], 0, ""
    while len(prefix) + len(text) - done > width:
        fits = [(-kind, c) for c, kind in breaks if done < c < len(text) and len(prefix) + c - done <= width]
        cut = max(fits)[1] if fits else done + width - len(prefix) - 1
        pieces.append(prefix + text[done:cut].rstrip() + ("" if fits else "↩"))
        done = cut
        while done < len(text) and text[done] == " ":
            done += 1
        prefix = hanging if len(hanging) < width // 2 else "  "
    return pieces + [prefix + text[done:]]


def render_topic(v: TopicView, width: int, colour: bool, outcomes: list[tuple[str, str]] | None) -> list[str]:
    """One topic for a terminal `width` wide: two columns when they fit, else one above the other."""
    out = [paint(f"━━ {v.name} " + "━" * max(0, width - len(v.name) - 4), "head", colour)]
    out += textwrap.wrap(v.concept, width)
    sides = [p for p in v.pieces if not p.shared]
    natural = [max((len(t) for p in sides for r in p.rows for ln in [r.left if s == 0 else r.right] if ln
                    for t in ln.physical), default=0) for s in (0, 1)]
    if 2 + natural[0] + 3 + natural[1] <= width:
        cols = (natural[0], width - 5 - natural[0])
    elif (width - 5) // 2 >= MIN_COLUMN:
        cols = ((width - 5) // 2, (width - 5) // 2)
    else:
        cols = None
    for piece in v.pieces:
        out.append("")
        if piece.shared:
            out += [paint(t, "head", colour) for t in textwrap.wrap(
                f"{piece.titles[0]}: the same code for both", width - 2, initial_indent="  ", subsequent_indent="  ")]
            out += [f"  {t}" for r in piece.rows for t in fit(r.left, width - 2)]
        elif cols:
            out += two_columns(piece, cols, colour)
        else:
            out += one_above_the_other(piece, width, colour)
    if v.name == "names":
        out += names_table(v.pair, width)
    if v.notes:
        out += ["", paint("What the framework took over:", "head", colour)]
    for note in v.notes:
        lines = [f"{p.path}:{p.lineno}  {p.text}" for p in ([note.at] if note.at else [])]
        lines += textwrap.wrap(note.text, width - 4)
        lines += [f"inside: {p.path}:{p.lineno}  {p.text}" for p in note.inside]
        lines += [f"instead of: {p.path}:{p.lineno}  {p.text}" for p in note.faces]
        for k, text in enumerate(lines):
            text = text if len(text) <= width - 4 else text[: width - 5] + "…"
            out.append(("  • " if k == 0 else "    ") + (paint(text, "note", colour) if k == 0 and note.at else text))
    out += ["", paint("The proof (compare/equivalence.py):", "head", colour)]
    if outcomes is None:
        out += [t for label in v.checks for t in textwrap.wrap(label, width, initial_indent="  · ",
                                                               subsequent_indent="    ")]
        out += [] if v.checks else ["  · none wired for this pair yet"]
        out += ["  (run them with --check)"] if v.checks else []
    else:
        for label, outcome in outcomes:
            word = outcome.split(":")[0]
            wrapped = textwrap.wrap(label, width - 8)
            out.append(f"  {paint(word, word, colour)}  {wrapped[0]}")
            out += [f"        {t}" for t in wrapped[1:]]
            if word == "FAIL":
                out += textwrap.wrap(outcome[6:], width, initial_indent="        ", subsequent_indent="        ")
        out += [] if outcomes else ["  none wired for this pair yet"]
    return out


def two_columns(piece: Piece, cols: tuple[int, int], colour: bool) -> list[str]:
    wl, wr = cols
    out = [paint(f"  {piece.titles[0][:wl]:<{wl}} │ {piece.titles[1][:wr]}", "head", colour),
           f"  {'─' * wl}─┼─{'─' * wr}"]
    for row in piece.rows:
        kind = row.kind
        left, lead_l = fit_counting(row.left, wl) if row.left else ([], 0)
        right, lead_r = fit_counting(row.right, wr) if row.right else ([], 0)
        if left and right:  # the two first lines of code face each other, whatever comment moved above
            left = [""] * (lead_r - lead_l) + left
            right = [""] * (lead_l - lead_r) + right
        for k in range(max(len(left), len(right))):
            a = left[k] if k < len(left) else ""
            b = right[k] if k < len(right) else ""
            mark = MARKS[kind] if (row.left or row.right).key else " "
            out.append(f"{paint(mark, kind, colour)} {paint(a.ljust(wl), kind, colour)} │ {paint(b, kind, colour)}"
                       .rstrip())
    return out


def one_above_the_other(piece: Piece, width: int, colour: bool) -> list[str]:
    """Lines the same on both sides once; elsewhere the left side's block, then the right's."""
    out = [paint(f"< {piece.titles[0]}"[:width], "head", colour), paint(f"> {piece.titles[1]}"[:width], "head", colour)]
    blocks: list[tuple[str, list[Row]]] = []
    for row in piece.rows:
        group = {"same": "same", "differ": "pair", "left": "left", "right": "right"}[row.kind]
        if blocks and blocks[-1][0] == group:
            blocks[-1][1].append(row)
        else:
            blocks.append((group, [row]))
    for group, rows in blocks:
        if group == "same":
            out += [f"  {t}" for r in rows for t in fit(r.left, width - 2)]
            continue
        for side, mark in ((0, "<"), (1, ">")):
            lines = [ln for r in rows for ln in [(r.left, r.right)[side]] if ln]
            out += [f"{paint(mark, ('left', 'right')[side], colour) if ln.key else ' '} "
                    f"{paint(t, ('left', 'right')[side], colour)}".rstrip()
                    for ln in lines for t in fit(ln, width - 2)]
    return out


def legend(pair: tuple[str, str], width: int) -> list[str]:
    a, b = pair
    text = (f"{a}/ on the left, {b}/ on the right, each line beside the line that does the same thing. "
            f"Marks: '~' the two lines differ, '<' only {a}/ has it, '>' only {b}/ has it, none: the same line. "
            f"Where two columns do not fit, {a}/ ('<') comes above {b}/ ('>'), block by block.")
    return textwrap.wrap(text, width)



def names_table(pair: tuple[str, str], width: int) -> list[str]:
    """The names table as columns, or, narrower than that, one name after the other."""
    rows = [("checkpoint", "shape", f"{pair[0]}/", f"{pair[1]}/")] + names_rows(pair)
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = [""] + textwrap.wrap("The names, generated from the converters (default config, 27 characters):", width)
    if 2 + sum(widths) + 6 <= width:
        return lines + [("  " + "  ".join(r[k].ljust(widths[k]) for k in range(4))).rstrip() for r in rows]
    for name, shape, a, b in rows[1:]:
        lines += [f"  {name} ({shape})"[:width], f"    {pair[0]}/: {a}"[:width], f"    {pair[1]}/: {b}"[:width]]
    return lines

