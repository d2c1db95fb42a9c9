"""The lesson: one implementation's code beside another's, concept by concept, each line facing
the line that does the same thing, what differs marked, and the checks that prove it.

`python -m compare diff [topic ...]` prints it; `python -m compare lesson --html PATH` writes it
as a web page. The code is read live from the source files with `inspect`: nothing here is a
copy of it, so the lesson cannot go stale.

The package, by concern, each importing only those above it:
  content   the topics and their notes (what is shown, what is said)
  source    the live source cut into logical lines
  align     each line facing its counterpart
  checks    the equivalence checks beside each topic, the names table, the side-by-side run
  views     a topic for one pair: aligned pieces, resolved notes, check labels
  terminal  `compare diff`'s rendering;  page  `compare lesson --html`'s page
  command   the two commands

This module re-exports what callers and tests use.
"""

from compare.lesson.align import MARKS, Row, align, row_mark
from compare.lesson.checks import OUTCOMES, check_inputs, check_topic, names_rows, topic_checks
from compare.lesson.command import lesson_main, main, parse_pair
from compare.lesson.content import DEFAULT_PAIR, IMPLS, TOPICS, Note, Topic, opening
from compare.lesson.source import ROOT, Line, logical_lines, resolve
from compare.lesson.terminal import render_topic, use_colour
from compare.lesson.views import Piece, Pointer, TopicView, view

__all__ = ["DEFAULT_PAIR", "IMPLS", "MARKS", "OUTCOMES", "ROOT", "TOPICS", "Line", "Note", "Piece", "Pointer", "Row",
           "Topic", "TopicView", "align", "check_inputs", "check_topic", "lesson_main", "logical_lines", "main",
           "names_rows", "opening", "parse_pair", "render_topic", "resolve", "row_mark", "topic_checks", "use_colour",
           "view"]
