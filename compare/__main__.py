"""`python -m compare` (side by side), `python -m compare diff [topic ...]` (the lesson in the
terminal), `python -m compare lesson --html PATH` (the lesson as a web page), `python -m compare bench`,
`python -m compare --against float64|eager` (where two runs of one implementation part),
`python -m compare check MODULE` (the equivalence grid on any implementation, by module path),
`python -m compare where` (the first operation where two implementations part), `python -m compare
golden` / `judge` (a reference's outputs in a file, and a candidate's file judged against them)."""

import os
import sys

try:  # the current folder last on the path: a names.py or jax.py there must not shadow a dependency
    if sys.path[0] in ("", os.getcwd()):
        sys.path.append(sys.path.pop(0))
except (IndexError, OSError):  # no path, or the current folder was deleted
    pass

try:
    from common.cli import run_cli
except ImportError as err:  # a `common` of the current folder comes first on the path: not ours
    from pathlib import Path

    ours = Path(__file__).resolve().parents[1] / "common"
    if str(getattr(sys.modules.get("common"), "__file__", "")).startswith(str(ours)):
        raise  # this project's common, failing: a bug, with its traceback
    sys.stderr.write(f"compare: error: {err}: a folder or module named common here is not this "
                     "project's: rename it, or run from another folder\n")
    sys.exit(2)
from common.shell import leave


def main(argv):
    if argv and argv[0] == "diff":
        from compare import lesson

        return lesson.main(argv[1:])
    if argv and argv[0] == "lesson":
        from compare import lesson

        return lesson.lesson_main(argv[1:])
    if argv and argv[0] == "check":
        from compare import check

        return check.main(argv[1:])
    if argv and argv[0] == "where":
        from compare import where

        return where.main(argv[1:])
    if argv and argv[0] in ("golden", "judge"):
        from compare import golden

        return (golden.main if argv[0] == "golden" else golden.judge_main)(argv[1:])
    if argv and argv[0] == "bench":
        from compare import bench

        return bench.main(argv[1:])
    from compare import against

    if any(against.flag(a) for a in argv):
        return against.main(argv)
    from compare import run

    return run.main(argv)


leave(run_cli(main))
