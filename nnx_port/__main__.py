"""`python -m nnx_port`: train the flax.nnx microgpt, then sample names (`sample` for a checkpoint)."""

from common.cli import run_cli, trainer_main
from common.shell import leave
from nnx_port import impl

leave(run_cli(lambda argv: trainer_main(impl, "nnx_port", argv)))
