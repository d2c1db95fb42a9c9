"""`python -m pure`: train the dict-of-arrays microgpt, then sample names (`sample` for a checkpoint)."""

import os
import sys

try:  # the current folder last on the path: a names.py or jax.py there must not shadow a dependency
    if sys.path[0] in ("", os.getcwd()):
        sys.path.append(sys.path.pop(0))
except (IndexError, OSError):  # no path, or the current folder was deleted
    pass

try:
    from common.cli import run_cli, trainer_main
except ImportError as err:  # a `common` of the current folder comes first on the path: not ours
    from pathlib import Path

    ours = Path(__file__).resolve().parents[1] / "common"
    if str(getattr(sys.modules.get("common"), "__file__", "")).startswith(str(ours)):
        raise  # this project's common, failing: a bug, with its traceback
    sys.stderr.write(f"pure: error: {err}: a folder or module named common here is not this "
                     "project's: rename it, or run from another folder\n")
    sys.exit(2)
from common.shell import leave
from pure import impl

leave(run_cli(lambda argv: trainer_main(impl, "pure", argv)))
