"""A topic for one pair: its pieces read and aligned, its notes pointing at lines, its checks'
labels. What the terminal and the page render.
"""

import dataclasses
import inspect

from compare.lesson.align import Row, align
from compare.lesson.checks import topic_checks
from compare.lesson.content import TOPICS
from compare.lesson.source import Line, display_path, logical_lines, piece_lines, piece_title, resolve


@dataclasses.dataclass
class Piece:
    titles: tuple[str, str]
    rows: list[Row]
    shared: bool = False  # shown once: code both sides use


@dataclasses.dataclass
class Pointer:
    path: str
    lineno: int
    text: str  # the line, stripped


@dataclasses.dataclass
class ResolvedNote:
    impl: str
    text: str
    at: Pointer | None  # None: the line was not found in what the lesson shows
    inside: list[Pointer]
    faces: list[Pointer]  # in the other implementation of the pair


@dataclasses.dataclass
class TopicView:
    name: str
    concept: str
    pair: tuple[str, str]
    pieces: list[Piece]
    notes: list[ResolvedNote]
    checks: list[str]  # labels of the equivalence checks that cover the topic


def find_line(lines: list[Line], text: str) -> Pointer | None:
    """The first line of code (not of a docstring) holding `text`."""
    for line in lines:
        for k, physical in enumerate(line.physical):
            if text in physical and line.lineno and not line.prose[k]:
                return Pointer(line.path, line.lineno + k, physical.strip())
    return None


def view(name: str, pair: tuple[str, str]) -> TopicView:
    """A topic for one pair: its pieces aligned, its notes pointing at lines, its checks."""
    topic = TOPICS[name]
    pieces = []
    for spec in topic.shared:
        pieces.append(Piece((piece_title(None, spec), ""), [Row(ln, None) for ln in piece_lines(None, spec)], True))
    shown = {impl: [] for impl in pair}
    for spec_l, spec_r in zip(topic.pieces[pair[0]], topic.pieces[pair[1]], strict=True):
        left, right = piece_lines(pair[0], spec_l), piece_lines(pair[1], spec_r)
        shown[pair[0]] += left
        shown[pair[1]] += right
        pieces.append(Piece((piece_title(pair[0], spec_l), piece_title(pair[1], spec_r)), align(left, right)))
    notes = []
    for impl in pair:
        for note in topic.notes.get(impl, ()):
            inside = []
            for ref, text in note.inside:
                obj = resolve(ref)
                physical, first = inspect.getsourcelines(obj)
                found = find_line(logical_lines(physical, display_path(inspect.getsourcefile(obj)), first), text)
                inside += [found] if found else []
            faces = [find_line(shown[other], text) for other, text in note.faces if other in pair and other != impl]
            notes.append(ResolvedNote(impl, note.text, find_line(shown[impl], note.at), inside,
                                      [p for p in faces if p]))
    return TopicView(name, topic.concept, pair, pieces, notes, [label for label, _ in topic_checks(name, pair)])
