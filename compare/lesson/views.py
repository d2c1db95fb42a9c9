"""A topic for one pair: its pieces read and aligned, its notes pointing at lines, its checks'
labels. What the terminal and the page render.
"""

import dataclasses
import inspect

from compare.lesson.align import Row, align
from compare.lesson.checks import topic_checks
from compare.lesson.content import CHEAT_SHEET, COUNTERPARTS, TOPICS
from compare.lesson.source import Line, display_path, logical_lines, piece_lines, piece_title, resolve


@dataclasses.dataclass
class Piece:
    titles: tuple[str, str]
    rows: list[Row]
    shared: bool = False  # shown once: code both sides use, or an aside (one side's alternative)
    caption: str = ""  # what a piece shown once is: "the same code for both", or the aside's text
    aside: bool = False  # code that is not the implementation's own, shown beside it (content.Aside)


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
    idiom: str = ""  # the line is written so only to stay bitwise; this is the idiomatic line


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


def library_line(ref: str, text: str) -> Pointer | None:
    """The line of a library object's live source that holds `text`."""
    obj = resolve(ref)
    physical, first = inspect.getsourcelines(obj)
    return find_line(logical_lines(physical, display_path(inspect.getsourcefile(obj)), first), text)


def counterparts(pair: tuple[str, str]) -> list[tuple[str | None, str | None]]:
    """COUNTERPARTS for one pair: (piece of the left line, piece of the right line), None where
    that implementation has no such line."""
    return [(group.get(pair[0]), group.get(pair[1])) for group in COUNTERPARTS
            if pair[0] in group or pair[1] in group]


def view(name: str, pair: tuple[str, str]) -> TopicView:
    """A topic for one pair: its pieces aligned, its notes pointing at lines, its checks."""
    topic = TOPICS[name]
    pieces = []
    for spec in topic.shared:
        pieces.append(Piece((piece_title(None, spec), ""), [Row(ln, None) for ln in piece_lines(None, spec)], True,
                            "the same code for both"))
    shown = {impl: [] for impl in pair}
    pins = counterparts(pair)
    for spec_l, spec_r in zip(topic.pieces[pair[0]], topic.pieces[pair[1]], strict=True):
        left, right = piece_lines(pair[0], spec_l), piece_lines(pair[1], spec_r)
        shown[pair[0]] += left
        shown[pair[1]] += right
        pieces.append(Piece((piece_title(pair[0], spec_l), piece_title(pair[1], spec_r)), align(left, right, pins)))
    for impl in pair:
        other = pair[1] if impl == pair[0] else pair[0]
        for aside in topic.asides.get(impl, ()):
            own = piece_lines(None, aside.spec)
            face = dict(aside.faces).get(other)
            if face is None:  # shown alone, in one column
                pieces.append(Piece((piece_title(None, aside.spec), ""), [Row(ln, None) for ln in own], True,
                                    aside.text, True))
                continue
            sides = {impl: (piece_title(None, aside.spec), own), other: (piece_title(other, face),
                                                                          piece_lines(other, face))}
            (title_l, left), (title_r, right) = sides[pair[0]], sides[pair[1]]
            pieces.append(Piece((title_l, title_r), align(left, right, pins), False, aside.text, True))
    notes, cited = [], set()
    for impl in pair:
        other = pair[1] if impl == pair[0] else pair[0]
        for note in topic.notes.get(impl, ()):
            if note.against and other not in note.against:
                continue
            inside = []
            for ref, text in note.inside:
                found = library_line(ref, text)
                if found and (found.path, found.lineno) not in cited:  # a library line is quoted once a topic
                    cited.add((found.path, found.lineno))
                    inside.append(found)
            faces = [find_line(shown[other], text) for who, text in note.faces if who == other]
            text = " ".join([note.text] + [sentence for who, sentence in note.more if who == other])
            notes.append(ResolvedNote(impl, text, find_line(shown[impl], note.at), inside, [p for p in faces if p],
                                      note.idiom))
    return TopicView(name, topic.concept, pair, pieces, notes, [label for label, _ in topic_checks(name, pair)])


def cheat_sheet(views: list[TopicView]) -> list[tuple[str, tuple[str, Pointer], tuple[str, Pointer]]]:
    """content.CHEAT_SHEET for the views' pair: (idea, (topic, line) on the left, on the right), for
    each idea both sides have, each line the first of the topics' code that holds its piece. With
    every topic, an idiom that none shows is a LookupError."""
    pair = views[0].pair
    rows = []
    for idea, pieces in CHEAT_SHEET:
        if pair[0] not in pieces or pair[1] not in pieces:
            continue
        found = []
        for side, impl in enumerate(pair):
            for v in views:
                lines = [r.right if side else r.left for p in v.pieces if not p.shared for r in p.rows]
                at = find_line([ln for ln in lines if ln is not None], pieces[impl])
                if at:
                    found.append((v.name, at))
                    break
            else:
                if {v.name for v in views} == set(TOPICS):  # every topic, and none shows it: the content is wrong
                    raise LookupError(f"the cheat-sheet's {idea!r}: no topic shows {impl}'s {pieces[impl]!r}")
        if len(found) == 2:  # (a page of some topics only leaves out the idioms of the others)
            rows.append((idea, found[0], found[1]))
    return rows
