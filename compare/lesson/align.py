"""Alignment: each line of one piece facing the line of the other that does the same thing.

Lines equal on both sides once whitespace is collapsed are anchors, found with
difflib.SequenceMatcher; between two anchors, a small dynamic programme pairs the lines that
assign the same name or carry the same comment (the twins share both), and leaves the rest facing
a gap. The first lines of two pieces (their `def` or `class`) always face.
"""

import dataclasses
import difflib

from compare.lesson.source import Line

MARKS = {"same": " ", "differ": "~", "left": "<", "right": ">"}

PAIR_AT = 0.6  # the least score for two different lines to face each other


def similarity(a: Line, b: Line) -> float:
    """How surely two different lines do the same thing: the name they assign (0.5), the comment
    they share (0.4), and how alike their code reads (up to 0.5)."""
    if not a.key or not b.key:
        return 0.2 if a.key == b.key else 0.0  # blanks face blanks where nothing better is lost
    score = 0.5 * difflib.SequenceMatcher(None, a.words, b.words, autojunk=False).ratio()
    if a.target and a.target == b.target:
        score += 0.5
    if a.comment and a.comment == b.comment:
        score += 0.4
    return score


def pair_between(left: list[Line], right: list[Line]) -> list[tuple[int | None, int | None]]:
    """Pairs (i, j) maximising the summed similarity, in order, each at least PAIR_AT (blanks
    excepted); the lines left over face a gap."""
    n, m = len(left), len(right)
    score = [[2.0 if a.key and a.key == b.key else similarity(a, b) for b in right] for a in left]
    allowed = [[score[i][j] >= PAIR_AT or not (left[i].key or right[j].key) for j in range(m)] for i in range(n)]
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


def align(left: list[Line], right: list[Line]) -> list[Row]:
    """Each line facing its counterpart or a gap (see the module's docstring)."""
    if not left or not right:
        return [Row(a, None) for a in left] + [Row(None, b) for b in right]
    rows = [Row(left[0], right[0])]  # a piece's def/class faces the other's
    left, right = left[1:], right[1:]
    # blanks never anchor: each gets a key of its own
    keys_l = [ln.key or ("L", i) for i, ln in enumerate(left)]
    keys_r = [ln.key or ("R", j) for j, ln in enumerate(right)]
    i = j = 0
    for block in difflib.SequenceMatcher(None, keys_l, keys_r, autojunk=False).get_matching_blocks():
        for a, b in pair_between(left[i:block.a], right[j:block.b]):
            rows.append(Row(None if a is None else left[i + a], None if b is None else right[j + b]))
        rows += [Row(left[block.a + k], right[block.b + k]) for k in range(block.size)]
        i, j = block.a + block.size, block.b + block.size
    return rows

