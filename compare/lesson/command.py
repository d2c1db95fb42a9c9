"""The commands: `python -m compare diff [topic ...]` (the terminal) and `python -m compare lesson
--html PATH` (the page).
"""

import importlib
import os
import shutil
import sys

from common.errors import UserError
from compare.lesson.checks import check_topic, names_rows, side_by_side_run
from compare.lesson.content import DEFAULT_PAIR, IMPLS, TOPICS
from compare.lesson.terminal import MIN_WIDTH, legend, opening_lines, render_topic, use_colour
from compare.lesson.views import view


def parse_pair(text: str) -> tuple[str, str]:
    """'pure,flax_port' -> ('pure', 'flax_port'); refuses unknown, repeated or unimportable ones."""
    pair = tuple(part.strip() for part in text.split(","))
    if len(pair) != 2 or pair[0] == pair[1]:
        raise UserError(f"--pair {text!r}: give two different implementations, e.g. pure,flax_port")
    for impl in pair:
        if impl not in IMPLS:
            from compare import impls

            impls.get(impl)  # a module path that gives no Impl: one line saying what is missing
            raise UserError(f"--pair {text!r}: no lesson is written for {impl} (the lesson aligns "
                            f"{', '.join(IMPLS)}); compare it with `python -m compare check {impl}` or "
                            f"`python -m compare --impls pure,{impl}`")
        try:
            importlib.import_module(impl)
        except ImportError as err:
            raise UserError(f"--pair {text!r}: {impl} is not importable here ({err})") from None
    return pair



MAX_WIDTH = 1000  # columns: wider is no screen's (a huge one overflowed an index inside the layout)


def terminal_width(given: int | None, streams=(1, 2, 0)) -> int:
    """--width as given (one rule for every value: at least MIN_WIDTH), else $COLUMNS, else the width
    of the terminal that standard output, error or input is (`compare diff | less` and `| cat` still
    fit the terminal they end in), else 160 (output to a file, no terminal anywhere)."""
    if given is not None:
        if given < MIN_WIDTH:
            raise UserError(f"--width {given} is too narrow to show code: use {MIN_WIDTH} or more, or leave "
                            "--width out to fit the terminal")
        if given > MAX_WIDTH:
            raise UserError(f"--width {given} is wider than any screen: use at most {MAX_WIDTH}, or leave --width "
                            "out to fit the terminal")
        return given
    columns = shutil.get_terminal_size((0, 0)).columns  # $COLUMNS, or standard output's terminal
    for fd in streams if columns <= 0 else ():
        try:
            columns = os.get_terminal_size(fd).columns
            break
        except (OSError, ValueError):
            continue
    # a COLUMNS past any screen is capped as --width is bounded (lines of 300,000 characters otherwise)
    return min(MAX_WIDTH, max(MIN_WIDTH, columns if columns > 0 else 160))


def main(argv) -> int:
    """`python -m compare diff [topic ...]`."""
    from common.cli import Parser

    p = Parser(prog="compare diff", description="One implementation's code beside another's, concept by concept.")
    p.add_argument("topics", nargs="*", metavar="topic", help=f"any of: {', '.join(TOPICS)} (default: all)")
    p.add_argument("--width", type=int, default=None, help=f"columns to fit, {MIN_WIDTH} or more (default: the "
                   "terminal's)")
    p.add_argument("--pair", default=",".join(DEFAULT_PAIR),
                   help=f"two of {', '.join(IMPLS)} (default pure,flax_port); a port given by module path has no "
                   "lesson: use `compare check` for it")
    p.add_argument("--check", action="store_true", help="run each topic's equivalence checks and print the outcome")
    args = p.parse_args(argv)
    for topic in args.topics:
        if topic not in TOPICS:
            raise UserError(f"unknown topic {topic!r}: choose one of {', '.join(TOPICS)}")
    width = terminal_width(args.width)
    pair = parse_pair(args.pair)
    colour = use_colour(sys.stdout)
    print("\n".join(legend(pair, width) + opening_lines(pair, width)))
    failed = False
    for topic in dict.fromkeys(args.topics) or list(TOPICS):  # a topic named twice is shown once
        v = view(topic, pair)
        outcomes = check_topic(topic, pair) if args.check else None
        failed |= any(o != "PASS" for _, o in outcomes or [])
        print()
        print("\n".join(render_topic(v, width, colour, outcomes)))
    return 1 if failed else 0



def lesson_main(argv) -> int:
    """`python -m compare lesson --html PATH`: the whole lesson as one page that opens from disk."""
    from common import checkpoint
    from common.cli import Parser, setup_jax

    p = Parser(prog="compare lesson", description="Write the lesson as one self-contained web page.")
    p.add_argument("--html", metavar="PATH", required=True, help="where to write the page")
    p.add_argument("--pair", default=",".join(DEFAULT_PAIR),
                   help=f"two of {', '.join(IMPLS)} (default pure,flax_port); a port given by module path has no "
                   "lesson: use `compare check` for it")
    p.add_argument("--steps", type=int, default=300,
                   help="steps of the side-by-side run whose loss curves the page shows (default 300; 0: none)")
    p.add_argument("--no-cache", action="store_true", help="do not use the persistent compilation cache")
    args = p.parse_args(argv)
    if args.steps < 0:
        raise UserError(f"--steps {args.steps}: give 0 (no run) or more")
    pair = parse_pair(args.pair)
    if not args.html.lower().endswith((".html", ".htm")):  # a browser opens it by its extension
        raise UserError(f"--html {args.html}: the lesson is a web page: give a name ending in .html")
    checkpoint.check_outputs([("--html", args.html, checkpoint.is_lesson_page)])  # a new file or a page we wrote
    setup_jax(args)
    from compare.lesson import page

    run = side_by_side_run(pair, args.steps, args.no_cache) if args.steps else None  # bad --steps fail here
    views = [view(name, pair) for name in TOPICS]
    outcomes = {v.name: check_topic(v.name, pair) for v in views}
    html = page.render(views, outcomes, names_rows(pair), run, pair, args.steps)
    checkpoint.atomic_write(args.html, lambda f: f.write(html.encode("utf-8")))
    passed = sum(o == "PASS" for checks in outcomes.values() for _, o in checks)
    total = sum(len(checks) for checks in outcomes.values())
    print(f"lesson written to {args.html}: {len(views)} topics, {passed} of {total} checks passed"
          + (f", loss curves of {args.steps} steps" if run else ""))
    return 0 if passed == total else 1
