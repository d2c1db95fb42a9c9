"""Alignment: each line of one piece facing the line of the other that does the same thing.

Lines equal on both sides once whitespace is collapsed are anchors, found with
difflib.SequenceMatcher; between two anchors, a small dynamic programme pairs the lines that
assign the same name or carry the same comment (the twins share both), and leaves the rest facing
a gap. The first lines of two pieces (their `def` or `class`) always face.

Some lines do the same thing in words no score can see (`params, _ = state` and
`gpt, _ = nnx.merge(*state)`). The lesson's content names them (content.COUNTERPARTS) for all three
implementations at once: such a line faces only its counterpart, or a gap where the other side
has none, so every pair shows the same pairing.
"""

import dataclasses
import difflib
import re

from compare.lesson.source import Line

MARKS = {"same": " ", "differ": "~", "left": "<", "right": ">"}

TOKEN = re.compile(r"\w+|\S")  # a name or number, else one character: what a changed word is made of


def changed_spans(left: Line, right: Line) -> tuple[list[set[int]], list[set[int]]]:
    """For each side, per physical line, the columns of the tokens that differ from the other side
    (difflib over the two lines' token sequences; a token both have, in order, is not marked)."""
    def tokens(line: Line):  # the code's tokens: comments and docstrings are prose, not compared here
        return [(k, m.start(), m.end(), m.group())
                for k, (text, comment_at, prose) in enumerate(zip(line.physical, line.comment_at, line.prose))
                if not prose for m in TOKEN.finditer(text[:comment_at] if comment_at is not None else text)
                if not text.lstrip().startswith("#")]

    a, b = tokens(left), tokens(right)
    marks = ([set() for _ in left.physical], [set() for _ in right.physical])
    matcher = difflib.SequenceMatcher(None, [t[3] for t in a], [t[3] for t in b], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            for side, found in ((0, a[i1:i2]), (1, b[j1:j2])):
                for k, start, end, _ in found:
                    marks[side][k].update(range(start, end))
    return marks


PAIR_AT = 0.6  # the least score for two different lines to face each other


def similarity(a: Line, b: Line) -> float:
    """How surely two different lines do the same thing: the name they assign (0.5), the comment
    they share (0.4), and how alike their code reads (up to 0.5)."""
    if not a.key or not b.key:
        return 0.2 if a.key == b.key else 0.0  # blanks face blanks where nothing better is lost
    words_a, words_b = a.words, b.words
    if a.key.startswith("#") and b.key.startswith("#"):  # two comment lines: alike in what they say,
        words_a, words_b = content_words(a.key), content_words(b.key)  # not in "the" and "("
    score = 0.5 * difflib.SequenceMatcher(None, words_a, words_b, autojunk=False).ratio()
    if a.target and a.target == b.target:
        score += 0.5
    if a.comment and a.comment == b.comment:
        score += 0.4
    return score


def content_words(text: str) -> list[str]:
    """The words of a comment that carry its meaning: four letters or more (not "the", "a", "(")."""
    return [w.lower() for w in re.findall(r"\w+", text) if len(w) > 3]


def pin_of(line: Line, pins: list[tuple[str | None, str | None]], side: int) -> int | None:
    """The counterpart group a line of code (not of a docstring) belongs to, if any."""
    if line.key and not line.prose[0]:
        for g, pin in enumerate(pins):
            text = pin[side]
            if text and (line.key.startswith(text[1:]) if text.startswith("^") else text in line.key):
                return g
    return None


def pair_between(left: list[Line], right: list[Line], pins_l: list[int | None] | None = None,
                 pins_r: list[int | None] | None = None) -> list[tuple[int | None, int | None]]:
    """Pairs (i, j) maximising the summed similarity, in order, each at least PAIR_AT (blanks
    excepted); a line with a counterpart group pairs only within it. The lines left over face a gap."""
    n, m = len(left), len(right)
    pins_l, pins_r = pins_l or [None] * n, pins_r or [None] * m
    score = [[2.0 if a.key and a.key == b.key else similarity(a, b) for b in right] for a in left]
    allowed = [[(pins_l[i] == pins_r[j]) if pins_l[i] is not None or pins_r[j] is not None
                else score[i][j] >= PAIR_AT or not (left[i].key or right[j].key) for j in range(m)] for i in range(n)]
    score = [[max(score[i][j], 2.0) if pins_l[i] is not None and allowed[i][j] else score[i][j] for j in range(m)]
             for i in range(n)]
    best = [[0.0] * (m + 1) for _ in range(n + 1)]  # best[i][j]: the most that left[i:], right[j:] can score
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            take = best[i + 1][j + 1] + score[i][j] if allowed[i][j] else -1.0
            best[i][j] = max(best[i + 1][j], best[i][j + 1], take)
    out, i, j = [], 0, 0
    while i < n and j < m:
        if allowed[i][j] and best[i][j] == best[i + 1][j + 1] + score[i][j]:
            out.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            out.append((i, None))
            i += 1
        else:
            out.append((None, j))
            j += 1
    return out + [(k, None) for k in range(i, n)] + [(None, k) for k in range(j, m)]


@dataclasses.dataclass
class Row:
    left: Line | None
    right: Line | None

    @property
    def kind(self) -> str:
        """'same', 'differ', 'left' (nothing faces it on the right) or 'right'."""
        if self.left is None:
            return "right"
        if self.right is None:
            return "left"
        return "same" if self.left.key == self.right.key else "differ"


def row_mark(row: Row, k: int) -> str:
    """The mark of a row's k-th display line: a differing row is marked '~' only where both sides
    have a line (a longer docstring's last line faces nothing, and is not said to differ from it)."""
    if row.kind == "same" or not (row.left or row.right).key:
        return " "
    if row.kind == "differ" and (k >= len(row.left.physical) or k >= len(row.right.physical)):
        return " "
    return MARKS[row.kind]


def align(left: list[Line], right: list[Line], pins: list[tuple[str | None, str | None]] = ()) -> list[Row]:
    """Each line facing its counterpart or a gap (see the module's docstring); `pins`: the
    counterpart groups of this pair, (a piece of the left line, of the right line), None where a
    side has no such line."""
    if not left or not right:
        return [Row(a, None) for a in left] + [Row(None, b) for b in right]
    first_l, first_r = pin_of(left[0], pins, 0), pin_of(right[0], pins, 1)
    if first_l != first_r:  # a def with a counterpart rule faces only its counterpart
        rows = []
    else:
        rows = [Row(left[0], right[0])]  # a piece's def/class faces the other's
        left, right = left[1:], right[1:]
    pins_l = [pin_of(ln, pins, 0) for ln in left]
    pins_r = [pin_of(ln, pins, 1) for ln in right]
    # blanks never anchor: each gets a key of its own; a pinned line anchors only to its counterpart
    keys_l = [("pin", pins_l[i]) if pins_l[i] is not None else ln.key or ("L", i) for i, ln in enumerate(left)]
    keys_r = [("pin", pins_r[j]) if pins_r[j] is not None else ln.key or ("R", j) for j, ln in enumerate(right)]
    i = j = 0
    for block in difflib.SequenceMatcher(None, keys_l, keys_r, autojunk=False).get_matching_blocks():
        for a, b in pair_between(left[i:block.a], right[j:block.b], pins_l[i:block.a], pins_r[j:block.b]):
            rows.append(Row(None if a is None else left[i + a], None if b is None else right[j + b]))
        rows += [Row(left[block.a + k], right[block.b + k]) for k in range(block.size)]
        i, j = block.a + block.size, block.b + block.size
    return rows

