"""`python -m nnx_port`: train the flax.nnx microgpt, then sample names (`sample` for a checkpoint)."""

try:
    from common.cli import run_cli, trainer_main
except ImportError as err:  # a `common` of the current folder comes first on the path: not ours
    import sys
    from pathlib import Path

    ours = Path(__file__).resolve().parents[1] / "common"
    if str(getattr(sys.modules.get("common"), "__file__", "")).startswith(str(ours)):
        raise  # this project's common, failing: a bug, with its traceback
    sys.stderr.write(f"nnx_port: error: {err}: a folder or module named common here is not this "
                     "project's: rename it, or run from another folder\n")
    sys.exit(2)
from common.shell import leave
from nnx_port import impl

leave(run_cli(lambda argv: trainer_main(impl, "nnx_port", argv)))
