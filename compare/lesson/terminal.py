"""The lesson in a terminal: two columns when they fit, else one side above the other, every line
made to fit the width.
"""

import itertools
import re
import textwrap

from compare.lesson.align import MARKS, Row, changed_spans
from compare.lesson.checks import names_rows
from compare.lesson.content import opening
from compare.lesson.source import Break, Line, code_line
from compare.lesson.views import Piece, Pointer, TopicView

COLOURS = {"differ": "33", "left": "31", "right": "32", "head": "1", "note": "36", "PASS": "32", "FAIL": "31"}
MIN_COLUMN = 37  # narrower than this (an 80-column terminal gives 37 each), the sides go one above the other
MIN_WIDTH = 40


def use_colour(stream) -> bool:
    """Colour only on a terminal that shows it (common/shell.py: a TTY, no NO_COLOR, TERM not dumb)."""
    from common.shell import has_colour

    return has_colour(stream)


def paint(text: str, kind: str, colour: bool) -> str:
    return f"\033[{COLOURS[kind]}m{text}\033[0m" if colour and kind in COLOURS and text else text


def fit(line: Line, width: int) -> list[str]:
    return fit_counting(line, width)[0]


PRAGMA = re.compile(r"#\s*(noqa|type:|pragma|fmt:|pylint:)")  # a comment that applies to its own line


def wrap_words(text: str, width: int, indent: str = "", first: str | None = None) -> list[str]:
    """Prose wrapped between words, a word longer than the width on a line of its own: never cut. A
    word that fits the width but not after the indent gives up as much of the indent as it must (a
    35-character path under 6 spaces made a 41-column line at --width 40: tenth hostile pass)."""
    lines = textwrap.wrap(text, width, initial_indent=indent if first is None else first, subsequent_indent=indent,
                          break_long_words=False, break_on_hyphens=False) or [indent.rstrip()]
    return [ln[len(ln) - width:] if len(ln) > width and ln[:len(ln) - width].isspace() else ln for ln in lines]


def fit_counting(line: Line, width: int) -> tuple[list[str], int]:
    """The line's physical lines, each made to fit `width` without cutting a name or a string: a
    trailing comment moves above its code (a pragma such as `# noqa` stays on its line), a
    docstring's words wrap, and code continues on the next line between two tokens, as a
    formatter would break it (break_code). Also returns how many comment lines now stand above
    the first line's code."""
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
            out += wrap_words(text.strip(), width, indent)
            continue
        if comment_at is not None and not PRAGMA.match(text[comment_at:]):
            words = text[comment_at:].lstrip("#").strip()
            above = wrap_words(words, width, indent + "# ")
            out += above
            text = text[:comment_at].rstrip()
            lead = len(above) if k == 0 and text.strip() else lead
        out += break_code(text, breaks, width, indent + "    ") if text.strip() else []
    return out, lead


def break_code(text: str, breaks: list[Break], width: int, hanging: str) -> list[str]:
    """Code continued on the next line at the best break that fits (source.Break: after a comma,
    after an opening bracket, before an operator, before any token; outside brackets the line
    ends with a backslash, so that what is shown stays Python). A token longer than the width
    gets a line of its own; nothing is ever cut inside a token."""
    pieces, done, prefix = [], 0, ""
    while len(prefix) + len(text) - done > width:
        ahead = [b for b in breaks if done < b.column < len(text) and text[done:b.column].strip()]
        fits = [b for b in ahead if len(prefix) + len(text[done:b.column].rstrip()) + 2 * b.backslash <= width]
        if fits:
            cut = min(fits, key=lambda b: (b.kind, b.depth, -b.column))
        elif ahead:
            cut = min(ahead, key=lambda b: b.column)  # the token alone is wider than the line
        else:
            break
        pieces.append(prefix + text[done:cut.column].rstrip() + (" \\" if cut.backslash else ""))
        done = cut.column
        while done < len(text) and text[done] == " ":
            done += 1
        # the hanging indent, unless it would push the next token past the width (a long name in a
        # narrow column): then two spaces, so that the name still fits whole where it can
        after = min((b.column for b in breaks if b.column > done), default=len(text))
        token = len(text[done:after].rstrip())
        prefix = hanging if len(hanging) < width // 2 and len(hanging) + token <= width else "  "
    return pieces + [prefix + text[done:]]


def wrap_code(text: str, width: int, indent: str = "") -> list[str]:
    """One line of code quoted on its own (a note's library line), wrapped as code, never cut."""
    line = code_line(text)
    return [indent + t for t in fit(line, max(1, width - len(indent)))]


def render_topic(v: TopicView, width: int, colour: bool, outcomes: list[tuple[str, str]] | None) -> list[str]:
    """One topic for a terminal `width` wide: two columns when they fit, else one above the other."""
    out = [paint(f"━━ {v.name} " + "━" * max(0, width - len(v.name) - 4), "head", colour)]
    out += wrap_words(v.concept, width)
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
            if piece.aside:  # its title, then what it is
                out += [paint(t, "head", colour) for t in wrap_words(piece.titles[0], width, "  ")]
                out += wrap_words(piece.caption, width, "  ")
            else:
                title = f"{piece.titles[0]}: {piece.caption}"
                out += [paint(t, "head", colour) for t in wrap_words(title, width, "  ")]
            out += [f"  {t}".rstrip() for r in piece.rows for t in fit(r.left, width - 2)]
            continue
        if piece.aside:  # an aside facing the other side's code: what it is, then both sides
            out += wrap_words(piece.caption, width, "  ") + [""]
        if cols and fits_in_columns(piece, cols):
            out += two_columns(piece, cols, colour)
        else:
            out += one_above_the_other(piece, width, colour)
    if v.name == "names":
        out += names_table(v.pair, width)
    if v.notes:
        head = ("Notes: what the framework took over, and lines written so only to stay bitwise:"
                if any(n.idiom for n in v.notes) else "What the framework took over:")
        out += [""] + [paint(t, "head", colour) for t in wrap_words(head, width)]
    for note in v.notes:
        lines = pointer_lines("", note.at, width - 4) if note.at else []
        first = len(lines)
        lines += wrap_words(note.text, width - 4)
        if note.idiom:
            lines += wrap_words("written so only to stay bitwise; the idiomatic line:", width - 4)
            lines += wrap_code(note.idiom, width - 4, "  ")
        for p in note.inside:
            lines += pointer_lines("inside: ", p, width - 4)
        for p in note.faces:
            lines += pointer_lines("instead of: ", p, width - 4)
        for k, text in enumerate(lines):
            out.append(("  • " if k == 0 else "    ") + (paint(text, "note", colour) if k < first else text))
    out += ["", paint("The proof (compare/equivalence.py):", "head", colour)]
    if outcomes is None:
        out += [t for label in v.checks for t in wrap_words(label, width, "    ", "  · ")]
        out += [] if v.checks else ["  · none wired for this pair yet"]
        out += ["  (run them with --check)"] if v.checks else []
    else:
        for label, outcome in outcomes:
            word = outcome.split(":")[0]
            wrapped = wrap_words(label, width - 8)
            out.append(f"  {paint(word, word, colour)}  {wrapped[0]}")
            out += [f"        {t}" for t in wrapped[1:]]
            if word == "FAIL":
                out += wrap_words(outcome[6:], width, "        ")
        out += [] if outcomes else ["  none wired for this pair yet"]
    return out


def fits_in_columns(piece: Piece, cols: tuple[int, int]) -> bool:
    """Every line of each side fits its column once continued between tokens: not so where one token
    (`softmax_cross_entropy_with_integer_labels(` at 37 characters a side) is wider than its
    column; that piece goes one side above the other, where the token has the whole width."""
    return all(len(t) <= w for row in piece.rows for line, w in ((row.left, cols[0]), (row.right, cols[1])) if line
               for t in fit(line, w))


def marked_columns(shown: list[str], line: Line, marks: list[set[int]]) -> list[set[int]]:
    """The marked columns of each display line of `line` (fit's output): a display line is found in
    its physical line by its text (a continuation drops its indent and its trailing backslash); one
    not found whole there (a comment's words re-wrapped) is left unmarked."""
    out, at = [], (0, 0)
    for text in shown:
        body = text.strip().removesuffix("\\").rstrip()
        cols: set[int] = set()
        if body:
            for k in range(at[0], len(line.physical)):
                pos = line.physical[k].find(body, at[1] if k == at[0] else 0)
                if pos < 0 and k == at[0]:  # a trailing comment, shown above its code, was found first
                    pos = line.physical[k].find(body)
                if pos >= 0:
                    lead = len(text) - len(text.lstrip())
                    cols = {lead + c - pos for c in marks[k] if pos <= c < pos + len(body)}
                    at = (k, pos + len(body))
                    break
        out.append(cols)
    return out


def paint_marked(text: str, cols: set[int], kind: str, colour: bool) -> str:
    """`text` plain, its marked columns in the side's colour (bold)."""
    if not colour or not cols:
        return text
    code = {"left": "1;31", "right": "1;32"}[kind]
    flags = [j in cols and not ch.isspace() for j, ch in enumerate(text)]
    out, j = [], 0
    for marked, group in itertools.groupby(flags):  # a run of marked characters takes one escape sequence
        n = len(list(group))
        out.append(f"\033[{code}m{text[j:j + n]}\033[0m" if marked else text[j:j + n])
        j += n
    return "".join(out)


def carets(text_width: int, cols: set[int]) -> str:
    return "".join("^" if j in cols else " " for j in range(text_width))


def two_columns(piece: Piece, cols: tuple[int, int], colour: bool) -> list[str]:
    wl, wr = cols
    if len(piece.titles[0]) <= wl and len(piece.titles[1]) <= wr:
        out = [paint(f"  {piece.titles[0]:<{wl}} │ {piece.titles[1]}", "head", colour)]
    else:  # a title wider than its column: each on its own line, whole
        out = [paint(t, "head", colour) for mark, title in zip("<>", piece.titles)
               for t in wrap_words(title, wl + wr + 3, "  ", f"{mark} ")]
    out.append(f"  {'─' * wl}─┼─{'─' * wr}")
    for row in piece.rows:
        kind = row.kind
        left, lead_l = fit_counting(row.left, wl) if row.left else ([], 0)
        right, lead_r = fit_counting(row.right, wr) if row.right else ([], 0)
        within = kind == "differ" and row.left is not None and row.right is not None
        if within:  # the tokens that differ, marked inside the two lines; the rest stays plain
            spans = changed_spans(row.left, row.right)
            marked_l, marked_r = marked_columns(left, row.left, spans[0]), marked_columns(right, row.right, spans[1])
        if left and right:  # the two first lines of code face each other, whatever comment moved above
            left = [""] * (lead_r - lead_l) + left
            right = [""] * (lead_l - lead_r) + right
            if within:
                marked_l = [set()] * (lead_r - lead_l) + marked_l
                marked_r = [set()] * (lead_l - lead_r) + marked_r
        for k in range(max(len(left), len(right))):
            a = left[k] if k < len(left) else ""
            b = right[k] if k < len(right) else ""
            mark = MARKS[kind] if (row.left or row.right).key else " "
            if kind == "differ" and not (a.strip() and b.strip()):
                mark = " "  # a longer line's continuation faces nothing: it is not said to differ from it
            if not within:
                out.append(f"{paint(mark, kind, colour)} {paint(a.ljust(wl), kind, colour)} │ "
                           f"{paint(b, kind, colour)}".rstrip())
                continue
            ca = marked_l[k] if k < len(marked_l) else set()
            cb = marked_r[k] if k < len(marked_r) else set()
            out.append(f"{paint(mark, kind, colour)} {paint_marked(a, ca, 'left', colour)}{' ' * (wl - len(a))} │ "
                       f"{paint_marked(b, cb, 'right', colour)}".rstrip())
            if not colour and (ca or cb):  # without colour, carets under what changed
                out.append(f"  {carets(wl, ca)} │ {carets(len(b), cb)}".rstrip())
    return out


def one_above_the_other(piece: Piece, width: int, colour: bool) -> list[str]:
    """Block by block, each side keeping its own indentation, order and comments: a line the same
    on both sides (indentation included) is shown once; a line the same but at another depth is
    shown for each side; between such lines, every changed line of the left side, then every
    changed line of the right side, never interleaved."""
    out = [paint(t, "head", colour) for mark, title in zip("<>", piece.titles)
           for t in wrap_words(title, width, "  ", f"{mark} ")]
    run: list[Row] = []

    def side_lines(rows: list[Row], side: int) -> list[str]:
        kind = ("left", "right")[side]
        lines = [ln for r in rows for ln in [(r.left, r.right)[side]] if ln]
        return [f"{paint(MARKS[kind], kind, colour) if ln.key else ' '} {paint(t, kind, colour)}".rstrip()
                for ln in lines for t in fit(ln, width - 2)]

    for row in piece.rows + [None]:
        if row is not None and row.kind != "same":
            run.append(row)
            continue
        out += side_lines(run, 0) + side_lines(run, 1)  # the changed lines since the last shared one
        run = []
        if row is None:
            break
        if row.left.physical == row.right.physical:
            out += [f"  {t}".rstrip() for t in fit(row.left, width - 2)]
        else:  # the same code at another depth: each side's own
            out += side_lines([row], 0) + side_lines([row], 1)
    return out


def pointer_lines(label: str, p: Pointer, width: int) -> list[str]:
    """'inside: flax/linen/attention.py:130  query = ...' on one line if it fits, else the place
    on a line and the code below it, wrapped as code: the quoted line is always shown whole."""
    head = f"{label}{p.path}:{p.lineno}"
    if len(head) + 2 + len(p.text) <= width:
        return [f"{head}  {p.text}"]
    return wrap_words(head, width, "  ", "") + wrap_code(p.text, width, "  ")


def legend(pair: tuple[str, str], width: int) -> list[str]:
    a, b = pair
    text = (f"{a}/ on the left, {b}/ on the right, each line beside the line that does the same thing. "
            f"Marks: '~' the two lines differ (the tokens that differ in colour, or with '^' beneath them), "
            f"'<' only {a}/ has it, '>' only {b}/ has it, none: the same line. "
            f"Where two columns do not fit, {a}/ ('<') comes above {b}/ ('>'), block by block, each side with its "
            "own indentation.")
    return wrap_words(text, width)


def opening_lines(pair: tuple[str, str], width: int) -> list[str]:
    """What changes between the pair's two styles, before the topics."""
    out = []
    for paragraph in opening(pair):
        out += [""] + wrap_words(paragraph, width)
    return out



def names_table(pair: tuple[str, str], width: int) -> list[str]:
    """The names table as columns, or, narrower than that, one name after the other."""
    rows = [("checkpoint", "shape", f"{pair[0]}/", f"{pair[1]}/")] + names_rows(pair)
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = [""] + wrap_words("The names, generated from the converters (default config, 27 characters):", width)
    if 2 + sum(widths) + 6 <= width:
        return lines + [("  " + "  ".join(r[k].ljust(widths[k]) for k in range(4))).rstrip() for r in rows]
    for name, shape, a, b in rows[1:]:
        lines += wrap_words(f"{name} ({shape})", width, "  ")
        lines += wrap_words(f"{pair[0]}/: {a}", width, "      ", "    ") + wrap_words(f"{pair[1]}/: {b}", width,
                                                                                    "      ", "    ")
    return lines

