"""`python -m nnx_port`: train the flax.nnx microgpt, then sample names (`sample` for a checkpoint)."""

import sys

from common.cli import run_cli, trainer_main
from nnx_port import impl

sys.exit(run_cli(lambda argv: trainer_main(impl, "nnx_port", argv)))
